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
  fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
  plt.close(fig)
  os.replace(tmp, path)
  return path


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def _show(ax, img) -> None:
  img = np.clip(np.asarray(img), 0.0, 1.0)
  ax.imshow(img[..., 0] if img.shape[-1] == 1 else img,
            cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
  ax.set_xticks([])
  ax.set_yticks([])


def image_grid(pixels: np.ndarray, labels: np.ndarray, num_classes: int, path: str,
               title: str = "", max_per_class: int = 10) -> str:
  """Saves a PNG grid (one row per class) of (N, H, W, C) pixels in [0, 1] (clipped)."""
  plt = _pyplot()
  pixels = np.clip(np.asarray(pixels), 0.0, 1.0)
  labels = np.asarray(labels)
  cols = min(max_per_class, max(int(np.sum(labels == c)) for c in range(num_classes)))
  fig, axes = plt.subplots(num_classes, cols, figsize=(cols * 0.9, num_classes * 0.9),
                           squeeze=False)
  for c in range(num_classes):
    idx = np.flatnonzero(labels == c)[:cols]
    for j in range(cols):
      if j < len(idx):
        _show(axes[c, j], pixels[idx[j]])
      else:
        axes[c, j].axis("off")
    axes[c, 0].set_ylabel(str(c), rotation=0, labelpad=10)
  return _save(fig, path, title, dpi=100)


def roc_panels(curves: dict[str, dict[str, tuple]], path: str, title: str = "") -> str:
  """Log-log ROC curves: one panel per stratum, one line per attack, with the diagonal.

  curves: {attack: {stratum: (fpr, tpr)}}.
  """
  plt = _pyplot()
  strata = sorted({s for per in curves.values() for s in per},
                  key=["init_images", "other_members", "all_members"].index)
  fig, axes = plt.subplots(1, len(strata), figsize=(4.2 * len(strata), 4), squeeze=False)
  for ax, stratum in zip(axes[0], strata):
    for attack, per in curves.items():
      if stratum in per:
        fpr, tpr = per[stratum]
        ax.plot(np.maximum(fpr, 1e-5), np.maximum(tpr, 1e-5), label=attack, lw=1.3,
                ls="--" if "released" in attack else "-")
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



def paired_grid(first: np.ndarray, second: np.ndarray, labels: np.ndarray, num_classes: int,
                path: str, names: tuple[str, str] = ("synthetic", "real"),
                captions: np.ndarray | None = None, title: str = "",
                per_class: int = 4) -> str:
  """Pairs side by side: row = class, columns alternate ``first[i]`` | ``second[i]``.

  first, second: (N, H, W, C) pixels in [0, 1]; labels: (N,); captions: optional (N,) strings
  under the second image of each pair (e.g. a distance).
  """
  plt = _pyplot()
  labels = np.asarray(labels)
  cols = 2 * per_class
  fig, axes = plt.subplots(num_classes, cols, figsize=(cols * 0.85, num_classes * 0.95 + 0.3),
                           squeeze=False)
  for c in range(num_classes):
    idx = np.flatnonzero(labels == c)[:per_class]
    for j in range(per_class):
      a, b = axes[c, 2 * j], axes[c, 2 * j + 1]
      if j >= len(idx):
        a.axis("off")
        b.axis("off")
        continue
      _show(a, first[idx[j]])
      _show(b, second[idx[j]])
      for spine in b.spines.values():
        spine.set_edgecolor("tab:red")
      if captions is not None:
        b.set_xlabel(str(captions[idx[j]]), fontsize=6, labelpad=1)
      if c == 0:
        a.set_title(names[0], fontsize=7)
        b.set_title(names[1], fontsize=7, color="tab:red")
    axes[c, 0].set_ylabel(str(c), rotation=0, labelpad=10)
  return _save(fig, path, title, dpi=110)


def accuracy_vs_tpr(points: list[dict], path: str, title: str = "",
                    strata: tuple[str, ...] = ("all_members", "init_images")) -> str:
  """One panel per stratum: test accuracy (mean +- std) against TPR at an FPR (with its 95%
  interval). points: [{"name", "accuracy", "accuracy_std", "tpr": {stratum: (tpr, lo, hi) or
  None}}]; a recipe without the stratum is left out of that panel."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(strata), figsize=(5.2 * len(strata), 4.2), squeeze=False)
  markers = "osD^vP*Xh<>"
  for ax, stratum in zip(axes[0], strata):
    for i, p in enumerate(points):
      t = p["tpr"].get(stratum)
      if t is None:
        continue
      tpr, lo, hi = (100 * v for v in t)
      ax.errorbar(100 * p["accuracy"], tpr, xerr=100 * p["accuracy_std"],
                  yerr=[[tpr - lo], [hi - tpr]], fmt=markers[i % len(markers)], capsize=3,
                  color=f"C{i % 10}", label=p["name"])  # one colour per recipe in all panels
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("TPR (%) at the FPR, 95% interval")
    ax.set_title(stratum.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
  legend = {}
  for ax in axes[0]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(label, handle)
  axes[0][-1].legend(list(legend.values()), list(legend), fontsize=7, loc="center left",
                     bbox_to_anchor=(1.02, 0.5))
  return _save(fig, path, title, dpi=110)


def distance_histograms(groups: dict[str, dict[str, np.ndarray]], path: str,
                        title: str = "") -> str:
  """Histograms of distances to the nearest synthetic image, one panel per metric.

  groups: {metric: {group name: distances (n,)}}.
  """
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
  for ax, (metric, per) in zip(axes[0], groups.items()):
    values = [np.asarray(v) for v in per.values() if len(v)]
    hi = max(float(v.max()) for v in values) if values else 1.0
    bins = np.linspace(0.0, hi * 1.02 + 1e-9, 40)
    for name, v in per.items():
      if len(v):
        ax.hist(v, bins=bins, density=True, histtype="step", lw=1.4, label=f"{name} ({len(v)})")
    ax.set_xlabel(f"{metric} distance to the nearest synthetic image")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  return _save(fig, path, title, dpi=110)
