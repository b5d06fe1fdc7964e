"""The privacy audit end to end: runs of every recipe, attacks, visual privacy, theory, report.

    results = run_audit(get_preset("quick"), "/tmp/audit")

Layout of the output directory (bound to the config: another study is refused):
    fingerprint.json       the AuditConfig of this directory
    stages/<recipe>/       resumable stages of every recipe (see dcjax.runs.pipeline) and
                           summary.json, the recipe's metrics (recomputed only if missing)
    results.json           every number of the report (written atomically, last)
    scores.npz             every attack's (M, N) scores, keep masks, labels, exposures
    report.md              the report; report_appendix.md: every attack and stratum
    figures/               the report's figures

The computation is ``dcjax.audit.analysis``, the figures ``dcjax.audit.figures``, the report
``dcjax.audit.report``; this module runs them in order and keeps the stages.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np

from dcjax import checkpoint, distributed, io, key_tree, logs, workdir
from dcjax.audit import analysis, figures
from dcjax.audit import report as report_lib
from dcjax.audit.config import AuditConfig, recipes, runs_config
from dcjax.data import load_dataset
from dcjax.data.canaries import insert_canaries
from dcjax.mia import balanced_keep_masks
from dcjax.privacy import auditing
from dcjax.runs import merge_runs, run_recipe, run_recipe_per_run

# what the audit writes in its directory; --recompute removes these and nothing else
OWNED_ENTRIES = ("stages", "figures", "results.json", "report.md", "report_appendix.md",
                 "scores.npz", "accuracy_vs_tpr.png",
                 "accuracy_vs_epsilon.png", "attack_vs_shadows.png", "roc_*.png",
                 "nearest_*.png", "init_*.png", "distances_*.png", "exposed_*.png")


def prepare(cfg: AuditConfig, data_dir: str | None = None):
  """Everything that can fail on bad input, before any work: data, pool, masks, recipes.

  Returns (pool, test_set, keep (M, N), recipes, keys, is_canary (N,)).
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
  # a key of its own (not a fifth split), so that audits without canaries keep their keys
  pool, is_canary = insert_canaries(key_tree.purpose(key, key_tree.CANARY), pool,
                                    cfg.canaries, cfg.canary_kind)
  if cfg.canaries:
    auditing.require_auditor()  # the canary bound's library, before hours of runs
  keep = balanced_keep_masks(k_keep, cfg.runs, len(pool))
  recipe_list = recipes(cfg, pool.image_shape)
  for recipe in recipe_list:  # before fixing shapes, which may need every class populated
    recipe.check_pool(pool, keep)
  recipe_list = [r.with_fixed_shapes(pool, keep) for r in recipe_list]
  return pool, test_set, keep, recipe_list, {"runs": k_runs, "theory": k_theory}, is_canary


# Fields that only change the analysis of finished stages: the output directory is not bound
# to them, a recipe's cached summary is (except for the report-only fields).
ANALYSIS_FIELDS = ("attacks", "ssim_shortlist", "primary_attack", "theory_iterations")
REPORT_ONLY_FIELDS = ("primary_attack", "theory_iterations")


def study_identity(cfg: AuditConfig, ignore=ANALYSIS_FIELDS) -> dict:
  """The fields that define the runs (the output directory is bound to them)."""
  return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ignore}


def summary_stage(out: str, recipe, cfg: AuditConfig, membership_only: bool
                  ) -> checkpoint.Stage:
  """A recipe's summary: derived from its run stages, so a mismatch means redo, not refuse."""
  return checkpoint.Stage(os.path.join(out, "stages", str(recipe)),
                          {"config": study_identity(cfg, ignore=REPORT_ONLY_FIELDS),
                           "membership_only": membership_only},
                          marker="summary.json", tree=None)


def _recipe_summary(cfg: AuditConfig, recipe, out: str, keys, pool, test_set, keep, is_canary,
                    recompute: bool, progress: bool, membership_only: bool, writer) -> dict:
  """One recipe: its runs (resumable stages; with several processes, the per-run stages they
  computed, merged), the analysis against its guarantee, its figures. Returns its summary for
  results.json."""
  runs_cfg = runs_config(cfg, pool.image_shape, recipe)
  stage_dir = os.path.join(out, "stages")
  if distributed.process_count() > 1:
    res = merge_runs(run_recipe_per_run(stage_dir, keys["runs"], pool, test_set, keep, recipe,
                                        range(cfg.runs), runs_cfg, progress=progress))
  else:
    res = run_recipe(stage_dir, keys["runs"], pool, test_set, keep, recipe, runs_cfg,
                     recompute=recompute, progress=progress, writer=writer)
  if membership_only:
    res = dataclasses.replace(res, train_images=None)
  _, guarantee = recipe.plan(runs_cfg.train, pool, keep)
  result = analysis.analyse_recipe(cfg, recipe, res, pool, is_canary, guarantee,
                                   test_labels=test_set.labels)
  io.write_npz_atomic(os.path.join(stage_dir, str(recipe), SCORES), result.arrays)
  return {**result.summary, "figures": figures.draw_recipe(
      str(recipe), result, out, f"{cfg.dataset}, {cfg.runs} runs")}


