"""Differentially private dataset condensation (Zheng & Li, "Differentially Private Dataset
Condensation"): NDPDC and LDPDC.

Both touch the real data only through noisy sums of Poisson samples per class, so the released
set is (epsilon, delta)-DP under add/remove-one adjacency (every other step is post-processing):

* **NDPDC** is DM whose real side is private. Each iteration, per class c: a Poisson sample of
  the run's IN examples of c with rate q, every example's embedding (under the iteration's fresh
  network and the class's Siamese DSA transform) clipped to norm ``clip``, summed, plus Gaussian
  noise of std ``noise_multiplier * clip`` per coordinate, divided by the public constant
  q * n_c (n_c the class's public expected size, below); the loss is the squared distance of that noisy mean to the mean of the synthetic
  images' embeddings (clipped the same way, so both sides are on one scale). One subsampled
  Gaussian composition per iteration.
* **LDPDC** sets each synthetic image of class c to a noisy sum of its own Poisson sample of
  class images (each clipped to L2 norm ``clip``) divided by the same public q * n_c: ipc
  compositions, no optimisation.

Public sizes. Under add/remove adjacency a run's number of IN examples of a class is private:
a target divided by it would release it (its scale, and the noise std sigma * clip / (q n_c)),
which the accountant does not cover. So the rate and the normaliser come from ``class_sizes``,
the expected IN examples per class fixed before any mask is seen: declared, or the pool's class
counts times the keep-mask design's IN probability (1/2 for dcjax's balanced masks, where every
example is IN for exactly half of the runs; 1 without masks, the data set itself, whose class
counts are then taken as public, as in the reference). Neighbouring IN sets share them, so one
example changes a released sum by at most ``clip`` and a target by at most clip / (q n_c).

Sampling: one rate q = min(1, group_size / min_c n_c) for every class, so every class samples
at least group_size in expectation (the reference's q = max_c L / n_c). Static shapes: each
class's sample has ``batch_real`` slots; when more are drawn a uniformly random subset is kept,
which the accounting takes into account (dp-accounting's truncated Poisson event, for a class of
the largest IN size n_max over the runs: truncation is likeliest there).

``prepare`` fills the public sizes, q, the slots and n_max, and calibrates
``noise_multiplier`` to ``epsilon`` at ``delta`` with the PLD accountant; a config given with
those fields set is used as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dcjax import checks
from dcjax.augment import DEFAULT_STRATEGY
from dcjax.condense import common
from dcjax.condense.contract import Condenser, Pool, Spec, State
from dcjax.nets import uses_batch_stats
from dcjax.privacy import accounting, mechanisms

GROUP_SIZE = 50  # the reference's expected Poisson sample per class (Zheng & Li, L = 50)


@dataclasses.dataclass(frozen=True)
class _Private:
  """The privacy fields of both methods. None: filled by ``prepare`` from the IN examples."""

  epsilon: float = 4.0
  delta: float = 1e-5
  group_size: int = GROUP_SIZE
  noise_multiplier: float | None = None
  sample_rate: float | None = None
  batch_real: int | None = None  # slots of one class's Poisson sample
  max_class_size: int | None = None  # n_max, for the truncation's accounting
  # the public expected IN examples of each class (see the module docstring)
  class_sizes: tuple[float, ...] | None = None

  def _check_private(self):
    name = type(self).__name__
    if not (isinstance(self.epsilon, (int, float)) and 0 < self.epsilon < math.inf):
      raise ValueError(f"{name}.epsilon must be a finite float > 0, got {self.epsilon!r}.")
    if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
      raise ValueError(f"{name}.delta must be in (0, 1), got {self.delta!r}.")
    checks.positive_ints(self, "group_size")
    if self.noise_multiplier is not None and not self.noise_multiplier > 0:
      raise ValueError(f"{name}.noise_multiplier must be > 0 (or None: calibrated), got "
                       f"{self.noise_multiplier!r}.")
    if self.sample_rate is not None and not 0 < self.sample_rate <= 1:
      raise ValueError(f"{name}.sample_rate must be in (0, 1], got {self.sample_rate!r}.")
    if self.class_sizes is not None and not (
        isinstance(self.class_sizes, tuple) and self.class_sizes
        and all(isinstance(n, (int, float)) and 0 < n < math.inf for n in self.class_sizes)):
      raise ValueError(f"{name}.class_sizes must be a non-empty tuple of positive numbers (the "
                       f"public expected IN examples per class), got {self.class_sizes!r}.")

  @property
  def steps(self) -> int:
    raise NotImplementedError

  def check_prepared(self, num_classes: int | None = None) -> None:
    if None in (self.noise_multiplier, self.sample_rate, self.batch_real, self.class_sizes):
      raise ValueError(f"{type(self).__name__} is not prepared (noise, rate, slots and public "
                       "class sizes are filled by prepare(config, labels, num_classes, masks)).")
    if num_classes is not None and len(self.class_sizes) != num_classes:
      raise ValueError(f"{type(self).__name__} was prepared for {len(self.class_sizes)} "
                       f"classes; the data has {num_classes}.")

  def normalisers(self) -> jax.Array:
    """(C,) the public constants q * n_c that turn each class's noisy sum into a mean."""
    self.check_prepared()
    return self.sample_rate * jnp.asarray(self.class_sizes, jnp.float32)

  def mechanism(self) -> accounting.SampledGaussian:
    """The accounted mechanism."""
    self.check_prepared()
    return accounting.SampledGaussian(float(self.noise_multiplier), float(self.sample_rate),
                                      self.steps, self.max_class_size, self.batch_real)

  def guarantee(self) -> accounting.Guarantee:
    return accounting.Guarantee(self.mechanism(), self.delta)


