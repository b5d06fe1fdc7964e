"""The audit end to end at a tiny size: results.json is complete and consistent, it resumes, and
bad input is refused before any work."""

import dataclasses
import json
import os
import re
import shutil
from types import SimpleNamespace
from typing import ClassVar

import jax
import numpy as np
import pytest

from dcjax.audit import (AuditConfig, compare_with_baseline, get_preset, recipes, run_audit,
                         runs_config)
from dcjax.augment import DEFAULT_STRATEGY
from dcjax.audit.study import prepare
from dcjax.checkpoint import ConfigMismatchError, load_tree
from dcjax.condense import settings as settings_lib
from dcjax.mia import STRATA, RocPoint, StratumMetrics
from dcjax.runs import run_recipe
from experiments import audit as audit_exp
from experiments import mia as mia_exp
from dcjax.audit import imported
from dcjax.audit import analysis
from dcjax.audit import report as report_lib
from dcjax.mia import balanced_keep_masks
from dcjax.privacy import accounting
from dcjax.runs import RunResults
from dcjax.runs.recipes import Real
from tests.golden import (TINY, compare_with_golden, differences, machine_identity,
                          metrics_view)



DPSGD_NAME, NDPDC_NAME = "dpsgd(4,1,1e-05)", "condense(ndpdc,2,noise,4)"


@pytest.fixture(scope="module")
def tiny_audit(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("audit"))
  results = run_audit(TINY, out, progress=False, preset="tiny", log=lambda *_: None)
  return out, results


def test_the_refactor_changed_no_number(tiny_audit):
  """The metrics equal those the code before the architecture refactor computed for TINY
  (tests/data/golden_tiny.json): every number, exactly, on the CPU model and jax version that
  computed them, except for the recipes of a later, listed change of float summation order
  (``float_order_changes``), which are compared to its relative tolerance. On another CPU
  model XLA may round differently and training amplifies it, so there only what no rounding
  changes is compared: every key and every count."""
  _, results = tiny_audit
  with open(os.path.join(os.path.dirname(__file__), "data", "golden_tiny.json")) as f:
    golden = json.load(f)
  got = json.loads(json.dumps(metrics_view(results)))
  if golden["machine"] != machine_identity():
    diff = differences(_counts(got), _counts(golden["metrics"]))
  else:
    diff = compare_with_golden(got, golden)
  assert not diff, "\n".join(diff[:20])


EXACT_ANYWHERE = ("positives", "negatives", "training_set_size", "has_init_images", "kind",
                  "recipe", "stratum", "attack", "baseline", "pool_size", "runs")


def _counts(tree, key=None):
  """The structure of a metrics view with the values no rounding changes (trial counts, names,
  sizes); every other leaf is replaced by its type."""
  if isinstance(tree, dict):
    return {k: _counts(v, k) for k, v in tree.items()}
  if isinstance(tree, list):
    return [_counts(v, key) for v in tree]
  return tree if key in EXACT_ANYWHERE else type(tree).__name__


def _intervals(m):
  yield m["auc"], m["auc_ci95"]
  for t in m["tpr_at_fpr"].values():
    yield t["tpr"], t["tpr_ci95"]


