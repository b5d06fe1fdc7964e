"""The condenser contract: what a condensation method provides, and all the runner gives it.

Three values cross the boundary:

* ``Spec`` (static, hashable: a jit static argument): the network, the method's frozen config,
  the number of classes, the images per class and the real images per class of a batch.
* ``Pool`` (a pytree of arrays): the pixels x (N, H, W, C) float32, the labels y (N,) int32 and
  the run's membership mask (N,) bool. Only the IN examples may be used.
* the state: a dict pytree, the run's evolving condensation. ``"images"`` (C * ipc, H, W, C),
  class-major, and ``"opt_state"`` (any pytree, () if none) always; ``"labels"`` (C * ipc, C)
  when the method learns its labels (FRePo); ``"context"`` when the method has a ``setup``
  (MTT's expert trajectories: computed once before the iterations, kept as a stage of the
  run, not in step checkpoints).

A method is a subclass of ``Condenser`` with a name, a config class and two methods,

    init(spec, pool, key, images) -> state        the state around the initial images
    step(spec, state, key, pool) -> (state, loss) one iteration, every draw from ``key``

and optional ones with defaults: ``preset(ipc)`` (the config for ipc: its defaults),
``traceable_step`` (the same iteration as one traceable function, where ``step`` is driven
from Python: DC/DSA), ``setup`` (``has_setup = True``), ``prepare`` (differentially private
methods: ``private = True``) and ``released_labels``. Its registration is one
``register_condenser(Method())`` (``dcjax/condense/registry.py``, or anywhere: a notebook, a
test). The initial images are the runner's (real or noise init is the study's choice, and it
records their pool indices), so ``init`` receives them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from dcjax.condense import common
from dcjax.condense.synthetic_set import class_major_labels

State = dict  # {"images", "opt_state"[, "labels"][, "context"]}


@dataclasses.dataclass(frozen=True)
class Spec:
  """Static settings of a condensation run."""

  net: nn.Module
  config: Any
  num_classes: int
  ipc: int
  batch_real: int  # real images per class per iteration, capped by the smallest IN class


@flax.struct.dataclass
class Pool:
  """The data: x (N, H, W, C) float32, y (N,) int32, mask (N,) bool (the run's members)."""

  x: jax.Array
  y: jax.Array
  mask: jax.Array


class Condenser:
  """Base of every condensation method (see the module docstring)."""

  name: ClassVar[str]
  config_class: ClassVar[type]
  default_init: ClassVar[str] = "real"
  inits: ClassVar[tuple[str, ...]] = common.INITS
  # True: ``traceable_step`` is one pure jittable function, so the runner can vmap it over
  # runs and scan it over iterations on GPU/TPU; False (the safe default): runs go one after
  # another under the loop strategy
  vectorised: ClassVar[bool] = False
  has_setup: ClassVar[bool] = False
  private: ClassVar[bool] = False
  train_loss: ClassVar[str] = "xent"  # TrainConfig.loss for networks trained on its sets
  summary: ClassVar[str] = ""

  def preset(self, ipc: int):
    """The reference config for ``ipc`` images per class (default: the config's defaults)."""
    del ipc
    return self.config_class()

  def init(self, spec: Spec, pool: Pool, key: jax.Array, images: jax.Array) -> State:
    """The state of a run that starts from ``images``; default: the image optimiser's."""
    del pool, key
    return {"images": images, "opt_state": common.image_optimizer(spec.config).init(images)}

  def step(self, spec: Spec, state: State, key: jax.Array, pool: Pool) -> tuple[State, Any]:
    """One iteration. Returns (state, scalar loss)."""
    raise NotImplementedError

  def traceable_step(self, spec: Spec, state: State, key: jax.Array, pool: Pool):
    """``step`` as one traceable function (default: ``step`` is one already)."""
    return self.step(spec, state, key, pool)

  def setup(self, spec: Spec, pool: Pool, keys: jax.Array, masks, progress: bool = False):
    """With ``has_setup``: the per-run context of runs keys (M,), masks (M, N) (leading axis
    M), computed once before the iterations. ``pool.mask`` is not used (``masks`` are)."""
    raise NotImplementedError

  def prepare(self, cfg, labels, num_classes: int, masks=None):
    """Private methods: ``cfg`` fitted to the runs' IN examples ``masks`` (M, N), its noise
    calibrated (the prepared config has ``guarantee()``); others: ``cfg`` as it is."""
    del labels, num_classes, masks
    return cfg

  def released_labels(self, spec: Spec, state: State) -> jax.Array:
    """The released set's labels: the learned ones (soft, (C * ipc, C)), or class-major hard
    ones (C * ipc,)."""
    if "labels" in state:
      return jnp.asarray(state["labels"], jnp.float32)
    return jnp.asarray(class_major_labels(spec.num_classes, spec.ipc))

  def __repr__(self) -> str:
    return f"{type(self).__name__}({self.name!r})"
