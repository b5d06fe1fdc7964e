"""Runs over a pool: recipe -> training set -> trained network -> logits of every pool example.

Every recipe goes through the same function and is attacked by the same code. Stages are
written under ``stage_dir/<recipe>/`` with their fingerprint; a stage whose artefact exists and
matches is loaded instead of recomputed, so an interrupted job resumes where it stopped:

    trainsets/run_<r>/   one Orbax tree per run (images, labels, init_indices) + stage.json
    params/              the stacked parameters of all runs + stage.json
    logits/              (M, V, N, K) pool logits under the query views, (M, T, K) test logits

The run axis is what scales: training goes through ``train_many`` (a loop on CPU, vmap on
GPU/TPU), with the M training sets of a recipe concatenated into one pool and selected by
block masks so that the shapes stay static.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dcjax import checkpoint as ckpt
from dcjax import workdir
from dcjax.augment import translate
from dcjax.data.dataset import Dataset
from dcjax.io import code_version, write_json_atomic
from dcjax.mia.recipes import Recipe, build_training_set, check_pool
from dcjax.nets import get_net
from dcjax.train import TrainConfig, accuracy, predict_many, train_many

DIGIT_DATASETS = ("digits", "mnist", "svhn")


def query_views(dataset_name: str) -> tuple[str, ...]:
  """Identity and mirror for natural images; identity and 1-px shifts for digits."""
  if dataset_name in DIGIT_DATASETS:
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
  return jnp.stack([jax.random.fold_in(key, r) for r in range(num_runs)])


class _Stage:
  """A directory holding one artefact plus stage.json (its fingerprint), written last."""

  def __init__(self, path: str, fingerprint: dict):
    self.path = os.path.abspath(path)
    self.fingerprint = ckpt.canonical(fingerprint)

  @property
  def marker(self) -> str:
    return os.path.join(self.path, "stage.json")

  def load(self, recompute: bool) -> Any | None:
    if not os.path.exists(self.marker):
      return None
    stored = workdir.read_json(self.marker, "the stage", keys=("fingerprint",))
    if stored["fingerprint"] != self.fingerprint:
      if recompute:
        os.remove(self.marker)
        return None
      raise ckpt.ConfigMismatchError(
          f"{self.path} was computed with another configuration; pass recompute=True "
          "(--recompute) to redo it, or use another stage directory.")
    return ckpt.load_tree(os.path.join(self.path, "tree"))

  def save(self, tree: Any) -> None:
    if os.path.exists(self.marker):
      os.remove(self.marker)
    ckpt.save_tree(os.path.join(self.path, "tree"), tree)
    write_json_atomic(self.marker, {"fingerprint": self.fingerprint,
                                    "code_version": code_version()})


@dataclasses.dataclass(frozen=True)
class RunsConfig:
  """How each run's network is trained and queried."""

  net: str = "ConvNet"
  train: TrainConfig = TrainConfig()


def recipe_fingerprint(recipe: Recipe, pool: Dataset, keep, key, cfg: RunsConfig) -> dict:
  return {"recipe": recipe.name, "method_config": recipe.method_config, "runs_config": cfg,
          "key": ckpt.key_digest(key), "keep": ckpt.array_digest(keep),
          "pool": ckpt.array_digest(pool.images, pool.labels), "dataset": pool.name}


