"""Train fresh networks by the DC evaluation protocol on a whole dataset and report accuracy.

    python -m experiments.train                      # ConvNet on the bundled digits
    python -m experiments.train --dataset cifar10 --data-dir ~/tensorflow_datasets --models 5

Writes ``{out}/results.json`` (accuracy per model, mean and std, config, seed, machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import numpy as np

from dcjax import cli, io, workdir
from dcjax.augment import strategy_for
from dcjax.checkpoint import array_digest
from dcjax.data import check_dataset_name, load_dataset
from dcjax.nets import NET_NAMES, default_net, get_net
from dcjax.train import TrainConfig, accuracy, predict_many, train_many
from dcjax.train.config import COMPUTE_DTYPES, LOSSES, SAMPLINGS, STRATEGIES


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m experiments.train", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", default="digits", type=cli.argument_type(check_dataset_name),
                      help="dataset name (default: 'digits', bundled, no network needed)")
  parser.add_argument("--data-dir", default=None,
                      help="tensorflow-datasets data_dir for tfds datasets (default: tfds's)")
  parser.add_argument("--net", default=None, choices=NET_NAMES,
                      help=f"network, one of {', '.join(NET_NAMES)}"
                      " (default: ConvNet, or ConvNetD2 for 8x8 images such as digits)")
  parser.add_argument("--init-scheme", default="torch", choices=["torch", "flax"],
                      help="parameter initialisation: the reference's PyTorch defaults, or "
                      "Flax's (default: torch)")
  parser.add_argument("--models", type=int, default=1,
                      help="number of fresh networks, their keys split from --seed (default: 1)")
  parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
  parser.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=False,
                      help="train with the dataset's DSA strategy (non-Siamese)")
  parser.add_argument("--out", default="runs/train",
                      help="output directory (default: runs/train); new, empty or holding "
                      "the same run")
  parser.add_argument("--quiet", action=argparse.BooleanOptionalAction, default=False,
                      help="no progress bars")
  parser.add_argument("--recompute", action=argparse.BooleanOptionalAction, default=False,
                      help="replace the results of another configuration in --out")
  cli.add_config_flags(parser, TrainConfig, docs={
      "epochs": "training epochs", "batch_size": "batch size", "lr": "SGD learning rate",
      "momentum": "SGD momentum", "weight_decay": "L2 weight decay on every parameter",
      "decay_epoch": "first epoch at lr x0.1 (None: epochs//2+1)",
      "augment": "DSA strategy string (overrides --dsa)",
      "microbatch": "gradient micro-batch (0: per backend, None: off)",
      "strategy": "execution strategy: auto, loop (CPU) or scan (GPU/TPU)",
      "models_per_chunk": "models vmapped together by the scan strategy",
      "compute_dtype": "float32, or bfloat16 for mixed precision (GPU/TPU)",
      "sampling": "batches: shuffle (epochs of a permutation) or poisson (each example with "
                  "rate batch_size / dataset_size, as DP accounting assumes)",
      "dataset_size": "the public size n behind Poisson sampling's rate and normaliser (None: "
                      "the training set's)",
      "dp_clip": "DP-SGD: clip every example's gradient to this L2 norm (None: no DP-SGD)",
      "dp_noise": "DP-SGD: the noise multiplier sigma (std sigma * dp_clip on the sum)",
      "loss": "xent (softmax cross-entropy) or mse (FRePo's loss on its soft labels)"},
      choices={"compute_dtype": COMPUTE_DTYPES, "sampling": SAMPLINGS, "loss": LOSSES,
               "strategy": STRATEGIES})
  return parser


def main(argv: list[str] | None = None) -> dict:
  args = build_parser().parse_args(argv)
  if args.models < 1:
    raise ValueError(f"--models must be >= 1, got {args.models}.")
  train_set, test_set = load_dataset(args.dataset, data_dir=args.data_dir)
  args.net = args.net or default_net(train_set.image_shape)
  net = get_net(args.net, train_set.num_classes, init_scheme=args.init_scheme)
  cfg = cli.config_from_args(args, TrainConfig)
  if args.dsa and cfg.augment is None:
    cfg = dataclasses.replace(cfg, augment=strategy_for(args.dataset))
  print(f"{args.net} on {args.dataset}: {len(train_set)} train / {len(test_set)} test images "
        f"{train_set.image_shape}, {args.models} model(s), backend {jax.default_backend()}")
  out = workdir.claim(args.out, {"study": "train", "dataset": args.dataset, "net": args.net,
                                 "init_scheme": args.init_scheme,
                                 "models": args.models, "seed": args.seed, "train_config": cfg,
                                 "data": array_digest(train_set.images, train_set.labels,
                                                      test_set.images, test_set.labels)},
                      owned=("results.json",), recompute=args.recompute)
  keys = jax.random.split(jax.random.key(args.seed), args.models)
  start = time.time()
  stacked = train_many(keys, net, train_set.images, train_set.labels, cfg,
                       progress=not args.quiet)
  accs = np.asarray(accuracy(predict_many(net, stacked, test_set.images), test_set.labels))
  wall = time.time() - start
  result = {
      "dataset": args.dataset, "net": args.net, "seed": args.seed, "models": args.models,
      "train_config": cfg, "test_accuracy": accs, "test_accuracy_mean": float(accs.mean()),
      "test_accuracy_std": float(accs.std()), "wall_seconds": wall,
      "code_version": io.code_version(), "machine": io.machine(),
  }
  io.write_json_atomic(os.path.join(out, "results.json"), result)
  print(f"test accuracy: {100 * accs.mean():.2f} +- {100 * accs.std():.2f} % "
        f"over {args.models} model(s), final epoch ({wall:.0f} s); wrote {out}/results.json")
  return result


def run() -> None:
  """The command line (``python -m experiments.train``, the console script ``dcjax-train``)."""
  cli.entry_point(main, prog="experiments.train")


if __name__ == "__main__":
  run()
