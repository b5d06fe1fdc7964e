"""One loop-or-scan driver for every iterated computation of dcjax (training steps and epochs,
condensation iterations, DC/DSA's outer and inner loops): the body and its key schedule are
written once, and the strategy picks how it runs.

* "loop": a Python loop; each index is a Python int and each body call dispatches compiled
  pieces. The fast path on CPU, where XLA runs a convolution's gradient inside ``lax.scan`` /
  ``while_loop`` ~40x slower than driven from Python (jax issue #12868).
* "scan": ``lax.scan`` over the indices (traceable, vmappable): the fast path on GPU/TPU, one
  compiled program.

Both return (carry, outputs stacked on a leading axis of ``length``), so callers are the same
under either strategy.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from dcjax import checks

STRATEGIES = ("loop", "scan")


def repeat(body: Callable[[Any, Any], tuple[Any, Any]], carry, length: int, strategy: str,
           start=0) -> tuple[Any, Any]:
  """``carry, out_i = body(carry, i)`` for i = start .. start + length - 1.

  start: an int ("loop"), or an int or a traced int ("scan"). Returns (carry, the outputs
  stacked on a leading axis of ``length``; None when the body returns None)."""
  checks.one_of(strategy, STRATEGIES, "loop strategy")
  if strategy == "scan":
    return jax.lax.scan(body, carry, start + jnp.arange(length))
  outs = []
  for i in range(start, start + length):
    carry, out = body(carry, i)
    outs.append(out)
  if not outs or outs[0] is None:
    return carry, None
  return carry, jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def default_strategy() -> str:
  """"loop" on CPU, "scan" on GPU/TPU."""
  return "loop" if jax.default_backend() == "cpu" else "scan"
