"""What a benchmark run reports, how it is judged, and how it is written out.

Pure Python and ArviZ only, so that the report logic is testable without the
peers installed.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: R-hat at or above this flags a run as not trustworthy (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: The tool whose runs are compared with every peer.
OURS = "pystanmods"


@dataclass
class RunResult:
    """One sampler run on one data set.

    Attributes
    ----------
    model, tool, parameterization : str
        E.g. ``model5``, ``nutpie``, ``seed`` or ``identified``.
    n_obs, chains, warmup, draws : int
        Data size and sampler settings (equal across a comparison).
    min_ess_bulk : float
        Minimum bulk ESS over all free parameters (every scalar of every
        parameter the sampler moves, on the constrained scale; rank-based bulk
        ESS does not depend on the monotone transform).
    worst_parameter : str
        Where that minimum is.
    sampling_seconds : float
        Wall time of warmup plus sampling.
    max_rhat : float
        Maximum rank-normalised split R-hat over the same scalars.
    divergences : int
        Divergent transitions after warmup.
    compile_seconds : float
        Compile and setup time, reported apart from sampling.
    """

    model: str
    tool: str
    parameterization: str
    n_obs: int
    chains: int
    warmup: int
    draws: int
    min_ess_bulk: float = math.nan
    worst_parameter: str = ""
    sampling_seconds: float = math.nan
    max_rhat: float = math.nan
    divergences: int = 0
    compile_seconds: float = math.nan
    leapfrog_steps: int = 0
    notes: str = ""
    error: str = ""

    @property
    def ess_per_second(self) -> float:
        """Minimum bulk ESS per sampling wall second."""
        if not self.sampling_seconds or math.isnan(self.sampling_seconds):
            return math.nan
        return self.min_ess_bulk / self.sampling_seconds

    @property
    def trustworthy(self) -> bool:
        """False when the run diverged, failed, or its R-hat is ``>= RHAT_MAX``."""
        return not self.error and self.divergences == 0 and self.max_rhat < RHAT_MAX

    @property
    def label(self) -> str:
        return f"{self.tool} ({self.parameterization})"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ess_per_second=self.ess_per_second, trustworthy=self.trustworthy)
        return out


@dataclass
class Ratio:
    """ESS/s of our run over a peer's, on the same model and data.

    ``counts_as_win`` is True only when the ratio is at least 1 and our run is
    trustworthy: an untrustworthy ESS/s is no win, however high.
    """

    model: str
    ours: str
    peer: str
    ratio: float
    ours_trustworthy: bool
    peer_trustworthy: bool
    counts_as_win: bool = field(init=False)

    def __post_init__(self) -> None:
        self.counts_as_win = bool(self.ours_trustworthy and self.ratio >= 1)


def free_parameter_summary(posterior: Any, names: Sequence[str]) -> tuple[float, str, float]:
    """Minimum bulk ESS, where it is, and maximum R-hat over ``names``.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws with ``chain`` and ``draw`` dimensions.
    names : sequence of str
        The free parameters. Scalars that never move (the last element of a
        zero-sum vector of length 1) are skipped.
    """
    import arviz as az

    min_ess, worst, max_rhat = math.inf, "", -math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in names:
            values = posterior[name]
            if values.size == 0 or float(values.std()) == 0:
                continue
            ess = np.asarray(az.ess(values.to_dataset(name="x"), method="bulk")["x"].values, dtype=float)
            rhat = np.asarray(az.rhat(values.to_dataset(name="x"))["x"].values, dtype=float)
            if np.all(np.isnan(ess)):
                continue
            i = int(np.nanargmin(ess))
            if ess.flat[i] < min_ess:
                min_ess = float(ess.flat[i])
                position = np.unravel_index(i, ess.shape) if ess.ndim else ()
                worst = name + (f"[{','.join(map(str, position))}]" if position else "")
            max_rhat = max(max_rhat, float(np.nanmax(rhat)))
    return min_ess, worst, max_rhat


def stan_parameter_names(code: str) -> list[str]:
    """Names declared in a Stan program's ``parameters`` block (its free parameters)."""
    match = re.search(r"^parameters\s*\{(.*?)^\}", code, flags=re.S | re.M)
    if not match:
        return []
    names = []
    for statement in match.group(1).split(";"):
        statement = re.sub(r"//.*", "", statement).strip()
        if statement:
            names.append(statement.split()[-1])
    return names


def ratios(results: Iterable[RunResult], ours: str = OURS) -> list[Ratio]:
    """Our ESS/s over each peer's, model by model.

    Every run of ``ours`` is compared with every run of another tool on the
    same model; failed runs are left out.
    """
    results = [r for r in results if not r.error]
    out = []
    for mine in (r for r in results if r.tool == ours):
        for peer in (r for r in results if r.tool != ours and r.model == mine.model):
            value = mine.ess_per_second / peer.ess_per_second if peer.ess_per_second else math.inf
            out.append(Ratio(mine.model, mine.label, peer.label, value, mine.trustworthy, peer.trustworthy))
    return out


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def markdown_table(results: Sequence[RunResult], ratio_rows: Sequence[Ratio]) -> str:
    """A short markdown table of the runs, then the ratios."""
    lines = [
        "| model | N | run | min bulk ESS | sampling s | ESS/s | max R-hat | divergences | compile s | trustworthy |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.n_obs} | {r.label} | failed: {r.error[:60]} | | | | | | no |")
            continue
        lines.append(
            f"| {r.model} | {r.n_obs} | {r.label} | {_fmt(r.min_ess_bulk, 0)} ({r.worst_parameter}) "
            f"| {_fmt(r.sampling_seconds)} | {_fmt(r.ess_per_second)} | {r.max_rhat:.3f} | {r.divergences} "
            f"| {_fmt(r.compile_seconds)} | {'yes' if r.trustworthy else '**no**'} |"
        )
    if ratio_rows:
        lines += ["", "| model | ours | peer | ESS/s ratio | peer trustworthy | counts as a win |", "|---|---|---|---:|---|---|"]
        for q in ratio_rows:
            lines.append(
                f"| {q.model} | {q.ours} | {q.peer} | {_fmt(q.ratio, 2)}× | {'yes' if q.peer_trustworthy else 'no'} "
                f"| {'yes' if q.counts_as_win else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def write_results(
    directory: Path, stem: str, results: Sequence[RunResult], meta: dict[str, Any]
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.csv`` and ``<stem>.md`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ratio_rows = ratios(results)
    rows = [r.as_dict() for r in results]
    paths = {kind: directory / f"{stem}.{kind}" for kind in ("json", "csv", "md")}
    paths["json"].write_text(
        json.dumps({"meta": meta, "runs": rows, "ratios": [asdict(q) for q in ratio_rows]}, indent=2, default=str)
    )
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)
    paths["md"].write_text(markdown_table(results, ratio_rows))
    return paths


def write_json(out: Path, name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``out/name`` (creating ``out``), print it, return the path."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=float)
    path = out / name
    path.write_text(text + "\n")
    print(text)
    return path
