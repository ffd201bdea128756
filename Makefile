# pystanmods: every target creates the project virtualenv and installs the
# package into it first, so each works alone on a fresh clone.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pystanmods-installed
JOBS   ?= 2
# Programs whose Pathfinder the tests run (pystanmods.pathfinder, depmap fit --approximate).
PATHFINDER_PROGRAMS ?= model1 gene_effect_centered
# The SBC runs committed in docs/sbc-results that `make sbc` reproduces (seed 1,
# 100 simulations, each on its model record's `sbc` design and `sbc_fit` settings,
# plus `sbc_fit_by_program`'s for that program).
SBC_RUNS ?= model1-centered model2-noncentered model3-noncentered model4-noncentered model5-noncentered model5_flat-noncentered gene_effect-noncentered model_a-noncentered model_b-noncentered model_lineage-noncentered model_c-noncentered model2-centered model3-centered model4-centered model5_flat-centered model5-centered model_lineage-centered model_c-centered model_a-centered model_b-centered gene_effect-centered

.PHONY: help install models demo by-lineage test test-slow test-cmdstan bench bench-depmap sbc cmdstan render clean

help:
	@echo "make demo       fit the seed's Model 5 on simulated data and show what was recovered"
	@echo "make by-lineage fit three simulated lineages on a local Dask cluster (examples/depmap_by_lineage.py)"
	@echo "make test       install, precompile the models and run the test suite"
	@echo "make test-slow  the longer checks kept out of 'make test'"
	@echo "make models     precompile every model for the current engine"
	@echo "make bench      speed against PyMC and nutpie, and the DepMap sample against Chronos (installs the [bench] extra)"
	@echo "make sbc        rerun the committed SBC runs of docs/sbc-results (100 simulations each; hours)"
	@echo "make cmdstan    install CmdStan through cmdstanpy (needs internet)"
	@echo "make render     re-render stan/*.stan from stan/templates"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

models: $(STAMP)
	$(PY) -m pystanmods.cli.main compile --all --jobs $(JOBS) --pathfinder $(PATHFINDER_PROGRAMS)

demo: $(STAMP)
	$(PY) examples/demo.py

by-lineage: $(STAMP)
	$(PY) examples/depmap_by_lineage.py

# Compiling first, two programs at a time, keeps the compile out of the
# tests' own time and uses both cores.
test: models
	$(PY) -m pytest -ra --durations=20

test-slow: models
	$(PY) -m pytest -ra -m slow

# Says first which CmdStan it tests, or stops in one line when there is none.
test-cmdstan: $(STAMP)
	@$(PY) -m pystanmods.cli.cmdstan_check
	PYSTANMODS_ENGINE=cmdstan $(PY) -m pystanmods.cli.main compile --all --jobs $(JOBS)
	$(PY) -m pytest -ra -m cmdstan

# BENCH_ARGS=--quick gives a smoke run of a few minutes.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m benchmarks.run $(BENCH_ARGS)
	$(PY) -m benchmarks.depmap_compare benchmarks/data/depmap-sample --out benchmarks/results/depmap_sample $(DEPMAP_BENCH_ARGS)

# Chronos against the gene_effect model on the committed DepMap sample only.
bench-depmap: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m benchmarks.depmap_compare benchmarks/data/depmap-sample --out benchmarks/results/depmap_sample $(DEPMAP_BENCH_ARGS)

sbc: models
	$(PY) examples/sbc_every_model.py --sims 100 --seed 1 --out docs/sbc-results --only $(SBC_RUNS); \
	status=$$?; $(PY) -m pystanmods.sbc.committed; exit $$status

cmdstan: $(STAMP)
	$(PY) -m pystanmods.cli.main install-cmdstan

render: $(STAMP)
	$(PY) -m pystanmods.compile.templates

clean:
	rm -rf out build dist *.egg-info .pytest_cache
