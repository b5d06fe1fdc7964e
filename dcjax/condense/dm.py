"""DM: distribution matching (Zhao & Bilen, 2023).

Each iteration draws a fresh random network (not trained) and, for every class, matches the mean
embedding of a real batch with the mean embedding of that class's synthetic images, both under
the same Siamese DSA transform:  loss = sum_c || mean embed(aug(real_c)) - mean embed(aug(syn_c)) ||^2.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dcjax import checks
from dcjax.augment import DEFAULT_STRATEGY
from dcjax.condense import common
from dcjax.condense.contract import Condenser, Pool, Spec, State
from dcjax.nets import uses_batch_stats


@dataclasses.dataclass(frozen=True)
class DMConfig:
  """Reference hyperparameters of DM (Zhao & Bilen, WACV 2023; its public code,
  VICO-UoE/DatasetCondensation, main_DM.py):
  20,000 iterations, SGD lr 1.0 momentum 0.5 on the images, 256 real images per class,
  real init, Siamese DSA with the full strategy."""

  iterations: int = 20_000
  lr_img: float = 1.0
  momentum: float = 0.5
  batch_real: int = 256
  dsa_strategy: str | None = DEFAULT_STRATEGY
  net: str = "ConvNet"
  init_scheme: str = "torch"  # the reference embeds with PyTorch-initialised random networks
  real_chunk: int | None = 0  # 0: per backend (128 on CPU); None: one pass

  def __post_init__(self):
    checks.positive_ints(self, "iterations", "batch_real")
    checks.positive_finite(self, "lr_img")
    checks.in_unit_interval(self, "momentum")


image_optimizer = common.image_optimizer


def dm_loss(net: nn.Module, cfg: DMConfig, images: jax.Array, variables, real: jax.Array,
            aug_key: jax.Array) -> jax.Array:
  """images: (C*ipc, H, W, Ch) synthetic; real: (C, B, H, W, Ch). Returns the summed loss.

  The embedding is per example, so every class goes through the network in one flattened batch
  (the program does not grow with the number of classes). A BatchNorm network embeds as the
  reference's fresh (train-mode) network does: the real images of all classes as one batch
  normalised by its own statistics, the synthetic images as another (never chunked, since a
  chunk would have other statistics).
  """
  num_classes, batch = real.shape[:2]
  syn = images.reshape(num_classes, -1, *images.shape[1:])
  chunk = common.default_chunk(embedding=True) if cfg.real_chunk == 0 else cfg.real_chunk
  if uses_batch_stats(net):
    chunk = None
    embed = lambda x: net.apply(variables, x, method="embed", train=True,
                                mutable=["batch_stats"])[0]
  else:
    embed = lambda x: net.apply(variables, x, method="embed")
  keys = common.class_keys(aug_key, num_classes)
  real = common.siamese_dsa(keys, real, cfg.dsa_strategy)
  syn = common.siamese_dsa(keys, syn, cfg.dsa_strategy)
  flat_real = real.reshape(num_classes * batch, *real.shape[2:])
  mean_real = common.apply_in_chunks(embed, flat_real, chunk).reshape(
      num_classes, batch, -1).mean(1)
  mean_syn = embed(syn.reshape(-1, *syn.shape[2:])).reshape(num_classes, syn.shape[1], -1).mean(1)
  return jnp.sum((jax.lax.stop_gradient(mean_real) - mean_syn) ** 2)


@functools.partial(jax.jit, static_argnums=(0,))
def step(spec: Spec, state: State, key, pool: Pool):
  """One DM iteration on state["images"] (C*ipc, H, W, Ch). Returns (state, loss)."""
  cfg, images = spec.config, state["images"]
  k_net, k_real, k_aug = jax.random.split(key, 3)
  variables = spec.net.init(k_net, images[:1])
  real = common.real_batches(k_real, pool.x, pool.y, spec.num_classes, spec.batch_real,
                             pool.mask)
  loss, grads = jax.value_and_grad(
      lambda s: dm_loss(spec.net, cfg, s, variables, real, k_aug))(images)
  updates, opt_state = image_optimizer(cfg).update(grads, state["opt_state"], images)
  return {**state, "images": optax.apply_updates(images, updates), "opt_state": opt_state}, loss


class DM(Condenser):
  """Distribution matching (the reference uses the same hyperparameters for every ipc)."""

  name = "dm"
  config_class = DMConfig
  vectorised = True
  summary = "distribution matching (Zhao & Bilen 2023)"

  def step(self, spec, state, key, pool):
    return step(spec, state, key, pool)
