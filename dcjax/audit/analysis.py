"""The audit's computation over finished runs: attacks, the released-set analysis, the comparison
with the baseline, the theory. Returns JSON-ready summaries plus the arrays the figures need;
draws nothing (``dcjax.audit.figures``) and formats nothing (``dcjax.audit.report``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.stats

from dcjax.audit.config import AuditConfig
from dcjax.data.dataset import Dataset
from dcjax.data.facts import SPLIT_SIZES
from dcjax.mia import STRATA, StratumMetrics, attack_runs, init_masks, stratified_metrics
from dcjax.mia.metrics import roc_on_grid
from dcjax.privacy import (linear_dm_check, m_over_n_rows, one_example_influence,
                           released_set_privacy)
from dcjax.runs import Condense, RandomSubset, Recipe, RunResults

PAPER_DATASETS = ("fashion_mnist", "cifar10", "celeba")
SCHEMA = 2  # of results.json (README, "results.json")


@dataclasses.dataclass(frozen=True)
class RecipeAnalysis:
  """One recipe's summary (JSON-ready, as in results.json) and what its figures are drawn from:
  ROC curves {panel: {stratum: (fpr, tpr)}}, distance groups {metric: {group: distances}}, and
  for run 0 the synthetic pixels, the nearest pool images and the init images (pool indices)."""

  summary: dict
  curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
  distance_groups: dict[str, dict[str, np.ndarray]] | None = None
  synthetic_pixels: np.ndarray | None = None  # (S, H, W, C) of run 0
  nearest_pixels: np.ndarray | None = None  # (S, H, W, C)
  nearest_captions: np.ndarray | None = None  # (S,) str
  init_pixels: np.ndarray | None = None  # (S, H, W, C), recipes with init images
  labels: np.ndarray | None = None  # (S,)


def analyse_recipe(cfg: AuditConfig, recipe: Recipe, res: RunResults, pool: Dataset
                   ) -> RecipeAnalysis:
  """Attacks on the trained models, plus the released-set analysis for recipes whose training
  set is released (all but those that train on the pool)."""
  attacks = attack_runs(res.view_logits, pool.labels, res.keep, res.init_indices,
                        cfg.attack_names)
  curves = {a: r.curves for a, r in attacks.items()}
  acc = res.test_accuracy
  summary = {
      "kind": recipe.KIND, "method": getattr(recipe, "method", None),
      "init": getattr(recipe, "init", None), "has_init_images": recipe.has_init_images,
      "training_set_size": recipe.training_set_size(pool, res.keep),
      "test_accuracy": {"mean": float(acc.mean()), "std": float(acc.std()),
                        "per_run": acc.tolist()},
      "attacks": {a: r.to_json() for a, r in attacks.items()}, "released_set": None,
  }
  extra: dict[str, Any] = {}
  if res.train_images is not None:
    summary["released_set"], extra = _released_set(cfg, recipe, res, pool, curves)
  summary["roc_grid"] = {a: {s: [c.tolist() for c in roc_on_grid(*curve)]
                             for s, curve in per.items()} for a, per in curves.items()}
  return RecipeAnalysis(summary=summary, curves=curves, **extra)


def _released_set(cfg, recipe, res: RunResults, pool, curves) -> tuple[dict, dict]:
  pool_px = np.asarray(pool.preprocessing.invert(pool.images))
  syn_px = np.asarray(pool.preprocessing.invert(res.train_images))
  keep = res.keep
  init_idx = res.init_indices
  if init_idx.shape[1] == 0:  # noise init: no synthetic image has a real init image
    init_idx = np.full(syn_px.shape[:2], -1, np.int32)
  vis = released_set_privacy(syn_px, init_idx, pool_px, keep, shortlist=cfg.ssim_shortlist)
  is_init = init_masks(init_idx, keep.shape[1])
  released, groups_by_metric = {}, {}
  for metric, v in vis.items():
    dist = -v["scores"]
    groups = {"init images": dist[keep & is_init], "other members": dist[keep & ~is_init],
              "non-members": dist[~keep]}
    groups_by_metric[metric] = groups
    attack = stratified_metrics(v["scores"], keep, is_init)
    released[metric] = {
        "own_init_fraction": v["own_init_fraction"], "member_fraction": v["member_fraction"],
        "median_nearest_real_distance": float(np.median(v["nearest_distance"])),
        "median_distance_to_synthetic": {g: (float(np.median(d)) if len(d) else None)
                                         for g, d in groups.items()},
        "attack": attack.to_json()}
    curves[f"distance_{metric} (released set)"] = attack.curves
  nearest = vis["l2"]["nearest_index"][0]
  captions = np.array([f"L2 {d:.2f}" + (" own init" if i == j else "")
                       for d, i, j in zip(vis["l2"]["nearest_distance"][0], nearest,
                                          init_idx[0])])
  extra = {"distance_groups": groups_by_metric, "synthetic_pixels": syn_px[0],
           "nearest_pixels": pool_px[nearest], "nearest_captions": captions,
           "labels": np.repeat(np.arange(pool.num_classes), recipe.ipc),
           "init_pixels": pool_px[res.init_indices[0]] if recipe.has_init_images else None}
  return released, extra


def baseline_name(results: dict) -> str:
  return next(n for n, r in results["recipes"].items() if r["kind"] == RandomSubset.KIND)


def compare_with_baseline(results: dict, attack: str) -> list[dict]:
  """For every recipe and stratum: is it distinguishable from the random-subset baseline?

  Rule: two recipes differ at a stratum when the 95% intervals of the AUC or of the TPR at 1%
  FPR do not overlap; otherwise the audit cannot tell them apart. Both intervals are cluster
  bootstraps over pool examples where available (leave-one-out trials are correlated, which
  Clopper-Pearson ignores and which made it too narrow here: see the negative control in
  the report). Test accuracy: Welch's 95% interval of the difference of the means over runs.
  """
  baseline = baseline_name(results)
  base = results["recipes"][baseline]
  rows = []
  for name, r in results["recipes"].items():
    if name == baseline:
      continue
    diff, half = _welch(np.asarray(r["test_accuracy"]["per_run"]),
                        np.asarray(base["test_accuracy"]["per_run"]))
    for stratum in STRATA:
      m, m0 = r["attacks"][attack][stratum], base["attacks"][attack][stratum]
      if m is None or m0 is None:
        continue
      m, m0 = StratumMetrics.from_json(m), StratumMetrics.from_json(m0)
      t, t0 = m.at(0.01), m0.at(0.01)
      sides = {_side(m.auc_ci95, m0.auc_ci95), _side(t.interval, t0.interval)} - {0}
      verdict = ("not distinguishable" if not sides else "higher leakage" if sides == {1}
                 else "lower leakage" if sides == {-1} else "mixed")
      rows.append({"recipe": name, "stratum": stratum, "attack": attack,
                   "auc": m.auc, "auc_ci95": list(m.auc_ci95), "baseline_auc": m0.auc,
                   "baseline_auc_ci95": list(m0.auc_ci95), "tpr_at_1pct": t.tpr,
                   "tpr_ci95": list(t.interval), "baseline_tpr_at_1pct": t0.tpr,
                   "baseline_tpr_ci95": list(t0.interval), "verdict": verdict,
                   "accuracy_difference": diff,
                   "accuracy_difference_ci95": [diff - half, diff + half]})
  return rows


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
  """Difference of the means and the half-width of Welch's 95% interval."""
  diff = float(a.mean() - b.mean())
  se2 = a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)
  dof = se2 ** 2 / ((a.var(ddof=1) / len(a)) ** 2 / (len(a) - 1) +
                    (b.var(ddof=1) / len(b)) ** 2 / (len(b) - 1) + 1e-300)
  return diff, float(scipy.stats.t.ppf(0.975, max(dof, 1.0)) * np.sqrt(se2))


