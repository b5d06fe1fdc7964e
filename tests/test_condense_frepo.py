"""FRePo: the closed-form kernel ridge regression, learned (soft) labels through the condenser,
the released set and the training engine, resume and many runs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.condense import (condense, condense_many, load_synthetic_set,
                            reference_eval_config, save_synthetic_set)
from dcjax.condense import frepo
from dcjax.data import load_dataset
from dcjax.mia import balanced_keep_masks
from dcjax.nets import get_net
from dcjax.runs.recipes import parse
from dcjax.train import TrainConfig, train_many
from dcjax.train.engine import centred_one_hot

# batch_real 1: no run's smallest class caps it, so condense_many's runs equal condense's
TINY = frepo.FRePoConfig(iterations=4, lr_img=1e-2, batch_real=1, pool_size=2,
                         max_online_updates=1, online_batch=4, net="MLP")


@pytest.fixture(scope="module")
def pool():
  train, _ = load_dataset("synthetic", num_classes=3, train_per_class=10, test_per_class=1,
                          image_shape=(8, 8, 1), seed=6)
  return train


def test_krr_prediction_equals_a_direct_solve():
  with jax.enable_x64(True):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    f_s = jax.random.normal(k1, (5, 7), jnp.float64)
    y_s = jax.random.normal(k2, (5, 3), jnp.float64)
    f_t = jax.random.normal(k3, (4, 7), jnp.float64)
    reg = 1e-2
    k_ss = f_s @ f_s.T
    direct = f_t @ f_s.T @ jnp.linalg.solve(k_ss + reg * jnp.trace(k_ss) / 5 * jnp.eye(5), y_s)
    np.testing.assert_allclose(frepo.krr_predict(f_s, y_s, f_t, reg), direct, rtol=1e-10)
    # with features that span the support, a tiny ridge interpolates the support labels
    np.testing.assert_allclose(frepo.krr_predict(f_s, y_s, f_s, 1e-12), y_s, atol=1e-6)


def test_label_margin_term_and_initial_labels():
  labels = frepo.initial_labels(3, 2)
  # centred one-hot, scaled by 1 / sqrt(C / 10) (C = 3)
  np.testing.assert_allclose(labels[0], np.array([2 / 3, -1 / 3, -1 / 3]) / np.sqrt(0.3),
                             rtol=1e-6)
  np.testing.assert_allclose(np.asarray(labels).argmax(-1), [0, 0, 1, 1, 2, 2])
  # margins (1.0 and 0.1) capped at 1/C = 1/3
  flat = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.4, 0.0]])
  assert float(frepo.label_margin_loss(flat)) == pytest.approx(-(1 / 3 + 0.1) / 2)


def test_soft_labels_train_as_their_hard_equivalents(pool):
  """One-hot rows under cross-entropy, and centred one-hot rows under MSE, train exactly as
  the integer labels they encode (same keys): the engine's soft-label path adds no change."""
  net = get_net("MLP", 3)
  keys = jax.random.split(jax.random.key(1), 1)
  x, y = pool.images, np.asarray(pool.labels)
  for loss, rows in (("xent", jax.nn.one_hot(y, 3)), ("mse", centred_one_hot(y, 3))):
    cfg = TrainConfig(epochs=2, batch_size=8, loss=loss)
    hard = train_many(keys, net, x, y, cfg)
    soft = train_many(keys, net, x, np.asarray(rows, np.float32), cfg)
    for a, b in zip(jax.tree.leaves(hard), jax.tree.leaves(soft)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r"labels must be \(30,\) int or \(30, num_classes\)"):
    train_many(keys, net, x, np.zeros((30, 3), np.int32), TrainConfig(epochs=1))
  with pytest.raises(ValueError, match="TrainConfig.loss must be one of"):
    TrainConfig(loss="hinge")


def test_frepo_learns_images_and_soft_labels_and_resumes(pool, tmp_path):
  key = jax.random.key(2)
  syn = condense(key, pool, "frepo", ipc=2, config=TINY)
  assert syn.labels.shape == (6, 3) and syn.labels.dtype == jnp.float32
  init = frepo.initial_labels(3, 2)
  assert float(jnp.abs(syn.labels - init).max()) > 1e-4  # the labels were learned
  np.testing.assert_array_equal(syn.hard_labels(), [0, 0, 1, 1, 2, 2])
  start = np.asarray(pool.images)[np.asarray(syn.init_indices)]
  assert np.abs(np.asarray(syn.images) - start).max() > 1e-4

  ckpt_dir = str(tmp_path / "run")
  seen = []

  def kill(done, loss):
    assert np.isfinite(loss)
    seen.append(done)
    if done == 3:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    condense(key, pool, "frepo", ipc=2, config=TINY, checkpoint_dir=ckpt_dir,
             checkpoint_every=2, callback=kill)
  resumed = condense(key, pool, "frepo", ipc=2, config=TINY, checkpoint_dir=ckpt_dir,
                     checkpoint_every=2)
  np.testing.assert_allclose(resumed.images, syn.images, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(resumed.labels, syn.labels, rtol=1e-5, atol=1e-5)

  save_synthetic_set(str(tmp_path / "set"), resumed)
  loaded = load_synthetic_set(str(tmp_path / "set"))
  np.testing.assert_array_equal(loaded.labels, resumed.labels)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_frepo_in_condense_many_equals_condense_run_by_run(pool, strategy):
  """Both strategies of condense_many: the loop shares the programs of the test above; the
  vmapped step carries each run's online pool and optimiser states along the run axis."""
  keys = jax.random.split(jax.random.key(3), 2)
  masks = np.asarray(balanced_keep_masks(jax.random.key(4), 2, len(pool)))
  cfg = TINY
  many = condense_many(keys, pool, "frepo", 1, "real", masks, cfg, strategy=strategy)
  for one, key, mask in zip(many, keys, masks):
    ref = condense(key, pool, "frepo", 1, "real", mask=mask, config=cfg)
    np.testing.assert_allclose(one.images, ref.images, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(one.labels, ref.labels, rtol=1e-4, atol=1e-5)


def test_a_diverging_frepo_run_stops_naming_the_iteration(pool, tmp_path):
  cfg = dataclasses.replace(TINY, lr_img=1e30)
  with pytest.raises(FloatingPointError, match=r"frepo.*at iteration \d+"):
    condense(jax.random.key(7), pool, "frepo", ipc=1, config=cfg,
             checkpoint_dir=str(tmp_path / "run"), checkpoint_every=1)


def test_networks_train_on_frepo_sets_with_its_loss():
  assert reference_eval_config("frepo", "digits").loss == "mse"
  assert reference_eval_config("dm", "digits").loss == "xent"
  recipe = parse("condense(frepo,init=real)", {"ipc": 2})
  assert recipe.plan(TrainConfig(), None, None)[0].loss == "mse"
  assert parse("condense(mtt,init=noise)", {"ipc": 2}).plan(TrainConfig(), None, None)[0].loss == "xent"