def test_results_cover_every_recipe_attack_and_stratum_consistently(tiny_audit):
  out, results = tiny_audit
  with open(os.path.join(out, "results.json")) as f:
    stored = json.load(f)
  assert set(stored["recipes"]) == {
      "real", "random_subset(2)", "init_only(2)", "condense(dm,2,real)", "condense(dm,2,noise)",
      DPSGD_NAME, NDPDC_NAME}
  runs, pool = TINY.runs, TINY.pool_size - TINY.canaries  # canaries are not in the strata
  assert stored["runs"] == runs and stored["pool_size"] == TINY.pool_size
  for name, r in stored["recipes"].items():
    assert len(r["test_accuracy"]["per_run"]) == runs
    assert r["test_accuracy"]["mean"] == pytest.approx(np.mean(r["test_accuracy"]["per_run"]))
    groups = [("attacks", a, r["attacks"][a]) for a in TINY.attack_names]
    if r["released_set"] is not None:
      groups += [("released", m, r["released_set"][m]["attack"]) for m in ("l2", "ssim")]
    else:
      assert name in ("real", DPSGD_NAME)
    for _, _, strata in groups:
      assert set(strata) == set(STRATA)
      has_init = r["has_init_images"]
      assert (strata["init_images"] is None) == (not has_init), name
      every = strata["all_members"]
      # every run is the target once: runs x pool trials, half of them members
      assert every["positives"] == runs * pool // 2 and every["negatives"] == runs * pool // 2
      if has_init:
        # every run's ipc x 10 init images, less any that is a canary (left out of strata)
        init = strata["init_images"]["positives"]
        assert runs * (TINY.ipc * 10 - TINY.canaries) <= init <= runs * TINY.ipc * 10
        assert (strata["init_images"]["positives"] + strata["other_members"]["positives"]
                == every["positives"])
      for m in strata.values():
        if m is None:
          continue
        assert m["negatives"] == runs * pool // 2
        for point, (lo, hi) in _intervals(m):
          assert lo - 1e-12 <= point <= hi + 1e-12, (name, point, lo, hi)
  compared = {row["recipe"] for row in stored["comparison"]}
  assert compared == set(stored["recipes"]) - {"random_subset(2)"}
  assert all(row["verdict"] in ("not distinguishable", "higher leakage", "lower leakage",
                                "mixed") for row in stored["comparison"])
  check = stored["theory"]["closed_form_check"]
  assert check["max_error_over_norm"] < 1e-3
  assert stored["theory"]["m_over_n"][0]["m"] == TINY.ipc * 10
  # canaries: every recipe, every attack, runs x canaries trials, bounds that are numbers
  for name, r in stored["recipes"].items():
    c = r["canaries"]
    assert c["count"] == TINY.canaries and set(c["attacks"]) == set(TINY.attack_names)
    m = c["attacks"][TINY.primary_attack]["metrics"]
    assert m["positives"] + m["negatives"] == runs * TINY.canaries
    assert c["epsilon_lb"] == c["one_run"]["epsilon_lb"] >= 0
    assert len(c["one_run"]["per_run"]) == runs and c["epsilon_lb_heuristic"] >= 0
    assert (r["privacy"] is not None) == (name in (DPSGD_NAME, NDPDC_NAME))
  # the DP recipes: accounted at their target, bound checked, no violation by an honest one
  for name in (DPSGD_NAME, NDPDC_NAME):
    p = stored["recipes"][name]["privacy"]
    assert 3.5 < p["epsilon"] <= 4 + 1e-6 and p["violations"] == []
    fpr, tpr = (np.asarray(v) for v in p["bound_curve"])
    assert np.all(tpr >= fpr - 1e-9) and np.all(np.diff(tpr) >= -1e-9)
  assert stored["bound_violations"] == []
  rows = {r["recipe"]: r for r in stored["epsilon_table"]}
  assert rows[DPSGD_NAME]["epsilon_proven"] == stored["recipes"][DPSGD_NAME]["privacy"]["epsilon"]
  assert rows["real"]["epsilon_proven"] is None
  assert {p["dpsgd"] for p in stored["dp_comparison"]} == {DPSGD_NAME}


def test_random_subset_init_images_are_their_own_nearest_real_images(tiny_audit):
  _, results = tiny_audit
  released = results["recipes"]["random_subset(2)"]["released_set"]
  # the released set IS its init images: distance 0, found by both metrics, attack is perfect
  assert released["l2"]["own_init_fraction"] == 1.0
  assert released["ssim"]["own_init_fraction"] == 1.0
  assert released["l2"]["attack"]["init_images"]["tpr_at_fpr"]["0.01"]["tpr"] == 1.0
  noise = results["recipes"]["condense(dm,2,noise)"]["released_set"]
  assert noise["l2"]["own_init_fraction"] is None


