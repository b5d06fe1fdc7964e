"""The audit's computation over finished runs: attacks, the released-set analysis, the comparison
with the baseline, the theory. Returns JSON-ready summaries plus the arrays the figures need;
draws nothing (``dcjax.audit.figures``) and formats nothing (``dcjax.audit.report``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
import scipy.stats

from dcjax import key_tree

from dcjax.audit.config import AuditConfig
from dcjax.data.dataset import Dataset
from dcjax.data.facts import SPLIT_SIZES
from dcjax.mia import (STRATA, Population, StratumMetrics, attack_runs, init_masks,
                       stratified_metrics)
from dcjax.mia import budget, exposure
from dcjax.mia.attacks import PER_VIEW
from dcjax.mia.metrics import DEFAULT_FPRS, attack_metrics, roc_curve, roc_on_grid
from dcjax.audit.theory import linear_dm_check, m_over_n_rows, one_example_influence
from dcjax.audit.visual import released_set_privacy
from dcjax.mia.scores import logit_scaled_confidence
from dcjax.privacy import accounting, auditing
from dcjax.privacy.accounting import DEFAULT_DELTA
from dcjax.runs import Condense, RandomSubset, Recipe, RunResults

PAPER_DATASETS = ("fashion_mnist", "cifar10", "celeba")
SCHEMA = 5  # of results.json (docs/results-schema.md)


@dataclasses.dataclass(frozen=True)
class RecipeAnalysis:
  """One recipe's summary (JSON-ready, as in results.json) and what its figures are drawn from:
  ROC curves {panel: {stratum: (fpr, tpr)}}, distance groups {metric: {group: distances}}, and
  for run 0 the synthetic pixels, the nearest pool images and the init images (pool indices);
  the most exposed pool images; the per-example arrays that go to scores.npz."""

  summary: dict
  curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
  distance_groups: dict[str, dict[str, np.ndarray]] | None = None
  synthetic_pixels: np.ndarray | None = None  # (S, H, W, C) of run 0
  nearest_pixels: np.ndarray | None = None  # (S, H, W, C)
  nearest_captions: np.ndarray | None = None  # (S,) str
  init_pixels: np.ndarray | None = None  # (S, H, W, C), recipes with init images
  labels: np.ndarray | None = None  # (S,)
  bound: tuple[np.ndarray, np.ndarray, str] | None = None  # proven (fpr, tpr, label)
  exposed_pixels: np.ndarray | None = None  # (E, H, W, C): the most exposed pool images
  exposed_captions: np.ndarray | None = None  # (E,) str
  exposed_labels: np.ndarray | None = None  # (E,)
  arrays: dict[str, np.ndarray] | None = None  # for scores.npz: keep, init, scores/<attack>...


def analyse_recipe(cfg: AuditConfig, recipe: Recipe, res: RunResults, pool: Dataset,
                   is_canary: np.ndarray | None = None,
                   guarantee: accounting.Guarantee | None = None,
                   test_labels: np.ndarray | None = None) -> RecipeAnalysis:
  """Attacks on the trained models, plus the released-set analysis for recipes whose training
  set is released (all but those that train on the pool), the canary bounds where the pool
  holds canaries (``is_canary`` (N,)), and the check against the proven bound for recipes with
  a ``guarantee`` (from ``recipe.plan``). ``test_labels`` (T,) with ``res.test_view_logits``:
  RMIA's population."""
  canary = None if is_canary is None or not np.any(is_canary) else np.asarray(is_canary, bool)
  # a DP recipe's TPRs are checked against its bound at 10% FPR too
  fprs = DEFAULT_FPRS if guarantee is None else CHECKED_FPRS
  population = None
  if test_labels is not None and res.test_view_logits is not None:
    population = Population(res.test_view_logits, np.asarray(test_labels), "test split")
  attacks = attack_runs(res.view_logits, pool.labels, res.keep, res.init_indices,
                        cfg.attack_names, fprs=fprs, exclude=canary, population=population)
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
    summary["released_set"], extra = _released_set(cfg, recipe, res, pool, curves, canary,
                                                   fprs)
  delta = DEFAULT_DELTA if guarantee is None else guarantee.delta
  summary["canaries"] = None
  if canary is not None:
    # the target network's own phi (the loss attack's score): the headline bound's scores
    phi = logit_scaled_confidence(res.view_logits, pool.labels).mean(axis=1)
    summary["canaries"] = canary_analysis(attacks, phi, res.keep, canary, cfg.primary_attack,
                                          delta, cfg.seed, curves)
  summary["privacy"] = None
  if guarantee is not None:
    summary["privacy"], extra["bound"] = proven_bound(
        guarantee, summary["attacks"], summary["canaries"], summary["released_set"])
  summary["roc_grid"] = {a: {s: [c.tolist() for c in roc_on_grid(*curve)]
                             for s, curve in per.items()} for a, per in curves.items()}
  extras, arrays = attack_extras(attacks, res.view_logits, pool.labels, res.keep,
                                 res.init_indices, population, canary, cfg.primary_attack,
                                 cfg.seed)
  summary.update(extras)
  return RecipeAnalysis(summary=summary, curves=curves, **extra,
                        **_exposed_images(summary["exposure"], pool), arrays=arrays)


