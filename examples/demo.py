"""The main job (`make demo`): the seed's Model 5, simulated, fitted and checked.

Simulates the seed notebook's Model 5 data (20 cell lines, 5 genes with 1 to
5 sgRNAs, its fixed alpha_s, sigma_beta = 1, sigma = 0.5), fits the
identified program recommended for such data-rich groups (centered) on
the default engine, prints the
diagnostics and a recovery table, and writes two plots to ``out/``.

Run ``python examples/demo.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=".*ArviZ is undergoing.*", category=FutureWarning)

import arviz as az  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import pystanmods as psm  # noqa: E402


def plot_recovery(table: pd.DataFrame, path: Path) -> None:
    """Posterior mean and 90% interval of every parameter against its true value."""
    interval = [c for c in table.columns if c.startswith("q")]
    rows = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    ax.hlines(y, rows[interval[0]], rows[interval[1]], color="tab:blue", lw=2, label="90% interval")
    ax.plot(rows["mean"], y, "o", color="tab:blue", ms=4, label="posterior mean")
    ax.plot(rows["true"], y, "x", color="tab:red", ms=7, label="true value")
    names = [f"{p}[{i}]" if i else p for p, i in zip(rows["parameter"], rows["index"])]
    ax.set_yticks(y, names, fontsize=7)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("value")
    ax.set_title("Model 5: posterior against truth")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_ppc(fit: psm.StanFit, path: Path) -> None:
    """Posterior predictive check of the logFC distribution."""
    axes = az.plot_ppc(fit.idata, num_pp_samples=100, random_seed=1)
    fig = np.ravel(axes)[0].figure
    fig.suptitle("Model 5: posterior predictive check (logFC)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("pystan", "cmdstan"), default=None, help="default: CmdStan if installed")
    parser.add_argument(
        "--parameterization", choices=("recommended", "noncentered", "centered"), default="recommended",
        help="default: the model's recommended one (centered for Model 5's data-rich groups)",
    )
    parser.add_argument("--seed", type=int, default=103, help="the seed notebook's RANDOM_SEED")
    parser.add_argument("--out", default="out", help="directory for the plots")
    args = parser.parse_args(argv)

    model = psm.get_model("model5")
    simulation = model.simulate(seed=args.seed)
    data = simulation.data
    print(
        f"Model 5 data: {len(data)} observations, {data.gene.nunique()} genes, "
        f"{data.sgrna.nunique()} sgRNAs, {data.cell_line.nunique()} cell lines"
    )
    fit = psm.fit(model, data, parameterization=args.parameterization, engine=args.engine, seed=args.seed)
    print(f"\n{fit}  (compile {fit.compile_seconds:.0f} s{', cached' if fit.attrs.get('compile_cached') else ''})")

    print("\nDiagnostics")
    print(fit.diagnostics(warn=False))

    table = fit.recovery(simulation.truth)
    shown = table.assign(index=table["index"].fillna("")).round(3)
    print("\nRecovery: true value, posterior mean and 90% interval")
    print(
        "(the model's cell-line effects sum to zero, so the truth is reported on that footing:\n"
        " beta_c centred by its sample mean, that mean added to every alpha_s)"
    )
    print(shown.to_string(index=False))
    covered = int(table["covered"].sum())
    print(f"\n{covered} of {len(table)} true values inside their 90% intervals (about {0.9 * len(table):.0f} expected)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_recovery(table, out / "model5_recovery.png")
    plot_ppc(fit, out / "model5_ppc.png")
    fit.to_netcdf(out / "model5_fit.nc")
    print(f"\nwrote {out / 'model5_recovery.png'}, {out / 'model5_ppc.png'} and {out / 'model5_fit.nc'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
