"""Visual privacy of a released synthetic set: nearest real images and a distance attack.

All functions take PIXELS (N, H, W, C) in [0, 1] (use ``SyntheticSet.pixels()`` and
``Dataset.preprocessing.invert``), so distances mean the same for every preprocessing.

SSIM runs in float64 numpy on CPU and as one jitted float32 program per shape on GPU/TPU
(``ssim_device``; the same formula, within 1e-5 of the numpy one, tested): at CIFAR shapes the
numpy path costs ~1 ms per image pair on 2 cores, which a paper-scale pool (50,000 images x 64
candidates x 64 runs) turns into days.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. (2004) constants, data range 1


def _window(h: int, w: int) -> int:
  """7, or the largest odd size that fits in an (h, w) image."""
  k = min(7, h, w)
  return k if k % 2 else k - 1


def _ssim_from_means(a, b, local_mean):
  """Wang et al.'s SSIM map from windowed means, averaged over (H, W, C); numpy or jax arrays
  (the same operations in the same order for both)."""
  mu_a, mu_b = local_mean(a), local_mean(b)
  var_a = local_mean(a * a) - mu_a ** 2
  var_b = local_mean(b * b) - mu_b ** 2
  cov = local_mean(a * b) - mu_a * mu_b
  c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) *
                                                   (var_a + var_b + c2))
  return s.mean(axis=(-3, -2, -1))


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

  return _ssim_from_means(a, b, local_mean)


@functools.partial(jax.jit, static_argnames="k")
def _ssim_jit(a: jax.Array, b: jax.Array, k: int) -> jax.Array:
  window = (1,) * (a.ndim - 3) + (k, k, 1)

  def local_mean(x):
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, (1,) * x.ndim, "VALID")
    return total / (k * k)

  return _ssim_from_means(a, b, local_mean)


def ssim_device(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """``ssim`` as one jitted program on the default device, in float32."""
  a, b = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32))
  return np.asarray(_ssim_jit(jnp.asarray(a), jnp.asarray(b), _window(*a.shape[-3:-1])),
                    np.float64)


SSIM_ON_DEVICE: bool | None = None  # None: per backend; True / False force a path (benchmarks)


def _ssim_for_backend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """numpy float64 on CPU (the audit's golden numbers), the jitted program elsewhere."""
  on_device = jax.default_backend() != "cpu" if SSIM_ON_DEVICE is None else SSIM_ON_DEVICE
  return ssim_device(a, b) if on_device else ssim(a, b)


def _l2_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  a = a.reshape(len(a), -1)
  b = b.reshape(len(b), -1)
  sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
  return np.sqrt(np.maximum(sq, 0.0))


def nearest_real(synthetic: np.ndarray, real: np.ndarray, metric: str = "l2",
                 chunk: int = 64, shortlist: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """For each synthetic image, the index of its nearest real image and the distance.

  metric "l2": Euclidean distance in pixel space; "ssim": 1 - SSIM (0 for identical).
  synthetic: (S, H, W, C); real: (N, H, W, C). Returns (indices (S,), distances (S,)).
  shortlist: for "ssim", compare only with the ``shortlist`` L2-nearest real images (exact when
  shortlist >= N; SSIM against every real image costs S*N windowed passes, too much at 50k).
  """
  synthetic = np.asarray(synthetic, np.float64)
  real = np.asarray(real, np.float64)
  if synthetic.shape[1:] != real.shape[1:]:
    raise ValueError(f"Image shapes differ: synthetic {synthetic.shape[1:]} vs real "
                     f"{real.shape[1:]}.")
  if metric not in ("l2", "ssim"):
    raise ValueError(f"Unknown metric {metric!r}; expected 'l2' or 'ssim'.")
  if shortlist is not None and shortlist < 1:
    raise ValueError(f"shortlist must be None or >= 1, got {shortlist!r}.")
  if metric == "l2":
    d = _l2_distances(synthetic, real)
    idx = d.argmin(axis=1)
    return idx, d[np.arange(len(d)), idx]
  if shortlist is None or shortlist >= len(real):
    d = np.concatenate([1.0 - _ssim_for_backend(synthetic[i:i + chunk, None], real[None])
                        for i in range(0, len(synthetic), chunk)])
    idx = d.argmin(axis=1)
    return idx, d[np.arange(len(d)), idx]
  cand = np.argsort(_l2_distances(synthetic, real), axis=1)[:, :shortlist]  # (S, k)
  d = np.concatenate([1.0 - _ssim_for_backend(synthetic[i:i + chunk, None],
                                               real[cand[i:i + chunk]])
                      for i in range(0, len(synthetic), chunk)])
  best = d.argmin(axis=1)
  rows = np.arange(len(d))
  return cand[rows, best], d[rows, best]


def distance_scores(candidates: np.ndarray, synthetic: np.ndarray, metric: str = "l2",
                    shortlist: int | None = None) -> np.ndarray:
  """Membership scores for the threat model where the synthetic set itself is released:
  minus the distance of each candidate to its nearest synthetic image (higher = member)."""
  _, d = nearest_real(candidates, synthetic, metric, shortlist=shortlist)
  return -d


def released_set_privacy(synthetic: np.ndarray, init_indices: np.ndarray, pool: np.ndarray,
                         keep: np.ndarray, shortlist: int | None = 64) -> dict:
  """Visual privacy of the released synthetic sets of M runs over one pool (all in PIXELS).

  synthetic: (M, S, H, W, C); init_indices: (M, S) pool indices (-1: noise init); pool:
  (N, H, W, C); keep: (M, N) membership. For each metric ("l2", "ssim") returns
    nearest:  (M, S) pool index of each synthetic image's nearest real image, and its distance;
    own_init_fraction: how often that nearest image is the synthetic image's own init image;
    member_fraction: how often it is a member of the run (a non-member would be a coincidence);
    scores: (M, N) distance-attack membership scores (minus the distance of each pool example
      to the nearest synthetic image of the run), for ``stratified_metrics``.
  """
  synthetic = np.asarray(synthetic)
  init_indices = np.asarray(init_indices)
  keep = np.asarray(keep, bool)
  if synthetic.ndim != 5 or synthetic.shape[:2] != init_indices.shape:
    raise ValueError(f"synthetic must be (M, S, H, W, C) matching init_indices (M, S); got "
                     f"{synthetic.shape} and {init_indices.shape}.")
  if keep.shape != (synthetic.shape[0], len(pool)):
    raise ValueError(f"keep must be (M, N) = {(synthetic.shape[0], len(pool))}, got "
                     f"{keep.shape}.")
  out = {}
  rows = np.arange(synthetic.shape[1])
  for metric in ("l2", "ssim"):
    nearest = [nearest_real(s, pool, metric, shortlist=shortlist) for s in synthetic]
    idx = np.stack([n[0] for n in nearest])
    dist = np.stack([n[1] for n in nearest])
    scores = np.stack([distance_scores(pool, s, metric, shortlist=shortlist)
                       for s in synthetic])
    has_init = init_indices >= 0
    out[metric] = {
        "nearest_index": idx, "nearest_distance": dist, "scores": scores,
        "own_init_fraction": (float((idx == init_indices)[has_init].mean())
                              if has_init.any() else None),
        "member_fraction": float(np.mean([keep[m, idx[m, rows]].mean()
                                          for m in range(len(idx))])),
    }
  return out
