"""Class-balanced index sampling with static shapes (usable under jit and vmap)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_per_class(labels, num_classes: int, per_class: int, mask=None,
                    what: str = "examples") -> None:
  """Raises if some class has fewer than ``per_class`` (IN) examples. Host-side."""
  labels = np.asarray(labels)
  if mask is not None:
    mask = np.asarray(mask, bool)
    if mask.shape != labels.shape:
      raise ValueError(f"mask must have shape {labels.shape}, got {mask.shape}.")
    labels = labels[mask]
  counts = np.bincount(labels, minlength=num_classes)
  if per_class < 1:
    raise ValueError(f"per_class must be >= 1, got {per_class}.")
  short = np.flatnonzero(counts < per_class)
  if short.size:
    detail = ", ".join(f"class {c}: {counts[c]}" for c in short[:10])
    raise ValueError(f"Cannot draw {per_class} {what} per class without replacement; "
                     f"too few available ({detail}).")


def sample_per_class(key: jax.Array, labels: jax.Array, num_classes: int, per_class: int,
                     mask: jax.Array | None = None) -> jax.Array:
  """Draws ``per_class`` distinct indices of each class, only where ``mask`` is True.

  labels: (N,) int; mask: (N,) bool or None. Returns (num_classes, per_class) int32 indices,
  uniformly random without replacement. Shapes are static, so this runs under jit and vmap;
  call ``check_per_class`` first where inputs are concrete (a class with too few members
  would otherwise yield indices of other examples).
  """
  labels = jnp.asarray(labels)
  allowed = jnp.ones(labels.shape, bool) if mask is None else jnp.asarray(mask, bool)
  u = jax.random.uniform(key, (num_classes, labels.shape[0]))
  own = (labels[None, :] == jnp.arange(num_classes)[:, None]) & allowed[None, :]
  scores = jnp.where(own, u, 2.0 + u)  # members of the class sort first, in random order
  _, idx = jax.lax.top_k(-scores, per_class)
  return idx.astype(jnp.int32)
