"""Datasets by name: ``load_dataset("digits")`` -> (train, test).

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real images, no network
  needed); the default dataset. Split 1,497 train / 300 test (30 per class) from a fixed seed.
* ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``svhn``, ``celeba``: through
  tensorflow-datasets' ``data_source`` (ArrayRecord; no TensorFlow needed), from ``data_dir``.
  CelebA is the binary gender task (attribute "Male") at 32x32.
* ``synthetic``: seeded, class-structured random images of any shape, for tests and benchmarks.
* ``npz:PATH`` and ``folder:PATH``: a user's own images (``dcjax.data.user_data``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

import jax
import numpy as np

from dcjax import io
from dcjax.data import user_data
from dcjax.data.dataset import Dataset, from_arrays
from dcjax.data.preprocessing import NORMALISATION

TFDS_NAMES = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "svhn": "svhn_cropped",
    "celeba": "celeb_a",
}
TFDS_NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100,
                    "svhn": 10, "celeba": 2}
DATASET_NAMES = ("digits", *TFDS_NAMES, "synthetic")
DIGITS_TEST_PER_CLASS = 30
DIGITS_SPLIT_SEED = 0


def check_dataset_name(name: str) -> str:
  """``name`` if it names a dataset (one of DATASET_NAMES, or npz:PATH / folder:PATH)."""
  if not user_data.is_user_dataset(name) and name not in DATASET_NAMES:
    raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}, or "
                     "npz:PATH or folder:PATH for a user's images.")
  return name


def load_dataset(name: str, data_dir: str | None = None, zca: bool = False,
                 **synthetic_kwargs: Any) -> tuple[Dataset, Dataset]:
  """Returns (train, test), both normalised with the training split's preprocessing."""
  check_dataset_name(name)
  if synthetic_kwargs and name != "synthetic":
    raise TypeError(f"Options {sorted(synthetic_kwargs)} only apply to the synthetic dataset.")
  if user_data.is_user_dataset(name):
    (xtr, ytr), (xte, yte) = user_data.load_pixels(name)
    mean = std = None
  elif name == "digits":
    (xtr, ytr), (xte, yte) = _digits_pixels()
    mean = std = None
  elif name == "synthetic":
    (xtr, ytr), (xte, yte) = synthetic_pixels(**synthetic_kwargs)
    mean = std = None
  else:
    xtr, ytr = _tfds_pixels(name, "train", data_dir)
    xte, yte = _tfds_pixels(name, "test", data_dir)
    mean, std = NORMALISATION.get(name, (None, None))
  num_classes = TFDS_NUM_CLASSES.get(name, int(max(ytr.max(), yte.max())) + 1)
  train = from_arrays(xtr, ytr, num_classes, name=name, mean=mean, std=std, zca=zca)
  test = from_arrays(xte, yte, num_classes, name=name, preprocessing=train.preprocessing)
  return train, test


def _digits_pixels():
  # scikit-learn takes about a second to import; only the digits need it
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

  bunch = load_digits()
  pixels = (bunch.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1) in [0, 1]
  labels = bunch.target.astype(np.int32)
  rng = np.random.default_rng(DIGITS_SPLIT_SEED)
  test = np.concatenate([
      rng.permutation(np.flatnonzero(labels == c))[:DIGITS_TEST_PER_CLASS] for c in range(10)])
  is_test = np.zeros(len(labels), bool)
  is_test[test] = True
  return (pixels[~is_test], labels[~is_test]), (pixels[is_test], labels[is_test])