def _timed_summary(cfg: AuditConfig, recipe, out, keys, pool, test_set, keep, is_canary,
                   recompute: bool, progress: bool, membership_only: bool, writer) -> dict:
  """``_recipe_summary`` with its seconds and the part of them jax spent compiling."""
  since = time.time()
  with logs.CompileClock() as clock:
    summary = _recipe_summary(cfg, recipe, out, keys, pool, test_set, keep, is_canary,
                              recompute, progress, membership_only, writer)
  summary["seconds"] = round(time.time() - since, 1)
  summary["compile_seconds"] = round(clock.seconds, 1)  # of "seconds": jax's compiles
  _write_metrics(writer, str(recipe), summary, cfg)
  return summary


def _header(cfg: AuditConfig, pool_size: int, test_size: int, preset, membership_only: bool
            ) -> dict:
  return {"schema": analysis.SCHEMA, "config": dataclasses.asdict(cfg), "preset": preset,
          "dataset": cfg.dataset, "pool_size": pool_size, "runs": cfg.runs,
          "test_size": test_size, "primary_attack": cfg.primary_attack,
          "membership_only": membership_only, "recipes": {},
          "code_version": io.code_version(), "machine": io.machine()}


def _compute_share(cfg: AuditConfig, out: str, keys, pool, test_set, keep, recipe_list,
                   recompute: bool, progress: bool, writer, log) -> bool:
  """Several processes (``dcjax.distributed``): this one computes its runs of every recipe
  into per-run stages under out/stages (a filesystem every host sees), then all meet. True for
  process 0, which goes on to merge the runs and write the report; False for the others."""
  distributed.barrier("dcjax-audit-claimed")
  mine = distributed.owned_runs(cfg.runs)
  log(f"process {distributed.process_index()} of {distributed.process_count()}: runs {mine}")
  for recipe in recipe_list:
    run_recipe_per_run(os.path.join(out, "stages"), keys["runs"], pool, test_set, keep,
                       recipe, mine, runs_config(cfg, pool.image_shape, recipe),
                       recompute=recompute, progress=progress, writer=writer)
  distributed.barrier("dcjax-audit-runs-done")
  return distributed.process_index() == 0


def _write_metrics(writer, name: str, summary: dict, cfg: AuditConfig) -> None:
  """A computed recipe's scalars: test accuracy per run (step: the run), the primary attack's
  AUC on all members, the stage's seconds and its runs per hour."""
  for run, acc in enumerate(summary["test_accuracy"]["per_run"]):
    writer.scalar(f"{name}/test_accuracy", acc, run)
  every = summary["attacks"][cfg.primary_attack]["all_members"]
  if every is not None:
    writer.scalar(f"{name}/{cfg.primary_attack}/auc_all_members", every["auc"])
  writer.scalar(f"{name}/stage_seconds", summary["seconds"])
  writer.scalar(f"{name}/runs_per_hour", cfg.runs * 3600 / max(summary["seconds"], 1e-9))


def _across_recipes(cfg: AuditConfig, results: dict, out: str) -> None:
  """What compares the recipes: the baseline verdicts, the DP table, the bound violations and
  the summary figures, added to ``results``."""
  results["baseline"] = analysis.baseline_name(results)
  results["comparison"] = analysis.compare_with_baseline(results, cfg.primary_attack)
  results["epsilon_table"] = analysis.epsilon_rows(results, cfg.primary_attack)
  results["dp_comparison"] = analysis.nearest_dp_baseline(results["epsilon_table"])
  results["bound_violations"] = analysis.bound_violations(results)
  results["figures"] = {"accuracy_vs_tpr": figures.draw_accuracy_vs_tpr(
      analysis.accuracy_points(results, cfg.primary_attack), out,
      title=f"{cfg.dataset}: accuracy vs TPR at 0.1% FPR ({cfg.primary_attack}, {cfg.runs} "
      "runs)")}
  budget_curves = {n: r["shadow_budget"] for n, r in results["recipes"].items()
                   if r.get("shadow_budget")}
  if budget_curves:
    results["figures"]["attack_vs_shadows"] = figures.draw_attack_vs_shadows(
        budget_curves, out, title=f"{cfg.dataset}: attacks against the number of reference "
        f"runs ({cfg.runs} runs, each the target once)")
  if any(r["epsilon_lb"] is not None or r["epsilon_proven"] is not None
         for r in results["epsilon_table"]):
    results["figures"]["accuracy_vs_epsilon"] = figures.draw_accuracy_vs_epsilon(
        results["epsilon_table"], out, title=f"{cfg.dataset}: accuracy vs epsilon (proven for "
        f"DP recipes, canary lower bound for the others; {cfg.runs} runs)")


