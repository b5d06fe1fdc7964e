"""Figures a person looks at: image grids of (synthetic) sets, de-normalised to pixels, ROC panels,
summaries. Every function returns its matplotlib Figure and writes a PNG only when given a
``path``; none touches pyplot or the matplotlib backend."""

from __future__ import annotations

import numpy as np

from dcjax import io


def _save(fig, path: str | None, title: str, dpi: int):
  """Titles and lays out a figure; writes it atomically (temporary file, then rename) when a
  ``path`` is given. Returns the Figure (a notebook shows it)."""
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  if path is not None:
    with io.atomic_path(path) as tmp:
      fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
  return fig


class _Figures:
  """What the plots need of pyplot, without pyplot: ``matplotlib.figure.Figure`` objects are
  drawn and saved without a backend, so plotting never switches (or needs) the caller's
  matplotlib backend, and no figure stays open in pyplot's registry."""

  @staticmethod
  def subplots(*args, figsize=None, **kwargs):
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)

  @staticmethod
  def get_cmap(name: str):
    import matplotlib  # pylint: disable=import-outside-toplevel
    return matplotlib.colormaps[name]


def _pyplot() -> _Figures:
  return _Figures()


RED = (0.84, 0.15, 0.16)
DECADES = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
DECADE_LABELS = ["1e-5", "1e-4", "0.001", "0.01", "0.1", "1"]


def _recipe_colour(plt, i: int, count: int):
  """Colour of the i-th recipe: the 10 default colours, or tab20's when there are more."""
  return f"C{i}" if count <= 10 else plt.get_cmap("tab20")(i % 20)


def _mosaic(rows: list[list[np.ndarray | None]], framed=frozenset(), pad: int = 3):
  """One RGB canvas from rows of (H, W, C) images in [0, 1] (None: an empty cell) on white;
  cells (row, col) in ``framed`` get a red frame. Returns (canvas, cell height, cell width).

  One imshow of a canvas instead of one axes per image: a paper-scale grid (500 images) renders
  in a second instead of minutes."""
  first = next(img for row in rows for img in row if img is not None)
  h, w = first.shape[:2]
  cols = max(len(row) for row in rows)
  ch, cw = h + pad, w + pad
  canvas = np.ones((len(rows) * ch + pad, cols * cw + pad, 3), np.float32)
  for r, row in enumerate(rows):
    for j, img in enumerate(row):
      if img is None:
        continue
      top, left = pad + r * ch, pad + j * cw
      if (r, j) in framed:
        canvas[top - 1:top + h + 1, left - 1:left + w + 1] = RED
      img = np.clip(np.asarray(img, np.float32), 0.0, 1.0)
      canvas[top:top + h, left:left + w] = img if img.shape[-1] == 3 else img[..., :1]
  return canvas, ch, cw


