"""Condense a dataset with a registered condenser (``--method``), then evaluate it against the
random-subset baseline.

    python -m experiments.condense --dataset digits --method dm --ipc 10
    python -m experiments.condense --method dm --dm.iterations 500 --dm.batch_real 64
    python -m experiments.condense --dataset cifar10 --data-dir DIR --method dsa --ipc 10

The method's settings are its preset for the dataset and ipc, with --<method>.<field> for any
field of its config (listed per method below).

Writes to --out: ``synset/`` (the synthetic set: Orbax arrays + metadata.json with its
preprocessing, labels, init indices, config and seed), ``images.png`` (the images,
de-normalised), ``results.json`` (evaluation accuracy of fresh networks trained on the set and on
a random real subset of the same size, wall times, machine) and ``checkpoints/`` (resume: run the
same command again after an interruption).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import jax.numpy as jnp

from dcjax import cli, io, logs, plots, workdir
from dcjax.condense import settings as settings_lib
from dcjax.condense import (condense_many, condenser_names, dataset_preset, evaluate,
                            get_condenser, load_synthetic_set, random_subset,
                            reference_eval_config, save_synthetic_set, synset_complete,
                            validate)
from dcjax.checkpoint import array_digest
from dcjax.data import check_dataset_name, load_dataset
from dcjax.data.user_data import dataset_slug
from dcjax.nets import default_net

# what the experiment writes in --out; --recompute removes these and nothing else
OWNED_ENTRIES = ("checkpoints", "synset", "images.png", "results.json")


def build_parser() -> argparse.ArgumentParser:
  p = cli.ArgumentParser(prog="python -m experiments.condense", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", default="digits", type=cli.argument_type(check_dataset_name),
                 help="dataset (default: 'digits', bundled)")
  p.add_argument("--data-dir", default=None, help="tfds data_dir (default: tfds's)")
  p.add_argument("--method", default="dm", choices=condenser_names(),
                 help="condensation method (default: 'dm')")
  p.add_argument("--ipc", type=int, default=10, help="images per class (default: 10)")
  p.add_argument("--init", default=None, choices=["real", "noise"],
                 help="initialisation (default: the method's reference: dm/dsa real, dc noise)")
  p.add_argument("--seed", type=int, default=0, help="PRNG seed of the whole run (default: 0)")
  p.add_argument("--models", type=int, default=5,
                 help="fresh networks trained on the synthetic set (and on the random subset) "
                 "to evaluate it (default: 5)")
  p.add_argument("--nets", default=None,
                 help="comma-separated architectures to evaluate on (default: ConvNet, or "
                 "ConvNetD2 for 8x8 images such as digits)")
  p.add_argument("--epochs", type=int, default=None,
                 help="evaluation epochs (default: 1000 with DSA, 300 without)")
  p.add_argument("--dsa", action=argparse.BooleanOptionalAction, default=None,
                 help="train evaluation networks with non-Siamese DSA (default: as the "
                 "reference evaluates the method: dm/dsa with DSA; dc without, except on "
                 "MNIST with crop_scale_rotate for 1000 epochs)")
  p.add_argument("--checkpoint-every", type=int, default=100,
                 help="iterations between checkpoints (default: 100)")
  p.add_argument("--out", default=None,
                 help="output directory (default: runs/condense/DATASET-METHOD-ipcK-INIT-sSEED);"
                 " new, empty or holding the same condensation")
  p.add_argument("--recompute", action=argparse.BooleanOptionalAction, default=False,
                 help="discard what dcjax wrote in --out (checkpoints, set, results) and start "
                 "over")
  p.add_argument("--quiet", action=argparse.BooleanOptionalAction, default=False,
                 help="no progress bars")
  p.add_argument("--tensorboard", default=None, metavar="DIR",
                 help="write the condensation loss of every iteration as TensorBoard event "
                 "files to DIR (the tensorboard extra)")
  cli.add_condenser_flags(p)  # --<method>.<field>, for the --method's fields
  return p


def method_config(args, image_shape):
  """The method's preset for the dataset with the --<method>.<field> flags given."""
  given = settings_lib.as_dict(cli.condenser_settings(args))
  other = sorted(f"--{m}.{f}" for m, fields in given.items() if m != args.method for f in fields)
  if other:
    raise ValueError(f"{', '.join(other)} do(es) not apply to --method {args.method}; its "
                     f"settings are --{args.method}.<field>.")
  cfg = dataset_preset(get_condenser(args.method), args.ipc, args.dataset, image_shape)
  return dataclasses.replace(cfg, **given.get(args.method, {}))


