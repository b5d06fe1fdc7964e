"""Seconds the analysis of one recipe's runs spends per attack, in the shadow-budget curve and in
the exposure, at the default audit's shapes (16 runs, the digits pool of 1497 examples under 5
query views, 10 classes, the 300 test images as RMIA's population). The times depend on the
shapes, not on the logits' values, so random logits stand in for the runs'.

    python benchmarks/attack_cost.py                 # ~1-2 min on 2 CPU cores
    python benchmarks/attack_cost.py --runs 64 --examples 5000

Prints JSON: seconds per part and their sum, per recipe; multiply by the number of recipes and
compare with the audit's wall time to see what the attacks add.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from dcjax import key_tree  # noqa: E402
from dcjax.audit import analysis  # noqa: E402
from dcjax.audit.config import AuditConfig  # noqa: E402
from dcjax.mia import Population, attack_runs, balanced_keep_masks, budget  # noqa: E402
from dcjax.mia.attacks import PER_VIEW  # noqa: E402


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--runs", type=int, default=16, help="runs per recipe (M)")
  p.add_argument("--examples", type=int, default=1497, help="pool size (N)")
  p.add_argument("--views", type=int, default=5, help="query views (V)")
  p.add_argument("--classes", type=int, default=10, help="classes (K)")
  p.add_argument("--population", type=int, default=300, help="RMIA's population (T)")
  args = p.parse_args(argv)
  rng = np.random.default_rng(0)
  m, n = args.runs, args.examples
  keep = balanced_keep_masks(jax.random.key(0), m, n)
  labels = rng.integers(0, args.classes, n)
  logits = rng.normal(size=(m, args.views, n, args.classes)) + 2.0 * keep[:, None, :, None] * (
      np.arange(args.classes) == labels[:, None])[None, None]
  pop = Population(rng.normal(size=(m, args.views, args.population, args.classes)),
                   rng.integers(0, args.classes, args.population))
  attacks = AuditConfig().attack_names
  init = np.full((m, 0), -1)
  seconds = {}
  results = {}
  for name in attacks:
    t = time.perf_counter()
    results.update(attack_runs(logits, labels, keep, init, (name,), population=pop))
    seconds[f"attack/{name}"] = round(time.perf_counter() - t, 2)
  t = time.perf_counter()
  budget.shadow_budget_curve(key_tree.purpose(jax.random.key(0), key_tree.BUDGET), logits,
                             labels, keep, [a for a in attacks if not a.endswith(PER_VIEW)],
                             pop)
  seconds["shadow_budget_curve"] = round(time.perf_counter() - t, 2)
  t = time.perf_counter()
  analysis.exposure_summary(results, keep, init, "lira_offline_fixed")
  seconds["exposure"] = round(time.perf_counter() - t, 2)
  new = ("attack/rmia_online", "attack/rmia_offline", "shadow_budget_curve", "exposure")
  out = {"shape": {"runs": m, "examples": n, "views": args.views, "classes": args.classes,
                   "population": args.population},
         "seconds": seconds, "total_sec_per_recipe": round(sum(seconds.values()), 2),
         "added_by_issue_26_sec_per_recipe": round(sum(seconds[k] for k in new), 2)}
  print(json.dumps(out, indent=2))
  return out


if __name__ == "__main__":
  main()
