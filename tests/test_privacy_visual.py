"""Visual privacy: SSIM, nearest real images, the distance attack."""

import numpy as np
import pytest

from dcjax.privacy import distance_scores, nearest_real, ssim


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
