"""Visual privacy of a released synthetic set: nearest real images and a distance attack.

All functions take PIXELS (N, H, W, C) in [0, 1] (use ``SyntheticSet.pixels()`` and
``Dataset.preprocessing.invert``), so distances mean the same for every preprocessing.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. (2004) constants, data range 1


def _window(h: int, w: int) -> int:
  """7, or the largest odd size that fits in an (h, w) image."""
  k = min(7, h, w)
  return k if k % 2 else k - 1


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Mean SSIM between images a (..., H, W, C) and b (broadcastable), uniform 7x7 windows.

  Windows shrink to the largest odd size that fits (5 for 6x6 images; 7 for 8x8). Channels are
  averaged. Returns (...,) with 1 for identical images.
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  a, b = np.broadcast_arrays(a, b)
  h, w = a.shape[-3:-1]
  k = _window(h, w)

  def local_mean(x):
    return sliding_window_view(x, (k, k), axis=(-3, -2)).mean(axis=(-2, -1))

  mu_a, mu_b = local_mean(a), local_mean(b)
  var_a = local_mean(a * a) - mu_a ** 2
  var_b = local_mean(b * b) - mu_b ** 2
  cov = local_mean(a * b) - mu_a * mu_b
  c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) *
                                                   (var_a + var_b + c2))
  return s.mean(axis=(-3, -2, -1))


def nearest_real(synthetic: np.ndarray, real: np.ndarray, metric: str = "l2",
                 chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
  """For each synthetic image, the index of its nearest real image and the distance.

  metric "l2": Euclidean distance in pixel space; "ssim": 1 - SSIM (0 for identical).
  synthetic: (S, H, W, C); real: (N, H, W, C). Returns (indices (S,), distances (S,)).
  """
  synthetic = np.asarray(synthetic, np.float64)
  real = np.asarray(real, np.float64)
  if synthetic.shape[1:] != real.shape[1:]:
    raise ValueError(f"Image shapes differ: synthetic {synthetic.shape[1:]} vs real "
                     f"{real.shape[1:]}.")
  if metric == "l2":
    s = synthetic.reshape(len(synthetic), -1)
    r = real.reshape(len(real), -1)
    sq = (s * s).sum(1)[:, None] + (r * r).sum(1)[None] - 2 * s @ r.T
    d = np.sqrt(np.maximum(sq, 0.0))
  elif metric == "ssim":
    d = np.concatenate([1.0 - ssim(synthetic[i:i + chunk, None], real[None])
                        for i in range(0, len(synthetic), chunk)])
  else:
    raise ValueError(f"Unknown metric {metric!r}; expected 'l2' or 'ssim'.")
  idx = d.argmin(axis=1)
  return idx, d[np.arange(len(d)), idx]


def distance_scores(candidates: np.ndarray, synthetic: np.ndarray,
                    metric: str = "l2") -> np.ndarray:
  """Membership scores for the threat model where the synthetic set itself is released:
  minus the distance of each candidate to its nearest synthetic image (higher = member)."""
  _, d = nearest_real(candidates, synthetic, metric)
  return -d
