"""The committed SBC runs, read back from their folders, and the README's table of them.

``make sbc`` writes each run of the Makefile's ``SBC_RUNS`` into
``docs/sbc-results/<label>/``. The README's SBC table is rendered from those
folders' ``fits.csv``, ``uniformity.csv`` and ``report.md`` by :func:`table`,
never typed by hand, and ``tests/test_sbc.py`` checks that it still matches
them line for line. ``python -m pystanmods.sbc.committed`` rewrites it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from pystanmods.sbc.core import RHAT_LIMIT, SBCResult
from pystanmods.sbc.report import markdown_table

ROOT = Path(__file__).resolve().parents[2]
#: The README lines between which :func:`table` stands.
BEGIN = "<!-- sbc-table: rendered by `python -m pystanmods.sbc.committed` from docs/sbc-results; tests/test_sbc.py checks it -->"
END = "<!-- /sbc-table -->"
#: Sampler settings that are the same in every committed run, left out of the table.
COMMON = {"n_sims", "seed", "sizes", "prior_scale", "alpha", "max_retries", "engine"}


def load(folder: Path) -> SBCResult:
    """A committed run as an :class:`~pystanmods.sbc.core.SBCResult`, ranks included.

    Raises
    ------
    FileNotFoundError
        If one of ``report.md``, ``fits.csv``, ``uniformity.csv`` or
        ``ranks.csv`` is missing.
    """
    report = (folder / "report.md").read_text()
    title = re.match(r"# SBC of (\S+) \((\S+)\)", report)
    settings = json.loads(re.search(r"```\n(\{.*?\})\n```", report, re.S).group(1))
    return SBCResult(
        model=title.group(1),
        parameterization=title.group(2),
        ranks=pd.read_csv(folder / "ranks.csv"),
        fits=pd.read_csv(folder / "fits.csv"),
        uniformity=pd.read_csv(folder / "uniformity.csv"),
        alpha=float(settings["alpha"]),
        settings=settings,
        out=folder,
    )


def makefile_runs(root: Path = ROOT) -> list[str]:
    """The labels of the Makefile's ``SBC_RUNS``, in its order."""
    makefile = (root / "Makefile").read_text()
    return re.search(r"^SBC_RUNS \?= (.*)$", makefile, re.M).group(1).split()


def _sizes(sizes: dict) -> str:
    if not sizes:
        return "record default"
    return ", ".join(f"{k}={v}" if not isinstance(v, list) else f"{k}={'/'.join(map(str, v))}"
                     for k, v in sizes.items())


def _sampler(settings: dict) -> str:
    fit = {k: v for k, v in settings.items() if k not in COMMON}
    text = f"{fit.pop('chains')} x ({fit.pop('iter_warmup')} + {fit.pop('iter_sampling')})"
    return ", ".join([text, *(f"{k} {v}" for k, v in fit.items())])


def row(label: str, result: SBCResult) -> dict[str, str]:
    """One run's line of the table; every figure comes from its committed files."""
    d = result.diagnostics_summary()
    used = d["fits"] - d["failed"]
    return {
        "run": f"`{label}`",
        "sizes": _sizes(result.settings["sizes"]),
        "sims": str(result.settings["n_sims"]),
        "sampler": _sampler(result.settings),
        "failed": str(d["failed"]),
        "fits with divergences": str(d["with_divergences"]),
        f"fits with R-hat >= {RHAT_LIMIT}": f"{d['rhat_over_1.01']} (max {d['max_rhat']:.3f})",
        "not converged": f"{d['nonconverged']} of {used} ({d['nonconverged_share']:.0%})",
        "median min bulk ESS": f"{d['median_min_ess_bulk']:.0f}",
        "scalars": str(len(result.uniformity)),
        "min Holm p": f"{result.uniformity['p_holm'].min():.2g}",
        "verdict": result.status,
    }


def table(root: Path = ROOT) -> str:
    """The Markdown table of every run in ``SBC_RUNS``, from ``docs/sbc-results``."""
    folder = root / "docs" / "sbc-results"
    return markdown_table(pd.DataFrame([row(label, load(folder / label)) for label in makefile_runs(root)]))


def _span(text: str) -> tuple[int, int]:
    """Where the table stands in ``text``: after :data:`BEGIN`, up to :data:`END`."""
    return text.index(BEGIN) + len(BEGIN), text.index(END)


def readme_block(text: str) -> str:
    """The lines of ``text`` between :data:`BEGIN` and :data:`END`."""
    start, stop = _span(text)
    return text[start:stop].strip("\n")


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, stop = _span(text)
    readme.write_text(f"{text[:start]}\n{table()}\n{text[stop:]}")
    print(f"{readme}: SBC table of {len(makefile_runs())} runs rendered")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
