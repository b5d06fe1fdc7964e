"""Test accuracy of networks initialised as PyTorch does (the reference) and as Flax does, on the
same keys; prints JSON.

    python benchmarks/init_scheme.py [--models 5] [--real-epochs 50] [--subset-epochs 300]

Two training sets of the bundled digits, both trained as the default audit trains its runs:
the whole training split for ``--real-epochs`` (the ``real`` recipe), and a random subset of
10 images per class for ``--subset-epochs`` (a synthetic-size set). ``default_net`` of the image
size, the evaluation protocol otherwise (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch
256, no augmentation); ``--models`` fresh networks per scheme, the same keys for both schemes.
Reports the final test accuracy (mean, std, per network) and the difference of the means.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dcjax import io  # noqa: E402
from dcjax.condense import evaluate, random_subset  # noqa: E402
from dcjax.data import load_dataset  # noqa: E402
from dcjax.nets.layers import INITS  # noqa: E402
from dcjax.train import TrainConfig  # noqa: E402


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", type=int, default=5)
  p.add_argument("--real-epochs", type=int, default=50)
  p.add_argument("--subset-epochs", type=int, default=300)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  pool, test = load_dataset("digits")
  subset = random_subset(jax.random.key(args.seed + 1), pool, ipc=10)
  cases = {"whole_split": (pool, args.real_epochs),
           "random_subset_ipc10": (subset, args.subset_epochs)}
  report = {"dataset": "digits", "models": args.models, "seed": args.seed, "cases": {},
            "machine": io.machine(), "code_version": io.code_version()}
  for case, (train_set, epochs) in cases.items():
    rows = {}
    for scheme in INITS:
      start = time.time()
      (net, r), = evaluate(jax.random.key(args.seed), train_set, test, num_models=args.models,
                           train_cfg=TrainConfig(epochs=epochs), init_scheme=scheme).items()
      rows[scheme] = {"net": net, "mean": r["mean"], "std": r["std"],
                      "accuracies": r["accuracies"], "seconds": round(time.time() - start, 1)}
      print(f"{case} {scheme}: {100 * r['mean']:.2f} +- {100 * r['std']:.2f}%",
            file=sys.stderr, flush=True)
    report["cases"][case] = {"train_size": int(train_set.images.shape[0]), "epochs": epochs,
                             **rows,
                             "torch_minus_flax": rows["torch"]["mean"] - rows["flax"]["mean"]}
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  main()
