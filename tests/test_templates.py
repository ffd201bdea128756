"""The committed Stan programs: rendered from the templates, valid Stan 2.35, complete."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pytest

from pystanmods.compile.templates import rendered_programs
from pystanmods.models import PARAMETERIZATIONS, all_models
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


#: A top-level declaration in a program block: its type (with any size) and name.
DECLARATION = re.compile(
    r"^  (?P<type>(?:array\[[^\]]*\]\s+)?(?:vector|row_vector|matrix|real|int|simplex)(?:<[^>]*>)?(?:\[[^\]]*\])?)"
    r"\s+(?P<name>\w+)\s*[;=]",
    flags=re.M,
)


def block(code: str, name: str) -> str:
    """The text of a top-level block (``parameters``, ``generated quantities``, ...), or ''."""
    match = re.search(rf"^{name} {{\n(.*?)^}}", code, flags=re.M | re.S)
    return match.group(1) if match else ""


def declared(code: str, name: str) -> dict[str, bool]:
    """Variables declared at the top of a block, to whether they are non-scalar."""
    return {m["name"]: "[" in m["type"] for m in DECLARATION.finditer(block(code, name))}


@pytest.mark.parametrize("model", [m for m in all_models() if m.hierarchical], ids=lambda m: m.name)
def test_programs_sample_the_coordinates_their_record_declares(model) -> None:
    # The record's parameterization rule, read against the parameters blocks:
    # non-centered samples <effect>_z, centered samples <effect> (or
    # <effect>_raw when it sums to zero). This replaces `"_z" in noncentered`,
    # which every program passed through its sum_to_zero_helmert function.
    for parameterization in PARAMETERIZATIONS:
        parameters = declared(PROGRAMS[model.program_name(parameterization)], "parameters")
        for effect, sampled in model.record.sampled(parameterization).items():
            assert sampled in parameters, f"{model.name} {parameterization}: {sampled} not sampled"
            others = {effect, f"{effect}_z", f"{effect}_raw"} - {sampled}
            assert not others & set(parameters), f"{model.name} {parameterization} samples {others & set(parameters)}"


@pytest.mark.parametrize("stem", sorted(PROGRAMS))
def test_every_non_scalar_variable_is_declared_in_the_record(stem: str) -> None:
    # An undeclared variable used to get ArviZ's x_dim_0; now fit() refuses it,
    # so every program must be covered here, before anything is compiled.
    model = next(m for m in all_models() if stem in {m.program_name(p) for p in PARAMETERIZATIONS})
    code = PROGRAMS[stem]
    written = {}
    for name in ("parameters", "transformed parameters", "generated quantities"):
        written.update(declared(code, name))
    non_scalar = {n for n, array in written.items() if array} - {"log_lik", "y_rep"}
    dims = model.record.dims()
    assert non_scalar - set(dims) == set(), f"{stem}: declare {sorted(non_scalar - set(dims))} in the record"
    # And no declared result is missing from the program.
    for name in (*model.record.gene_effects, *model.record.slopes, *model.record.results):
        assert name in written, f"{stem}: the record names {name}, which the program does not write"


def test_declaration_parser_sees_a_missing_coordinate() -> None:
    # The two tests above would pass vacuously if the parser found nothing.
    code = PROGRAMS["model5_noncentered"]
    assert set(declared(code, "parameters")) >= {"epsilon_g_z", "alpha_s_z", "beta_c_z", "sigma"}
    broken = code.replace("vector[S] alpha_s_z;", "vector[S] alpha_s;")
    assert "alpha_s_z" not in declared(broken, "parameters")
    assert declared(code, "transformed parameters")["beta_c"] is True


STAN_FAMILY = {"half-normal": "halfnormal"}
NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
CONSTANT = rf"(?:{NUMBER}|log\(\s*{NUMBER}\s*\))"
PRIOR = re.compile(
    rf"(?<![\w(])(\w+)\s*~\s*(half-normal|normal|exponential|lognormal|beta)\(\s*({CONSTANT})\s*(?:,\s*({CONSTANT})\s*)?\)"
)


def _value(text: str) -> float:
    return float(np.log(float(text[4:-1]))) if text.startswith("log(") else float(text)


def constant_priors(text: str, positive: set[str], data: Mapping[str, float] | None = None) -> dict[str, tuple]:
    """Priors with constant arguments in ``text``, in the form of ``ModelRecord.priors``.

    ``data`` gives values to data fields used as a prior's constants
    (:attr:`Model.prior_data`); other names make a prior non-constant.
    """
    for name, value in (data or {}).items():
        text = re.sub(rf"\b{name}\b", repr(float(value)), text)
    found: dict[str, tuple] = {}
    for name, family, first, second in PRIOR.findall(text):
        family = STAN_FAMILY.get(family, family)
        if family == "normal" and name in positive:
            assert _value(first) == 0, f"{name}: a normal with location {first} on a positive parameter"
            family = "halfnormal"
        if family == "halfnormal":
            found[name] = ("halfnormal", _value(second))
        elif family == "exponential":
            found[name] = ("exponential", _value(first))
        else:
            found[name] = (family, _value(first), _value(second))
    return found


@pytest.mark.parametrize("stem", sorted(PROGRAMS))
def test_priors_agree_in_header_model_block_and_record(stem: str) -> None:
    model = next(m for m in all_models() if stem in {m.program_name(p) for p in PARAMETERIZATIONS})
    code = PROGRAMS[stem]
    positive = set(re.findall(r"real<lower=0>\s+(\w+)\s*[;=]", code))
    header = constant_priors(code[: code.index("*/")], positive)
    model_block = constant_priors(block(code, "model"), positive, model.prior_data)
    record = {k: tuple(float(x) if not isinstance(x, str) else x for x in v) for k, v in model.record.priors.items()}
    assert model_block == record, f"{stem}: model block {model_block} against record {record}"
    assert header == record, f"{stem}: header {header} against record {record}"


def test_prior_parity_sees_a_changed_header() -> None:
    # The check above, shown to fail on a header that disagrees with the model block.
    code = PROGRAMS["model5_centered"]
    positive = set(re.findall(r"real<lower=0>\s+(\w+)\s*[;=]", code))
    header = code[: code.index("*/")]
    assert constant_priors(header, positive)["mu_epsilon"] == ("normal", 0.0, 5.0)
    changed = header.replace("mu_epsilon    ~ normal(0, 5)", "mu_epsilon    ~ normal(0, 2)")
    assert constant_priors(changed, positive)["mu_epsilon"] == ("normal", 0.0, 2.0)


def test_prior_parity_reads_priors_set_by_data() -> None:
    # Model B's sigma_zeta prior takes its constants from data: without them
    # the parser sees no prior, and with another instance's it sees that one.
    from pystanmods.models.ragged import ModelB

    model_block = block(PROGRAMS["model_b_noncentered"], "model")
    assert "sigma_zeta" not in constant_priors(model_block, set())
    assert constant_priors(model_block, set(), ModelB().prior_data)["sigma_zeta"] == ("lognormal", float(np.log(0.75)), 0.5)
    other = ModelB(sigma_zeta_prior_median=1.5, sigma_zeta_prior_log_sd=1.0).prior_data
    assert constant_priors(model_block, set(), other)["sigma_zeta"] == ("lognormal", float(np.log(1.5)), 1.0)