def test_scores_budget_curve_exposure_and_rmia_choices_are_saved(tiny_audit):
  out, results = tiny_audit
  real = results["recipes"]["real"]
  n = results["pool_size"]
  with np.load(os.path.join(out, "scores.npz")) as scores:
    assert scores["labels"].shape == (n,) and scores["is_canary"].sum() == TINY.canaries
    for name, r in results["recipes"].items():
      assert scores[f"{name}/keep"].shape == (TINY.runs, n)
      for attack in TINY.attack_names:
        assert scores[f"{name}/scores/{attack}"].shape == (TINY.runs, n)
        assert scores[f"{name}/exposure/{attack}"].shape == (n,)
    # the scores are those the metrics were computed from: the loss attack's AUC again
    from dcjax.mia import attack_metrics  # pylint: disable=import-outside-toplevel
    kept = ~scores["is_canary"]
    again = attack_metrics(scores["real/scores/loss"][:, kept], scores["real/keep"][:, kept])
    assert again.auc == pytest.approx(real["attacks"]["loss"]["all_members"]["auc"], abs=1e-12)
  ks = {a: [row["k"] for row in rows] for a, rows in real["shadow_budget"].items()}
  assert ks["lira_offline_fixed"] == [1, 2, 3] and ks["rmia_online"] == [2, 3]
  assert "loss" not in ks and not any(a.endswith("_per_view") for a in ks)
  details = real["attack_details"]["rmia_offline"]
  assert details["population"] == "test split" and details["population_size"] == (
      results["test_size"])
  assert len(details["offline_a"]["per_target"]) == TINY.runs
  top = real["exposure"]["most_exposed"]
  assert len(top) == 16 and all(0.0 <= t["exposure"] <= 1.0 for t in top)
  assert [t["exposure"] for t in top] == sorted((t["exposure"] for t in top), reverse=True)
  with open(os.path.join(out, "report.md")) as f:
    report = f.read()
  assert "## Attacks against the number of reference runs" in report
  assert "## Per-example exposure" in report and "RMIA's population: the test split" in report


def test_exported_runs_read_back_give_the_audits_own_metrics(tiny_audit, tmp_path):
  out, results = tiny_audit
  dest = str(tmp_path / "lira")
  written = imported.export_audit(TINY, out, dest, log=lambda *_: None)
  assert set(written) == set(results["recipes"])
  again = mia_exp.main(["--from-logits", dest, "--out", str(tmp_path / "report"),
                        "--attacks", TINY.attacks, "--primary-attack", TINY.primary_attack])
  for name, folder in written.items():
    mine = results["recipes"][name]
    theirs = again["recipes"][os.path.basename(folder)]
    for attack in TINY.attack_names:
      for stratum in STRATA:
        a, b = mine["attacks"][attack][stratum], theirs["attacks"][attack][stratum]
        if a is None:
          assert b is None
          continue
        # DP recipes add a 10% FPR row (checked against their bound): compare the shared rows
        shared = set(a["tpr_at_fpr"]) & set(b["tpr_at_fpr"])
        assert shared and {**a, "tpr_at_fpr": {k: a["tpr_at_fpr"][k] for k in shared}} == {
            **b, "tpr_at_fpr": {k: b["tpr_at_fpr"][k] for k in shared}}, (name, attack, stratum)
    assert theirs["shadow_budget"] == mine["shadow_budget"]
    assert theirs["exposure"] == mine["exposure"]


