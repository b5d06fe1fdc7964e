"""Work of an audit preset in FLOPs, counted by XLA, and the time it implies. Prints JSON.

    python -m benchmarks.audit_cost                      # every preset
    python -m benchmarks.audit_cost --preset cifar10_ipc10 --calibrate runs/audit/default

XLA's cost analysis of the very jitted steps the audit runs (DM step; DC/DSA match step and
inner epoch; a network forward pass) at each preset's shapes, times how often the preset runs
them: condensation iterations x runs x recipes, training epochs x images x runs (forward +
backward ~ 3 forward), queries of every pool example under every view. Nothing is executed, so
this runs on a CPU machine for paper-scale shapes.

Seconds at a sustained rate are an ESTIMATE, not a measurement. ``--calibrate DIR`` reads a
finished audit's results.json (its recipes' seconds) and reports the sustained rate that run
actually achieved, which is the number to put into the estimate for that machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp

from dcjax.audit import PRESETS, recipes, runs_config
from dcjax.condense import common, dc, dm
from dcjax.data import SPLIT_SIZES
from dcjax.runs import Condense, query_views
from dcjax.nets import get_net

def _flops(fn, *args, static=()) -> float:
  lowered = jax.jit(fn, static_argnums=static).lower(*args)
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def _spec(shape, dtype=jnp.float32):
  return jax.ShapeDtypeStruct(shape, dtype)


def condense_flops(method: str, cfg, shape, classes: int, ipc: int, batch_real: int) -> float:
  """FLOPs of ONE outer iteration of a condenser at these shapes."""
  net = get_net(cfg.net, classes, init_scheme=cfg.init_scheme)
  pool = classes * batch_real  # the gather does not depend on the pool size; keep it small
  images = _spec((classes * ipc, *shape))
  pool_x, pool_y = _spec((pool, *shape)), _spec((pool,), jnp.int32)
  mask = _spec((pool,), jnp.bool_)
  key = jax.random.key(0)
  opt_state = jax.eval_shape(lambda x: common.init_state(cfg, x), images)
  if method == "dm":
    return _flops(lambda *a: dm.step(net, cfg, classes, batch_real, *a), images, opt_state, key,
                  pool_x, pool_y, mask)
  variables = jax.eval_shape(lambda k: net.init(k, jnp.zeros((1, *shape))), key)
  match = _flops(lambda *a: dc.match_step(net, cfg, classes, batch_real, *a), images, opt_state,
                 variables, key, pool_x, pool_y, mask)
  steps = -(-classes * ipc // cfg.batch_train)
  labels = _spec((classes * ipc,), jnp.int32)
  inner = _flops(lambda *a: dc.inner_epoch(net, cfg, steps, *a), variables, images, labels, key)
  return cfg.outer_loop * match + (cfg.outer_loop - 1) * cfg.inner_loop * inner


def forward_flops(net_name: str, shape, classes: int) -> float:
  """FLOPs of one network forward pass per image (batch 64, divided)."""
  net = get_net(net_name, classes)
  variables = jax.eval_shape(lambda k: net.init(k, jnp.zeros((1, *shape))), jax.random.key(0))
  return _flops(lambda v, x: net.apply(v, x), variables, _spec((64, *shape))) / 64


def preset_cost(name: str) -> dict:
  cfg = PRESETS[name]
  shape, classes, n_train, n_test = SPLIT_SIZES[cfg.dataset]
  pool = cfg.pool_size or n_train
  members = pool // 2
  out = {"preset": name, "dataset": cfg.dataset, "runs": cfg.runs, "pool": pool, "recipes": {}}
  total = 0.0
  for recipe in recipes(cfg, shape):
    rc = runs_config(cfg, shape, recipe)
    fwd = forward_flops(rc.net, shape, classes)
    size = members if recipe.trains_on_pool else cfg.ipc * classes
    train = 3 * fwd * size * rc.train.epochs * cfg.runs
    query = fwd * (pool * len(query_views(cfg.dataset)) + n_test) * cfg.runs
    cond = 0.0
    if isinstance(recipe, Condense):
      mc = recipe.config
      batch = min(mc.batch_real, members // classes)
      per_it = condense_flops(recipe.method, mc, shape, classes, cfg.ipc, batch)
      cond = per_it * mc.iterations * cfg.runs
    flops = {"condense": cond, "train": train, "query": query}
    out["recipes"][str(recipe)] = {k: v / 1e12 for k, v in flops.items()}
    total += sum(flops.values())
  out["total_tflop"] = total / 1e12
  out["estimated_hours_at"] = {f"{r} TFLOP/s": total / (r * 1e12) / 3600
                               for r in (0.1, 10, 30, 100)}
  return out


def calibrate(directory: str, cost: dict) -> dict:
  with open(os.path.join(directory, "results.json")) as f:
    results = json.load(f)
  seconds = {k: v for k, v in results["stage_seconds"].items() if k in cost["recipes"]}
  tflop = sum(sum(cost["recipes"][k].values()) for k in seconds)
  return {"directory": directory, "machine": results["machine"], "seconds": sum(seconds.values()),
          "tflop": tflop, "sustained_tflop_per_s": tflop / max(sum(seconds.values()), 1e-9)}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m benchmarks.audit_cost", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", action="append", choices=list(PRESETS),
                 help="preset(s) to cost (default: all)")
  p.add_argument("--calibrate", default=None,
                 help="a finished audit directory of the `default` preset, to measure the "
                 "sustained rate of the machine that ran it")
  args = p.parse_args(argv)
  result = {"presets": [preset_cost(n) for n in (args.preset or list(PRESETS))],
            "backend": jax.default_backend()}
  if args.calibrate:
    default = next((c for c in result["presets"] if c["preset"] == "default"), None) or \
        preset_cost("default")
    result["calibration"] = calibrate(args.calibrate, default)
  json.dump(result, sys.stdout, indent=1)
  print()
  return result


if __name__ == "__main__":
  main()
