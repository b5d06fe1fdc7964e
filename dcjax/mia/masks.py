"""Balanced membership masks: every example is IN for exactly half of the runs; equal IN and OUT
sides per example among a target's references."""

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


def equal_sides(shadow_keep) -> tuple[np.ndarray, np.ndarray]:
  """IN and OUT shadow masks (R, N) with, per example, the same number of shadows on each side.

  With balanced masks and leave-one-out, a member target leaves M/2 - 1 IN shadows and M/2 OUT
  shadows, a non-member the reverse. Statistics from unequal counts differ in their noise, and
  that difference is itself a function of the target's membership: a spurious signal that is
  large with few runs. Each side keeps its first min(n_in, n_out) shadows (by run order).
  """
  keep = np.asarray(shadow_keep, bool)
  n = np.minimum(keep.sum(0), (~keep).sum(0))
  in_rank = np.cumsum(keep, axis=0)
  out_rank = np.cumsum(~keep, axis=0)
  return keep & (in_rank <= n), ~keep & (out_rank <= n)
