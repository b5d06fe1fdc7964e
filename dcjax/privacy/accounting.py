"""Privacy accounting with ``dp-accounting``: DP-SGD and DP-condensation events, epsilon by the
PLD or RDP accountant, noise calibration to a target epsilon, the analytic Gaussian mechanism,
and the trade-off curve (the largest TPR any membership test can reach at each FPR).

Everything here is add-or-remove-one adjacency (the adjacency of membership inference: a pool
example is in a run's training set or not). ``dp_accounting`` is imported lazily, so dcjax
imports without it (install the ``privacy`` extra to account).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math

import numpy as np
from scipy import optimize, stats

from dcjax import checks

ACCOUNTANTS = ("pld", "rdp")
DEFAULT_DELTA = 1e-5
# The PLD's grid of privacy-loss values: dp-accounting's default for reported epsilons; a
# coarser one inside the calibration's search (10x faster; a coarser grid only overestimates
# epsilon, so the calibrated noise stays sufficient)
PLD_DISCRETISATION = 1e-4
PLD_SEARCH_DISCRETISATION = 1e-3


def _dpa():
  try:
    import dp_accounting  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - the test extra installs it
    raise ImportError("privacy accounting needs dp-accounting: pip install 'dcjax[privacy]'"
                      ) from e
  return dp_accounting


@dataclasses.dataclass(frozen=True)
class SampledGaussian:
  """``steps`` compositions of a Gaussian mechanism of noise multiplier ``noise_multiplier``
  (noise std / L2 sensitivity) on a Poisson sample of rate ``sample_rate`` (1.0: every
  example, no subsampling). DP-SGD: one composition per step; NDPDC: one per iteration."""

  noise_multiplier: float
  sample_rate: float
  steps: int
  # Poisson batches truncated to ``capacity`` of a dataset of ``dataset_size`` (a uniformly
  # random subset when more are drawn): the PLD accountant accounts for it exactly
  dataset_size: int | None = None
  capacity: int | None = None

  def __post_init__(self):
    if not (isinstance(self.noise_multiplier, (int, float)) and self.noise_multiplier >= 0):
      raise ValueError(f"noise_multiplier must be a float >= 0, got {self.noise_multiplier!r}.")
    if not (isinstance(self.sample_rate, (int, float)) and 0 < self.sample_rate <= 1):
      raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate!r}.")
    if not (isinstance(self.steps, int) and self.steps >= 1):
      raise ValueError(f"steps must be an int >= 1, got {self.steps!r}.")
    if (self.capacity is None) != (self.dataset_size is None):
      raise ValueError(f"capacity and dataset_size go together, got capacity="
                       f"{self.capacity!r}, dataset_size={self.dataset_size!r}.")

  @property
  def truncated(self) -> bool:
    return (self.capacity is not None and self.sample_rate < 1
            and self.capacity < self.dataset_size)

  def event(self, truncation: bool = True):
    dpa = _dpa()
    if self.noise_multiplier == 0:
      return dpa.NonPrivateDpEvent()
    if truncation and self.truncated:
      one = dpa.TruncatedSubsampledGaussianDpEvent(
          int(self.dataset_size), float(self.sample_rate), int(self.capacity),
          float(self.noise_multiplier))
    elif self.sample_rate == 1:
      one = dpa.GaussianDpEvent(float(self.noise_multiplier))
    else:
      one = dpa.PoissonSampledDpEvent(float(self.sample_rate),
                                      dpa.GaussianDpEvent(float(self.noise_multiplier)))
    return dpa.SelfComposedDpEvent(one, self.steps)


@contextlib.contextmanager
def _quiet_absl():
  """RDP's series for small noise multipliers log a warning per excluded order while the
  calibration searches; the excluded orders are only not used, the bound stays valid."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _accountant(kind: str, discretisation: float = PLD_DISCRETISATION):
  dpa = _dpa()
  if kind == "pld":
    return dpa.pld.PLDAccountant(value_discretization_interval=discretisation)
  if kind == "rdp":
    return dpa.rdp.RdpAccountant()
  checks.one_of(kind, ACCOUNTANTS, "accountant")


