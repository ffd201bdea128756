"""Reading httpstan's fit files without PyStan: message filtering and layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from pystanmods.engines.httpstan_fits import payloads, read_chain, split_variables

SAMPLER_COLUMNS = ["lp__", "accept_stat__", "stepsize__", "treedepth__", "n_leapfrog__", "divergent__", "energy__"]


def _fit_file(path: Path, rows: list[dict[str, float]], extra: list[dict] | None = None) -> Path:
    messages = [
        {"version": 1, "topic": "logger", "values": ["info:Iteration: 1 / 4 [ 25%]  (Warmup)"]},
        {"version": 1, "topic": "logger", "values": ["info:"]},
        {"version": 1, "topic": "logger", "values": ["error:Informational Message: proposal rejected"]},
        {"version": 1, "topic": "sample", "values": ["Adaptation terminated"]},
        *(extra or []),
    ]
    for row in rows:
        messages.append({"version": 1, "topic": "sample", "values": row})
        messages.append({"version": 1, "topic": "diagnostic", "values": {"lp__": 0.0, "p_x": 1.0, "g_x": 2.0}})
    # httpstan writes one gzip member per socket; the reader must take all.
    text = [json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in messages]
    half = len(text) // 2
    path.write_bytes(gzip.compress(b"".join(text[:half])) + gzip.compress(b"".join(text[half:])))
    return path


def _row(i: int, x: list[float]) -> dict[str, float]:
    return {**{c: float(i) for c in SAMPLER_COLUMNS}, "sigma": 1.0 + i,
            **{f"x.{r}.{c}": v for (c, r), v in zip([(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)], x)}}


def test_draws_and_messages_are_read_across_gzip_members(tmp_path: Path) -> None:
    rows = [_row(i, [i + 0.1 * k for k in range(6)]) for i in range(3)]
    rows[1]["sigma"] = float("nan")  # Stan writes NaN, which plain JSON parsers refuse
    chain = read_chain(_fit_file(tmp_path / "f.jsonlines.gz", rows), num_draws=3)
    assert chain.columns[:7] == SAMPLER_COLUMNS and chain.draws.shape == (3, 14)
    assert np.isnan(chain.draws[1, 7]) and chain.draws[2, 7] == 3.0
    # Progress and blank lines are routine; the rejection notice is kept.
    assert chain.messages == ["error:Informational Message: proposal rejected"]


def test_a_short_or_long_chain_is_an_error(tmp_path: Path) -> None:
    path = _fit_file(tmp_path / "f.jsonlines.gz", [_row(i, [0.0] * 6) for i in range(3)])
    with pytest.raises(RuntimeError, match="3 draws read, 4 expected"):
        read_chain(path, num_draws=4)
    with pytest.raises(RuntimeError, match="more than the 2 draws expected"):
        read_chain(path, num_draws=2)


def test_columns_become_arrays_in_column_major_order() -> None:
    # x is 2 x 3; Stan lists x.1.1, x.2.1, x.1.2, ... (rows vary fastest).
    columns = [*SAMPLER_COLUMNS, "sigma", "x.1.1", "x.2.1", "x.1.2", "x.2.2", "x.1.3", "x.2.3", "v.1", "v.2"]
    x = np.arange(6.0).reshape(2, 3) * 10
    draw = np.concatenate([np.zeros(7), [0.5], x.ravel(order="F"), [7.0, 8.0]])
    draws = np.stack([np.stack([draw, draw + 1]), np.stack([draw + 2, draw + 3])])  # 2 chains x 2 draws
    out = split_variables(columns, draws, ["sigma", "x", "v"], [[], [2, 3], [2]])
    assert out["x"].shape == (2, 2, 2, 3) and out["sigma"].shape == (2, 2) and out["v"].shape == (2, 2, 2)
    np.testing.assert_array_equal(out["x"][0, 0], x)
    np.testing.assert_array_equal(out["x"][1, 1], x + 3)
    np.testing.assert_array_equal(out["v"][1, 0], [9.0, 10.0])
    with pytest.raises(RuntimeError, match="column 8 of the draws is 'x.1.1', expected 'v.1'"):
        split_variables(columns, draws, ["sigma", "v", "x"], [[], [2], [2, 3]])
    with pytest.raises(RuntimeError, match="2 columns of the draws belong to no variable"):
        split_variables(columns, draws, ["sigma", "x"], [[], [2, 3]])


def test_payloads_match_pystan_chain_numbering() -> None:
    made = payloads({"N": 1}, 5, {"num_chains": 3, "num_samples": 10, "init": [{"a": 1}, {"a": 2}, {"a": 3}]})
    assert [p["chain"] for p in made] == [1, 2, 3] and [p["init"] for p in made] == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert all(p["random_seed"] == 5 and p["num_samples"] == 10 and "num_chains" not in p for p in made)
    assert "random_seed" not in payloads({}, None, {"num_chains": 1})[0]
    with pytest.raises(ValueError, match="init: 1 initial-value sets for 2 chains"):
        payloads({}, 1, {"num_chains": 2, "init": [{}]})
