"""Experiment entry points end to end at a tiny size: files written, numbers consistent."""

import json
import os

import numpy as np
import pytest

from dcjax.condense import load_synthetic_set
from dcjax import plots
from experiments import condense as condense_exp
from experiments import mia as mia_exp


def test_condense_experiment_writes_set_grid_and_results(tmp_path):
  out = str(tmp_path / "c")
  args = ["--method", "dm", "--ipc", "2", "--dm.iterations", "2", "--dm.net", "ConvNetD1",
          "--dm.dsa_strategy", "flip", "--dm.batch_real", "8", "--models", "2",
          "--nets", "ConvNetD1", "--epochs", "3", "--out", out]
  result = condense_exp.main(args)
  syn = load_synthetic_set(os.path.join(out, "synset"))
  assert syn.images.shape == (20, 8, 8, 1) and syn.method == "dm" and syn.ipc == 2
  assert os.path.getsize(os.path.join(out, "images.png")) > 1000
  with open(os.path.join(out, "results.json")) as f:
    stored = json.load(f)
  accs = stored["accuracy"]["ConvNetD1"]["accuracies"]
  assert len(accs) == 2 and stored["accuracy"]["ConvNetD1"]["mean"] == pytest.approx(
      np.mean(accs))
  assert "ConvNetD1" in stored["random_subset_accuracy"]
  assert result["method_config"].iterations == 2
  # the same command again resumes from the finished checkpoint instead of redoing the work
  again = condense_exp.main(args)
  assert again["accuracy"] == result["accuracy"]


def test_condense_experiment_refuses_bad_input_before_work(tmp_path):
  with pytest.raises(ValueError, match="ipc=500 is larger"):
    condense_exp.main(["--ipc", "500", "--out", str(tmp_path / "x")])
  assert not os.path.exists(tmp_path / "x")
  with pytest.raises(SystemExit):
    condense_exp.main(["--method", "kip"])


def test_mia_experiment_refuses_odd_runs(tmp_path):
  # its end-to-end run (the audit without released set and theory) is in test_architecture.py
  with pytest.raises(ValueError, match="even int"):
    mia_exp.main(["--runs", "3", "--out", str(tmp_path / "odd")])


def test_plots_render_return_the_figure_and_leave_the_backend_alone(tmp_path):
  import matplotlib  # pylint: disable=import-outside-toplevel
  backend = matplotlib.get_backend()
  pixels = np.random.default_rng(0).uniform(size=(6, 8, 8, 3))
  path = str(tmp_path / "g.png")
  fig = plots.image_grid(pixels, np.array([0, 0, 1, 1, 2, 2]), 3, path)
  assert os.path.getsize(path) > 1000 and fig.axes
  fpr = np.linspace(0, 1, 50)
  fig = plots.roc_panels({"loss": {"all_members": (fpr, np.sqrt(fpr))}})  # no path: no file
  assert len(fig.axes) == 1 and not os.path.exists(tmp_path / "r.png")
  # the empirical curve starts at its smallest measurable FPR (1/49 here), not at 1e-5
  line = fig.axes[0].get_lines()[0]
  assert line.get_xdata().min() == pytest.approx(fpr[1])
  assert matplotlib.get_backend() == backend
