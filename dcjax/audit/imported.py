"""dcjax's attacks, intervals, shadow-budget curve, exposure and report on runs that another tool
trained (``dcjax.mia.lira_layout``), and the export of an audit's runs into that layout.

    results = audit_logits("exp/cifar10", "/tmp/mia_report")  # experiments.mia --from-logits
    export_audit(cfg, "/tmp/audit", "/tmp/lira")  # experiments.mia ... --export-lira
"""

from __future__ import annotations

import os
import time

import numpy as np

from dcjax import io, logs, plots, workdir
from dcjax.audit import analysis
from dcjax.audit import report as report_lib
from dcjax.audit.config import AuditConfig, runs_config
from dcjax.audit.figures import FIGURES
from dcjax.mia import RMIA_ATTACKS, Population, attack_runs, lira_layout
from dcjax.mia.attacks import DEFAULT_ATTACKS


OWNED_ENTRIES = ("figures", "results.json", "report.md", "scores.npz")


def _recipes_in(directory: str) -> dict[str, str]:
  """{name: folder}: ``directory`` itself when it holds y_train.npy, else each subfolder that
  does (an export of several recipes)."""
  if os.path.exists(os.path.join(directory, "y_train.npy")):
    return {os.path.basename(os.path.normpath(directory)): directory}
  found = {name: os.path.join(directory, name) for name in sorted(os.listdir(directory))
           if os.path.exists(os.path.join(directory, name, "y_train.npy"))} if os.path.isdir(
               directory) else {}
  if not found:
    raise FileNotFoundError(f"{directory} holds no y_train.npy, nor does any folder in it: not "
                            "runs in the LiRA layout (see dcjax.mia.lira_layout).")
  return found


def attack_loaded(loaded: lira_layout.LoadedRuns, attacks, primary: str, seed: int
                  ) -> tuple[dict, dict, dict]:
  """One set of runs: (summary for results.json, curves for the ROC figure, arrays for
  scores.npz)."""
  population = None
  if loaded.population_logits is not None:
    population = Population(loaded.population_logits, loaded.population_labels, "population")
  res = attack_runs(loaded.view_logits, loaded.labels, loaded.keep, loaded.init_indices,
                    attacks, exclude=loaded.exclude, population=population)
  extras, arrays = analysis.attack_extras(res, loaded.view_logits, loaded.labels, loaded.keep,
                                          loaded.init_indices, population, loaded.exclude,
                                          primary, seed)
  summary = {"attacks": {a: r.to_json() for a, r in res.items()}, **extras}
  return summary, {a: r.curves for a, r in res.items()}, arrays


def audit_logits(directory: str, out: str, attacks=None, primary: str = "lira_offline_fixed",
                 seed: int = 0, log=logs.LOGGER.info) -> dict:
  """Attacks the runs under ``directory`` (one set, or one per subfolder) and writes
  results.json, report.md, scores.npz and figures to ``out``. ``attacks`` None: dcjax's
  defaults, RMIA where the runs carry population logits."""
  start = time.time()
  sets = _recipes_in(directory)
  loaded = {name: lira_layout.import_runs(path) for name, path in sets.items()}
  if attacks is None:
    has_population = all(v.population_logits is not None for v in loaded.values())
    attacks = [a for a in (*DEFAULT_ATTACKS, "lira_offline_fixed_per_view")
               if has_population or a not in RMIA_ATTACKS]
  if primary not in attacks:
    raise ValueError(f"primary attack {primary!r} is not among the attacks {list(attacks)}.")
  # out is dcjax's: a folder with other files is refused, never written into
  workdir.claim(out, {"study": "membership attacks on runs in the LiRA layout",
                      "source": os.path.abspath(directory)}, owned=OWNED_ENTRIES)
  results = {"source": os.path.abspath(directory), "primary_attack": primary,
             "attacks": list(attacks), "recipes": {}, "figures": {},
             "code_version": io.code_version()}
  arrays = {}
  for name, runs in loaded.items():
    log(f"{name}: {runs.keep.shape[0]} runs x {runs.keep.shape[1]} examples, "
        f"{runs.view_logits.shape[1]} views")
    summary, curves, per = attack_loaded(runs, attacks, primary, seed)
    summary["runs"], summary["examples"] = int(runs.keep.shape[0]), int(runs.keep.shape[1])
    summary["figures"] = {"roc": f"{FIGURES}/roc_{io.slug(name)}.png"}
    plots.roc_panels(curves, os.path.join(out, summary["figures"]["roc"]), title=name)
    results["recipes"][name] = summary
    arrays.update({f"{name}/{k}": v for k, v in per.items()})
    arrays[f"{name}/labels"] = runs.labels
  results["figures"]["attack_vs_shadows"] = f"{FIGURES}/attack_vs_shadows.png"
  plots.attack_vs_shadows({n: r["shadow_budget"] for n, r in results["recipes"].items()},
                          os.path.join(out, results["figures"]["attack_vs_shadows"]),
                          title="attacks against the number of reference runs")
  results["wall_seconds"] = round(time.time() - start, 1)
  io.write_npz_atomic(os.path.join(out, "scores.npz"), arrays)
  io.write_json_atomic(os.path.join(out, "results.json"), results)
  io.write_text_atomic(os.path.join(out, "report.md"), report_lib.render_imported(results))
  log(f"wrote {out}/report.md, results.json and scores.npz")
  return results


def export_audit(cfg: AuditConfig, out: str, dest: str, data_dir: str | None = None,
                 log=logs.LOGGER.info) -> dict[str, str]:
  """Every recipe of the finished audit in ``out`` (its stages; nothing is recomputed that is
  there) exported to ``dest/<recipe>/`` in the LiRA layout, with the test split as RMIA's
  population and the canaries as excluded examples. Returns {recipe: folder}."""
  from dcjax.audit.study import prepare  # pylint: disable=import-outside-toplevel
  from dcjax.runs import run_recipe  # pylint: disable=import-outside-toplevel
  if not os.path.exists(os.path.join(out, "results.json")):
    raise FileNotFoundError(f"{out} holds no finished audit (no results.json): run the audit "
                            "first, then export its runs.")
  pool, test_set, keep, recipe_list, keys, is_canary = prepare(cfg, data_dir)
  written = {}
  for recipe in recipe_list:
    res = run_recipe(os.path.join(out, "stages"), keys["runs"], pool, test_set, keep, recipe,
                     runs_config(cfg, pool.image_shape, recipe))
    folder = os.path.join(dest, io.slug(str(recipe)))
    lira_layout.export_runs(folder, res.view_logits, res.keep, pool.labels, res.init_indices,
                            exclude=None if is_canary is None else np.asarray(is_canary, bool),
                            population_logits=res.test_view_logits,
                            population_labels=test_set.labels)
    written[str(recipe)] = folder
    log(f"{recipe}: {keep.shape[0]} runs -> {folder}")
  return written