def test_report_references_every_figure_and_figures_exist(tiny_audit):
  out, results = tiny_audit
  with open(os.path.join(out, "report.md")) as f:
    report = f.read()
  linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))
  expected = {results["figures"]["accuracy_vs_tpr"], results["figures"]["attack_vs_shadows"]}
  for r in results["recipes"].values():
    expected |= set(r["figures"].values())
  assert expected <= linked
  for path in linked:
    assert os.path.getsize(os.path.join(out, path)) > 2000, path
  assert "figures/accuracy_vs_epsilon.png" in linked
  assert f"Only `{DPSGD_NAME}`, `{NDPDC_NAME}` carry a differential-privacy guarantee" in report
  assert "## Differential privacy as the yardstick" in report and "BUG" not in report
  assert all(p.startswith("figures/") for p in linked)
  with open(os.path.join(out, "report_appendix.md")) as f:
    appendix = f.read()
  rows = [line for line in appendix.splitlines() if line.startswith("| real | lira")]
  assert len(rows) == 5 * 2  # 5 LiRA attacks x 2 strata (real has no init images)
  assert "](report_appendix.md)" in report


def test_a_planted_bound_violation_is_reported_in_red_and_fails_the_command(tiny_audit,
                                                                             monkeypatch):
  _, results = tiny_audit
  violation = {"recipe": DPSGD_NAME, "where": "loss/all_members", "fpr": 0.01, "tpr": 0.9,
               "tpr_low": 0.8, "bound": 0.05}
  report = report_lib.render({**results, "bound_violations": [violation]})
  assert "> [!CAUTION]\n> **BUG: an attack beat a proven" in report  # survives Markdown
  assert "<p" not in report and "<span" not in report
  monkeypatch.setattr(audit_exp, "run_audit", lambda *a, **k: {"bound_violations": [violation]})
  with pytest.raises(SystemExit, match="BUG: 1 attack result"):
    audit_exp.main(["--preset", "quick"])


def test_rerun_resumes_without_recomputing_and_gives_the_same_numbers(tiny_audit, tmp_path):
  out, results = tiny_audit
  again = run_audit(TINY, out, progress=False, preset="tiny", log=lambda *_: None)
  assert again["resumed_recipes"] == list(results["recipes"])
  for name, r in results["recipes"].items():
    assert again["recipes"][name]["attacks"] == json.loads(json.dumps(r["attacks"]))
  # the primary attack only changes the report: same directory, nothing recomputed
  other = run_audit(dataclasses.replace(TINY, primary_attack="loss"), out, progress=False,
                    log=lambda *_: None)
  assert other["resumed_recipes"] == list(results["recipes"])
  assert {row["attack"] for row in other["comparison"]} == {"loss"}
  # fewer attacks (summaries recomputed from finished stages, nothing retrained): see
  # test_architecture.py::test_a_condenser_added_through_the_registry_runs_in_the_audit


def test_a_different_study_in_the_same_directory_is_refused_before_work(tiny_audit):
  out, _ = tiny_audit
  before = sorted(os.listdir(os.path.join(out, "stages")))
  with pytest.raises(ConfigMismatchError, match="different configuration"):
    run_audit(dataclasses.replace(TINY, seed=1), out, progress=False, log=lambda *_: None)
  assert sorted(os.listdir(os.path.join(out, "stages"))) == before


def test_bad_input_is_named(tmp_path):
  with pytest.raises(ValueError, match="Unknown recipe"):
    dataclasses.replace(TINY, recipes="real,random_subset,gan")
  with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
    dataclasses.replace(TINY, dataset="imagenet")
  with pytest.raises(ValueError, match="random_subset baseline"):
    dataclasses.replace(TINY, recipes="real,condense(dm,init=real)")
  with pytest.raises(ValueError, match="even int >= 4"):
    dataclasses.replace(TINY, runs=5)
  with pytest.raises(ValueError, match="train_compute_dtype must be one of .* got 'fp8'"):
    dataclasses.replace(TINY, train_compute_dtype="fp8")
  with pytest.raises(ValueError, match="Unknown preset 'huge'"):
    get_preset("huge")
  with pytest.raises(SystemExit):
    audit_exp.main(["--preset", "huge"])
  with pytest.raises(ValueError, match="ipc=20"):
    run_audit(dataclasses.replace(TINY, ipc=20), str(tmp_path / "x"), progress=False,
              log=lambda *_: None)
  assert not os.path.exists(tmp_path / "x")