EXPOSED_SHOWN = 16


def attack_extras(attacks, view_logits, labels, keep, init_indices, population, exclude,
                  primary: str, seed: int) -> tuple[dict, dict[str, np.ndarray]]:
  """What a set of attacked runs gets beyond the strata (the audit's recipes and runs read from
  the LiRA layout alike): each attack's ``attack_details``, the ``shadow_budget`` curve (key:
  the seed's BUDGET branch) and the ``exposure``; with the arrays for scores.npz."""
  curve = budget.shadow_budget_curve(
      key_tree.purpose(jax.random.key(seed), key_tree.BUDGET), view_logits, labels, keep,
      [a for a in attacks if not a.endswith(PER_VIEW)], population, exclude=exclude,
      full_scores={a: r.scores for a, r in attacks.items()})
  exposure_json, arrays = exposure_summary(attacks, keep, init_indices, primary, exclude)
  return {"attack_details": {a: r.details for a, r in attacks.items() if r.details is not None},
          "shadow_budget": curve, "exposure": exposure_json}, arrays


def exposure_summary(attacks, keep, init_indices, primary: str, canary=None
                     ) -> tuple[dict, dict[str, np.ndarray]]:
  """Every attack's per-example exposure (TPR at 1% FPR over the runs where the example is IN;
  ``dcjax.mia.exposure``) and the primary attack's most exposed examples. Returns (summary for
  results.json, arrays for scores.npz: keep, init, scores/<attack>, exposure/<attack>)."""
  is_init = init_masks(init_indices, keep.shape[1])
  per_attack = {a: exposure.per_example_tpr(r.scores, keep, exposure.EXPOSURE_FPR, canary)
                for a, r in attacks.items()}
  primary_exposure = per_attack[primary]
  summary = {"attack": primary, "fpr": exposure.EXPOSURE_FPR,
             "mean": float(np.nanmean(primary_exposure)),
             "most_exposed": exposure.most_exposed(primary_exposure, EXPOSED_SHOWN, is_init,
                                                   canary, keep)}
  arrays = {"keep": keep, "init": is_init,
            **{f"scores/{a}": r.scores for a, r in attacks.items()},
            **{f"exposure/{a}": e for a, e in per_attack.items()}}
  return summary, arrays


