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
  lr: float = dataclasses.field(default=0.5, metadata={"help": "step towards the class mean"})
  net: str = "ConvNetW32"  # unused by the step; the runner builds it
  init_scheme: str = "torch"


@functools.partial(jax.jit, static_argnums=(0,))
def _step(spec, state, key, pool):
  real = real_batches(key, pool.x, pool.y, spec.num_classes, spec.batch_real, pool.mask)
  images = state["images"]
  syn = images.reshape(spec.num_classes, -1, *images.shape[1:])
  target = real.mean(axis=1, keepdims=True)  # (C, 1, H, W, Ch)
  loss = jnp.mean((syn - target) ** 2)
  syn = syn + spec.config.lr * (target - syn)
  return {**state, "images": syn.reshape(images.shape)}, loss


class ToyMean(Condenser):
  name = "toy_mean"
  config_class = ToyConfig
  summary = "a test's toy"

  def init(self, spec, pool, key, images):
    return {"images": images, "opt_state": ()}

  def step(self, spec, state, key, pool):
    return _step(spec, state, key, pool)


TOY = register_condenser(ToyMean(), replace=True)
