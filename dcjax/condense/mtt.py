"""MTT: matching training trajectories (Cazenavette et al., CVPR 2022).

Before the first iteration, ``num_experts`` networks are trained on the run's IN real examples
(plain SGD at ``lr_expert``, DSA, batch ``batch_expert``) and their parameters kept after every
epoch: the expert trajectories, a stage of the run shared by all its iterations. Each
iteration picks an expert e and a start epoch t < ``max_start_epoch``; a student starts at
theta*_{e,t} and takes ``syn_steps`` plain SGD steps on the (DSA-augmented) synthetic set
with a learnable step size alpha; the loss is

    || theta_student - theta*_{e,t+M} ||^2 / || theta*_{e,t} - theta*_{e,t+M} ||^2,

with M = ``expert_epochs``, differentiated through the unrolled student steps with respect to
the images and alpha, both updated by SGD with momentum 0.5.

Memory: each student step sits under ``jax.checkpoint`` (``remat``), so the backward pass keeps
one parameter vector per step and recomputes that step's activations, instead of keeping the
activations of all ``syn_steps`` steps. The steps run as a ``lax.scan``; on CPU fully unrolled,
since a convolution's gradient inside a scan is slow there (jax issue #12868).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dcjax import checks, key_tree
from dcjax.augment import DEFAULT_STRATEGY, dsa
from dcjax.condense.contract import Condenser, Pool, Spec, State
from dcjax.nets import uses_batch_stats
from dcjax.train import TrainConfig, train_many


@dataclasses.dataclass(frozen=True)
class MTTConfig:
  """Hyperparameters of MTT. Defaults: the MTT paper's CIFAR-10 ipc 10 settings (Cazenavette
  et al., CVPR 2022, and GeorgeCazenavette/mtt-distillation; ``preset`` has ipc 1 and 50) with 5,000 iterations as the paper, and
  ``num_experts`` 10 (the paper buffers 100 experts; each shadow run here trains its own).

  syn_steps: student steps N per iteration. expert_epochs: M, the expert epochs the N steps
  must cover. max_start_epoch: the start epoch t is drawn from [0, max_start_epoch).
  lr_img / lr_lr: SGD (momentum ``momentum``) on the images / on the student's step size, which
  starts at ``lr_syn_init``. lr_expert, batch_expert: the experts' plain SGD (no momentum, no
  weight decay, with the dataset's DSA). batch_real: the registry's real images per class per
  iteration; MTT's iterations draw none (the real data enter through the experts).
  remat: ``jax.checkpoint`` around each student step. unroll: scan unrolling of the student
  steps (0: per backend, full on CPU, 1 elsewhere).
  """

  iterations: int = 5000
  syn_steps: int = 30
  expert_epochs: int = 2
  max_start_epoch: int = 20
  num_experts: int = 10
  lr_img: float = 100.0
  lr_lr: float = 1e-5
  lr_syn_init: float = 0.001
  momentum: float = 0.5
  lr_expert: float = 0.01
  batch_expert: int = 256
  batch_real: int = 1
  dsa_strategy: str | None = DEFAULT_STRATEGY
  net: str = "ConvNet"
  init_scheme: str = "torch"
  remat: bool = True
  unroll: int = 0

  def __post_init__(self):
    checks.positive_ints(self, "iterations", "syn_steps", "expert_epochs", "max_start_epoch",
                         "num_experts", "batch_expert", "batch_real")
    checks.positive_finite(self, "lr_img", "lr_lr", "lr_syn_init", "lr_expert")
    checks.in_unit_interval(self, "momentum")
    if not isinstance(self.unroll, int) or self.unroll < 0:
      raise ValueError(f"MTTConfig.unroll must be an int >= 0 (0: per backend), got "
                       f"{self.unroll!r}.")

  @property
  def trajectory_epochs(self) -> int:
    """Expert epochs trained: the latest start epoch plus the M epochs it is matched to."""
    return self.max_start_epoch - 1 + self.expert_epochs


# The MTT paper's CIFAR-10 settings (Cazenavette et al., CVPR 2022, its hyperparameter
# table): ipc -> (syn_steps, max_start_epoch, lr_img, lr_lr, initial student lr);
# expert_epochs 2 throughout.
CIFAR10_PRESETS = {1: (50, 2, 100.0, 1e-7, 0.01), 10: (30, 20, 100.0, 1e-5, 0.001),
                   50: (30, 40, 1000.0, 1e-5, 0.001)}


def preset(ipc: int) -> MTTConfig:
  """The paper's CIFAR-10 settings for the nearest published ipc (1, 10 or 50)."""
  nearest = min(CIFAR10_PRESETS, key=lambda k: (abs(k - ipc), k))
  syn_steps, max_start, lr_img, lr_lr, lr_syn = CIFAR10_PRESETS[nearest]
  return MTTConfig(syn_steps=syn_steps, max_start_epoch=max_start, lr_img=lr_img, lr_lr=lr_lr,
                   lr_syn_init=lr_syn)


def _image_optimizer(cfg: MTTConfig) -> optax.GradientTransformation:
  return optax.sgd(cfg.lr_img, momentum=cfg.momentum or None)


def _lr_optimizer(cfg: MTTConfig) -> optax.GradientTransformation:
  return optax.sgd(cfg.lr_lr, momentum=cfg.momentum or None)


def init_state(cfg: MTTConfig, images: jax.Array) -> dict:
  """The images' optimiser state, the student's step size and its optimiser state."""
  lr = jnp.asarray(cfg.lr_syn_init, jnp.float32)
  return {"images": _image_optimizer(cfg).init(images), "syn_lr": lr,
          "syn_lr_opt": _lr_optimizer(cfg).init(lr)}


