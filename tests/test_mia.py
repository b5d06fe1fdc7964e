"""Membership inference: masks, scores, attacks and metrics against known answers."""

import jax
import numpy as np
import pytest
import scipy.stats

from dcjax.mia import (AttackResult, attack_metrics, attack_runs, balanced_keep_masks,
                       clopper_pearson, init_masks, leave_one_out, logit_scaled_confidence,
                       roc_curve, stratified_metrics)
from dcjax.mia.metrics import DEFAULT_FPRS


def test_keep_masks_are_balanced_and_seeded():
  keep = balanced_keep_masks(jax.random.key(0), 8, 50)
  assert keep.shape == (8, 50) and keep.dtype == bool
  np.testing.assert_array_equal(keep.sum(0), np.full(50, 4))
  np.testing.assert_array_equal(keep, balanced_keep_masks(jax.random.key(0), 8, 50))
  assert not np.array_equal(keep, balanced_keep_masks(jax.random.key(1), 8, 50))
  assert 15 < keep.sum(1).mean() < 35


@pytest.mark.parametrize("runs", [3, 0, 1, 7])
def test_odd_or_too_few_runs_are_refused(runs):
  with pytest.raises(ValueError, match="even int >= 2"):
    balanced_keep_masks(jax.random.key(0), runs, 10)