def test_paper_presets_train_as_the_reference_evaluates():
  """Synthetic-size training sets: 1000 epochs with the dataset's non-Siamese DSA (what the
  published accuracies assume); `real`: 50 epochs without. Every run's network starts from
  the reference's PyTorch initialisation."""
  cfg = get_preset("cifar10_ipc10")
  shape = (32, 32, 3)
  for recipe in recipes(cfg, shape):
    rc = runs_config(cfg, shape, recipe)
    assert rc.init_scheme == "torch"
    if recipe.trains_on_pool:
      assert (rc.train.epochs, rc.train.augment) == (50, None)
    else:
      assert (rc.train.epochs, rc.train.augment) == (1000, DEFAULT_STRATEGY), str(recipe)


def test_cli_overrides_preset_fields_and_help_lists_presets(capsys):
  parser = audit_exp.build_parser()
  help_text = parser.format_help()
  for name in ("quick", "default", "cifar10_ipc50", "celeba_ipc10", "fashion_mnist_ipc50"):
    assert name in help_text
  for field in dataclasses.fields(AuditConfig):
    if field.name != "condensers":  # structured: set by the --<method>.<field> flags
      assert "--" + field.name.replace("_", "-") in help_text
  for flag in ("--dm.iterations", "--dsa.outer_loop", "--mtt.syn_steps", "--frepo.lr_img",
               "--ndpdc.epsilon"):
    assert flag in help_text
  args = parser.parse_args(["--preset", "quick", "--runs", "8", "--net", "none"])
  assert args.runs == 8 and args.net is None and not hasattr(args, "ipc")


def test_comparison_rule_separates_disjoint_from_overlapping_intervals():
  def recipe(kind, auc, auc_ci, tpr, tpr_ci, accs):
    point = RocPoint(0.01, tpr, tuple(tpr_ci), 0, 100, 100, 0.01)
    m = StratumMetrics(auc, tuple(auc_ci), "cluster_bootstrap", 0.5, {"0.01": point}, 100,
                       100).to_json()
    return {"kind": kind, "test_accuracy": {"per_run": accs},
            "attacks": {"a": {"init_images": m, "other_members": m, "all_members": m}}}

  results = {"recipes": {
      "random_subset(1)": recipe("random_subset", 0.6, [0.55, 0.65], 0.05, [0.03, 0.07],
                                 [0.5, 0.52, 0.51]),
      "leaky": recipe("condense", 0.8, [0.75, 0.85], 0.3, [0.25, 0.35], [0.6, 0.62, 0.61]),
      "same": recipe("condense", 0.62, [0.57, 0.67], 0.06, [0.04, 0.08], [0.5, 0.52, 0.51]),
      "safer": recipe("condense", 0.5, [0.45, 0.54], 0.01, [0.0, 0.02], [0.5, 0.51, 0.52])}}
  rows = compare_with_baseline(results, "a")
  verdicts = {r["recipe"]: r["verdict"] for r in rows}
  assert verdicts == {"leaky": "higher leakage", "same": "not distinguishable",
                      "safer": "lower leakage"}
  leaky = next(r for r in rows if r["recipe"] == "leaky")
  assert leaky["accuracy_difference"] == pytest.approx(0.1)
  lo, hi = leaky["accuracy_difference_ci95"]
  assert lo < 0.1 < hi


def test_cli_with_every_field_as_a_flag_resumes_the_same_study(tiny_audit):
  out, results = tiny_audit
  flags = []
  for field in dataclasses.fields(TINY):
    value = getattr(TINY, field.name)
    flag = "--" + field.name.replace("_", "-")
    if isinstance(value, bool):  # booleans read --flag / --no-flag
      flags.append(flag if value else "--no-" + flag[2:])
    elif field.name != "condensers":
      flags += [flag, "none" if value is None else str(value)]
  for method, fields in settings_lib.as_dict(TINY.condensers).items():  # over the preset's
    for name, value in fields.items():
      if isinstance(value, bool):
        flags.append(f"--{method}.{name}" if value else f"--no-{method}.{name}")
      else:
        flags += [f"--{method}.{name}", "none" if value is None else str(value)]
  again = audit_exp.main(["--preset", "default", *flags, "--out", out, "--quiet"])
  assert again["config"] == dataclasses.asdict(TINY)
  assert again["resumed_recipes"] == list(results["recipes"])


