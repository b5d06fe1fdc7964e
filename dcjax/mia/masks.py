"""Balanced membership masks: every example is IN for exactly half of the runs."""

from __future__ import annotations

import jax
import numpy as np


def balanced_keep_masks(key: jax.Array, num_runs: int, num_examples: int) -> np.ndarray:
  """(num_runs, num_examples) bool; column sums are exactly num_runs / 2.

  Draws U(M, N) from ``key``, ranks each column over the run axis, keeps rank < M/2.
  """
  if not isinstance(num_runs, (int, np.integer)) or num_runs < 2 or num_runs % 2:
    raise ValueError(f"The number of runs must be an even int >= 2 (each example IN for "
                     f"exactly half of them), got {num_runs!r}.")
  if num_examples < 1:
    raise ValueError(f"The pool must hold at least one example, got {num_examples}.")
  u = np.asarray(jax.random.uniform(key, (num_runs, num_examples)))
  order = np.argsort(np.argsort(u, axis=0), axis=0)
  return order < num_runs // 2