def test_logit_scaled_confidence_is_stable_and_exact():
  logits = np.array([[2.0, 0.0, -1.0], [1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
  labels = np.array([0, 0, 2])
  phi = logit_scaled_confidence(logits, labels)
  p = np.exp(logits[0]) / np.exp(logits[0]).sum()
  assert phi[0] == pytest.approx(np.log(p[0]) - np.log(p[1] + p[2]))
  assert phi[1] == pytest.approx(1000.0)  # exact for any margin: 1000 - logsumexp(0, -1000)
  assert phi[2] == pytest.approx(np.log(1 / 3) - np.log(2 / 3))
  assert phi.dtype == np.float64
  floor = logit_scaled_confidence(logits, labels, reference_floor=True)  # LiRA's reference
  assert floor[1] == pytest.approx(-np.log(1e-45))  # capped near 103.6
  np.testing.assert_allclose(floor[[0, 2]], phi[[0, 2]], rtol=1e-12)


def test_roc_and_auc_against_known_cases():
  fpr, tpr, _ = roc_curve([3, 2, 1, 0], [1, 1, 0, 0])
  assert np.trapezoid(tpr, fpr) == 1.0
  m = attack_metrics([0, 1, 2, 3], [1, 1, 0, 0])
  assert m.auc == 0.0
  ties = attack_metrics([1, 1, 1, 1], [1, 0, 1, 0])
  assert ties.auc == pytest.approx(0.5)


def test_gaussian_scores_give_the_analytic_auc():
  rng = np.random.default_rng(0)
  n, shift = 4000, 1.0
  scores = np.r_[rng.normal(shift, 1, n), rng.normal(0, 1, n)]
  labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
  m = attack_metrics(scores, labels)
  analytic = scipy.stats.norm.cdf(shift / np.sqrt(2))
  lo, hi = m.auc_ci95
  assert lo <= analytic <= hi
  analytic_tpr = 1 - scipy.stats.norm.cdf(scipy.stats.norm.ppf(1 - 1e-2) - shift)
  lo, hi = m.at(0.01).tpr_ci95
  assert lo <= analytic_tpr <= hi
  assert m.positives == n and m.negatives == n


def test_clopper_pearson_known_values():
  lo, hi = clopper_pearson(0, 100)
  assert lo == 0.0 and hi == pytest.approx(0.0362, abs=1e-4)  # 0 hits in 100: TPR <= 3.6%
  lo, hi = clopper_pearson(50, 100)
  assert lo == pytest.approx(0.3983, abs=1e-3) and hi == pytest.approx(0.6017, abs=1e-3)


def test_very_low_fpr_only_with_enough_negatives():
  small = attack_metrics(np.arange(20.0), np.arange(20) % 2 == 0)
  assert set(small.tpr_at_fpr) == {"0.001", "0.01"}


def _membership_independent_scores(runs=16, n=400, seed=0):
  rng = np.random.default_rng(seed)
  keep = balanced_keep_masks(jax.random.key(seed), runs, n)
  per_example = rng.normal(0, 2, n)  # examples differ in difficulty, membership changes nothing
  return per_example + rng.normal(0, 1, (runs, n)), keep, per_example


@pytest.mark.parametrize("attack", ["loss", "lira_online", "lira_online_fixed", "lira_offline",
                                    "lira_offline_fixed"])
def test_attacks_find_nothing_when_networks_ignore_membership(attack):
  scores, keep, _ = _membership_independent_scores()
  membership = leave_one_out(scores, keep, attack)
  m = attack_metrics(membership, keep)
  lo, hi = m.auc_ci95
  assert lo <= 0.5 <= hi, m.auc
  for fpr_key, entry in m.tpr_at_fpr.items():
    lo, hi = entry.tpr_ci95
    assert lo <= float(fpr_key) <= hi, (fpr_key, entry)


def test_lira_beats_the_loss_attack_when_examples_differ_in_difficulty():
  rng = np.random.default_rng(1)
  keep = balanced_keep_masks(jax.random.key(1), 32, 500)
  difficulty = rng.normal(0, 3, 500)
  scores = difficulty + 1.5 * keep + rng.normal(0, 0.5, keep.shape)
  loss = attack_metrics(leave_one_out(scores, keep, "loss"), keep)
  online = attack_metrics(leave_one_out(scores, keep, "lira_online"), keep)
  offline = attack_metrics(leave_one_out(scores, keep, "lira_offline"), keep)
  assert online.auc > loss.auc + 0.2
  assert offline.auc > loss.auc + 0.2
  assert online.at(0.01).tpr > 10 * loss.at(0.01).tpr + 0.1


def test_stratified_groups_pool_targets_against_the_same_non_members():
  keep = balanced_keep_masks(jax.random.key(2), 4, 20)
  init = np.full((4, 2), -1)
  for m in range(4):
    init[m] = np.flatnonzero(keep[m])[:2]
  is_init = init_masks(init, 20)
  membership = np.where(is_init, 10.0, 0.0) + np.random.default_rng(0).normal(0, 0.1, (4, 20))
  out = stratified_metrics(membership, keep, is_init)
  assert out["init_images"].positives == 8
  assert out["other_members"].positives == keep.sum() - 8
  assert out["all_members"].positives == keep.sum()
  for group in out.strata.values():
    assert group.negatives == (~keep).sum()
  assert set(out.curves) == set(out.strata)
  assert AttackResult.from_json(out.to_json()) == out  # the JSON edge loses nothing
  assert out["init_images"].auc == 1.0
  assert out["other_members"].auc < 0.8
  no_init = stratified_metrics(membership, keep, np.zeros_like(keep))
  assert no_init["init_images"] is None


def test_infinite_scores_tie_correctly():
  m = attack_metrics([np.inf, np.inf, -np.inf, -np.inf], [1, 0, 1, 0])
  assert m.auc == pytest.approx(0.5) and m.balanced_accuracy == pytest.approx(0.5)
  with pytest.raises(ValueError, match="NaN"):
    attack_metrics([np.nan, 1.0], [1, 0])


@pytest.mark.parametrize("attack", ["lira_online", "lira_offline"])
def test_few_shadows_do_not_fake_a_signal(attack):
  """With 4 runs, leave-one-out leaves a member 1 IN shadow and a non-member 2: no signal."""
  scores, keep, _ = _membership_independent_scores(runs=4, n=2000, seed=3)
  m = attack_metrics(leave_one_out(scores, keep, attack), keep)
  # trials share examples and shadows, so the (independence-based) AUC interval is too narrow
  # here; without equal_sides the AUC was 0.63 (online) / 0.39 (pooled sd only).
  assert abs(m.auc - 0.5) < 0.03, m.auc


def test_cluster_bootstrap_auc_is_weighted_auc_and_wider_under_correlation():
  from dcjax.mia.metrics import cluster_bootstrap_auc  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(5)
  # 8 runs x 300 examples; membership shifts an example's score by its own random b_i (mean 0):
  # no signal on average, but all member trials of an example move together (correlated).
  keep = balanced_keep_masks(jax.random.key(5), 8, 300)
  scores = rng.normal(size=300) * 0.1 + keep * rng.normal(size=300) + 0.1 * rng.normal(
      size=keep.shape)
  example = np.broadcast_to(np.arange(300), keep.shape)
  naive = attack_metrics(scores, keep)
  boot = attack_metrics(scores, keep, clusters=example)
  assert boot.auc == naive.auc and boot.auc_ci_method == "cluster_bootstrap"
  assert (boot.auc_ci95[1] - boot.auc_ci95[0]) > 1.5 * (
      naive.auc_ci95[1] - naive.auc_ci95[0])
  assert boot.auc_ci95[0] <= 0.5 <= boot.auc_ci95[1]
  # independent clusters of one trial each: the bootstrap brackets the AUC
  s, y = rng.normal(size=400) + np.r_[np.ones(200), np.zeros(200)], np.r_[np.ones(200, bool),
                                                                            np.zeros(200, bool)]
  lo, hi = cluster_bootstrap_auc(s, y, np.arange(400))
  a = attack_metrics(s, y).auc
  assert lo < a < hi and hi - lo < 0.15


def test_per_view_attacks_average_each_views_scores():
  """'<attack>_per_view' (the LiRA reference): one Gaussian per query view, scores averaged
  over views; with identical views it is the view-averaged attack."""
  rng = np.random.default_rng(3)
  runs, views, n, k = 6, 2, 40, 3
  keep = np.asarray(balanced_keep_masks(jax.random.key(1), runs, n))
  labels = rng.integers(0, k, n)
  logits = rng.normal(size=(runs, views, n, k)) + 2.0 * keep[:, None, :, None] * (
      np.arange(k) == labels[:, None])
  init = np.full((runs, 1), -1)
  per_view = attack_runs(logits, labels, keep, init, attacks=("lira_online_per_view",))
  singles = [attack_runs(logits[:, v:v + 1], labels, keep, init, attacks=("lira_online",))
             for v in range(views)]
  phi = logit_scaled_confidence(logits, labels)
  by_hand = np.mean([leave_one_out(phi[:, v], keep, "lira_online") for v in range(views)], 0)
  want = stratified_metrics(by_hand, keep, np.zeros_like(keep), DEFAULT_FPRS)
  assert per_view["lira_online_per_view"]["all_members"].auc == want["all_members"].auc
  assert per_view["lira_online_per_view"]["all_members"].auc != singles[0]["lira_online"][
      "all_members"].auc
  same = np.repeat(logits[:, :1], 2, axis=1)
  assert attack_runs(same, labels, keep, init, attacks=("lira_online_per_view",))[
      "lira_online_per_view"]["all_members"].auc == pytest.approx(
          singles[0]["lira_online"]["all_members"].auc)
  with pytest.raises(ValueError, match="Unknown attack"):
    attack_runs(logits, labels, keep, init, attacks=("loss_per_view",))
