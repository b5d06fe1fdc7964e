"""DP-SGD in the training engine: Poisson batches, per-example clipping, calibrated noise."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.nets import get_net
from dcjax.train import TrainConfig, init_variables, train_many
from dcjax.train import engine

NET = get_net("ConvNet", 4, width=8, depth=1)  # instance norm: per-example
TINY = TrainConfig(epochs=2, batch_size=8, microbatch=None)


def _max_diff(a, b):
  return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.abs(x - y).max()), a, b)))


@pytest.mark.parametrize("sampling", ["shuffle", "poisson"])
def test_no_noise_and_no_clipping_is_plain_training(tiny_rgb, sampling):
  train_set, _ = tiny_rgb
  keys = jax.random.split(jax.random.key(0), 2)
  masks = np.random.default_rng(0).random((2, len(train_set))) < 0.6
  plain = dataclasses.replace(TINY, sampling=sampling,
                              dataset_size=len(train_set) // 2 if sampling == "poisson" else None)
  dp = dataclasses.replace(plain, dp_clip=float("inf"), dp_noise=0.0)
  a = train_many(keys, NET, train_set.images, train_set.labels, plain, masks=masks)
  b = train_many(keys, NET, train_set.images, train_set.labels, dp, masks=masks)
  assert _max_diff(a, b) < 1e-5
  if sampling == "poisson":  # clipping that binds gives another result
    clipped = dataclasses.replace(dp, dp_clip=1e-3)
    c = train_many(keys, NET, train_set.images, train_set.labels, clipped, masks=masks)
    assert _max_diff(a, c) > 1e-3


def test_noise_std_per_coordinate_is_sigma_times_clip(tiny_rgb):
  train_set, _ = tiny_rgb
  xb, yb = jnp.asarray(train_set.images[:4]), jnp.asarray(train_set.labels[:4])
  wb = jnp.ones(4)
  params = init_variables(jax.random.key(0), NET, xb.shape[1:])["params"]
  sigma, clip = 1.7, 0.5
  plan = engine._Plan(NET, dataclasses.replace(TINY, dp_clip=clip, dp_noise=sigma), 1, 4, None,
                      False)
  grad_fn = jax.value_and_grad(functools.partial(engine._loss_fn, plan), has_aux=True)
  noisy = jax.jit(lambda k: engine._dp_grads(plan, grad_fn, params, {}, xb, yb, wb, k)[1])
  clean_plan = dataclasses.replace(plan, cfg=dataclasses.replace(plan.cfg, dp_noise=0.0))
  clean = jax.tree.leaves(
      jax.jit(lambda: engine._dp_grads(clean_plan, grad_fn, params, {}, xb, yb, wb, None)[1])())
  noise = np.concatenate([
      np.concatenate([np.asarray(d - c).ravel()
                      for d, c in zip(jax.tree.leaves(noisy(jax.random.key(k))), clean)])
      for k in range(8)])
  # 8 draws x 756 coordinates: the std estimate has a standard error of ~0.9%
  assert noise.size > 6000
  assert noise.std() == pytest.approx(sigma * clip, rel=0.05)
  assert abs(noise.mean()) < 0.05 * sigma * clip
  norms = np.sqrt(sum(np.sum(np.asarray(c) ** 2) for c in clean))
  assert norms <= 4 * clip + 1e-5  # a sum of 4 gradients, each clipped to norm 0.5


def test_an_empty_poisson_batch_still_releases_a_noisy_update(tiny_rgb):
  """Under DP every step is released: a step whose Poisson batch is empty adds noise to the
  parameters like any other (skipping it would reveal that the batch was empty)."""
  train_set, _ = tiny_rgb
  n = len(train_set)
  cfg = dataclasses.replace(TINY, lr=0.1, momentum=0.0, weight_decay=0.0, sampling="poisson",
                            dataset_size=n, dp_clip=1.0)

  def one_step(cfg):
    x, y, masks, weights, plan = engine._prepare(NET, train_set.images, train_set.labels, cfg,
                                                 None, None, 1)
    state = engine._init_state(plan, jax.random.key(0), x[:1])
    before = jax.tree.map(jnp.copy, state[0]["params"])
    empty = jnp.zeros(n, bool)  # no member: the Poisson batch is empty
    (after, _), _ = engine._jit_step(plan, state, x, y, jnp.arange(n), jnp.int32(0),
                                     jnp.asarray(weights[0]), jnp.int32(0), jax.random.key(1),
                                     empty, jax.random.key(2))
    return _max_diff(before, after["params"])

  assert one_step(cfg) == 0.0  # no noise, no member: a zero update
  assert one_step(dataclasses.replace(cfg, dp_noise=1.0)) > 1e-3


def test_one_added_member_moves_a_dp_step_by_at_most_lr_clip_over_the_normaliser(tiny_rgb):
  """Neighbouring IN sets, the same keys: the same rate and normaliser (from the public size),
  and one SGD step's parameters differ by at most lr * clip / (q n), the accounted sensitivity
  of the noisy sum scaled by the constant normaliser."""
  train_set, _ = tiny_rgb
  n = len(train_set)
  smaller = np.zeros(n, bool)
  smaller[:5] = True
  larger = smaller.copy()
  larger[5] = True
  cfg = dataclasses.replace(TINY, batch_size=4, lr=1.0, momentum=0.0, weight_decay=0.0,
                            sampling="poisson", dataset_size=4, dp_clip=0.5, dp_noise=1.0)
  x, y, _, weights, plan = engine._prepare(NET, train_set.images, train_set.labels, cfg,
                                           larger[None], None, 1)
  assert plan.cfg.poisson_rate == 1.0 and plan.batch_size >= 6  # every member sampled, no cut

  def step(mask):
    state = engine._init_state(plan, jax.random.key(0), x[:1])
    (after, _), _ = engine._jit_step(plan, state, x, y, jnp.arange(n), jnp.int32(mask.sum()),
                                     jnp.asarray(weights[0]), jnp.int32(0), jax.random.key(1),
                                     jnp.asarray(mask), jax.random.key(2))
    return after["params"]

  a, b = step(smaller), step(larger)
  moved = np.sqrt(sum(float(jnp.sum((u - v) ** 2)) for u, v in zip(jax.tree.leaves(a),
                                                                     jax.tree.leaves(b))))
  normaliser = plan.cfg.poisson_rate * cfg.dataset_size
  assert 0 < moved <= cfg.lr * cfg.dp_clip / normaliser * (1 + 1e-4)


def test_batchnorm_networks_are_refused_for_dpsgd(tiny_rgb):
  train_set, _ = tiny_rgb
  cfg = dataclasses.replace(TINY, dp_clip=1.0, dp_noise=1.0, sampling="poisson", dataset_size=20)
  with pytest.raises(ValueError, match="DP-SGD.*needs per-example gradients.*BatchNorm"):
    train_many(jax.random.split(jax.random.key(0), 1), get_net("ConvNetBN", 4, width=8),
               train_set.images, train_set.labels, cfg)
  with pytest.raises(ValueError, match="dp_noise=1.0 needs a finite dp_clip"):
    TrainConfig(dp_noise=1.0)
  with pytest.raises(ValueError, match="sampling must be one of"):
    TrainConfig(sampling="uniform")