class MTT(Condenser):
  """Matching training trajectories: the per-run expert trajectories are its setup (the
  state's "context"); the real data enter through them only."""

  name = "mtt"
  config_class = MTTConfig
  vectorised = True
  has_setup = True
  summary = "matching training trajectories (Cazenavette et al. 2022)"

  def preset(self, ipc: int) -> MTTConfig:
    return preset(ipc)

  def init(self, spec, pool, key, images):
    return {"images": images, "opt_state": init_state(spec.config, images)}

  def setup(self, spec, pool, keys, masks, progress=False):
    return setup(keys, spec.net, spec.config, pool.x, pool.y, masks, progress)

  def step(self, spec, state, key, pool):
    return step(spec, state, key, pool)


def expert_train_config(cfg: MTTConfig) -> TrainConfig:
  """The experts' training: plain SGD at lr_expert for ``trajectory_epochs`` (no decay)."""
  return TrainConfig(epochs=cfg.trajectory_epochs, batch_size=cfg.batch_expert, lr=cfg.lr_expert,
                     momentum=0.0, weight_decay=0.0, decay_epoch=cfg.trajectory_epochs,
                     augment=cfg.dsa_strategy or None)


def setup(keys: jax.Array, net: nn.Module, cfg: MTTConfig, pool_x, pool_y, masks,
          progress: bool = False):
  """The expert trajectories of M runs: params (M, num_experts, trajectory_epochs + 1, ...),
  expert j of run r trained from ``key_tree.step(keys[r], j)`` on the IN examples masks[r]."""
  if uses_batch_stats(net):
    raise ValueError(f"MTT differentiates through student steps of a per-example network; "
                     f"{cfg.net} has BatchNorm (use an instance-norm ConvNet).")
  masks = np.asarray(masks, bool)
  num_runs, e = masks.shape[0], cfg.num_experts
  expert_keys = jnp.stack([key_tree.step(keys[r], j)
                           for r in range(num_runs) for j in range(e)])
  trajectories = train_many(expert_keys, net, pool_x, pool_y, expert_train_config(cfg),
                            masks=np.repeat(masks, e, axis=0), progress=progress,
                            trajectory=True)
  return jax.tree.map(lambda a: a.reshape(num_runs, e, *a.shape[1:]), trajectories)


def _unroll(cfg: MTTConfig) -> int:
  if cfg.unroll:
    return cfg.unroll
  return cfg.syn_steps if jax.default_backend() == "cpu" else 1


def student_loss(net: nn.Module, cfg: MTTConfig, images, labels, syn_lr, start, target, key):
  """The normalised parameter distance after ``syn_steps`` student steps from ``start``.

  images (S, H, W, C), labels (S,) int; start, target: param trees of the network."""
  def one_step(params, k):
    def loss(p):
      x = dsa(k, images, cfg.dsa_strategy, siamese=False) if cfg.dsa_strategy else images
      logits = net.apply({"params": p}, x, train=True)
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    grads = jax.grad(loss)(params)
    return jax.tree.map(lambda p, g: p - syn_lr * g, params, grads), None

  if cfg.remat:
    one_step = jax.checkpoint(one_step)
  final, _ = jax.lax.scan(one_step, start, jax.random.split(key, cfg.syn_steps),
                          unroll=_unroll(cfg))
  sq = lambda a, b: sum(jnp.sum((x - y) ** 2) for x, y in
                        zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  return sq(final, target) / sq(start, target)


def pick_segment(key: jax.Array, cfg: MTTConfig, experts):
  """(theta*_{e,t}, theta*_{e,t+M}) of a random expert e and start epoch t < max_start_epoch;
  experts: params (E, trajectory_epochs + 1, ...)."""
  k_expert, k_start = jax.random.split(key)
  num_experts = jax.tree.leaves(experts)[0].shape[0]
  e = jax.random.randint(k_expert, (), 0, num_experts)
  t = jax.random.randint(k_start, (), 0, cfg.max_start_epoch)
  start = jax.tree.map(lambda a: a[e, t], experts)
  target = jax.tree.map(lambda a: a[e, t + cfg.expert_epochs], experts)
  return start, target


@functools.partial(jax.jit, static_argnums=(0,))
def step(spec: Spec, state: State, key, pool: Pool):
  """One MTT iteration on state["images"] (C*ipc, H, W, Ch) with the run's expert
  trajectories (state["context"]). Returns (state, loss). The student's step size is kept
  >= 0."""
  del pool  # the real data enter through the experts only
  net, cfg, num_classes = spec.net, spec.config, spec.num_classes
  images, opt_state, experts = state["images"], state["opt_state"], state["context"]
  k_segment, k_student = jax.random.split(key)
  start, target = pick_segment(k_segment, cfg, experts)
  labels = jnp.repeat(jnp.arange(num_classes), images.shape[0] // num_classes)
  loss, (g_images, g_lr) = jax.value_and_grad(
      lambda x, lr: student_loss(net, cfg, x, labels, lr, start, target, k_student),
      argnums=(0, 1))(images, opt_state["syn_lr"])
  upd, img_opt = _image_optimizer(cfg).update(g_images, opt_state["images"], images)
  lr_upd, lr_opt = _lr_optimizer(cfg).update(g_lr, opt_state["syn_lr_opt"], opt_state["syn_lr"])
  syn_lr = jnp.maximum(optax.apply_updates(opt_state["syn_lr"], lr_upd), 0.0)
  return {**state, "images": optax.apply_updates(images, upd),
          "opt_state": {"images": img_opt, "syn_lr": syn_lr, "syn_lr_opt": lr_opt}}, loss
