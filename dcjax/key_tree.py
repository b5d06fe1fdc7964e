"""The key tree: how every random draw of dcjax derives from one seed.

Every function that draws takes a key; the keys themselves are derived here, so that one file
shows the whole tree (study -> run -> stage -> step -> purpose):

    key(seed)
    ├─ split 4 -> pool (the pool's subset), keep (the masks), runs, theory   audit.study
    ├─ purpose(key, CANARY)                 the planted canaries                audit.study
    ├─ purpose(key, BUDGET)                 the shadow-budget curve's draws     audit.study
    │  └─ budget_draw(., k, t)              target t's k references             mia.budget
    └─ runs
       └─ run(runs, r)                      run r, the same for every recipe  runs.pipeline
          ├─ stage(run, TRAINING_SET)       the recipe's training set
          │  └─ split 2 -> init, iterations (``condensation_keys``)       condense.run_setup
          │     ├─ init                     the initial images (init_only reuses it)
          │     ├─ purpose(init, STATE)     random parts of the optimiser state (FRePo's pool)
          │     ├─ purpose(init, SETUP)     a per-run setup (MTT's experts)
          │     │  └─ step(., j)            expert j                           condense.mtt
          │     └─ step(iterations, i)      condensation iteration i
          │        └─ (inside a step)       split by purpose; DC/DSA's outer and inner steps
          │                                 are step(., o) / step(., s) below it, and
          │                                 purpose(outer, BATCH_STATS) its BatchNorm batch
          └─ stage(run, TRAINING)           the network trained on it
             └─ split 3 -> init, order, augment (``training_keys``)         train.engine
                ├─ step(order, epoch)       the epoch's shuffle
                ├─ step(order, step)        the step's Poisson batch
                ├─ step(augment, step)      the step's DSA augmentation
                └─ step(purpose(augment, NOISE), step)   the step's DP-SGD noise

``fold_in`` with a purpose constant, not a further ``split``, adds a branch without moving
the keys of the branches that existed before it (a new purpose leaves old results unchanged).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# stages of a run
TRAINING_SET = 0
TRAINING = 1
# purposes (fold_in constants; spelled in hex so that they do not collide with step numbers)
BATCH_STATS = 1  # under a DC/DSA outer step: the real batch that sets BatchNorm statistics
CANARY = 0xCA7A
SETUP = 0x5E70
STATE = 0x57A7
NOISE = 0x6E6F6973
BUDGET = 0xB0D6


def run(key: jax.Array, r: int) -> jax.Array:
  """Run r's key under the study's runs key."""
  return jax.random.fold_in(key, r)


def runs(key: jax.Array, num_runs: int) -> jax.Array:
  """(num_runs,) keys: ``run(key, r)`` for every run."""
  return jnp.stack([run(key, r) for r in range(num_runs)])


def stage(run_key: jax.Array, which: int) -> jax.Array:
  """A stage's key of a run (TRAINING_SET, TRAINING)."""
  return jax.random.fold_in(run_key, which)


def step(key: jax.Array, i) -> jax.Array:
  """The key of iteration, epoch or step ``i`` (an int or a traced int) under ``key``."""
  return jax.random.fold_in(key, i)


def purpose(key: jax.Array, which: int) -> jax.Array:
  """A named branch of ``key`` (CANARY, SETUP, STATE, NOISE, BATCH_STATS)."""
  return jax.random.fold_in(key, which)


def budget_draw(key: jax.Array, k: int, target: int) -> jax.Array:
  """The draw of target run ``target``'s ``k`` references under the budget key."""
  return jax.random.fold_in(jax.random.fold_in(key, k), target)


def condensation_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(init key, iterations key) of a condensation run."""
  k_init, k_iterations = jax.random.split(key)
  return k_init, k_iterations


def training_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(init, order, augment) keys of one network's training."""
  k_init, k_order, k_augment = jax.random.split(key, 3)
  return k_init, k_order, k_augment
