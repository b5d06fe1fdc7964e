"""The shadow-budget curve and per-example exposure."""

import jax
import numpy as np
import pytest

from dcjax.mia import balanced_keep_masks
from dcjax.mia import budget, exposure


def test_budgets_double_up_to_all_other_runs():
  assert budget.budgets(16) == [1, 2, 4, 8, 15]
  assert budget.budgets(4) == [1, 2, 3]
  assert budget.budgets(2) == [1]


def test_reference_subsets_exclude_the_target_and_follow_the_key():
  key = jax.random.key(0)
  subsets = budget.reference_subsets(key, 8, 3)
  assert len(subsets) == 8
  for t, s in enumerate(subsets):
    assert len(s) == 3 == len(set(s)) and t not in s
  again = budget.reference_subsets(key, 8, 3)
  assert all(np.array_equal(a, b) for a, b in zip(subsets, again))
  other = budget.reference_subsets(jax.random.key(1), 8, 3)
  assert any(not np.array_equal(a, b) for a, b in zip(subsets, other))
  with pytest.raises(ValueError, match="k=8 references needs 1 <= k <= M - 1 = 7"):
    budget.reference_subsets(key, 8, 8)


def _study(runs=16, n=400, shift=1.5, seed=0):
  rng = np.random.default_rng(seed)
  keep = balanced_keep_masks(jax.random.key(seed), runs, n)
  mu = rng.normal(0, 1.5, n)
  phi = mu + shift * keep + rng.normal(size=(runs, n))
  logits = np.stack([phi, np.zeros_like(phi)], -1)[:, None]
  return logits, np.zeros(n, int), keep


def test_more_reference_runs_make_lira_stronger():
  logits, labels, keep = _study()
  curve = budget.shadow_budget_curve(jax.random.key(0), logits, labels, keep,
                                     ["loss", "lira_online_fixed", "lira_offline_fixed"])
  assert "loss" not in curve  # no reference runs to count
  online = {r["k"]: r for r in curve["lira_online_fixed"]}
  assert sorted(online) == [2, 4, 8, 15]  # online needs IN and OUT references
  offline = {r["k"]: r for r in curve["lira_offline_fixed"]}
  assert sorted(offline) == [1, 2, 4, 8, 15]
  assert offline[15]["auc"] > offline[1]["auc"] + 0.05 and offline[1]["auc"] > 0.55
  assert online[15]["auc"] > online[2]["auc"] + 0.05
  for r in curve["lira_offline_fixed"]:
    assert r["auc_ci95"][0] <= r["auc"] <= r["auc_ci95"][1]
    assert r["tpr_ci95"][0] <= r["tpr"] <= r["tpr_ci95"][1] and r["fpr"] == 0.001


def test_exposure_is_each_examples_tpr_over_its_in_runs():
  keep = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1], [0, 0, 0, 1]], bool)
  scores = np.where(keep, 0.0, -1.0)
  scores[0, 0] = 5.0  # example 0 caught in one of its two IN runs
  scores[1, 1] = scores[2, 1] = 5.0  # example 1 in both
  scores[3, 0] = 4.0  # one non-member trial of eight above every member but two...
  # ...so at FPR 1/8 the threshold is the next non-member score (-1): every member is above it
  np.testing.assert_allclose(exposure.per_example_tpr(scores, keep, fpr=1 / 8), [1, 1, 1, 1])
  # at FPR 0 nothing may pass the highest non-member score (4): only the 5s are caught
  np.testing.assert_allclose(exposure.per_example_tpr(scores, keep, fpr=0.0), [0.5, 1, 0, 0])
  top = exposure.most_exposed(exposure.per_example_tpr(scores, keep, fpr=0.0), 2,
                              is_init=keep & (np.arange(4) == 1), keep=keep,
                              is_canary=np.array([False, False, True, False]))
  assert [r["index"] for r in top] == [1, 0]
  assert top[0]["init_fraction"] == 1.0 and not top[0]["canary"]


def test_no_budget_fakes_a_signal_where_there_is_none():
  # members and non-members from one distribution: every budget's AUC at chance (examples a
  # small draw leaves without references get a neutral score, not the strongest one)
  logits, labels, keep = _study(shift=0.0, n=1000)
  curve = budget.shadow_budget_curve(jax.random.key(0), logits, labels, keep,
                                     ["lira_offline_fixed", "lira_online_fixed"])
  for rows in curve.values():
    for r in rows:
      assert r["auc_ci95"][0] - 0.01 <= 0.5 <= r["auc_ci95"][1] + 0.01, r
