"""The one runner of every condenser: ``condense_many`` runs M condensations; ``condense`` is
the same runner with one run.

Run r gets exactly what it would get alone, from keys[r] and masks[r]; the execution is chosen
per backend:

* "loop" (CPU, and condensers without a vectorised step): every iteration dispatches the step of
  each run in turn; the host waits once per block of ``checkpoint_every`` iterations (NaN check,
  progress, checkpoint), so tracing and dispatch overlap the computation. On CPU, vmap over
  per-run conv weights runs slower than a loop over runs (docs/performance.md).
* "vmap" (GPU/TPU, condensers registered with ``vectorised=True``): the traceable step (DM's
  ``step``; DC/DSA's ``pure_step``, whose outer loop and inner epochs are ``lax.scan``s)
  vmapped over runs, a block of iterations in one ``lax.scan``: one compiled program and one
  host sync per block. With several devices the run axis is sharded over a ``runs`` mesh axis.

Iteration i of a run draws from ``key_tree.step(iterations key, i)``, so an interrupted run
resumes from its last checkpoint (the stacked state of all runs, saved per block under
``checkpoint_dir`` and bound to the fingerprint of all runs) and ends with the same synthetic
sets as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dcjax import checkpoint as ckpt
from dcjax import checks, key_tree, logs, loops
from dcjax.condense import common
from dcjax.condense.contract import Condenser, Pool, Spec
from dcjax.condense.registry import get_condenser
from dcjax.condense.run_setup import (nan_error, resolve_config, run_context, run_slice,
                                      split_run_key, validate)
from dcjax.condense.synthetic_set import SyntheticSet
from dcjax.data.dataset import Dataset
from dcjax.sharding import run_mesh, shard_runs

STRATEGIES = ("auto", "loop", "vmap")


def resolve_strategy(strategy: str, condenser: Condenser) -> str:
  """'auto': vmap on GPU/TPU for condensers with a vectorised step, else loop."""
  checks.one_of(strategy, STRATEGIES, "strategy")
  if strategy == "vmap" and not condenser.vectorised:
    raise ValueError(f"Condenser {condenser.name!r} has no vectorised step; use strategy "
                     "'loop' or 'auto'.")
  if strategy != "auto":
    return strategy
  return "vmap" if condenser.vectorised and jax.default_backend() != "cpu" else "loop"


def _iterations(strategy: str, one_iteration, carry, k_runs, start, length: int):
  """``length`` iterations from ``start``: iteration i gives every run r the key
  ``key_tree.step(k_runs[r], i)`` (the one key schedule of both strategies) and calls
  ``one_iteration(carry, keys (M,)) -> (carry, losses (M,))``. Returns (carry, losses
  (length, M))."""
  body = lambda carry, i: one_iteration(carry, jax.vmap(lambda k: key_tree.step(k, i))(k_runs))
  return loops.repeat(body, carry, length, strategy, start)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _vmap_block(step, spec: Spec, length: int, states, run_keys, start, pool_x, pool_y, masks):
  """The vmap strategy: every run's traceable step vmapped, the block in one ``lax.scan``.
  states: the runs' states stacked (leading axis M). Returns (states, losses (length, M))."""

  def one_run(state, key, mask):
    return step(spec, state, key, Pool(pool_x, pool_y, mask))

  def one_iteration(states, keys):
    return jax.vmap(one_run)(states, keys, masks)

  return _iterations("scan", one_iteration, states, run_keys, start, length)


def _loop_block(step, spec: Spec, length: int, states, k_runs, start, pool_x, pool_y, masks):
  """The loop strategy: each iteration, each run's step (dispatched without waiting).
  Returns (states, losses (length, M)), stacked over runs."""
  pools = [Pool(pool_x, pool_y, masks[r]) for r in range(k_runs.shape[0])]

  def one_iteration(runs, keys):
    out = [step(spec, state, keys[r], pools[r]) for r, state in enumerate(runs)]
    return [o[0] for o in out], jnp.stack([o[1] for o in out])

  runs = [run_slice(states, r) for r in range(k_runs.shape[0])]
  runs, losses = _iterations("loop", one_iteration, runs, k_runs, start, length)
  return jax.tree.map(lambda *xs: jnp.stack(xs), *runs), losses


def fingerprint(keys, dataset: Dataset, method: str, ipc: int, init: str, cfg, masks,
                strategy: str) -> dict:
  return {"method": method, "ipc": ipc, "init": init, "config": cfg, "strategy": strategy,
          "keys": [ckpt.key_digest(k) for k in keys], "dataset": dataset.name,
          "data": ckpt.array_digest(dataset.images, dataset.labels),
          "masks": ckpt.array_digest(masks)}


