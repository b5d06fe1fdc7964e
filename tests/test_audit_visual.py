"""Visual privacy: SSIM, nearest real images, the distance attack."""

import numpy as np
import pytest

from dcjax.audit import visual
from dcjax.audit.visual import distance_scores, nearest_real, released_set_privacy, ssim


def _pixels(n, seed=0, shape=(8, 8, 1)):
  return np.random.default_rng(seed).uniform(size=(n, *shape))


def test_ssim_identity_symmetry_and_range():
  a, b = _pixels(3, 0), _pixels(3, 1)
  np.testing.assert_allclose(ssim(a, a), 1.0, atol=1e-12)
  np.testing.assert_allclose(ssim(a, b), ssim(b, a), atol=1e-12)
  assert np.all(ssim(a, b) < 0.5)
  assert ssim(a[0], np.clip(a[0] + 0.01, 0, 1)) > 0.95  # a small shift stays similar


def test_ssim_sees_a_single_corner_pixel():
  """Every pixel of an 8x8 image lies in at least one of its 2x2 positions of 7x7 windows."""
  a = np.zeros((8, 8, 1))
  b = a.copy()
  b[0, 0, 0] = 1.0
  assert ssim(a, b) < 1.0
  small = _pixels(2, 5, shape=(6, 6, 3))  # windows shrink to 5x5 on 6x6 images
  np.testing.assert_allclose(ssim(small, small), 1.0, atol=1e-12)


@pytest.mark.parametrize("metric", ["l2", "ssim"])
def test_nearest_real_finds_the_copied_image(metric):
  real = _pixels(50, 2)
  synthetic = np.stack([real[7], real[31] + 0.01, _pixels(1, 3)[0]])
  idx, dist = nearest_real(synthetic, real, metric)
  assert idx[0] == 7 and idx[1] == 31
  assert dist[0] == pytest.approx(0.0, abs=1e-6)
  assert dist[0] < dist[1] < dist[2]


def test_distance_attack_ranks_the_released_images_first():
  pool = _pixels(40, 4)
  released = pool[:5] + 0.02  # a "synthetic set" that is a light copy of 5 members
  scores = distance_scores(pool, released)
  assert set(np.argsort(-scores)[:5]) == set(range(5))


def test_shape_mismatch_and_unknown_metric_are_named():
  with pytest.raises(ValueError, match="Image shapes differ"):
    nearest_real(_pixels(2), _pixels(2, shape=(4, 4, 1)))
  with pytest.raises(ValueError, match="Unknown metric 'lpips'"):
    nearest_real(_pixels(2), _pixels(2), "lpips")


def test_ssim_shortlist_finds_the_exact_neighbour_of_near_copies():
  rng = np.random.default_rng(3)
  real = rng.uniform(size=(40, 8, 8, 1))
  synthetic = np.clip(real[[5, 17, 33]] + rng.normal(0, 0.02, (3, 8, 8, 1)), 0, 1)
  exact_idx, exact_d = nearest_real(synthetic, real, "ssim")
  idx, d = nearest_real(synthetic, real, "ssim", shortlist=4)
  np.testing.assert_array_equal(idx, [5, 17, 33])
  np.testing.assert_array_equal(idx, exact_idx)
  np.testing.assert_allclose(d, exact_d)
  with pytest.raises(ValueError, match="shortlist"):
    nearest_real(synthetic, real, "ssim", shortlist=0)


def test_released_set_privacy_sees_copied_init_images_and_not_noise():
  rng = np.random.default_rng(4)
  pool = rng.uniform(size=(30, 6, 6, 1))
  keep = np.zeros((2, 30), bool)
  keep[0, :15] = True
  keep[1, 15:] = True
  init = np.array([[0, 3, 7], [15, 20, 29]])
  copies = pool[init]  # (2, 3, 6, 6, 1): the released sets ARE their init images
  out = released_set_privacy(copies, init, pool, keep, shortlist=None)
  for metric in ("l2", "ssim"):
    assert out[metric]["own_init_fraction"] == 1.0
    assert out[metric]["member_fraction"] == 1.0
    np.testing.assert_array_equal(out[metric]["nearest_index"], init)
    scores = out[metric]["scores"]
    assert scores.shape == (2, 30)
    assert np.allclose(scores[0, init[0]], 0.0, atol=1e-6)  # a copy is at distance 0
    assert (scores[0, 15:] < -1e-3).all()
  noise = rng.uniform(size=(2, 3, 6, 6, 1))
  out = released_set_privacy(noise, np.full((2, 3), -1), pool, keep)
  assert out["l2"]["own_init_fraction"] is None
  with pytest.raises(ValueError, match="keep must be"):
    released_set_privacy(noise, np.full((2, 3), -1), pool, keep[:1])


def test_the_device_ssim_is_the_numpy_ssim_in_float32():
  rng = np.random.default_rng(7)
  for shape in ((8, 8, 1), (32, 32, 3), (6, 6, 3)):
    a = rng.uniform(size=(5, 1, *shape))
    b = np.clip(a + rng.normal(0, 0.2, size=(5, 4, *shape)), 0, 1)
    np.testing.assert_allclose(visual.ssim_device(a, b), visual.ssim(a, b), atol=1e-5)
