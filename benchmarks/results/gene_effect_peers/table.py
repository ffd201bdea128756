"""The runs of runs.jsonl (or the file given) as a markdown table: python table.py [runs.jsonl] > table.md"""

import json
import sys
from pathlib import Path

source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "runs.jsonl"
rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
print("| genes | N | tool | program | wall s | warmup + sampling s | min bulk ESS (where) | ESS/s | max R-hat "
      "| divergences | leapfrog / draw | peak RSS MB | load avg (1 min) start / end |")
print("|" + "---|" * 13)
for r in rows:
    print(f"| {r['genes']} | {r['N']} | {r['tool']} | {r['program']} | {r['wall_seconds']:.0f} | {r['sampling_seconds']:.1f} "
          f"| {r['min_ess_bulk']:.0f} ({r['worst']}) | {r['ess_per_second']:.3f} | {r['max_rhat']:.3f} | {r['divergences']} "
          f"| {r['leapfrog_per_draw']:.0f} | {r['peak_rss_mb']:.0f} | {r['load_at_start'][0]} / {r['load_at_end'][0]} |")
print()
names = list(rows[0]["means"])
print("Posterior means of the hyperparameters:\n")
print("| genes | tool | " + " | ".join(names) + " |")
print("|" + "---|" * (len(names) + 2))
for r in rows:
    print(f"| {r['genes']} | {r['tool']} | " + " | ".join(f"{r['means'][n]:.3f}" for n in names) + " |")
covered = [r for r in rows if r.get("coverage_90")]
if covered:
    variables = list(dict.fromkeys(v for r in covered for v in r["coverage_90"]))
    print("\nShare of true values inside the central 90% intervals (simulated data):\n")
    print("| genes | tool | " + " | ".join(variables) + " |")
    print("|" + "---|" * (len(variables) + 2))
    for r in covered:
        print(f"| {r['genes']} | {r['tool']} | "
              + " | ".join(f"{r['coverage_90'][v]:.3f}" if v in r["coverage_90"] else "-" for v in variables) + " |")