@dataclasses.dataclass(frozen=True)
class _Job:
  """The static facts of M runs: what every block of iterations needs besides the state."""

  condenser: Condenser
  spec: Spec
  how: str
  pool_x: jax.Array
  pool_y: jax.Array
  masks: jax.Array  # (M, N) bool
  k_runs: jax.Array  # (M,) iteration keys

  def block(self, states: dict, start: int, length: int) -> tuple[dict, np.ndarray]:
    """``length`` iterations of every run from ``start``: (states, losses (length, M))."""
    if self.how == "vmap":
      states, losses = _vmap_block(self.condenser.traceable_step, self.spec, length, states,
                                   self.k_runs, start, self.pool_x, self.pool_y, self.masks)
    else:
      states, losses = _loop_block(self.condenser.step, self.spec, length, states,
                                   self.k_runs, start, self.pool_x, self.pool_y, self.masks)
    return states, np.asarray(losses)  # the one host sync of the block


def _initial_states(condenser: Condenser, spec: Spec, dataset: Dataset, keys, masks,
                    init: str):
  """Every run's initial state (images from its init key; the rest by ``condenser.init``
  from ``purpose(init key, STATE)``), stacked; the init images' pool indices; the init and
  iteration keys."""
  pool_x, pool_y = jnp.asarray(dataset.images), jnp.asarray(dataset.labels)
  split = [split_run_key(k) for k in keys]
  inits = [common.init_images(s[0], pool_x, pool_y, spec.num_classes, spec.ipc, init,
                              jnp.asarray(m)) for s, m in zip(split, masks)]
  states = [condenser.init(spec, Pool(pool_x, pool_y, jnp.asarray(m)),
                           key_tree.purpose(s[0], key_tree.STATE), i[0])
            for i, s, m in zip(inits, split, masks)]
  states = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  return states, [i[1] for i in inits], [s[0] for s in split], jnp.stack([s[1] for s in split])


def _iterate(job: _Job, state: dict, start: int, method: str, checkpoint_every: int, saver,
             checkpoint_dir, bar, callback, writer, tag: str) -> dict:
  """Blocks of iterations from ``start`` to the end, each checked for NaN, checkpointed and
  reported (``callback(iteration, loss of run 0)`` after each iteration; at a block's end
  after its checkpoint, so that a run killed there resumes from it)."""
  runs = job.masks.shape[0]
  iterations = job.spec.config.iterations
  while start < iterations:
    length = min(checkpoint_every - start % checkpoint_every, iterations - start)
    state, losses = job.block(state, start, length)
    bad = np.argwhere(~np.isfinite(losses))
    if bad.size:
      i, r = bad[0]
      raise nan_error(method, losses[i, r], start + i + 1,
                      None if saver is None else saver.latest_step(), checkpoint_dir,
                      run=int(r) if runs > 1 else None)
    for i in range(length):  # the loss of every iteration, its mean over the runs
      writer.scalar(f"{tag}/loss", float(losses[i].mean()), start + i + 1)
    for i in range(length - 1):
      if callback is not None:
        callback(start + i + 1, float(losses[i, 0]))
    start += length
    if saver is not None:  # the setup context is a stage of its own, not in step checkpoints
      saver.save(start, {k: v for k, v in state.items() if k != "context"})
    if callback is not None:
      callback(start, float(losses[-1, 0]))
    bar.update(length)
    bar.set_postfix(loss=f"{losses[-1].mean():.4f}")
  return state


def _checked_masks(keys, dataset: Dataset, method: str, ipc: int, init: str, masks,
                   checkpoint_every) -> np.ndarray:
  """The (M, N) bool masks (None: every run on the whole dataset), every input checked before
  any work."""
  masks = (np.ones((len(keys), len(dataset)), bool) if masks is None
           else np.asarray(masks, bool))
  if masks.ndim != 2 or masks.shape[1] != len(dataset) or masks.shape[0] != len(keys):
    raise ValueError(f"masks must be (len(keys), {len(dataset)}) = ({len(keys)}, "
                     f"{len(dataset)}), got {masks.shape}.")
  for mask in masks:
    validate(dataset, method, ipc, init, mask)
  if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
    raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}.")
  return masks