@dataclasses.dataclass(frozen=True)
class NDPDCConfig(_Private):
  """NDPDC: the reference's 10,000 iterations; DM's image optimiser (SGD lr 1, momentum 0.5),
  Siamese DSA and network; embeddings clipped to norm 1."""

  iterations: int = 10_000
  clip: float = 1.0
  lr_img: float = 1.0
  momentum: float = 0.5
  dsa_strategy: str | None = DEFAULT_STRATEGY
  net: str = "ConvNet"
  init_scheme: str = "torch"
  real_chunk: int | None = 0  # 0: per backend (128 on CPU); None: one pass

  def __post_init__(self):
    self._check_private()
    checks.positive_ints(self, "iterations")
    checks.positive_finite(self, "lr_img", "clip")
    checks.in_unit_interval(self, "momentum")

  @property
  def steps(self) -> int:
    return self.iterations


@dataclasses.dataclass(frozen=True)
class LDPDCConfig(_Private):
  """LDPDC: one pass (``iterations`` = 1) of ipc noisy means per class; images clipped to L2
  norm ``clip`` in the normalised space (None: sqrt(H*W*C), a per-pixel RMS of 1)."""

  ipc: int = 10
  iterations: int = 1
  clip: float | None = None
  net: str = "ConvNet"  # unused (no network); every condenser config names one
  init_scheme: str = "torch"

  def __post_init__(self):
    self._check_private()
    checks.positive_ints(self, "ipc")
    if self.iterations != 1:
      raise ValueError(f"LDPDCConfig.iterations must be 1 (one noisy mean per image), got "
                       f"{self.iterations!r}.")
    if self.clip is not None:
      checks.positive_finite(self, "clip")

  @property
  def steps(self) -> int:
    return self.ipc


class _PrivateCondenser(Condenser):
  """Noise init only (a real init image would be released as it is)."""

  default_init = "noise"
  inits = ("noise",)
  private = True
  vectorised = True

  def prepare(self, cfg, labels, num_classes, masks=None):
    return prepare(cfg, labels, num_classes, masks)


class NDPDC(_PrivateCondenser):
  """DP distribution matching (the reference uses the same hyperparameters for every ipc)."""

  name = "ndpdc"
  config_class = NDPDCConfig
  summary = "DP distribution matching: noisy clipped class embeddings (Zheng & Li)"

  def step(self, spec, state, key, pool):
    return ndpdc_step(spec, state, key, pool)


class LDPDC(_PrivateCondenser):
  name = "ldpdc"
  config_class = LDPDCConfig
  summary = "DP noisy means of Poisson samples per class (Zheng & Li)"

  def preset(self, ipc: int) -> LDPDCConfig:
    return LDPDCConfig(ipc=ipc)

  def init(self, spec, pool, key, images):
    return {"images": images, "opt_state": ()}

  def step(self, spec, state, key, pool):
    return ldpdc_step(spec, state, key, pool)


