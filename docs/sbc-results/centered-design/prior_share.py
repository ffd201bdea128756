"""How rich must a design be for Model 2's centered program to converge in SBC?

A centered group effect ``alpha_g ~ normal(mu, sigma_alpha)`` is a funnel for
NUTS where the group sd is small beside what the gene's own rows can resolve,
the standard error ``sigma / sqrt(n)`` of its n rows. In an SBC run the scales
are drawn from the record's priors, so the share of data sets with such a
group is a property of the priors and of n alone. This script estimates it
(a group sd below twice that standard error, for either ``sigma_alpha`` or
``sigma_beta``; the covariate has unit variance) by Monte Carlo from
``model.draw_prior``, the draws SBC uses, and sets the pilots' observed share
of unconverged fits beside it.

Run from the repository root: ``python docs/sbc-results/centered-design/prior_share.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pystanmods.models import Model, get_model

HERE = Path(__file__).resolve().parent
# The funnel's neck: a group sd below about twice the rows' standard error.
# The cut-off is a rule of thumb; the pilots below are the check on it.
RATIO = 0.5
DRAWS = 100_000
ROWS_PER_GENE = (10, 100, 2_000, 10_000, 100_000)
# Observed: the committed runs and pilots of the centered program, by rows per gene.
OBSERVED = {
    10: ("../model2-centered/fits.csv", 3, "3 genes x 10 cell lines, 100 simulations (the committed run)"),
    100: ("pilot_5x100_fits.csv", 5, "5 genes x 100 cell lines, 20 simulations (pilot)"),
    2_000: ("pilot_5x2000_fits.csv", 5, "5 genes x 2,000 cell lines, 20 simulations (pilot)"),
}


def has_funnel(draw: dict | pd.DataFrame, n: int) -> bool | pd.Series:
    se = draw["sigma"] / np.sqrt(n)
    return (se > RATIO * draw["sigma_alpha"]) | (se > RATIO * draw["sigma_beta"])


def observed(model: Model, path: Path, n_genes: int, n: int) -> str:
    """Unconverged fits, split by whether their own drawn scales have a funnel."""
    fits = pd.read_csv(path)
    bad = (fits["divergences"] > 0) | (fits["max_rhat"] >= 1.01)
    # Each fit's data seed redraws its truth exactly as the run drew it.
    funnel = np.array(
        [has_funnel(model.simulate_prior(int(s), n_genes=n_genes, n_cell_lines=n).truth, n) for s in fits["seed"]]
    )
    return (
        f"{bad.sum()} of {len(fits)} ({bad.mean():.0%}) | "
        f"{(bad & funnel).sum()} of {funnel.sum()} | {(bad & ~funnel).sum()} of {(~funnel).sum()}"
    )


def main() -> None:
    model = get_model("model2")
    rng = np.random.default_rng(1)
    draws = pd.DataFrame([model.draw_prior(rng) for _ in range(DRAWS)])
    lines = [
        "| rows per gene | prior draws with a funnel (share) | unconverged fits | unconverged where the draw "
        "has a funnel | unconverged where it has not | run |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for n in ROWS_PER_GENE:
        seen, run = " |  | ", "not run"
        if n in OBSERVED:
            name, n_genes, run = OBSERVED[n]
            seen = observed(model, HERE / name, n_genes, n)
        lines.append(f"| {n:,} | {has_funnel(draws, n).mean():.1%} | {seen} | {run} |")
    table = "\n".join(lines)
    print(table)
    (HERE / "prior_share.md").write_text(
        f"Output of prior_share.py ({DRAWS:,} draws of Model 2's record priors, seed 1, "
        f"funnel where sigma / sqrt(n) > {RATIO} x a group sd):\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