def condense_many(keys: jax.Array, dataset: Dataset, method: str, ipc: int,
                  init: str | None, masks: np.ndarray | None = None, config: Any = None, *,
                  strategy: str = "auto", checkpoint_dir: str | None = None,
                  checkpoint_every: int = 100, recompute: bool = False,
                  progress: bool = False, seed: int | None = None,
                  callback: Callable[[int, float], None] | None = None,
                  writer: logs.MetricsWriter | None = None,
                  tag: str | None = None) -> list[SyntheticSet]:
  """M condensations: run r from keys[r] (M,) on the IN examples masks[r] (M, N) (None: every
  run on the whole dataset).

  The real batch per class is capped by the smallest class of ANY run (one shape for all).
  ``recompute`` discards checkpoints of another configuration in ``checkpoint_dir`` instead of
  refusing them. ``callback(iteration, loss)`` (iteration from 1; run 0's loss) runs after
  each iteration, with the block's losses once the block is done. ``writer`` (a
  ``dcjax.logs.MetricsWriter``) records every iteration's loss, averaged over the runs, as
  ``<tag>/loss`` (tag: the method's name by default). Returns the M sets.
  """
  condenser = get_condenser(method)
  init = init or condenser.default_init
  given = masks is not None
  masks = _checked_masks(keys, dataset, method, ipc, init, masks, checkpoint_every)
  cfg = condenser.prepare(resolve_config(condenser, ipc, dataset, config), dataset.labels,
                           dataset.num_classes, masks if given else None)
  how = resolve_strategy(strategy, condenser)
  batch_real = min(common.effective_batch_real(cfg.batch_real, dataset.labels,
                                               dataset.num_classes, m) for m in masks)
  spec = Spec(common.condensing_net(cfg, dataset.num_classes), cfg, dataset.num_classes, ipc,
              batch_real)
  states, init_indices, init_keys, k_runs = _initial_states(condenser, spec, dataset, keys,
                                                            masks, init)
  if checkpoint_dir is not None:
    ckpt.bind_directory(checkpoint_dir, fingerprint(keys, dataset, method, ipc, init, cfg,
                                                    masks, how), overwrite=recompute)
  pool_x, pool_y = jnp.asarray(dataset.images), jnp.asarray(dataset.labels)
  context = run_context(condenser, spec, Pool(pool_x, pool_y, jnp.asarray(masks[0])),
                        init_keys, masks, checkpoint_dir, progress)
  saver = None if checkpoint_dir is None else ckpt.StepCheckpointer(checkpoint_dir)
  start = 0 if saver is None else (saver.latest_step() or 0)
  if start:
    states = saver.restore(start, states)
  if context is not None:
    states = {**states, "context": context}
  mask_arr = jnp.asarray(masks)
  mesh = run_mesh(len(masks)) if how == "vmap" else None
  if mesh is not None:
    states, k_runs, mask_arr = shard_runs((states, k_runs, mask_arr), mesh)
  job = _Job(condenser, spec, how, pool_x, pool_y, mask_arr, k_runs)
  bar = tqdm(total=cfg.iterations, initial=start, unit="it", disable=not progress,
             desc=f"{method} ipc={ipc}" + ("" if len(masks) == 1 else
                                            f" x {len(masks)} runs ({how})"))
  try:
    states = _iterate(job, states, start, method, checkpoint_every, saver, checkpoint_dir,
                      bar, callback, writer or logs.MetricsWriter(), tag or method)
  finally:
    bar.close()
    if saver is not None:
      saver.close()
  return _released_sets(condenser, spec, states, init_indices, dataset, init, seed)


def _released_sets(condenser: Condenser, spec: Spec, states, init_indices, dataset: Dataset,
                   init: str, seed) -> list[SyntheticSet]:
  return [SyntheticSet(images=states["images"][r],
                       labels=condenser.released_labels(spec, run_slice(states, r)),
                       init_indices=init_indices[r], preprocessing=dataset.preprocessing,
                       num_classes=spec.num_classes, ipc=spec.ipc, method=condenser.name,
                       init=init, config=spec.config, seed=seed, source=dataset.name)
          for r in range(len(init_indices))]


def condense(key: jax.Array, dataset: Dataset, method: str = "dm", ipc: int = 10,
             init: str | None = None, mask=None, config: Any = None, *,
             seed: int | None = None, checkpoint_dir: str | None = None,
             checkpoint_every: int = 100, progress: bool = False,
             strategy: str = "auto",
             callback: Callable[[int, float], None] | None = None) -> SyntheticSet:
  """Condenses ``dataset`` (only its ``mask``-ed IN examples) into ipc images per class:
  ``condense_many`` with one run.

  key: the run's PRNG key (init images, networks, batches, augmentation all derive from it;
  ``dcjax.key_tree``). init: "real" or "noise" (default: the method's reference init).
  config: the method's frozen config (default: its reference preset for this ipc, with
  ``default_net`` for the image size). With ``checkpoint_dir`` the run saves every
  ``checkpoint_every`` iterations and resumes from the latest checkpoint there.
  ``callback(iteration, loss)`` runs after each iteration (iteration counts from 1).
  """
  condenser = get_condenser(method)
  validate(dataset, method, ipc, init or condenser.default_init, mask)  # names a bad mask
  masks = None if mask is None else np.asarray(mask, bool)[None]
  return condense_many(jnp.stack([key]), dataset, method, ipc, init, masks, config,
                       strategy=strategy, checkpoint_dir=checkpoint_dir,
                       checkpoint_every=checkpoint_every, progress=progress, seed=seed,
                       callback=callback)[0]