def test_an_interrupted_audit_resumes_mid_recipe_and_ends_with_the_same_results(tiny_audit,
                                                                                 tmp_path):
  out, results = tiny_audit
  killed = str(tmp_path / "killed")
  shutil.copytree(out, killed)
  stages = os.path.join(killed, "stages")
  names = list(results["recipes"])
  # the state a kill leaves during the last recipe: two runs' sets done, nothing after
  last = names[-1]
  assert last == NDPDC_NAME
  dm = os.path.join(stages, last)
  for part in ("trainsets/run_2", "trainsets/run_3", "params", "logits", "summary.json"):
    path = os.path.join(dm, part)
    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
  for name in ("results.json", "report.md"):
    os.remove(os.path.join(killed, name))
  kept = os.path.getmtime(os.path.join(dm, "trainsets", "run_0", "stage.json"))
  resumed = run_audit(TINY, killed, progress=False, log=lambda *_: None)
  assert resumed["resumed_recipes"] == names[:-1]
  assert os.path.getmtime(os.path.join(dm, "trainsets", "run_0", "stage.json")) == kept
  for name in names:
    for part in ("attacks", "test_accuracy", "released_set"):
      assert json.loads(json.dumps(resumed["recipes"][name][part])) == json.loads(
          json.dumps(results["recipes"][name][part])), (name, part)
  assert os.path.exists(os.path.join(killed, "report.md"))


def _saved_arrays(out):
  """Every array of every Orbax stage under ``out``: {relative path + leaf: (dtype, shape,
  bytes)}."""
  arrays = {}
  for root, dirs, _ in os.walk(out):
    if "tree" in dirs:
      tree = load_tree(os.path.join(root, "tree"))
      for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        leaf = np.asarray(leaf)
        arrays[os.path.relpath(root, out) + jax.tree_util.keystr(path)] = (
            leaf.dtype.str, leaf.shape, leaf.tobytes())
  return arrays


def test_same_seed_saves_bit_identical_arrays_and_another_seed_does_not(tmp_path):
  """The pipeline of the audit's runs (training sets by DM, training, queries) at TINY's
  shapes, twice with the same key and once with another: every saved array is bit-identical,
  and every one that depends on the key changes (the class-major labels do not)."""
  cfg = dataclasses.replace(TINY, recipes="random_subset,condense(dm,init=real)")
  pool, test, keep, recipe_list, keys, _ = prepare(cfg)
  dm_recipe = recipe_list[1]
  runs_cfg = runs_config(cfg, pool.image_shape, dm_recipe)
  for name, key in (("a", keys["runs"]), ("b", keys["runs"]), ("other", jax.random.key(7))):
    run_recipe(str(tmp_path / name), key, pool, test, keep, dm_recipe, runs_cfg)
  a, b, other = (_saved_arrays(str(tmp_path / n)) for n in ("a", "b", "other"))
  # 4 training sets (images, labels, init indices), the parameters and the logits
  assert len({k.split("[")[0] for k in a}) == 4 + 2
  assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
  assert a.keys() == other.keys()
  same = sorted(k for k in a if a[k] == other[k])
  assert same == sorted(k for k in a if k.endswith("['labels']")), same




