"""Data: loaders, validation, preprocessing round trips, class-balanced sampling."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dcjax.data import (NORMALISATION, check_per_class, fit_zca, from_arrays, load_dataset,
                        sample_per_class)


def test_digits_is_bundled_real_data(digits):
  train, test = digits
  assert train.images.shape == (1497, 8, 8, 1) and test.images.shape == (300, 8, 8, 1)
  assert train.images.dtype == np.float32 and train.labels.dtype == np.int32
  assert train.num_classes == 10 and train.name == "digits"
  np.testing.assert_array_equal(test.class_counts(), np.full(10, 30))
  # normalised with the training split's own statistics
  assert abs(float(train.images.mean())) < 1e-4 and abs(float(train.images.std()) - 1) < 1e-4
  assert test.preprocessing == train.preprocessing


def test_digits_split_is_deterministic():
  a, _ = load_dataset("digits")
  b, _ = load_dataset("digits")
  np.testing.assert_array_equal(a.images, b.images)


def test_unknown_dataset_names_the_choices():
  with pytest.raises(ValueError, match="Unknown dataset 'imagenet'.*cifar10"):
    load_dataset("imagenet")


def test_synthetic_is_seeded_and_class_structured():
  (a, _), (b, _) = load_dataset("synthetic", seed=3), load_dataset("synthetic", seed=3)
  np.testing.assert_array_equal(a.images, b.images)
  c, _ = load_dataset("synthetic", seed=4)
  assert not np.allclose(a.images, c.images)
  assert a.images.shape == (1000, 32, 32, 3)
  # class means are far apart relative to the within-class spread
  means = np.stack([a.images[a.labels == k].mean(0) for k in range(10)])
  assert np.linalg.norm(means[0] - means[1]) > 5 * np.linalg.norm(
      a.images[a.labels == 0].std(0)) / np.sqrt(100)


@pytest.mark.parametrize("name,shape,classes", [
    ("cifar10", (32, 32, 3), 10), ("mnist", (28, 28, 1), 10), ("celeba", (32, 32, 3), 2),
    ("cifar100", (32, 32, 3), 100)])
def test_tfds_path_with_mock_data(name, shape, classes):
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    train, test = load_dataset(name)
  assert train.images.shape == (6, *shape) and test.images.shape == (6, *shape)
  assert train.num_classes == classes
  if name in NORMALISATION:
    assert train.preprocessing.mean == NORMALISATION[name][0]
  assert train.labels.max() < classes


def test_tfds_dataset_not_prepared_says_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match="tfds build cifar10 --file_format=array_record"):
    load_dataset("cifar10", data_dir=str(tmp_path))


@pytest.mark.parametrize("pixels,labels,match", [
    (np.zeros((4, 8, 8), np.float32), np.zeros(4, np.int32), "rank 4"),
    (np.zeros((4, 8, 8, 1), np.uint8), np.zeros(4, np.int32), "floating point.*uint8"),
    (np.zeros((4, 8, 8, 1), np.float32), np.array([0, 1, 2, 5]), r"\[0, 3\).*\[0, 5\]"),
    (np.zeros((4, 8, 8, 1), np.float32), np.zeros(3, np.int32), "shape \\(4,\\)"),
    (np.full((4, 8, 8, 1), np.nan, np.float32), np.array([0, 1, 0, 1]), "NaN"),
    (np.zeros((4, 8, 8, 1), np.float32), np.array([0.0, 1, 0, 1]), "integers"),
])
def test_from_arrays_rejects_bad_input(pixels, labels, match):
  with pytest.raises((ValueError, TypeError), match=match):
    from_arrays(pixels, labels, num_classes=3 if "5" in match else None)


def test_from_arrays_normalises_and_inverts():
  pixels = np.random.default_rng(0).uniform(size=(20, 4, 4, 3)).astype(np.float32)
  ds = from_arrays(pixels, np.arange(20) % 2, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.1))
  np.testing.assert_allclose(ds.images[..., 2], (pixels[..., 2] - 0.3) / 0.1, rtol=1e-5)
  np.testing.assert_allclose(ds.preprocessing.invert(ds.images), pixels, atol=1e-5)


def test_zca_whitens_and_inverts():
  rng = np.random.default_rng(0)
  pixels = rng.uniform(size=(200, 4, 4, 1)).astype(np.float32)
  pixels[:, 1] = 0.9 * pixels[:, 0] + 0.1 * rng.uniform(size=(200, 4, 1))  # correlated rows
  ds = from_arrays(pixels, np.arange(200) % 2, zca=True)
  np.testing.assert_allclose(ds.preprocessing.invert(ds.images), pixels, atol=1e-4)
  normalised = np.asarray(ds.preprocessing.replace(zca=None, zca_inverse=None).apply(pixels))
  flat = normalised.reshape(200, -1)
  zca, inv = fit_zca(normalised, regularization=1e-8)
  white = flat @ zca
  np.testing.assert_allclose(white.T @ white / 200, np.eye(16), atol=1e-3)  # 2nd moment
  np.testing.assert_allclose(zca @ inv, np.eye(16), atol=1e-3)


class SamplingTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_draws_distinct_members_of_each_class(self):
    labels = jnp.asarray(np.repeat(np.arange(3), 10))
    mask = jnp.asarray(np.arange(30) % 2 == 0)
    sample = self.variant(sample_per_class, static_argnums=(2, 3))
    idx = np.asarray(sample(jax.random.key(0), labels, 3, 4, mask))
    chex.assert_shape(idx, (3, 4))
    for c in range(3):
      assert np.all(np.asarray(labels)[idx[c]] == c)
      assert len(set(idx[c])) == 4
    assert np.all(idx % 2 == 0)  # only IN examples

  def test_is_uniform_over_members(self):
    labels = jnp.zeros(6, jnp.int32)
    keys = jax.random.split(jax.random.key(0), 3000)
    draws = jax.vmap(lambda k: sample_per_class(k, labels, 1, 1))(keys).ravel()
    freq = np.bincount(np.asarray(draws), minlength=6) / 3000
    np.testing.assert_allclose(freq, np.full(6, 1 / 6), atol=0.03)


def test_check_per_class_names_the_short_class():
  labels = np.array([0, 0, 0, 1, 1, 1])
  check_per_class(labels, 2, 3)
  with pytest.raises(ValueError, match="class 1: 1"):
    check_per_class(labels, 2, 2, mask=np.array([1, 1, 1, 1, 0, 0], bool))
