"""Empirical epsilon lower bounds (split-half Clopper-Pearson, one-run) and the bound check."""

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
  k = 64
  keep = np.arange(k) % 2 == 0
  scores = keep.astype(float) + np.linspace(0, 0.1, k)  # every guess right
  out = auditing.one_run_epsilon(scores, keep, alpha=0.05)
  r = out["guesses"]
  assert r == 32 and out["correct"] == r
  p = 0.05 ** (1 / r)  # P[Bin(r, p) >= r] = p^r = alpha
  assert out["epsilon_lb"] == pytest.approx(math.log(p / (1 - p)), rel=1e-6)
  rng = np.random.default_rng(1)
  noise = auditing.one_run_epsilon(rng.normal(size=k), keep)
  assert noise["epsilon_lb"] < 1.0


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