def synthetic_pixels(num_classes: int = 10, train_per_class: int = 100,
                     test_per_class: int = 20, image_shape: tuple[int, int, int] = (32, 32, 3),
                     noise: float = 0.15, seed: int = 0):
  """Class-structured random images: a smooth random prototype per class plus pixel noise.

  Returns ((x_train, y_train), (x_test, y_test)) with pixels in [0, 1], classes balanced and
  ordered by class within each split.
  """
  if num_classes < 2 or train_per_class < 1 or test_per_class < 1:
    raise ValueError("synthetic data needs num_classes >= 2 and >= 1 example per class per "
                     f"split, got {num_classes}, {train_per_class}, {test_per_class}.")
  h, w, c = image_shape
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0.0, 1.0, (num_classes, max(h // 4, 1), max(w // 4, 1), c))
  protos = coarse.repeat(4, 1).repeat(4, 2)[:, :h, :w]
  protos = np.pad(protos, ((0, 0), (0, h - protos.shape[1]), (0, w - protos.shape[2]), (0, 0)),
                  mode="edge")

  def draw(per_class):
    y = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
    x = protos[y] + noise * rng.standard_normal((len(y), h, w, c))
    return np.clip(x, 0.0, 1.0).astype(np.float32), y

  return draw(train_per_class), draw(test_per_class)


def _tfds_pixels(name: str, split: str, data_dir: str | None):
  """A tfds split as (float32 pixels in [0, 1], int32 labels): decoded once from ArrayRecord
  and cached as uint8 ``.npy`` files next to the data (``<data_dir>/<tfds name>/<version>/
  dcjax_cache``), keyed by the split's files (names, sizes, times: re-prepared data is read
  again), read from there afterwards."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  tfds_name = TFDS_NAMES[name]
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
  absl_logger = logging.getLogger("absl")  # tfds warns about a missing dataset_info.json
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    cache = _cache_dir(builder.data_dir, split)
    cached = None if cache is None else cached_arrays(cache, split)
    if cached is not None:
      x, y = cached
      return x.astype(np.float32) / 255.0, y
    try:
      source = tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
    except Exception as err:  # tfds raises several types for "not prepared / wrong format"
      raise FileNotFoundError(
          f"Dataset {name!r} (tfds {tfds_name!r}) is not prepared as ArrayRecord in data_dir "
          f"{builder.data_dir!r} ({type(err).__name__}). dcjax reads it with "
          f"tfds.data_source, which needs no TensorFlow but needs the ArrayRecord format. "
          f"Prepare it once on a machine with network access:\n  tfds build {tfds_name} "
          "--file_format=array_record" + (f" --data_dir={data_dir}" if data_dir else "") +
          "\nthen pass --data-dir (or set TFDS_DATA_DIR) to that directory.") from err
  finally:
    absl_logger.setLevel(level)
  x, y = arrays_from_source(source, name)
  if cache is not None:
    save_cached_arrays(cache, split, x, y)
  return x.astype(np.float32) / 255.0, y


def _cache_dir(prepared_dir: str, split: str) -> str | None:
  """``<prepared_dir>/dcjax_cache/<digest>`` of the split's prepared files, None when there
  are none (tfds's mock data, or nothing prepared: nothing to key a cache on)."""
  if not os.path.isdir(prepared_dir):
    return None
  files = sorted(f for f in os.listdir(prepared_dir) if f"-{split}." in f)
  if not files:
    return None
  listing = [(f, os.path.getsize(os.path.join(prepared_dir, f)),
              os.path.getmtime(os.path.join(prepared_dir, f))) for f in files]
  digest = hashlib.sha256(repr(listing).encode()).hexdigest()[:16]
  return os.path.join(prepared_dir, "dcjax_cache", digest)


SOURCE_CHUNK = 4096  # records fetched and stacked (and resized) at a time


def arrays_from_source(source, name: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, H, W, C) and int32 labels (N,) of a tfds data source, fetched in chunks
  of SOURCE_CHUNK records (``__getitems__``: one read per chunk) and stacked per chunk;
  CelebA's images are centre-cropped and resized to 32x32 one chunk at a time."""
  n = len(source)
  images, labels = [], []
  for start in range(0, n, SOURCE_CHUNK):
    idx = list(range(start, min(n, start + SOURCE_CHUNK)))
    try:
      records = source.__getitems__(idx)
    except (AttributeError, TypeError):  # a source without it (tfds's mock data patches it)
      records = [source[i] for i in idx]
    x = np.stack([np.asarray(r["image"]) for r in records])
    if name == "celeba":
      images.append(resize_batch(x, 32))
      labels.append(np.asarray([int(r["attributes"]["Male"]) for r in records], np.int32))
    else:
      images.append(x.astype(np.uint8))
      labels.append(np.asarray([int(r["label"]) for r in records], np.int32))
  return np.concatenate(images), np.concatenate(labels)


def cached_arrays(cache: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
  """(uint8 images, int32 labels) of a split cached by ``save_cached_arrays``, or None."""
  paths = [os.path.join(cache, f"{split}_{part}.npy") for part in ("x", "y")]
  if not all(os.path.exists(p) for p in paths):
    return None
  return np.load(paths[0]), np.load(paths[1])


def save_cached_arrays(cache: str, split: str, x: np.ndarray, y: np.ndarray) -> None:
  """Atomic: a killed write leaves no file that looks complete (labels written last)."""
  for part, array in (("x", x), ("y", y)):
    with io.atomic_path(os.path.join(cache, f"{split}_{part}.npy")) as tmp:
      np.save(tmp, array)


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
  """Centre-crop (N, H, W, C) uint8 images to a square, then resize all of them to
  size x size at once (area-averaging, antialiased linear)."""
  h, w = images.shape[1:3]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  square = images[:, top:top + s, left:left + s].astype(np.float32)
  resized = jax.image.resize(square, (len(images), size, size, images.shape[3]), "linear",
                             antialias=True)
  return np.clip(np.asarray(resized), 0, 255).astype(np.uint8)
