"""Canaries: worst-case examples planted in the pool, so that an audit measures how much the
most exposed example leaks (Carlini, Feldman & Nasr; Jagielski et al. 2020).

A canary replaces a pool example (drawn from the canary key), so the pool keeps its size and the
canaries are IN for exactly half of the runs like every other example:

* ``mislabeled``: the pool image with a wrong label (the true label plus a random non-zero shift
  modulo the classes): a model can only fit it by memorising it.
* ``ood``: an out-of-distribution image, uniform pixel noise in [0, 1] mapped through the pool's
  preprocessing, with a random label: nothing else in the pool resembles it.
"""

from __future__ import annotations

import jax
import numpy as np

from dcjax import checks
from dcjax.data.dataset import Dataset

CANARY_KINDS = ("mislabeled", "ood")


def insert_canaries(key: jax.Array, pool: Dataset, count: int, kind: str = "mislabeled"
                    ) -> tuple[Dataset, np.ndarray]:
  """Replaces ``count`` pool examples by canaries of ``kind``.

  Returns (pool with the canaries, is_canary (N,) bool). ``count = 0`` returns the pool as is.
  """
  checks.one_of(kind, CANARY_KINDS, "canary kind")
  n = len(pool)
  if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or not 0 <= count <= n // 2:
    raise ValueError(f"The number of canaries must be an int in [0, {n // 2}] (at most half "
                     f"of the {n}-example pool), got {count!r}.")
  is_canary = np.zeros(n, bool)
  if count == 0:
    return pool, is_canary
  if pool.num_classes < 2:
    raise ValueError("Canaries need at least two classes (a canary's label is a wrong one).")
  k_idx, k_label, k_image = jax.random.split(key, 3)
  idx = np.sort(np.asarray(jax.random.permutation(k_idx, n)[:count]))
  is_canary[idx] = True
  labels = np.array(pool.labels, np.int32)
  images = np.array(pool.images, np.float32)
  if kind == "mislabeled":
    shift = np.asarray(jax.random.randint(k_label, (count,), 1, pool.num_classes))
    labels[idx] = (labels[idx] + shift) % pool.num_classes
  else:
    pixels = jax.random.uniform(k_image, (count, *pool.image_shape))
    images[idx] = np.asarray(pool.preprocessing.apply(pixels))
    labels[idx] = np.asarray(jax.random.randint(k_label, (count,), 0, pool.num_classes))
  return pool.replace(images=images, labels=labels), is_canary
