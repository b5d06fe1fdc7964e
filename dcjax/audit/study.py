"""The privacy audit end to end: runs of every recipe, attacks, visual privacy, theory, report.

    results = run_audit(get_preset("quick"), "/tmp/audit")

Layout of the output directory (bound to the config: another study is refused):
    fingerprint.json       the AuditConfig of this directory
    stages/<recipe>/       resumable Orbax stages of every recipe (see dcjax.mia.pipeline) and
                           summary.json, the recipe's metrics (recomputed only if missing)
    results.json           every number of the report (written atomically, last)
    report.md, *.png       the report and its figures
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np
import scipy.stats

from dcjax import checkpoint as ckpt
from dcjax import io, plots, workdir
from dcjax.audit import report as report_lib
from dcjax.audit.config import DATASET_SIZES, AuditConfig, recipes, runs_config
from dcjax.condense.common import effective_batch_real
from dcjax.data import load_dataset
from dcjax.mia import balanced_keep_masks, init_masks, run_recipe, stratified_metrics
from dcjax.mia.metrics import STRATA, roc_on_grid
from dcjax.mia.pipeline import attack_runs
from dcjax.mia.recipes import Recipe, check_pool
from dcjax.privacy import (linear_dm_check, m_over_n_rows, one_example_influence,
                           released_set_privacy)

BASELINE = "random_subset"
# what the audit writes in its directory; --recompute removes these and nothing else
OWNED_ENTRIES = ("stages", "results.json", "report.md", "accuracy_vs_tpr.png", "roc_*.png",
                 "nearest_*.png", "init_*.png", "distances_*.png")
PAPER_DATASETS = ("fashion_mnist", "cifar10", "celeba")


def prepare(cfg: AuditConfig, data_dir: str | None = None):
  """Everything that can fail on bad input, before any work: data, pool, masks, recipes.

  Returns (pool, test_set, keep (M, N), recipes, keys).
  """
  train_set, test_set = load_dataset(cfg.dataset, data_dir=data_dir)
  key = jax.random.key(cfg.seed)
  k_pool, k_keep, k_runs, k_theory = jax.random.split(key, 4)
  pool = train_set
  if cfg.pool_size is not None:
    if not 2 <= cfg.pool_size <= len(train_set):
      raise ValueError(f"pool_size must be in [2, {len(train_set)}] for {cfg.dataset}, got "
                       f"{cfg.pool_size}.")
    pool = train_set.subset(np.sort(np.asarray(
        jax.random.permutation(k_pool, len(train_set))[:cfg.pool_size])))
  keep = balanced_keep_masks(k_keep, cfg.runs, len(pool))
  recipe_list = [_fixed_batch_real(r, pool, keep) for r in recipes(cfg, pool.image_shape)]
  for recipe in recipe_list:
    check_pool(recipe, pool, keep)
  return pool, test_set, keep, recipe_list, {"runs": k_runs, "theory": k_theory}


# Fields that only change the analysis of finished stages: the output directory is not bound
# to them, a recipe's cached summary is (except for the report-only fields).
ANALYSIS_FIELDS = ("attacks", "ssim_shortlist", "primary_attack", "theory_iterations")
REPORT_ONLY_FIELDS = ("primary_attack", "theory_iterations")


def study_identity(cfg: AuditConfig, ignore=ANALYSIS_FIELDS) -> dict:
  """The fields that define the runs (the output directory is bound to them)."""
  return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ignore}


def _fixed_batch_real(recipe: Recipe, pool, keep: np.ndarray) -> Recipe:
  """Caps a condenser's real batch per class by the smallest class of ANY run, so that every
  run has the same static shapes (one compilation instead of one per run)."""
  if recipe.kind != "condense":
    return recipe
  batch = min(effective_batch_real(recipe.method_config.batch_real, pool.labels,
                                   pool.num_classes, k) for k in keep)
  return dataclasses.replace(recipe, method_config=dataclasses.replace(recipe.method_config,
                                                                       batch_real=batch))


def _summary_path(out: str, recipe: Recipe) -> str:
  return os.path.join(out, "stages", recipe.name, "summary.json")


def _recipe_summary(cfg: AuditConfig, recipe: Recipe, res: dict, pool, out: str) -> dict:
  """Attacks on the trained models, plus the released-set analysis for non-`real` recipes."""
  curves = {}
  metrics = attack_runs(res, pool.labels, cfg.attack_names, curves=curves)
  acc = res["test_accuracy"]
  keep = res["keep"]
  summary = {
      "kind": recipe.kind, "method": recipe.method, "init": recipe.init,
      "has_init_images": recipe.has_init_images,
      "training_set_size": (int(keep.sum(1).mean()) if recipe.kind == "real"
                            else recipe.ipc * pool.num_classes),
      "test_accuracy": {"mean": float(acc.mean()), "std": float(acc.std()),
                        "per_run": acc.tolist()},
      "attacks": metrics, "released_set": None,
  }
  if res["train_images"] is not None:
    pool_px = np.asarray(pool.preprocessing.invert(pool.images))
    syn_px = np.asarray(pool.preprocessing.invert(res["train_images"]))
    init_idx = res["init_indices"]
    if init_idx.shape[1] == 0:  # noise init: no synthetic image has a real init image
      init_idx = np.full(syn_px.shape[:2], -1, np.int32)
    vis = released_set_privacy(syn_px, init_idx, pool_px, keep, shortlist=cfg.ssim_shortlist)
    is_init = init_masks(init_idx, keep.shape[1])
    released = {}
    hist = {}
    for metric, v in vis.items():
      attack_curves = {}
      dist = -v["scores"]
      groups = {"init images": dist[keep & is_init], "other members": dist[keep & ~is_init],
                "non-members": dist[~keep]}
      hist[metric] = groups
      released[metric] = {
          "own_init_fraction": v["own_init_fraction"], "member_fraction": v["member_fraction"],
          "median_nearest_real_distance": float(np.median(v["nearest_distance"])),
          "median_distance_to_synthetic": {g: (float(np.median(d)) if len(d) else None)
                                           for g, d in groups.items()},
          "attack": stratified_metrics(v["scores"], keep, is_init, curves=attack_curves)}
      curves[f"distance_{metric} (released set)"] = attack_curves
    summary["released_set"] = released
    name = io.slug(recipe.name)
    plots.distance_histograms(hist, os.path.join(out, f"distances_{name}.png"),
                              title=f"{recipe.name}: distance of each pool example to the "
                              "nearest synthetic image (all runs)")
    nearest = vis["l2"]["nearest_index"][0]
    captions = np.array([f"L2 {d:.2f}" + (" own init" if i == j else "")
                         for d, i, j in zip(vis["l2"]["nearest_distance"][0], nearest,
                                            init_idx[0])])
    labels = np.repeat(np.arange(pool.num_classes), recipe.ipc)
    plots.paired_grid(syn_px[0], pool_px[nearest], labels, pool.num_classes,
                      os.path.join(out, f"nearest_{name}.png"),
                      names=("synthetic", "nearest real"), captions=captions,
                      title=f"{recipe.name}, run 0: synthetic image | nearest pool image (L2)")
    summary["figures"] = {"distances": f"distances_{name}.png",
                          "nearest_real": f"nearest_{name}.png"}
    if recipe.has_init_images:
      init = res["init_indices"][0]
      plots.paired_grid(syn_px[0], pool_px[init], labels, pool.num_classes,
                        os.path.join(out, f"init_{name}.png"), names=("synthetic", "init"),
                        title=f"{recipe.name}, run 0: synthetic image | its init image")
      summary["figures"]["init"] = f"init_{name}.png"
  else:
    summary["figures"] = {}
  summary["figures"]["roc"] = f"roc_{io.slug(recipe.name)}.png"
  plots.roc_panels(curves, os.path.join(out, summary["figures"]["roc"]),
                   title=f"{recipe.name} on {cfg.dataset}, {cfg.runs} runs")
  summary["roc_grid"] = {a: {s: [c.tolist() for c in roc_on_grid(*curve)]
                             for s, curve in per.items()} for a, per in curves.items()}
  return summary


def compare_with_baseline(results: dict, attack: str) -> list[dict]:
  """For every recipe and stratum: is it distinguishable from the random-subset baseline?

  Rule: two recipes differ at a stratum when the 95% intervals of the AUC or of the TPR at 1%
  FPR do not overlap; otherwise the audit cannot tell them apart. Both intervals are cluster
  bootstraps over pool examples where available (leave-one-out trials are correlated, which
  Clopper-Pearson ignores and which made it too narrow here: see the negative control in
  the report). Test accuracy: Welch's 95% interval of the difference of the means over runs.
  """
  baseline = next(n for n, r in results["recipes"].items() if r["kind"] == BASELINE)
  base = results["recipes"][baseline]
  rows = []
  for name, r in results["recipes"].items():
    if name == baseline:
      continue
    a, b = np.asarray(r["test_accuracy"]["per_run"]), np.asarray(
        base["test_accuracy"]["per_run"])
    diff = float(a.mean() - b.mean())
    se2 = a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)
    dof = se2 ** 2 / ((a.var(ddof=1) / len(a)) ** 2 / (len(a) - 1) +
                      (b.var(ddof=1) / len(b)) ** 2 / (len(b) - 1) + 1e-300)
    half = float(scipy.stats.t.ppf(0.975, max(dof, 1.0)) * np.sqrt(se2))
    for stratum in STRATA:
      m, m0 = r["attacks"][attack][stratum], base["attacks"][attack][stratum]
      if m is None or m0 is None:
        continue
      t, t0 = m["tpr_at_fpr"]["0.01"], m0["tpr_at_fpr"]["0.01"]
      ci, ci0 = (x.get("tpr_ci95_bootstrap", x["tpr_ci95"]) for x in (t, t0))
      auc_side = _side(m["auc_ci95"], m0["auc_ci95"])
      tpr_side = _side(ci, ci0)
      sides = {auc_side, tpr_side} - {0}
      verdict = ("not distinguishable" if not sides else "higher leakage" if sides == {1}
                 else "lower leakage" if sides == {-1} else "mixed")
      rows.append({"recipe": name, "stratum": stratum, "attack": attack,
                   "auc": m["auc"], "auc_ci95": m["auc_ci95"], "baseline_auc": m0["auc"],
                   "baseline_auc_ci95": m0["auc_ci95"], "tpr_at_1pct": t["tpr"],
                   "tpr_ci95": ci, "baseline_tpr_at_1pct": t0["tpr"],
                   "baseline_tpr_ci95": ci0, "verdict": verdict,
                   "accuracy_difference": diff, "accuracy_difference_ci95": [diff - half,
                                                                             diff + half]})
  return rows


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
    _, classes, n_train, _ = DATASET_SIZES[name]
    for ipc in (10, 50):
      settings.append((f"{name}, ipc {ipc} (half of the training split IN)", n_train // 2,
                       classes, ipc))
  empirical = []
  for name, r in results["recipes"].items():
    if r["kind"] == "condense" and r["method"] == "dm":
      m = r["attacks"][cfg.primary_attack]
      row = {"recipe": name}
      for stratum in STRATA:
        if m[stratum] is not None:
          row[stratum] = {f: m[stratum]["tpr_at_fpr"][f]["tpr"] for f in ("0.001", "0.01")}
      empirical.append(row)
  return {"closed_form_check": check, "one_example_influence": {
      k: v for k, v in influence.items() if k != "per_class"},
          "m_over_n": m_over_n_rows(settings), "empirical_dm": empirical,
          "caveat": ("O(m/n) bounds the average influence of one non-init example under linear "
                     "DM with a data-independent Gaussian extractor; it is not a "
                     "differential-privacy guarantee (not worst case, no clipping, and the init "
                     "images are copied, not averaged).")}


def run_audit(cfg: AuditConfig, out: str, data_dir: str | None = None, recompute: bool = False,
              progress: bool = True, preset: str | None = None, log=print) -> dict:
  """Runs (or resumes) the audit of ``cfg`` into directory ``out``; returns results.json."""
  start = time.time()
  stage_seconds = {}  # per recipe: the seconds of the invocation that computed it
  out = os.path.abspath(out)
  pool, test_set, keep, recipe_list, keys = prepare(cfg, data_dir)
  workdir.claim(out, {"study": "privacy audit", "config": study_identity(cfg)},
                owned=OWNED_ENTRIES, recompute=recompute)
  log(f"audit of {cfg.dataset}: pool {len(pool)}, {cfg.runs} runs x {len(recipe_list)} "
      f"recipes, backend {jax.default_backend()} -> {out}")
  results = {"config": dataclasses.asdict(cfg), "preset": preset, "dataset": cfg.dataset,
             "pool_size": len(pool), "runs": cfg.runs, "test_size": len(test_set),
             "primary_attack": cfg.primary_attack, "recipes": {},
             "code_version": io.code_version(), "machine": io.machine()}
  resumed = []
  for i, recipe in enumerate(recipe_list):
    since = time.time()
    done = time.time() - start
    computed = i - len(resumed)  # the ETA counts only recipes computed in this invocation
    eta = "" if computed == 0 else (
        f", ~{done / computed * (len(recipe_list) - i) / 60:.1f} min left")
    log(f"[{i + 1}/{len(recipe_list)}] {recipe.name} ({done / 60:.1f} min elapsed{eta})")
    path = _summary_path(out, recipe)
    summary = _load_summary(path, cfg)
    if summary is None:
      res = run_recipe(os.path.join(out, "stages"), keys["runs"], pool, test_set, keep, recipe,
                       runs_config(cfg, pool.image_shape, recipe.kind == "real"),
                       recompute=recompute, progress=progress)
      summary = _recipe_summary(cfg, recipe, res, pool, out)
      summary["seconds"] = round(time.time() - since, 1)
      io.write_json_atomic(path, {"config": _summary_key(cfg), "summary": summary})
    else:
      resumed.append(recipe.name)
    results["recipes"][recipe.name] = summary
    stage_seconds[recipe.name] = summary["seconds"]
    log(report_lib.recipe_line(recipe.name, summary, cfg.primary_attack))

  since = time.time()
  results["baseline"] = next(n for n, r in results["recipes"].items() if r["kind"] == BASELINE)
  results["comparison"] = compare_with_baseline(results, cfg.primary_attack)
  results["theory"] = theory(cfg, keys["theory"], pool, keep, results)
  stage_seconds["theory"] = round(time.time() - since, 1)
  results["figures"] = {"accuracy_vs_tpr": "accuracy_vs_tpr.png"}
  plots.accuracy_vs_tpr(_accuracy_points(results, cfg.primary_attack),
                        os.path.join(out, "accuracy_vs_tpr.png"),
                        title=f"{cfg.dataset}: accuracy vs TPR at 0.1% FPR "
                        f"({cfg.primary_attack}, {cfg.runs} runs)")
  results["stage_seconds"] = stage_seconds
  results["resumed_recipes"] = resumed  # loaded from stages/, their seconds are from then
  results["wall_seconds"] = round(time.time() - start, 1)
  io.write_json_atomic(os.path.join(out, "results.json"), results)
  io.write_text_atomic(os.path.join(out, "report.md"), report_lib.render(results))
  log(f"wrote {out}/report.md and results.json ({results['wall_seconds'] / 60:.1f} min)")
  return results


def _summary_key(cfg: AuditConfig) -> dict:
  return ckpt.canonical(study_identity(cfg, ignore=REPORT_ONLY_FIELDS))


def _load_summary(path: str, cfg: AuditConfig) -> dict | None:
  if not os.path.exists(path):
    return None
  stored = workdir.read_json(path, "the recipe's summary", keys=("config", "summary"))
  return stored["summary"] if stored["config"] == _summary_key(cfg) else None


def _accuracy_points(results: dict, attack: str) -> list[dict]:
  points = []
  for name, r in results["recipes"].items():
    tpr = {}
    for stratum in STRATA:
      m = r["attacks"][attack][stratum]
      if m is not None:
        t = m["tpr_at_fpr"]["0.001"]
        tpr[stratum] = (t["tpr"], *t.get("tpr_ci95_bootstrap", t["tpr_ci95"]))
    points.append({"name": name, "accuracy": r["test_accuracy"]["mean"],
                   "accuracy_std": r["test_accuracy"]["std"], "tpr": tpr})
  return points



