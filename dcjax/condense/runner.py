"""The one runner behind every condenser: validation, init, the outer loop, checkpoint/resume.

The loop is driven from Python around each method's jitted step on every backend (on CPU that
also keeps convolution gradients out of while-loops), so an interrupted run resumes at any
checkpoint and, as every iteration's key is ``fold_in(run_key, iteration)``, ends with the same
synthetic set as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dcjax import checkpoint as ckpt
from dcjax.augment import strategy_for
from dcjax.condense import common
from dcjax.condense.registry import Condenser, get_condenser
from dcjax.condense.synthetic_set import SyntheticSet, class_major_labels
from dcjax.data.dataset import Dataset
from dcjax.nets import default_net


def validate(dataset: Dataset, method: str, ipc: int, init: str, mask=None) -> None:
  """Every check that can fail, before any work starts."""
  inits = get_condenser(method).inits
  if init not in inits:
    raise ValueError(f"Unknown init {init!r} for {method}; expected one of {list(inits)}.")
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


def split_run_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(init key, iteration key) of a condensation run; init_only recipes reuse the init key."""
  k_init, k_run = jax.random.split(key)
  return k_init, k_run


SETUP_STREAM = 0x5E70  # a condenser's setup keys: fold_in(init key of the run, SETUP_STREAM)
STATE_STREAM = 0x57A7  # keys of a condenser's initial state (FRePo's pool), the same way


def initial_state(condenser: Condenser, cfg, images, init_key, net, num_classes: int):
  """A run's optimisation state, its random parts from ``fold_in(init_key, STATE_STREAM)``."""
  return condenser.initial_state(cfg, images, jax.random.fold_in(init_key, STATE_STREAM), net,
                                 num_classes)


def run_context(condenser: Condenser, net, cfg, init_keys, pool_x, pool_y, masks,
                checkpoint_dir: str | None = None, progress: bool = False):
  """The per-run context (leading axis M) of a condenser with ``setup``, None for the others:
  run r's from ``fold_in(init_keys[r], SETUP_STREAM)``. With ``checkpoint_dir`` it is the stage
  ``checkpoint_dir/context`` (the directory is bound to the runs' fingerprint), computed once
  and loaded by a resumed run."""
  if condenser.setup is None:
    return None
  keys = jnp.stack([jax.random.fold_in(k, SETUP_STREAM) for k in init_keys])
  compute = lambda: condenser.setup(keys, net, cfg, pool_x, pool_y, np.asarray(masks, bool),
                                    progress)
  if checkpoint_dir is None:
    return compute()
  return ckpt.Stage(os.path.join(checkpoint_dir, "context"), {"setup": condenser.name}
                    ).load_or_compute(compute)


def run_slice(tree, run: int):
  """Run ``run``'s part of a tree stacked over runs (leading axis M)."""
  return jax.tree.map(lambda a: a[run], tree)


def context_args(context, run: int | None = None) -> tuple:
  """The extra ``step`` arguments of a run: () without a setup context, else (its context,):
  run ``run``'s part of a stacked context, or ``context`` itself when ``run`` is None."""
  if context is None:
    return ()
  return (context if run is None else run_slice(context, run),)


def released_labels(condenser: Condenser, cfg, opt_state, num_classes: int, ipc: int):
  """The labels of a released set: learned ones (soft, (C*ipc, C)) or class-major hard ones."""
  if condenser.labels is not None:
    return jnp.asarray(condenser.labels(cfg, opt_state), jnp.float32)
  return jnp.asarray(class_major_labels(num_classes, ipc))


def fingerprint(key, dataset: Dataset, method: str, ipc: int, init: str, cfg, mask) -> dict:
  return {
      "method": method, "ipc": ipc, "init": init, "config": cfg, "key": ckpt.key_digest(key),
      "dataset": dataset.name,
      "data": ckpt.array_digest(dataset.images, dataset.labels),
      "mask": ckpt.array_digest(mask),
  }


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


