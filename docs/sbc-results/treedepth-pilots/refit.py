"""Refit the unconverged fits of an SBC run on their own data sets, same fit seeds,
with another program or other sampler settings (the pilots of docs/sbc.md, Model 5).

    python docs/sbc-results/treedepth-pilots/refit.py FITS_CSV MODEL PROGRAM ['{"max_treedepth": 12}']

FITS_CSV is the run's fits.csv (here the depth-10 Model 5 run's, which the
committed depth-12 run replaced). Each data set is redrawn from the model's prior
with the fit's seed on the record's SBC design; the fit runs with the record's
sbc_fit and the given extra settings. One line per refit, then the count that
converged (no divergence, max R-hat < 1.01).
"""
import contextlib
import io
import json
import sys
import time

import pandas as pd

from pystanmods.models import get_model
from pystanmods.sampling import fit

path, name, program = sys.argv[1:4]
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
m = get_model(name)
f = pd.read_csv(path)
bad = f[(f.divergences > 0) | (f.max_rhat >= 1.01)]
settings = {"chains": 2, "iter_warmup": 500, "iter_sampling": 500, **m.record.sbc_fit, **extra}
ok = 0
for _, r in bad.iterrows():
    sim = m.simulate_prior(seed=int(r.seed), **dict(m.record.sbc))
    data, truths = m.sbc_inputs(sim)
    t = time.time()
    with contextlib.redirect_stderr(io.StringIO()):
        ft = fit(m, data, program, seed=int(r.fit_seed), compute_log_lik=False, compute_y_rep=False,
                 show_progress=False, **settings)
    d = ft.diagnostics(warn=False).as_dict()
    conv = d["divergences"] == 0 and d["max_rhat"] < 1.01
    ok += conv
    print(int(r.sim), "nc: div", int(r.divergences), "rhat", round(r.max_rhat, 3), "| other: div", d["divergences"],
          "rhat", round(d["max_rhat"], 3), "ess", round(d["min_ess_bulk"]), "tdhits", d["treedepth_hits"],
          "conv", conv, f"{time.time() - t:.0f}s", flush=True)
print("converged with other program:", ok, "of", len(bad))
