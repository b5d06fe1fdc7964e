"""Differentially private condensation (NDPDC, LDPDC) and canaries."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.condense import Pool, Spec, condense, get_condenser
from dcjax.condense import dpdc
from dcjax.data import load_dataset
from dcjax.data.canaries import insert_canaries
from dcjax.mia import balanced_keep_masks
from dcjax.privacy import accounting
from dcjax.runs.recipes import parse


@pytest.fixture(scope="module")
def pool():
  train, _ = load_dataset("synthetic", num_classes=3, train_per_class=12, test_per_class=4,
                          image_shape=(8, 8, 1), seed=3)
  return train


def test_sample_per_class_draws_only_in_examples_of_each_class(pool):
  labels = jnp.asarray(pool.labels)
  mask = jnp.asarray(np.arange(len(pool)) % 3 != 0)
  idx, valid = dpdc.sample_per_class(jax.random.key(0), labels, 3, 0.5, 12, mask)
  assert idx.shape == valid.shape == (3, 12)
  for c in range(3):
    drawn = np.asarray(idx[c])[np.asarray(valid[c])]
    assert len(set(drawn.tolist())) == len(drawn)
    assert np.all(np.asarray(labels)[drawn] == c) and np.all(np.asarray(mask)[drawn])
  # over many draws each IN example is drawn at the rate
  draws = jax.vmap(lambda k: dpdc.sample_per_class(k, labels, 3, 0.5, 12, mask)[1].sum())(
      jax.random.split(jax.random.key(1), 400))
  assert float(draws.mean()) == pytest.approx(0.5 * float(mask.sum()), rel=0.05)


def test_prepare_calibrates_the_noise_to_the_target_epsilon(pool):
  cfg = dpdc.prepare(dpdc.NDPDCConfig(iterations=20, epsilon=2.0, group_size=4), pool.labels,
                     3)
  n_c = 12
  assert cfg.sample_rate == pytest.approx(4 / n_c) and cfg.max_class_size == n_c
  assert cfg.class_sizes == (12.0, 12.0, 12.0)
  eps = accounting.epsilon(cfg.mechanism(), cfg.delta)
  assert 1.9 < eps <= 2.0 + 1e-6
  # a prepared config is kept as it is
  assert dpdc.prepare(cfg, pool.labels, 3) == cfg


def _neighbours(pool, runs=4):
  """Balanced keep masks, and the same with one more member in run 0 (add-one neighbours)."""
  keep = np.asarray(balanced_keep_masks(jax.random.key(1), runs, len(pool)))
  added = int(np.flatnonzero(~keep[0] & (np.asarray(pool.labels) == 1))[0])
  more = keep.copy()
  more[0, added] = True
  return keep, more, added


@pytest.mark.parametrize("config_class", [dpdc.NDPDCConfig, dpdc.LDPDCConfig])
def test_rate_and_normaliser_are_public_constants(pool, config_class):
  keep, more, _ = _neighbours(pool)
  cfg = dpdc.prepare(config_class(group_size=3), pool.labels, 3, keep)
  # half of each pool class is IN in expectation under the balanced design
  assert cfg.class_sizes == (6.0, 6.0, 6.0) and cfg.sample_rate == pytest.approx(0.5)
  np.testing.assert_allclose(np.asarray(cfg.normalisers()), [3.0, 3.0, 3.0])
  # the neighbouring IN sets' config: the same rate and normaliser (the public sizes do not
  # come from the masks' values, only from the pool and the design)
  public = dpdc.public_class_sizes(pool.labels, 3, keep)
  assert public == dpdc.public_class_sizes(pool.labels, 3, keep[::-1])
  with pytest.raises(ValueError, match="Declare class_sizes"):
    dpdc.public_class_sizes(pool.labels, 3, more)  # not the balanced design


def test_ldpdc_release_moves_by_at_most_clip_over_the_normaliser_for_one_added_member(pool):
  keep, more, added = _neighbours(pool)
  # 12 slots: a whole pool class, so every member is sampled at rate 1 and none truncated
  cfg = dpdc.prepare(dpdc.LDPDCConfig(ipc=2, group_size=6, clip=0.5, epsilon=4.0,
                                      batch_real=12), pool.labels, 3, keep)
  assert cfg.sample_rate == 1.0
  images = jnp.zeros((6, *pool.image_shape))
  spec = Spec(None, cfg, 3, 2, 0)
  step = lambda m: dpdc.ldpdc_step(spec, {"images": images, "opt_state": ()}, jax.random.key(2),
                                   Pool(jnp.asarray(pool.images), jnp.asarray(pool.labels),
                                        jnp.asarray(m)))[0]["images"]
  a, b = np.asarray(step(keep[0])), np.asarray(step(more[0]))
  diff = np.linalg.norm((a - b).reshape(6, -1), axis=1)
  bound = cfg.clip / float(cfg.normalisers()[1])
  assert np.all(diff[[0, 1, 4, 5]] == 0.0)  # the other classes' images are unchanged
  assert np.all(diff[2:4] <= bound + 1e-6) and np.all(diff[2:4] > 0)
  row = np.asarray(pool.images[added]).ravel()  # its clipped value over the normaliser alone
  np.testing.assert_allclose(diff[2:4], min(np.linalg.norm(row), cfg.clip) / 6.0, rtol=1e-4)


def test_ndpdc_targets_move_by_at_most_clip_over_the_normaliser(pool):
  cfg = dpdc.prepare(dpdc.NDPDCConfig(group_size=4, clip=1.0), pool.labels, 3)
  feats = jax.random.normal(jax.random.key(0), (3, 5, 16)) * 4.0
  valid = jnp.ones((3, 5), bool).at[1, 4].set(False)
  a = dpdc.private_class_means(jax.random.key(9), feats, valid, cfg, cfg.clip)
  b = dpdc.private_class_means(jax.random.key(9), feats, valid.at[1, 4].set(True), cfg,
                               cfg.clip)
  diff = np.linalg.norm(np.asarray(a - b), axis=1)
  assert diff[0] == diff[2] == 0.0
  assert diff[1] == pytest.approx(cfg.clip / float(cfg.normalisers()[1]), rel=1e-5)


def test_ldpdc_without_noise_and_full_sampling_gives_the_class_means(pool):
  cfg = dataclasses.replace(dpdc.LDPDCConfig(ipc=2, clip=100.0, group_size=12),
                            noise_multiplier=1e-9)
  syn = condense(jax.random.key(0), pool, "ldpdc", 2, config=cfg)
  x, y = np.asarray(pool.images), np.asarray(pool.labels)
  means = np.stack([x[y == c].mean(0) for c in range(3)])
  np.testing.assert_allclose(np.asarray(syn.images), np.repeat(means, 2, axis=0), atol=1e-4)
  assert syn.privacy()["mechanism"]["steps"] == 2


def test_ndpdc_condenses_reproducibly_and_carries_its_guarantee(pool):
  cfg = dpdc.NDPDCConfig(iterations=3, epsilon=4.0, group_size=4, net="ConvNetD1",
                         dsa_strategy=None)
  a = condense(jax.random.key(0), pool, "ndpdc", 2, config=cfg)
  b = condense(jax.random.key(0), pool, "ndpdc", 2, config=cfg)
  np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
  privacy = a.privacy()
  assert privacy["epsilon"] <= 4.0 + 1e-6 and privacy["mechanism"]["steps"] == 3
  assert a.metadata()["privacy"]["delta"] == 1e-5
  with pytest.raises(ValueError, match="init"):
    condense(jax.random.key(0), pool, "ndpdc", 2, init="real", config=cfg)


def test_dp_condenser_recipes_take_epsilon_and_others_refuse_it():
  r = parse("condense(ndpdc,4,epsilon=2)")
  assert r.epsilon == 2.0 and str(r) == "condense(ndpdc,4,noise,2)" and parse(str(r)) == r
  assert str(parse("condense(dm,4,real)")) == "condense(dm,4,real)"
  with pytest.raises(ValueError, match="not a differentially private condenser"):
    parse("condense(dm,4,real,2)")
  assert get_condenser("ndpdc").private and not get_condenser("dm").private


@pytest.mark.parametrize("kind", ["mislabeled", "ood"])
def test_canaries_replace_pool_examples_reproducibly(pool, kind):
  out, is_canary = insert_canaries(jax.random.key(0), pool, 5, kind)
  again, _ = insert_canaries(jax.random.key(0), pool, 5, kind)
  assert len(out) == len(pool) and is_canary.sum() == 5
  np.testing.assert_array_equal(np.asarray(out.labels), np.asarray(again.labels))
  same = ~is_canary
  np.testing.assert_array_equal(np.asarray(out.images)[same], np.asarray(pool.images)[same])
  if kind == "mislabeled":
    assert np.all(np.asarray(out.labels)[is_canary] != np.asarray(pool.labels)[is_canary])
  else:
    assert not np.allclose(np.asarray(out.images)[is_canary],
                           np.asarray(pool.images)[is_canary])


def test_bad_canary_requests_are_named(pool):
  with pytest.raises(ValueError, match="canary kind"):
    insert_canaries(jax.random.key(0), pool, 2, "loud")
  with pytest.raises(ValueError, match="number of canaries"):
    insert_canaries(jax.random.key(0), pool, len(pool), "mislabeled")
