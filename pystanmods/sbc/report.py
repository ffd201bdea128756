"""SBC output: tables, rank histograms, ECDF-difference plots and a Markdown report."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pystanmods.sbc.core import SBCResult

#: Panels per row in a variable's grid of plots.
COLUMNS = 4


def _grid(n: int) -> tuple[Any, np.ndarray]:
    import matplotlib.pyplot as plt

    ncols = min(COLUMNS, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_variable(result: SBCResult, variable: str, directory: Path) -> list[Path]:
    """Rank histogram and ECDF-difference PNGs for every scalar of one variable."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    ranks = result.ranks[result.ranks["variable"] == variable]
    parameters = list(dict.fromkeys(ranks["parameter"]))
    tests = result.uniformity.set_index("parameter")
    paths = []

    fig, axes = _grid(len(parameters))
    for ax, parameter in zip(axes, parameters):
        u = ranks.loc[ranks["parameter"] == parameter, "u"].to_numpy()
        bins = int(tests.loc[parameter, "bins"])
        ax.hist(u, bins=bins, range=(0, 1), color="#4c72b0", edgecolor="white")
        # Central 1 - alpha range of one bin's count under uniformity (binomial).
        low, high = stats.binom.interval(1 - result.alpha, len(u), 1 / bins)
        ax.axhspan(low, high, color="grey", alpha=0.25, lw=0)
        ax.axhline(len(u) / bins, color="grey", lw=1)
        ax.set_title(f"{parameter}  p_holm={tests.loc[parameter, 'p_holm']:.3g}", fontsize=9)
        ax.set_xlabel("normalised rank u", fontsize=8)
    fig.suptitle(f"{result.model} {result.parameterization}: rank histograms of {variable}", fontsize=10)
    fig.tight_layout()
    path = directory / f"{variable}_ranks.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)

    fig, axes = _grid(len(parameters))
    for ax, parameter in zip(axes, parameters):
        u = ranks.loc[ranks["parameter"] == parameter, "u"].to_numpy()
        with warnings.catch_warnings():
            # u is continuous by construction (a randomised PIT), which is
            # what ArviZ assumes for its bands and warns about.
            warnings.filterwarnings("ignore", message="Assuming variable is continuous")
            az.plot_ecdf(
                np.array(u), cdf=stats.uniform(0, 1).cdf, difference=True, confidence_bands=True,
                ci_prob=1 - result.alpha, ax=ax, random_state=0,
                # A fixed grid on [0, 1], so every panel's band covers the same points.
                eval_points=np.linspace(0.0, 1.0, 101),
            )
        ax.set_title(parameter, fontsize=9)
        ax.set_xlabel("normalised rank u", fontsize=8)
    fig.suptitle(
        f"{result.model} {result.parameterization}: ECDF - uniform CDF of {variable}, "
        f"simultaneous {1 - result.alpha:.0%} bands", fontsize=10,
    )
    fig.tight_layout()
    path = directory / f"{variable}_ecdf.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)
    return paths


def markdown(result: SBCResult) -> str:
    """The report: verdict, settings, diagnostics and the per-parameter tests."""
    from pystanmods.sbc import core

    d = result.diagnostics_summary()
    failed = result.fits[result.fits["status"] != "ok"]
    lines = [
        f"# SBC of {result.model} ({result.parameterization})",
        "",
        f"**Verdict:** {result.verdict()}",
        "",
        "## Settings",
        "",
        "```",
        json.dumps(result.settings, indent=2, default=str),
        "```",
        "",
        "## Method",
        "",
        " ".join(core.__doc__.split("Thinning:", 1)[1].split()),
        "",
        "## Fits",
        "",
        *(f"- {key.replace('_', ' ')}: {value:.4g}" if isinstance(value, float) else
          f"- {key.replace('_', ' ')}: {value}" for key, value in d.items()),
        "",
        "Ranks from fits with divergences or high R-hat are not evidence of calibration; "
        "they are counted above, not dropped.",
        "",
    ]
    if len(failed):
        lines += ["Failed fits (left out of the ranks):", ""]
        lines += [f"- sim {r.sim} (seed {r.seed}): {r.error}" for r in failed.itertuples()]
        lines.append("")
    lines += ["## Uniformity per parameter", "", markdown_table(result.uniformity), ""]
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame`` (floats to 4 significant digits), without tabulate."""
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_report(result: SBCResult, out: Path, plots: bool = True) -> Path:
    """Write the tables, ``report.md`` and (with ``plots``) ``plots/*.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    result.ranks.to_csv(out / "ranks.csv", index=False)
    result.fits.to_csv(out / "fits.csv", index=False)
    result.uniformity.to_csv(out / "uniformity.csv", index=False)
    if plots and len(result.ranks):
        directory = out / "plots"
        directory.mkdir(exist_ok=True)
        for variable in dict.fromkeys(result.ranks["variable"]):
            plot_variable(result, variable, directory)
    (out / "report.md").write_text(markdown(result))
    return out
