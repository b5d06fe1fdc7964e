"""The linear-DM theory of "Privacy for Free", as numbers one can check on real data.

With psi(x) = theta x and Gaussian theta, the DM loss of a class is proportional to
||mean(x) - mean(s)||^2; its gradient is the same for every synthetic image, so DM converges to

    s_j* = s_j0 - mean(s0) + mean(x)          (per class)

Consequences, both computed here: (1) adding one non-init example x' to the n examples of its
class moves every synthetic image of that class by (x' - mean(x)) / (n + 1), the paper's O(m/n)
effect; (2) an init image is not averaged at all: with real init, each s_j* is its init image
plus a shared shift, i.e. the init images are in effect published. None of this is a
differential-privacy guarantee (average case, no clipping, data-independent variance assumed).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dcjax.condense import DMConfig, condense


def linear_dm_closed_form(init_images: np.ndarray, real_images: np.ndarray) -> np.ndarray:
  """s* = s0 - mean(s0) + mean(x) for ONE class. init: (ipc, ...), real: (n, ...)."""
  init_images = np.asarray(init_images, np.float64)
  real_images = np.asarray(real_images, np.float64)
  return init_images - init_images.mean(0) + real_images.mean(0)


def one_example_influence(images: np.ndarray, labels: np.ndarray, num_classes: int,
                          mask: np.ndarray | None = None) -> dict:
  """How far one member moves the synthetic images of its class under linear DM.

  For each class c with n_c members: ||x - mean_c|| / (n_c + 1) for each member x, against the
  typical image norm. Returns per-class n, mean and max shift, and the overall ratio of the
  mean shift to the mean image norm (an init image, by contrast, is reproduced up to one
  shared shift: its "influence" is the image itself).
  """
  images = np.asarray(images, np.float64).reshape(len(images), -1)
  labels = np.asarray(labels)
  keep = np.ones(len(labels), bool) if mask is None else np.asarray(mask, bool)
  rows = []
  for c in range(num_classes):
    x = images[keep & (labels == c)]
    if len(x) == 0:
      raise ValueError(f"Class {c} has no member; cannot compute its influence.")
    shift = np.linalg.norm(x - x.mean(0), axis=1) / (len(x) + 1)
    rows.append({"class": c, "n": len(x), "mean_shift": float(shift.mean()),
                 "max_shift": float(shift.max())})
  mean_norm = float(np.linalg.norm(images[keep], axis=1).mean())
  mean_shift = float(np.mean([r["mean_shift"] for r in rows]))
  return {"per_class": rows, "mean_shift": mean_shift, "mean_image_norm": mean_norm,
          "shift_over_norm": mean_shift / mean_norm}


def linear_dm_check(key, dataset, mask, ipc: int, iterations: int = 500) -> dict:
  """Runs the real DM code with a linear extractor on a run's own members, against the closed
  form. Returns the largest and mean per-image error relative to the mean image norm.

  The members are cut to the same count n per class (the first n by index), and every DM batch
  takes all n, so the real class means are exact and the closed form applies without sampling
  noise. The image learning rate is set from the largest eigenvalue (sqrt(D) + sqrt(K))^2 of
  theta theta^T so that the iteration is stable for any image size D.
  """
  labels = np.asarray(dataset.labels)
  mask = np.asarray(mask, bool)
  n = int(np.bincount(labels[mask], minlength=dataset.num_classes).min())
  balanced = np.zeros_like(mask)
  for c in range(dataset.num_classes):
    balanced[np.flatnonzero(mask & (labels == c))[:n]] = True
  features = 64
  dim = int(np.prod(dataset.image_shape))
  lam_max = (np.sqrt(dim) + np.sqrt(features)) ** 2
  cfg = dataclasses.replace(DMConfig(), iterations=iterations, lr_img=float(ipc / (2 * lam_max)),
                            batch_real=n, dsa_strategy=None, net="Linear", real_chunk=None)
  syn = condense(key, dataset, "dm", ipc, "real", mask=balanced, config=cfg)
  x = np.asarray(dataset.images, np.float64)
  images = np.asarray(syn.images, np.float64)
  init = np.asarray(syn.init_indices)
  predicted = np.concatenate([
      linear_dm_closed_form(x[init[c * ipc:(c + 1) * ipc]], x[balanced & (labels == c)])
      for c in range(dataset.num_classes)])
  err = np.linalg.norm((images - predicted).reshape(len(images), -1), axis=1)
  moved = np.linalg.norm((predicted - x[init]).reshape(len(images), -1), axis=1)
  norm = float(np.linalg.norm(x[balanced].reshape(int(balanced.sum()), -1), axis=1).mean())
  return {"members_per_class": n, "ipc": ipc, "iterations": iterations,
          "lr_img": cfg.lr_img, "max_error": float(err.max()), "mean_error": float(err.mean()),
          "mean_shift_from_init": float(moved.mean()), "mean_image_norm": norm,
          "max_error_over_norm": float(err.max()) / norm}


def m_over_n_rows(settings) -> list[dict]:
  """The paper's O(m/n) quantity for (name, n members, num_classes, ipc) settings.

  m = ipc * num_classes synthetic images condensed from n real ones; per class the linear-DM
  shift of one example is ||x - mean_c|| / (n_c + 1), i.e. of order 1 / n_c = C / n, applied to
  each of the ipc images of its class.
  """
  rows = []
  for name, n, num_classes, ipc in settings:
    m = ipc * num_classes
    rows.append({"setting": name, "n": int(n), "m": int(m), "m_over_n": m / n,
                 "one_over_n_per_class": num_classes / n})
  return rows