def run_audit(cfg: AuditConfig, out: str, data_dir: str | None = None, recompute: bool = False,
              progress: bool = True, preset: str | None = None, log=logs.LOGGER.info,
              membership_only: bool = False,
              writer: logs.MetricsWriter | None = None) -> dict | None:
  """Runs (or resumes) the audit of ``cfg`` into directory ``out``; returns results.json
  (None in the processes other than 0 of a study on several hosts: ``dcjax.distributed``).

  membership_only: the runs and the membership attacks alone (no released-set analysis and no
  theory), as ``experiments.mia``. log: where the stage lines go (default: the timestamped
  ``dcjax`` logger). writer: a ``dcjax.logs.MetricsWriter`` for condensation losses and each
  recipe's accuracies, AUC and throughput (None: nothing written).
  """
  writer, start, out = writer or logs.MetricsWriter(), time.time(), os.path.abspath(out)
  # per recipe: the seconds of the invocation that computed it, and the part spent compiling
  stage_seconds, compile_seconds = {}, {}
  pool, test_set, keep, recipe_list, keys, is_canary = prepare(cfg, data_dir)
  # the data too: a changed data file under the same name (npz:PATH) is refused, not mixed
  data = checkpoint.array_digest(pool.images, pool.labels, test_set.images, test_set.labels)
  if distributed.process_index() == 0:  # one claim of the shared directory
    workdir.claim(out, {"study": "privacy audit", "config": study_identity(cfg), "data": data},
                  owned=OWNED_ENTRIES, recompute=recompute)
  log(f"audit of {cfg.dataset}: pool {len(pool)}, {cfg.runs} runs x {len(recipe_list)} "
      f"recipes, backend {jax.default_backend()} -> {out}")
  if distributed.process_count() > 1 and not _compute_share(
      cfg, out, keys, pool, test_set, keep, recipe_list, recompute, progress, writer, log):
    return None
  results = _header(cfg, len(pool), len(test_set), preset, membership_only)
  resumed = []
  for i, recipe in enumerate(recipe_list):
    done = time.time() - start
    computed = i - len(resumed)  # the ETA counts only recipes computed in this invocation
    eta = f", ~{done / computed * (len(recipe_list) - i) / 60:.1f} min left" if computed else ""
    log(f"[{i + 1}/{len(recipe_list)}] {recipe} ({done / 60:.1f} min elapsed{eta})")
    stage = summary_stage(out, recipe, cfg, membership_only)
    loaded = stage.load(on_mismatch="redo")
    if loaded is None:
      summary = _timed_summary(cfg, recipe, out, keys, pool, test_set, keep, is_canary,
                               recompute, progress, membership_only, writer)
      summary = stage.save(payload=summary).payload
    else:
      summary = loaded.payload
      resumed.append(str(recipe))
    results["recipes"][str(recipe)] = summary
    stage_seconds[str(recipe)] = summary["seconds"]
    compile_seconds[str(recipe)] = summary.get("compile_seconds")  # None: staged before
    log(report_lib.recipe_line(str(recipe), summary, cfg.primary_attack))

  since = time.time()
  results["theory"] = None if membership_only else analysis.theory(
      cfg, keys["theory"], pool, keep, results)
  stage_seconds["theory"] = round(time.time() - since, 1)
  _across_recipes(cfg, results, out)
  results["stage_seconds"] = stage_seconds
  results["compile_seconds"] = compile_seconds
  results["resumed_recipes"] = resumed  # loaded from stages/, their seconds are from then
  results["wall_seconds"] = round(time.time() - start, 1)
  _merge_scores(out, results["recipes"], pool.labels,
                np.zeros(len(pool), bool) if is_canary is None else is_canary, log)
  _publish(results, out, log)
  return results


SCORES = "scores.npz"


def _merge_scores(out: str, recipe_names, labels, is_canary, log) -> None:
  """out/scores.npz from each recipe's stages/<recipe>/scores.npz: ``labels`` (N,),
  ``is_canary`` (N,), and per recipe ``<recipe>/keep`` (M, N), ``<recipe>/init`` (M, N) (init
  image of the run), ``<recipe>/scores/<attack>`` (M, N) leave-one-out membership scores and
  ``<recipe>/exposure/<attack>`` (N,) TPR at 1% FPR over the example's IN runs."""
  arrays = {"labels": np.asarray(labels), "is_canary": np.asarray(is_canary, bool)}
  for name in recipe_names:
    path = os.path.join(out, "stages", name, SCORES)
    if not os.path.exists(path):  # a summary staged before scores.npz existed
      log(f"{name}: no {SCORES} in its stages (staged by an older dcjax); not in {SCORES}")
      continue
    with np.load(path) as part:
      arrays.update({f"{name}/{k}": part[k] for k in part.files})
  io.write_npz_atomic(os.path.join(out, SCORES), arrays)


def _publish(results: dict, out: str, log) -> None:
  io.write_json_atomic(os.path.join(out, "results.json"), results)
  io.write_text_atomic(os.path.join(out, report_lib.APPENDIX),
                       report_lib.render_appendix(results))
  io.write_text_atomic(os.path.join(out, "report.md"), report_lib.render(results))
  log(f"wrote {out}/report.md and results.json ({results['wall_seconds'] / 60:.1f} min)")
