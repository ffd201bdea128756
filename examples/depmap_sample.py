"""Real DepMap data end to end: the committed sample release to gene effects.

Prepares the small real DepMap subset committed in ``tests/data/depmap-sample``
(so it runs from a fresh clone), fits Model 5 (sgRNAs nested in genes plus
cell-line effects) and, because that release has expression, Model 4 (gene
and cell-line effects plus a gene-varying RNA slope) on a subset of genes with
the embedded engine, and writes under ``out/depmap/``:

* ``tidy.csv``: the prepared frame (one row per sgRNA x replicate);
* ``gene_effects.csv``: per model and gene, the posterior mean, sd, 90%
  interval and probability that the effect is below zero (depletion);
* ``gene_effects.png``: those effects with their 90% intervals.

Run ``python examples/depmap_sample.py --help`` for the options; it takes a
few minutes (two compilations of about a minute each the first time, cached
afterwards).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=".*ArviZ is undergoing.*", category=FutureWarning)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import pystanmods as psm  # noqa: E402
from pystanmods import depmap  # noqa: E402

RELEASE = Path(__file__).resolve().parent.parent / "tests" / "data" / "depmap-sample"

#: Lineage factors and oncogenes with expression (Model 4 uses these), and
#: common-essential / non-essential controls (Model 5 only: they have no
#: expression in the sample) that bracket the scale of the effects.
GENES = (
    "MYB", "SPI1", "SOX10", "ESR1", "GATA3", "KRAS", "MCL1", "HNRNPH1",
    "AAMP", "ABCE1", "ABCG8", "ACTL7A",
)


def plot_effects(table: pd.DataFrame, path: Path) -> None:
    """Gene effects (posterior mean, 90% interval) per model, genes sorted by Model 5's mean."""
    effects = table[table["variable"] != "beta_g"]
    order = effects[effects["model"] == "model5"].sort_values("mean")["gene"].tolist()
    order += [g for g in effects["gene"].unique() if g not in order]
    y = {g: i for i, g in enumerate(order[::-1])}
    panels = [("effect in the average cell line (logFC)", effects)]
    slopes = table[table["variable"] == "beta_g"]
    if len(slopes):
        panels.append(("Model 4 RNA slope (logFC per sd of expression)", slopes))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.32 * len(order) + 1.5), sharey=True)
    axes = np.atleast_1d(axes)
    colours = {"model5": "tab:blue", "model4": "tab:orange"}
    for ax, (title, rows) in zip(axes, panels):
        for offset, (model, part) in zip((0.15, -0.15), rows.groupby("model", sort=False)):
            ys = part["gene"].map(y).to_numpy() + (offset if rows["model"].nunique() > 1 else 0)
            ax.hlines(ys, part["q5"], part["q95"], color=colours.get(model, "grey"), lw=2)
            ax.plot(part["mean"], ys, "o", ms=4, color=colours.get(model, "grey"), label=model)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_yticks(list(y.values()), list(y.keys()), fontsize=8)
    fig.suptitle("DepMap sample: posterior mean and 90% interval per gene", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", default=str(RELEASE), help="release directory (default: the committed subset)")
    parser.add_argument("--genes", nargs="+", default=list(GENES), help="genes to fit")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--iter", type=int, default=1000, help="warmup and sampling iterations per chain")
    parser.add_argument(
        "--adapt-delta", type=float, default=None, help="NUTS target acceptance (default: each model's own)"
    )
    parser.add_argument("--seed", type=int, default=20240)
    parser.add_argument("--out", default="out/depmap", help="output directory")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    frame, report = depmap.prepare(args.release, genes=args.genes, missing="keep", verbose=True)
    frame.to_csv(out / "tidy.csv", index=False)
    print(f"\nmodels this frame fits: {', '.join(depmap.supported_models(frame))}")

    models = ["model5"] + (["model4"] if "rna" in frame and frame["rna"].notna().any() else [])
    tables = []
    for name in models:
        print(f"\n=== {name} ===")
        start = time.perf_counter()
        usable = depmap.check_frame(frame, name)
        fit = depmap.fit_frame(
            name, usable, engine="pystan", chains=args.chains, iter_warmup=args.iter,
            iter_sampling=args.iter, seed=args.seed, adapt_delta=args.adapt_delta, refresh=0,
        )
        elapsed = time.perf_counter() - start
        print(
            f"{len(usable)} rows, {usable['gene'].nunique()} genes, {usable['cell_line'].nunique()} cell lines; "
            f"sampling {fit.sampling_seconds:.0f} s, compile {fit.compile_seconds:.0f} s"
            f"{' (cached)' if fit.attrs.get('compile_cached') else ''}, total {elapsed:.0f} s"
        )
        print(fit.diagnostics(warn=False))
        # The gene effect, and the per-gene slopes where the model has them (Model 4's RNA slope).
        record = psm.get_model(name).record
        slopes = [v for v in record.slopes if "gene" in record.dims()[v]]
        tables.append(fit.gene_effects(variables=[*record.gene_effects, *slopes]))

    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / "gene_effects.csv", index=False)
    print("\nGene effects (posterior mean, sd, 90% interval, P(effect < 0))")
    print(table.round(3).to_string(index=False))
    plot_effects(table, out / "gene_effects.png")
    print(f"\nwrote {out / 'tidy.csv'}, {out / 'gene_effects.csv'} and {out / 'gene_effects.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
