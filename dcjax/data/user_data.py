"""A user's own images as a dataset: ``npz:PATH`` and ``folder:PATH``.

* ``npz:PATH``: one ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the
  layout of Keras' ``load_data()``, so arrays a user already has save in one line:
  ``np.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...)``). Pixels uint8 (0-255)
  or float in [0, 1]; NHWC, NCHW (channels of 1, 3 or 4 on the second axis and not on the
  last) or (N, H, W) grayscale; the layout found is logged. Labels (N,) or (N, 1) integers.
* ``folder:PATH``: one subfolder per class (its name is the class; classes in sorted order)
  holding image files of one size, either under ``PATH/train`` and ``PATH/test``, or directly
  under ``PATH``, in which case a fixed 10% of every class (at least one image, chosen from a
  fixed seed) is the test split. Decoded once and cached as ``.npy`` files in
  ``PATH/.dcjax_cache/``, keyed by the files' names, sizes and modification times.

Both go through ``from_arrays``' validation; the normalisation is fitted on the training
split. A user's dataset is treated as natural images (mirror query views, the full DSA
strategy).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np

from dcjax import io

PREFIXES = ("npz:", "folder:")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FOLDER_TEST_FRACTION = 0.1
FOLDER_SPLIT_SEED = 0
log = logging.getLogger(__name__)


def is_user_dataset(name: str) -> bool:
  return isinstance(name, str) and name.startswith(PREFIXES)


def dataset_slug(name: str) -> str:
  """A file-name-safe short name: the dataset's name, or npz_<file> / folder_<dir>."""
  if not is_user_dataset(name):
    return name
  kind, path = name.split(":", 1)
  base = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
  return f"{kind}_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in base)


def load_pixels(name: str):
  """((x_train, y_train), (x_test, y_test)): float32 NHWC pixels in [0, 1] (as stored if
  they are out of range: ``from_arrays`` names that), int32 labels."""
  kind, path = name.split(":", 1)
  if not path:
    raise ValueError(f"Dataset {name!r} names no path; expected {kind}:PATH.")
  if kind == "npz":
    return _npz(path)
  return _folder(path)


def to_nhwc_float(x: np.ndarray, what: str) -> np.ndarray:
  """uint8 or float images of layout NHWC, NCHW or NHW -> float32 NHWC (uint8 / 255)."""
  x = np.asarray(x)
  if x.ndim == 3:
    layout, x = "NHW (grayscale)", x[..., None]
  elif x.ndim != 4:
    raise ValueError(f"{what} must be images of shape (N, H, W, C), (N, C, H, W) or (N, H, W), "
                     f"got shape {x.shape}.")
  elif x.shape[-1] not in (1, 3, 4) and x.shape[1] in (1, 3, 4):
    layout, x = "NCHW", np.transpose(x, (0, 2, 3, 1))
  else:
    layout = "NHWC"
  if x.dtype == np.uint8:
    x = x.astype(np.float32) / 255.0
  elif np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float32)
  else:
    raise ValueError(f"{what} must be uint8 (0-255) or float (0-1) pixels, got {x.dtype}.")
  log.info("%s: %s layout -> NHWC %s", what, layout, x.shape[1:])
  return x


def _labels(y: np.ndarray, what: str) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{what} must be integer class labels of shape (N,) or (N, 1), got "
                     f"{y.dtype} {y.shape}.")
  return y.astype(np.int32)


def _npz(path: str):
  if not os.path.isfile(path):
    raise FileNotFoundError(f"npz dataset {path!r} does not exist; expected a .npz file with "
                            f"{list(NPZ_KEYS)} (np.savez(path, x_train=..., ...)).")
  with np.load(path, allow_pickle=False) as data:
    missing = [k for k in NPZ_KEYS if k not in data.files]
    if missing:
      raise ValueError(f"npz dataset {path!r} lacks {missing}; it holds {sorted(data.files)}, "
                       f"expected {list(NPZ_KEYS)} (the layout of Keras' load_data()).")
    return tuple((to_nhwc_float(data[f"x_{s}"], f"{path}: x_{s}"),
                  _labels(data[f"y_{s}"], f"{path}: y_{s}")) for s in ("train", "test"))