def _exposed_images(exposure_json: dict, pool) -> dict:
  """The most exposed pool images, captions and labels for the figure."""
  top = exposure_json["most_exposed"]
  index = np.array([r["index"] for r in top])
  captions = np.array([f"#{r['index']} {r['exposure']:.2f}"
                       + (" canary" if r["canary"] else "")
                       + (f" init {r['init_fraction']:.0%}" if r.get("init_fraction") else "")
                       for r in top])
  return {"exposed_pixels": np.asarray(pool.preprocessing.invert(pool.images[index])),
          "exposed_captions": captions, "exposed_labels": np.asarray(pool.labels)[index]}


CHECKED_FPRS = (0.001, 0.01, 0.1)
BOUND_FPRS = np.geomspace(1e-5, 1.0, 61)


def canary_analysis(attacks, phi, keep, canary, primary: str, delta: float, seed: int,
                    curves) -> dict:
  """The canary trials (M runs x K canaries): every attack's ROC on them (clustered by
  canary) with the heuristic split-half bound of each, and the headline bound, valid under the
  dependence present: the one-run bound of every run from its own network's phi (M, N),
  Bonferroni over the runs (``auditing.runs_one_run_epsilon``). Adds the canary curves to
  ``curves`` (stratum "canaries")."""
  keep_c = np.asarray(keep, bool)[:, canary]
  if keep_c.all() or not keep_c.any():
    raise ValueError("The canaries need both IN and OUT trials.")
  per_attack = {}
  for name, result in attacks.items():
    scores = result.scores[:, canary]
    clusters = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    metrics = attack_metrics(scores.ravel(), keep_c.ravel(), CHECKED_FPRS,
                             clusters=clusters.ravel())
    curves[name]["canaries"] = roc_curve(scores.ravel(), keep_c.ravel())[:2]
    per_attack[name] = {"metrics": metrics.to_json(),
                        "split_half": auditing.split_half_epsilon(scores, keep_c, delta,
                                                                  seed=seed)}
  one_run = auditing.runs_one_run_epsilon(np.asarray(phi)[:, canary], keep_c, delta)
  return {"count": int(canary.sum()), "delta": delta, "attacks": per_attack,
          "epsilon_lb": one_run["epsilon_lb"], "one_run": one_run,
          "epsilon_lb_heuristic": per_attack[primary]["split_half"]["epsilon_lb"],
          "heuristic_attack": primary}


def _checked_points(attacks_json: dict, canaries: dict | None, released: dict | None) -> dict:
  """{attack/stratum: {fpr: (tpr, lower end of its 95% interval, upper end of its FPR)}} of
  every attack and stratum on the models, the canaries, and the released-set attacks."""
  points = {}
  sources = [(f"{a}/{s}", m) for a, per in attacks_json.items() for s, m in per.items()]
  if canaries is not None:
    sources += [(f"{a}/canaries", c["metrics"]) for a, c in canaries["attacks"].items()]
  if released is not None:
    sources += [(f"released set, distance_{metric}/{s}", m)
                for metric, r in released.items() for s, m in r["attack"].items()]
  for where, m in sources:
    if m is not None:
      m = StratumMetrics.from_json(m)
      # the lower of the two lower ends: the cluster bootstrap's collapses to the point for a
      # perfect attack, Clopper-Pearson's ignores correlated trials; a violation needs both
      points[where] = {f: (m.at(f).tpr, min(m.at(f).tpr_ci95[0], m.at(f).interval[0]),
                           auditing.fpr_upper(f, m.negatives)) for f in CHECKED_FPRS}
  return points


