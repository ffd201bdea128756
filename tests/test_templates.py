"""The committed Stan programs: rendered from the templates, valid Stan 2.35, complete."""

from __future__ import annotations

import re

import pytest

from pystanmods.compile.templates import rendered_programs
from pystanmods.models import all_models
from pystanmods.models.base import stan_dir

PROGRAMS = rendered_programs()


def test_every_model_has_committed_programs() -> None:
    committed = {p.stem for p in stan_dir().glob("*.stan")}
    assert set(PROGRAMS) == committed, "run `make render` and commit stan/*.stan"


@pytest.mark.parametrize("stem", sorted(PROGRAMS))
def test_rendering_reproduces_committed_file(stem: str) -> None:
    committed = (stan_dir() / f"{stem}.stan").read_text()
    assert PROGRAMS[stem] == committed, f"stan/{stem}.stan differs from its template: run `make render`"


@pytest.mark.parametrize("stem", sorted(PROGRAMS))
def test_program_compiles_with_stanc_2_35(stem: str) -> None:
    # httpstan's bundled stanc is the Stan 2.35 compiler; this runs stanc only
    # (Stan to C++), which takes a fraction of a second.
    import httpstan.compile

    from pystanmods.engines.pystan import _with_stanc_retries

    code = PROGRAMS[stem]
    cpp, warnings = _with_stanc_retries(httpstan.compile.compile, code, f"model_{stem}")
    assert "class model_" in cpp
    assert not re.search(r"sum_to_zero_vector\s*\[", code)  # a Stan 2.36 type


@pytest.mark.parametrize("stem", sorted(PROGRAMS))
def test_program_has_header_outputs_and_flags(stem: str) -> None:
    code = PROGRAMS[stem]
    assert code.startswith("/*"), "each program starts with a comment giving its equations"
    assert "~" in code.split("*/")[0], "the header states the model's distributions"
    gq = code[code.index("generated quantities") :]
    for name in ("log_lik", "y_rep"):
        assert re.search(rf"vector\[[^\]]*\] {name};", gq), f"{name} missing from generated quantities"
    assert "int<lower=0, upper=1> compute_log_lik;" in code
    assert "int<lower=0, upper=1> compute_y_rep;" in code


@pytest.mark.parametrize("stem", sorted(PROGRAMS))
def test_likelihood_is_vectorised(stem: str) -> None:
    model_block = PROGRAMS[stem].split("model {", 1)[1].split("generated quantities", 1)[0]
    # No loop over observations in the model block: the likelihood is one vector statement.
    assert not re.search(r"for \(\w+ in 1:N\)", model_block)


def test_hierarchical_models_have_both_parameterizations_and_differ() -> None:
    for model in all_models():
        if not model.hierarchical:
            continue
        centered = PROGRAMS[model.program_name("centered")]
        noncentered = PROGRAMS[model.program_name("noncentered")]
        assert centered != noncentered
        assert "_z" in noncentered
