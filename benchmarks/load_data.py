"""Seconds to load CIFAR-10-sized data (50,000 + 10,000 images of 32x32x3): from a tfds-like
data source in chunks (``dcjax.data.loaders.arrays_from_source``), from the .npy cache it
leaves, and from an npz file (``--dataset npz:PATH``); prints one JSON.

    python benchmarks/load_data.py [--images 50000]

The source is an in-memory stand-in for tfds' ArrayRecord reader (its decode cost is not
included: the records are already arrays), so the first figure is dcjax's own overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from dcjax import io  # noqa: E402
from dcjax.data import load_dataset, loaders  # noqa: E402


class _Source:
  def __init__(self, images, labels):
    self.images, self.labels = images, labels

  def __len__(self):
    return len(self.images)

  def __getitems__(self, idx):
    return [{"image": self.images[i], "label": self.labels[i]} for i in idx]


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, round(time.perf_counter() - start, 3)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--images", type=int, default=50_000, help="training images (test: 1/5)")
  args = p.parse_args()
  rng = np.random.default_rng(0)
  n_test = args.images // 5
  x = rng.integers(0, 256, (args.images + n_test, 32, 32, 3), dtype=np.uint8)
  y = rng.integers(0, 10, len(x)).astype(np.int64)
  work = tempfile.mkdtemp(prefix="dcjax-load-")
  (xs, ys), source_sec = _timed(lambda: loaders.arrays_from_source(_Source(x, y), "cifar10"))
  _, save_sec = _timed(lambda: loaders.save_cached_arrays(work, "train", xs, ys))
  _, cache_sec = _timed(lambda: loaders.cached_arrays(work, "train"))
  path = os.path.join(work, "cifar.npz")
  np.savez(path, x_train=x[:args.images], y_train=y[:args.images], x_test=x[args.images:],
           y_test=y[args.images:])
  _, npz_sec = _timed(lambda: load_dataset(f"npz:{path}"))
  print(json.dumps({"images": len(x), "shape": [32, 32, 3],
                    "source_in_chunks_sec": source_sec, "cache_write_sec": save_sec,
                    "cache_read_sec": cache_sec,
                    "npz_to_normalised_dataset_sec": npz_sec, "machine": io.machine()},
                   indent=2))


if __name__ == "__main__":
  main()
