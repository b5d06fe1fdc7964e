"""Every bad input is refused cleanly: the errors table of docs/errors.md, row by row.

A CLI refusal prints one line on stderr and exits 2 (a flag's value) or 1 (a bad state at run
time), with no traceback, and leaves no new file behind. A library refusal raises a ValueError
(or TypeError) whose message names the value and what was expected. Each row of the
table is a case here (same id), and the table's message column must hold the fragment that the
test checks, so the table cannot drift from what the code says.
"""

import dataclasses
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from dcjax import cli
from dcjax.data import from_arrays, load_dataset
from dcjax.mia import balanced_keep_masks
from dcjax.condense import dpdc
from dcjax.runs import DPSGD, Real, RunsConfig, run_recipe
from dcjax.train import TrainConfig
from experiments import audit as audit_exp
from experiments import condense as condense_exp
from experiments import mia as mia_exp
from experiments import train as train_exp

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
MODULES = {"audit": audit_exp, "condense": condense_exp, "mia": mia_exp, "train": train_exp}


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  argv: tuple[str, ...]  # experiments.<argv[0]> with the rest as flags; "OUT" -> a new path
  code: int
  message: str  # a regex fragment of the one stderr line


CLI_CASES = [
    Case("dataset-unknown", ("audit", "--dataset", "imagenet", "--out", "OUT"), 2,
         "Unknown dataset 'imagenet'"),
    Case("method-unknown", ("condense", "--method", "kip", "--out", "OUT"), 2,
         "invalid choice: 'kip'"),
    Case("net-unknown", ("audit", "--net", "ResNet99", "--out", "OUT"), 2,
         "argument --net: invalid choice: 'ResNet99'"),
    Case("attack-unknown", ("audit", "--attacks", "loss,magic", "--out", "OUT"), 2,
         r"Unknown attack\(s\) \['magic'\]"),
    Case("recipe-unknown", ("audit", "--recipes", "real,random_subset,gan", "--out", "OUT"), 2,
         "Unknown recipe 'gan' in 'gan'"),
    Case("recipe-method-unknown", ("mia", "--recipes", "random_subset,condense(gan,10)", "--out",
                                   "OUT"), 2, "Unknown condensation method 'gan'"),
    Case("preset-unknown", ("audit", "--preset", "huge", "--out", "OUT"), 2,
         "invalid choice: 'huge'"),
    Case("runs-odd", ("audit", "--runs", "5", "--out", "OUT"), 2, "runs must be an even int >= 4"),
    Case("runs-zero", ("audit", "--runs", "0", "--out", "OUT"), 2, r"even int >= 4 .*, got 0\."),
    Case("runs-one", ("mia", "--runs", "1", "--out", "OUT"), 2, "runs must be an even int"),
    Case("ipc-zero", ("audit", "--ipc", "0", "--out", "OUT"), 2,
         "ipc must be a positive int, got 0"),
    Case("ipc-negative", ("condense", "--ipc", "-3", "--out", "OUT"), 2,
         "ipc .images per class. must be a positive int, got -3"),
    Case("ipc-above-class", ("audit", "--ipc", "200", "--out", "OUT"), 2,
         "Pool too small for random_subset.200.: run 0 has only"),
    Case("pool-below-classes-x-ipc", ("audit", "--pool-size", "30", "--ipc", "5", "--canaries",
                                      "0", "--out", "OUT"), 2,
         "Pool too small for random_subset.5."),
    Case("canaries-above-half-the-pool", ("audit", "--pool-size", "30", "--out", "OUT"), 2,
         r"number of canaries must be an int in \[0, 15\] .at most half of the 30-example "
         r"pool., got 32"),
    Case("epochs-zero", ("audit", "--epochs", "0", "--out", "OUT"), 2,
         "epochs must be a positive int, got 0"),
    Case("epochs-negative", ("train", "--epochs", "-1", "--out", "OUT"), 2,
         "epochs must be a positive int, got -1"),
    Case("iterations-zero", ("condense", "--dm.iterations", "0", "--out", "OUT"), 2,
         "iterations must be a positive int, got 0"),
    Case("lr-nan", ("audit", "--lr", "nan", "--out", "OUT"), 2,
         "lr must be a finite number > 0, got nan"),
    Case("lr-inf", ("train", "--lr", "inf", "--out", "OUT"), 2,
         "lr must be a finite number > 0, got inf"),
    Case("lr-img-nan", ("condense", "--dm.lr_img", "nan", "--out", "OUT"), 2,
         "lr_img must be a finite number > 0, got nan"),
    Case("models-zero", ("condense", "--models", "0", "--out", "OUT"), 2,
         "--models must be >= 1, got 0"),
    Case("tfds-unprepared", ("train", "--dataset", "cifar10", "--data-dir", "OUT", "--out",
                             "OUT"), 1, "is not prepared as ArrayRecord"),
]


