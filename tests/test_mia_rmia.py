"""RMIA and LiRA against known answers: synthetic scores where members and non-members come from
two known Gaussians, whose ideal tests' ROCs are computed here from the distributions alone."""

import jax
import numpy as np
import pytest
import scipy.stats

from dcjax.mia import Population, RMIAConfig, attack_runs, balanced_keep_masks
from dcjax.mia import rmia as rmia_lib

SHIFT = 1.0  # a member's phi is its example's OUT mean + SHIFT, both with sd 1


def _gaussian_study(runs=32, n=1000, population=1000, seed=0):
  """Binary logits [phi, 0] with label 0 (so phi is exactly the logit-scaled confidence and
  p(x|theta) = sigmoid(phi)); phi ~ N(mu_i + SHIFT * member, 1) with per-example mu_i."""
  rng = np.random.default_rng(seed)
  keep = balanced_keep_masks(jax.random.key(seed), runs, n)
  mu = rng.normal(0.0, 1.5, n)
  phi = mu + SHIFT * keep + rng.normal(size=(runs, n))
  mu_pop = rng.normal(0.0, 1.5, population)
  phi_pop = mu_pop + rng.normal(size=(runs, population))
  as_logits = lambda p: np.stack([p, np.zeros_like(p)], -1)[:, None]  # (M, 1, n, 2)
  labels, pop = np.zeros(n, int), Population(as_logits(phi_pop), np.zeros(population, int))
  return as_logits(phi), labels, keep, pop, mu


def _expected_sigmoid(mu):
  """E[sigmoid(mu + e)], e ~ N(0, 1), by Gauss-Hermite quadrature: (len(mu),)."""
  x, w = np.polynomial.hermite_e.hermegauss(60)
  return (scipy.special.expit(np.asarray(mu)[:, None] + x) * w).sum(1) / w.sum()


def _ideal_ratio_auc(mu, prior, samples=400, seed=1):
  """AUC of the ideal RMIA test p(x|theta) / p(x) with the exact p(x) = prior(mu), by sampling
  the known member and non-member distributions (not through dcjax)."""
  rng = np.random.default_rng(seed)
  c = prior(mu)
  member = scipy.special.expit(mu + SHIFT + rng.normal(size=(samples, len(mu)))) / c
  non = scipy.special.expit(mu + rng.normal(size=(samples, len(mu)))) / c
  u = scipy.stats.mannwhitneyu(member.ravel(), non.ravel()).statistic
  return u / member.size / non.size


def test_lira_online_fixed_matches_the_binormal_roc():
  logits, labels, keep, pop, _ = _gaussian_study()
  res = attack_runs(logits, labels, keep, np.full((keep.shape[0], 0), -1),
                    attacks=("lira_online_fixed", "loss"), population=pop)
  m = res["lira_online_fixed"]["all_members"]
  # the Neyman-Pearson test of N(d, 1) against N(0, 1): AUC Phi(d / sqrt 2),
  # TPR at FPR f: Phi(Phi^-1(f) + d)
  assert m.auc == pytest.approx(scipy.stats.norm.cdf(SHIFT / np.sqrt(2)), abs=0.015)
  want = scipy.stats.norm.cdf(scipy.stats.norm.ppf(0.01) + SHIFT)
  lo, hi = m.at(0.01).interval
  assert lo - 0.01 <= want <= hi + 0.01
  # without per-example calibration the spread of mu_i drowns the shift
  assert res["loss"]["all_members"].auc < m.auc - 0.05


@pytest.mark.parametrize("name", ["rmia_online", "rmia_offline"])
def test_rmia_matches_the_ideal_likelihood_ratio_test(name):
  logits, labels, keep, pop, mu = _gaussian_study()
  res = attack_runs(logits, labels, keep, np.full((keep.shape[0], 0), -1), attacks=(name,),
                    population=pop, rmia=RMIAConfig(offline_a=1.0))
  if name == "rmia_online":  # p(x): the equal mixture of the IN and OUT sides
    prior = lambda m: (_expected_sigmoid(m) + _expected_sigmoid(m + SHIFT)) / 2
  else:  # a = 1: p(x) = p_OUT(x)
    prior = _expected_sigmoid
  ideal = _ideal_ratio_auc(mu, prior)
  got = res[name]["all_members"].auc
  # estimating p(x) from 31 references costs a little: within 0.02 below the ideal
  assert ideal - 0.02 <= got <= ideal + 0.01, (got, ideal)
  assert res[name].details["population_size"] == 1000


def test_rmia_offline_a_1_and_a_0_are_the_papers_limits():
  rng = np.random.default_rng(3)
  target, target_pop = rng.uniform(0.05, 1, 50), rng.uniform(0.05, 1, 40)
  refs, refs_pop = rng.uniform(0.05, 1, (6, 50)), rng.uniform(0.05, 1, (6, 40))
  keep = rng.random((6, 50)) < 0.5
  keep[:, 0] = False  # an example with every reference OUT
  p_out = np.array([refs[~keep[:, i], i].mean() for i in range(50)])
  for a, p_x, p_z in [(1.0, p_out, refs_pop.mean(0)),  # a = 1: p(x) is p_OUT(x)
                      (0.0, (p_out + 1) / 2, (refs_pop.mean(0) + 1) / 2)]:  # a = 0: p_IN = 1
    lr = (target / p_x)[:, None] / (target_pop / p_z)[None, :]
    want = (lr >= 1.0).mean(1)
    got = rmia_lib.rmia_scores(target, target_pop, refs, keep, refs_pop, online=False, a=a)
    np.testing.assert_allclose(got, want)


def test_rmia_gamma_counts_population_examples_beaten_by_that_factor():
  target, target_pop = np.array([0.8, 0.2]), np.array([0.1, 0.2, 0.4, 0.8])
  refs, refs_pop = np.full((2, 2), 0.5), np.full((2, 4), 0.5)
  keep = np.array([[True, False], [False, True]])
  got = rmia_lib.rmia_scores(target, target_pop, refs, keep, refs_pop, online=True, gamma=2.0)
  # p(x) = p(z) = 0.5: LR(x, z) = p(x|theta) / p(z|theta) >= 2
  np.testing.assert_allclose(got, [3 / 4, 1 / 4])


def test_offline_a_is_tuned_and_reported_per_target():
  logits, labels, keep, pop, _ = _gaussian_study(runs=8, n=300, population=200)
  res = attack_runs(logits, labels, keep, np.full((8, 0), -1), attacks=("rmia_offline",),
                    population=pop)
  a = res["rmia_offline"].details["offline_a"]
  assert a["tuned"] and len(a["per_target"]) == 8
  assert all(v in rmia_lib.A_GRID for v in a["per_target"])


def test_rmia_without_a_population_is_refused():
  logits, labels, keep, _, _ = _gaussian_study(runs=4, n=20, population=5)
  with pytest.raises(ValueError, match="rmia_online needs population examples"):
    attack_runs(logits, labels, keep, np.full((4, 0), -1), attacks=("rmia_online",))
  with pytest.raises(ValueError, match="offline_a must be None .tuned. or in \\[0, 1\\]"):
    RMIAConfig(offline_a=1.5)
