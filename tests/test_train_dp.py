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
  plain = dataclasses.replace(TINY, sampling=sampling)
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


def test_poisson_batches_have_the_expected_size_and_only_members():
  n, batch = 400, 32
  mask = jnp.asarray(np.random.default_rng(0).random(n) < 0.5)
  n_in = jnp.sum(mask)
  capacity = engine.poisson_capacity(batch, n)
  one = lambda k: engine._poisson_batch(k, mask, n_in, batch, capacity)
  idx, valid = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), 2000))
  sizes = np.asarray(valid.sum(1))
  assert sizes.mean() == pytest.approx(batch, rel=0.02)  # q * n_in = batch
  assert sizes.std() == pytest.approx(np.sqrt(batch * (1 - batch / int(n_in))), rel=0.1)
  assert np.all(np.asarray(mask)[np.asarray(idx)[np.asarray(valid)]])


def test_batchnorm_networks_are_refused_for_dpsgd(tiny_rgb):
  train_set, _ = tiny_rgb
  cfg = dataclasses.replace(TINY, dp_clip=1.0, dp_noise=1.0, sampling="poisson")
  with pytest.raises(ValueError, match="DP-SGD.*needs per-example gradients.*BatchNorm"):
    train_many(jax.random.split(jax.random.key(0), 1), get_net("ConvNetBN", 4, width=8),
               train_set.images, train_set.labels, cfg)
  with pytest.raises(ValueError, match="dp_noise=1.0 needs a finite dp_clip"):
    TrainConfig(dp_noise=1.0)
  with pytest.raises(ValueError, match="sampling must be one of"):
    TrainConfig(sampling="uniform")