def public_class_sizes(labels, num_classes: int, masks=None) -> tuple[float, ...]:
  """The expected IN examples per class that no run's membership changes: the pool's class
  counts times the keep-mask design's IN probability, 1/2 for balanced masks (every example IN
  for exactly half of the runs: ``dcjax.mia.balanced_keep_masks``) and 1 without masks."""
  counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
  if masks is None:
    return tuple(counts.tolist())
  fraction = mechanisms.design_in_probability(
      masks, "The public class sizes of a DP condenser",
      "Declare class_sizes=(n_0, ..., n_C-1), the expected IN examples per class, in the "
      "condenser's config.")
  return tuple((counts * fraction).tolist())


def prepare(cfg, labels, num_classes: int, masks=None):
  """``cfg`` with the public class sizes, the sampling rate, the slots per class and the noise
  multiplier filled for runs whose IN examples are ``masks`` (M, N) (None: all of
  ``labels``); fields already set are kept. The noise is calibrated for ``cfg.epsilon`` at
  ``cfg.delta`` (PLD accountant)."""
  labels = np.asarray(labels)
  masks_2d = np.ones((1, len(labels)), bool) if masks is None else np.asarray(masks, bool)
  if masks_2d.ndim == 1:
    masks_2d = masks_2d[None]
  counts = np.stack([np.bincount(labels[m], minlength=num_classes) for m in masks_2d])
  if counts.min() < 1:
    run, cls = np.unravel_index(int(counts.argmin()), counts.shape)
    raise ValueError(f"{type(cfg).__name__}: run {run} has no IN example of class {cls}; "
                     "every class needs members to sample from.")
  sizes = cfg.class_sizes or public_class_sizes(labels, num_classes,
                                                None if masks is None else masks_2d)
  n_max = int(counts.max())
  rate = cfg.sample_rate or min(1.0, cfg.group_size / min(sizes))
  slots = cfg.batch_real or mechanisms.poisson_capacity(rate * max(sizes), n_max)
  cfg = dataclasses.replace(cfg, class_sizes=tuple(float(n) for n in sizes),
                            sample_rate=float(rate), batch_real=int(slots),
                            max_class_size=cfg.max_class_size or n_max)
  if len(cfg.class_sizes) != num_classes:
    raise ValueError(f"{type(cfg).__name__}.class_sizes has {len(cfg.class_sizes)} entries; "
                     f"the data has {num_classes} classes.")
  if cfg.noise_multiplier is None:
    sigma = accounting.calibrate_noise(cfg.epsilon, cfg.sample_rate, cfg.steps, cfg.delta,
                                       dataset_size=cfg.max_class_size, capacity=cfg.batch_real)
    cfg = dataclasses.replace(cfg, noise_multiplier=float(sigma))
  return cfg


