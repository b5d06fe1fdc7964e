"""Runs per hour of ``condense_many`` against a loop over ``condense``; prints one JSON object.

    python benchmarks/condense_many.py --method dm --runs 8 --iterations 20

Each path is run twice on the same shapes: the first call (tracing + compilation + the work)
and the second (the work alone, every program cached) are reported apart, so ``compile_sec`` is
their difference and ``runs_per_hour`` counts the second. Data: the bundled digits, balanced
keep masks (each run condenses its own members), the audit's condensing network for 8x8 images.
Strategies: ``loop`` (the CPU default) and ``vmap`` (the GPU/TPU default, for condensers with a
vectorised step).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dcjax import io  # noqa: E402
from dcjax.condense import condense, condense_many, get_condenser  # noqa: E402
from dcjax.data import load_dataset  # noqa: E402
from dcjax.mia import balanced_keep_masks  # noqa: E402
from dcjax.nets import default_net  # noqa: E402


def _twice(fn) -> dict:
  times = []
  for _ in range(2):
    start = time.perf_counter()
    jax.block_until_ready([s.images for s in fn()])
    times.append(time.perf_counter() - start)
  return {"first_sec": round(times[0], 2), "steady_sec": round(times[1], 2),
          "compile_sec": round(times[0] - times[1], 2)}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--method", default="dm")
  p.add_argument("--runs", type=int, default=8)
  p.add_argument("--ipc", type=int, default=10)
  p.add_argument("--iterations", type=int, default=20)
  p.add_argument("--batch-real", type=int, default=64)
  p.add_argument("--strategies", default="loop,vmap")
  args = p.parse_args(argv)

  pool, _ = load_dataset("digits")
  condenser = get_condenser(args.method)
  cfg = dataclasses.replace(condenser.preset(args.ipc), iterations=args.iterations,
                            batch_real=args.batch_real, net=default_net(pool.image_shape))
  keys = jax.random.split(jax.random.key(0), args.runs)
  masks = balanced_keep_masks(jax.random.key(1), args.runs, len(pool))
  result = {"method": args.method, "runs": args.runs, "ipc": args.ipc,
            "iterations": args.iterations, "batch_real": args.batch_real, "net": cfg.net,
            "dataset": "digits", "backend": jax.default_backend(), "paths": {}}
  result["paths"]["loop over condense"] = _twice(lambda: [
      condense(k, pool, args.method, args.ipc, "real", mask=m, config=cfg)
      for k, m in zip(keys, masks)])
  for strategy in args.strategies.split(","):
    if strategy == "vmap" and not condenser.vectorised:
      continue
    result["paths"][f"condense_many ({strategy})"] = _twice(lambda s=strategy: condense_many(
        keys, pool, args.method, args.ipc, "real", masks, cfg, strategy=s,
        checkpoint_every=args.iterations))
  base = result["paths"]["loop over condense"]["steady_sec"]
  for timing in result["paths"].values():
    timing["runs_per_hour"] = round(3600 * args.runs / timing["steady_sec"], 1)
    timing["speedup_vs_loop_over_condense"] = round(base / timing["steady_sec"], 3)
  result["machine"] = io.machine()
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
