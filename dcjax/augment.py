"""Differentiable Siamese Augmentation (DSA) as pure ``(key, x) -> x`` functions (NHWC).

Images are normalised (N, H, W, C) arrays; every op is differentiable with respect to them.

* Siamese mode (``siamese=True``, used while condensing): one parameter draw is shared by the
  whole batch, and calling with the same key on the real and the synthetic batch of a class
  applies the same op with the same parameters to both.
* Non-Siamese mode (training networks on synthetic data): the op is chosen once per batch and
  its parameters are drawn per sample.
* Mode "S": each call picks ONE token of the strategy string at random and applies only it;
  "color" applies brightness, saturation and contrast in turn.

Reference parameters (Zhao & Bilen, ICML 2021; ParamDiffAug in
VICO-UoE/DatasetCondensation's utils.py) are the defaults of ``DSAParams``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from dcjax.data.facts import is_digit_like

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
DIGIT_STRATEGY = "color_crop_cutout_scale_rotate"  # digits are not mirror-symmetric
OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


def strategy_for(dataset_name: str) -> str:
  """The reference DSA strategy of a dataset: no flip for digit datasets."""
  return DIGIT_STRATEGY if is_digit_like(dataset_name) else DEFAULT_STRATEGY


@dataclasses.dataclass(frozen=True)
class DSAParams:
  flip_prob: float = 0.5
  scale_ratio: float = 1.2
  rotate_degrees: float = 15.0
  crop_fraction: float = 0.125
  cutout_fraction: float = 0.5
  brightness: float = 1.0
  saturation: float = 2.0
  contrast: float = 0.5


def parse_strategy(strategy: str) -> tuple[str, ...]:
  tokens = tuple(t for t in strategy.split("_") if t)
  unknown = [t for t in tokens if t not in OPS]
  if not tokens or unknown:
    raise ValueError(f"Bad DSA strategy {strategy!r}: unknown ops {unknown}; expected tokens "
                     f"from {list(OPS)} joined by '_', e.g. {DEFAULT_STRATEGY!r}.")
  return tokens


# ----------------------------------------------------------------------------- resampling


def _gather_bilinear(img: jax.Array, py: jax.Array, px: jax.Array) -> jax.Array:
  """Samples img (H, W, C) at float pixel coords (H', W') with zero padding outside."""
  h, w, _ = img.shape
  y0, x0 = jnp.floor(py), jnp.floor(px)
  out = 0.0
  for dy in (0, 1):
    for dx in (0, 1):
      yi, xi = y0 + dy, x0 + dx
      weight = (1 - jnp.abs(py - yi)) * (1 - jnp.abs(px - xi))
      valid = (yi >= 0) & (yi <= h - 1) & (xi >= 0) & (xi <= w - 1)
      yc = jnp.clip(yi, 0, h - 1).astype(jnp.int32)
      xc = jnp.clip(xi, 0, w - 1).astype(jnp.int32)
      out = out + img[yc, xc] * jnp.where(valid, weight, 0.0)[..., None]
  return out


def affine(x: jax.Array, theta: jax.Array) -> jax.Array:
  """Resamples x (N, H, W, C) by per-sample 2x3 affine maps ``theta`` (N, 2, 3).

  Same convention as torch's affine_grid + grid_sample (align_corners=False, bilinear, zeros):
  output pixel at normalised (u, v) reads the input at theta @ (u, v, 1).
  """
  n, h, w, _ = x.shape
  v, u = jnp.meshgrid((2 * jnp.arange(h) + 1) / h - 1, (2 * jnp.arange(w) + 1) / w - 1,
                      indexing="ij")
  grid = jnp.stack([u, v, jnp.ones_like(u)], -1)  # (H, W, 3)
  src = jnp.einsum("hwk,njk->nhwj", grid, jnp.broadcast_to(theta, (n, 2, 3)))
  px = ((src[..., 0] + 1) * w - 1) / 2
  py = ((src[..., 1] + 1) * h - 1) / 2
  return jax.vmap(_gather_bilinear)(x, py, px)


def translate(x: jax.Array, dy: jax.Array, dx: jax.Array) -> jax.Array:
  """Moves content by integer (dy, dx) per sample (N,) with zero fill: out[i+dy, j+dx] = x[i, j]."""
  n, h, w, _ = x.shape
  ii, jj = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
  dy = jnp.broadcast_to(dy, (n,)).astype(jnp.float32)[:, None, None]
  dx = jnp.broadcast_to(dx, (n,)).astype(jnp.float32)[:, None, None]
  return jax.vmap(_gather_bilinear)(x, ii[None] - dy, jj[None] - dx)


# ----------------------------------------------------------------------------- the ops


def _draw(key, shape, minval=0.0, maxval=1.0):
  return jax.random.uniform(key, shape, minval=minval, maxval=maxval)


def flip(key, x, per_sample: bool, p: DSAParams = DSAParams()):
  n = x.shape[0] if per_sample else 1
  do = _draw(key, (n, 1, 1, 1)) < p.flip_prob
  return jnp.where(do, x[:, :, ::-1, :], x)


def scale(key, x, per_sample: bool, p: DSAParams = DSAParams()):
  n = x.shape[0] if per_sample else 1
  ks, kt = jax.random.split(key)
  sx = _draw(ks, (n,), 1.0 / p.scale_ratio, p.scale_ratio)
  sy = _draw(kt, (n,), 1.0 / p.scale_ratio, p.scale_ratio)
  zero = jnp.zeros_like(sx)
  theta = jnp.stack([jnp.stack([sx, zero, zero], -1), jnp.stack([zero, sy, zero], -1)], 1)
  return affine(x, theta)


def rotate(key, x, per_sample: bool, p: DSAParams = DSAParams()):
  n = x.shape[0] if per_sample else 1
  angle = _draw(key, (n,), -1.0, 1.0) * p.rotate_degrees * math.pi / 180.0
  c, s, zero = jnp.cos(angle), jnp.sin(angle), jnp.zeros_like(angle)
  theta = jnp.stack([jnp.stack([c, s, zero], -1), jnp.stack([-s, c, zero], -1)], 1)
  return affine(x, theta)


def crop(key, x, per_sample: bool, p: DSAParams = DSAParams()):
  """Integer translation in [-s, s] per axis, s = round(crop_fraction * size), zero fill."""
  n = x.shape[0] if per_sample else 1
  sh = round(p.crop_fraction * x.shape[1])
  sw = round(p.crop_fraction * x.shape[2])
  ky, kx = jax.random.split(key)
  dy = jax.random.randint(ky, (n,), -sh, sh + 1)
  dx = jax.random.randint(kx, (n,), -sw, sw + 1)
  return translate(x, dy, dx)


def cutout(key, x, per_sample: bool, p: DSAParams = DSAParams()):
  """Zeroes a square of side round(cutout_fraction * size) at a uniformly drawn centre."""
  n, h, w, _ = x.shape
  n = n if per_sample else 1
  ch, cw = round(p.cutout_fraction * h), round(p.cutout_fraction * w)
  ky, kx = jax.random.split(key)
  cy = jax.random.randint(ky, (n, 1, 1), 0, h + (1 - ch % 2))
  cx = jax.random.randint(kx, (n, 1, 1), 0, w + (1 - cw % 2))
  ii, jj = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
  inside = ((ii >= cy - ch // 2) & (ii < cy - ch // 2 + ch) &
            (jj >= cx - cw // 2) & (jj < cx - cw // 2 + cw))
  return x * (~inside)[..., None]


def color(key, x, per_sample: bool, p: DSAParams = DSAParams()):
  """Brightness, then saturation, then contrast (each with its own draw)."""
  n = x.shape[0] if per_sample else 1
  kb, ks, kc = jax.random.split(key, 3)
  x = x + (_draw(kb, (n, 1, 1, 1)) - 0.5) * p.brightness
  mean_c = x.mean(axis=-1, keepdims=True)
  x = (x - mean_c) * (_draw(ks, (n, 1, 1, 1)) * p.saturation) + mean_c
  mean_all = x.mean(axis=(1, 2, 3), keepdims=True)
  return (x - mean_all) * (_draw(kc, (n, 1, 1, 1)) + p.contrast) + mean_all


_OP_FNS: dict[str, Callable] = {
    "color": color, "crop": crop, "cutout": cutout, "flip": flip, "scale": scale,
    "rotate": rotate,
}


def dsa(key: jax.Array, x: jax.Array, strategy: str = DEFAULT_STRATEGY, siamese: bool = True,
        params: DSAParams = DSAParams()) -> jax.Array:
  """Applies one randomly chosen op of ``strategy`` to x (N, H, W, C) (mode "S").

  The same key on two batches gives the same op and, with ``siamese=True``, the same
  parameters for every image of both batches.
  """
  tokens = parse_strategy(strategy)
  k_choice, k_op = jax.random.split(key)
  branches = [lambda k, z, fn=_OP_FNS[t]: fn(k, z, not siamese, params) for t in tokens]
  if len(branches) == 1:
    return branches[0](k_op, x)
  which = jax.random.randint(k_choice, (), 0, len(branches))
  return jax.lax.switch(which, branches, k_op, x)