def _side(ci, ci0) -> int:
  """+1 if interval ci lies above ci0, -1 below, 0 if they overlap."""
  if ci[0] > ci0[1]:
    return 1
  if ci[1] < ci0[0]:
    return -1
  return 0


def theory(cfg: AuditConfig, key, pool, keep, results: dict) -> dict:
  """(a) linear-DM closed form on run 0's own members; (b) the O(m/n) table beside the
  measured TPR of the DM recipes."""
  check = linear_dm_check(key, pool, keep[0], cfg.ipc, cfg.theory_iterations)
  influence = one_example_influence(np.asarray(pool.images), pool.labels, pool.num_classes,
                                    mask=keep[0])
  n_run = int(keep[0].sum())
  settings = [(f"this audit: {cfg.dataset}, ipc {cfg.ipc}", n_run, pool.num_classes, cfg.ipc)]
  for name in PAPER_DATASETS:
    _, classes, n_train, _ = SPLIT_SIZES[name]
    for ipc in (10, 50):
      settings.append((f"{name}, ipc {ipc} (half of the training split IN)", n_train // 2,
                       classes, ipc))
  empirical = []
  for name, r in results["recipes"].items():
    if r["kind"] == Condense.KIND and r["method"] == "dm":
      row = {"recipe": name}
      for stratum in STRATA:
        m = r["attacks"][cfg.primary_attack][stratum]
        if m is not None:
          m = StratumMetrics.from_json(m)
          row[stratum] = {f: m.at(float(f)).tpr for f in ("0.001", "0.01")}
      empirical.append(row)
  return {"closed_form_check": check, "one_example_influence": {
      k: v for k, v in influence.items() if k != "per_class"},
          "m_over_n": m_over_n_rows(settings), "empirical_dm": empirical,
          "caveat": ("O(m/n) bounds the average influence of one non-init example under linear "
                     "DM with a data-independent Gaussian extractor; it is not a "
                     "differential-privacy guarantee (not worst case, no clipping, and the init "
                     "images are copied, not averaged).")}


def accuracy_points(results: dict, attack: str) -> list[dict]:
  """(accuracy, TPR at 0.1% FPR per stratum with its interval) of every recipe."""
  points = []
  for name, r in results["recipes"].items():
    tpr = {}
    for stratum in STRATA:
      m = r["attacks"][attack][stratum]
      if m is not None:
        t = StratumMetrics.from_json(m).at(0.001)
        tpr[stratum] = (t.tpr, *t.interval)
    points.append({"name": name, "accuracy": r["test_accuracy"]["mean"],
                   "accuracy_std": r["test_accuracy"]["std"], "tpr": tpr})
  return points
