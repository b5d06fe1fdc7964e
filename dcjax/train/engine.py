"""Training many networks on one shared pool, with the execution strategy chosen per backend.

One pure step function drives both strategies, from the same keys, so they give the same
parameters up to float reassociation:

* "loop" (CPU): a Python loop over epochs and steps calls one jitted step; models are trained
  one after another. XLA on CPU runs a convolution's gradient ~40x slower inside lax.scan /
  while_loop than when driven from Python (jax issue #12868), and vmap over per-model conv
  weights ~4x slower than a loop over models.
* "scan" (GPU/TPU): the whole run of one model is a lax.scan, vmapped over the models of a
  chunk of ``models_per_chunk``; the chunks run one after another from a Python loop, which
  caps memory. With several local devices a chunk's model axis is sharded over the ``runs``
  mesh (``dcjax.sharding``).

Data: a pool (N, H, W, C) with labels (N,) int or soft labels (N, C) float; each model trains
on the examples its mask keeps (or all), with optional per-example loss weights. An epoch
visits that model's IN examples in a fresh random order, in batches of ``batch_size`` (the
last one partial, as torch's drop_last=False), so the shapes stay static while the number of
IN examples varies per model.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from dcjax import key_tree, loops
from dcjax.augment import dsa
from dcjax.privacy import mechanisms
from dcjax.sharding import run_mesh, shard_runs
from dcjax.train.config import TrainConfig

Variables = Any  # {"params": ..., optionally "batch_stats": ...}
CPU_MICROBATCH = 32  # measured best on CPU for the ConvNet (benchmarks/train_throughput.py)


@dataclasses.dataclass(frozen=True)
class _Plan:
  """Static facts of one training job (hashable: a jit static argument)."""

  net: nn.Module
  cfg: TrainConfig
  steps_per_epoch: int
  batch_size: int  # slots per batch: cfg.batch_size (Poisson: its capacity), <= the largest set
  microbatch: int | None
  has_batch_stats: bool


def resolve_strategy(cfg: TrainConfig) -> str:
  if cfg.strategy != "auto":
    return cfg.strategy
  return "loop" if jax.default_backend() == "cpu" else "scan"


def _resolve_microbatch(cfg: TrainConfig, has_batch_stats: bool,
                        batch_size: int | None = None) -> int | None:
  batch_size = batch_size or cfg.batch_size
  if cfg.microbatch is None or has_batch_stats:  # BatchNorm statistics need the whole batch
    return None
  mb = cfg.microbatch or (CPU_MICROBATCH if jax.default_backend() == "cpu" else None)
  if mb is None or mb >= batch_size or batch_size % mb:
    return None
  return mb


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """torch-style SGD: g += wd * p; buf = momentum * buf + g; p -= lr_t * buf."""
  schedule = optax.piecewise_constant_schedule(
      cfg.lr, {cfg.lr_decay_epoch * steps_per_epoch: 0.1})
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                     optax.sgd(schedule, momentum=cfg.momentum or None))


@functools.partial(jax.jit, static_argnums=(1, 2))
def init_variables(key: jax.Array, net: nn.Module, image_shape: tuple[int, ...]) -> Variables:
  """Fresh variables of ``net`` for images of shape (H, W, C). Jitted: op by op, torch's
  per-layer init draws take seconds on CPU (each op compiles on first use)."""
  return net.init(key, jnp.zeros((1, *image_shape), jnp.float32))


# ----------------------------------------------------------------------------- one step


def _epoch_order(key: jax.Array, mask: jax.Array) -> jax.Array:
  """(N,) permutation listing the IN examples first, in random order."""
  u = jax.random.uniform(key, mask.shape)
  return jnp.argsort(jnp.where(mask, u, 2.0 + u))


def _batch_indices(order: jax.Array, n_in: jax.Array, step: jax.Array, batch_size: int):
  """Indices and validity of batch ``step`` of an epoch; padding wraps around the IN set."""
  pos = step * batch_size + jnp.arange(batch_size)
  valid = pos < n_in
  return order[jnp.mod(pos, jnp.maximum(n_in, 1))], valid


def _loss_fn(plan: _Plan, params, extra, xb, yb, wb):
  compute = jnp.dtype(plan.cfg.compute_dtype)
  if compute != jnp.float32:  # mixed precision: the cast's gradient returns float32 grads
    params = jax.tree.map(lambda p: p.astype(compute), params)
    xb = xb.astype(compute)
  variables = {"params": params, **extra}
  if plan.has_batch_stats:
    logits, updates = plan.net.apply(variables, xb, train=True, mutable=["batch_stats"])
    updates = jax.tree.map(lambda u: u.astype(jnp.float32), updates)
  else:
    logits, updates = plan.net.apply(variables, xb, train=True), {}
  return jnp.sum(wb * example_losses(plan.cfg.loss, logits.astype(jnp.float32), yb)), updates


def centred_one_hot(labels: jax.Array, num_classes: int) -> jax.Array:
  """(N,) int -> (N, C) rows of 1 - 1/C at the label and -1/C elsewhere (FRePo's targets)."""
  return jax.nn.one_hot(labels, num_classes) - 1.0 / num_classes


def example_losses(loss: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example losses (N,) of logits (N, C) against labels (N,) int or (N, C) float rows."""
  if loss == "mse":
    targets = labels if labels.ndim == 2 else centred_one_hot(labels, logits.shape[-1])
    return 0.5 * jnp.sum((logits - targets) ** 2, axis=-1)
  if labels.ndim == 2:
    return optax.softmax_cross_entropy(logits, labels)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _dp_grads(plan: _Plan, grad_fn, params, extra, xb, yb, wb, noise_key):
  """DP-SGD: per-example gradients (vmap), each clipped to L2 norm dp_clip, summed, plus
  Gaussian noise of std dp_noise * dp_clip on every coordinate (``dcjax.privacy.mechanisms``).
  Returns (loss_sum, grads)."""
  def one(x, y, w):
    (loss, _), g = grad_fn(params, extra, x[None], y[None], w[None])
    return loss, g

  losses, grads = jax.vmap(one)(xb, yb, wb)
  clipped, _ = mechanisms.clip_per_example(grads, plan.cfg.dp_clip)
  noise_std = plan.cfg.dp_noise * plan.cfg.dp_clip if plan.cfg.dp_noise > 0 else 0.0
  return jnp.sum(losses), mechanisms.noisy_sum(noise_key, clipped, noise_std)


def _train_step(plan: _Plan, tx, state, pool_x, pool_y, order, n_in, weights, step, aug_key,
                mask=None, sample_key=None):
  """One SGD step of one model. state = (variables, opt_state). Returns (state, loss).
  ``mask`` (N,) and ``sample_key``: the IN examples and the batch keys of Poisson sampling."""
  variables, opt_state = state
  poisson = plan.cfg.sampling == "poisson"
  if poisson:
    idx, valid = mechanisms.poisson_sample(key_tree.step(sample_key, step), mask,
                                           plan.cfg.poisson_rate, plan.batch_size)
  else:
    step_in_epoch = jnp.mod(step, plan.steps_per_epoch)
    idx, valid = _batch_indices(order, n_in, step_in_epoch, plan.batch_size)
  xb, yb = pool_x[idx], pool_y[idx]
  wb = valid * weights[idx]
  if plan.cfg.augment:
    xb = dsa(key_tree.step(aug_key, step), xb, plan.cfg.augment, siamese=False)
  params = variables["params"]
  extra = {k: v for k, v in variables.items() if k != "params"}
  grad_fn = jax.value_and_grad(functools.partial(_loss_fn, plan), has_aux=True)
  mb = plan.microbatch
  if plan.cfg.is_dp:
    noise_key = key_tree.step(key_tree.purpose(aug_key, key_tree.NOISE), step)
    (loss_sum, grads), updates = _dp_grads(plan, grad_fn, params, extra, xb, yb, wb,
                                           noise_key), {}
  elif mb is None:
    (loss_sum, updates), grads = grad_fn(params, extra, xb, yb, wb)
  else:  # a Python loop, unrolled at trace time: no conv gradient inside a CPU while-loop
    loss_sum, grads, updates = 0.0, jax.tree.map(jnp.zeros_like, params), {}
    for start in range(0, plan.batch_size, mb):
      sl = slice(start, start + mb)
      (l, updates), g = grad_fn(params, extra, xb[sl], yb[sl], wb[sl])
      loss_sum, grads = loss_sum + l, jax.tree.map(jnp.add, grads, g)
  total = jnp.sum(wb)
  # Poisson: the expected batch q * n of the public size n, one constant for every run (a
  # normaliser from the batch or from a run's members would release their number)
  normaliser = plan.cfg.poisson_rate * plan.cfg.dataset_size if poisson else total
  scale = 1.0 / jnp.maximum(normaliser, 1e-12)
  grads = jax.tree.map(lambda g: g * scale, grads)
  upd, new_opt = tx.update(grads, opt_state, params)
  new_state = ({**extra, **updates, "params": optax.apply_updates(params, upd)}, new_opt)
  if poisson or plan.cfg.is_dp:  # every step is released: an empty batch updates with noise
    return new_state, loss_sum * scale
  # Shuffled batches: a batch with no IN example (the padding steps of a model with fewer
  # members than the largest) is skipped.
  keep = total > 0
  new_state = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_state,
                           (variables, opt_state))
  return new_state, loss_sum * scale


# ----------------------------------------------------------------------------- many models


def _prepare(net, pool_x, pool_y, cfg, masks, example_weights, num_models):
  """Validates inputs; returns (masks (M, N) bool, weights (M, N) f32, plan)."""
  pool_x = jnp.asarray(pool_x)
  pool_y = jnp.asarray(pool_y)
  if pool_x.ndim != 4:
    raise ValueError(f"Training images must be (N, H, W, C), got shape {pool_x.shape}.")
  n = pool_x.shape[0]
  if pool_y.shape[:1] != (n,) or pool_y.ndim not in (1, 2) or (
      pool_y.ndim == 2 and not jnp.issubdtype(pool_y.dtype, jnp.floating)):
    raise ValueError(f"labels must be ({n},) int or ({n}, num_classes) float soft labels, got "
                     f"{pool_y.dtype} {pool_y.shape}.")
  if masks is None:
    masks = np.ones((num_models, n), bool)
  masks = np.asarray(masks, bool)
  if masks.shape != (num_models, n):
    raise ValueError(f"masks must have shape (num_models={num_models}, N={n}), got "
                     f"{masks.shape}.")
  if example_weights is None:
    example_weights = np.ones((num_models, n), np.float32)
  example_weights = np.asarray(example_weights, np.float32)
  if example_weights.shape != (num_models, n):
    raise ValueError(f"example_weights must have shape ({num_models}, {n}), got "
                     f"{example_weights.shape}.")
  counts = masks.sum(axis=1)
  if counts.min() < 1:
    raise ValueError(f"Model {int(counts.argmin())} has no training example (empty mask).")
  largest = int(counts.max())
  if cfg.sampling == "poisson" and cfg.dataset_size is None:
    cfg = dataclasses.replace(cfg, dataset_size=largest)  # without DP only (TrainConfig checks)
  steps_per_epoch = cfg.steps_per_epoch(largest)
  # A batch never needs more slots than the largest training set (a 100-image synthetic set
  # with batch 256 is one batch of 100): padding slots would cost compute and change nothing.
  batch_size = min(cfg.batch_size, largest)
  if cfg.sampling == "poisson":
    batch_size = mechanisms.poisson_capacity(cfg.poisson_rate * cfg.dataset_size, largest)
  probe = jax.eval_shape(lambda: init_variables(jax.random.key(0), net, pool_x.shape[1:]))
  has_bs = "batch_stats" in probe
  if has_bs and cfg.is_dp:
    raise ValueError(f"DP-SGD (dp_clip={cfg.dp_clip}) needs per-example gradients, but "
                     f"{type(net).__name__} has BatchNorm, whose statistics mix the examples "
                     f"of a batch; use a network with instance, group or no normalisation.")
  plan = _Plan(_dp_conv(net) if cfg.is_dp else net, cfg, steps_per_epoch, batch_size,
               _resolve_microbatch(cfg, has_bs, batch_size), has_bs)
  return pool_x, pool_y, masks, example_weights, plan


def _dp_conv(net):
  """On CPU, per-example gradients with the kernel gradient as a patches matmul: XLA lowers
  the vmapped native kernel gradient to a grouped convolution, which is slow there (measured,
  DP-SGD on digits' ConvNetD2, batch 256: 0.44 s per step against 0.82 s, compile included;
  0.26 s steady). Same maths; the parameters are the same tree."""
  if jax.default_backend() == "cpu" and getattr(net, "conv_impl", None) == "xla":
    return net.clone(conv_impl="xla_patch_grad")
  return net


def _init_state(plan: _Plan, key, image_shape_probe):
  # init_variables is jitted per network and image shape, not per plan: the initialisation
  # takes seconds to compile on CPU, and jobs of one network differ in their plans.
  variables = init_variables(key, plan.net, tuple(image_shape_probe.shape[1:]))
  tx = make_optimizer(plan.cfg, plan.steps_per_epoch)
  return variables, tx.init(variables["params"])


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(1,))
def _jit_step(plan, state, pool_x, pool_y, order, n_in, weights, step, aug_key, mask,
              sample_key):
  tx = make_optimizer(plan.cfg, plan.steps_per_epoch)
  return _train_step(plan, tx, state, pool_x, pool_y, order, n_in, weights, step, aug_key,
                     mask, sample_key)


_jit_order = jax.jit(_epoch_order)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _train_one(plan, key, pool_x, pool_y, mask, weights, strategy: str, trajectory=False,
               bar=None):
  """One model's whole run, epochs x steps under ``dcjax.loops.repeat``: "loop" drives the
  jitted step from Python (with ``bar``, a progress bar per epoch); "scan" is traceable and
  vmappable. Returns its variables, or with ``trajectory`` its params after each epoch
  (epochs + 1, ...) from the initial ones."""
  init_key, order_key, aug_key = key_tree.training_keys(key)
  loop = strategy == "loop"
  if loop:
    state = _init_state(plan, init_key, pool_x[:1])
    mask, weights = jnp.asarray(mask), jnp.asarray(weights)
    step_fn, order_fn = functools.partial(_jit_step, plan), _jit_order
  else:
    tx = make_optimizer(plan.cfg, plan.steps_per_epoch)
    variables = plan.net.init(init_key, pool_x[:1])
    state = (variables, tx.init(variables["params"]))
    step_fn, order_fn = functools.partial(_train_step, plan, tx), _epoch_order
  n_in = jnp.sum(mask).astype(jnp.int32)
  spe = plan.steps_per_epoch
  # copies in the loop, whose step donates its state's buffers
  params = lambda st: jax.tree.map(jnp.copy, st[0]["params"]) if loop else st[0]["params"]
  initial = params(state) if trajectory else None
  # a model with fewer members than the largest has empty (no-op) last steps: its bar shows
  # its last real step's loss
  last_real = min(spe, -(-int(n_in) // plan.batch_size)) - 1 if loop else spe - 1

  def epoch_body(state, epoch):
    order = order_fn(key_tree.step(order_key, epoch), mask)
    step_body = lambda st, s: step_fn(st, pool_x, pool_y, order, n_in, weights,
                                      epoch * spe + s, aug_key, mask, order_key)
    state, losses = loops.repeat(step_body, state, spe, strategy)
    if bar is not None:
      bar.update(1)
      if epoch % 10 == 0 or epoch == plan.cfg.epochs - 1:
        bar.set_postfix(loss=f"{float(losses[last_real]):.4f}")
    return state, params(state) if trajectory else losses[last_real]

  state, per_epoch = loops.repeat(epoch_body, state, plan.cfg.epochs, strategy)
  if trajectory:
    return jax.tree.map(lambda a, rest: jnp.concatenate([a[None], rest]), initial, per_epoch)
  return state[0]


@functools.partial(jax.jit, static_argnums=(0, 6))
def _train_chunk_scan(plan, keys, pool_x, pool_y, masks, weights, trajectory=False):
  one = lambda k, m, w: _train_one(plan, k, pool_x, pool_y, m, w, "scan", trajectory)
  return jax.vmap(one)(keys, masks, weights)


def train_many(keys: jax.Array, net: nn.Module, pool_x, pool_y, cfg: TrainConfig = TrainConfig(),
               masks=None, example_weights=None, progress: bool = False,
               trajectory: bool = False) -> Variables:
  """Trains one fresh network per key on its IN examples of a shared pool.

  keys: (M,) PRNG keys. pool_x: (N, H, W, C) float32. pool_y: (N,) int or (N, C) float soft
  labels. masks: (M, N) bool (default: all IN). example_weights: (M, N) loss weights (default
  1). Returns the variables of the M networks stacked on a leading axis; with ``trajectory``,
  instead their params at initialisation and after every epoch, (M, epochs + 1, ...) (MTT's
  expert trajectories).
  """
  keys = jnp.asarray(keys)
  if keys.ndim != 1:
    raise ValueError(f"keys must be a 1-D array of PRNG keys, got shape {keys.shape}.")
  m = keys.shape[0]
  pool_x, pool_y, masks, weights, plan = _prepare(net, pool_x, pool_y, cfg, masks,
                                                  example_weights, m)
  if resolve_strategy(cfg) == "loop":
    bar = tqdm(total=m * cfg.epochs, desc=f"train {m} model(s)", unit="epoch",
               disable=not progress)
    outs = [_train_one(plan, keys[i], pool_x, pool_y, masks[i], weights[i], "loop", trajectory,
                       bar) for i in range(m)]
    bar.close()
    return _stack(outs)
  chunk = min(cfg.models_per_chunk, m)
  outs = []
  for start in tqdm(range(0, m, chunk), desc=f"train {m} model(s)", unit="chunk",
                    disable=not progress):
    sl = slice(start, min(start + chunk, m))
    mesh = run_mesh(sl.stop - sl.start)  # several local devices: each trains its share
    k, mk, w = shard_runs((keys[sl], jnp.asarray(masks[sl]), jnp.asarray(weights[sl])), mesh)
    outs.append(_train_chunk_scan(plan, k, pool_x, pool_y, mk, w, trajectory))
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)


def train(key: jax.Array, net: nn.Module, x, y, cfg: TrainConfig = TrainConfig(),
          example_weights=None, progress: bool = False, trajectory: bool = False) -> Variables:
  """Trains one fresh network on (x (N, H, W, C), y (N,) int or (N, C) soft); returns its
  variables (with ``trajectory``: its params per epoch, see ``train_many``)."""
  weights = None if example_weights is None else np.asarray(example_weights)[None]
  stacked = train_many(key[None], net, x, y, cfg, example_weights=weights, progress=progress,
                       trajectory=trajectory)
  return jax.tree.map(lambda a: a[0], stacked)


# ----------------------------------------------------------------------------- inference


@functools.partial(jax.jit, static_argnums=(0,))
def _forward(net, variables, x):
  return net.apply(variables, x, train=False)


def predict(net: nn.Module, variables: Variables, x, batch_size: int = 1024) -> jax.Array:
  """Logits (N, num_classes) of one network (BatchNorm in inference mode)."""
  x = jnp.asarray(x)
  return jnp.concatenate([_forward(net, variables, x[i:i + batch_size])
                          for i in range(0, x.shape[0], batch_size)])


def predict_many(net: nn.Module, stacked: Variables, x, batch_size: int = 1024) -> jax.Array:
  """Logits (M, N, num_classes) of M stacked networks: a loop on CPU, vmap elsewhere."""
  m = jax.tree.leaves(stacked)[0].shape[0]
  if jax.default_backend() == "cpu":
    return jnp.stack([predict(net, jax.tree.map(lambda a: a[i], stacked), x, batch_size)
                      for i in range(m)])
  fwd = jax.jit(jax.vmap(lambda v, xb: net.apply(v, xb, train=False), in_axes=(0, None)))
  x = jnp.asarray(x)
  return jnp.concatenate([fwd(stacked, x[i:i + batch_size])
                          for i in range(0, x.shape[0], batch_size)], axis=1)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction correct; logits (..., N, K), labels (N,) -> (...)."""
  return jnp.mean(jnp.argmax(logits, -1) == labels, axis=-1)
