"""Simulation-based calibration of every model of the catalogue (``make sbc``).

Runs :func:`pystanmods.sbc.run` on each design of
:mod:`pystanmods.sbc.designs` (both parameterizations of every model with
priors) on one local Dask cluster, writes each run's report under ``--out``
and a summary table (``summary.md``, ``summary.csv``) beside them. Each run's
directory keeps ``ranks.csv`` (the rank of every truth, so that uniformity can
be re-tested with any other test) beside ``fits.csv`` and ``uniformity.csv``;
commit all three with the report. A run where more than 10% of the fits had
divergences or R-hat >= 1.01 is INCONCLUSIVE, not a pass
(:data:`pystanmods.sbc.core.NONCONVERGED_LIMIT`). ``summary.csv`` keeps the
rows of runs not redone, so ``--only`` updates the committed table row by row.

    python examples/sbc_every_model.py --sims 100 --out docs/sbc-results --only model3-noncentered

``make sbc`` reruns every committed run this way (its ``SBC_RUNS``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from pystanmods import sbc
from pystanmods.batch.cluster import dask_client
from pystanmods.models import get_model
from pystanmods.sbc.designs import FIT_SETTINGS, designs
from pystanmods.sbc.report import markdown_table


def write_summary(out: Path, rows: list[dict]) -> pd.DataFrame:
    """Write ``summary.csv`` and ``summary.md`` under ``out``: the rows of this
    invocation replace those of the same model and program, rows of runs not
    redone are kept, so that ``--only`` updates one row of the committed table."""
    new = pd.DataFrame(rows)
    path = out / "summary.csv"
    if path.exists():
        old = pd.read_csv(path)
        redone = set(zip(new["model"], new["parameterization"]))
        kept = [(m, p) not in redone for m, p in zip(old["model"], old["parameterization"])]
        new = pd.concat([old[kept], new], ignore_index=True)
    new.to_csv(path, index=False)
    (out / "summary.md").write_text(
        "SBC runs, one row per model and program (`examples/sbc_every_model.py`): each row's simulations, "
        "seed, family-wise alpha (Holm) and sampler settings are in the row. A run where more than 10% of the "
        "fits had divergences or R-hat >= 1.01 is INCONCLUSIVE (`share_not_converged`).\n\n"
        + markdown_table(new) + "\n"
    )
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("out/sbc"))
    parser.add_argument("--models", nargs="*", help="only these models (default: all with priors)")
    parser.add_argument("--parameterization", choices=("both", "centered", "noncentered", "recommended"),
                        default="both", help="which programs of the hierarchical models (default both)")
    parser.add_argument("--only", nargs="*", metavar="LABEL",
                        help="only these runs, named MODEL-PARAMETERIZATION as their directories "
                             "(e.g. model3-noncentered; Model 1's is model1-centered)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iter-warmup", type=int,
                        help=f"override every design's warmup (default: its own, else {FIT_SETTINGS['iter_warmup']})")
    parser.add_argument("--iter-sampling", type=int,
                        help=f"override every design's draws (default: its own, else {FIT_SETTINGS['iter_sampling']})")
    args = parser.parse_args(argv)
    known = {d.label for d in designs(args.models)}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"--only: no design named {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    overrides = {k: v for k, v in (("iter_warmup", args.iter_warmup), ("iter_sampling", args.iter_sampling))
                 if v is not None}

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with dask_client(None, None, args.workers) as client:
        for design in designs(args.models):
            model = get_model(design.model)
            wanted = model.recommended if args.parameterization == "recommended" else args.parameterization
            if model.hierarchical and wanted != "both" and design.parameterization != wanted:
                continue
            if args.only is not None and design.label not in args.only:
                continue
            start = time.perf_counter()
            settings = {**design.settings, **overrides}
            result = sbc.run(
                design.model, args.sims, design.parameterization, sizes=design.sizes, alpha=args.alpha,
                seed=args.seed, client=client, out=args.out / design.label, progress=False, **settings,
            )
            d = result.diagnostics_summary()
            rows.append({
                "model": design.model,
                "parameterization": result.parameterization,
                "sizes": json.dumps(design.sizes) if design.sizes else "default",
                "sims": args.sims,
                "seed": args.seed,
                "alpha": args.alpha,
                "failed": d["failed"],
                "retried": d["retried"],
                "fits_with_divergences": d["with_divergences"],
                "fits_rhat_over_1.01": d["rhat_over_1.01"],
                "share_not_converged": round(d["nonconverged_share"], 3),
                "median_min_ess_bulk": round(d["median_min_ess_bulk"], 0),
                "scalars": len(result.uniformity),
                "min_p_holm": float(result.uniformity["p_holm"].min()) if len(result.uniformity) else float("nan"),
                "verdict": "FAIL: " + ", ".join(result.flagged) if result.flagged else result.status,
                "sampler": json.dumps(settings),
                "minutes": round((time.perf_counter() - start) / 60, 1),
            })
            print(result.verdict(), flush=True)
            write_summary(args.out, rows)
    return 0 if all(row["verdict"] == "PASS" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