def test_a_fake_dp_recipe_that_trains_without_noise_is_flagged():
  """A recipe that claims epsilon 0.1 but whose models memorise their members (confident on
  members only, as noiseless training on few examples gives) must fail the bound check; models
  that learned nothing about their members pass the same claim."""

  @dataclasses.dataclass(frozen=True)
  class FakeDP(Real):
    KIND: ClassVar[str] = "fake_dp"
    epsilon: float = 0.1

    def plan(self, base, pool, keep):
      sigma = accounting.calibrate_noise(self.epsilon, 1.0, 1)
      return base, accounting.Guarantee(accounting.SampledGaussian(sigma, 1.0, 1))

  runs, n, classes = 8, 40, 4
  keep = balanced_keep_masks(jax.random.key(0), runs, n)
  labels = np.arange(n) % classes
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 0.3, (runs, 1, n, classes))
  logits[:, 0, np.arange(n), labels] += np.where(keep, 6.0, 0.0)
  res = RunResults(view_logits=logits, keep=keep, init_indices=np.zeros((runs, 0), np.int32),
                   train_images=None, variables=None, test_accuracy=np.full(runs, 0.5))
  pool = SimpleNamespace(labels=labels, num_classes=classes, images=np.zeros((n, 2, 2, 1)),
                         preprocessing=SimpleNamespace(invert=lambda x: x))
  cfg = AuditConfig(runs=runs, attacks="loss,lira_offline_fixed")
  fake = FakeDP()
  flagged = analysis.analyse_recipe(cfg, fake, res, pool,
                                    guarantee=fake.plan(None, pool, keep)[1])
  violations = flagged.summary["privacy"]["violations"]
  assert violations and {v["fpr"] for v in violations} <= {0.001, 0.01, 0.1}
  assert all(v["tpr_low"] > v["bound"] for v in violations)
  # the same tight claim for models that learned nothing about their members: no violation
  null = dataclasses.replace(res, view_logits=rng.normal(0, 0.3, (runs, 1, n, classes)))
  passed = analysis.analyse_recipe(cfg, fake, null, pool,
                                   guarantee=fake.plan(None, pool, keep)[1])
  assert passed.summary["privacy"]["violations"] == []


def test_a_released_set_that_beats_its_dp_claim_is_flagged():
  """For a DP condenser the released set is the DP output: a distance attack on it that beats
  the trade-off curve is a violation, like one on the models."""
  runs, n = 8, 60
  keep = np.asarray(balanced_keep_masks(jax.random.key(1), runs, n))
  is_init = np.zeros_like(keep)
  rng = np.random.default_rng(0)

  def released(member_shift):  # minus the distance of each pool example to the released set
    scores = rng.normal(0, 1, keep.shape) + member_shift * keep
    attack = analysis.stratified_metrics(scores, keep, is_init, analysis.CHECKED_FPRS)
    return {"l2": {"attack": attack.to_json()}}

  guarantee = accounting.Guarantee(accounting.SampledGaussian(
      accounting.calibrate_noise(0.1, 1.0, 1), 1.0, 1))
  leaky, _ = analysis.proven_bound(guarantee, {}, None, released(8.0))
  where = {v["where"] for v in leaky["violations"]}
  assert where and all(w.startswith("released set, distance_l2/") for w in where)
  private, _ = analysis.proven_bound(guarantee, {}, None, released(0.0))
  assert private["violations"] == [] and "released set, distance_l2/all_members" in (
      private["checked"])


def test_each_recipe_gets_its_own_ipcs_condenser_preset():
  """condense(ldpdc,3) under --ipc 2 is accounted for 3 compositions; MTT at ipc 50 gets the
  ipc-50 image learning rate, not the --ipc one's."""
  cfg = AuditConfig(ipc=2, recipes="real,random_subset,condense(ldpdc,3,epsilon=2),"
                                   "condense(mtt,50,real),condense(mtt,10,real)")
  got = {str(r): r for r in recipes(cfg, (8, 8, 1))}
  assert got["condense(ldpdc,3,noise,2)"].config.ipc == 3
  assert got["condense(ldpdc,3,noise,2)"].config.steps == 3
  mtt50, mtt10 = got["condense(mtt,50,real)"].config, got["condense(mtt,10,real)"].config
  assert mtt50.lr_img == 1000 and mtt10.lr_img == 100
