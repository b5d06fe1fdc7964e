"""DC (gradient matching, Zhao et al. 2021) and DSA (DC with Siamese augmentation).

One iteration: a fresh random network; ``outer_loop`` times: for every class, the gradient of
the loss on a real batch (no graph) is matched with the gradient on that class's synthetic
images (with graph) by the layer-wise (1 - cosine) distance; one image step on the summed
distance; then, except after the last outer step, ``inner_loop`` epochs of plain SGD on the
synthetic set. BatchNorm networks, as in the reference: before each outer step a train-mode
pass of ``bn_per_class`` real images per class updates the running statistics, which the
matching uses frozen; the inner epochs train in train mode.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dcjax import checks, key_tree, loops
from dcjax.augment import DEFAULT_STRATEGY, dsa
from dcjax.condense import common
from dcjax.condense.common import class_keys, siamese_dsa
from dcjax.condense.contract import Condenser, Pool, Spec, State

BN_KEY = key_tree.BATCH_STATS  # the real batch that refreshes BatchNorm statistics
# (outer_loop, inner_loop) by images per class, from the DC/DSA reference code.
LOOPS_BY_IPC = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15),
                50: (50, 10)}


@dataclasses.dataclass(frozen=True)
class DCConfig:
  """Reference hyperparameters of DC/DSA (Zhao, Mopuri & Bilen, ICLR 2021;
  Zhao & Bilen, ICML 2021; VICO-UoE/DatasetCondensation, main.py): 1000 iterations, SGD lr 0.1
  momentum 0.5 on the images, 256 real images per class, network trained on the synthetic set
  with plain SGD lr 0.01 in batches of 256. DC: noise init, no augmentation; DSA: real init,
  Siamese DSA."""

  iterations: int = 1000
  lr_img: float = 0.1
  momentum: float = 0.5
  batch_real: int = 256
  outer_loop: int = 10
  inner_loop: int = 50
  lr_net: float = 0.01
  batch_train: int = 256
  dsa_strategy: str | None = None
  net: str = "ConvNet"
  init_scheme: str = "torch"
  bn_per_class: int = 16  # real images per class that set BatchNorm statistics
  real_chunk: int | None = 0  # 0: per backend (128 on CPU); None: one pass
  conv_impl: str = "auto"  # the condensing network's convolution (common.resolve_conv_impl)

  def __post_init__(self):
    checks.positive_ints(self, "iterations", "batch_real", "outer_loop", "inner_loop",
                         "batch_train", "bn_per_class")
    checks.positive_finite(self, "lr_img", "lr_net")
    checks.in_unit_interval(self, "momentum")
    checks.one_of(self.conv_impl, common.CONV_IMPL_CHOICES, "conv_impl")  # resolved at use


def loops_for_ipc(ipc: int) -> tuple[int, int]:
  """The reference (outer_loop, inner_loop); other ipc values take the next tabulated one."""
  for known in sorted(LOOPS_BY_IPC):
    if ipc <= known:
      return LOOPS_BY_IPC[known]
  return LOOPS_BY_IPC[max(LOOPS_BY_IPC)]


image_optimizer = common.image_optimizer


def _safe_norm(x: jax.Array) -> jax.Array:
  """Row-wise L2 norm whose gradient at a zero row is 0 (as torch's), not NaN."""
  sq = jnp.sum(x * x, axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def match_distance(grads_real, grads_syn) -> jax.Array:
  """Sum over layers and output units of (1 - cosine); 1-D parameters contribute 0.

  Flax kernels keep the output unit on the LAST axis ((kh, kw, in, out) or (in, out)), so each
  output unit's row is a column here.
  """
  total = 0.0
  for gr, gs in zip(jax.tree.leaves(grads_real), jax.tree.leaves(grads_syn)):
    if gr.ndim < 2:
      continue
    gr = jnp.moveaxis(gr, -1, 0).reshape(gr.shape[-1], -1)
    gs = jnp.moveaxis(gs, -1, 0).reshape(gs.shape[-1], -1)
    cos = jnp.sum(gr * gs, -1) / (_safe_norm(gr) * _safe_norm(gs) + 1e-6)
    total = total + jnp.sum(1.0 - cos)
  return total


def _ce(net, variables, params, x, y):
  logits = net.apply({**variables, "params": params}, x, train=False)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _real_grad(net, variables, x, c, chunk):
  """Gradient of the mean loss over real images x (all of class c), summed over chunks."""
  params = variables["params"]
  if chunk is None or x.shape[0] <= chunk:
    return jax.grad(functools.partial(_ce, net, variables))(params, x,
                                                           jnp.full(x.shape[0], c))
  total = jax.tree.map(jnp.zeros_like, params)
  for i in range(0, x.shape[0], chunk):
    xc = x[i:i + chunk]
    g = jax.grad(functools.partial(_ce, net, variables))(params, xc, jnp.full(xc.shape[0], c))
    total = jax.tree.map(lambda t, gi, n=len(xc): t + gi * n, total, g)
  return jax.tree.map(lambda t: t / x.shape[0], total)


def matching_loss(net, cfg: DCConfig, images, variables, real, aug_key):
  """images (C*ipc, ...) synthetic, real (C, B, ...). Summed matching distance over classes.

  The per-class gradients are vmapped over classes (one Siamese key per class, as the
  reference's loop), so the step compiles one class-shaped program, not C copies.
  """
  num_classes = real.shape[0]
  syn = images.reshape(num_classes, -1, *images.shape[1:])
  chunk = common.default_chunk() if cfg.real_chunk == 0 else cfg.real_chunk
  keys = class_keys(aug_key, num_classes)
  real = siamese_dsa(keys, real, cfg.dsa_strategy)
  syn = siamese_dsa(keys, syn, cfg.dsa_strategy)

  def one_class(real_c, syn_c, c):
    g_real = jax.lax.stop_gradient(_real_grad(net, variables, real_c, c, chunk))
    g_syn = jax.grad(functools.partial(_ce, net, variables))(
        variables["params"], syn_c, jnp.full(syn_c.shape[0], c))
    return match_distance(g_real, g_syn)

  return jnp.sum(jax.vmap(one_class)(real, syn, jnp.arange(num_classes)))


@functools.partial(jax.jit, static_argnums=(0,))
def init_network(net: nn.Module, key, pool_x):
  """A fresh random network (BatchNorm running statistics at their initial 0 / 1)."""
  k_init, _ = jax.random.split(key)  # the second half was once the BatchNorm batch's key
  return net.init(k_init, pool_x[:1])


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def refresh_batch_stats(net: nn.Module, cfg: DCConfig, num_classes: int, variables, key,
                        pool_x, pool_y, mask):
  """As the reference before each outer step: one train-mode pass of ``bn_per_class`` real
  images per class updates the BatchNorm running statistics (momentum, not a reset), which the
  matching step then uses frozen. Networks without BatchNorm are returned unchanged."""
  if "batch_stats" not in variables:
    return variables
  real = common.real_batches(key, pool_x, pool_y, num_classes, cfg.bn_per_class, mask)
  _, updates = net.apply(variables, real.reshape(-1, *real.shape[2:]), train=True,
                         mutable=["batch_stats"])
  return {**variables, **updates}


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def match_step(net, cfg: DCConfig, num_classes: int, batch_real: int, images, opt_state,
               variables, key, pool_x, pool_y, mask):
  """One image update. Returns (images, opt_state, loss)."""
  k_real, k_aug = jax.random.split(key)
  real = common.real_batches(k_real, pool_x, pool_y, num_classes, batch_real, mask)
  loss, grads = jax.value_and_grad(
      lambda s: matching_loss(net, cfg, s, variables, real, k_aug))(images)
  updates, opt_state = image_optimizer(cfg).update(grads, opt_state, images)
  return optax.apply_updates(images, updates), opt_state, loss


def _ce_train(net, variables, params, x, y):
  """Training-mode loss: a BatchNorm network normalises by the batch and updates its running
  statistics (as the reference's inner loop, which trains in train mode). (loss, updates)."""
  if "batch_stats" not in variables:
    return _ce(net, variables, params, x, y), {}
  logits, updates = net.apply({**variables, "params": params}, x, train=True,
                              mutable=["batch_stats"])
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def inner_epoch(net, cfg: DCConfig, steps: int, variables, images, labels, key):
  """One epoch of plain SGD (lr_net) on the synthetic set, in shuffled batches of batch_train,
  in train mode."""
  images = jax.lax.stop_gradient(images)
  k_perm, k_aug = jax.random.split(key)
  perm = jax.random.permutation(k_perm, images.shape[0])
  bt = cfg.batch_train
  for s in range(steps):  # unrolled: no conv gradient inside a CPU while-loop
    idx = perm[s * bt:(s + 1) * bt]
    xb, yb = images[idx], labels[idx]
    if cfg.dsa_strategy:
      xb = dsa(key_tree.step(k_aug, s), xb, cfg.dsa_strategy, siamese=False)
    grads, updates = jax.grad(functools.partial(_ce_train, net, variables), has_aux=True)(
        variables["params"], xb, yb)
    params = jax.tree.map(lambda p, g: p - cfg.lr_net * g, variables["params"], grads)
    variables = {**variables, **updates, "params": params}
  return variables


def _iteration(strategy: str, spec: Spec, state: State, key, pool: Pool):
  """One DC/DSA iteration: a fresh network, then outer_loop image steps, each but the last
  followed by inner_loop epochs of training on the synthetic set. Returns (state, mean loss);
  both loops run under ``dcjax.loops.repeat`` with ``strategy``."""
  net, cfg, num_classes = spec.net, spec.config, spec.num_classes
  images, opt_state = state["images"], state["opt_state"]
  labels = jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), images.shape[0] // num_classes)
  k_net, k_loop = jax.random.split(key)
  variables = init_network(net, k_net, pool.x)
  steps = -(-images.shape[0] // cfg.batch_train)

  def match(images, opt_state, variables, ol):
    k_outer = key_tree.step(k_loop, ol)
    k_match, k_inner = jax.random.split(k_outer)
    variables = refresh_batch_stats(net, cfg, num_classes, variables,
                                    key_tree.purpose(k_outer, BN_KEY), pool.x, pool.y,
                                    pool.mask)
    images, opt_state, loss = match_step(net, cfg, num_classes, spec.batch_real, images,
                                         opt_state, variables, k_match, pool.x, pool.y,
                                         pool.mask)
    return images, opt_state, variables, loss, k_inner

  def outer(carry, ol):  # every outer step but the last: match, then inner_loop epochs
    images, opt_state, variables = carry
    images, opt_state, variables, loss, k_inner = match(images, opt_state, variables, ol)
    train = lambda v, il: (inner_epoch(net, cfg, steps, v, images, labels,
                                       key_tree.step(k_inner, il)), None)
    variables, _ = loops.repeat(train, variables, cfg.inner_loop, strategy)
    return (images, opt_state, variables), loss

  (images, opt_state, variables), losses = loops.repeat(
      outer, (images, opt_state, variables), cfg.outer_loop - 1, strategy)
  images, opt_state, _, last, _ = match(images, opt_state, variables, cfg.outer_loop - 1)
  total = last if losses is None else jnp.sum(losses) + last
  return {**state, "images": images, "opt_state": opt_state}, total / cfg.outer_loop


class DC(Condenser):
  """Gradient matching. ``step`` is driven from Python around jitted pieces (on CPU a
  convolution's gradient inside a scan runs far slower); ``traceable_step`` is the same
  iteration as one traceable function, for the runner's vmap strategy on GPU/TPU: the same
  keys, so the same result up to float rounding."""

  name = "dc"
  config_class = DCConfig
  vectorised = True
  default_init = "noise"
  summary = "gradient matching (Zhao et al. 2021)"
  dsa_strategy: str | None = None

  def preset(self, ipc: int) -> DCConfig:
    outer, inner = loops_for_ipc(ipc)
    return DCConfig(outer_loop=outer, inner_loop=inner, dsa_strategy=self.dsa_strategy)

  def step(self, spec, state, key, pool):
    return _iteration("loop", spec, state, key, pool)

  def traceable_step(self, spec, state, key, pool):
    return _iteration("scan", spec, state, key, pool)


class DSA(DC):
  """Gradient matching with Siamese augmentation: DC's iteration, real init, DSA on."""

  name = "dsa"
  default_init = "real"
  summary = "gradient matching with Siamese augmentation (Zhao & Bilen 2021)"
  dsa_strategy = DEFAULT_STRATEGY
