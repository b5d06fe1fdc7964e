"""Condensers: closed form, resume after kill, refused checkpoints, masks, bad input."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.checkpoint import ConfigMismatchError, StepCheckpointer
from dcjax.condense import (DCConfig, DMConfig, condense, evaluate, load_synthetic_set,
                            match_distance, random_subset, save_synthetic_set)
from dcjax.augment import DEFAULT_STRATEGY, DIGIT_STRATEGY
from dcjax.condense import Pool, Spec, dc, dm, get_condenser, reference_eval_config
from dcjax.condense.run_setup import resolve_config
from dcjax.data import from_arrays, load_dataset
from dcjax.nets import get_net
from dcjax.train import TrainConfig

TINY_DM = DMConfig(iterations=6, batch_real=6, dsa_strategy="crop_flip", net="ConvNetD1")
TINY_DC = DCConfig(iterations=2, outer_loop=2, inner_loop=2, batch_real=6,
                   dsa_strategy=None, net="ConvNetD1")


@pytest.fixture(scope="module")
def pool():
  train, _ = load_dataset("synthetic", num_classes=3, train_per_class=10, test_per_class=4,
                          image_shape=(8, 8, 1), seed=2)
  return train


def _close(a, b, atol=1e-5):
  np.testing.assert_allclose(np.asarray(a.images), np.asarray(b.images), atol=atol)


# ----------------------------------------------------------------------------- theory


def test_linear_dm_matches_closed_form():
  """DM with psi(x) = theta x converges to s_j* = s_j0 - mean(s0) + mean(x) per class."""
  rng = np.random.default_rng(0)
  pixels = rng.uniform(size=(3 * 8, 4, 4, 1)).astype(np.float32)
  labels = np.repeat(np.arange(3), 8)
  data = from_arrays(pixels, labels)
  cfg = DMConfig(iterations=300, lr_img=0.005, momentum=0.5, batch_real=8, dsa_strategy=None,
                 net="Linear")
  syn = condense(jax.random.key(0), data, "dm", ipc=2, init="real", config=cfg)
  s0 = np.asarray(data.images)[np.asarray(syn.init_indices)].reshape(3, 2, -1)
  s = np.asarray(syn.images).reshape(3, 2, -1)
  x_mean = np.stack([np.asarray(data.images)[labels == c].reshape(8, -1).mean(0)
                     for c in range(3)])
  expected = s0 - s0.mean(1, keepdims=True) + x_mean[:, None]
  np.testing.assert_allclose(s, expected, atol=1e-3)
  # the images moved (the check is not passing by standing still)
  assert np.abs(s - s0).max() > 0.1


# ----------------------------------------------------------------------------- distance


def test_match_distance_is_layerwise_one_minus_cosine():
  g = {"kernel": jnp.arange(1.0, 13.0).reshape(3, 4), "bias": jnp.ones(4)}
  assert float(match_distance(g, g)) == pytest.approx(0.0, abs=1e-5)
  neg = jax.tree.map(lambda a: -a, g)
  assert float(match_distance(g, neg)) == pytest.approx(2.0 * 4, abs=1e-4)  # 4 output units
  other_bias = {"kernel": g["kernel"], "bias": -jnp.ones(4)}
  assert float(match_distance(g, other_bias)) == pytest.approx(0.0, abs=1e-5)  # 1-D ignored
  # rows are per OUTPUT unit (last axis in Flax): scaling one output column changes nothing
  scaled = {"kernel": g["kernel"].at[:, 1].multiply(5.0), "bias": g["bias"]}
  assert float(match_distance(g, scaled)) == pytest.approx(0.0, abs=1e-5)


def test_reference_loops_by_ipc():
  assert dc.loops_for_ipc(1) == (1, 1)
  assert dc.loops_for_ipc(10) == (10, 50)
  assert dc.loops_for_ipc(50) == (50, 10)
  assert dc.DC().preset(20).inner_loop == 25


# ----------------------------------------------------------------------------- methods


@pytest.mark.parametrize("method,cfg", [
    ("dm", TINY_DM),
    # DC without augmentation is the same code without the DSA call; test_dc_with_batchnorm_
    # network runs that path
    ("dsa", dataclasses.replace(TINY_DC, dsa_strategy="crop_scale")),
])
def test_methods_change_the_images_and_keep_provenance(pool, method, cfg):
  syn = condense(jax.random.key(1), pool, method, ipc=2, init="real", config=cfg, seed=1)
  assert syn.images.shape == (6, 8, 8, 1)
  np.testing.assert_array_equal(syn.labels, [0, 0, 1, 1, 2, 2])
  init = np.asarray(pool.images)[np.asarray(syn.init_indices)]
  np.testing.assert_array_equal(np.asarray(pool.labels)[np.asarray(syn.init_indices)],
                                syn.labels)
  assert np.abs(np.asarray(syn.images) - init).max() > 1e-4
  assert syn.method == method and syn.config == cfg and syn.seed == 1
  assert syn.preprocessing == pool.preprocessing


def test_dc_with_batchnorm_network(pool):
  """As the reference's main.py: the inner epochs train in train mode (they move the running
  statistics), and before each outer step a pass of bn_per_class real images per class
  updates them by torch's momentum 0.1 (the matching then uses them frozen). A width-8
  ConvNetBN keeps the compilation small; the path is the one ``condense(..., "dc")`` drives."""
  cfg = dataclasses.replace(TINY_DC, net="ConvNetBN", bn_per_class=4, inner_loop=1)
  net = get_net("ConvNetBN", 3, width=8)
  px, py = jnp.asarray(pool.images), jnp.asarray(pool.labels)
  images = jax.random.normal(jax.random.key(5), (3, 8, 8, 1))
  condenser = dc.DC()
  spec = Spec(net, cfg, 3, 1, 4)
  pool_tree = Pool(px, py, jnp.ones(len(py), bool))
  state = condenser.init(spec, pool_tree, jax.random.key(7), images)
  state, loss = condenser.step(spec, state, jax.random.key(6), pool_tree)  # two outer steps
  new_images = state["images"]
  assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(new_images)))
  assert np.abs(np.asarray(new_images - images)).max() > 1e-6
  fresh = dc.init_network(net, jax.random.key(0), px)
  refreshed = dc.refresh_batch_stats(net, cfg, 3, fresh, jax.random.key(1), px, py, None)
  real = px[dc.common.sample_per_class(jax.random.key(1), py, 3, 4, None).reshape(-1)]
  conv = fresh["params"]["features"]["conv_0"]  # the first block's pre-norm activations
  conv0 = jax.lax.conv_general_dilated(real, conv["kernel"], (1, 1), [(1, 1)] * 2,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv["bias"]
  stats = refreshed["batch_stats"]["features"]["_BatchNorm_0"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], 0.1 * np.asarray(conv0).mean((0, 1, 2)),
                             rtol=1e-4, atol=1e-6)  # running mean 0 -> 0.9 * 0 + 0.1 * batch
  labels = jnp.arange(3, dtype=jnp.int32)
  trained = dc.inner_epoch(net, cfg, 1, refreshed, px[:3], labels, jax.random.key(2))
  assert _max_abs(jax.tree.map(jnp.subtract, trained["batch_stats"],
                               refreshed["batch_stats"])) > 0


def _max_abs(tree):
  return max(float(jnp.abs(a).max()) for a in jax.tree.leaves(tree))


def test_dm_with_batchnorm_embeds_each_side_as_one_train_mode_batch():
  """As the reference's main_DM.py for BatchNorm networks: a fresh network (train mode) embeds
  the real images of all classes as one batch and the synthetic images as another, each
  normalised by its own statistics (inference mode would use the fresh running 0 / 1)."""
  net = get_net("ConvNetBN", 3, width=8, depth=2)
  real = jax.random.normal(jax.random.key(0), (3, 4, 8, 8, 1)) + jnp.arange(3.0)[:, None, None,
                                                                                 None, None]
  images = jax.random.normal(jax.random.key(1), (6, 8, 8, 1))
  variables = jax.jit(net.init)(jax.random.key(2), images[:1])
  cfg = DMConfig(dsa_strategy=None)
  embed = lambda x: net.apply(variables, x, method="embed", train=True,
                              mutable=["batch_stats"])[0]
  want = jnp.sum((embed(real.reshape(12, 8, 8, 1)).reshape(3, 4, -1).mean(1)
                  - embed(images).reshape(3, 2, -1).mean(1)) ** 2)
  got = dm.dm_loss(net, cfg, images, variables, real, jax.random.key(3))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_condensers_default_to_the_datasets_dsa_strategy(pool):
  """Digit datasets are condensed without flips, as they are evaluated; DC does not augment."""
  digits, _ = load_dataset("digits")
  for method in ("dm", "dsa"):
    cfg = resolve_config(get_condenser(method), 10, digits)
    assert cfg.dsa_strategy == DIGIT_STRATEGY and cfg.net == "ConvNetD2"
    assert resolve_config(get_condenser(method), 10, pool).dsa_strategy == DEFAULT_STRATEGY
  assert resolve_config(get_condenser("dc"), 10, digits).dsa_strategy is None


def test_reference_evaluation_by_method():
  assert reference_eval_config("dm", "digits") == TrainConfig(epochs=1000,
                                                              augment=DIGIT_STRATEGY)
  assert reference_eval_config("dsa", "cifar10").augment == DEFAULT_STRATEGY
  assert reference_eval_config("dc", "cifar10") == TrainConfig(epochs=300, augment=None)
  assert reference_eval_config("dc", "mnist") == TrainConfig(epochs=1000,
                                                             augment="crop_scale_rotate")
  assert reference_eval_config("dc", "digits", dsa=True).augment == DIGIT_STRATEGY


def test_mask_restricts_everything_to_members(pool):
  mask = np.arange(len(pool)) % 2 == 0
  syn = condense(jax.random.key(3), pool, "dm", ipc=2, init="real", mask=mask, config=TINY_DM)
  assert np.all(mask[np.asarray(syn.init_indices)])
  changed = np.asarray(pool.images).copy()
  changed[~mask] += 5.0
  syn2 = condense(jax.random.key(3), pool.replace(images=changed), "dm", ipc=2, init="real",
                  mask=mask, config=TINY_DM)
  _close(syn, syn2, atol=0)  # non-members cannot influence the synthetic set


# ----------------------------------------------------------------------------- resume


class _Killed(Exception):
  pass


def _kill_at(iteration):
  def callback(done, loss):
    del loss
    if done == iteration:
      raise _Killed()
  return callback


@pytest.mark.parametrize("kill_at", [3, 4])
def test_killed_run_resumes_to_the_same_result(pool, tmp_path, kill_at):
  reference = condense(jax.random.key(4), pool, "dm", ipc=2, config=TINY_DM)
  ckpt_dir = str(tmp_path / "run")
  with pytest.raises(_Killed):
    condense(jax.random.key(4), pool, "dm", ipc=2, config=TINY_DM, checkpoint_dir=ckpt_dir,
             checkpoint_every=2, callback=_kill_at(kill_at))
  assert StepCheckpointer(ckpt_dir).latest_step() == 2 * (kill_at // 2)
  seen = []
  resumed = condense(jax.random.key(4), pool, "dm", ipc=2, config=TINY_DM,
                     checkpoint_dir=ckpt_dir, checkpoint_every=2,
                     callback=lambda done, loss: seen.append(done))
  assert seen[0] == 2 * (kill_at // 2) + 1  # it did not start over
  _close(reference, resumed)


def test_checkpoint_from_another_config_is_refused(pool, tmp_path):
  ckpt_dir = str(tmp_path / "run")
  condense(jax.random.key(5), pool, "dm", ipc=2, config=TINY_DM, checkpoint_dir=ckpt_dir,
           checkpoint_every=3)
  other = dataclasses.replace(TINY_DM, lr_img=0.5)
  with pytest.raises(ConfigMismatchError, match="different configuration.*config"):
    condense(jax.random.key(5), pool, "dm", ipc=2, config=other, checkpoint_dir=ckpt_dir)
  with pytest.raises(ConfigMismatchError, match="key"):
    condense(jax.random.key(6), pool, "dm", ipc=2, config=TINY_DM, checkpoint_dir=ckpt_dir)


def test_nan_loss_stops_with_iteration_and_keeps_last_good_checkpoint(pool, tmp_path):
  ckpt_dir = str(tmp_path / "run")
  cfg = dataclasses.replace(TINY_DM, lr_img=1e30, dsa_strategy=None, net="Linear")
  with pytest.raises(FloatingPointError, match=r"at iteration \d+.*Last good checkpoint"):
    condense(jax.random.key(7), pool, "dm", ipc=2, config=cfg, checkpoint_dir=ckpt_dir,
             checkpoint_every=1)
  last = StepCheckpointer(ckpt_dir).latest_step()
  assert last is not None and last >= 1


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_before_work(pool):
  with pytest.raises(ValueError, match="Unknown condensation method 'kip2'"):
    condense(jax.random.key(0), pool, "kip2", ipc=2)
  with pytest.raises(ValueError, match="ipc=11 is larger than the smallest class"):
    condense(jax.random.key(0), pool, "dm", ipc=11)
  mask = np.asarray(pool.labels) != 1
  with pytest.raises(ValueError, match=r"keeps no example of class\(es\) \[1\]"):
    condense(jax.random.key(0), pool, "dm", ipc=2, mask=mask)
  half = np.arange(len(pool)) % 2 == 0
  with pytest.raises(ValueError, match="ipc=6 is larger"):
    condense(jax.random.key(0), pool, "dm", ipc=6, mask=half)
  with pytest.raises(ValueError, match="Unknown init"):
    condense(jax.random.key(0), pool, "dm", ipc=2, init="zeros")
  with pytest.raises(ValueError, match="Unknown conv_impl 'cudnn'; expected one of"):
    DCConfig(conv_impl="cudnn")


# ----------------------------------------------------------------------------- io, evaluation


def test_save_and_load_round_trip(pool, tmp_path):
  syn = random_subset(jax.random.key(8), pool, ipc=3, seed=8)
  path = str(tmp_path / "synset")
  save_synthetic_set(path, syn)
  back = load_synthetic_set(path)
  _close(syn, back, atol=0)
  np.testing.assert_array_equal(back.init_indices, syn.init_indices)
  assert back.preprocessing.mean == syn.preprocessing.mean and back.method == "random_subset"
  np.testing.assert_allclose(back.pixels(), syn.pixels(), atol=1e-6)
  os.remove(os.path.join(path, "metadata.json"))  # a half-written set is not loadable
  with pytest.raises(FileNotFoundError, match="half-written"):
    load_synthetic_set(path)


def test_evaluate_reports_final_accuracy_of_each_network(pool):
  _, test = load_dataset("synthetic", num_classes=3, train_per_class=10, test_per_class=4,
                         image_shape=(8, 8, 1), seed=2)
  syn = random_subset(jax.random.key(9), pool, ipc=3)
  out = evaluate(jax.random.key(0), syn, test, ("ConvNetW32", "MLP"), num_models=2,
                 train_cfg=TrainConfig(epochs=20, batch_size=16))
  for name in ("ConvNetW32", "MLP"):
    assert len(out[name]["accuracies"]) == 2
    assert out[name]["mean"] == pytest.approx(np.mean(out[name]["accuracies"]))
    assert 0.0 <= out[name]["mean"] <= 1.0
  # 9 training images: the ConvNet's accuracy swings 0.4-1.0 with the key (measured), the MLP's
  # stays at 0.92-1.0; chance is 1/3
  assert out["MLP"]["mean"] > 0.75


# ----------------------------------------------------------------------------- vectorised classes


def test_siamese_dsa_vmapped_over_classes_equals_the_per_class_loop():
  """One DSA call on (C, B, ...) with key fold_in(key, c) per class gives, bit for bit up to
  float rounding, what the reference's loop over classes gives; every op is drawn by some class."""
  from dcjax.augment import dsa  # pylint: disable=import-outside-toplevel
  from dcjax.condense import common  # pylint: disable=import-outside-toplevel
  strategy = "color_crop_cutout_flip_scale_rotate"
  classes = 24
  x = jax.random.normal(jax.random.key(0), (classes, 3, 8, 8, 3))
  keys = common.class_keys(jax.random.key(1), classes)
  drawn = {int(jax.random.randint(jax.random.split(k)[0], (), 0, 6)) for k in keys}
  assert drawn == set(range(6))  # dsa's own draw of the op: every op is exercised
  vectorised = jax.jit(lambda k, z: common.siamese_dsa(k, z, strategy))(keys, x)
  one_class = jax.jit(lambda k, z: dsa(k, z, strategy))  # compiled once, called per class
  looped = jnp.stack([one_class(jax.random.fold_in(jax.random.key(1), c), x[c])
                      for c in range(classes)])
  np.testing.assert_allclose(vectorised, looped, atol=1e-5)


