"""A user's own images: npz:PATH (Keras' load_data() layout; uint8 or float, NHWC or NCHW) and
folder:PATH (one subfolder per class), through load_dataset, the CLIs and the audit; a changed
data file under an existing output directory is refused."""

import os

import numpy as np
import pytest
from PIL import Image

from dcjax.data import load_dataset
from dcjax.errors import RuntimeRefusal
from experiments import audit as audit_exp
from experiments import mia as mia_exp


def _classes_arrays(rng, n_per_class, shape, classes=3):
  """Class-structured uint8 images (NHWC) and their labels."""
  y = np.repeat(np.arange(classes), n_per_class)
  base = rng.integers(0, 256, (classes, *shape))
  noise = rng.integers(-20, 21, (len(y), *shape))
  return np.clip(base[y] + noise, 0, 255).astype(np.uint8), y.astype(np.int64)


def _write_npz(path, rng, shape=(8, 8, 3), nchw=False, per_class=(20, 4)):
  (xtr, ytr), (xte, yte) = (_classes_arrays(rng, n, shape) for n in per_class)
  if nchw:
    xtr, xte = np.transpose(xtr, (0, 3, 1, 2)), np.transpose(xte, (0, 3, 1, 2))
  np.savez(path, x_train=xtr, y_train=ytr[:, None], x_test=xte, y_test=yte)
  return xtr, ytr


def test_npz_of_cifar_shape_nchw_uint8_loads_as_normalised_nhwc(tmp_path):
  path = str(tmp_path / "mine.npz")
  xtr, ytr = _write_npz(path, np.random.default_rng(0), (32, 32, 3), nchw=True)
  train, test = load_dataset(f"npz:{path}")
  assert train.image_shape == (32, 32, 3) and len(train) == 60 and len(test) == 12
  assert train.num_classes == 3 and train.name == f"npz:{path}"
  np.testing.assert_array_equal(np.asarray(train.labels), ytr)
  # the preprocessing is fitted on the training split and inverts to the stored pixels
  pixels = np.asarray(train.preprocessing.invert(train.images))
  np.testing.assert_allclose(pixels, np.transpose(xtr, (0, 2, 3, 1)) / 255.0, atol=1e-5)
  assert test.preprocessing == train.preprocessing


def test_bad_npz_files_are_named(tmp_path):
  path = str(tmp_path / "half.npz")
  np.savez(path, x_train=np.zeros((4, 8, 8, 3), np.uint8), y_train=np.zeros(4, np.int64))
  with pytest.raises(ValueError, match=r"lacks \['x_test', 'y_test'\]"):
    load_dataset(f"npz:{path}")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    load_dataset(f"npz:{tmp_path / 'none.npz'}")
  floats = str(tmp_path / "floats.npz")
  x = np.full((4, 8, 8, 3), 200.0, np.float32)  # 0-255 values stored as floats
  np.savez(floats, x_train=x, y_train=np.arange(4) % 2, x_test=x, y_test=np.arange(4) % 2)
  with pytest.raises(ValueError, match="divide 0-255 images by 255"):
    load_dataset(f"npz:{floats}")


def _write_folder(root, rng, sizes=None):
  images, labels = _classes_arrays(rng, 10, (8, 8, 3))
  for i, (image, label) in enumerate(zip(images, labels)):
    os.makedirs(root / f"class_{label}", exist_ok=True)
    size = (sizes or {}).get(i)
    im = Image.fromarray(image)
    (im.resize(size) if size else im).save(root / f"class_{label}" / f"{i:03d}.png")
  return images, labels


def test_folder_dataset_splits_per_class_and_caches_the_decoded_arrays(tmp_path):
  root = tmp_path / "imgs"
  images, _ = _write_folder(root, np.random.default_rng(1))
  train, test = load_dataset(f"folder:{root}")
  assert train.num_classes == 3 and len(train) == 27 and len(test) == 3  # 10% per class
  assert train.image_shape == (8, 8, 3)
  cache = sorted(os.listdir(root / ".dcjax_cache"))
  assert len(cache) == 4 and all(name.endswith(".npy") for name in cache)
  again, _ = load_dataset(f"folder:{root}")  # from the cache, the same arrays
  np.testing.assert_array_equal(np.asarray(again.images), np.asarray(train.images))
  # every decoded training image is one of the files, pixel for pixel
  pixels = np.round(np.asarray(train.preprocessing.invert(train.images)) * 255).astype(int)
  assert {p.tobytes() for p in pixels.astype(np.uint8)} <= {i.tobytes() for i in images}