def _class_files(root: str) -> dict[str, list[str]]:
  classes = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
  files = {c: sorted(os.path.join(root, c, f) for f in os.listdir(os.path.join(root, c))
                     if f.lower().endswith(IMAGE_SUFFIXES)) for c in classes}
  empty = [c for c, fs in files.items() if not fs]
  if len(classes) < 2 or empty:
    raise ValueError(f"folder dataset {root!r} needs one subfolder of images per class, at "
                     f"least two classes; found classes {classes}"
                     + (f", without images: {empty}" if empty else "") + ".")
  return files


def _decode(paths: list[str]) -> np.ndarray:
  try:
    from PIL import Image  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - the test extra installs it
    raise ImportError("folder datasets need pillow: pip install 'dcjax[images]'") from e
  images = []
  for p in paths:  # decoding is per file by nature; everything after it is one array
    with Image.open(p) as im:
      images.append(np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im))
  shapes = {a.shape for a in images}
  if len(shapes) > 1:
    first = images[0].shape
    odd = next(p for p, a in zip(paths, images) if a.shape != first)
    raise ValueError(f"folder dataset images must share one size: {paths[0]} is {first}, "
                     f"{odd} is {next(a.shape for a in images if a.shape != first)}; resize "
                     "them once beforehand.")
  return np.stack(images)


def _folder_arrays(files: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
  paths = [p for c in files for p in files[c]]
  labels = np.concatenate([np.full(len(fs), i, np.int32) for i, fs in enumerate(files.values())])
  return to_nhwc_float(_decode(paths), "folder images"), labels


def _cached(root: str, files_by_split: dict, build):
  """``build()`` cached as .npy under root/.dcjax_cache, keyed by the listing's names, sizes
  and modification times (a changed file is decoded again)."""
  listing = [(s, c, os.path.relpath(p, root), os.path.getsize(p), os.path.getmtime(p))
             for s, files in files_by_split.items() for c, fs in files.items() for p in fs]
  digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]
  cache = os.path.join(root, ".dcjax_cache")
  names = [os.path.join(cache, f"{digest}_{part}.npy")
           for part in ("x_train", "y_train", "x_test", "y_test")]
  if all(os.path.exists(n) for n in names):
    arrays = [np.load(n) for n in names]
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])
  (xtr, ytr), (xte, yte) = build()
  for name, array in zip(names, (xtr, ytr, xte, yte)):
    with io.atomic_path(name) as tmp:  # a killed write leaves no array that looks complete
      np.save(tmp, array)
  return (xtr, ytr), (xte, yte)


def _folder(root: str):
  if not os.path.isdir(root):
    raise FileNotFoundError(f"folder dataset {root!r} does not exist; expected a directory with "
                            "one subfolder of images per class.")
  if os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, "test")):
    splits = {s: _class_files(os.path.join(root, s)) for s in ("train", "test")}
    if list(splits["train"]) != list(splits["test"]):
      raise ValueError(f"folder dataset {root!r}: train and test hold different classes "
                       f"({list(splits['train'])} vs {list(splits['test'])}).")
    build = lambda: (_folder_arrays(splits["train"]), _folder_arrays(splits["test"]))
    return _cached(root, splits, build)
  files = _class_files(root)
  rng = np.random.default_rng(FOLDER_SPLIT_SEED)
  test = {c: set(rng.permutation(len(fs))[:max(1, int(len(fs) * FOLDER_TEST_FRACTION))])
          for c, fs in files.items()}
  train_files = {c: [f for i, f in enumerate(fs) if i not in test[c]] for c, fs in files.items()}
  test_files = {c: [f for i, f in enumerate(fs) if i in test[c]] for c, fs in files.items()}
  build = lambda: (_folder_arrays(train_files), _folder_arrays(test_files))
  return _cached(root, {"train": train_files, "test": test_files}, build)
