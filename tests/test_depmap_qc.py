"""Per-cell-line control separation (NNMD, AUROC) of a gene-effect matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pystanmods.data import DataError
from pystanmods.depmap.qc import CONTROL_FILES, auroc, control_separation, nnmd, read_controls

SAMPLE = Path(__file__).parent / "data" / "depmap-sample"


def test_auroc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(7)
    pos = rng.normal(-1.0, 0.5, 40)
    neg = np.concatenate([rng.normal(0.0, 0.5, 59), pos[:1]])  # one tie
    pairs = (neg[:, None] > pos[None, :]).mean() + 0.5 * (neg[:, None] == pos[None, :]).mean()
    assert auroc(pos, neg) == pytest.approx(pairs, abs=1e-12)


def test_auroc_and_nnmd_orientation() -> None:
    # Essentials below nonessentials is good separation: AUROC near 1, NNMD negative.
    pos, neg = np.array([-2.0, -1.5, -1.0]), np.array([-0.1, 0.0, 0.1, 0.2])
    assert auroc(pos, neg) == 1.0
    assert auroc(neg, pos) == 0.0
    # median(neg) = 0.05, MAD(neg) = 0.1, median(pos) = -1.5.
    assert nnmd(pos, neg) == pytest.approx((-1.5 - 0.05) / 0.1)


def test_nan_is_ignored_and_degenerate_inputs_give_nan() -> None:
    assert auroc(np.array([np.nan, -1.0]), np.array([0.0, np.nan])) == 1.0
    assert np.isnan(auroc(np.array([np.nan]), np.array([0.0])))
    assert np.isnan(nnmd(np.array([-1.0]), np.array([0.0, 0.0, 0.0])))  # MAD 0


def test_control_separation_per_line() -> None:
    rng = np.random.default_rng(3)
    ess = [f"E{i} ({i})" for i in range(30)]
    non = [f"N{i} ({100 + i})" for i in range(30)]
    other = ["X (999)"]
    values = np.column_stack(
        [rng.normal(-1, 0.3, (2, 30)), rng.normal(0, 0.3, (2, 30)), np.zeros((2, 1))]
    )
    values[1, :30] = rng.normal(0, 0.3, 30)  # line B: essentials look like nonessentials
    matrix = pd.DataFrame(values, index=["ACH-A", "ACH-B"], columns=ess + non + other)
    matrix.iloc[0, 0] = np.nan
    qc = control_separation(matrix, ess + ["not in matrix (1)"], non)
    assert list(qc.index) == ["ACH-A", "ACH-B"]
    assert qc.loc["ACH-A", "auroc"] > 0.95 and qc.loc["ACH-A", "nnmd"] < -2
    assert 0.3 < qc.loc["ACH-B", "auroc"] < 0.75
    assert qc.loc["ACH-A", "n_essential"] == 29 and qc.loc["ACH-B", "n_essential"] == 30


def test_control_separation_needs_both_sets() -> None:
    matrix = pd.DataFrame([[0.0, 1.0]], index=["ACH-A"], columns=["A (1)", "B (2)"])
    with pytest.raises(DataError, match="0 essential and 1 nonessential"):
        control_separation(matrix, ["Z (9)"], ["B (2)"])


def test_read_controls_from_the_release(tmp_path: Path) -> None:
    essential = read_controls(SAMPLE / CONTROL_FILES["essential"])
    assert essential[0] == "AAMP (14)" and len(essential) == len(set(essential)) == 16  # the subset keeps 16
    bad = tmp_path / "bad.csv"
    bad.write_text("Symbol\nA\n")
    with pytest.raises(DataError, match="'Gene' column"):
        read_controls(bad)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_controls(tmp_path / "missing.csv")