def condense(key: jax.Array, dataset: Dataset, method: str = "dm", ipc: int = 10,
             init: str | None = None, mask=None, config: Any = None, *,
             seed: int | None = None, checkpoint_dir: str | None = None,
             checkpoint_every: int = 100, progress: bool = False,
             callback: Callable[[int, float], None] | None = None) -> SyntheticSet:
  """Condenses ``dataset`` (only its ``mask``-ed IN examples) into ipc images per class.

  key: the run's PRNG key (init images, networks, batches, augmentation all derive from it).
  init: "real" or "noise" (default: the method's reference init). config: the method's frozen
  config (default: its reference preset for this ipc, with ``default_net`` for the image size). With ``checkpoint_dir`` the run saves
  every ``checkpoint_every`` iterations and resumes from the latest checkpoint there.
  ``callback(iteration, loss)`` runs after each iteration (iteration counts from 1).
  """
  spec = get_condenser(method)
  init = init or spec.default_init
  validate(dataset, method, ipc, init, mask)
  cfg = spec.prepared(resolve_config(spec, ipc, dataset, config), dataset.labels,
                      dataset.num_classes, mask)
  num_classes = dataset.num_classes
  net = common.condensing_net(cfg, num_classes)
  batch_real = common.effective_batch_real(cfg.batch_real, dataset.labels, num_classes, mask)
  pool_x, pool_y = jnp.asarray(dataset.images), jnp.asarray(dataset.labels)
  mask_arr = None if mask is None else jnp.asarray(mask)

  k_init, k_run = split_run_key(key)
  images, init_idx = common.init_images(k_init, pool_x, pool_y, num_classes, ipc, init, mask_arr)
  opt_state = initial_state(spec, cfg, images, k_init, net, num_classes)
  start = 0
  saver = None
  if checkpoint_dir is not None:
    ckpt.bind_directory(checkpoint_dir, fingerprint(key, dataset, method, ipc, init, cfg, mask))
  members = np.ones((1, len(dataset)), bool) if mask is None else np.asarray(mask)[None]
  context = run_context(spec, net, cfg, k_init[None], pool_x, pool_y, members, checkpoint_dir,
                        progress)
  extra = context_args(context, 0)
  if checkpoint_dir is not None:
    saver = ckpt.StepCheckpointer(checkpoint_dir)
    latest = saver.latest_step()
    if latest is not None:
      state = saver.restore(latest, {"images": images, "opt_state": opt_state})
      images, opt_state, start = state["images"], state["opt_state"], latest

  bar = tqdm(total=cfg.iterations, initial=start, desc=f"{method} ipc={ipc}", unit="it",
             disable=not progress)
  try:
    for it in range(start, cfg.iterations):
      images, opt_state, loss = spec.step(net, cfg, num_classes, batch_real, images, opt_state,
                                          jax.random.fold_in(k_run, it), pool_x, pool_y,
                                          mask_arr, *extra)
      loss = float(loss)
      if not math.isfinite(loss):
        last = None if saver is None else saver.latest_step()
        raise nan_error(method, loss, it + 1, last, checkpoint_dir)
      done = it + 1
      if saver is not None and (done % checkpoint_every == 0 or done == cfg.iterations):
        saver.save(done, {"images": images, "opt_state": opt_state})
      bar.update(1)
      if done % 10 == 0 or done == cfg.iterations:
        bar.set_postfix(loss=f"{loss:.4f}")
      if callback is not None:
        callback(done, loss)
  finally:
    bar.close()
    if saver is not None:
      saver.close()

  return SyntheticSet(
      images=images, labels=released_labels(spec, cfg, opt_state, num_classes, ipc),
      init_indices=init_idx, preprocessing=dataset.preprocessing, num_classes=num_classes,
      ipc=ipc, method=method, init=init, config=cfg, seed=seed, source=dataset.name)


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
