"""The DP mechanisms written once (dcjax.privacy.mechanisms): clipping norms, Poisson inclusion
frequency, noise std and the sensitivity on neighbouring data, jitted and not."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.privacy import mechanisms


class ClipTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_clipped_examples_have_norm_at_most_clip_and_small_ones_are_unchanged(self):
    tree = {"w": jnp.arange(24.0).reshape(4, 3, 2) - 11.0, "b": jnp.ones((4, 5)) * 0.01}
    clipped, norms = self.variant(lambda t: mechanisms.clip_per_example(t, 1.0))(tree)
    out = np.sqrt(np.sum(np.asarray(clipped["w"]).reshape(4, -1) ** 2, 1)
                  + np.sum(np.asarray(clipped["b"]) ** 2, 1))
    want = np.sqrt(np.sum(np.asarray(tree["w"]).reshape(4, -1) ** 2, 1)
                   + np.sum(np.asarray(tree["b"]) ** 2, 1))
    np.testing.assert_allclose(np.asarray(norms), want, rtol=1e-6)
    np.testing.assert_allclose(out, np.minimum(want, 1.0), rtol=1e-5)
    small = {"w": tree["w"] * 1e-4, "b": tree["b"] * 1e-4}  # norms below 1: untouched
    again, _ = self.variant(lambda t: mechanisms.clip_per_example(t, 1.0))(small)
    chex.assert_trees_all_close(again, small)

  @chex.variants(with_jit=True, without_jit=True)
  def test_two_example_axes_clip_each_row(self):
    rows = jax.random.normal(jax.random.key(0), (3, 4, 7)) * 5.0
    clipped, _ = self.variant(lambda r: mechanisms.clip_per_example(r, 0.5, example_axes=2))(rows)
    np.testing.assert_array_less(np.linalg.norm(np.asarray(clipped), axis=-1), 0.5 + 1e-6)


class PoissonTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_each_eligible_example_is_drawn_at_the_rate_and_no_other(self):
    n, rate = 60, 0.3
    eligible = jnp.asarray(np.arange(n) % 3 != 0)
    sample = self.variant(lambda k: mechanisms.poisson_sample(k, eligible, rate, n))
    counts = np.zeros(n)
    for k in jax.random.split(jax.random.key(0), 300):
      idx, valid = (np.asarray(a) for a in sample(k))
      drawn = idx[valid]
      assert len(set(drawn.tolist())) == len(drawn)
      counts[drawn] += 1
    assert counts[~np.asarray(eligible)].sum() == 0
    freq = counts[np.asarray(eligible)] / 300
    # 40 examples x 300 draws: the mean frequency has a standard error of ~0.4%
    assert freq.mean() == pytest.approx(rate, abs=0.02)

  def test_beyond_capacity_the_smallest_draws_are_kept(self):
    eligible = jnp.ones((2, 50), bool).at[0, 25:].set(False).at[1, :25].set(False)
    idx, valid = mechanisms.poisson_sample(jax.random.key(3), eligible, 1.0, 10)
    assert idx.shape == valid.shape == (2, 10) and bool(valid.all())
    u = np.asarray(jax.random.uniform(jax.random.key(3), (50,)))
    np.testing.assert_array_equal(np.asarray(idx[0]), np.argsort(u[:25])[:10])
    np.testing.assert_array_equal(np.asarray(idx[1]), 25 + np.argsort(u[25:])[:10])

  def test_capacity_is_five_standard_deviations_above_the_expectation(self):
    assert mechanisms.poisson_capacity(64, 10_000) == 64 + 40
    assert mechanisms.poisson_capacity(64, 70) == 70  # never more than the set


class NoisySumTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_noise_std_per_coordinate(self):
    x = jnp.zeros((5, 4000))
    out = self.variant(lambda k: mechanisms.noisy_sum(k, x, 1.7))(jax.random.key(0))
    assert out.shape == (4000,)
    # 4000 coordinates: the std estimate has a standard error of ~1.1%
    assert float(jnp.std(out)) == pytest.approx(1.7, rel=0.05)
    assert abs(float(jnp.mean(out))) < 0.1

  @chex.variants(with_jit=True, without_jit=True)
  def test_one_added_example_moves_the_release_by_at_most_clip(self):
    """Neighbouring data, same key: the clipped noisy sums differ by the added example's
    clipped value alone, whose norm is at most the clip (the sensitivity accounted)."""
    key = jax.random.key(4)
    rows = jax.random.normal(jax.random.key(5), (9, 6)) * 3.0
    with_it = jnp.ones(9).at[8].set(1.0)
    without = with_it.at[8].set(0.0)

    def release(weights):
      clipped, _ = mechanisms.clip_per_example(rows, 0.8)
      return mechanisms.noisy_sum(key, clipped * weights[:, None], 2.0)

    diff = self.variant(release)(with_it) - self.variant(release)(without)
    assert float(jnp.linalg.norm(diff)) <= 0.8 + 1e-5
    assert float(jnp.linalg.norm(diff)) == pytest.approx(0.8, rel=1e-4)  # the row was clipped
