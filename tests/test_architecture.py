"""The architecture as a reviewer can check it: the package import graph (parsed with ``ast``),
``dcjax.mia`` importable without flax / optax / orbax, and a condenser added through the
registry alone running through the run pipeline and the audit."""

import ast
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import dcjax
from dcjax.audit import AuditConfig, prepare, recipes
from dcjax.checkpoint import Stage
from dcjax.condense import condenser_names
from dcjax.runs import Condense, parse
from dcjax import cli
from dcjax.condense import settings as settings_lib
from experiments import audit as audit_exp
from experiments import condense as condense_exp
from experiments import mia as mia_exp

ROOT = pathlib.Path(dcjax.__file__).parent
# what each kind of module may not import (packages of dcjax by their first name component)
MIA_FORBIDDEN = {"runs", "condense", "train", "nets", "checkpoint"}
COMPUTATION = {"runs", "condense", "train", "nets", "checkpoint", "privacy", "data", "augment",
               "mia.attacks", "mia.metrics", "mia.scores", "mia.masks", "audit.analysis",
               "audit.study"}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
  """dcjax modules imported by ``path`` (ignoring ``if TYPE_CHECKING:`` blocks)."""
  tree = ast.parse(path.read_text())
  skipped = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
      skipped |= {id(n) for child in node.body for n in ast.walk(child)}
  out = set()
  for node in ast.walk(tree):
    if id(node) in skipped:
      continue
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name.startswith("dcjax")}
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dcjax"):
      # `from dcjax import io` imports dcjax.io; `from dcjax.mia import x` imports dcjax.mia
      out |= {f"{node.module}.{a.name}" if node.module == "dcjax" else node.module
              for a in node.names}
  return out


