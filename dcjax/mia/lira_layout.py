"""Runs in the directory layout of the LiRA reference code (Carlini et al. 2022; tensorflow/privacy,
research/mi_lira_2021), so that logits made by any tool can be attacked by dcjax and dcjax's runs
by any tool that reads that layout:

    DIR/y_train.npy                             (N,) int labels of the attacked examples
    DIR/experiment-<r>_<M>/keep.npy             (N,) bool: example i trained run r
    DIR/experiment-<r>_<M>/logits/<epoch>.npy   (N, 1, V, K) logits under V query views; the
                                                file with the largest epoch is read
  dcjax's additions, all optional on import:
    DIR/exclude.npy                             (N,) bool: scored, left out of the strata
                                                (canaries)
    DIR/y_population.npy                        (T,) labels of examples no run trained on
    DIR/experiment-<r>_<M>/population_logits.npy  (T, 1, V, K): RMIA's population
    DIR/experiment-<r>_<M>/init_indices.npy     (n,) pool indices of run r's init images
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

EXPERIMENT = re.compile(r"^experiment-(\d+)_(\d+)$")
EPOCH_FILE = re.compile(r"^(\d+)\.npy$")


@dataclasses.dataclass(frozen=True)
class LoadedRuns:
  """M runs read from a layout: view_logits (M, V, N, K), keep (M, N), labels (N,),
  init_indices (M, n) (n = 0 without), exclude (N,) bool or None, population view logits
  (M, V, T, K) and labels (T,) or None."""

  view_logits: np.ndarray
  keep: np.ndarray
  labels: np.ndarray
  init_indices: np.ndarray
  exclude: np.ndarray | None = None
  population_logits: np.ndarray | None = None
  population_labels: np.ndarray | None = None


def _to_layout(view_logits) -> np.ndarray:  # (V, N, K) -> (N, 1, V, K)
  return np.transpose(np.asarray(view_logits), (1, 0, 2))[:, None]


def export_runs(directory: str, view_logits, keep, labels, init_indices=None, exclude=None,
                population_logits=None, population_labels=None) -> list[str]:
  """Writes M runs (view_logits (M, V, N, K), keep (M, N), labels (N,); optionally
  init_indices (M, n), exclude (N,), population_logits (M, V, T, K) with population_labels
  (T,)) into ``directory``; returns the experiment folders written."""
  view_logits, keep = np.asarray(view_logits), np.asarray(keep, bool)
  runs = keep.shape[0]
  if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
    raise FileExistsError(f"{directory} exists and is not an empty folder; the runs are "
                          "exported into a new or empty one (nothing there was touched).")
  os.makedirs(directory, exist_ok=True)
  np.save(os.path.join(directory, "y_train.npy"), np.asarray(labels))
  if exclude is not None:
    np.save(os.path.join(directory, "exclude.npy"), np.asarray(exclude, bool))
  if population_logits is not None:
    np.save(os.path.join(directory, "y_population.npy"), np.asarray(population_labels))
  folders = []
  for r in range(runs):
    folder = os.path.join(directory, f"experiment-{r}_{runs}")
    os.makedirs(os.path.join(folder, "logits"), exist_ok=True)
    np.save(os.path.join(folder, "keep.npy"), keep[r])
    np.save(os.path.join(folder, "logits", f"{0:010d}.npy"), _to_layout(view_logits[r]))
    if init_indices is not None and np.asarray(init_indices).shape[1]:
      np.save(os.path.join(folder, "init_indices.npy"), np.asarray(init_indices)[r])
    if population_logits is not None:
      np.save(os.path.join(folder, "population_logits.npy"),
              _to_layout(np.asarray(population_logits)[r]))
    folders.append(folder)
  return folders


def _experiments(directory: str) -> list[str]:
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{directory} is not a directory of runs in the LiRA layout.")
  found = sorted(((int(m.group(1)), name) for name in os.listdir(directory)
                  if (m := EXPERIMENT.match(name)) and os.path.isdir(
                      os.path.join(directory, name))))
  if not found:
    raise FileNotFoundError(
        f"{directory} has no experiment-<r>_<M> folder (the LiRA reference layout: one folder "
        "per run with keep.npy and logits/<epoch>.npy).")
  return [os.path.join(directory, name) for _, name in found]


def _logits_file(folder: str) -> str:
  root = os.path.join(folder, "logits")
  epochs = sorted((int(m.group(1)), name) for name in (os.listdir(root) if os.path.isdir(root)
                                                         else []) if (m := EPOCH_FILE.match(name)))
  if not epochs:
    raise FileNotFoundError(f"{root} holds no <epoch>.npy logits file.")
  return os.path.join(root, epochs[-1][1])


def _from_layout(path: str, n: int | None, what: str) -> np.ndarray:
  x = np.load(path)
  if x.ndim != 4 or x.shape[1] != 1 or (n is not None and x.shape[0] != n):
    want = f"({n if n is not None else 'N'}, 1, V, K)"
    raise ValueError(f"{path}: {what} must have shape {want}, got {x.shape}.")
  return np.transpose(x[:, 0], (1, 0, 2))  # (V, N, K)


def _load(path: str, what: str) -> np.ndarray:
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing: {what}.")
  return np.load(path)


def import_runs(directory: str) -> LoadedRuns:
  """Reads the runs of ``directory`` (module docstring), checking every shape against the
  labels and the first run; errors name the file and what was expected."""
  labels = _load(os.path.join(directory, "y_train.npy"), "the (N,) labels of the examples")
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{directory}/y_train.npy must be (N,) integers, got {labels.dtype} "
                     f"{labels.shape}.")
  n = len(labels)
  folders = _experiments(directory)
  totals = {int(EXPERIMENT.match(os.path.basename(f)).group(2)) for f in folders}
  if totals != {len(folders)}:
    raise ValueError(f"{directory}: folder names say {sorted(totals)} runs in all but "
                     f"{len(folders)} experiment folders are there.")
  keeps, views, inits, pops = [], [], [], []
  for folder in folders:
    keep = _load(os.path.join(folder, "keep.npy"), "the run's (N,) bool membership")
    if keep.shape != (n,) or keep.dtype != bool:
      raise ValueError(f"{folder}/keep.npy must be ({n},) bool like y_train.npy, got "
                       f"{keep.dtype} {keep.shape}.")
    keeps.append(keep)
    views.append(_from_layout(_logits_file(folder), n, "logits"))
    init = os.path.join(folder, "init_indices.npy")
    inits.append(np.load(init) if os.path.exists(init) else np.zeros(0, np.int32))
    pop = os.path.join(folder, "population_logits.npy")
    pops.append(_from_layout(pop, None, "population logits") if os.path.exists(pop) else None)
  if len({v.shape for v in views}) > 1:
    raise ValueError(f"{directory}: the runs' logits differ in shape "
                     f"{sorted({v.shape for v in views})} (views, examples, classes).")
  if int(labels.max()) >= views[0].shape[-1]:
    raise ValueError(f"{directory}/y_train.npy has label {int(labels.max())} but the logits "
                     f"have {views[0].shape[-1]} classes.")
  if len({len(i) for i in inits}) > 1:
    raise ValueError(f"{directory}: init_indices.npy must have the same length in every run.")
  population, population_labels = None, None
  if any(p is not None for p in pops):
    if any(p is None for p in pops) or len({p.shape for p in pops}) > 1:
      raise ValueError(f"{directory}: population_logits.npy must be in every run, with one "
                       "shape.")
    population = np.stack(pops)
    population_labels = _load(os.path.join(directory, "y_population.npy"),
                              "the population's labels (population logits are present)")
    if population_labels.shape != (population.shape[2],):
      raise ValueError(f"{directory}/y_population.npy must be ({population.shape[2]},), got "
                       f"{population_labels.shape}.")
  exclude = None
  if os.path.exists(os.path.join(directory, "exclude.npy")):
    exclude = np.load(os.path.join(directory, "exclude.npy")).astype(bool)
    if exclude.shape != (n,):
      raise ValueError(f"{directory}/exclude.npy must be ({n},), got {exclude.shape}.")
  return LoadedRuns(view_logits=np.stack(views), keep=np.stack(keeps), labels=labels,
                    init_indices=np.stack(inits).astype(np.int32), exclude=exclude,
                    population_logits=population, population_labels=population_labels)
