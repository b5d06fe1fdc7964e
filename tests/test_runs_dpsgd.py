"""The dpsgd recipe: its syntax and its noise calibrated so that every run meets its epsilon."""

import jax
import numpy as np
import pytest

from dcjax.mia import balanced_keep_masks
from dcjax.runs import DPSGD, parse
from dcjax.train import TrainConfig

BASE = TrainConfig(epochs=3, batch_size=8, lr=0.05)


def test_syntax_round_trips():
  assert parse("dpsgd(4)") == DPSGD(4.0)
  assert parse("dpsgd(epsilon=2, clip=0.5)") == DPSGD(2.0, 0.5)
  assert str(DPSGD(4.0)) == "dpsgd(4,1,1e-05)"
  for recipe in (DPSGD(4.0), DPSGD(0.5, 2.0, 1e-6)):
    assert parse(str(recipe)) == recipe
  with pytest.raises(ValueError, match="dpsgd needs epsilon > 0 and finite, got 0.0"):
    parse("dpsgd(0)")
  with pytest.raises(ValueError, match="dpsgd needs delta in \\(0, 1\\), got 2.0"):
    DPSGD(1.0, 1.0, 2.0)


def test_one_public_mechanism_for_every_run_and_for_neighbouring_runs():
  keep = np.asarray(balanced_keep_masks(jax.random.key(0), 4, 90))
  cfg, guarantee = DPSGD(2.0, clip=0.7).plan(BASE, None, keep)
  assert cfg.sampling == "poisson" and cfg.dp_clip == 0.7 and cfg.dp_noise > 0
  # n = half the pool: q = batch / n and the normaliser q * n, whatever a run's own size
  assert cfg.dataset_size == 45 and cfg.poisson_rate == pytest.approx(8 / 45)
  assert guarantee.mechanism.sample_rate == cfg.poisson_rate
  assert guarantee.epsilon == pytest.approx(2.0, rel=0.01) and guarantee.epsilon <= 2.0 * 1.0001
  # the runs' masks reversed (other runs, other sizes): the same rate, normaliser and noise
  other, _ = DPSGD(2.0, clip=0.7).plan(BASE, None, keep[::-1])
  assert other == cfg
  # a declared size wins, and masks of another design must declare one
  declared, _ = DPSGD(2.0, clip=0.7, n=60).plan(BASE, None, keep[:1])
  assert declared.dataset_size == 60 and declared.poisson_rate == pytest.approx(8 / 60)
  with pytest.raises(ValueError, match="Declare it"):
    DPSGD(2.0).plan(BASE, None, keep[:1])
  assert str(DPSGD(2.0, 1.0, 1e-5, 60)) == "dpsgd(2,1,1e-05,60)"
  assert parse("dpsgd(2,1,1e-05,60)") == DPSGD(2.0, 1.0, 1e-5, 60)


# DP-SGD end to end (runs, attacks, its bound, canaries): the TINY audit of tests/test_audit.py.