def main(argv: list[str] | None = None) -> dict:
  args = build_parser().parse_args(argv)
  spec = get_condenser(args.method)
  init = args.init or spec.default_init
  if args.models < 1:
    raise ValueError(f"--models must be >= 1, got {args.models}.")
  train_set, test_set = load_dataset(args.dataset, data_dir=args.data_dir)
  cfg = method_config(args, train_set.image_shape)
  validate(train_set, args.method, args.ipc, init)  # before any work
  out = os.path.abspath(args.out or os.path.join(
      "runs", "condense",
      f"{dataset_slug(args.dataset)}-{args.method}-ipc{args.ipc}-{init}-s{args.seed}"))
  print(f"{args.method} on {args.dataset} (ipc {args.ipc}, {init} init, seed {args.seed}), "
        f"{cfg.iterations} iterations, backend {jax.default_backend()} -> {out}")

  workdir.claim(out, {"study": "condense", "dataset": args.dataset, "method": args.method,
                      "ipc": args.ipc, "init": init, "seed": args.seed, "method_config": cfg,
                      "data": array_digest(train_set.images, train_set.labels, test_set.images,
                                           test_set.labels)},
                owned=OWNED_ENTRIES, recompute=args.recompute)

  key = jax.random.key(args.seed)
  k_cond, k_base, k_eval = jax.random.split(key, 3)
  start = time.time()
  synset_dir = os.path.join(out, "synset")
  if synset_complete(synset_dir):  # finished before: the set is the stage, not redone
    synset = load_synthetic_set(synset_dir)
    synset = synset.replace(images=jnp.asarray(synset.images))
  else:
    cfg = spec.prepare(cfg, train_set.labels, train_set.num_classes)  # noise calibrated
    with logs.metrics_writer(args.tensorboard) as writer:
      synset = condense_many(k_cond[None], train_set, args.method, args.ipc, init, None, cfg,
                             seed=args.seed, checkpoint_dir=os.path.join(out, "checkpoints"),
                             checkpoint_every=args.checkpoint_every, progress=not args.quiet,
                             writer=writer)[0]
    save_synthetic_set(synset_dir, synset)
  condense_seconds = time.time() - start
  plots.image_grid(synset.pixels(), synset.hard_labels(), synset.num_classes,
                   os.path.join(out, "images.png"),
                   title=f"{args.method} ipc={args.ipc} {init} init, {args.dataset}")

  eval_cfg = reference_eval_config(
      args.method, args.dataset, epochs=args.epochs, dsa=args.dsa)
  nets = tuple(n for n in (args.nets or default_net(train_set.image_shape)).split(",") if n)
  start = time.time()
  acc = evaluate(k_eval, synset, test_set, nets, args.models, eval_cfg, progress=not args.quiet)
  baseline_set = random_subset(k_base, train_set, args.ipc, seed=args.seed)
  # the baseline by the protocol's own loss (a FRePo set's MSE is for its learned labels)
  base = evaluate(k_eval, baseline_set, test_set, nets, args.models,
                  dataclasses.replace(eval_cfg, loss="xent"), progress=not args.quiet)
  eval_seconds = time.time() - start
  result = {
      "dataset": args.dataset, "method": args.method, "ipc": args.ipc, "init": init,
      "seed": args.seed, "method_config": cfg, "eval_config": eval_cfg,
      "accuracy": acc, "random_subset_accuracy": base, "privacy": synset.privacy(),
      "condense_seconds": condense_seconds, "eval_seconds": eval_seconds,
      "code_version": io.code_version(), "machine": io.machine(),
  }
  io.write_json_atomic(os.path.join(out, "results.json"), result)
  for name in nets:
    a, b = acc[name], base[name]
    print(f"{name}: {args.method} {100 * a['mean']:.2f} +- {100 * a['std']:.2f} %  vs random "
          f"subset {100 * b['mean']:.2f} +- {100 * b['std']:.2f} %  ({args.models} networks)")
  if result["privacy"] is not None:
    p = result["privacy"]
    print(f"released set: ({p['epsilon']:.3g}, {p['delta']:g})-DP by the PLD accountant (noise "
          f"multiplier {p['mechanism']['noise_multiplier']:.3g}, sampling rate "
          f"{p['mechanism']['sample_rate']:.3g}, {p['mechanism']['steps']} compositions)")
  print(f"condensing {condense_seconds:.0f} s, evaluation {eval_seconds:.0f} s; wrote {out}")
  return result


def run() -> None:
  """The command line: ``python -m experiments.condense``, the script ``dcjax-condense``."""
  cli.entry_point(main, prog="experiments.condense")


if __name__ == "__main__":
  run()
