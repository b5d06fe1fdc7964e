"""Membership inference against recipes (real data, random subsets, init images, condensed sets).

    python -m experiments.mia --dataset digits --runs 16
    python -m experiments.mia --recipe real --recipe "condense(dm,10,real)" --runs 32

For each recipe, --runs runs with balanced keep masks over the pool: build the run's training
set from its IN examples, train a fresh network, query every pool example under the query views.
Every run then serves once as the target of each attack (leave-one-out), and the metrics are
stratified by the target's init images / other members / all members.

Writes to --out: ``stages/`` (resumable Orbax stages), ``results.json`` (test accuracy and, per
attack and stratum, AUC, balanced accuracy, TPR at 0.1% and 1% FPR with 95% Clopper-Pearson
intervals and trial counts) and ``roc_<recipe>.png`` (log-log ROC curves per stratum).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import numpy as np

from dcjax import cli, io, plots, workdir
from dcjax.data import DATASET_NAMES, load_dataset
from dcjax.mia import RunsConfig, balanced_keep_masks, parse_recipe, run_recipe
from dcjax.mia.pipeline import DEFAULT_ATTACKS, attack_runs
from dcjax.mia.recipes import check_pool
from dcjax.nets import NET_NAMES, default_net
from dcjax.train import TrainConfig

DEFAULT_RECIPES = ("real", "random_subset(10)", "init_only(10)", "condense(dm,10,real)")


def build_parser() -> argparse.ArgumentParser:
  p = cli.ArgumentParser(prog="python -m experiments.mia", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", default="digits", choices=DATASET_NAMES,
                 help="dataset whose training split is the pool (default: 'digits')")
  p.add_argument("--data-dir", default=None, help="tfds data_dir (default: tfds's)")
  p.add_argument("--recipe", action="append", default=None,
                 help="a recipe; repeat for several (default: " + ", ".join(DEFAULT_RECIPES) +
                 ")")
  p.add_argument("--runs", type=int, default=16,
                 help="runs per recipe, even; each example is IN for half (default: 16)")
  p.add_argument("--pool-size", type=int, default=None,
                 help="use this many training examples as the pool, drawn from --seed "
                 "(default: the whole training split)")
  p.add_argument("--seed", type=int, default=0, help="seed of masks, runs, training (default: 0)")
  p.add_argument("--net", default=None, choices=NET_NAMES,
                 help="network trained in every run (default: ConvNet, or ConvNetD2 for 8x8 "
                 "images such as digits)")
  p.add_argument("--cond-iterations", type=int, default=None,
                 help="iterations of condense recipes (default: the method's preset)")
  p.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                 help="comma-separated attacks (default: %(default)s)")
  p.add_argument("--out", default=None, help="output directory (default: runs/mia/DATASET)")
  p.add_argument("--recompute", action="store_true",
                 help="discard what dcjax wrote in --out and start over")
  cli.add_config_flags(p, TrainConfig, docs={
      "epochs": "training epochs of each run's network", "batch_size": "batch size",
      "lr": "SGD learning rate", "momentum": "SGD momentum", "weight_decay": "weight decay",
      "decay_epoch": "first epoch at lr x0.1 (None: epochs//2+1)",
      "augment": "DSA strategy for training (None: off)",
      "microbatch": "gradient micro-batch (0: per backend, None: off)",
      "strategy": "auto, loop (CPU) or scan (GPU/TPU)",
      "models_per_chunk": "runs vmapped together by the scan strategy"})
  return p


def main(argv: list[str] | None = None) -> dict:
  args = build_parser().parse_args(argv)
  recipes = [parse_recipe(r) for r in (args.recipe or DEFAULT_RECIPES)]
  attacks = tuple(a for a in args.attacks.split(",") if a)
  from dcjax.mia import get_attack  # pylint: disable=import-outside-toplevel
  for a in attacks:
    get_attack(a)
  train_cfg = cli.config_from_args(args, TrainConfig)
  key = jax.random.key(args.seed)
  k_pool, k_keep, k_runs = jax.random.split(key, 3)
  train_set, test_set = load_dataset(args.dataset, data_dir=args.data_dir)
  cfg = RunsConfig(net=args.net or default_net(train_set.image_shape), train=train_cfg)
  if args.cond_iterations is not None:
    from dcjax.condense import get_method  # pylint: disable=import-outside-toplevel
    recipes = [dataclasses.replace(r, method_config=dataclasses.replace(
        get_method(r.method).preset(r.ipc), iterations=args.cond_iterations,
        net=default_net(train_set.image_shape)))
               if r.kind == "condense" else r for r in recipes]
  pool = train_set
  if args.pool_size is not None:
    if not 2 <= args.pool_size <= len(train_set):
      raise ValueError(f"--pool-size must be in [2, {len(train_set)}], got {args.pool_size}.")
    pool = train_set.subset(np.sort(np.asarray(
        jax.random.permutation(k_pool, len(train_set))[:args.pool_size])))
  keep = balanced_keep_masks(k_keep, args.runs, len(pool))
  for recipe in recipes:  # every check before any work
    check_pool(recipe, pool, keep)
  out = os.path.abspath(args.out or os.path.join("runs", "mia", args.dataset))
  workdir.claim(out, {"study": "mia", "dataset": args.dataset, "runs": args.runs,
                      "pool_size": len(pool), "seed": args.seed, "runs_config": cfg,
                      "recipes": [(r.name, r.method_config) for r in recipes]},
                owned=("stages", "results.json", "roc_*.png"), recompute=args.recompute)
  print(f"MIA on {args.dataset}: pool {len(pool)}, {args.runs} runs x {len(recipes)} recipes, "
        f"{cfg.net}, {train_cfg.epochs} epochs, backend {jax.default_backend()} -> {out}")

  results = {"dataset": args.dataset, "runs": args.runs, "pool_size": len(pool),
             "seed": args.seed, "runs_config": cfg, "attacks": attacks, "recipes": {},
             "code_version": io.code_version(), "machine": io.machine()}
  for recipe in recipes:
    start = time.time()
    res = run_recipe(os.path.join(out, "stages"), k_runs, pool, test_set, keep, recipe, cfg,
                     recompute=args.recompute, progress=True)
    curves = {}
    metrics = attack_runs(res, pool.labels, attacks, curves=curves)
    acc = res["test_accuracy"]
    results["recipes"][recipe.name] = {
        "test_accuracy": {"mean": float(acc.mean()), "std": float(acc.std()),
                          "per_run": acc.tolist()},
        "training_set_size": (int(keep.sum(1).mean()) if recipe.kind == "real"
                              else recipe.ipc * pool.num_classes),
        "attacks": metrics, "seconds": time.time() - start,
        "roc_plot": f"roc_{io.slug(recipe.name)}.png"}
    plots.roc_panels(curves, os.path.join(out, f"roc_{io.slug(recipe.name)}.png"),
                     title=f"{recipe.name} on {args.dataset}, {args.runs} runs")
    io.write_json_atomic(os.path.join(out, "results.json"), results)
    _print_recipe(recipe.name, results["recipes"][recipe.name])
  print(f"wrote {out}/results.json")
  return results


def _print_recipe(name: str, r: dict) -> None:
  acc = r["test_accuracy"]
  print(f"\n{name}: test accuracy {100 * acc['mean']:.2f} +- {100 * acc['std']:.2f} %")
  for attack, strata in r["attacks"].items():
    for stratum, m in strata.items():
      if m is None:
        continue
      t1, t01 = m["tpr_at_fpr"]["0.01"], m["tpr_at_fpr"]["0.001"]
      print(f"  {attack:<20} {stratum:<14} AUC {m['auc']:.3f}  bal.acc "
            f"{m['balanced_accuracy']:.3f}  TPR@0.1% {100 * t01['tpr']:.2f}% "
            f"[{100 * t01['tpr_ci95'][0]:.2f}, {100 * t01['tpr_ci95'][1]:.2f}]  TPR@1% "
            f"{100 * t1['tpr']:.2f}% [{100 * t1['tpr_ci95'][0]:.2f}, "
            f"{100 * t1['tpr_ci95'][1]:.2f}]  ({m['positives']}+/{m['negatives']}-)")


if __name__ == "__main__":
  cli.entry_point(main, prog="experiments.mia")
