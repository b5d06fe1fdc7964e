"""The DP mechanisms of dcjax, each written once: Poisson sampling with a fixed capacity,
per-example clipping and the Gaussian noisy sum. DP-SGD (``dcjax.train.engine``) and the DP
condensers (``dcjax.condense.dpdc``) are built from them, so what the accountant assumes is
implemented in one place.

What the accountant (``dcjax.privacy.accounting.SampledGaussian``) assumes of one composition:
every example of the private set is in the sample independently with one rate q fixed before
the data is seen; each sampled example contributes a value of L2 norm at most ``clip``; the
release is the sum plus N(0, (sigma * clip)^2) on every coordinate, and whatever is done with
it afterwards uses only public constants (a normaliser that depends on the data, such as the
number of private examples, is itself a release the accountant does not cover).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# Slots of a Poisson sample above its expected size, in standard deviations of that size: more
# are drawn about once in 3.5 million samples; then a uniformly random subset of ``capacity``
# is kept, which dp-accounting's truncated Poisson event accounts for.
CAPACITY_MARGIN = 5.0


def poisson_capacity(expected: float, largest: int) -> int:
  """Static slots of a Poisson sample of expected size ``expected``: the expectation plus 5 of
  its standard deviations, never more than ``largest`` (the largest set sampled from)."""
  return int(max(1, min(largest, math.ceil(expected + CAPACITY_MARGIN * math.sqrt(expected)))))


def design_in_probability(keep, what: str, declare: str) -> float:
  """The IN probability of every example under the keep-mask design, 1/2 for the balanced
  design (every example IN for exactly half of the runs: ``dcjax.mia.balanced_keep_masks``).
  It is public: fixed before any mask is drawn, the same for neighbouring IN sets. Masks of
  another design do not reveal it: a ValueError names ``what`` could not be derived and how to
  ``declare`` it."""
  keep = np.atleast_2d(np.asarray(keep, bool))
  runs = keep.shape[0]
  if runs < 2 or runs % 2 or np.any(keep.sum(0) != runs // 2):
    raise ValueError(
        f"{what} cannot be read off these {runs} keep mask(s): only the balanced design "
        "(every example IN for exactly half of the runs) fixes it before the masks are drawn. "
        f"{declare}")
  return 0.5


def poisson_sample(key: jax.Array, eligible: jax.Array, rate: float, capacity: int
                   ) -> tuple[jax.Array, jax.Array]:
  """One Poisson sample of the eligible examples, in ``capacity`` static slots.

  Every example draws one uniform u from ``key``; an eligible one with u < rate is sampled.
  When more than ``capacity`` are sampled, those of the smallest u are kept (a uniformly
  random subset). ``rate`` must be public (fixed before the data is seen).

  Args:
    key: PRNG key.
    eligible: (..., N) bool, e.g. (N,) the IN examples of a run, or (C, N) those of each class
      (rows sharing one draw per example, so disjoint rows are independent samples).
    rate: inclusion probability q in [0, 1].
    capacity: slots per row, <= N.

  Returns:
    indices (..., capacity) int32 into the N examples, sampled first in increasing u, and
    valid (..., capacity) bool (False: an empty slot; its index is of no meaning).
  """
  u = jax.random.uniform(key, eligible.shape[-1:])
  chosen = eligible & (u < rate)
  score = jnp.where(chosen, u, 2.0)  # (..., N); 2.0 sorts after every draw
  neg, idx = jax.lax.top_k(-score, capacity)
  return idx, -neg < 2.0


def clip_per_example(tree, clip: float, example_axes: int = 1):
  """Every example's value scaled to L2 norm at most ``clip`` (inf: unchanged).

  tree: a pytree whose leaves share ``example_axes`` leading axes (the examples); an example's
  norm is taken over all of its coordinates in every leaf. Returns (clipped tree, norms) with
  norms of the leading shape."""
  leaves = jax.tree.leaves(tree)
  lead = leaves[0].shape[:example_axes]
  norms = jnp.sqrt(sum(jnp.sum(jnp.reshape(x * x, (*lead, -1)), axis=-1) for x in leaves))
  factor = jnp.minimum(1.0, clip / jnp.maximum(norms, 1e-12))
  scale = lambda x: x * jnp.reshape(factor, lead + (1,) * (x.ndim - example_axes)).astype(x.dtype)
  return jax.tree.map(scale, tree), norms


def noisy_sum(key: jax.Array, tree, noise_std: float, example_axes: int = 1):
  """The sum over the leading ``example_axes`` axes of every leaf, plus independent Gaussian
  noise of std ``noise_std`` on every coordinate of the sum (one key per leaf, split from
  ``key``; none added when ``noise_std`` is 0).

  The Gaussian mechanism with L2 sensitivity ``clip`` when every example's contribution was
  clipped to ``clip`` (``clip_per_example``) and a missing example contributes zeros."""
  axes = tuple(range(example_axes))
  summed = jax.tree.map(lambda x: jnp.sum(x, axis=axes), tree)
  if noise_std == 0:
    return summed
  leaves, treedef = jax.tree.flatten(summed)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [x + noise_std * jax.random.normal(k, x.shape, x.dtype)
                                      for x, k in zip(leaves, keys)])
