"""Per-example exposure: how often each pool example is caught when it is a member.

An example's exposure is its TPR at a fixed low FPR across the runs where it is IN: the fraction
of those runs in which the attack scores it above the threshold that lets through ``fpr`` of all
non-member trials (pooled over runs, as the attack tables pool them). With M runs each example is
IN for M/2 of them, so exposures are multiples of 2/M.
"""

from __future__ import annotations

import numpy as np

EXPOSURE_FPR = 0.01


def threshold_at_fpr(scores, keep, fpr: float, exclude=None) -> float:
  """The score above which at most ``fpr`` of the non-member trials lie."""
  scores, keep = np.asarray(scores, np.float64), np.asarray(keep, bool)
  counted = ~keep if exclude is None else ~keep & ~np.asarray(exclude, bool)[None]
  negatives = np.sort(scores[counted])
  if negatives.size == 0:
    raise ValueError("No non-member trial to set a threshold with.")
  allowed = int(np.floor(fpr * negatives.size))  # trials allowed above the threshold
  return float(negatives[negatives.size - allowed - 1]) if allowed < negatives.size else -np.inf


def per_example_tpr(scores, keep, fpr: float = EXPOSURE_FPR, exclude=None) -> np.ndarray:
  """(M, N) membership scores and keep -> (N,) exposure in [0, 1] (NaN: never IN)."""
  scores, keep = np.asarray(scores, np.float64), np.asarray(keep, bool)
  caught = (scores > threshold_at_fpr(scores, keep, fpr, exclude)) & keep
  members = keep.sum(0)
  return np.where(members > 0, caught.sum(0) / np.maximum(members, 1), np.nan)


def most_exposed(exposure, count: int, is_init=None, is_canary=None, keep=None) -> list[dict]:
  """The ``count`` most exposed examples (ties by index): index, exposure, the fraction of
  its IN runs in which it was an init image (is_init, keep (M, N)), and whether a canary."""
  exposure = np.asarray(exposure, np.float64)
  order = np.lexsort((np.arange(len(exposure)), -np.nan_to_num(exposure, nan=-1.0)))[:count]
  rows = []
  for i in order:
    row = {"index": int(i), "exposure": float(exposure[i])}
    if is_init is not None and keep is not None:
      members = max(int(np.asarray(keep)[:, i].sum()), 1)
      row["init_fraction"] = float(np.asarray(is_init)[:, i].sum() / members)
    row["canary"] = bool(is_canary[i]) if is_canary is not None else False
    rows.append(row)
  return rows
