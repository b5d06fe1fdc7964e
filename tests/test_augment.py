"""DSA: Siamese sharing, exact geometry of the ops, differentiability."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax import augment

KEY = jax.random.key(7)


def _images(n=4, h=8, w=8, c=3, seed=0):
  return jax.random.normal(jax.random.key(seed), (n, h, w, c))


class DSATest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_same_key_same_transform_on_two_batches(self):
    real, syn = _images(seed=1), _images(seed=2)
    both = jnp.concatenate([real, syn])
    fn = self.variant(augment.dsa, static_argnames=("strategy", "siamese"))
    # every op alone op by op; jitted, the default strategy, which composes them (each jitted
    # op alone would be one more compilation per batch shape)
    jitted = self.variant.type == chex.ChexVariantType.WITH_JIT
    strategies = [augment.DEFAULT_STRATEGY] if jitted else [*augment.OPS,
                                                            augment.DEFAULT_STRATEGY]
    for i, strategy in enumerate(strategies):
      key = jax.random.fold_in(KEY, i)
      a, b = fn(key, real, strategy), fn(key, syn, strategy)
      ab = fn(key, both, strategy)
      # the same op with the same parameters: augmenting separately == augmenting together
      np.testing.assert_allclose(jnp.concatenate([a, b]), ab, atol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_siamese_shares_parameters_within_batch(self):
    x = jnp.tile(_images(n=1), (5, 1, 1, 1))
    out = self.variant(augment.dsa, static_argnames=("strategy", "siamese"))(
        KEY, x, "crop_rotate_scale_cutout_color", siamese=True)
    for i in range(1, 5):
      np.testing.assert_allclose(out[i], out[0], atol=1e-6)

  def test_non_siamese_draws_per_sample(self):
    x = jnp.tile(_images(n=1), (8, 1, 1, 1))
    out = augment.dsa(KEY, x, "rotate", siamese=False)
    assert not np.allclose(out[0], out[1])

  def test_flip_twice_is_identity(self):
    x = _images()
    once = augment.flip(KEY, x, per_sample=True)
    np.testing.assert_array_equal(augment.flip(KEY, once, per_sample=True), x)
    forced = augment.flip(KEY, x, False, augment.DSAParams(flip_prob=1.0))
    np.testing.assert_array_equal(forced, x[:, :, ::-1])

  def test_integer_crop_shift_moves_pixels_exactly(self):
    x = _images(n=2, h=6, w=7)
    out = augment.translate(x, jnp.array([1, -2]), jnp.array([2, 0]))
    np.testing.assert_array_equal(out[0, 1:, 2:], x[0, :-1, :-2])
    np.testing.assert_array_equal(out[0, :1], 0)
    np.testing.assert_array_equal(out[0, :, :2], 0)
    np.testing.assert_array_equal(out[1, :-2], x[1, 2:])
    np.testing.assert_array_equal(out[1, -2:], 0)

  def test_crop_shift_range_follows_reference(self):
    x = jnp.zeros((1, 32, 32, 1)).at[0, 16, 16, 0].set(1.0)
    shifts = set()
    crop = jax.jit(lambda k: augment.crop(k, x, per_sample=False))  # one compilation
    for i in range(100):
      out = crop(jax.random.fold_in(KEY, i))
      r, c = np.argwhere(np.asarray(out[0, :, :, 0]) == 1.0)[0]
      shifts.add((r - 16, c - 16))
    assert max(max(abs(a), abs(b)) for a, b in shifts) == 4  # round(0.125 * 32)

  def test_zero_rotation_and_unit_scale_are_identity(self):
    x = _images(h=9, w=7)
    eye = jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    np.testing.assert_allclose(augment.affine(x, eye), x, atol=1e-5)
    no_rotation = augment.DSAParams(rotate_degrees=0.0)
    np.testing.assert_allclose(augment.rotate(KEY, x, True, no_rotation), x, atol=1e-5)
    unit_scale = augment.DSAParams(scale_ratio=1.0)
    np.testing.assert_allclose(augment.scale(KEY, x, True, unit_scale), x, atol=1e-5)

  def test_rotation_by_90_degrees_matches_rot90(self):
    x = _images(h=6, w=6)
    theta = jnp.array([[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]])  # cos 90, sin 90
    out = augment.affine(x, theta)
    np.testing.assert_allclose(out, jnp.rot90(x, k=-1, axes=(1, 2)), atol=1e-5)

  def test_cutout_zeroes_a_square_of_half_the_side(self):
    x = jnp.ones((1, 16, 16, 1))
    sizes = {int((augment.cutout(jax.random.fold_in(KEY, i), x, False) == 0).sum())
             for i in range(50)}
    assert 64 in sizes  # a full 8x8 square when it lies inside the image
    assert max(sizes) == 64

  def test_color_ops_use_reference_ranges(self):
    x = _images(n=64)
    out = augment.color(KEY, x, per_sample=True)
    assert out.shape == x.shape and not np.allclose(out, x)

  def test_gradients_through_every_op_are_finite_and_nonzero(self):
    x = _images()
    for op in augment.OPS:
      grad = jax.grad(lambda z, op=op: jnp.sum(augment.dsa(KEY, z, op) ** 2))(x)
      assert np.all(np.isfinite(grad)), op
      assert float(jnp.abs(grad).sum()) > 0, op

  def test_bad_strategy_names_the_unknown_op(self):
    with pytest.raises(ValueError, match="unknown ops \\['zoom'\\]"):
      augment.dsa(KEY, _images(), "crop_zoom")

  def test_strategy_per_dataset(self):
    assert "flip" not in augment.strategy_for("mnist")
    assert "flip" not in augment.strategy_for("digits")
    assert augment.strategy_for("cifar10") == augment.DEFAULT_STRATEGY