def sample_per_class(key: jax.Array, labels: jax.Array, num_classes: int, rate: float,
                     slots: int, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """One Poisson sample of rate ``rate`` of each class's IN examples: indices (C, slots) into
  the pool and their validity (C, slots) (``dcjax.privacy.mechanisms.poisson_sample``)."""
  of_class = labels[None, :] == jnp.arange(num_classes)[:, None]
  eligible = of_class if mask is None else of_class & mask[None]
  return mechanisms.poisson_sample(key, eligible, rate, slots)


def private_class_means(key, rows, valid, cfg, clip: float):
  """The released targets of one composition. rows (C, S, D) of each class's sampled examples,
  valid (C, S) -> (C, D): each row clipped to L2 norm ``clip``, the valid ones summed with
  Gaussian noise of std ``noise_multiplier * clip``, divided by the public q * n_c."""
  clipped, _ = mechanisms.clip_per_example(rows, clip, example_axes=2)
  per_example = jnp.swapaxes(clipped * valid[..., None], 0, 1)  # (S, C, D): examples first
  total = mechanisms.noisy_sum(key, per_example, cfg.noise_multiplier * clip)
  return total / cfg.normalisers()[:, None]


def ndpdc_loss(net: nn.Module, cfg: NDPDCConfig, images, variables, real, valid, aug_key,
               noise_key) -> jax.Array:
  """images (C*ipc, H, W, Ch); real (C, S, H, W, Ch) with valid (C, S). Returns the summed
  squared distance of each class's noisy real mean embedding to its synthetic mean."""
  num_classes, slots = real.shape[:2]
  syn = images.reshape(num_classes, -1, *images.shape[1:])
  chunk = common.default_chunk(embedding=True) if cfg.real_chunk == 0 else cfg.real_chunk
  embed = lambda x: net.apply(variables, x, method="embed")
  keys = common.class_keys(aug_key, num_classes)
  real = common.siamese_dsa(keys, real, cfg.dsa_strategy)
  syn = common.siamese_dsa(keys, syn, cfg.dsa_strategy)
  feats = common.apply_in_chunks(embed, real.reshape(-1, *real.shape[2:]), chunk)
  target = private_class_means(noise_key, feats.reshape(num_classes, slots, -1), valid, cfg,
                               cfg.clip)
  # the synthetic side clipped the same way, so that both sides are on one scale
  syn_feats, _ = mechanisms.clip_per_example(embed(syn.reshape(-1, *syn.shape[2:])), cfg.clip)
  mean_syn = syn_feats.reshape(num_classes, syn.shape[1], -1).mean(1)
  return jnp.sum((jax.lax.stop_gradient(target) - mean_syn) ** 2)


@functools.partial(jax.jit, static_argnums=(0,))
def ndpdc_step(spec: Spec, state: State, key, pool: Pool):
  """One NDPDC iteration on state["images"] (C*ipc, H, W, Ch). Returns (state, loss).
  ``spec.batch_real`` is not used: the sample's slots are the config's ``batch_real``."""
  net, cfg, num_classes = spec.net, spec.config, spec.num_classes
  images, opt_state, mask = state["images"], state["opt_state"], pool.mask
  pool_x, pool_y = pool.x, pool.y
  cfg.check_prepared(num_classes)
  if uses_batch_stats(net):
    raise ValueError("NDPDC clips each example's embedding; a BatchNorm network mixes the "
                     "examples of a batch. Use an instance-norm ConvNet.")
  k_net, k_sample, k_aug, k_noise = jax.random.split(key, 4)
  variables = net.init(k_net, images[:1])
  pool_y = jnp.asarray(pool_y)
  idx, valid = sample_per_class(k_sample, pool_y, num_classes, cfg.sample_rate, cfg.batch_real,
                                mask)
  real = jnp.asarray(pool_x)[idx]
  loss, grads = jax.value_and_grad(lambda s: ndpdc_loss(
      net, cfg, s, variables, real, valid, k_aug, k_noise))(images)
  updates, opt_state = common.image_optimizer(cfg).update(grads, opt_state, images)
  return {**state, "images": optax.apply_updates(images, updates), "opt_state": opt_state}, loss


@functools.partial(jax.jit, static_argnums=(0,))
def ldpdc_step(spec: Spec, state: State, key, pool: Pool):
  """The whole of LDPDC: state["images"] (C*ipc, H, W, Ch) replaced by ipc noisy means per
  class, each of its own Poisson sample. Returns (state, 0.0)."""
  cfg, num_classes, images, mask = spec.config, spec.num_classes, state["images"], pool.mask
  cfg.check_prepared(num_classes)
  ipc = images.shape[0] // num_classes
  if ipc != cfg.ipc:
    raise ValueError(f"LDPDCConfig.ipc={cfg.ipc} is what its epsilon was accounted for; the "
                     f"set has {ipc} images per class.")
  pool_x, pool_y = jnp.asarray(pool.x), jnp.asarray(pool.y)
  dim = math.prod(images.shape[1:])
  clip = math.sqrt(dim) if cfg.clip is None else cfg.clip

  def one_image(k):  # (C, H, W, Ch): one noisy mean per class
    k_sample, k_noise = jax.random.split(k)
    idx, valid = sample_per_class(k_sample, pool_y, num_classes, cfg.sample_rate,
                                  cfg.batch_real, mask)
    rows = pool_x[idx].reshape(num_classes, cfg.batch_real, dim)
    return private_class_means(k_noise, rows, valid, cfg, clip).reshape(
        num_classes, *images.shape[1:])

  out = jax.lax.map(one_image, jax.random.split(key, ipc))  # (ipc, C, H, W, Ch)
  out = jnp.swapaxes(out, 0, 1).reshape(images.shape)  # class-major
  return {**state, "images": out.astype(images.dtype)}, jnp.zeros((), jnp.float32)
