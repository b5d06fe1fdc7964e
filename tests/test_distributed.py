"""Several hosts: the runs split among processes, each run computed alone into its own stages,
merged by process 0, give what the runs computed together give (the two-process check on
jax.distributed itself runs beside the suite: benchmarks/distributed_check.py in .ci/run)."""

import jax
import numpy as np
import pytest

from dcjax import distributed
from dcjax.checkpoint import _load_npz_tree, _save_npz_tree
from dcjax.data import load_dataset
from dcjax.mia import balanced_keep_masks
from dcjax.runs import DPSGD, Real, RunsConfig, merge_runs, run_recipe, run_recipe_per_run
from dcjax.train import TrainConfig


def test_every_run_has_one_owner():
  owners = [distributed.owned_runs(10, p, 3) for p in range(3)]
  assert owners == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
  assert distributed.owned_runs(4) == [0, 1, 2, 3]  # one process owns every run


@pytest.mark.parametrize("recipe", [Real(), DPSGD(4.0, n=15)], ids=["real", "dpsgd"])
def test_runs_computed_one_by_one_equal_the_runs_computed_together(tmp_path, recipe):
  """A run's training does not depend on which runs it is trained with: its steps per epoch
  (real) and its DP mechanism (dpsgd) are planned for all runs."""
  pool, test = load_dataset("synthetic", num_classes=3, train_per_class=10, test_per_class=2,
                            image_shape=(4, 4, 1), seed=0)
  keep = balanced_keep_masks(jax.random.key(0), 4, len(pool))
  keep[0, np.flatnonzero(keep[0])[:3]] = False  # runs of different sizes
  cfg = RunsConfig(net="MLP", train=TrainConfig(epochs=2, batch_size=4))
  together = run_recipe(str(tmp_path / "a"), jax.random.key(1), pool, test, keep, recipe, cfg)
  apart = merge_runs([run_recipe_per_run(str(tmp_path / "b"), jax.random.key(1), pool, test,
                                         keep, recipe, [r], cfg)[0] for r in (0, 1, 2, 3)])
  np.testing.assert_allclose(apart.view_logits, together.view_logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(apart.keep, together.keep)


def test_a_stage_tree_of_one_of_several_processes_reads_back(tmp_path):
  tree = {"params": {"dense": {"kernel": np.ones((2, 3)), "bias": np.zeros(3)}},
          "labels": np.arange(4)}
  _save_npz_tree(str(tmp_path / "tree"), tree)
  back = _load_npz_tree(str(tmp_path / "tree"))
  assert jax.tree.structure(back) == jax.tree.structure(tree)
  jax.tree.map(np.testing.assert_array_equal, back, tree)