def _per_class_reference_losses(net, variables, images, real):
  """The reference's loop over classes, written out plainly (no augmentation): DM's squared
  distance of mean embeddings and DC's gradient-matching distance, summed over classes."""
  import optax  # pylint: disable=import-outside-toplevel
  num_classes = real.shape[0]
  syn = images.reshape(num_classes, -1, *images.shape[1:])
  embed = lambda x: net.apply(variables, x, method="embed")
  ce = lambda p, x, c: optax.softmax_cross_entropy_with_integer_labels(
      net.apply({**variables, "params": p}, x), jnp.full(x.shape[0], c)).mean()
  dm_total, dc_total = 0.0, 0.0
  for c in range(num_classes):
    dm_total += jnp.sum((embed(real[c]).mean(0) - embed(syn[c]).mean(0)) ** 2)
    dc_total += match_distance(jax.grad(ce)(variables["params"], real[c], c),
                               jax.grad(ce)(variables["params"], syn[c], c))
  return dm_total, dc_total


def test_class_vectorised_losses_equal_the_per_class_loop(pool):
  """DM embeds all classes in one batch and DC/DSA vmap the per-class gradients (one compiled
  class-shaped program); values and image gradients are those of the loop over classes."""
  from dcjax.condense import dm as dm_lib  # pylint: disable=import-outside-toplevel
  from dcjax.nets import get_net  # pylint: disable=import-outside-toplevel
  net = get_net("ConvNetD1", 3, width=16, init_scheme="torch")  # small: 2nd-order compiles
  keys = jax.random.split(jax.random.key(0), 3)
  images = jax.random.normal(keys[0], (3 * 2, 8, 8, 1))
  real = jnp.asarray(pool.images).reshape(3, 10, 8, 8, 1)[:, :6]
  variables = jax.jit(net.init)(keys[1], images[:1])
  dm_cfg = dataclasses.replace(TINY_DM, dsa_strategy=None, real_chunk=None)
  dc_cfg = dataclasses.replace(TINY_DC, dsa_strategy=None, real_chunk=None)
  reference = jax.jit(lambda s: _per_class_reference_losses(net, variables, s, real))
  dm_ref, dc_ref = reference(images)
  dm_val, dm_grad = jax.jit(jax.value_and_grad(lambda s: dm_lib.dm_loss(
      net, dm_cfg, s, variables, real, keys[2])))(images)
  dc_val, dc_grad = jax.jit(jax.value_and_grad(lambda s: dc.matching_loss(
      net, dc_cfg, s, variables, real, keys[2])))(images)
  np.testing.assert_allclose(dm_val, dm_ref, rtol=1e-4)
  np.testing.assert_allclose(dc_val, dc_ref, rtol=1e-4)
  dm_ref_grad = jax.jit(jax.grad(lambda s: reference(s)[0]))(images)
  dc_ref_grad = jax.jit(jax.grad(lambda s: reference(s)[1]))(images)
  np.testing.assert_allclose(dm_grad, dm_ref_grad, rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(dc_grad, dc_ref_grad, rtol=1e-3, atol=1e-5)