def _show_mosaic(plt, canvas, ch, cw, row_labels, scale: float):
  fig, ax = plt.subplots(figsize=(max(3.0, canvas.shape[1] * scale),
                                  max(2.0, canvas.shape[0] * scale + 0.6)))
  ax.imshow(canvas, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([ch * r + ch / 2 for r in range(len(row_labels))], row_labels)
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  return fig, ax


def image_grid(pixels: np.ndarray, labels: np.ndarray, num_classes: int,
               path: str | None = None,
               title: str = "", max_per_class: int = 10):
  """Saves a PNG grid (one row per class) of (N, H, W, C) pixels in [0, 1] (clipped)."""
  plt = _pyplot()
  pixels, labels = np.asarray(pixels), np.asarray(labels)
  rows = [[pixels[i] for i in np.flatnonzero(labels == c)[:max_per_class]]
          for c in range(num_classes)]
  canvas, ch, cw = _mosaic(rows)
  fig, _ = _show_mosaic(plt, canvas, ch, cw, [str(c) for c in range(num_classes)],
                        scale=0.9 / cw)
  return _save(fig, path, title, dpi=100)


def roc_panels(curves: dict[str, dict[str, tuple]], path: str | None = None, title: str = "",
               bound: tuple[np.ndarray, np.ndarray, str] | None = None,
               bound_check: str | None = None):
  """Log-log ROC curves: one panel per stratum, one line per attack, with the diagonal.

  curves: {attack: {stratum: (fpr, tpr)}}. bound: (fpr, largest tpr, label), a proven
  trade-off curve drawn on every panel (no attack can lie above it); bound_check: the check's
  result, printed on each panel. An empirical curve is drawn only from its smallest measurable
  FPR (1 / non-member trials) on; the region left of it is shaded: no trial measures it.
  """
  plt = _pyplot()
  from matplotlib.ticker import NullLocator  # pylint: disable=import-outside-toplevel
  order = ["init_images", "other_members", "all_members", "canaries"]
  strata = sorted({s for per in curves.values() for s in per}, key=order.index)
  fig, axes = plt.subplots(1, len(strata), figsize=(4.2 * len(strata), 4), squeeze=False)
  for ax, stratum in zip(axes[0], strata):
    lowest = 1.0
    for attack, per in curves.items():
      if stratum in per:
        fpr, tpr = (np.asarray(a) for a in per[stratum])
        measurable = fpr > 0
        if measurable.any():
          lowest = min(lowest, float(fpr[measurable].min()))
        ax.plot(fpr[measurable], np.maximum(tpr[measurable], 1e-5), label=attack, lw=1.3,
                ls="--" if "released" in attack else "-")
    if lowest > 1e-5:
      ax.axvspan(1e-5, lowest, color="0.85", lw=0, label="unmeasurable FPR")
    ax.plot([1e-5, 1], [1e-5, 1], "k--", lw=0.8, label="chance")
    if bound is not None:
      ax.plot(np.maximum(bound[0], 1e-5), np.maximum(bound[1], 1e-5), color=RED, lw=2.2,
              label=bound[2])
    if bound_check:
      ax.text(0.02, 0.98, bound_check, transform=ax.transAxes, fontsize=6, va="top",
              color=RED if "VIOLATION" in bound_check else "black", wrap=True)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Fixed decade ticks with plain labels and no minor ticks: matplotlib's default log
    # locator typesets every label as mathtext and re-lays out the minor ticks, which made one
    # figure cost seconds.
    for axis in (ax.xaxis, ax.yaxis):
      axis.set_ticks(DECADES, DECADE_LABELS)
      axis.set_minor_locator(NullLocator())
    ax.set_xlim(1e-5, 1)
    ax.set_ylim(1e-5, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(stratum.replace("_", " "))
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7, loc="lower right")
  return _save(fig, path, title, dpi=110)


def paired_grid(first: np.ndarray, second: np.ndarray, labels: np.ndarray, num_classes: int,
                path: str | None = None, names: tuple[str, str] = ("synthetic", "real"),
                captions: np.ndarray | None = None, title: str = "",
                per_class: int = 4):
  """Pairs side by side: row = class, columns alternate ``first[i]`` | ``second[i]`` (framed
  in red).

  first, second: (N, H, W, C) pixels in [0, 1]; labels: (N,); captions: optional (N,) strings
  under the second image of each pair (e.g. a distance).
  """
  plt = _pyplot()
  labels = np.asarray(labels)
  picked = [np.flatnonzero(labels == c)[:per_class] for c in range(num_classes)]
  rows = [[img for i in idx for img in (first[i], second[i])] for idx in picked]
  framed = {(r, 2 * j + 1) for r, idx in enumerate(picked) for j in range(len(idx))}
  canvas, ch, cw = _mosaic(rows, framed, pad=max(3, first.shape[1] // 3))
  fig, ax = _show_mosaic(plt, canvas, ch, cw, [str(c) for c in range(num_classes)],
                         scale=0.8 / cw)
  for j, name in enumerate(names * (canvas.shape[1] // (2 * cw))):
    ax.text(cw * j + cw / 2, -1, name, ha="center", va="bottom", fontsize=6,
            color=RED if j % 2 else "black")
  if captions is not None:
    for r, idx in enumerate(picked):
      for j, i in enumerate(idx):
        ax.text(cw * (2 * j + 1) + cw / 2, ch * (r + 1) + 0.5, str(captions[i]), ha="center",
                va="top", fontsize=5)
  return _save(fig, path, title, dpi=110)


def accuracy_vs_tpr(points: list[dict], path: str | None = None, title: str = "",
                    strata: tuple[str, ...] = ("all_members", "init_images")):
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
                  color=_recipe_colour(plt, i, len(points)), label=p["name"])
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


def accuracy_vs_epsilon(rows: list[dict], path: str | None = None, title: str = ""):
  """Test accuracy against epsilon: filled markers at the proven epsilon of DP recipes, open
  markers at the canary lower bound of every recipe (a DP recipe has both; its lower bound must
  lie left of its proven value). rows: [{"recipe", "accuracy", "accuracy_std",
  "epsilon_proven", "epsilon_lb"}] (None where absent)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  palette = plt.get_cmap("tab20")  # a DP yardstick has more than 10 recipes
  for i, r in enumerate(rows):
    color = palette(i % 20)
    acc, std = 100 * r["accuracy"], 100 * r["accuracy_std"]
    if r.get("epsilon_proven") is not None:
      ax.errorbar(r["epsilon_proven"], acc, yerr=std, fmt="o", color=color, capsize=3,
                  label=f"{r['recipe']} (proven)")
    if r.get("epsilon_lb") is not None:
      ax.errorbar(r["epsilon_lb"], acc, yerr=std, fmt="o", mfc="none", color=color, capsize=3,
                  label=f"{r['recipe']} (lower bound)")
  ax.set_xlabel("epsilon (filled: proven upper bound; open: canary lower bound, 95%)")
  ax.set_ylabel("test accuracy (%)")
  ax.set_xlim(left=-0.2)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
  return _save(fig, path, title, dpi=110)


def distance_histograms(groups: dict[str, dict[str, np.ndarray]], path: str | None = None,
                        title: str = ""):
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
    ax.legend(fontsize=7, loc="upper right")  # "best" searches the data: slow
    ax.grid(alpha=0.3)
  return _save(fig, path, title, dpi=110)


def captioned_row(pixels: np.ndarray, captions, path: str | None = None, title: str = "",
                  framed=(), per_row: int = 8):
  """Images in rows of ``per_row`` with a caption under each; indices in ``framed`` get a red
  frame (e.g. canaries or init images). pixels: (E, H, W, C) in [0, 1]."""
  plt = _pyplot()
  rows = [list(pixels[i:i + per_row]) for i in range(0, len(pixels), per_row)]
  frames = {(i // per_row, i % per_row) for i in framed}
  canvas, ch, cw = _mosaic(rows, frames, pad=max(3, pixels.shape[1] // 2))
  fig, ax = _show_mosaic(plt, canvas, ch, cw, [""] * len(rows), scale=1.1 / cw)
  for i, caption in enumerate(captions):
    r, j = divmod(i, per_row)
    ax.text(cw * j + cw / 2, ch * (r + 1) + 0.5, str(caption), ha="center", va="top",
            fontsize=5)
  return _save(fig, path, title, dpi=130)


def attack_vs_shadows(curves: dict[str, dict[str, list[dict]]], path: str | None = None,
                      title: str = ""):
  """The shadow-budget curve: one column per attack, AUC (top) and TPR at the curve's FPR
  (bottom) against the number k of reference runs (log 2 axis), one line per recipe with its
  95% intervals. curves: {recipe: {attack: [{k, auc, auc_ci95, tpr, tpr_ci95, fpr}]}}."""
  plt = _pyplot()
  attacks = sorted({a for per in curves.values() for a in per})
  fig, axes = plt.subplots(2, len(attacks), figsize=(3.4 * len(attacks), 6.2), squeeze=False,
                           sharex=True)
  for col, attack in enumerate(attacks):
    for i, (recipe, per) in enumerate(curves.items()):
      rows = per.get(attack) or []
      if not rows:
        continue
      k = np.array([r["k"] for r in rows])
      for row, (value, ci) in enumerate((("auc", "auc_ci95"), ("tpr", "tpr_ci95"))):
        v = np.array([r[value] for r in rows])
        lo, hi = (np.array([r[ci][j] for r in rows]) for j in (0, 1))
        axes[row][col].errorbar(k, v, yerr=[v - lo, hi - v], marker="o", ms=3, capsize=2,
                                lw=1.1, color=_recipe_colour(plt, i, len(curves)), label=recipe)
    axes[0][col].set_title(attack, fontsize=9)
    axes[1][col].set_xlabel("reference runs k")
    for row in (0, 1):
      axes[row][col].set_xscale("log", base=2)
      axes[row][col].grid(alpha=0.3)
  fpr = next((r["fpr"] for per in curves.values() for rows in per.values() for r in rows), 0.001)
  axes[0][0].set_ylabel("AUC (95% interval)")
  axes[1][0].set_ylabel(f"TPR at FPR {fpr:g} (95% interval)")
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
  return _save(fig, path, title, dpi=110)
