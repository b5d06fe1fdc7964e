"""Golden metrics: the numbers an audit reports, stored before a refactor, compared after it.

``metrics_view`` keeps every number of results.json that the computation determines (accuracies,
every attack and stratum, the released-set analysis, the comparison, the theory) and drops what
depends on the machine or the clock (seconds, code version, figures' file names, the ROC grid,
which is a resampling of the curves whose metrics are kept).
"""

from __future__ import annotations

import math
import os
import platform

import jax

from dcjax.audit import AuditConfig
from dcjax.audit.config import DEFAULT_CONDENSERS
from dcjax.condense.settings import merge, settings

# The audit of tests/test_audit.py and of tests/data/golden_tiny.json. One-block ConvNets
# (the default for 8x8 images has two): the machinery is the same, the programs compile in
# about 2/3 of the time.
# The DP yardstick rides along: DP-SGD, NDPDC and mislabeled canaries.
TINY = AuditConfig(runs=4, pool_size=160, ipc=2, epochs=3, real_epochs=2, net="ConvNetD1",
                   cond_net="ConvNetD1", ssim_shortlist=16,
                   condensers=merge(DEFAULT_CONDENSERS, settings(
                       dm=dict(iterations=2, batch_real=8), ndpdc=dict(iterations=2),
                       dsa=dict(iterations=1, outer_loop=1, inner_loop=1, batch_real=8))),
                   theory_iterations=60, dp_epochs=2, canaries=8,
                   # the DSA recipes are left to test_condense (DSA's audit path is DM's;
                   # they cost 16 s of the suite's budget here)
                   recipes="real,random_subset,init_only,condense(dm,init=real),"
                           "condense(dm,init=noise),dpsgd(4),condense(ndpdc,epsilon=4)")

RECIPE_KEYS = ("kind", "test_accuracy", "attacks", "released_set", "training_set_size",
               "has_init_images")


def metrics_view(results: dict) -> dict:
  return {"recipes": {name: {k: r[k] for k in RECIPE_KEYS}
                      for name, r in results["recipes"].items()},
          "comparison": results["comparison"], "theory": results["theory"],
          "baseline": results["baseline"], "pool_size": results["pool_size"],
          "runs": results["runs"]}


def machine_identity() -> dict:
  """What decides the floats of the same program: CPU model, jax version, backend, XLA flags
  (the test suite's lower the backend optimisation level)."""
  model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      model = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), model)
  except OSError:
    pass
  return {"cpu": model, "jax": jax.__version__, "backend": jax.default_backend(),
          "xla_flags": os.environ.get("XLA_FLAGS", "")}


def differences(got, want, path="", rel: float = 0.0, out=None) -> list[str]:
  """Every leaf where ``got`` and ``want`` differ (floats within ``rel`` relative tolerance
  count as equal; 0: exact)."""
  out = [] if out is None else out
  if isinstance(want, dict):
    if not isinstance(got, dict) or set(got) != set(want):
      out.append(f"{path}: keys {sorted(got) if isinstance(got, dict) else got!r} != "
                 f"{sorted(want)}")
      return out
    for k in want:
      differences(got[k], want[k], f"{path}/{k}", rel, out)
  elif isinstance(want, list):
    if not isinstance(got, list) or len(got) != len(want):
      out.append(f"{path}: {got!r} != {want!r}")
      return out
    for i, (g, w) in enumerate(zip(got, want)):
      differences(g, w, f"{path}[{i}]", rel, out)
  elif isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
    if not (got == want or math.isclose(got, want, rel_tol=rel, abs_tol=rel)):
      out.append(f"{path}: {got!r} != {want!r}")
  elif got != want:
    out.append(f"{path}: {got!r} != {want!r}")
  return out


def compare_with_golden(got: dict, golden: dict) -> list[str]:
  """Differences between a metrics view and a golden file's: exact, except for the recipes (and
  their comparison rows) of a listed change of float summation order
  (``golden["float_order_changes"]``: recipe name prefixes, a relative tolerance and why),
  compared to that tolerance."""
  changes = golden.get("float_order_changes", [])

  def rel_of(name: str) -> float:
    return max([c["rel"] for c in changes if name.startswith(tuple(c["recipes"]))],
               default=0.0)

  want = golden["metrics"]
  diff = differences(set(got["recipes"]), set(want["recipes"]), "/recipes")
  for name, recipe in want["recipes"].items():
    diff += differences(got["recipes"].get(name), recipe, f"/recipes/{name}", rel=rel_of(name))
  rows, rows_want = got.get("comparison") or [], want.get("comparison") or []
  if len(rows) != len(rows_want):
    diff.append(f"/comparison: {len(rows)} rows != {len(rows_want)}")
  for i, (row, row_want) in enumerate(zip(rows, rows_want)):
    diff += differences(row, row_want, f"/comparison[{i}]", rel=rel_of(row_want["recipe"]))
  rest = lambda view: {k: v for k, v in view.items() if k not in ("recipes", "comparison")}
  return diff + differences(rest(got), rest(want))
