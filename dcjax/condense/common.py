"""Pieces shared by the condensers: real batches per class, initialisation, chunked embedding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dcjax import checks, key_tree
from dcjax.augment import dsa
from dcjax.data.sampling import sample_per_class
from dcjax.nets import get_net
from dcjax.nets.layers import CONV_IMPLS

INITS = ("real", "noise")
# DC/DSA's real-batch gradient, summed over unrolled chunks. XLA's CPU conv runs ~2x more
# images/s at batch 64 than at 256 (same maths); at DSA's reference shapes (2 CPU cores, the
# patch-matmul kernel gradient) chunks of 128 ran the match step as fast as chunks of 64 (27.3
# vs 26.9 s) and compiled in 14.2 s instead of 15.6-17.6 s (half the unrolled copies)
CPU_CHUNK = 128
# forward passes chunked under lax.map (apply_in_chunks): measured at DM's reference shapes on
# 2 CPU cores, chunks of 128 run as fast as unrolled chunks of 64 (4.23 vs 4.28 s/iteration)
# and compile in 9.7 s instead of 16.4 s; chunks of 64 under lax.map took 5.0 s/iteration
CPU_EMBED_CHUNK = 128


CONV_IMPL_CHOICES = ("auto", *CONV_IMPLS)


def resolve_conv_impl(conv_impl: str) -> str:
  """``auto``: on CPU the native convolution with its kernel gradient as a patches matmul
  (``xla_patch_grad``), elsewhere XLA's native convolution.

  Measured for DSA's match step at CIFAR shapes on 2 CPU cores (per-class gradients under
  ``vmap``; docs/performance.md): native 101 s per step, ``xla_patch_grad`` 26-27 s, the
  unvectorised per-class loop it replaced 25.9 s. Not measured on an accelerator, so there the
  native convolution stays.
  """
  checks.one_of(conv_impl, CONV_IMPL_CHOICES, "conv_impl")
  if conv_impl != "auto":
    return conv_impl
  return "xla_patch_grad" if jax.default_backend() == "cpu" else "xla"


def condensing_net(cfg, num_classes: int):
  """The condenser's network: ``cfg.net`` with ``cfg.init_scheme`` and, for configs that have
  one, ``cfg.conv_impl`` resolved for this backend (networks without convolutions ignore it)."""
  net = get_net(cfg.net, num_classes, init_scheme=cfg.init_scheme)
  impl = resolve_conv_impl(getattr(cfg, "conv_impl", "xla"))
  if impl != "xla" and hasattr(net, "conv_impl"):
    net = net.clone(conv_impl=impl)
  return net


def image_optimizer(cfg) -> optax.GradientTransformation:
  """SGD with momentum on the synthetic images (``cfg.lr_img``, ``cfg.momentum``)."""
  return optax.sgd(cfg.lr_img, momentum=cfg.momentum or None)


def init_state(cfg, images: jax.Array):
  """The image optimiser's state for images (C*ipc, H, W, Ch)."""
  return image_optimizer(cfg).init(images)


def default_chunk(embedding: bool = False) -> int | None:
  """Images per chunk on CPU (None elsewhere: one pass); ``embedding``: forward passes under
  ``apply_in_chunks``."""
  if jax.default_backend() != "cpu":
    return None
  return CPU_EMBED_CHUNK if embedding else CPU_CHUNK


def real_batches(key: jax.Array, pool_x: jax.Array, pool_y: jax.Array, num_classes: int,
                 per_class: int, mask: jax.Array | None) -> jax.Array:
  """(num_classes, per_class, H, W, C) real images drawn without replacement from IN examples."""
  idx = sample_per_class(key, pool_y, num_classes, per_class, mask)
  return jnp.asarray(pool_x)[idx]


def init_images(key: jax.Array, pool_x, pool_y, num_classes: int, ipc: int, init: str,
                mask=None) -> tuple[jax.Array, jax.Array]:
  """Initial synthetic images (num_classes * ipc, H, W, C) and their pool indices (-1: noise)."""
  checks.one_of(init, INITS, "init")
  if init == "real":
    idx = sample_per_class(key, pool_y, num_classes, ipc, mask).reshape(-1)
    return jnp.asarray(pool_x)[idx], idx.astype(jnp.int32)
  shape = (num_classes * ipc, *pool_x.shape[1:])
  return jax.random.normal(key, shape), jnp.full((num_classes * ipc,), -1, jnp.int32)


def apply_in_chunks(fn, x: jax.Array, chunk: int | None) -> jax.Array:
  """fn (per example, forward only) over the leading axis of x in chunks of ``chunk``.

  The chunks run under ``lax.map``, so the program holds one copy of ``fn`` whatever the batch
  (an unrolled loop held 40 at DM's reference shapes, and its compile time grew with them). The
  CPU trap of convolutions inside loops concerns their gradients; this is forward only. A last
  partial chunk is padded with zeros and its rows dropped.
  """
  n = x.shape[0]
  if chunk is None or n <= chunk:
    return fn(x)
  pad = -n % chunk
  padded = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
  out = jax.lax.map(fn, padded.reshape(-1, chunk, *x.shape[1:]))
  return out.reshape(-1, *out.shape[2:])[:n]


def effective_batch_real(requested: int, labels, num_classes: int, mask=None) -> int:
  """The real batch per class: the request, capped by the smallest class among IN examples.

  The reference code draws ``min(requested, class size)`` images; with static shapes the cap
  must be the same for every class.
  """
  labels = np.asarray(labels)
  if mask is not None:
    labels = labels[np.asarray(mask, bool)]
  smallest = int(np.bincount(labels, minlength=num_classes).min())
  return max(1, min(requested, smallest))


def class_keys(aug_key: jax.Array, num_classes: int) -> jax.Array:
  """(num_classes,) Siamese keys, step(aug_key, c): the same for real_c and syn_c."""
  return jax.vmap(lambda c: key_tree.step(aug_key, c))(jnp.arange(num_classes))


def siamese_dsa(keys: jax.Array, x: jax.Array, strategy: str | None) -> jax.Array:
  """DSA on x (C, B, H, W, Ch) with one Siamese key per class (keys (C,)), mapped over classes
  so that the step compiles one class-shaped augmentation, not C copies.

  ``lax.map``, not ``vmap``: under vmap the per-class choice of op becomes a select over every
  op's output, so all six ops run on every image (measured: DM at CIFAR shapes 4x slower per
  iteration on CPU); mapped, each class runs only its own op. No convolution runs inside the
  loop, so the CPU while-loop trap of conv gradients does not apply."""
  if not strategy:
    return x
  return jax.lax.map(lambda kx: dsa(kx[0], kx[1], strategy, siamese=True), (keys, x))
