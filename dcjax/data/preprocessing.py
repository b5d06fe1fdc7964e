"""Per-channel normalisation and optional ZCA whitening, each with its inverse.

A ``Preprocessing`` travels with every ``Dataset`` and every synthetic set, so that a released
set can always be mapped back to pixel space.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

# As VICO-UoE/DatasetCondensation's utils.py (get_dataset): (mean, std) per channel of the training split, pixels in [0, 1].
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2861,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


@flax.struct.dataclass
class Preprocessing:
  """Maps pixels in [0, 1] to model inputs and back.

  mean, std: per-channel tuples (static). zca, zca_inverse: (D, D) with D = H*W*C, or None.
  Forward: x -> (x - mean) / std -> flatten @ zca. Inverse undoes both.
  """

  mean: tuple[float, ...] = flax.struct.field(pytree_node=False)
  std: tuple[float, ...] = flax.struct.field(pytree_node=False)
  zca: jax.Array | None = None
  zca_inverse: jax.Array | None = None

  def apply(self, pixels: jax.Array) -> jax.Array:
    """(..., H, W, C) pixels in [0, 1] -> normalised (and whitened) images."""
    x = (pixels - jnp.asarray(self.mean)) / jnp.asarray(self.std)
    if self.zca is not None:
      shape = x.shape
      x = (x.reshape(-1, self.zca.shape[0]) @ self.zca).reshape(shape)
    return x

  def invert(self, images: jax.Array) -> jax.Array:
    """Normalised images -> pixels (not clipped: synthetic images may leave [0, 1])."""
    x = images
    if self.zca_inverse is not None:
      shape = x.shape
      x = (x.reshape(-1, self.zca_inverse.shape[0]) @ self.zca_inverse).reshape(shape)
    return x * jnp.asarray(self.std) + jnp.asarray(self.mean)

  def to_json(self) -> dict:
    return {"mean": list(self.mean), "std": list(self.std), "zca": self.zca is not None}


def fit_zca(normalised: np.ndarray, regularization: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
  """ZCA whitening fitted on (N, H, W, C) normalised images.

  Eigenvalues are floored by ``regularization * mean(eigenvalues)`` (the usual choice in the
  KIP / FRePo line of work). Returns (zca, zca_inverse), each (D, D) float32.
  """
  x = np.asarray(normalised, np.float64).reshape(len(normalised), -1)
  cov = x.T @ x / len(x)
  eigval, eigvec = np.linalg.eigh(cov)
  eigval = np.maximum(eigval, 0.0) + regularization * eigval.mean()
  zca = (eigvec * eigval**-0.5) @ eigvec.T
  inverse = (eigvec * eigval**0.5) @ eigvec.T
  return zca.astype(np.float32), inverse.astype(np.float32)


def channel_stats(pixels: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and std of (N, H, W, C) pixels, as tuples of Python floats."""
  pixels = np.asarray(pixels, np.float64)
  mean = pixels.mean(axis=(0, 1, 2))
  std = pixels.std(axis=(0, 1, 2))
  return tuple(float(m) for m in mean), tuple(float(max(s, 1e-8)) for s in std)
