"""Many condensation runs at once: ``condense_many`` gives run r exactly what ``condense`` gives
from keys[r] and masks[r], with the execution chosen per backend.

* "loop" (CPU, and condensers without a vectorised step): every iteration dispatches the step of
  each run in turn; the host waits once per block of ``checkpoint_every`` iterations (NaN check,
  progress, checkpoint), so tracing and dispatch overlap the computation. On CPU, vmap over
  per-run conv weights runs slower than a loop over runs (README, "Condensation").
* "vmap" (GPU/TPU, condensers registered with ``vectorised=True``): the traceable step (DM's
  ``step``; DC/DSA's ``pure_step``, whose outer loop and inner epochs are ``lax.scan``s)
  vmapped over runs, a block of iterations in one ``lax.scan``: one compiled program and one
  host sync per block. With several devices the run axis is sharded over a ``runs`` mesh axis.

The stacked state (images (M, S, H, W, C) and optimiser states) is checkpointed per block under
``checkpoint_dir`` and resumed from there, bound to the fingerprint of all runs.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dcjax import checkpoint as ckpt
from dcjax.condense import common
from dcjax.condense.registry import Condenser, get_condenser
from dcjax.condense.runner import (context_args, initial_state, nan_error, released_labels,
                                   resolve_config, run_context, run_slice, split_run_key,
                                   validate)
from dcjax.condense.synthetic_set import SyntheticSet
from dcjax.data.dataset import Dataset
from dcjax.sharding import run_mesh, shard_runs

STRATEGIES = ("auto", "loop", "vmap")


def resolve_strategy(strategy: str, condenser: Condenser) -> str:
  """'auto': vmap on GPU/TPU for condensers with a vectorised step, else loop."""
  if strategy not in STRATEGIES:
    raise ValueError(f"Unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}.")
  if strategy == "vmap" and not condenser.vectorised:
    raise ValueError(f"Condenser {condenser.name!r} has no vectorised step; use strategy "
                     "'loop' or 'auto'.")
  if strategy != "auto":
    return strategy
  return "vmap" if condenser.vectorised and jax.default_backend() != "cpu" else "loop"


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _scan_block(step, net, cfg, num_classes: int, batch_real: int, length: int, images,
                opt_state, run_keys, start, pool_x, pool_y, masks, context=None):
  """``length`` iterations of every run from iteration ``start``: (images, opt_state, losses
  (length, M)). context: the runs' setup context (leading axis M) or None."""

  def one_run(im, opt, key, mask, ctx):
    return step(net, cfg, num_classes, batch_real, im, opt, key, pool_x, pool_y, mask,
                *context_args(ctx))

  def body(carry, i):
    keys = jax.vmap(lambda k: jax.random.fold_in(k, start + i))(run_keys)
    im, opt, loss = jax.vmap(one_run)(*carry, keys, masks, context)
    return (im, opt), loss

  (images, opt_state), losses = jax.lax.scan(body, (images, opt_state), jnp.arange(length))
  return images, opt_state, losses


def fingerprint(keys, dataset: Dataset, method: str, ipc: int, init: str, cfg, masks,
                strategy: str) -> dict:
  return {"method": method, "ipc": ipc, "init": init, "config": cfg, "strategy": strategy,
          "keys": [ckpt.key_digest(k) for k in keys], "dataset": dataset.name,
          "data": ckpt.array_digest(dataset.images, dataset.labels),
          "masks": ckpt.array_digest(masks)}


