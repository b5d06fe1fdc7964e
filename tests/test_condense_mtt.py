"""MTT: the gradient through the unrolled student (finite differences, with and without remat),
the expert trajectories, and the condenser end to end (resume, refusal, NaN, many runs)."""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.checkpoint import ConfigMismatchError
from dcjax.condense import condense, condense_many
from dcjax.condense import common, mtt
from dcjax.data import load_dataset
from dcjax.mia import balanced_keep_masks
from dcjax.nets import get_net
from dcjax.train import init_variables, train_many

TINY = mtt.MTTConfig(iterations=4, syn_steps=3, expert_epochs=1, max_start_epoch=2,
                     num_experts=2, lr_img=0.1, lr_lr=1e-3, lr_syn_init=0.01, batch_expert=8,
                     dsa_strategy=None, net="MLP")


@pytest.fixture(scope="module")
def pool():
  train, _ = load_dataset("synthetic", num_classes=3, train_per_class=10, test_per_class=1,
                          image_shape=(8, 8, 1), seed=5)
  return train


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree.leaves(tree)])


def test_student_gradient_matches_central_differences_with_and_without_remat():
  with jax.enable_x64(True):
    # the convolution the condenser uses on this backend (on CPU a custom kernel gradient,
    # which MTT differentiates a second time)
    net = get_net("ConvNetD1", 3, width=8, conv_impl=common.resolve_conv_impl("auto"))
    k_net, k_target, k_img, k_dir, k_aug = jax.random.split(jax.random.key(0), 5)
    start = jax.tree.map(lambda p: p.astype(jnp.float64),
                         init_variables(k_net, net, (8, 8, 1))["params"])
    leaves, tree = jax.tree.flatten(start)
    target = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape, jnp.float64)
                                       for p, k in zip(leaves, jax.random.split(k_target,
                                                                                len(leaves)))])
    images = jax.random.normal(k_img, (6, 8, 8, 1), jnp.float64)
    labels = jnp.repeat(jnp.arange(3), 2)

    @functools.partial(jax.jit, static_argnums=2)
    def loss(x, lr, remat):
      cfg = dataclasses.replace(TINY, syn_steps=2, remat=remat)
      return mtt.student_loss(net, cfg, x, labels, lr, start, target, k_aug)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
    lr = jnp.float64(0.05)
    g_x, g_lr = grad(images, lr, True)
    g_x_plain, g_lr_plain = grad(images, lr, False)
    np.testing.assert_allclose(g_x, g_x_plain, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(g_lr, g_lr_plain, rtol=1e-6)

    direction = jax.random.normal(k_dir, images.shape, jnp.float64)
    h = 1e-5
    fd = (loss(images + h * direction, lr, True) - loss(images - h * direction, lr, True)) / (2 * h)
    analytic = jnp.vdot(g_x, direction)
    assert abs(float(fd - analytic)) / abs(float(fd)) < 1e-4
    fd_lr = (loss(images, lr + h, True) - loss(images, lr - h, True)) / (2 * h)
    assert abs(float(fd_lr - g_lr)) / abs(float(fd_lr)) < 1e-4


def test_expert_trajectories_are_the_engines_training_epoch_by_epoch(pool):
  net = get_net(TINY.net, 3)
  keys = jax.random.split(jax.random.key(1), 2)
  masks = np.asarray(balanced_keep_masks(jax.random.key(2), 2, len(pool)))
  experts = mtt.setup(keys, net, TINY, pool.images, pool.labels, masks)
  epochs = TINY.trajectory_epochs
  for leaf in jax.tree.leaves(experts):
    assert leaf.shape[:3] == (2, TINY.num_experts, epochs + 1)
  # run 1's expert 1: the engine's training from fold_in(keys[1], 1) on run 1's members
  final = train_many(jax.random.fold_in(keys[1], 1)[None], net, pool.images, pool.labels,
                     mtt.expert_train_config(TINY), masks=masks[1:2])["params"]
  np.testing.assert_allclose(_flat(jax.tree.map(lambda a: a[1, 1, -1], experts)),
                             _flat(jax.tree.map(lambda a: a[0], final)), rtol=1e-5, atol=1e-6)
  moved = _flat(jax.tree.map(lambda a: a[0, 0, 1] - a[0, 0, 0], experts))
  assert np.abs(moved).max() > 0


class _Killed(Exception):
  pass


def test_mtt_condenses_resumes_and_refuses_another_config(pool, tmp_path):
  key = jax.random.key(3)
  reference = condense(key, pool, "mtt", ipc=2, config=TINY)
  start = np.asarray(pool.images)[np.asarray(reference.init_indices)]
  assert np.abs(np.asarray(reference.images) - start).max() > 1e-4  # the images moved
  assert reference.labels.shape == (6,)

  ckpt_dir = str(tmp_path / "run")

  def kill(done, loss):
    assert np.isfinite(loss)
    if done == 3:
      raise _Killed()

  with pytest.raises(_Killed):
    condense(key, pool, "mtt", ipc=2, config=TINY, checkpoint_dir=ckpt_dir,
             checkpoint_every=2, callback=kill)
  marker = os.path.join(ckpt_dir, "context", "stage.json")
  written = os.path.getmtime(marker)  # the expert trajectories, a stage of the run
  resumed = condense(key, pool, "mtt", ipc=2, config=TINY, checkpoint_dir=ckpt_dir,
                     checkpoint_every=2)
  assert os.path.getmtime(marker) == written  # loaded, not trained again
  np.testing.assert_allclose(resumed.images, reference.images, rtol=1e-5, atol=1e-5)

  with pytest.raises(ConfigMismatchError, match="different configuration"):
    condense(key, pool, "mtt", ipc=2, config=dataclasses.replace(TINY, syn_steps=2),
             checkpoint_dir=ckpt_dir)


def test_mtt_vmapped_over_runs_equals_condense_run_by_run(pool):
  cfg = TINY  # the programs of the test above (same worker, same module)
  keys = jax.random.split(jax.random.key(4), 2)
  masks = np.asarray(balanced_keep_masks(jax.random.key(5), 2, len(pool)))
  many = condense_many(keys, pool, "mtt", 1, "real", masks, cfg, strategy="vmap")
  for one, key, mask in zip(many, keys, masks):
    ref = condense(key, pool, "mtt", 1, "real", mask=mask, config=cfg)
    # another program (vmapped) of the same maths: the normalised trajectory loss of a tiny
    # expert (a short segment, small denominator) amplifies float reassociation to ~2e-4;
    # another run's experts or keys would move the images by O(1)
    np.testing.assert_allclose(one.images, ref.images, rtol=1e-3, atol=1e-3)


def test_a_diverging_mtt_run_stops_naming_the_iteration(pool, tmp_path):
  cfg = dataclasses.replace(TINY, lr_img=1e30)  # the programs of the tests above
  with pytest.raises(FloatingPointError, match=r"mtt.*at iteration \d+"):
    condense(jax.random.key(7), pool, "mtt", ipc=2, config=cfg,
             checkpoint_dir=str(tmp_path / "run"), checkpoint_every=1)


def test_bad_configs_and_batchnorm_are_refused(pool):
  with pytest.raises(ValueError, match="syn_steps must be"):
    mtt.MTTConfig(syn_steps=0)
  with pytest.raises(ValueError, match="unroll must be an int >= 0"):
    mtt.MTTConfig(unroll=-1)
  with pytest.raises(ValueError, match="ConvNetBN has BatchNorm"):
    mtt.setup(jax.random.split(jax.random.key(0), 1), get_net("ConvNetBN", 3),
              dataclasses.replace(TINY, net="ConvNetBN"), pool.images, pool.labels,
              np.ones((1, len(pool)), bool))


def test_presets_are_the_papers_cifar10_settings():
  assert (mtt.preset(10).syn_steps, mtt.preset(10).max_start_epoch) == (30, 20)
  assert (mtt.preset(1).syn_steps, mtt.preset(1).lr_lr) == (50, 1e-7)
  assert (mtt.preset(50).lr_img, mtt.preset(50).max_start_epoch) == (1000.0, 40)
