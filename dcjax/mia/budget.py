"""The shadow-budget curve: each attack's AUC and TPR at a low FPR when the attacker has only k
reference runs, k in {1, 2, 4, ..., M - 1}. For condensation every reference run is a whole
condensation, so this says how many an audit of a condenser needs.

Per target run t and budget k, k references are drawn without replacement from the other M - 1
runs with a key folded from (k, t); the target scores and metrics are those of the full attack,
pooled over every target (leave-one-out). Per-example balance between IN and OUT references
cannot be forced by the choice of runs; attacks that need both sides (online LiRA and RMIA)
balance them per example as at full budget (``dcjax.mia.masks.equal_sides``) and give an
example with no IN or no OUT reference no evidence. They start at k = 2. Offline LiRA below the
full budget uses every OUT reference of the draw (at the full budget it cuts them to the IN
count, as the attack tables do, which at k = 1 would leave no evidence at all); the loss attack
uses no reference and is left out.
"""

from __future__ import annotations

import jax
import numpy as np

from dcjax import key_tree
from dcjax.mia.attacks import Population, membership_scores
from dcjax.mia.metrics import attack_metrics
from dcjax.mia.rmia import RMIAConfig

BUDGET_FPR = 1e-3
NEEDS_BOTH_SIDES = ("lira_online", "lira_online_fixed", "rmia_online")


def budgets(num_runs: int) -> list[int]:
  """1, 2, 4, ... below M - 1, then M - 1 (all other runs)."""
  out, k = [], 1
  while k < num_runs - 1:
    out.append(k)
    k *= 2
  return out + [num_runs - 1]


def reference_subsets(key: jax.Array, num_runs: int, k: int) -> list[np.ndarray]:
  """Per target t, k of the other runs (sorted), drawn with ``key`` folded with (k, t)."""
  if not 1 <= k <= num_runs - 1:
    raise ValueError(f"a budget of k={k} references needs 1 <= k <= M - 1 = {num_runs - 1}.")
  out = []
  for t in range(num_runs):
    others = np.array([r for r in range(num_runs) if r != t])
    if k == len(others):
      out.append(others)
      continue
    pick = jax.random.permutation(key_tree.budget_draw(key, k, t), len(others))[:k]
    out.append(np.sort(others[np.asarray(pick)]))
  return out


def shadow_budget_curve(key: jax.Array, view_logits, labels, keep, attacks,
                        population: Population | None = None, exclude=None,
                        rmia: RMIAConfig = RMIAConfig(), fpr: float = BUDGET_FPR,
                        full_scores: dict[str, np.ndarray] | None = None
                        ) -> dict[str, list[dict]]:
  """{attack: [{k, auc, auc_ci95, tpr, tpr_ci95, fpr}, ...]} on all members against the
  non-members (pooled over targets; intervals as in the attack tables: cluster bootstrap over
  pool examples). ``exclude`` (N,) bool: examples left out of the metrics (canaries).
  ``full_scores``: {attack: (M, N)} leave-one-out scores over all other runs, reused at
  k = M - 1 instead of computed again."""
  keep = np.asarray(keep, bool)
  num_runs = keep.shape[0]
  kept = slice(None) if exclude is None else ~np.asarray(exclude, bool)
  example = np.broadcast_to(np.arange(keep.shape[1]), keep.shape)[:, kept]
  curve = {}
  for name in attacks:
    if name == "loss" or name.endswith("_two_sided"):
      continue
    rows = []
    for k in budgets(num_runs):
      if k < 2 and name in NEEDS_BOTH_SIDES:
        continue
      if k == num_runs - 1 and name in (full_scores or {}):
        scores = full_scores[name]  # every other run: the full attack, already computed
      else:
        scores, _ = membership_scores(name, view_logits, labels, keep, population, rmia,
                                      reference_subsets(key, num_runs, k))
      m = attack_metrics(scores[:, kept], keep[:, kept], (fpr,), clusters=example)
      point = m.at(fpr)
      rows.append({"k": k, "auc": m.auc, "auc_ci95": list(m.auc_ci95), "fpr": fpr,
                   "tpr": point.tpr, "tpr_ci95": list(point.interval)})
    curve[name] = rows
  return curve
