"""Linear-DM theory: the closed form agrees with the real DM code; the O(1/n) influence."""

import jax
import numpy as np

from dcjax.condense import DMConfig, condense
from dcjax.data import from_arrays
from dcjax.audit.theory import linear_dm_closed_form, one_example_influence


def test_closed_form_predicts_the_dm_code_path_and_one_example_moves_all_by_1_over_n1():
  rng = np.random.default_rng(1)
  pixels = rng.uniform(size=(2 * 10, 4, 4, 1)).astype(np.float32)
  labels = np.repeat(np.arange(2), 10)
  data = from_arrays(pixels, labels)
  cfg = DMConfig(iterations=300, lr_img=0.005, batch_real=10, dsa_strategy=None, net="Linear")
  syn = condense(jax.random.key(0), data, "dm", ipc=2, init="real", config=cfg)
  x = np.asarray(data.images)
  for c in range(2):
    init = x[np.asarray(syn.init_indices)[c * 2:(c + 1) * 2]]
    predicted = linear_dm_closed_form(init, x[labels == c])
    np.testing.assert_allclose(np.asarray(syn.images)[c * 2:(c + 1) * 2], predicted, atol=1e-3)

  # adding x' to the n = 10 examples of class 0 moves every s_j by (x' - mean) / (n + 1)
  extra = x[labels == 1][:1]
  class0 = x[labels == 0]
  init0 = x[np.asarray(syn.init_indices)[:2]]
  moved = linear_dm_closed_form(init0, np.concatenate([class0, extra]))
  shift = moved - linear_dm_closed_form(init0, class0)
  np.testing.assert_allclose(shift, np.broadcast_to((extra[0] - class0.mean(0)) / 11,
                                                    shift.shape), atol=1e-6)


def test_influence_shrinks_like_one_over_n():
  rng = np.random.default_rng(2)
  small = rng.normal(size=(2 * 10, 3, 3, 1))
  large = rng.normal(size=(2 * 100, 3, 3, 1))
  a = one_example_influence(small, np.repeat(np.arange(2), 10), 2)
  b = one_example_influence(large, np.repeat(np.arange(2), 100), 2)
  assert [r["n"] for r in a["per_class"]] == [10, 10]
  ratio = a["mean_shift"] / b["mean_shift"]
  assert 7 < ratio < 11  # (100 + 1) / (10 + 1) = 9.2, up to the spread of the norms


def test_influence_names_an_empty_class():
  import pytest  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match="Class 1 has no member"):
    one_example_influence(np.zeros((4, 2, 2, 1)), np.array([0, 0, 1, 1]), 2,
                          mask=np.array([True, True, False, False]))


def test_linear_dm_check_runs_the_dm_code_on_a_runs_members():
  from dcjax.audit.theory import linear_dm_check, m_over_n_rows  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(5)
  labels = np.repeat(np.arange(3), 12)
  data = from_arrays(rng.uniform(size=(36, 5, 5, 1)).astype(np.float32), labels)
  mask = rng.uniform(size=36) < 0.7
  out = linear_dm_check(jax.random.key(0), data, mask, ipc=2, iterations=200)
  assert out["members_per_class"] == min(np.bincount(labels[mask], minlength=3))
  assert out["max_error_over_norm"] < 1e-4
  assert out["mean_shift_from_init"] > 100 * out["max_error"]  # the images did move
  rows = m_over_n_rows([("a", 1000, 10, 10)])
  assert rows[0]["m"] == 100 and rows[0]["m_over_n"] == 0.1