def proven_bound(guarantee: accounting.Guarantee, attacks_json: dict, canaries: dict | None,
                 released: dict | None = None) -> tuple[dict, tuple]:
  """The guarantee's epsilon at its delta (PLD), its trade-off curve, and every empirical TPR
  at 0.1 / 1 / 10% FPR (attacks on the models, on the canaries, and on the released set: for
  a DP condenser the set itself is the DP output) whose interval lies above the curve at the
  upper end of its FPR (a violation: a bug in the mechanism, its accounting or the attack's
  bookkeeping)."""
  eps = guarantee.epsilon
  points = _checked_points(attacks_json, canaries, released)
  asked = sorted({p[2] for per in points.values() for p in per.values()} | set(CHECKED_FPRS))
  fprs = np.concatenate([BOUND_FPRS, asked])
  tprs = accounting.tradeoff_curve(guarantee.mechanism, fprs)
  at = dict(zip(asked, tprs[len(BOUND_FPRS):].tolist()))
  violations = auditing.bound_violations(points, at.__getitem__)
  summary = {"epsilon": eps, "delta": guarantee.delta,
             "mechanism": dataclasses.asdict(guarantee.mechanism),
             "bound_at_fpr": {f"{f:g}": at[f] for f in CHECKED_FPRS},
             "bound_curve": [BOUND_FPRS.tolist(), tprs[:len(BOUND_FPRS)].tolist()],
             "checked": sorted(points), "violations": violations}
  return summary, (BOUND_FPRS, tprs[:len(BOUND_FPRS)], f"DP bound (eps {eps:.2g})")


def _released_set(cfg, recipe, res: RunResults, pool, curves, canary=None,
                  fprs=DEFAULT_FPRS) -> tuple[dict, dict]:
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
    kept = slice(None) if canary is None else ~canary  # the strata leave the canaries out
    attack = stratified_metrics(v["scores"][:, kept], keep[:, kept], is_init[:, kept], fprs)
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


def epsilon_rows(results: dict, attack: str) -> list[dict]:
  """The table of the DP yardstick, one row per recipe: accuracy, TPR@0.1% of all members,
  TPR@1% of the init images, the canary lower bounds (the valid one-run bound and the split-half
  heuristic) and the proven epsilon of DP recipes (None where there is none)."""
  rows = []
  for name, r in results["recipes"].items():
    m = r["attacks"][attack]
    every, init = m["all_members"], m["init_images"]
    canaries, privacy = r.get("canaries"), r.get("privacy")
    rows.append({
        "recipe": name, "kind": r["kind"], "method": r.get("method"),
        "accuracy": r["test_accuracy"]["mean"], "accuracy_std": r["test_accuracy"]["std"],
        "tpr_at_0.1pct_all": StratumMetrics.from_json(every).at(0.001).tpr,
        "tpr_at_1pct_init": None if init is None else StratumMetrics.from_json(init).at(0.01).tpr,
        "epsilon_lb": None if canaries is None else canaries["epsilon_lb"],
        "epsilon_lb_heuristic": None if canaries is None else canaries["epsilon_lb_heuristic"],
        "epsilon_proven": None if privacy is None else privacy["epsilon"],
        "violations": 0 if privacy is None else len(privacy["violations"])})
  return rows


def nearest_dp_baseline(rows: list[dict]) -> list[dict]:
  """For every DM / DSA recipe, the DP-SGD recipe of nearest test accuracy."""
  dp = [r for r in rows if r["kind"] == "dpsgd"]
  pairs = []
  for r in rows:
    if r["method"] in ("dm", "dsa") and dp:
      other = min(dp, key=lambda d: abs(d["accuracy"] - r["accuracy"]))
      pairs.append({"recipe": r["recipe"], "dpsgd": other["recipe"],
                    "accuracy": r["accuracy"], "dpsgd_accuracy": other["accuracy"],
                    "tpr": r["tpr_at_0.1pct_all"], "dpsgd_tpr": other["tpr_at_0.1pct_all"],
                    "epsilon_lb": r["epsilon_lb"], "dpsgd_epsilon_lb": other["epsilon_lb"],
                    "dpsgd_epsilon": other["epsilon_proven"]})
  return pairs


def bound_violations(results: dict) -> list[dict]:
  """Every violation of a proven bound, named by recipe."""
  return [{"recipe": name, **v} for name, r in results["recipes"].items()
          if r.get("privacy") for v in r["privacy"]["violations"]]