def _graph() -> dict[str, set[str]]:
  return {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def _package(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


def _covers(name: str, forbidden: set[str]) -> bool:
  """dcjax.mia.metrics is covered by 'mia.metrics' and by 'mia'."""
  rel = name.split(".", 1)[1] if "." in name else ""
  return any(rel == f or rel.startswith(f + ".") for f in forbidden)


def test_no_import_cycle_between_packages():
  edges: dict[str, set[str]] = {}
  for module, imports in _graph().items():
    for imported in imports:
      a, b = _package(module), _package(imported)
      if a and b and a != b:
        edges.setdefault(a, set()).add(b)
  state: dict[str, int] = {}

  def visit(node, path):
    state[node] = 1
    for nxt in sorted(edges.get(node, ())):
      assert state.get(nxt) != 1, f"import cycle: {' -> '.join(path + [node, nxt])}"
      if nxt not in state:
        visit(nxt, path + [node])
    state[node] = 2

  for node in sorted(edges):
    if node not in state:
      visit(node, [])
  assert "runs" in edges and "mia" not in edges.get("runs", ())  # runs -> mia is not needed


def test_attacks_know_nothing_of_how_scores_were_produced():
  graph = _graph()
  mia = {m: i for m, i in graph.items() if _package(m) == "mia"}
  assert len(mia) >= 5
  for module, imports in mia.items():
    bad = sorted(i for i in imports if _covers(i, MIA_FORBIDDEN))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", ["dcjax.audit.report", "dcjax.plots", "dcjax.audit.figures"])
def test_report_and_plots_import_no_computation(module):
  bad = sorted(i for i in _graph()[module] if _covers(i, COMPUTATION))
  assert not bad, f"{module} imports computation: {bad}"


def test_dp_primitives_exist_once_and_privacy_knows_no_training_or_condenser():
  """Poisson sampling, per-example clipping and the noisy sum are written in
  dcjax/privacy/mechanisms.py alone; DP-SGD and the DP condensers call them."""
  defined = {}
  for path in ROOT.rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.FunctionDef) and any(
          word in node.name for word in ("poisson", "clip", "noisy")):
        defined.setdefault(node.name, []).append(_module_name(path))
  primitives = {"poisson_sample", "poisson_capacity", "clip_per_example", "noisy_sum"}
  assert {n: defined[n] for n in primitives} == {n: ["dcjax.privacy.mechanisms"]
                                                  for n in primitives}
  # other names with these words are methods and wrappers, not second implementations
  others = {n: m for n, m in defined.items() if n not in primitives}
  assert set(others) <= {"poisson_rate", "private_class_means"}, others
  for user in ("train/engine.py", "condense/dpdc.py"):
    assert "dcjax.privacy.mechanisms" in _imports(ROOT / user) or (
        "dcjax.privacy" in _imports(ROOT / user)), user
  for path in (ROOT / "privacy").glob("*.py"):
    imported = {m.split(".")[1] for m in _imports(path) if m.count(".") >= 1}
    assert not imported & {"train", "condense", "nets", "runs", "audit"}, path


def test_mia_imports_without_flax_optax_orbax():
  code = ("import sys, dcjax.mia, dcjax.mia.metrics, dcjax.mia.results; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'flax', 'optax', 'orbax', 'tensorflow', 'tensorflow_datasets'}))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_condenser_added_through_the_registry_runs_in_the_audit(tmp_path):
  """toy_condenser.py registers ``toy_mean`` from outside dcjax; the membership-only audit
  (experiments.mia, the audit's study code) runs it: run_audit -> dcjax.runs.run_recipe -> the
  recipe -> dcjax.condense.condense_many -> its step."""
  import toy_condenser  # noqa: E402  (a module of this test; importing it registers toy_mean)
  assert "toy_mean" in condenser_names()
  recipe = parse("condense(toy_mean,2)")
  assert recipe == Condense("toy_mean", 2, "real") and recipe.config is None
  assert isinstance(recipes(AuditConfig(recipes="random_subset,condense(toy_mean,init=real)",
                                        ipc=2), (8, 8, 1))[1].config, toy_condenser.ToyConfig)
  # both command lines know it, with a flag per field of its config, and nothing else names it
  condense_help = condense_exp.build_parser().format_help()
  assert "toy_mean" in condense_help and "--toy_mean.lr" in condense_help
  audit_parser = audit_exp.build_parser()
  assert "--toy_mean.iterations" in audit_parser.format_help()
  args = audit_parser.parse_args(["--toy_mean.lr", "0.25"])
  assert settings_lib.as_dict(cli.condenser_settings(args)) == {"toy_mean": {"lr": 0.25}}
  with_lr = AuditConfig(recipes="random_subset,condense(toy_mean,init=real)", ipc=2,
                        condensers=cli.condenser_settings(args))
  assert recipes(with_lr, (8, 8, 1))[1].config.lr == 0.25

  out = str(tmp_path / "m")
  # the shapes of test_audit.py's TINY audit, whose programs the shared compilation cache holds
  args = ["--runs", "4", "--pool-size", "160", "--ipc", "2", "--recipes",
          "random_subset,real,condense(toy_mean,init=real)", "--epochs", "3", "--real-epochs",
          "2", "--net", "ConvNetD1", "--attacks", "loss,lira_offline", "--primary-attack",
          "loss", "--canaries", "0", "--out", out, "--quiet"]
  res = mia_exp.main(args)
  assert res["membership_only"] and res["theory"] is None
  assert set(res["recipes"]) == {"random_subset(2)", "real", "condense(toy_mean,2,real)"}
  toy = res["recipes"]["condense(toy_mean,2,real)"]
  assert toy["kind"] == "condense" and toy["method"] == "toy_mean"
  for name, r in res["recipes"].items():
    assert r["released_set"] is None and set(r["figures"]) == {"roc", "exposed"}
    assert os.path.exists(os.path.join(out, r["figures"]["roc"]))
    loss = r["attacks"]["loss"]
    assert loss["all_members"]["positives"] + loss["all_members"]["negatives"] == 4 * 160
    assert (loss["init_images"] is None) == (name == "real")
    if name != "real":
      assert loss["init_images"]["positives"] == 4 * 20  # 4 runs x 10 classes x ipc 2
  with open(os.path.join(out, "report.md")) as f:
    report = f.read()
  assert "## Against the random-subset baseline" in report and "Visual privacy" not in report
  # its training sets are stages like any recipe's: the images moved off their init images
  trainset = Stage(os.path.join(out, "stages", "condense(toy_mean,2,real)", "trainsets",
                                "run_0")).load().tree
  pool_images = prepare(AuditConfig(runs=4, pool_size=160, ipc=2))[0].images
  assert trainset["images"].shape == (20, 8, 8, 1)
  assert np.abs(trainset["images"] - pool_images[trainset["init_indices"]]).max() > 1e-3
  with pytest.raises(ValueError, match="different configuration"):
    mia_exp.main([*args[:-3], "--seed", "1", "--out", out])

  # fewer attacks only change the analysis: summaries are recomputed from the finished stages,
  # and nothing is retrained
  def stage_times():
    return {root: os.path.getmtime(os.path.join(root, "stage.json"))
            for root, _, files in os.walk(os.path.join(out, "stages")) if "stage.json" in files}

  before = stage_times()
  fewer = mia_exp.main([*args[:args.index("--attacks")], "--attacks", "loss",
                        *args[args.index("--attacks") + 2:]])
  assert fewer["resumed_recipes"] == [] and stage_times() == before and len(before) >= 10
  assert set(fewer["recipes"]["real"]["attacks"]) == {"loss"}
  assert fewer["recipes"]["real"]["attacks"]["loss"] == res["recipes"]["real"]["attacks"]["loss"]


def test_every_key_is_derived_in_the_key_tree():
  """dcjax/key_tree.py is the one module that folds keys: the tree reads in one place."""
  from dcjax import key_tree  # pylint: disable=import-outside-toplevel
  folding = sorted(_module_name(p) for p in ROOT.rglob("*.py")
                   if "random.fold_in(" in p.read_text() and p.name != "key_tree.py")
  assert folding == []
  purposes = [key_tree.CANARY, key_tree.SETUP, key_tree.STATE, key_tree.NOISE,
              key_tree.BATCH_STATS]
  assert len(set(purposes)) == len(purposes)


def test_no_function_is_longer_than_sixty_lines():
  long = []
  for path in ROOT.rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lines = node.end_lineno - node.lineno + 1
        if lines > 60:
          long.append(f"{_module_name(path)}.{node.name}: {lines} lines")
  assert long == []


def test_condensers_import_nothing_from_runs_or_audit():
  for path in (ROOT / "condense").glob("*.py"):
    imported = {m.split(".")[1] for m in _imports(path) if m.count(".") >= 1}
    assert not imported & {"runs", "audit"}, path
