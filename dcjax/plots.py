"""Figures a person looks at: image grids of (synthetic) sets, de-normalised to pixels."""

from __future__ import annotations

import os

import numpy as np


def _save(fig, path: str, title: str, dpi: int) -> str:
  """Titles, lays out and writes a figure atomically (temporary file, then rename)."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=dpi)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def image_grid(pixels: np.ndarray, labels: np.ndarray, num_classes: int, path: str,
               title: str = "", max_per_class: int = 10) -> str:
  """Saves a PNG grid (one row per class) of (N, H, W, C) pixels in [0, 1] (clipped)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  pixels = np.clip(np.asarray(pixels), 0.0, 1.0)
  labels = np.asarray(labels)
  cols = min(max_per_class, max(int(np.sum(labels == c)) for c in range(num_classes)))
  fig, axes = plt.subplots(num_classes, cols, figsize=(cols * 0.9, num_classes * 0.9),
                           squeeze=False)
  for c in range(num_classes):
    idx = np.flatnonzero(labels == c)[:cols]
    for j in range(cols):
      ax = axes[c, j]
      ax.set_xticks([])
      ax.set_yticks([])
      if j < len(idx):
        img = pixels[idx[j]]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img,
                  cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
      else:
        ax.axis("off")
    axes[c, 0].set_ylabel(str(c), rotation=0, labelpad=10)
  return _save(fig, path, title, dpi=100)


def roc_panels(curves: dict[str, dict[str, tuple]], path: str, title: str = "") -> str:
  """Log-log ROC curves: one panel per stratum, one line per attack, with the diagonal.

  curves: {attack: {stratum: (fpr, tpr)}}.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  strata = sorted({s for per in curves.values() for s in per},
                  key=["init_images", "other_members", "all_members"].index)
  fig, axes = plt.subplots(1, len(strata), figsize=(4.2 * len(strata), 4), squeeze=False)
  for ax, stratum in zip(axes[0], strata):
    for attack, per in curves.items():
      if stratum in per:
        fpr, tpr = per[stratum]
        ax.plot(np.maximum(fpr, 1e-5), np.maximum(tpr, 1e-5), label=attack, lw=1.3)
    ax.plot([1e-5, 1], [1e-5, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-5, 1)
    ax.set_ylim(1e-5, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(stratum.replace("_", " "))
    ax.grid(alpha=0.3, which="both")
  axes[0][0].legend(fontsize=7, loc="lower right")
  return _save(fig, path, title, dpi=110)
