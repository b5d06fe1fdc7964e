"""Privacy accounting: published constants, the analytic Gaussian mechanism, calibration and the
trade-off curve against closed forms."""

import math

import dp_accounting
import numpy as np
import pytest
from scipy import stats

from dcjax.privacy import accounting
from dcjax.privacy.accounting import SampledGaussian
from dcjax.train import TrainConfig

# De et al. (2022), CIFAR-10 at eps 1: noise multiplier 10, batch 4096 of 50,000, 875 steps;
# published as eps ~0.99 by RDP and ~0.90 by PLD at delta 1e-5 (De et al. 2022, "Unlocking
# High-Accuracy Differentially Private Image Classification through Scale")
DE_ET_AL = SampledGaussian(10.0, 4096 / 50_000, 875)


def test_rdp_and_pld_agree_within_ten_percent_on_a_dpsgd_schedule():
  rdp = accounting.epsilon(DE_ET_AL, 1e-5, "rdp")
  pld = accounting.epsilon(DE_ET_AL, 1e-5, "pld")
  assert abs(rdp - 0.99) < 0.02 and abs(pld - 0.90) < 0.02
  assert abs(rdp - pld) <= 0.1 * pld
  assert pld <= rdp  # RDP's conversion to (eps, delta) is never tighter


@pytest.mark.parametrize("sigma", [0.8, 1.5, 3.0])
def test_one_full_batch_gaussian_step_matches_the_analytic_gaussian_mechanism(sigma):
  analytic = accounting.analytic_gaussian_epsilon(sigma, 1e-5)
  # the closed form of Balle & Wang, as dp-accounting's own implementation computes it
  assert analytic == pytest.approx(dp_accounting.get_epsilon_gaussian(sigma, 1e-5), abs=1e-6)
  pld = accounting.epsilon(SampledGaussian(sigma, 1.0, 1), 1e-5, "pld")
  assert pld == pytest.approx(analytic, abs=1e-3)


def test_calibrated_noise_reaches_the_target_epsilon_and_no_less_noise_would():
  sigmas = []
  for target in (1.0, 4.0):
    sigma = accounting.calibrate_noise(target, 0.2, 20)
    eps = accounting.epsilon(SampledGaussian(sigma, 0.2, 20))
    assert target * 0.99 <= eps <= target * 1.0001
    assert accounting.epsilon(SampledGaussian(sigma * 0.97, 0.2, 20)) > target
    sigmas.append(sigma)
  assert sigmas[0] > sigmas[1]


def test_tradeoff_curve_of_one_gaussian_step_is_the_gaussian_dp_curve():
  """One Gaussian mechanism of noise multiplier sigma is exactly (1/sigma)-GDP: the best test
  has TPR = Phi(Phi^-1(FPR) + 1/sigma). The PLD bound may only sit above it, and closely."""
  sigma = 1.0
  fpr = np.array([1e-4, 1e-3, 1e-2, 0.1, 0.5])
  exact = stats.norm.cdf(stats.norm.ppf(fpr) + 1 / sigma)
  bound = accounting.tradeoff_curve(SampledGaussian(sigma, 1.0, 1), fpr,
                                    eps_grid=np.linspace(0, 12, 1201))
  assert np.all(bound >= exact - 1e-6)
  np.testing.assert_allclose(bound, exact, atol=0.02)
  assert np.all(np.diff(bound) > 0)


def test_truncated_poisson_batches_are_accounted_by_pld_and_refused_by_rdp():
  cfg = TrainConfig(epochs=2, batch_size=64, sampling="poisson", dp_clip=1.0, dp_noise=2.0,
                    dataset_size=300)
  mech = accounting.dpsgd_mechanism(cfg, largest_set=320)
  # rate and steps from the public size, truncation accounted at the largest set
  assert mech.steps == 2 * math.ceil(300 / 64) and mech.sample_rate == pytest.approx(64 / 300)
  assert mech.dataset_size == 320
  assert mech.truncated and mech.capacity == math.ceil(64 + 5 * 8)
  truncated = accounting.epsilon(mech)
  plain = accounting.epsilon(SampledGaussian(2.0, 64 / 300, mech.steps))
  assert truncated == pytest.approx(plain, rel=1e-3)  # 5 standard deviations: ~never truncated
  with pytest.raises(ValueError, match="RDP accountant has no truncated"):
    accounting.epsilon(mech, accountant="rdp")


def test_bad_input_is_named():
  with pytest.raises(ValueError, match="delta must be in"):
    accounting.epsilon(DE_ET_AL, delta=0.0)
  with pytest.raises(ValueError, match="sample_rate must be in"):
    SampledGaussian(1.0, 1.5, 10)
  with pytest.raises(ValueError, match="Unknown accountant 'moments'"):
    accounting.epsilon(DE_ET_AL, accountant="moments")
  with pytest.raises(ValueError, match="target_epsilon must be"):
    accounting.calibrate_noise(0.0, 0.1, 10)
  with pytest.raises(ValueError, match="needs DP-SGD with Poisson sampling"):
    accounting.dpsgd_mechanism(TrainConfig(dp_clip=1.0), 100)
  with pytest.raises(ValueError, match="needs a public dataset_size"):
    TrainConfig(dp_clip=1.0, sampling="poisson")
  assert accounting.epsilon(SampledGaussian(0.0, 0.1, 10)) == math.inf
