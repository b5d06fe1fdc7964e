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

import numpy as np


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
