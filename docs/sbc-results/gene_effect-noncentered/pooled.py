"""Pooled coverage of this SBC run's ranks, per variable: the share of truths inside
their central 90% posterior intervals (u in (0.05, 0.95)), with a standard error over
simulations (the scalars of one simulation are correlated, so the pooled counts are not
binomial), and the mean of u (0.5 if calibrated). All fits, then the converged ones only.

    python docs/sbc-results/gene_effect-noncentered/pooled.py [RUN_FOLDER]

RUN_FOLDER defaults to this file's folder; the centered run's pooled.txt is
this script run on docs/sbc-results/gene_effect-centered.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
ranks, fits = pd.read_csv(HERE / "ranks.csv"), pd.read_csv(HERE / "fits.csv")
unconverged = set(fits.loc[(fits["divergences"] > 0) | (fits["max_rhat"] >= 1.01), "sim"])
for label, part in (("all fits", ranks), ("converged fits", ranks[~ranks["sim"].isin(unconverged)])):
    print(f"{label}: {part['sim'].nunique()} simulations")
    for variable in ("theta", "mu_g", "log_tau_g", "k_s", "omega_s", "log_q_c", "beta_c", "kappa_c", "log_sigma_c"):
        rows = part[part["variable"] == variable]
        inside = (rows["u"] > 0.05) & (rows["u"] < 0.95)
        per_sim = inside.groupby(rows["sim"]).mean()
        print(f"  {variable:<12} {len(rows):5d} truths  in central 90%: {inside.mean():.3f} "
              f"(se {per_sim.std() / np.sqrt(len(per_sim)):.3f})  mean u {rows['u'].mean():.3f}")
