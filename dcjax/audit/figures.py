"""The audit's figures, drawn from what ``dcjax.audit.analysis`` computed (no computation here):
per recipe the log-log ROC panels, the distance histograms and the image pairs of run 0; for
the study the accuracy-versus-TPR summary."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dcjax import io, plots

FIGURES = "figures"  # the output directory's folder of figures; results.json names them under it

if TYPE_CHECKING:  # the type only: drawing must not pull in the computation
  from dcjax.audit.analysis import RecipeAnalysis


def draw_recipe(name: str, analysis: RecipeAnalysis, out: str, subtitle: str) -> dict[str, str]:
  """Writes the recipe's figures into ``out``; returns {figure: file name}."""
  slug = io.slug(name)
  figures = {}
  if analysis.distance_groups is not None:
    figures["distances"] = f"{FIGURES}/distances_{slug}.png"
    plots.distance_histograms(analysis.distance_groups, os.path.join(out, figures["distances"]),
                              title=f"{name}: distance of each pool example to the nearest "
                              "synthetic image (all runs)")
    num_classes = int(analysis.labels.max()) + 1
    figures["nearest_real"] = f"{FIGURES}/nearest_{slug}.png"
    plots.paired_grid(analysis.synthetic_pixels, analysis.nearest_pixels, analysis.labels,
                      num_classes, os.path.join(out, figures["nearest_real"]),
                      names=("synthetic", "nearest real"), captions=analysis.nearest_captions,
                      title=f"{name}, run 0: synthetic image | nearest pool image (L2)")
    if analysis.init_pixels is not None:
      figures["init"] = f"{FIGURES}/init_{slug}.png"
      plots.paired_grid(analysis.synthetic_pixels, analysis.init_pixels, analysis.labels,
                        num_classes, os.path.join(out, figures["init"]),
                        names=("synthetic", "init"),
                        title=f"{name}, run 0: synthetic image | its init image")
  if analysis.exposed_pixels is not None and len(analysis.exposed_pixels):
    figures["exposed"] = f"{FIGURES}/exposed_{slug}.png"
    framed = [i for i, c in enumerate(analysis.exposed_captions) if "canary" in c or "init" in c]
    plots.captioned_row(analysis.exposed_pixels, analysis.exposed_captions,
                        os.path.join(out, figures["exposed"]), framed=framed,
                        title=f"{name}: the most exposed pool images (#index, TPR at 1% FPR "
                        "over its IN runs; framed: canary or init image)")
  figures["roc"] = f"{FIGURES}/roc_{slug}.png"
  check = None
  if analysis.bound is not None and analysis.summary.get("privacy"):
    violations = analysis.summary["privacy"]["violations"]
    check = ("bound check: passed (no TPR interval above the bound at 0.1/1/10% FPR)"
             if not violations else f"bound check: {len(violations)} VIOLATION(S), a bug")
  plots.roc_panels(analysis.curves, os.path.join(out, figures["roc"]),
                   title=f"{name} on {subtitle}", bound=analysis.bound, bound_check=check)
  return figures


def draw_accuracy_vs_tpr(points: list[dict], out: str, title: str) -> str:
  name = f"{FIGURES}/accuracy_vs_tpr.png"
  plots.accuracy_vs_tpr(points, os.path.join(out, name), title=title)
  return name


def draw_attack_vs_shadows(curves: dict, out: str, title: str) -> str:
  name = f"{FIGURES}/attack_vs_shadows.png"
  plots.attack_vs_shadows(curves, os.path.join(out, name), title=title)
  return name


def draw_accuracy_vs_epsilon(rows: list[dict], out: str, title: str) -> str:
  name = f"{FIGURES}/accuracy_vs_epsilon.png"
  plots.accuracy_vs_epsilon(rows, os.path.join(out, name), title=title)
  return name
