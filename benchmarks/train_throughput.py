"""Training throughput of the engine on the reference shapes; prints one JSON object.

    python benchmarks/train_throughput.py [--models 16] [--explore]

Shapes: ConvNet width 128, depth 3, instance norm, 32x32x3 images, 10 classes, batch 256.
* images_per_sec_single: one model through ``dcjax.train.train`` (the engine's default
  strategy and micro-batching for this backend).
* images_per_sec_many: ``--models`` models through ``train_many`` (same work per model).
* images_per_sec_loop_baseline: a plain Python loop over one straightforwardly jitted Flax
  step per model (full batch, native conv, optax SGD), same images and steps.
* images_per_sec_loop_same_step: a Python loop over the engine's own jitted step per model,
  i.e. ``train_many`` minus its bookkeeping.
``--explore`` adds the throughput of one step for each conv lowering x micro-batch size.
Timings exclude compilation (each timed call is preceded by an identical warm-up call).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dcjax import io  # noqa: E402
from dcjax.nets import get_net  # noqa: E402
from dcjax.train import TrainConfig, train, train_many  # noqa: E402
from dcjax.train import engine  # noqa: E402

IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10


def _pool(n: int):
  x = jax.random.normal(jax.random.key(0), (n, *IMAGE_SHAPE))
  y = jnp.arange(n, dtype=jnp.int32) % NUM_CLASSES
  return x, y


def _timed(fn):
  jax.block_until_ready(fn())  # warm-up: compile and fill caches
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def plain_step_fn(net, tx):
  """A straightforward jitted Flax training step: what a first JAX port would write."""

  @jax.jit
  def step(params, opt_state, xb, yb):
    def loss(p):
      return optax.softmax_cross_entropy_with_integer_labels(
          net.apply({"params": p}, xb, train=True), yb).mean()
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step


def loop_baseline(net, cfg, x, y, models: int, steps: int) -> float:
  tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.sgd(cfg.lr, cfg.momentum))
  step = plain_step_fn(net, tx)
  b = cfg.batch_size

  def run():
    out = []
    for m in range(models):
      params = net.init(jax.random.key(m), x[:1])["params"]
      opt_state = tx.init(params)
      for s in range(steps):
        sl = slice((s * b) % len(x), (s * b) % len(x) + b)
        params, opt_state = step(params, opt_state, x[sl], y[sl])
      out.append(params)
    return out

  return _timed(run)


def loop_same_step(net, cfg, x, y, models: int) -> float:
  masks = np.ones((models, len(x)), bool)
  _, _, masks, weights, plan = engine._prepare(net, x, y, cfg, masks, None, models)  # pylint: disable=protected-access

  def run():
    out = []
    for m in range(models):
      out.append(engine._train_one(  # pylint: disable=protected-access
          plan, jax.random.key(m), x, y, masks[m], weights[m], "loop"))
    return out

  return _timed(run)


def explore(net_name: str, batch: int) -> dict[str, float]:
  x, y = _pool(batch)
  results = {}
  for impl in ("xla", "im2col"):
    net = get_net(net_name, NUM_CLASSES, conv_impl=impl)
    for mb in (None, 128, 64, 32):
      cfg = TrainConfig(epochs=3, batch_size=batch, microbatch=mb, strategy="loop")
      seconds = _timed(lambda: train(jax.random.key(0), net, x, y, cfg))
      results[f"{impl}_microbatch_{mb or batch}"] = round(3 * batch / seconds, 1)
  return results


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", type=int, default=16, help="models for the many-models figure")
  parser.add_argument("--steps", type=int, default=2, help="training steps per model")
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--explore", action="store_true", help="also time each lowering/microbatch")
  args = parser.parse_args(argv)

  b, steps, models = args.batch_size, args.steps, args.models
  x, y = _pool(b * steps)
  net = get_net("ConvNet", NUM_CLASSES)
  cfg = TrainConfig(epochs=1, batch_size=b)
  single = _timed(lambda: train(jax.random.key(0), net, x, y, cfg))
  keys = jax.random.split(jax.random.key(1), models)
  many = _timed(lambda: train_many(keys, net, x, y, cfg))
  baseline = loop_baseline(net, cfg, x, y, models, steps)
  same_step = loop_same_step(net, cfg, x, y, models)
  images = b * steps
  resolved = engine._resolve_microbatch(cfg, False)  # pylint: disable=protected-access
  result = {
      "images_per_sec_single": round(images / single, 1),
      "images_per_sec_many": round(models * images / many, 1),
      "images_per_sec_loop_baseline": round(models * images / baseline, 1),
      "images_per_sec_loop_same_step": round(models * images / same_step, 1),
      "many_over_baseline": round(baseline / many, 3),
      "backend": jax.default_backend(),
      "strategy": engine.resolve_strategy(cfg),
      "microbatch": resolved,
      "models": models, "steps_per_model": steps, "batch_size": b,
      "image_shape": list(IMAGE_SHAPE), "net": "ConvNet (width 128, depth 3, instancenorm)",
      "machine": io.machine(),  # with XLA_FLAGS
  }
  if args.explore:
    result["images_per_sec_by_variant"] = explore("ConvNet", b)
  print(json.dumps(result, indent=2))
  return result


if __name__ == "__main__":
  main()