def _run_cli(argv, out):
  """Runs experiments.<argv[0]> in-process as ``python -m`` would; returns (code, stderr)."""
  name, *flags = argv
  flags = [out if f == "OUT" else f for f in flags]
  with pytest.raises(SystemExit) as exit_info:
    cli.run_main(MODULES[name].main, flags, prog=f"experiments.{name}")
  return exit_info.value.code


def _one_line(capsys, pattern):
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1, err
  assert "Traceback" not in err
  assert re.search(pattern, lines[0]), lines[0]
  return lines[0]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(case, tmp_path, capsys):
  out = str(tmp_path / "out")
  assert _run_cli(case.argv, out) == case.code
  _one_line(capsys, case.message)
  assert not os.path.exists(out), os.listdir(out)


# ----------------------------------------------------------------------------- output directories


@pytest.fixture
def foreign_dir(tmp_path):
  """A directory holding a user's own work and nothing of dcjax."""
  out = tmp_path / "thesis"
  (out / "mythesis").mkdir(parents=True)
  (out / "mythesis" / "chapter1.tex").write_text("my thesis")
  return str(out)


def _listing(path):
  return sorted(os.path.relpath(os.path.join(r, f), path)
                for r, _, files in os.walk(path) for f in files)


DIRECTORY_CASES = [
    Case("out-foreign", ("train", "--epochs", "1"), 1, "is not a dcjax directory"),
    Case("out-foreign-condense", ("condense", "--dm.iterations", "1"), 1,
         "is not a dcjax directory"),
    Case("out-foreign-mia", ("mia", "--runs", "4", "--recompute"), 1,
         "is not a dcjax directory"),
    Case("out-foreign-recompute", ("audit", "--preset", "quick", "--recompute"), 1,
         "is not a dcjax directory.*mythesis"),
]


@pytest.mark.parametrize("case", DIRECTORY_CASES, ids=lambda c: c.id)
def test_a_directory_of_someone_else_is_never_touched(case, foreign_dir, capsys):
  before = _listing(foreign_dir)
  assert _run_cli((*case.argv, "--out", "OUT"), foreign_dir) == case.code
  _one_line(capsys, case.message)
  assert _listing(foreign_dir) == before == ["mythesis/chapter1.tex"]


def test_condense_checkpoint_dir_of_someone_else_is_refused(foreign_dir):
  from dcjax.condense import DMConfig, condense  # pylint: disable=import-outside-toplevel
  from dcjax.workdir import ForeignDirectoryError  # pylint: disable=import-outside-toplevel
  pool, _ = load_dataset("synthetic", num_classes=3, train_per_class=4, test_per_class=1,
                         image_shape=(8, 8, 1))
  with pytest.raises(ForeignDirectoryError, match="mythesis"):
    condense(jax.random.key(0), pool, "dm", 1, config=DMConfig(
        iterations=1, batch_real=2, net="MLP"), checkpoint_dir=foreign_dir)
  assert _listing(foreign_dir) == ["mythesis/chapter1.tex"]


def test_recompute_refuses_root_home_and_working_directory(capsys, monkeypatch, tmp_path):
  """--out / is refused as not dcjax's; a home or working directory that does carry dcjax's
  marker (here a fake one) is still never cleared by --recompute."""
  from dcjax import workdir  # pylint: disable=import-outside-toplevel
  assert _run_cli(("train", "--epochs", "1", "--recompute", "--out", "OUT"), "/") == 1
  _one_line(capsys, "is not a dcjax directory")
  home = tmp_path / "home"
  monkeypatch.setenv("HOME", str(home))
  workdir.claim(str(home), {"x": 1}, owned=("results.json",))
  (home / "results.json").write_text("{}")
  with pytest.raises(workdir.ForeignDirectoryError, match="it is the home directory"):
    workdir.claim(str(home), {"x": 2}, owned=("results.json",),
                  recompute=True)
  monkeypatch.chdir(home)
  monkeypatch.setenv("HOME", str(tmp_path))
  with pytest.raises(workdir.ForeignDirectoryError, match="current working directory"):
    workdir.claim(".", {"x": 2}, owned=("results.json",), recompute=True)
  assert (home / "results.json").exists()


def test_unwritable_out_is_a_runtime_error(tmp_path, capsys):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  assert _run_cli(("train", "--epochs", "1", "--out", "OUT"), str(blocker / "sub")) == 1
  _one_line(capsys, "Not a directory")