def _check_delta(delta: float) -> None:
  if not (isinstance(delta, (int, float)) and 0 < delta < 1):
    raise ValueError(f"delta must be in (0, 1), got {delta!r}.")


def epsilon(mechanism: SampledGaussian, delta: float = DEFAULT_DELTA,
            accountant: str = "pld") -> float:
  """The epsilon at ``delta`` of the composed mechanism (inf without noise)."""
  _check_delta(delta)
  if mechanism.noise_multiplier == 0:
    return math.inf
  if accountant == "rdp" and mechanism.truncated:
    raise ValueError("the RDP accountant has no truncated Poisson sampling; use 'pld'.")
  acc = _accountant(accountant)
  try:
    acc.compose(mechanism.event())
  except ValueError:
    if accountant != "pld":
      raise
    # the PLD of a tiny noise multiplier needs a grid beyond dp-accounting's size limit; the
    # RDP bound is valid (never below the PLD's), and without it nothing is guaranteed
    if mechanism.truncated:
      return math.inf
    return epsilon(mechanism, delta, "rdp")
  return float(acc.get_epsilon(delta))


@functools.lru_cache(maxsize=64)  # a recipe asks for its noise to train and again to report
def calibrate_noise(target_epsilon: float, sample_rate: float, steps: int,
                    delta: float = DEFAULT_DELTA, accountant: str = "pld",
                    dataset_size: int | None = None, capacity: int | None = None) -> float:
  """The smallest noise multiplier whose ``steps`` Poisson-sampled Gaussian compositions are
  (target_epsilon, delta)-DP by ``accountant`` (``capacity``: batches truncated as in
  ``SampledGaussian``; PLD only)."""
  if not (isinstance(target_epsilon, (int, float)) and 0 < target_epsilon < math.inf):
    raise ValueError(f"target_epsilon must be a finite float > 0, got {target_epsilon!r}.")
  _check_delta(delta)
  mech = lambda sigma: SampledGaussian(sigma, sample_rate, steps, dataset_size, capacity)
  if accountant == "rdp" and mech(1.0).truncated:
    raise ValueError("the RDP accountant has no truncated Poisson sampling; use 'pld'.")
  dpa = _dpa()
  event = lambda sigma: mech(sigma).event(truncation=False)
  # RDP first, from a wide bracket: cheap at any noise, and an upper bound on the PLD's noise
  # (RDP's epsilon is never below the PLD's). The PLD of a small noise multiplier would
  # need a huge discretised grid, so the PLD search starts inside [RDP / 2, RDP].
  with _quiet_absl():
    sigma = dpa.calibrate_dp_mechanism(lambda: _accountant("rdp"), event, target_epsilon,
                                       delta, dpa.LowerEndpointAndGuess(0.05, 1.0), tol=1e-5)
  if accountant == "rdp":
    return float(sigma)
  if accountant != "pld":
    _accountant(accountant)  # raises, naming the known accountants
  return float(dpa.calibrate_dp_mechanism(
      lambda: _accountant("pld", PLD_SEARCH_DISCRETISATION), lambda sigma: mech(sigma).event(),
      target_epsilon, delta,
      dpa.ExplicitBracketInterval(sigma / 2, sigma * 1.05), tol=1e-3))


