"""Seconds per outer iteration of a condenser on the reference shapes; prints one JSON object.

    python benchmarks/condense_step.py --method dm --ipc 10
    python benchmarks/condense_step.py --method mtt --ipc 10 [--no-remat] [--unroll 1]

Shapes: a seeded synthetic pool of 10 classes x 500 real 32x32x3 images per class, ConvNet
width 128 (torch-like init, as the reference), batch_real 256, default DSA strategy for dm and
dsa. ``compile_sec`` is tracing + lowering + XLA compilation, timed ahead of time
(``jit(...).lower(...).compile()``); ``first_run_sec`` is the first execution, which on CPU
also pays for first-touch memory (at DSA's shapes ~15 s more than later runs, so "first call
minus median" would count that as compilation); ``sec_per_iter`` is the median of the
``--repeats`` executions after it. For dc/dsa, an iteration is ``outer_loop`` image steps with ``inner_loop`` network
epochs between them; by default the pieces are timed separately and the full iteration is
implied from them (``implied: true`` in the JSON); ``--full`` times whole iterations.

MTT steps from expert trajectories of random parameters (the timing and memory of a step do
not depend on what the experts learned); FRePo with its online pool. For the jitted steps
(dm, mtt, frepo) ``memory`` is XLA's ``memory_analysis()`` of the compiled step: the bytes of
its arguments, outputs and temporaries (``temp_bytes``: what rematerialisation saves).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dcjax import io  # noqa: E402
from dcjax.condense import Pool, Spec, common, dc, dm, frepo, get_condenser, mtt  # noqa: E402
from dcjax.data import load_dataset  # noqa: E402

NUM_CLASSES, PER_CLASS, SHAPE = 10, 500, (32, 32, 3)


def _timed(fn, static: tuple, dynamic_of, repeats: int, compile_only: bool = False) -> dict:
  """Compile ``fn`` ahead of time, then run it ``repeats + 1`` times.

  ``fn`` is a jitted function called as ``fn(*static, *dynamic_of(r))``. Returns seconds of
  tracing + lowering + XLA compilation (``compile``), of the first execution (``first_run``,
  which on CPU also pays for first-touch memory) and the median of the next ``repeats``
  (NaN for ``repeats`` 0). Each phase's time goes to stderr as it ends, so that a run stopped
  by a time limit still tells how far it got.
  """
  start = time.perf_counter()
  compiled = fn.lower(*static, *dynamic_of(0)).compile()
  compile_sec = time.perf_counter() - start
  print(f"compiled in {compile_sec:.1f} s", file=sys.stderr, flush=True)
  times = [float("nan")] * 2 if compile_only else []
  for r in range(0 if compile_only else repeats + 1):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*dynamic_of(r)))
    times.append(time.perf_counter() - start)
    print(f"run {r} ({'first' if r == 0 else 'timed'}): {times[-1]:.2f} s", file=sys.stderr,
          flush=True)
  mem = compiled.memory_analysis()
  memory = None if mem is None else {
      "temp_bytes": int(mem.temp_size_in_bytes), "argument_bytes": int(mem.argument_size_in_bytes),
      "output_bytes": int(mem.output_size_in_bytes)}
  median = statistics.median(times[1:]) if len(times) > 1 else float("nan")
  return {"compile": compile_sec, "first_run": times[0], "median": median, "memory": memory}


def _fake_experts(key, net, cfg, images, num_experts: int = 2):
  """Expert trajectories (E, trajectory_epochs + 1, ...) of random parameters."""
  params = jax.vmap(lambda k: net.init(k, images[:1])["params"])(
      jax.random.split(key, num_experts * (cfg.trajectory_epochs + 1)))
  return jax.tree.map(lambda a: a.reshape(num_experts, cfg.trajectory_epochs + 1, *a.shape[1:]),
                      params)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--method", default="dm", choices=["dm", "dc", "dsa", "mtt", "frepo"])
  parser.add_argument("--ipc", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed iterations after the first (median); 0: the first alone")
  parser.add_argument("--full", action="store_true", help="dc/dsa: time whole iterations")
  parser.add_argument("--batch-real", type=int, default=None,
                      help="real images per class (default: the preset's 256)")
  parser.add_argument("--conv-impl", default="auto", choices=list(common.CONV_IMPL_CHOICES),
                      help="the condensing network's convolution (default: auto, the "
                      "condenser's per-backend choice)")
  parser.add_argument("--real-chunk", default="0",
                      help="real images per embedding / gradient chunk: 0 per backend, 'none' "
                      "one pass (default: 0)")
  parser.add_argument("--no-remat", action="store_true",
                      help="mtt: no jax.checkpoint around the student steps")
  parser.add_argument("--unroll", type=int, default=0,
                      help="mtt: scan unrolling of the student steps (0: per backend)")
  parser.add_argument("--syn-steps", type=int, default=None, help="mtt: student steps N")
  parser.add_argument("--compile-only", action="store_true",
                      help="dm/mtt/frepo: compile and analyse memory, run nothing")
  args = parser.parse_args(argv)

  pool, _ = load_dataset("synthetic", num_classes=NUM_CLASSES, train_per_class=PER_CLASS,
                         test_per_class=1, image_shape=SHAPE, seed=0)
  condenser = get_condenser(args.method)
  cfg = condenser.preset(args.ipc)
  if args.batch_real is not None:
    cfg = dataclasses.replace(cfg, batch_real=args.batch_real)
  if args.method == "mtt":
    cfg = dataclasses.replace(cfg, remat=not args.no_remat, unroll=args.unroll,
                              syn_steps=args.syn_steps or cfg.syn_steps)
  if hasattr(cfg, "real_chunk"):
    cfg = dataclasses.replace(cfg, real_chunk=None if args.real_chunk == "none"
                              else int(args.real_chunk))
  net = common.condensing_net(cfg, NUM_CLASSES)
  if args.conv_impl != "auto":  # also for DM, whose config has no conv_impl
    net = net.clone(conv_impl=common.resolve_conv_impl(args.conv_impl))
  px, py = jnp.asarray(pool.images), jnp.asarray(pool.labels)
  images, _ = common.init_images(jax.random.key(0), px, py, NUM_CLASSES, args.ipc, "real")
  key = jax.random.key(1)
  data = Pool(px, py, jnp.ones(py.shape[0], bool))
  spec = Spec(net, cfg, NUM_CLASSES, args.ipc, cfg.batch_real)
  state = condenser.init(spec, data, jax.random.fold_in(key, 7), images)
  opt_state = state["opt_state"]
  result = {"method": args.method, "ipc": args.ipc, "backend": jax.default_backend(),
            "num_classes": NUM_CLASSES, "real_per_class": PER_CLASS, "image_shape": list(SHAPE),
            "synthetic_images": NUM_CLASSES * args.ipc, "batch_real": cfg.batch_real,
            "net": f"{cfg.net} (width 128, {cfg.init_scheme} init, {net.conv_impl} conv)",
            "real_chunk": getattr(cfg, "real_chunk", None),
            "dsa_strategy": getattr(cfg, "dsa_strategy", None), "repeats": args.repeats}

  if args.method in ("dm", "mtt", "frepo"):
    if args.method == "mtt":
      state = {**state, "context": _fake_experts(jax.random.key(2), net, cfg, images)}
      result.update({"syn_steps": cfg.syn_steps, "remat": cfg.remat,
                     "unroll": cfg.unroll or ("full" if jax.default_backend() == "cpu" else 1),
                     "parameters": sum(int(a.size) // (a.shape[0] * a.shape[1])
                                       for a in jax.tree.leaves(state["context"]))})
    jitted_step = {"dm": dm.step, "mtt": mtt.step, "frepo": frepo.step}[args.method]
    t = _timed(jitted_step, (spec,), lambda r: (state, jax.random.fold_in(key, r), data),
               args.repeats, args.compile_only)
    result.update({"sec_per_iter": round(t["median"], 4), "implied": False,
                   "compile_sec": round(t["compile"], 2),
                   "first_run_sec": round(t["first_run"], 2), "memory": t["memory"]})
  elif args.full:  # a DC/DSA iteration is driven from Python: first call minus median
    times = []
    for r in range(args.repeats + 1):
      start = time.perf_counter()
      jax.block_until_ready(condenser.step(spec, state, jax.random.fold_in(key, r), data))
      times.append(time.perf_counter() - start)
    median = statistics.median(times[1:])
    result.update({"sec_per_iter": round(median, 4), "implied": False,
                   "compile_and_first_run_extra_sec": round(times[0] - median, 2)})
  else:
    variables = dc.init_network(net, key, px)
    labels = jnp.repeat(jnp.arange(NUM_CLASSES, dtype=jnp.int32), args.ipc)
    steps = -(-images.shape[0] // cfg.batch_train)
    match = _timed(dc.match_step, (net, cfg, NUM_CLASSES, cfg.batch_real), lambda r: (
        images, opt_state, variables, jax.random.fold_in(key, r), px, py, None), args.repeats)
    inner = _timed(dc.inner_epoch, (net, cfg, steps), lambda r: (
        variables, images, labels, jax.random.fold_in(key, r)), args.repeats)
    full = cfg.outer_loop * match["median"] + (cfg.outer_loop - 1) * cfg.inner_loop * inner[
        "median"]
    result.update({"sec_per_iter": round(full, 3), "implied": True,
                   "sec_per_match_step": round(match["median"], 4),
                   "sec_per_inner_epoch": round(inner["median"], 4),
                   "outer_loop": cfg.outer_loop, "inner_loop": cfg.inner_loop,
                   "compile_sec": round(match["compile"] + inner["compile"], 2),
                   "match_step_compile_sec": round(match["compile"], 2),
                   "match_step_first_run_sec": round(match["first_run"], 2),
                   "note": "sec_per_iter = outer_loop * match_step + (outer_loop - 1) * "
                           "inner_loop * inner_epoch, each timed as a median"})
  result["machine"] = io.machine()
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
