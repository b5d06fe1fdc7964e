"""FRePo: dataset distillation by neural feature regression (Zhou, Nezhadarya & Ba, NeurIPS 2022).

A pool of ``pool_size`` online networks is trained on the synthetic set as it evolves, each for
at most ``max_online_updates`` steps before it is re-initialised (their step counters start
staggered, so the pool always holds networks at every stage of training). Each iteration takes
one pool network at random, computes penultimate-layer features f of a real batch (targets
Y_t: centred one-hot rows) and of the synthetic set, and solves kernel ridge regression on the
synthetic features in closed form:

    K_ss = f_s f_s^T,  pred_t = f_t f_s^T (K_ss + lambda * tr(K_ss) / S * I)^-1 Y_s,

loss = 0.5 * ||pred_t - Y_t||^2 per real example (mean) + the label-margin term; its gradient
updates the synthetic images and the learnable labels Y_s (LAMB, cosine decay to 0.1x).
The chosen network then takes one Adam step on the synthetic set (MSE to Y_s), or is
re-initialised if it has exhausted its updates.

Learned labels make the released set's labels soft (rows of real numbers, centred one-hot at
initialisation, scaled by 1 / sqrt(C / 10)); networks are trained on FRePo sets with the MSE
loss to those rows (``TrainConfig.loss="mse"``), as FRePo evaluates them. Facts from the
reference code (yongchaoz/FRePo): pool 10, 100 online updates, Adam 3e-4 online, LAMB 3e-4 on
the set, regulariser 1e-6. Differences, said here: the real batch is class-balanced
(``batch_real`` per class; the reference draws 1,024 at random), and the networks are dcjax's
ConvNets (instance norm; the reference's default has no normalisation).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dcjax import checks
from dcjax.condense import common
from dcjax.condense.contract import Condenser, Pool, Spec, State
from dcjax.nets import uses_batch_stats
from dcjax.train.engine import centred_one_hot, example_losses


@dataclasses.dataclass(frozen=True)
class FRePoConfig:
  """Hyperparameters of FRePo (module docstring). ``iterations`` 20,000 as DM's reference
  preset (the FRePo paper trains longer on CIFAR); ``batch_real`` real images per class per
  iteration; ``online_batch`` synthetic images per online step (all when fewer)."""

  iterations: int = 20_000
  lr_img: float = 3e-4
  batch_real: int = 100
  pool_size: int = 10
  max_online_updates: int = 100
  online_lr: float = 3e-4
  online_batch: int = 500
  reg: float = 1e-6
  learn_labels: bool = True
  net: str = "ConvNet"
  init_scheme: str = "flax"  # the reference is Flax code with Flax's initialisers

  def __post_init__(self):
    checks.positive_ints(self, "iterations", "batch_real", "pool_size", "max_online_updates",
                         "online_batch")
    checks.positive_finite(self, "lr_img", "online_lr", "reg")


def preset(ipc: int) -> FRePoConfig:
  del ipc  # the reference uses the same hyperparameters for every ipc
  return FRePoConfig()


def krr_predict(f_support: jax.Array, y_support: jax.Array, f_target: jax.Array,
                reg: float) -> jax.Array:
  """Kernel ridge regression with the linear kernel on features: f_support (S, D), y_support
  (S, C), f_target (T, D) -> predictions (T, C). The ridge is reg * tr(K_ss) / S, so it scales
  with the kernel; solved through a Cholesky factor (K_ss + ridge is positive definite)."""
  k_ss = f_support @ f_support.T
  n = k_ss.shape[0]
  k_reg = k_ss + reg * jnp.trace(k_ss) / n * jnp.eye(n, dtype=k_ss.dtype)
  alpha = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(k_reg, lower=True), y_support)
  return (f_target @ f_support.T) @ alpha


def label_margin_loss(labels: jax.Array) -> jax.Array:
  """The reference's label term: minus the gap between each row's two largest entries,
  capped at 1/C (mean over rows); keeps learned labels from collapsing their margin."""
  top2 = jax.lax.top_k(labels, 2)[0]
  return -jnp.mean(jnp.minimum(top2[:, 0] - top2[:, 1], 1.0 / labels.shape[-1]))


def initial_labels(num_classes: int, ipc: int) -> jax.Array:
  """(C*ipc, C) class-major centred one-hot rows scaled by 1 / sqrt(C / 10) (the reference)."""
  hard = jnp.repeat(jnp.arange(num_classes), ipc)
  return centred_one_hot(hard, num_classes) / math.sqrt(num_classes / 10)


def _set_optimizer(cfg: FRePoConfig) -> optax.GradientTransformation:
  return optax.lamb(optax.cosine_decay_schedule(cfg.lr_img, cfg.iterations, alpha=0.1))


def _online_optimizer(cfg: FRePoConfig) -> optax.GradientTransformation:
  return optax.adam(cfg.online_lr)


def _fresh_params(key, net, shape):
  return net.init(key, jnp.zeros((1, *shape), jnp.float32))["params"]


def init_state(cfg: FRePoConfig, images: jax.Array, key: jax.Array, net: nn.Module,
               num_classes: int) -> dict:
  """The set's optimiser state, the learned labels and the online pool (params, Adam states,
  step counters staggered by max_online_updates // pool_size, as the reference)."""
  if uses_batch_stats(net):
    raise ValueError(f"FRePo's pool networks are trained step by step here without BatchNorm "
                     f"statistics; {cfg.net} has BatchNorm (use an instance-norm ConvNet).")
  labels = initial_labels(num_classes, images.shape[0] // num_classes)
  keys = jax.random.split(key, cfg.pool_size)
  params = jax.vmap(lambda k: _fresh_params(k, net, images.shape[1:]))(keys)
  return {"set": _set_optimizer(cfg).init({"images": images, "labels": labels}),
          "labels": labels,
          "pool": {"params": params, "opt": jax.vmap(_online_optimizer(cfg).init)(params),
                   "steps": jnp.arange(cfg.pool_size, dtype=jnp.int32)
                   * (cfg.max_online_updates // cfg.pool_size)}}


class FRePo(Condenser):
  """Neural feature regression with learned labels: the state holds the learned labels (the
  released set's, soft) and the online pool of networks; networks trained on its sets use the
  MSE loss."""

  name = "frepo"
  config_class = FRePoConfig
  vectorised = True
  train_loss = "mse"
  summary = "neural feature regression with learned labels (Zhou et al. 2022)"

  def preset(self, ipc: int) -> FRePoConfig:
    return preset(ipc)

  def init(self, spec, pool, key, images):
    opt_state = init_state(spec.config, images, key, spec.net, spec.num_classes)
    labels = opt_state.pop("labels")
    return {"images": images, "labels": labels, "opt_state": opt_state}

  def step(self, spec, state, key, pool):
    return step(spec, state, key, pool)


def _embed(net, params, x):
  return net.apply({"params": params}, x, method="embed")


def frepo_loss(net, cfg: FRePoConfig, params, images, labels, real, real_labels):
  """KRR loss of the synthetic (images, labels) predicting (real, real_labels), plus the label
  margin term; ``params`` of the pool network that gives the features."""
  f_target = jax.lax.stop_gradient(_embed(net, params, real))
  preds = krr_predict(_embed(net, params, images), labels, f_target, cfg.reg)
  kernel = jnp.mean(0.5 * jnp.sum((preds - real_labels) ** 2, axis=-1))
  return kernel + (label_margin_loss(labels) if cfg.learn_labels else 0.0)


def _online_step(net, cfg, params, opt, images, labels, key):
  """One Adam step of a pool network on a random batch of the synthetic set (MSE to labels)."""
  n = images.shape[0]
  idx = jax.random.permutation(key, n)[:min(cfg.online_batch, n)]

  def loss(p):
    logits = net.apply({"params": p}, images[idx], train=True)
    return jnp.mean(example_losses("mse", logits, labels[idx]))

  grads = jax.grad(loss)(params)
  upd, opt = _online_optimizer(cfg).update(grads, opt, params)
  return optax.apply_updates(params, upd), opt


@functools.partial(jax.jit, static_argnums=(0,))
def step(spec: Spec, state: State, key, data: Pool):
  """One FRePo iteration on state["images"] (C*ipc, H, W, Ch) and state["labels"]. Returns
  (state, loss)."""
  net, cfg, num_classes, batch_real = spec.net, spec.config, spec.num_classes, spec.batch_real
  images, opt_state = state["images"], state["opt_state"]
  k_pick, k_real, k_fresh, k_online = jax.random.split(key, 4)
  pool = opt_state["pool"]
  idx = jax.random.randint(k_pick, (), 0, cfg.pool_size)
  params = jax.tree.map(lambda a: a[idx], pool["params"])
  real = common.real_batches(k_real, data.x, data.y, num_classes, batch_real, data.mask)
  real = real.reshape(-1, *real.shape[2:])
  real_labels = centred_one_hot(jnp.repeat(jnp.arange(num_classes), batch_real), num_classes)

  def loss_fn(syn):
    labels = syn["labels"] if cfg.learn_labels else jax.lax.stop_gradient(syn["labels"])
    return frepo_loss(net, cfg, params, syn["images"], labels, real, real_labels)

  syn = {"images": images, "labels": state["labels"]}
  loss, grads = jax.value_and_grad(loss_fn)(syn)
  upd, set_opt = _set_optimizer(cfg).update(grads, opt_state["set"], syn)
  syn = optax.apply_updates(syn, upd)

  opt = jax.tree.map(lambda a: a[idx], pool["opt"])
  trained, trained_opt = _online_step(net, cfg, params, opt, syn["images"],
                                      jax.lax.stop_gradient(syn["labels"]), k_online)
  reset = pool["steps"][idx] > cfg.max_online_updates
  fresh = _fresh_params(k_fresh, net, images.shape[1:])
  pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(reset, x, y), a, b)
  new_params = pick(fresh, trained)
  new_opt = pick(_online_optimizer(cfg).init(fresh), trained_opt)
  put = lambda stacked, one: jax.tree.map(lambda s, o: s.at[idx].set(o), stacked, one)
  pool = {"params": put(pool["params"], new_params), "opt": put(pool["opt"], new_opt),
          "steps": pool["steps"].at[idx].set(jnp.where(reset, 0, pool["steps"][idx] + 1))}
  return {**state, "images": syn["images"], "labels": syn["labels"],
          "opt_state": {"set": set_opt, "pool": pool}}, loss
