"""The stable logit-scaled confidence of the true class (LiRA's statistic)."""

from __future__ import annotations

import numpy as np

TINY = 1e-45


def logit_scaled_confidence(logits, labels) -> np.ndarray:
  """phi = log p_y - log(sum_{k != y} p_k), in float64, stable for confident models.

  logits: (..., N, K); labels: (N,). Returns (..., N) float64. Computed as in LiRA's reference
  (max-subtracted softmax in float64, +1e-45 inside both logs).
  """
  z = np.asarray(logits, np.float64)
  labels = np.asarray(labels)
  if z.shape[-2] != labels.shape[0]:
    raise ValueError(f"logits have {z.shape[-2]} examples but labels {labels.shape[0]}.")
  z = z - z.max(axis=-1, keepdims=True)
  p = np.exp(z)
  p /= p.sum(axis=-1, keepdims=True)
  onehot = np.arange(z.shape[-1]) == labels[:, None]
  p_y = np.sum(np.where(onehot, p, 0.0), axis=-1)
  p_rest = np.sum(np.where(onehot, 0.0, p), axis=-1)
  return np.log(p_y + TINY) - np.log(p_rest + TINY)


def view_averaged_scores(view_logits, labels) -> np.ndarray:
  """(M, V, N, K) logits under V query views -> (M, N) phi averaged over the views."""
  return logit_scaled_confidence(view_logits, labels).mean(axis=-2)
