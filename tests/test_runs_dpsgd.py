"""The dpsgd recipe: its syntax and its noise calibrated so that every run meets its epsilon."""

import jax
import numpy as np
import pytest

from dcjax.mia import balanced_keep_masks
from dcjax import accounting
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


def test_every_run_meets_its_epsilon_and_the_smallest_run_exactly():
  keep = np.asarray(balanced_keep_masks(jax.random.key(0), 2, 90))
  keep[0, np.flatnonzero(keep[0])[:5]] = False  # runs of different sizes
  cfg = DPSGD(2.0, clip=0.7).train_config(BASE, keep)
  assert cfg.sampling == "poisson" and cfg.dp_clip == 0.7 and cfg.dp_noise > 0
  counts = keep.sum(1)
  eps = [accounting.epsilon(accounting.dpsgd_mechanism(cfg, int(n), int(counts.max())))
         for n in counts]
  assert max(eps) <= 2.0 * 1.0001
  assert eps[int(counts.argmin())] == pytest.approx(2.0, rel=0.01)


# DP-SGD end to end (runs, attacks, its bound, canaries): the TINY audit of tests/test_audit.py.
