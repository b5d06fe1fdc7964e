"""Empirical epsilon lower bounds (the one-run bound per run, Bonferroni over runs; the
split-half heuristic) and the bound check."""

import math

import numpy as np
import pytest

from dcjax.privacy import auditing


def test_perfect_separation_gives_the_clopper_pearson_closed_form():
  # all n members flagged, no non-member: the one-sided 97.5% ends are 0.025^(1/n) and
  # 1 - 0.025^(1/n)
  n = 40
  low = 0.025 ** (1 / n)
  want = math.log((low - 1e-5) / (1 - low))
  got = auditing.epsilon_from_counts(n, n, 0, n, delta=1e-5)
  assert got == pytest.approx(want, rel=1e-6)
  # no signal: no positive bound
  assert auditing.epsilon_from_counts(10, 40, 10, 40) == 0.0


def test_the_threshold_is_chosen_on_other_canaries_than_the_bound():
  runs, canaries = 16, 24
  keep = np.zeros((runs, canaries), bool)
  keep[: runs // 2] = True
  scores = np.where(keep, 1.0, 0.0)  # perfectly separable canaries
  order = np.random.default_rng(0).permutation(canaries)
  held_out = order[canaries // 2:]
  out = auditing.split_half_epsilon(scores, keep, seed=0)
  assert out["epsilon_lb"] > 1.5 and out["positives"] + out["negatives"] == runs * len(held_out)
  # reverse the held-out half: the threshold chosen on the first half now fails there, although
  # the same-half figure (not a bound) still looks perfect
  flipped = scores.copy()
  flipped[:, held_out] = 1.0 - flipped[:, held_out]
  out = auditing.split_half_epsilon(flipped, keep, seed=0)
  assert out["selection_half_epsilon"] > 1.5
  assert out["epsilon_lb"] < out["selection_half_epsilon"]
  assert out["true_positives"] == 0


def test_one_run_bound_matches_the_binomial_closed_form():
  """Every IN canary scored above every OUT one: guessing the k = 32 members IN is all correct,
  and under eps-DP P[Bin(k, e^eps / (1 + e^eps)) >= k] = p^k. The Bonferroni correction over
  thresholds divides alpha by 3 (a perfect separation's Pareto frontier of thresholds: all,
  the members, none); delta 1e-12 is negligible beside it."""
  k = 64
  keep = np.arange(k) % 2 == 0
  scores = keep.astype(float) + np.linspace(0, 0.1, k)
  p = (0.05 / 3) ** (1 / 32)
  got = auditing.one_run_epsilon(scores, keep, delta=1e-12, alpha=0.05)
  assert got == pytest.approx(math.log(p / (1 - p)), rel=1e-6)
  # delta > 0 only weakens it
  assert auditing.one_run_epsilon(scores, keep, delta=1e-5) <= got
  noise = auditing.one_run_epsilon(np.random.default_rng(1).normal(size=k), keep, 1e-5)
  assert noise < 0.5


def _randomised_response_audit(rng, eps, runs, canaries):
  """Runs of an eps-DP mechanism: each canary IN with probability 1/2, independently; the
  release reports each canary's bit, flipped with probability 1 / (1 + e^eps)."""
  keep = rng.random((runs, canaries)) < 0.5
  flip = rng.random((runs, canaries)) < 1 / (1 + math.exp(eps))
  scores = (keep ^ flip) + 0.01 * rng.random((runs, canaries))  # ties broken at random
  return scores, keep


def test_runs_bound_is_valid_for_a_dp_mechanism_and_finds_a_leaky_one():
  rng = np.random.default_rng(0)
  # an eps = 1 mechanism: the bound stays below 1 in (far more than) 95% of audits
  found = [auditing.runs_one_run_epsilon(*_randomised_response_audit(rng, 1.0, 8, 64), 1e-5)
           for _ in range(30)]
  assert sum(f["epsilon_lb"] > 1.0 for f in found) <= 1
  assert all(f["per_run"][f["run"]] == f["epsilon_lb"] for f in found)
  # an eps = 6 mechanism is caught
  leaky = auditing.runs_one_run_epsilon(*_randomised_response_audit(rng, 6.0, 8, 64), 1e-5)
  assert leaky["epsilon_lb"] > 1.5


def test_runs_bound_is_each_run_at_alpha_over_m():
  rng = np.random.default_rng(2)
  scores, keep = _randomised_response_audit(rng, 3.0, 4, 40)
  out = auditing.runs_one_run_epsilon(scores, keep, 1e-5, alpha=0.05)
  want = [auditing.one_run_epsilon(s, k, 1e-5, 0.05 / 4) for s, k in zip(scores, keep)]
  assert out["per_run"] == pytest.approx(want) and out["epsilon_lb"] == max(want)


def test_bound_violations_name_where_an_attack_beats_the_bound():
  bound = lambda fpr: 5 * fpr  # pylint: disable=unnecessary-lambda-assignment
  points = {"loss/all_members": {0.01: (0.2, 0.1, 0.01)},
            "lira/all_members": {0.01: (0.2, 0.04, 0.01)},
            # as strong, but its FPR is pinned down by too few non-members
            "lira/canaries": {0.01: (0.2, 0.1, 0.03)}}
  got = auditing.bound_violations(points, bound)
  assert [v["where"] for v in got] == ["loss/all_members"]
  # 0 of 30 non-members: the FPR may still be 11.6% (Clopper-Pearson, 97.5% one-sided)
  assert auditing.fpr_upper(0.001, 30) == pytest.approx(1 - 0.025 ** (1 / 30), rel=1e-9)


@pytest.mark.parametrize("bad", [
    dict(scores=np.zeros((3, 1)), keep=np.zeros((3, 1), bool)),
    dict(scores=np.zeros((3, 4)), keep=np.zeros((3, 5), bool)),
])
def test_bad_canary_trials_are_named(bad):
  with pytest.raises(ValueError, match="canaries"):
    auditing.split_half_epsilon(**bad)
  with pytest.raises(ValueError, match="canaries"):
    auditing.runs_one_run_epsilon(**bad, delta=1e-5)


def test_a_run_without_out_canaries_is_named():
  with pytest.raises(ValueError, match="both IN and OUT"):
    auditing.one_run_epsilon(np.zeros(4), np.ones(4, bool), 1e-5)
