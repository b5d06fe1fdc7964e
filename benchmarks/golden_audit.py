"""Runs an audit preset and compares its metrics with a golden copy stored before a refactor.

Runs under the test suite's XLA flags (tests/xla_flags.py), which the golden copies record
(`golden_quick.json` rewritten on 2026-12-06 for issue 23's quick preset).

    python benchmarks/golden_audit.py --preset quick      # ~1.5 min on 2 CPU cores
    python benchmarks/golden_audit.py --preset tiny --write --why "issue 12: torch init"

The golden copy (``tests/data/golden_<preset>.json``) holds every number of results.json that
the computation determines (``tests/golden.py::metrics_view``) and the machine that computed it.
Prints JSON: whether the metrics are identical, how many leaves differ (the first ones listed),
and whether this machine is the golden one's (another CPU model may round differently).

``--write`` replaces the golden copy with this run's metrics after an intended change of the
numbers; ``--why`` (required) is appended to the copy's ``history`` with the code version that
computed it, and the float-order changes listed for the old copy are dropped (the new one was
computed with today's order).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

# the golden copies are the test suite's reference: computed under its XLA flags, before jax
# starts (tests/xla_flags.py)
from tests.xla_flags import use_test_xla_flags  # noqa: E402

use_test_xla_flags()

from dcjax.audit import get_preset, run_audit  # noqa: E402
from tests.golden import TINY, compare_with_golden, machine_identity, metrics_view  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "tests", "data")


def _floats(tree):
  """Every float leaf of a metrics tree, in a fixed order."""
  if isinstance(tree, dict):
    for k in sorted(tree):
      yield from _floats(tree[k])
  elif isinstance(tree, list):
    for v in tree:
      yield from _floats(v)
  elif isinstance(tree, float):
    yield tree


def _auc_escapes(got: dict, want: dict) -> list[str]:
  """The attack/stratum AUCs that moved outside the golden's 95% interval."""
  out = []
  for attack, strata in want.get("attacks", {}).items():
    for stratum, m in strata.items():
      if not isinstance(m, dict) or "auc" not in m:
        continue
      lo, hi = m["auc_ci95"]
      auc = got.get("attacks", {}).get(attack, {}).get(stratum, {}).get("auc")
      if auc is None or not lo <= auc <= hi:
        out.append(f"{attack}/{stratum}: {auc} not in [{lo}, {hi}]")
  return out


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", default="quick",
                 help="audit preset with a golden copy ('tiny': the test suite's TINY config)")
  p.add_argument("--write", action="store_true",
                  help="replace the golden copy with this run's metrics (an intended change)")
  p.add_argument("--why", default=None, help="with --write: what changed the numbers")
  args = p.parse_args(argv)
  if args.write and not (args.why and args.why.strip()):
    p.error("--write needs --why: the intended change that moved the numbers")
  path = os.path.join(DATA, f"golden_{args.preset}.json")
  with open(path) as f:
    golden = json.load(f)
  start = time.time()
  with tempfile.TemporaryDirectory() as out:
    config = TINY if args.preset == "tiny" else get_preset(args.preset)
    results = run_audit(config, out, progress=False, preset=args.preset,
                        log=lambda *_: None)
  got = json.loads(json.dumps(metrics_view(results)))
  diff = compare_with_golden(got, golden)
  by_recipe = {}
  for name, recipe in golden["metrics"]["recipes"].items():
    leaves = [(a, b) for a, b in zip(_floats(got["recipes"].get(name, {})), _floats(recipe))]
    by_recipe[name] = {"max_abs_difference": max([abs(a - b) for a, b in leaves], default=0.0),
                       "auc_moves_outside_golden_ci95": _auc_escapes(
                           got["recipes"].get(name, {}), recipe)}
  report = {"preset": args.preset, "identical": not diff, "differing_leaves": len(diff),
            "first_differences": diff[:10], "by_recipe": by_recipe,
            "float_order_changes": golden.get("float_order_changes", []), "golden_code_version": golden["code_version"],
            "code_version": results["code_version"],
            "same_machine_as_golden": golden["machine"] == machine_identity(),
            "machine": machine_identity(), "seconds": round(time.time() - start, 1)}
  print(json.dumps(report, indent=2))
  if args.write:
    history = golden.get("history") or [{"code_version": golden["code_version"],
                                         "why": "first golden copy"}]
    written = {"preset": args.preset, "code_version": results["code_version"],
               "machine": machine_identity(), "float_order_changes": [],
               "history": [*history, {"code_version": results["code_version"], "why": args.why,
                                      "differing_leaves_before": len(diff)}],
               "metrics": got}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(written, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    print(f"wrote {os.path.relpath(path)}", file=sys.stderr)
  return report


if __name__ == "__main__":
  main()