@pytest.fixture(scope="module")
def condensed(tmp_path_factory):
  """A finished tiny ``experiments.condense`` directory and its command-line flags."""
  out = str(tmp_path_factory.mktemp("cond") / "c")
  flags = ["--method", "dm", "--ipc", "2", "--dm.iterations", "2", "--dm.net", "ConvNetD1",
           "--dm.dsa_strategy", "none", "--dm.batch_real", "8", "--models", "1", "--nets",
           "MLP", "--epochs", "2", "--checkpoint-every", "1"]
  condense_exp.main([*flags, "--out", out])
  return out, flags


def _copy(src, dst):
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.copytree(src, dst)
  return str(dst)


def _truncate_largest(directory):
  files = [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]
  biggest = max(files, key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(os.path.getsize(biggest) // 3)


@pytest.mark.parametrize("damage,message", [
    ("synset", r"synset/arrays cannot be read back .*--recompute"),
    ("checkpoint", r"checkpoints/steps/2 does not match .*or is corrupt.*--recompute"),
    ("marker", r"fingerprint.json cannot be read"),
    ("other-seed", r"holds a run with a different configuration \(seed: stored 0 vs requested "
                   r"1\).*--recompute"),
])
def test_damaged_or_mismatched_artefacts_are_refused_naming_the_file(condensed, damage, message,
                                                                     tmp_path, capsys):
  out, flags = condensed
  out = _copy(out, tmp_path / "c")
  if damage == "synset":
    _truncate_largest(os.path.join(out, "synset", "arrays"))
  elif damage == "checkpoint":  # the set was not finished: the run resumes from the checkpoint
    import shutil  # pylint: disable=import-outside-toplevel
    shutil.rmtree(os.path.join(out, "synset"))
    _truncate_largest(os.path.join(out, "checkpoints", "steps", "2"))
  elif damage == "marker":
    with open(os.path.join(out, "fingerprint.json"), "w") as f:
      f.write('{"dcjax": ')
  else:
    flags = [*flags, "--seed", "1"]
  before = _listing(out)
  assert _run_cli(("condense", *flags, "--out", "OUT"), out) == 1
  _one_line(capsys, message)
  assert _listing(out) == before  # nothing new, nothing removed


def test_recompute_replaces_only_what_dcjax_wrote(condensed, tmp_path):
  out, flags = condensed
  out = _copy(out, tmp_path / "c")
  with open(os.path.join(out, "my_notes.txt"), "w") as f:
    f.write("keep me")
  _truncate_largest(os.path.join(out, "synset", "arrays"))
  result = condense_exp.main([*flags, "--seed", "1", "--recompute", "--out", out])
  assert result["seed"] == 1
  assert open(os.path.join(out, "my_notes.txt")).read() == "keep me"


# ----------------------------------------------------------------------------- library API

_PIXELS = np.random.default_rng(0).uniform(size=(12, 8, 8, 1)).astype(np.float32)
_LABELS = np.tile(np.arange(3), 4)


def _nan_pixels():
  x = _PIXELS.copy()
  x[0, 0, 0, 0] = np.nan
  return from_arrays(x, _LABELS)


API_CASES = {
    "pixels-nan": (_nan_pixels, "contain 1 NaN or infinite values"),
    "pixels-inf": (lambda: from_arrays(np.where(_PIXELS > 0.5, np.inf, _PIXELS), _LABELS),
                   "NaN or infinite values"),
    "pixels-0-255": (lambda: from_arrays(_PIXELS * 255, _LABELS),
                     r"pixels must lie in \[0, 1\], got range .*divide 0-255 images by 255"),
    "labels-out-of-range": (lambda: from_arrays(_PIXELS, _LABELS + 2, num_classes=3),
                            r"labels must lie in \[0, 3\), got range \[2, 4\]"),
    "length-mismatch": (lambda: from_arrays(_PIXELS, _LABELS[:10]),
                        r"labels must have shape \(12,\) to match pixels, got \(10,\)"),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_from_arrays_refuses_bad_arrays(case):
  build, message = API_CASES[case]
  with pytest.raises(ValueError, match=message):
    build()


def _pool_and_keep():
  pool = from_arrays(_PIXELS, _LABELS, name="synthetic")
  return pool, balanced_keep_masks(jax.random.key(0), 4, len(pool))


def _test_set_of_other_shape():
  pool, keep = _pool_and_keep()
  test = from_arrays(np.zeros((3, 4, 4, 1), np.float32), np.arange(3))
  run_recipe("unused", jax.random.key(0), pool, test, keep, Real(),
             RunsConfig(net="MLP", train=TrainConfig(epochs=1)))


def _test_set_of_other_preprocessing():
  pool, keep = _pool_and_keep()
  test = from_arrays(_PIXELS[:3], _LABELS[:3])  # its own statistics, not the pool's
  run_recipe("unused", jax.random.key(0), pool, test, keep, Real(),
             RunsConfig(net="MLP", train=TrainConfig(epochs=1)))


API_CASES.update({
    "test-set-shape": (_test_set_of_other_shape,
                       r"test set has images of shape \(4, 4, 1\); expected \(8, 8, 1\)"),
    "test-set-preprocessing": (_test_set_of_other_preprocessing,
                               "test set is normalised differently from the pool"),
})


def _dpsgd_on_one_mask():
  _, keep = _pool_and_keep()
  DPSGD(2.0).plan(TrainConfig(), None, keep[:1])


def _ndpdc_on_unbalanced_masks():
  labels = np.tile(np.arange(3), 20)
  keep = np.asarray(balanced_keep_masks(jax.random.key(0), 4, len(labels))).copy()
  keep[0, 0] = ~keep[0, 0]  # one example IN for 1 or 3 of the 4 runs
  dpdc.prepare(dpdc.NDPDCConfig(), labels, 3, keep)


DP_CASES = {
    "dp-size-undeclared": (_dpsgd_on_one_mask,
                           r"Declare it: dpsgd\(epsilon, clip, delta, n\)"),
    "dp-class-sizes-undeclared": (_ndpdc_on_unbalanced_masks,
                                  r"Declare class_sizes=\(n_0, ..., n_C-1\)"),
    "dpsgd-without-public-size": (lambda: TrainConfig(dp_clip=1.0, sampling="poisson"),
                                  "DP-SGD with Poisson sampling needs a public dataset_size"),
}
API_CASES.update(DP_CASES)


@pytest.mark.parametrize("case", sorted(DP_CASES))
def test_dp_refuses_a_size_it_cannot_know_is_public(case):
  build, message = DP_CASES[case]
  with pytest.raises(ValueError, match=message):
    build()


@pytest.mark.parametrize("case", ["test-set-shape", "test-set-preprocessing"])
def test_run_recipe_refuses_a_test_set_unlike_the_pool(case, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  build, message = API_CASES[case]
  with pytest.raises(ValueError, match=message):
    build()
  assert not os.path.exists(tmp_path / "unused")


# ----------------------------------------------------------------------------- the real process


def test_the_real_entry_point_prints_one_line_and_no_traceback(tmp_path):
  out = tmp_path / "o"
  proc = subprocess.run([sys.executable, "-m", "experiments.audit", "--runs", "5", "--out",
                         str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert lines == ["experiments.audit: error: AuditConfig.runs must be an even int >= 4 (each "
                   "example IN for half the runs; online LiRA needs IN and OUT shadows), got 5."]
  assert not out.exists()
  debug = subprocess.run([sys.executable, "-m", "experiments.audit", "--runs", "5", "--out",
                          str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=False, env={**os.environ, "DCJAX_DEBUG": "1"})
  assert "Traceback" in debug.stderr and debug.returncode == 1


# ------------------------------------------------------------------------ the docs/errors.md table


def _table_rows():
  with open(os.path.join(ROOT, "docs", "errors.md")) as f:
    section = f.read()
  rows = {}
  for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) >= 4 and cells[0].startswith("`") and cells[0] != "`id`":
      rows[cells[0].strip("`")] = cells
  return rows


def test_the_error_table_lists_every_case_with_its_message():
  rows = _table_rows()
  cases = {c.id: c for c in CLI_CASES + DIRECTORY_CASES}
  api = set(API_CASES) | {"out-root-home-recompute", "out-unwritable", "stage-corrupt-synset",
                          "stage-corrupt-checkpoint", "stage-corrupt-marker", "study-mismatch"}
  assert set(rows) == set(cases) | api, set(rows) ^ (set(cases) | api)
  assert len(rows) >= 25
  for case_id, case in cases.items():
    exit_cell = rows[case_id][2]
    assert exit_cell == str(case.code), (case_id, exit_cell)
    message = rows[case_id][3].replace("`", "")
    assert re.search(case.message, message), (case_id, case.message, message)


def test_a_damaged_artefact_ends_the_real_process_in_one_line(condensed, tmp_path):
  """After a failed Orbax restore no background thread may print during teardown."""
  out, flags = condensed
  out = _copy(out, tmp_path / "c")
  _truncate_largest(os.path.join(out, "synset", "arrays"))
  proc = subprocess.run([sys.executable, "-m", "experiments.condense", *flags, "--out", out],
                        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 1 and len(lines) == 1, proc.stderr
  assert "synset/arrays cannot be read back" in lines[0]
