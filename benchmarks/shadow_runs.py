"""Shadow runs per hour on the bundled digits, many-runs API vs a plain loop; prints one JSON.

    python benchmarks/shadow_runs.py [--runs 2] [--epochs 300] [--cond-iterations 20]
                                     [--dsa-iterations 2] [--recipes real,dm,dsa]

A run = build the training set from the run's IN examples (recipe), train a fresh network
(``default_net``: ConvNetD2 for the 8x8 digits, as experiments.mia) by the evaluation
protocol, query every pool example under the query views. Recipes: ``real``,
``condense(dm,10,real)`` and ``condense(dsa,10,real)``. "many" times ``dcjax.runs.run_recipe``
(condense_many, then train_many: the vectorised path on an accelerator); "loop" times a plain
Python loop over single runs (``condense``, ``train``, ``predict`` per view).

Each path runs twice on the same shapes: cold (after ``jax.clear_caches()``, so it pays its own
compilation) and warm (another key: compiled programs reused). ``runs_per_hour_*`` are from the
warm pass; ``compile_sec_*`` is cold minus warm (tracing + compilation + first-touch memory).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dcjax import key_tree  # noqa: E402
from dcjax import io  # noqa: E402
from dcjax.augment import strategy_for  # noqa: E402
from dcjax.condense import get_condenser  # noqa: E402
from dcjax.data import load_dataset  # noqa: E402
from dcjax.mia import balanced_keep_masks  # noqa: E402
from dcjax.runs import (Condense, Real, RunsConfig, apply_view, query_views,  # noqa: E402
                        run_keys, run_recipe)
from dcjax.nets import default_net, get_net  # noqa: E402
from dcjax.train import TrainConfig, predict, train  # noqa: E402


def plain_loop(pool, test, keep, recipe, cfg, key) -> float:
  """A Python loop over single runs; each condensing recipe through ``condense``."""
  net = get_net(cfg.net, pool.num_classes)
  views = query_views(pool.name)
  start = time.perf_counter()
  keys = run_keys(key, keep.shape[0])
  for r in range(keep.shape[0]):
    item = recipe.build_training_set(key_tree.stage(keys[r], key_tree.TRAINING_SET), pool,
                                     keep[r])
    if recipe.trains_on_pool:
      idx = np.flatnonzero(keep[r])
      x, y = np.asarray(pool.images)[idx], np.asarray(pool.labels)[idx]
    else:
      x, y = item.images, item.labels
    params = train(key_tree.stage(keys[r], key_tree.TRAINING), net, x, y, cfg.train)
    for v in views:
      jax.block_until_ready(predict(net, params, apply_view(jnp.asarray(pool.images), v)))
    jax.block_until_ready(predict(net, params, test.images))
  return time.perf_counter() - start


def many(pool, test, keep, recipe, cfg, key) -> float:
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    run_recipe(tmp, key, pool, test, keep, recipe, cfg)
    return time.perf_counter() - start


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--runs", type=int, default=2, help="timed runs per recipe and method")
  p.add_argument("--epochs", type=int, default=300, help="training epochs per run")
  p.add_argument("--cond-iterations", type=int, default=20, help="DM iterations per run")
  p.add_argument("--dsa-iterations", type=int, default=2,
                 help="DSA iterations per run (each: 10 match steps, 9 x 50 inner epochs)")
  p.add_argument("--recipes", default="real,dm,dsa", help="comma-separated: real, dm, dsa")
  args = p.parse_args(argv)
  wanted = args.recipes.split(",")
  unknown = sorted(set(wanted) - {"real", "dm", "dsa"})
  if unknown:
    p.error(f"--recipes: unknown {unknown}; expected some of real, dm, dsa")

  pool, test = load_dataset("digits")
  net_name = default_net(pool.image_shape)  # what experiments.mia uses for this data
  cfg = RunsConfig(net=net_name, train=TrainConfig(epochs=args.epochs))
  keep = balanced_keep_masks(jax.random.key(0), args.runs, len(pool))
  dm_cfg = dataclasses.replace(get_condenser("dm").preset(10), iterations=args.cond_iterations,
                               net=net_name)
  dsa_cfg = dataclasses.replace(get_condenser("dsa").preset(10), iterations=args.dsa_iterations,
                                net=net_name, dsa_strategy=strategy_for(pool.name))
  recipes = {"real": Real(), "dm": Condense("dm", 10, "real", dm_cfg),
             "dsa": Condense("dsa", 10, "real", dsa_cfg)}
  result = {"backend": jax.default_backend(), "devices": jax.device_count(),
            "runs": args.runs, "dataset": "digits", "pool_size": len(pool),
            "epochs": args.epochs, "dm_iterations": args.cond_iterations,
            "dsa_iterations": args.dsa_iterations, "net": cfg.net, "recipes": {}}
  for short in wanted:
    recipe = recipes[short]
    row = {}
    for path, fn in (("loop", plain_loop), ("many", many)):
      jax.clear_caches()  # cold: this path pays its own compilation
      cold = fn(pool, test, keep, recipe, cfg, jax.random.key(2))
      warm = fn(pool, test, keep, recipe, cfg, jax.random.key(3))
      row.update({f"runs_per_hour_{path}": round(3600 * args.runs / warm, 2),
                  f"seconds_{path}": round(warm, 1),
                  f"compile_sec_{path}": round(cold - warm, 1)})
      print(f"{recipe}: {path} cold {cold:.1f} s, warm {warm:.1f} s", file=sys.stderr,
            flush=True)
    row["many_over_loop"] = round(row["seconds_loop"] / row["seconds_many"], 3)
    result["recipes"][str(recipe)] = row
  result["machine"] = io.machine()
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