def condense_many(keys: jax.Array, dataset: Dataset, method: str, ipc: int,
                  init: str | None, masks: np.ndarray, config: Any = None, *,
                  strategy: str = "auto", checkpoint_dir: str | None = None,
                  checkpoint_every: int = 100, recompute: bool = False,
                  progress: bool = False) -> list[SyntheticSet]:
  """M condensations: run r from keys[r] (M,) on the IN examples masks[r] (M, N).

  The real batch per class is capped by the smallest class of ANY run (one shape for all);
  where no run caps it, run r equals ``condense(keys[r], dataset, method, ipc, init,
  masks[r], config)`` (tested). ``recompute`` discards checkpoints of another configuration
  in ``checkpoint_dir`` instead of refusing them. Returns the M synthetic sets.
  """
  condenser = get_condenser(method)
  init = init or condenser.default_init
  masks = np.asarray(masks, bool)
  if masks.ndim != 2 or masks.shape[1] != len(dataset) or masks.shape[0] != len(keys):
    raise ValueError(f"masks must be (len(keys), {len(dataset)}) = ({len(keys)}, "
                     f"{len(dataset)}), got {masks.shape}.")
  for mask in masks:
    validate(dataset, method, ipc, init, mask)
  if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
    raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}.")
  cfg = condenser.prepared(resolve_config(condenser, ipc, dataset, config), dataset.labels,
                           dataset.num_classes, masks)
  how = resolve_strategy(strategy, condenser)
  num_runs, num_classes = masks.shape[0], dataset.num_classes
  net = common.condensing_net(cfg, num_classes)
  batch_real = min(common.effective_batch_real(cfg.batch_real, dataset.labels, num_classes, m)
                   for m in masks)
  pool_x, pool_y = jnp.asarray(dataset.images), jnp.asarray(dataset.labels)
  split = [split_run_key(k) for k in keys]
  k_runs = jnp.stack([s[1] for s in split])
  inits = [common.init_images(s[0], pool_x, pool_y, num_classes, ipc, init, jnp.asarray(m))
           for s, m in zip(split, masks)]
  state = {"images": jnp.stack([i[0] for i in inits]),
           "opt_state": jax.tree.map(lambda *xs: jnp.stack(xs),
                                     *[initial_state(condenser, cfg, i[0], s[0], net,
                                                     num_classes)
                                       for i, s in zip(inits, split)])}
  start, saver = 0, None
  if checkpoint_dir is not None:
    ckpt.bind_directory(checkpoint_dir, fingerprint(keys, dataset, method, ipc, init, cfg,
                                                    masks, how), overwrite=recompute)
  context = run_context(condenser, net, cfg, [s[0] for s in split], pool_x, pool_y, masks,
                        checkpoint_dir, progress)
  if checkpoint_dir is not None:
    saver = ckpt.StepCheckpointer(checkpoint_dir)
    latest = saver.latest_step()
    if latest is not None:
      state, start = saver.restore(latest, state), latest
  mask_arr = jnp.asarray(masks)
  mesh = run_mesh(num_runs) if how == "vmap" else None
  if mesh is not None:
    state, k_runs, mask_arr, context = shard_runs((state, k_runs, mask_arr, context), mesh)

  bar = tqdm(total=cfg.iterations, initial=start, unit="it", disable=not progress,
             desc=f"{method} ipc={ipc} x {num_runs} runs ({how})")
  try:
    while start < cfg.iterations:
      length = min(checkpoint_every - start % checkpoint_every, cfg.iterations - start)
      if how == "vmap":
        images, opt_state, losses = _scan_block(
            condenser.traceable_step, net, cfg, num_classes, batch_real, length, state["images"],
            state["opt_state"], k_runs, start, pool_x, pool_y, mask_arr, context)
        state = {"images": images, "opt_state": opt_state}
      else:
        state, losses = _loop_block(condenser, net, cfg, num_classes, batch_real, length,
                                    state, k_runs, start, pool_x, pool_y, mask_arr, context)
      losses = np.asarray(losses)  # (length, M): the one host sync of the block
      _check_finite(losses, start, method, saver, checkpoint_dir)
      start += length
      if saver is not None:
        saver.save(start, state)
      bar.update(length)
      bar.set_postfix(loss=f"{losses[-1].mean():.4f}")
  finally:
    bar.close()
    if saver is not None:
      saver.close()

  return [SyntheticSet(images=state["images"][r],
                       labels=released_labels(condenser, cfg, run_slice(state["opt_state"], r),
                                              num_classes, ipc),
                       init_indices=inits[r][1],
                       preprocessing=dataset.preprocessing, num_classes=num_classes, ipc=ipc,
                       method=method, init=init, config=cfg, source=dataset.name)
          for r in range(num_runs)]


def _loop_block(condenser, net, cfg, num_classes, batch_real, length, state, k_runs, start,
                pool_x, pool_y, masks, context=None):
  """The loop strategy: each iteration, each run's step (dispatched without waiting)."""
  runs = [(state["images"][r], run_slice(state["opt_state"], r))
          for r in range(k_runs.shape[0])]
  extras = [context_args(context, r) for r in range(k_runs.shape[0])]
  losses = []
  for it in range(start, start + length):
    row = []
    for r, (images, opt_state) in enumerate(runs):
      images, opt_state, loss = condenser.step(net, cfg, num_classes, batch_real, images,
                                               opt_state, jax.random.fold_in(k_runs[r], it),
                                               pool_x, pool_y, masks[r], *extras[r])
      runs[r] = (images, opt_state)
      row.append(loss)
    losses.append(jnp.stack(row))
  state = {"images": jnp.stack([r[0] for r in runs]),
           "opt_state": jax.tree.map(lambda *xs: jnp.stack(xs), *[r[1] for r in runs])}
  return state, jnp.stack(losses)


def _check_finite(losses: np.ndarray, start: int, method: str, saver, checkpoint_dir) -> None:
  bad = np.argwhere(~np.isfinite(losses))
  if bad.size:
    i, r = bad[0]
    raise nan_error(method, losses[i, r], start + i + 1,
                    None if saver is None else saver.latest_step(), checkpoint_dir, run=int(r))
