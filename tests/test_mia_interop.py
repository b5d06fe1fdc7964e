"""The LiRA reference layout: a hand-written tiny layout read and attacked; errors that name the
file; dcjax's export read back unchanged."""

import os

import numpy as np
import pytest

from dcjax.mia import lira_layout
from experiments import mia as mia_exp


def _write_layout(root, runs=4, n=12, views=2, classes=3, seed=0):
  """By hand, as the reference's train.py / inference.py leave it."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % classes
  os.makedirs(root)
  np.save(os.path.join(root, "y_train.npy"), labels)
  keep = np.zeros((runs, n), bool)
  for i in range(n):
    keep[rng.permutation(runs)[:runs // 2], i] = True
  for r in range(runs):
    folder = os.path.join(root, f"experiment-{r}_{runs}")
    os.makedirs(os.path.join(folder, "logits"))
    np.save(os.path.join(folder, "keep.npy"), keep[r])
    logits = rng.normal(size=(n, 1, views, classes))
    logits[np.arange(n), 0, :, labels] += 3.0 * keep[r][:, None]
    np.save(os.path.join(folder, "logits", "0000000099.npy"), logits - 50.0)  # an older epoch
    np.save(os.path.join(folder, "logits", "0000000100.npy"), logits)
  return labels, keep


def test_a_hand_written_layout_is_read_and_attacked(tmp_path):
  root = str(tmp_path / "exp")
  labels, keep = _write_layout(root)
  runs = lira_layout.import_runs(root)
  assert runs.view_logits.shape == (4, 2, 12, 3) and runs.population_logits is None
  np.testing.assert_array_equal(runs.keep, keep)
  np.testing.assert_array_equal(runs.labels, labels)
  assert runs.view_logits.max() > -20  # the latest epoch's file, not epoch 99's
  out = str(tmp_path / "report")
  res = mia_exp.main(["--from-logits", root, "--out", out])
  assert "rmia_online" not in res["attacks"]  # no population in the layout
  m = res["recipes"]["exp"]["attacks"]["lira_offline_fixed"]["all_members"]
  assert m["positives"] == keep.sum() and m["negatives"] == (~keep).sum()
  assert m["auc"] > 0.8  # members' true-class logits are 3 higher
  for name in ("report.md", "results.json", "scores.npz", "figures/roc_exp.png",
               "figures/attack_vs_shadows.png"):
    assert os.path.exists(os.path.join(out, name)), name


@pytest.mark.parametrize("damage, message", [
    (lambda root: os.remove(os.path.join(root, "y_train.npy")),
     "holds no y_train.npy"),
    (lambda root: os.remove(os.path.join(root, "experiment-2_4", "keep.npy")),
     r"experiment-2_4/keep.npy is missing: the run's \(N,\) bool membership"),
    (lambda root: np.save(os.path.join(root, "experiment-1_4", "keep.npy"), np.ones(5, bool)),
     r"experiment-1_4/keep.npy must be \(12,\) bool like y_train.npy, got bool \(5,\)"),
    (lambda root: np.save(os.path.join(root, "experiment-0_4", "logits", "0000000200.npy"),
                          np.zeros((12, 2, 3))),
     r"0000000200.npy: logits must have shape \(12, 1, V, K\), got \(12, 2, 3\)"),
    (lambda root: os.rename(os.path.join(root, "experiment-3_4"),
                            os.path.join(root, "experiment-3_5")),
     r"folder names say \[4, 5\] runs in all but 4 experiment folders"),
])
def test_a_broken_layout_is_named(tmp_path, damage, message):
  root = str(tmp_path / "exp")
  _write_layout(root)
  damage(root)
  with pytest.raises((FileNotFoundError, ValueError), match=message):
    mia_exp.main(["--from-logits", root, "--out", str(tmp_path / "report")])


def test_export_then_import_returns_the_same_arrays(tmp_path):
  rng = np.random.default_rng(1)
  view_logits = rng.normal(size=(4, 2, 10, 3)).astype(np.float32)
  keep = rng.random((4, 10)) < 0.5
  init = rng.integers(0, 10, (4, 2)).astype(np.int32)
  pop = rng.normal(size=(4, 2, 6, 3)).astype(np.float32)
  root = str(tmp_path / "lira")
  lira_layout.export_runs(root, view_logits, keep, np.arange(10) % 3, init,
                          exclude=np.arange(10) == 0, population_logits=pop,
                          population_labels=np.arange(6) % 3)
  back = lira_layout.import_runs(root)
  np.testing.assert_array_equal(back.view_logits, view_logits)
  np.testing.assert_array_equal(back.keep, keep)
  np.testing.assert_array_equal(back.init_indices, init)
  np.testing.assert_array_equal(back.population_logits, pop)
  assert back.exclude.tolist() == [True] + [False] * 9


def test_an_export_or_a_report_never_writes_into_a_folder_with_other_files(tmp_path):
  root = str(tmp_path / "exp")
  _write_layout(root)
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "notes.txt").write_text("a user's file")
  with pytest.raises(FileExistsError, match="not an empty folder"):
    lira_layout.export_runs(str(mine), np.zeros((2, 1, 3, 2)), np.zeros((2, 3), bool),
                            np.zeros(3, int))
  with pytest.raises(Exception, match="not a dcjax directory"):
    mia_exp.main(["--from-logits", root, "--out", str(mine)])
  assert os.listdir(mine) == ["notes.txt"]
  out = str(tmp_path / "report")
  mia_exp.main(["--from-logits", root, "--out", out])
  mia_exp.main(["--from-logits", root, "--out", out])  # the same source again: rewritten
