"""Work of an audit preset in FLOPs, counted by XLA, and the time it implies. Prints JSON.

    python -m benchmarks.audit_cost                      # every preset
    python -m benchmarks.audit_cost --preset cifar10_ipc10 --calibrate runs/audit/default

XLA's cost analysis of the very jitted steps the audit runs (DM step; DC/DSA match step and
inner epoch; a network forward pass) at each preset's shapes, times how often the preset runs
them: condensation iterations x runs x recipes, training epochs x images x runs (forward +
backward ~ 3 forward), queries of every pool example under every view. Nothing is executed, so
this runs on a CPU machine for paper-scale shapes.

Seconds at a sustained rate are an ESTIMATE, not a measurement. Two ways to ground it:

* ``--measured FILE`` (repeatable): JSON printed by ``benchmarks/condense_step.py`` (a
  condenser's seconds per iteration at CIFAR shapes) and ``benchmarks/train_throughput.py``
  (training images per second). Each is turned into the rate that machine sustains on that
  work (XLA FLOPs of the same program / measured seconds); every preset is then costed with the
  rate of its own kind of work (condensation by method, training, queries at the training
  rate) and ``estimated_hours_measured`` says which rates it used. With ``--peak-tflops`` (the
  device's peak for the dtype it ran, from its data sheet) each rate is also reported as
  model-FLOP utilisation.
* ``--calibrate DIR`` reads a finished audit's results.json (its recipes' seconds) and reports
  the sustained rate that run actually achieved.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp

from dcjax.audit import PRESETS, recipes, runs_config
from dcjax.condense import DMConfig, Pool, Spec, common, dc, dm, get_condenser
from dcjax.privacy.mechanisms import poisson_capacity
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
  """FLOPs of ONE outer iteration of a condenser at these shapes.

  Counted with the real batch in one pass (``real_chunk=None``: the same maths): XLA's cost
  analysis counts a loop body once, not once per trip, so DM's chunks under ``lax.map`` would
  be undercounted by their number.
  """
  if hasattr(cfg, "real_chunk"):
    cfg = dataclasses.replace(cfg, real_chunk=None)
  net = common.condensing_net(cfg, classes)
  pool = classes * batch_real  # the gather does not depend on the pool size; keep it small
  images = _spec((classes * ipc, *shape))
  pool_x, pool_y = _spec((pool, *shape)), _spec((pool,), jnp.int32)
  mask = _spec((pool,), jnp.bool_)
  key = jax.random.key(0)
  opt_state = jax.eval_shape(lambda x: common.init_state(cfg, x), images)
  if method == "dm":
    spec = Spec(net, cfg, classes, ipc, batch_real)
    return _flops(lambda im, opt, k, px, py, m: dm.step(spec, {"images": im, "opt_state": opt}, k,
                                                        Pool(px, py, m)),
                  images, opt_state, key, pool_x, pool_y, mask)
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
    # DP-SGD recipes train their own epochs (per-example gradients cost more than these FLOPs)
    epochs = getattr(recipe, "dp_epochs", None) or rc.train.epochs
    train = 3 * fwd * size * epochs * cfg.runs
    query = fwd * (pool * len(query_views(cfg.dataset)) + n_test) * cfg.runs
    cond = 0.0
    if isinstance(recipe, Condense):
      mc, method = recipe.config, recipe.method
      if method == "ndpdc":  # DM's embedding step on a Poisson sample of ~group_size a class
        method, batch = "dm", poisson_capacity(mc.group_size, members // classes)
        mc = DMConfig(iterations=mc.iterations, net=mc.net, dsa_strategy=mc.dsa_strategy)
      else:
        batch = min(mc.batch_real, members // classes)
      per_it = condense_flops(method, mc, shape, classes, cfg.ipc, batch)
      cond = per_it * mc.iterations * cfg.runs
    flops = {"condense": cond, "train": train, "query": query}
    out["recipes"][str(recipe)] = {k: v / 1e12 for k, v in flops.items()}
    total += sum(flops.values())
  out["total_tflop"] = total / 1e12
  out["estimated_hours_at"] = {f"{r} TFLOP/s": total / (r * 1e12) / 3600
                               for r in (0.1, 10, 30, 100)}
  return out


CIFAR = ((32, 32, 3), 10)  # the shapes of benchmarks/condense_step.py and train_throughput.py


def measured_rates(paths: list[str], peak_tflops: float | None) -> dict:
  """{work: {tflop_per_s, source, ...}} from benchmark JSON files; work is 'condense:<method>'
  or 'train'."""
  rates = {}
  for path in paths:
    with open(path) as f:
      bench = json.load(f)
    if "sec_per_iter" in bench and "method" in bench:  # condense_step.py
      method = bench["method"]
      cfg = dataclasses.replace(get_condenser(method).preset(bench["ipc"]),
                                batch_real=bench["batch_real"])
      flops = condense_flops(method, cfg, tuple(bench["image_shape"]), bench["num_classes"],
                             bench["ipc"], bench["batch_real"])
      rate = flops / bench["sec_per_iter"] / 1e12
      rates[f"condense:{method}"] = {"tflop_per_s": rate, "source": path,
                                     "backend": bench.get("backend")}
    elif "images_per_sec_many" in bench:  # train_throughput.py
      shape, classes = tuple(bench.get("image_shape", CIFAR[0])), CIFAR[1]
      per_image = 3 * forward_flops("ConvNet", shape, classes)  # forward + backward
      best = max(bench["images_per_sec_many"], bench["images_per_sec_single"])
      rates["train"] = {"tflop_per_s": per_image * best / 1e12, "source": path,
                        "backend": bench.get("backend"), "images_per_sec": best}
    else:
      raise ValueError(f"--measured {path}: not the JSON of benchmarks/condense_step.py or "
                       "benchmarks/train_throughput.py (no 'sec_per_iter' + 'method' or "
                       "'images_per_sec_many').")
  if peak_tflops:
    for r in rates.values():
      r["model_flop_utilisation"] = r["tflop_per_s"] / peak_tflops
  return rates


def measured_hours(cost: dict, rates: dict) -> dict:
  """Hours of a costed preset at the measured rates; work without a measured rate is listed."""
  seconds, used, missing = 0.0, set(), set()
  for name, flops in cost["recipes"].items():
    method = name.split("(", 1)[1].split(",", 1)[0] if name.startswith("condense(") else None
    for part, tflop in flops.items():
      work = f"condense:{method}" if part == "condense" else "train"
      if tflop == 0:
        continue
      if work not in rates:
        missing.add(work)
        continue
      used.add(work)
      seconds += tflop / rates[work]["tflop_per_s"]
  return {"hours": seconds / 3600 if not missing else None, "rates_used": sorted(used),
          "unmeasured_work": sorted(missing)}


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
  p.add_argument("--measured", action="append", default=[], metavar="FILE",
                 help="JSON of benchmarks/condense_step.py or train_throughput.py (repeatable)")
  p.add_argument("--peak-tflops", type=float, default=None,
                 help="the measuring device's peak TFLOP/s, for model-FLOP utilisation")
  args = p.parse_args(argv)
  result = {"presets": [preset_cost(n) for n in (args.preset or list(PRESETS))],
            "backend": jax.default_backend()}
  if args.measured:
    rates = measured_rates(args.measured, args.peak_tflops)
    result["measured_rates"] = rates
    for cost in result["presets"]:
      cost["estimated_hours_measured"] = measured_hours(cost, rates)
  if args.calibrate:
    default = next((c for c in result["presets"] if c["preset"] == "default"), None) or \
        preset_cost("default")
    result["calibration"] = calibrate(args.calibrate, default)
  json.dump(result, sys.stdout, indent=1)
  print()
  return result


if __name__ == "__main__":
  main()
