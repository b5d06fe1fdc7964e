"""Differentially private condensation (NDPDC, LDPDC) and canaries."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.condense import condense, get_condenser
from dcjax.condense import dpdc
from dcjax.data import load_dataset
from dcjax.data.canaries import insert_canaries
from dcjax import accounting
from dcjax.runs.recipes import parse


@pytest.fixture(scope="module")
def pool():
  train, _ = load_dataset("synthetic", num_classes=3, train_per_class=12, test_per_class=4,
                          image_shape=(8, 8, 1), seed=3)
  return train


def test_poisson_per_class_draws_only_in_examples_of_each_class(pool):
  labels = jnp.asarray(pool.labels)
  mask = jnp.asarray(np.arange(len(pool)) % 3 != 0)
  idx, valid = dpdc.poisson_per_class(jax.random.key(0), labels, 3, 0.5, 12, mask)
  assert idx.shape == valid.shape == (3, 12)
  for c in range(3):
    drawn = np.asarray(idx[c])[np.asarray(valid[c])]
    assert len(set(drawn.tolist())) == len(drawn)
    assert np.all(np.asarray(labels)[drawn] == c) and np.all(np.asarray(mask)[drawn])
  # over many draws each IN example is drawn at the rate
  draws = jax.vmap(lambda k: dpdc.poisson_per_class(k, labels, 3, 0.5, 12, mask)[1].sum())(
      jax.random.split(jax.random.key(1), 400))
  assert float(draws.mean()) == pytest.approx(0.5 * float(mask.sum()), rel=0.05)


def test_prepare_calibrates_the_noise_to_the_target_epsilon(pool):
  cfg = dpdc.prepare(dpdc.NDPDCConfig(iterations=20, epsilon=2.0, group_size=4), pool.labels,
                     3)
  n_c = 12
  assert cfg.sample_rate == pytest.approx(4 / n_c) and cfg.max_class_size == n_c
  eps = accounting.epsilon(cfg.mechanism(), cfg.delta)
  assert 1.9 < eps <= 2.0 + 1e-6
  # a prepared config is kept as it is
  assert dpdc.prepare(cfg, pool.labels, 3) == cfg


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