def test_folder_images_of_another_size_are_named(tmp_path):
  root = tmp_path / "odd"
  _write_folder(root, np.random.default_rng(2), sizes={4: (9, 9)})
  with pytest.raises(ValueError, match=r"must share one size.*004\.png"):
    load_dataset(f"folder:{root}")


def test_the_audit_runs_on_an_npz_file_and_refuses_a_changed_one(tmp_path):
  path = str(tmp_path / "mine.npz")
  _write_npz(path, np.random.default_rng(3))
  out = str(tmp_path / "audit")
  args = ["--dataset", f"npz:{path}", "--runs", "4", "--ipc", "2", "--recipes",
          "real,random_subset", "--epochs", "2", "--real-epochs", "2", "--net", "ConvNetD1",
          "--attacks", "loss", "--primary-attack", "loss", "--canaries", "0", "--out", out,
          "--quiet"]
  res = mia_exp.main(args)
  assert res["dataset"] == f"npz:{path}" and res["pool_size"] == 60
  assert set(res["recipes"]) == {"real", "random_subset(2)"}
  _write_npz(path, np.random.default_rng(4))  # other pixels under the same name
  with pytest.raises(RuntimeRefusal, match="different configuration.*data"):
    mia_exp.main(args)


def test_the_audit_runs_on_an_image_folder(tmp_path):
  root = tmp_path / "imgs"
  _write_folder(root, np.random.default_rng(5))
  out = str(tmp_path / "audit")
  res = audit_exp.main(["--dataset", f"folder:{root}", "--runs", "4", "--ipc", "1",
                        "--recipes", "random_subset,condense(dm,init=real)", "--epochs", "2",
                        "--real-epochs", "2", "--dm.iterations", "2", "--net", "ConvNetD1",
                        "--cond-net", "ConvNetD1", "--attacks", "loss", "--primary-attack",
                        "loss", "--canaries", "0", "--theory-iterations", "5",
                        "--ssim-shortlist", "4", "--out", out, "--quiet"])
  assert res["dataset"] == f"folder:{root}" and res["pool_size"] == 27
  assert set(res["recipes"]) == {"random_subset(1)", "condense(dm,1,real)"}
  assert os.path.exists(os.path.join(out, "report.md"))


class _FakeSource:
  """A tfds data source's interface: len and a chunk of records by index."""

  def __init__(self, images, labels, celeba=False):
    self.images, self.labels, self.celeba, self.reads = images, labels, celeba, 0

  def __len__(self):
    return len(self.images)

  def __getitems__(self, idx):
    self.reads += 1
    if self.celeba:
      return [{"image": self.images[i], "attributes": {"Male": bool(self.labels[i])}}
              for i in idx]
    return [{"image": self.images[i], "label": self.labels[i]} for i in idx]


def test_tfds_records_are_read_a_chunk_at_a_time_and_cached(tmp_path, monkeypatch):
  from dcjax.data import loaders  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(loaders, "SOURCE_CHUNK", 16)
  rng = np.random.default_rng(5)
  images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, 40)
  source = _FakeSource(images, labels)
  x, y = loaders.arrays_from_source(source, "cifar10")
  assert source.reads == 3 and x.dtype == np.uint8  # 16 + 16 + 8 records
  np.testing.assert_array_equal(x, images)
  np.testing.assert_array_equal(y, labels)
  loaders.save_cached_arrays(str(tmp_path), "train", x, y)
  cx, cy = loaders.cached_arrays(str(tmp_path), "train")
  np.testing.assert_array_equal(cx, images)
  assert loaders.cached_arrays(str(tmp_path), "test") is None
  # CelebA: the label is the Male attribute, every chunk centre-cropped and resized at once
  faces = rng.integers(0, 256, (5, 20, 16, 3), dtype=np.uint8)
  fx, fy = loaders.arrays_from_source(_FakeSource(faces, np.arange(5) % 2, celeba=True),
                                      "celeba")
  assert fx.shape == (5, 32, 32, 3) and fy.tolist() == [0, 1, 0, 1, 0]
  flat = np.full((1, 20, 16, 3), 77, np.uint8)  # a constant image stays constant
  assert np.all(loaders.resize_batch(flat, 32) == 77)
