"""A toy condenser that lives outside dcjax and is added through the registry alone: each
synthetic image moves towards the mean of a fresh real batch of its class. Importing this module
registers it as ``toy_mean``; nothing in dcjax names it."""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from dcjax.condense import Condenser, register_condenser
from dcjax.condense.common import real_batches


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  iterations: int = 3
  batch_real: int = 4
  lr: float = 0.5
  net: str = "ConvNetW32"  # unused by the step; the runner builds it
  init_scheme: str = "torch"


def preset(ipc: int) -> ToyConfig:
  del ipc
  return ToyConfig()


def init_state(cfg: ToyConfig, images):
  del cfg, images
  return ()


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def step(net, cfg: ToyConfig, num_classes: int, batch_real: int, images, opt_state, key,
         pool_x, pool_y, mask):
  del net
  real = real_batches(key, pool_x, pool_y, num_classes, batch_real, mask)  # (C, B, H, W, Ch)
  syn = images.reshape(num_classes, -1, *images.shape[1:])
  target = real.mean(axis=1, keepdims=True)
  loss = jnp.mean((syn - target) ** 2)
  syn = syn + cfg.lr * (target - syn)
  return syn.reshape(images.shape), opt_state, loss


TOY = register_condenser(Condenser("toy_mean", ToyConfig, preset, init_state, step,
                                   default_init="real", summary="a test's toy"), replace=True)
