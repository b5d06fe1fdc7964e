"""What the runner (``dcjax.condense.runner``) needs around a condenser's step: validation,
presets, keys, initial state, the per-run setup context, released labels, the NaN error; and
the random-subset baseline, which needs no runner."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dcjax import checkpoint as ckpt
from dcjax import checks, key_tree
from dcjax.augment import strategy_for
from dcjax.condense import common
from dcjax.condense.contract import Condenser
from dcjax.condense.registry import get_condenser
from dcjax.condense.synthetic_set import SyntheticSet, class_major_labels
from dcjax.data.dataset import Dataset
from dcjax.nets import default_net


def validate(dataset: Dataset, method: str, ipc: int, init: str, mask=None) -> None:
  """Every check that can fail, before any work starts."""
  checks.one_of(init, get_condenser(method).inits, f"init for {method}")
  check_members(dataset, ipc, mask)


def check_members(dataset: Dataset, ipc: int, mask=None) -> None:
  """ipc must be a positive int no larger than the smallest class among the IN examples."""
  if not isinstance(ipc, (int, np.integer)) or ipc < 1:
    raise ValueError(f"ipc (images per class) must be a positive int, got {ipc!r}.")
  n = len(dataset)
  if mask is not None:
    mask = np.asarray(mask)
    if mask.shape != (n,) or mask.dtype != bool:
      raise ValueError(f"mask must be a bool array of shape ({n},), got {mask.dtype} "
                       f"{mask.shape}.")
  counts = dataset.class_counts(mask)
  empty = np.flatnonzero(counts == 0)
  if empty.size:
    raise ValueError(f"The membership mask keeps no example of class(es) {empty.tolist()}; "
                     "every class needs members to condense.")
  if ipc > counts.min():
    raise ValueError(f"ipc={ipc} is larger than the smallest class among the IN examples "
                     f"(class {int(counts.argmin())} has {int(counts.min())}).")


# (init key, iteration key) of a condensation run; init_only recipes reuse the init key
split_run_key = key_tree.condensation_keys


def run_context(condenser: Condenser, spec, pool, init_keys, masks,
                checkpoint_dir: str | None = None, progress: bool = False):
  """The per-run context (leading axis M) of a condenser with a setup, None for the others:
  run r's from ``purpose(init_keys[r], SETUP)`` (``dcjax.key_tree``). With ``checkpoint_dir``
  it is the stage ``checkpoint_dir/context`` (the directory is bound to the runs'
  fingerprint), computed once and loaded by a resumed run."""
  if not condenser.has_setup:
    return None
  keys = jnp.stack([key_tree.purpose(k, key_tree.SETUP) for k in init_keys])
  compute = lambda: condenser.setup(spec, pool, keys, np.asarray(masks, bool), progress)
  if checkpoint_dir is None:
    return compute()
  return ckpt.Stage(os.path.join(checkpoint_dir, "context"), {"setup": condenser.name}
                    ).load_or_compute(compute)


def run_slice(tree, run: int):
  """Run ``run``'s part of a tree stacked over runs (leading axis M)."""
  return jax.tree.map(lambda a: a[run], tree)


def dataset_preset(condenser: Condenser, ipc: int, dataset_name: str, image_shape):
  """The condenser's reference preset for ``ipc`` fitted to a dataset: ``default_net`` for its
  image size and, where the preset augments, the dataset's DSA strategy (no flips for digit
  datasets, which are evaluated without them)."""
  cfg = dataclasses.replace(condenser.preset(ipc), net=default_net(image_shape))
  if getattr(cfg, "dsa_strategy", None):
    cfg = dataclasses.replace(cfg, dsa_strategy=strategy_for(dataset_name))
  return cfg


def resolve_config(condenser: Condenser, ipc: int, dataset: Dataset, config: Any = None):
  """``config``, or ``dataset_preset`` for this dataset."""
  if config is not None:
    return config
  return dataset_preset(condenser, ipc, dataset.name, dataset.image_shape)


def nan_error(method: str, loss: float, iteration: int, last_step: int | None,
              checkpoint_dir: str | None, run: int | None = None) -> FloatingPointError:
  """The error that stops a condensation whose loss is not finite (iteration counts from 1)."""
  where = f"iteration {iteration}" + ("" if run is None else f" of run {run}")
  last = "none" if last_step is None else f"iteration {last_step} in {checkpoint_dir}"
  return FloatingPointError(
      f"{method} loss became {loss} at {where}; stopped. Last good checkpoint: {last}. Lower "
      "the image learning rate or check the data for extreme values.")


def random_subset(key: jax.Array, dataset: Dataset, ipc: int, mask=None,
                  seed: int | None = None) -> SyntheticSet:
  """The naive baseline: ipc real IN images per class, drawn at random, no optimisation."""
  check_members(dataset, ipc, mask)
  images, idx = common.init_images(key, jnp.asarray(dataset.images), jnp.asarray(dataset.labels),
                                   dataset.num_classes, ipc, "real",
                                   None if mask is None else jnp.asarray(mask))
  return SyntheticSet(
      images=images, labels=jnp.asarray(class_major_labels(dataset.num_classes, ipc)),
      init_indices=idx, preprocessing=dataset.preprocessing, num_classes=dataset.num_classes,
      ipc=ipc, method="random_subset", init="real", config=None, seed=seed,
      source=dataset.name)
