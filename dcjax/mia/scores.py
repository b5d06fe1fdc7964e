"""The stable logit-scaled confidence of the true class (LiRA's statistic)."""

from __future__ import annotations

import numpy as np

TINY = 1e-45  # the LiRA reference's floor inside both logs


def logit_scaled_confidence(logits, labels, reference_floor: bool = False) -> np.ndarray:
  """phi = log p_y - log(sum_{k != y} p_k) = z_y - logsumexp_{k != y} z_k, in float64.

  logits: (..., N, K); labels: (N,). Returns (..., N) float64, exact for any margin.
  ``reference_floor=True`` computes it as LiRA's reference code does (max-subtracted softmax
  in float64, +1e-45 inside both logs), which caps phi near 103.6 for very confident models;
  kept for parity checks against that code.
  """
  z = np.asarray(logits, np.float64)
  labels = np.asarray(labels)
  if z.shape[-2] != labels.shape[0]:
    raise ValueError(f"logits have {z.shape[-2]} examples but labels {labels.shape[0]}.")
  onehot = np.arange(z.shape[-1]) == labels[:, None]
  if not reference_floor:
    z_y = np.sum(np.where(onehot, z, 0.0), axis=-1)
    rest = np.where(onehot, -np.inf, z)
    top = rest.max(axis=-1, keepdims=True)
    return z_y - (top[..., 0] + np.log(np.sum(np.exp(rest - top), axis=-1)))
  z = z - z.max(axis=-1, keepdims=True)
  p = np.exp(z)
  p /= p.sum(axis=-1, keepdims=True)
  p_y = np.sum(np.where(onehot, p, 0.0), axis=-1)
  p_rest = np.sum(np.where(onehot, 0.0, p), axis=-1)
  return np.log(p_y + TINY) - np.log(p_rest + TINY)


def view_averaged_scores(view_logits, labels) -> np.ndarray:
  """(M, V, N, K) logits under V query views -> (M, N) phi averaged over the views."""
  return logit_scaled_confidence(view_logits, labels).mean(axis=-2)
