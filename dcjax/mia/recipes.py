"""Recipes: what a run's network is trained on, given the IN examples of that run.

    real                      all IN examples
    random_subset(ipc)        ipc random IN images per class (the naive baseline)
    init_only(ipc)            the real images condense(dm, ipc, real) would start from, as is
    condense(method,ipc,init) a condensed set (method dm|dc|dsa, init real|noise)
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import numpy as np

from dcjax.condense import common, condense, get_method, random_subset
from dcjax.condense.runner import split_run_key
from dcjax.data.dataset import Dataset

KINDS = ("real", "random_subset", "init_only", "condense")


@dataclasses.dataclass(frozen=True)
class Recipe:
  kind: str
  ipc: int | None = None
  method: str | None = None
  init: str | None = None
  method_config: Any = None  # the condenser's config (None: its reference preset)

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Unknown recipe {self.kind!r}; expected one of {list(KINDS)}.")
    if self.kind != "real" and (not isinstance(self.ipc, int) or self.ipc < 1):
      raise ValueError(f"Recipe {self.kind} needs a positive ipc, got {self.ipc!r}.")
    if self.kind == "condense":
      get_method(self.method)
      if self.init not in common.INITS:
        raise ValueError(f"condense recipe needs init in {list(common.INITS)}, got "
                         f"{self.init!r}.")

  @property
  def name(self) -> str:
    if self.kind == "real":
      return "real"
    if self.kind == "condense":
      return f"condense({self.method},{self.ipc},{self.init})"
    return f"{self.kind}({self.ipc})"

  @property
  def has_init_images(self) -> bool:
    return self.kind in ("random_subset", "init_only") or (
        self.kind == "condense" and self.init == "real")


_PATTERN = re.compile(r"^\s*(\w+)\s*(?:\(([^)]*)\))?\s*$")


def parse_recipe(text: str) -> Recipe:
  """'real', 'random_subset(10)', 'init_only(10)', 'condense(dm,10,real)' -> Recipe."""
  match = _PATTERN.match(text)
  if not match:
    raise ValueError(f"Cannot parse recipe {text!r}; expected e.g. 'real', 'random_subset(10)', "
                     "'init_only(10)' or 'condense(dm,10,real)'.")
  kind, args = match.group(1), [a.strip() for a in (match.group(2) or "").split(",") if a.strip()]
  if kind not in KINDS:
    raise ValueError(f"Unknown recipe {kind!r} in {text!r}; expected one of {list(KINDS)}.")
  try:
    if kind == "real" and not args:
      return Recipe("real")
    if kind in ("random_subset", "init_only") and len(args) == 1:
      return Recipe(kind, int(args[0]))
    if kind == "condense" and len(args) in (2, 3):
      init = args[2] if len(args) == 3 else get_method(args[0]).default_init
      return Recipe(kind, int(args[1]), args[0], init)
  except ValueError as err:
    raise ValueError(f"Bad recipe {text!r}: {err}") from err
  raise ValueError(f"Bad arguments for recipe {text!r}; expected 'real', '{kind}(ipc)' or "
                   "'condense(method,ipc,init)'.")


def check_pool(recipe: Recipe, pool: Dataset, keep: np.ndarray) -> None:
  """Every run must have ipc IN examples of every class. Raises before any work."""
  if recipe.kind == "real":
    return
  for r, mask in enumerate(np.asarray(keep, bool)):
    counts = pool.class_counts(mask)
    if counts.min() < recipe.ipc:
      raise ValueError(f"Pool too small for {recipe.name}: run {r} has only "
                       f"{int(counts.min())} IN examples of class {int(counts.argmin())}, "
                       f"needs ipc={recipe.ipc}.")


def build_training_set(key: jax.Array, pool: Dataset, keep: np.ndarray, recipe: Recipe,
                       progress: bool = False) -> dict[str, np.ndarray]:
  """One run's training set: {"images", "labels", "init_indices"} (-1: not a real image).

  For ``real`` the images are not copied: ``images`` is empty and the run trains on the pool
  under its keep mask.
  """
  if recipe.kind == "real":
    return {"images": np.zeros((0, *pool.image_shape), np.float32),
            "labels": np.zeros((0,), np.int32), "init_indices": np.zeros((0,), np.int32)}
  keep = np.asarray(keep, bool)
  if recipe.kind == "random_subset":
    syn = random_subset(key, pool, recipe.ipc, mask=keep)
  elif recipe.kind == "init_only":  # the very images condense() would start from with this key
    syn = random_subset(split_run_key(key)[0], pool, recipe.ipc, mask=keep)
  else:
    syn = condense(key, pool, recipe.method, recipe.ipc, recipe.init, mask=keep,
                   config=recipe.method_config, progress=progress)
  return {"images": np.asarray(syn.images), "labels": np.asarray(syn.labels),
          "init_indices": np.asarray(syn.init_indices)}
