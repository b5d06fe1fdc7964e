"""Prepare a tfds dataset once, as dcjax reads it: ArrayRecord files, then dcjax's .npy cache.

    python -m experiments.prepare_data cifar10 [--data-dir DIR]

Downloads through tensorflow-datasets (``tfds.builder(..., file_format="array_record")
.download_and_prepare()``), then loads both splits once with ``load_dataset``, which fills
the .npy cache next to the data. Preparing needs network access and tfds's preparation
dependencies (``importlib_resources``; most builders also need TensorFlow to encode images);
when one is missing it stops and names exactly what to install or where to run it.
Afterwards ``--data-dir DIR`` (or TFDS_DATA_DIR) points every command at the prepared data.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from dcjax import cli
from dcjax.errors import RuntimeRefusal
from dcjax.data import load_dataset
from dcjax.data.loaders import TFDS_NAMES


def build_parser() -> argparse.ArgumentParser:
  p = cli.ArgumentParser(prog="python -m experiments.prepare_data", description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("name", choices=list(TFDS_NAMES), help="dataset")
  p.add_argument("--data-dir", default=None,
                 help="tfds data_dir (default: TFDS_DATA_DIR, else tfds's ~/tensorflow_datasets)")
  return p


def missing_modules() -> list[str]:
  """tfds's preparation dependencies that are not installed."""
  return [m for m in ("tensorflow_datasets", "importlib_resources")
          if importlib.util.find_spec(m) is None]


def prepare(name: str, data_dir: str | None) -> str:
  """Prepares ``name`` as ArrayRecord in data_dir; returns the prepared directory."""
  missing = missing_modules()
  if missing:
    raise RuntimeRefusal(f"Preparing {name!r} needs {missing}: pip install "
                       + " ".join(m.replace("_", "-") for m in missing)
                       + " (and, for most image datasets, tensorflow).")
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
  builder = tfds.builder(TFDS_NAMES[name], data_dir=data_dir, file_format="array_record")
  try:
    builder.download_and_prepare()
  except ModuleNotFoundError as err:
    raise RuntimeRefusal(f"Preparing {name!r} needs the module {err.name!r}: pip install "
                       f"{(err.name or '').replace('_', '-')}.") from err
  except Exception as err:  # tfds raises many types for network failures
    raise RuntimeRefusal(
        f"Preparing {name!r} failed while downloading or generating ({type(err).__name__}: "
        f"{str(err)[:300]}). It needs network access to the dataset's source; on a machine "
        f"with network access run: python -m experiments.prepare_data {name} --data-dir DIR, "
        "then copy DIR here and pass --data-dir DIR.") from err
  return builder.data_dir


def main(argv: list[str] | None = None) -> dict:
  args = build_parser().parse_args(argv)
  prepared = prepare(args.name, args.data_dir)
  train, test = load_dataset(args.name, data_dir=args.data_dir)  # fills the .npy cache
  print(f"{args.name}: {len(train)} train / {len(test)} test images {train.image_shape}, "
        f"prepared in {prepared}")
  return {"name": args.name, "prepared": prepared, "train": len(train), "test": len(test)}


def run() -> None:
  """The command line: ``python -m experiments.prepare_data``, ``dcjax-prepare-data``."""
  cli.entry_point(main, prog="experiments.prepare_data")


if __name__ == "__main__":
  run()