def run_recipe(stage_dir: str, key: jax.Array, pool: Dataset, test_set: Dataset,
               keep: np.ndarray, recipe: Recipe, cfg: RunsConfig = RunsConfig(),
               recompute: bool = False, progress: bool = False) -> dict[str, np.ndarray]:
  """All M runs of one recipe. Returns {"view_logits" (M, V, N, K), "test_accuracy" (M,),
  "init_indices" (M, n_init), "keep" (M, N), "train_images" (M, S, H, W, C) (the training set
  each run was given; None for `real`, which trains on the pool under ``keep``)}."""
  keep = np.asarray(keep, bool)
  check_pool(recipe, pool, keep)
  pool.check_compatible(test_set)
  num_runs = keep.shape[0]
  base = recipe_fingerprint(recipe, pool, keep, key, cfg)
  root = os.path.join(os.path.abspath(stage_dir), recipe.name)
  keys = run_keys(key, num_runs)

  trainsets = []  # `real` trains on the pool itself under the keep masks: nothing to build
  for r in tqdm(range(num_runs if recipe.kind != "real" else 0),
                desc=f"{recipe.name}: training sets", disable=not progress):
    stage = _Stage(os.path.join(root, "trainsets", f"run_{r}"), {**base, "run": r})
    item = stage.load(recompute)
    if item is None:
      item = build_training_set(jax.random.fold_in(keys[r], 0), pool, keep[r], recipe)
      stage.save(item)
    trainsets.append(item)

  net = get_net(cfg.net, pool.num_classes)
  stage = _Stage(os.path.join(root, "params"), base)
  params = stage.load(recompute)
  if params is None:
    train_keys = jnp.stack([jax.random.fold_in(k, 1) for k in keys])
    if recipe.kind == "real":
      x, y, masks = pool.images, pool.labels, keep
    else:
      x = np.concatenate([t["images"] for t in trainsets])
      y = np.concatenate([t["labels"] for t in trainsets])
      n = len(trainsets[0]["labels"])
      masks = np.kron(np.eye(num_runs, dtype=bool), np.ones((1, n), bool))
    params = train_many(train_keys, net, x, y, cfg.train, masks=masks, progress=progress)
    stage.save(params)

  stage = _Stage(os.path.join(root, "logits"), base)
  logits = stage.load(recompute)
  if logits is None:
    views = query_views(pool.name)
    pool_x = jnp.asarray(pool.images)
    view_logits = np.stack([np.asarray(predict_many(net, params, apply_view(pool_x, v)))
                            for v in views], axis=1)
    logits = {"view_logits": view_logits,
              "test_logits": np.asarray(predict_many(net, params, test_set.images))}
    stage.save(logits)
  test_acc = np.asarray(accuracy(jnp.asarray(logits["test_logits"]), test_set.labels))
  init = np.stack([t["init_indices"] for t in trainsets]) if recipe.has_init_images else \
      np.full((num_runs, 0), -1, np.int32)
  images = np.stack([t["images"] for t in trainsets]) if trainsets else None
  return {"view_logits": np.asarray(logits["view_logits"]), "test_accuracy": test_acc,
          "init_indices": init, "keep": keep, "train_images": images}


DEFAULT_ATTACKS = ("loss", "lira_online", "lira_online_fixed", "lira_offline",
                   "lira_offline_fixed")


def attack_runs(result: dict[str, np.ndarray], labels, attacks=DEFAULT_ATTACKS,
                fprs=None, curves: dict | None = None) -> dict[str, dict]:
  """Scores, leave-one-out attacks and stratified metrics of one recipe's runs.

  Returns {attack: {stratum: metrics or None}}; fills ``curves[attack][stratum] = (fpr, tpr)``
  when ``curves`` is a dict.
  """
  from dcjax.mia import attacks as attacks_lib  # pylint: disable=import-outside-toplevel
  from dcjax.mia import metrics as metrics_lib  # pylint: disable=import-outside-toplevel
  from dcjax.mia.scores import view_averaged_scores  # pylint: disable=import-outside-toplevel

  phi = view_averaged_scores(result["view_logits"], labels)
  keep = result["keep"]
  is_init = metrics_lib.init_masks(result["init_indices"], keep.shape[1])
  kwargs = {} if fprs is None else {"fprs": fprs}
  out = {}
  for name in attacks:
    attack_curves = {} if curves is not None else None
    out[name] = metrics_lib.stratified_metrics(attacks_lib.leave_one_out(phi, keep, name), keep,
                                               is_init, curves=attack_curves, **kwargs)
    if curves is not None:
      curves[name] = attack_curves
  return out
