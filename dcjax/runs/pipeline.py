"""Runs: recipe -> training set -> trained network -> logits of every pool example.

The target, every shadow run and every baseline go through the same code. ``run`` is one run;
``run_many`` stacks M runs (training through ``train_many``: a loop on CPU, vmap on GPU/TPU,
with the M training sets concatenated into one array and selected by block masks so that the
shapes stay static); ``run_recipe`` is ``run_many`` with its stages under
``stage_dir/<recipe>/`` (``dcjax.checkpoint.Stage``), so that an interrupted job resumes:

    trainsets/run_<r>/   one tree per run (images, labels, init_indices)
    params/              the stacked parameters of all runs
    logits/              (M, V, N, K) pool logits under the query views, (M, T, K) test logits
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dcjax import checks, key_tree
from dcjax.augment import translate
from dcjax.checkpoint import Stage, array_digest, key_digest
from dcjax.data.dataset import Dataset
from dcjax.data.facts import is_digit_like
from dcjax.nets import get_net
from dcjax.nets.layers import INITS
from dcjax.runs.recipes import Recipe, TrainingSet
from dcjax.train import TrainConfig, accuracy, predict_many, train_many


def query_views(dataset_name: str) -> tuple[str, ...]:
  """Identity and mirror for natural images; identity and 1-px shifts for digits."""
  if is_digit_like(dataset_name):
    return ("identity", "shift_up", "shift_down", "shift_left", "shift_right")
  return ("identity", "mirror")


def apply_view(x: jax.Array, view: str) -> jax.Array:
  n = x.shape[0]
  shifts = {"shift_up": (-1, 0), "shift_down": (1, 0), "shift_left": (0, -1),
            "shift_right": (0, 1)}
  if view == "identity":
    return x
  if view == "mirror":
    return x[:, :, ::-1, :]
  if view in shifts:
    dy, dx = shifts[view]
    return translate(x, jnp.full((n,), dy), jnp.full((n,), dx))
  raise ValueError(f"Unknown query view {view!r}.")


def run_keys(key: jax.Array, num_runs: int) -> jax.Array:
  """One key per run, the same for every recipe (so init_only and condense pair up)."""
  return key_tree.runs(key, num_runs)


@dataclasses.dataclass(frozen=True)
class RunsConfig:
  """How each run's network is built, trained (before the recipe's own changes) and queried.

  init_scheme: "torch" (the reference code's PyTorch default initialisation) or "flax".
  """

  net: str = "ConvNet"
  train: TrainConfig = TrainConfig()
  init_scheme: str = "torch"

  def __post_init__(self):
    checks.field_one_of(self, "init_scheme", INITS)


@dataclasses.dataclass(frozen=True)
class RunResults:
  """M runs of one recipe. view_logits (M, V, N, K); test_logits (M, T, K) (the identity view
  of test_view_logits (M, V, T, K)) and test_accuracy (M,) (None without a test set); keep (M, N); init_indices (M, n) (n = 0 for recipes without
  init images); train_images (M, S, H, W, C) (None for recipes that train on the pool);
  variables: the stacked network variables."""

  view_logits: np.ndarray
  keep: np.ndarray
  init_indices: np.ndarray
  train_images: np.ndarray | None
  variables: Any
  test_logits: np.ndarray | None = None
  test_accuracy: np.ndarray | None = None
  test_view_logits: np.ndarray | None = None


def recipe_fingerprint(recipe: Recipe, pool: Dataset, keep, key, cfg: RunsConfig) -> dict:
  return {"recipe": str(recipe), "recipe_fields": recipe, "runs_config": cfg,
          "key": key_digest(key), "keep": array_digest(keep),
          "pool": array_digest(pool.images, pool.labels), "dataset": pool.name}


def _cached(stage: Stage | None, compute, recompute: bool, derived: bool = False):
  """The stage's tree, else ``compute()`` saved. ``derived``: the stage is a function of
  earlier (checked) stages, so one of another fingerprint is redone instead of refused."""
  return compute() if stage is None else stage.load_or_compute(compute, recompute or derived)


def _training_sets(keys, pool, keep, recipe: Recipe, stage, stage_root, recompute: bool,
                   progress: bool, writer=None) -> list[TrainingSet]:
  """Every run's training set from stage(keys[r], TRAINING_SET): finished ones from their stages, the
  others built together (``recipe.build_training_sets``) and saved run by run."""
  stages = [stage("trainsets", f"run_{r}", run=r) for r in range(keep.shape[0])]
  loaded = [None if s is None else s.load("redo" if recompute else "refuse") for s in stages]
  missing = [r for r, item in enumerate(loaded) if item is None]
  built = {}
  if missing:
    # (with several processes each run's set is a stage of its own, resumed run by run; the
    # step checkpoints of Orbax's multi-host writer would need every process at every save)
    in_progress = None if stage_root is None or jax.process_count() > 1 else os.path.join(
        stage_root, "trainsets", "in_progress")
    sets = recipe.build_training_sets(
        jnp.stack([key_tree.stage(keys[r], key_tree.TRAINING_SET) for r in missing]), pool,
        keep[missing], progress=progress, checkpoint_dir=in_progress, recompute=recompute,
        writer=writer)
    for r, item in zip(missing, sets):
      if stages[r] is not None:
        stages[r].save(item.as_tree())
      built[r] = item
    if in_progress is not None and os.path.isdir(in_progress):
      shutil.rmtree(in_progress)  # every run's set is its own stage now
  return [built[r] if item is None else TrainingSet.from_tree(item.tree)
          for r, item in enumerate(loaded)]


def run_many(keys: jax.Array, pool: Dataset, keep: np.ndarray, recipe: Recipe,
             cfg: RunsConfig = RunsConfig(), test_set: Dataset | None = None,
             stage_root: str | None = None, fingerprint: dict | None = None,
             recompute: bool = False, progress: bool = False, writer=None,
             plan_keep: np.ndarray | None = None) -> RunResults:
  """Runs r = 0..M-1 with keys[r] (M,) and keep[r] (M, N): training set from the run key's
  TRAINING_SET stage, training from its TRAINING stage (``dcjax.key_tree``). ``plan_keep``:
  the keep masks of the whole study when these runs are a part of it (the recipe's training
  config and guarantee are planned for all runs). With ``stage_root``, each stage is loaded if it matches
  ``fingerprint`` and saved when computed."""
  keep = np.asarray(keep, bool)
  num_runs = keep.shape[0]
  recipe.check_pool(pool, keep)  # before any stage directory is made
  if test_set is not None:
    pool.check_compatible(test_set)

  def stage(*parts, **extra):
    if stage_root is None:
      return None
    return Stage(os.path.join(stage_root, *parts), {**(fingerprint or {}), **extra})

  trainsets = [] if recipe.trains_on_pool else _training_sets(
      keys, pool, keep, recipe, stage, stage_root, recompute, progress, writer)
  net = get_net(cfg.net, pool.num_classes, init_scheme=cfg.init_scheme)

  def train():
    train_keys = jnp.stack([key_tree.stage(k, key_tree.TRAINING) for k in keys])
    if recipe.trains_on_pool:
      x, y, masks = pool.images, pool.labels, keep
    else:
      x = np.concatenate([t.images for t in trainsets])
      y = np.concatenate([t.labels for t in trainsets])
      masks = np.kron(np.eye(num_runs, dtype=bool), np.ones((1, len(trainsets[0].labels)), bool))
    train_cfg, _ = recipe.plan(cfg.train, pool, keep if plan_keep is None else plan_keep)
    return train_many(train_keys, net, x, y, train_cfg,
                      masks=masks, progress=progress)

  variables = _cached(stage("params"), train, recompute)

  def query():  # (M, V, n, K) logits of the pool and of RMIA's population, the test split
    sets = {"view_logits": pool, "test_view_logits": test_set}
    return {name: np.stack([np.asarray(predict_many(net, variables, apply_view(
        jnp.asarray(d.images), v))) for v in query_views(pool.name)], axis=1)
            for name, d in sets.items() if d is not None}

  # The logits derive from the parameters (a checked stage) and the data alone, so a logits
  # stage of another fingerprint (the pool-only query of before RMIA) is redone, not refused.
  logits = _cached(stage("logits", queries="pool and test views"), query, recompute,
                   derived=True)
  test_view_logits = None if test_set is None else np.asarray(logits["test_view_logits"])
  test_logits = None if test_set is None else test_view_logits[:, 0]  # the identity view
  return RunResults(
      view_logits=np.asarray(logits["view_logits"]), keep=keep,
      init_indices=(np.stack([t.init_indices for t in trainsets]) if recipe.has_init_images
                    else np.full((num_runs, 0), -1, np.int32)),
      train_images=np.stack([t.images for t in trainsets]) if trainsets else None,
      variables=variables, test_logits=test_logits, test_view_logits=test_view_logits,
      test_accuracy=None if test_set is None else np.asarray(
          accuracy(jnp.asarray(test_logits), test_set.labels)))


def run(key: jax.Array, pool: Dataset, keep_mask: np.ndarray, recipe: Recipe,
        cfg: RunsConfig = RunsConfig(), test_set: Dataset | None = None) -> RunResults:
  """One run (key, keep_mask (N,)) as a stack of one: the same computation as run r of
  ``run_many`` given keys[r] and keep[r]."""
  return run_many(jnp.stack([key]), pool, np.asarray(keep_mask, bool)[None], recipe, cfg,
                  test_set)


def run_recipe(stage_dir: str, key: jax.Array, pool: Dataset, test_set: Dataset,
               keep: np.ndarray, recipe: Recipe, cfg: RunsConfig = RunsConfig(),
               recompute: bool = False, progress: bool = False, writer=None) -> RunResults:
  """All M runs of one recipe (run r has key ``key_tree.run(key, r)``), resumable under
  ``stage_dir/<recipe>/``; ``writer``: a ``dcjax.logs.MetricsWriter`` for its condensation
  losses."""
  keep = np.asarray(keep, bool)
  return run_many(run_keys(key, keep.shape[0]), pool, keep, recipe, cfg, test_set,
                  stage_root=os.path.join(os.path.abspath(stage_dir), str(recipe)),
                  fingerprint=recipe_fingerprint(recipe, pool, keep, key, cfg),
                  recompute=recompute, progress=progress, writer=writer)


def run_recipe_per_run(stage_dir: str, key: jax.Array, pool: Dataset, test_set: Dataset,
                       keep: np.ndarray, recipe: Recipe, runs, cfg: RunsConfig = RunsConfig(),
                       recompute: bool = False, progress: bool = False, writer=None
                       ) -> list[RunResults]:
  """Runs ``runs`` (indices into keep's M runs) of one recipe, each with its own stages under
  ``stage_dir/<recipe>/run_<r>/`` (resumable run by run: what several hosts share), planned
  for all M runs. Run r has the key and the result it has in ``run_recipe``."""
  keep = np.asarray(keep, bool)
  keys = run_keys(key, keep.shape[0])
  root = os.path.join(os.path.abspath(stage_dir), str(recipe))
  fingerprint = recipe_fingerprint(recipe, pool, keep, key, cfg)
  return [run_many(keys[r:r + 1], pool, keep[r:r + 1], recipe, cfg, test_set,
                   stage_root=os.path.join(root, f"run_{r}"),
                   fingerprint={**fingerprint, "run": r}, recompute=recompute,
                   progress=progress, writer=writer, plan_keep=keep)
          for r in runs]


def merge_runs(parts: list[RunResults]) -> RunResults:
  """Single runs (in run order) as one RunResults of all of them."""
  cat = lambda get: None if get(parts[0]) is None else np.concatenate([get(p) for p in parts])
  return RunResults(
      view_logits=cat(lambda p: p.view_logits), keep=cat(lambda p: p.keep),
      init_indices=cat(lambda p: p.init_indices), train_images=cat(lambda p: p.train_images),
      variables=jax.tree.map(lambda *xs: np.concatenate(xs), *[p.variables for p in parts]),
      test_logits=cat(lambda p: p.test_logits), test_accuracy=cat(lambda p: p.test_accuracy),
      test_view_logits=cat(lambda p: p.test_view_logits))
