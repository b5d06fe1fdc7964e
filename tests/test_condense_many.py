"""condense_many: every run equals that run alone (condense, the one runner with one run, on the
Python-driven loop strategy), under both strategies; it resumes from its block checkpoints;
bad input is named."""

import os
import shutil

import jax
import numpy as np
import pytest

from dcjax.condense import DCConfig, DMConfig, condense, condense_many
from dcjax.data import load_dataset
from dcjax.mia import balanced_keep_masks

CFG = DMConfig(iterations=2, batch_real=2, dsa_strategy="flip_scale", net="ConvNetD1")


def _pool():
  pool, _ = load_dataset("synthetic", num_classes=3, train_per_class=16, test_per_class=1,
                         image_shape=(8, 8, 1), seed=3)
  return pool


def _inputs(num_runs):
  pool = _pool()
  keys = jax.random.split(jax.random.key(11), num_runs)
  return pool, keys, balanced_keep_masks(jax.random.key(12), num_runs, len(pool))


@pytest.fixture(scope="module")
def reference():
  """condense, run by run on the loop strategy (what every other path must equal)."""
  pool, keys, masks = _inputs(2)
  return [condense(k, pool, "dm", 2, "real", mask=m, config=CFG, strategy="loop")
          for k, m in zip(keys, masks)]


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_each_run_equals_condense_from_its_key(reference, strategy):
  pool, keys, masks = _inputs(2)
  many = condense_many(keys, pool, "dm", 2, "real", masks, CFG, strategy=strategy,
                       checkpoint_every=1)
  for one, ref in zip(many, reference):
    np.testing.assert_array_equal(one.init_indices, ref.init_indices)
    np.testing.assert_allclose(one.images, ref.images, rtol=1e-5, atol=1e-5)


def test_dc_vmapped_over_runs_equals_condense_run_by_run():
  """DC/DSA's pure_step (outer loop and inner epochs under lax.scan), vmapped over runs, gives
  each run what the Python-driven step gives through condense (DC: the Siamese augmentation
  is DSA's only addition, tested against the per-class loop in test_condense)."""
  pool, keys, masks = _inputs(2)
  cfg = DCConfig(iterations=1, outer_loop=2, inner_loop=1, batch_real=2, batch_train=4,
                 net="MLP")
  many = condense_many(keys, pool, "dc", 2, "real", masks, cfg, strategy="vmap")
  for one, key, mask in zip(many, keys, masks):
    ref = condense(key, pool, "dc", 2, "real", mask=mask, config=cfg, strategy="loop")
    np.testing.assert_allclose(one.images, ref.images, rtol=1e-5, atol=1e-5)
    assert float(np.abs(np.asarray(one.images) - np.asarray(pool.images)[one.init_indices]
                        ).max()) > 1e-3  # the images moved


def test_resumes_from_its_last_block(reference, tmp_path):
  pool, keys, masks = _inputs(2)
  ckpt = str(tmp_path / "c")
  condense_many(keys, pool, "dm", 2, "real", masks, CFG, strategy="loop", checkpoint_dir=ckpt,
                checkpoint_every=1)
  shutil.rmtree(os.path.join(ckpt, "steps", "2"))  # as a kill during the second block leaves it
  resumed = condense_many(keys, pool, "dm", 2, "real", masks, CFG, strategy="loop",
                          checkpoint_dir=ckpt, checkpoint_every=1)
  for one, ref in zip(resumed, reference):
    np.testing.assert_allclose(one.images, ref.images, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="different configuration"):
    condense_many(keys[::-1], pool, "dm", 2, "real", masks, CFG, checkpoint_dir=ckpt)


def test_bad_input_is_named():
  pool, keys, masks = _inputs(2)
  with pytest.raises(ValueError, match=r"masks must be \(len\(keys\), 48\)"):
    condense_many(keys, pool, "dm", 2, "real", masks[:1], CFG)
  import tests.toy_condenser  # noqa: F401  (registers toy_mean, which has no vectorised step)
  with pytest.raises(ValueError, match="'toy_mean' has no vectorised step"):
    condense_many(keys, pool, "toy_mean", 2, "real", masks, strategy="vmap")
  with pytest.raises(ValueError, match="Unknown strategy 'pmap'"):
    condense_many(keys, pool, "dm", 2, "real", masks, CFG, strategy="pmap")


def test_one_device_has_no_run_mesh():
  """The 8-device sharding check runs as benchmarks/sharding_check.py (a subprocess with 8
  forced host devices costs ~30 s of the suite's budget on 2 cores; docs/development.md)."""
  from dcjax.sharding import run_mesh, shard_runs  # noqa: E402
  assert jax.device_count() == 1 and run_mesh(8) is None
  tree = {"a": np.zeros((8, 2))}
  assert shard_runs(tree, None) is tree
