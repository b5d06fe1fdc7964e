"""Seconds of the released-set analysis (nearest real image by L2 and SSIM both ways, the
distance attack) for one run at CIFAR shapes, by SSIM path: numpy float64 (the CPU path) and the
jitted float32 program (the GPU/TPU path, also runnable on CPU), then the hours per released-set
recipe of a paper-scale study at the measured rate (seconds per SSIM pair).

    python benchmarks/released_set.py                    # pool 1000, ipc 10, 32x32x3
    python benchmarks/released_set.py --pool 200 --paths device

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from dcjax.audit import visual  # noqa: E402


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--pool", type=int, default=1000, help="pool images (N)")
  p.add_argument("--ipc", type=int, default=10, help="synthetic images per class (10 classes)")
  p.add_argument("--size", type=int, default=32, help="image height and width (3 channels)")
  p.add_argument("--shortlist", type=int, default=64, help="SSIM candidates per image")
  p.add_argument("--paths", default="numpy,device", help="comma-separated: numpy, device")
  p.add_argument("--paper-pool", type=int, default=50000, help="pool of the extrapolation")
  p.add_argument("--paper-runs", type=int, default=64, help="runs of the extrapolation")
  args = p.parse_args(argv)
  rng = np.random.default_rng(0)
  shape = (args.size, args.size, 3)
  pool = rng.uniform(size=(args.pool, *shape))
  synthetic = rng.uniform(size=(1, 10 * args.ipc, *shape))
  keep = np.zeros((1, args.pool), bool)
  keep[0, : args.pool // 2] = True
  init = np.full((1, 10 * args.ipc), -1)
  s = 10 * args.ipc
  # SSIM pairs of one run: synthetic -> pool and pool -> synthetic, each over the shortlist
  pairs = s * min(args.shortlist, args.pool) + args.pool * min(args.shortlist, s)
  paper_pairs = args.paper_runs * (s * args.shortlist + args.paper_pool * min(args.shortlist, s))
  out = {"backend": jax.default_backend(), "pool": args.pool, "synthetic": s,
         "shape": list(shape), "shortlist": args.shortlist, "ssim_pairs_per_run": pairs,
         "paths": {}}
  for path in args.paths.split(","):
    visual.SSIM_ON_DEVICE = path == "device"
    visual.released_set_privacy(synthetic, init, pool[:64], keep[:, :64],
                                shortlist=args.shortlist)  # compile / warm up
    t = time.perf_counter()
    visual.released_set_privacy(synthetic, init, pool, keep, shortlist=args.shortlist)
    sec = time.perf_counter() - t
    out["paths"][path] = {
        "sec_per_run": round(sec, 2), "sec_per_ssim_pair": sec / pairs,
        "paper_hours_per_recipe": round(sec / pairs * paper_pairs / 3600, 2)}
  print(json.dumps(out, indent=2))
  return out


if __name__ == "__main__":
  main()