def dpsgd_mechanism(cfg, largest_set: int | None = None) -> SampledGaussian:
  """The mechanism of every DP-SGD run of ``cfg`` (a ``TrainConfig`` with ``dp_clip``, Poisson
  sampling and its public ``dataset_size`` n): steps = epochs * ceil(n / batch_size) at rate
  q = min(1, batch_size / n), whatever a run's own number of members. Batches are truncated to
  the engine's capacity, accounted for a set of ``largest_set`` examples (default n): the
  largest IN set of the runs, where truncation is likeliest."""
  from dcjax.privacy.mechanisms import poisson_capacity  # pylint: disable=import-outside-toplevel
  if not cfg.is_dp or cfg.sampling != "poisson" or cfg.dataset_size is None:
    raise ValueError(f"accounting needs DP-SGD with Poisson sampling at a public dataset_size, "
                     f"got dp_clip={cfg.dp_clip!r}, sampling={cfg.sampling!r}, "
                     f"dataset_size={cfg.dataset_size!r}.")
  n = cfg.dataset_size
  largest_set = max(largest_set or n, 1)
  return SampledGaussian(float(cfg.dp_noise), cfg.poisson_rate,
                         cfg.epochs * cfg.steps_per_epoch(n), largest_set,
                         poisson_capacity(cfg.poisson_rate * n, largest_set))


@dataclasses.dataclass(frozen=True)
class Guarantee:
  """What a recipe proves of every one of its runs: ``mechanism`` is (epsilon, ``delta``)-DP
  under add/remove-one adjacency, epsilon by the PLD accountant."""

  mechanism: SampledGaussian
  delta: float = DEFAULT_DELTA

  def __post_init__(self):
    _check_delta(self.delta)

  @property
  def epsilon(self) -> float:
    return epsilon(self.mechanism, self.delta)

  def to_json(self) -> dict:
    return {"epsilon": self.epsilon, "delta": self.delta, "accountant": "pld",
            "mechanism": dataclasses.asdict(self.mechanism)}


def analytic_gaussian_delta(sigma: float, eps: float) -> float:
  """delta(eps) of one Gaussian mechanism, noise std ``sigma`` per unit sensitivity (Balle & Wang
  2018, Theorem 8): Phi(1/(2 sigma) - eps sigma) - e^eps Phi(-1/(2 sigma) - eps sigma)."""
  a = 1.0 / (2.0 * sigma)
  return float(stats.norm.cdf(a - eps * sigma)
               - math.exp(eps) * stats.norm.cdf(-a - eps * sigma))


def analytic_gaussian_epsilon(sigma: float, delta: float = DEFAULT_DELTA) -> float:
  """The exact epsilon at ``delta`` of one Gaussian mechanism (the root of
  analytic_gaussian_delta in eps; 0 when delta already holds at eps 0)."""
  _check_delta(delta)
  if analytic_gaussian_delta(sigma, 0.0) <= delta:
    return 0.0
  hi = 1.0
  while analytic_gaussian_delta(sigma, hi) > delta:
    hi *= 2.0
  return float(optimize.brentq(lambda e: analytic_gaussian_delta(sigma, e) - delta, 0.0, hi,
                               xtol=1e-12))


def tradeoff_curve(mechanism: SampledGaussian, fpr: np.ndarray,
                   eps_grid: np.ndarray | None = None) -> np.ndarray:
  """The largest TPR of any membership test at each FPR allowed by the mechanism's privacy
  loss distribution: min over eps of e^eps FPR + delta(eps) and
  1 - e^-eps (1 - delta(eps) - FPR), with delta(eps) from the PLD accountant on ``eps_grid``
  (default: 0 to 30 in 601 steps). A curve without noise is 1 everywhere.

  fpr: (K,) in [0, 1]. Returns (K,) in [FPR, 1]."""
  fpr = np.clip(np.asarray(fpr, np.float64), 0.0, 1.0)
  if mechanism.noise_multiplier == 0:
    return np.ones_like(fpr)
  acc = _accountant("pld")
  acc.compose(mechanism.event())
  eps = np.linspace(0.0, 30.0, 601) if eps_grid is None else np.asarray(eps_grid, np.float64)
  deltas = np.array([acc.get_delta(float(e)) for e in eps])
  e, d = np.exp(eps)[:, None], deltas[:, None]
  first = e * fpr[None] + d
  second = 1.0 - (1.0 - d - fpr[None]) / e
  return np.clip(np.minimum(first, second).min(0), fpr, 1.0)
