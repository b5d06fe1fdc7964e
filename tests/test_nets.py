"""Networks: pinned parameter counts, shapes of every registry name, lowering parity."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcjax.nets import NET_NAMES, ConvNet, get_net, uses_batch_stats
from dcjax.nets.layers import Conv


def _count(variables):
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("shape,num_classes,expected", [
    ((32, 32, 3), 10, 320_010),
    ((28, 28, 1), 10, 317_706),
    ((32, 32, 3), 100, 504_420),
])
def test_convnet_parameter_counts(shape, num_classes, expected):
  net = get_net("ConvNet", num_classes)
  variables = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, *shape)))
  assert _count(variables) == expected


def test_convnet_embed_is_2048_for_both_input_kinds():
  net = get_net("ConvNet", 10)
  for shape in [(2, 32, 32, 3), (2, 28, 28, 1)]:
    x = jnp.zeros(shape)
    variables = jax.jit(net.init)(jax.random.key(0), x)
    chex.assert_shape(net.apply(variables, x, method="embed"), (2, 2048))
    chex.assert_shape(net.apply(variables, x), (2, 10))


@pytest.mark.parametrize("name", NET_NAMES)
def test_every_registered_network_runs(name):
  net = get_net(name, 10)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  variables = jax.eval_shape(net.init, jax.random.key(0), x)
  logits = jax.eval_shape(lambda v: net.apply(v, x), variables)
  feats = jax.eval_shape(lambda v: net.apply(v, x, method="embed"), variables)
  assert logits.shape == (2, 10)
  assert feats.shape[0] == 2 and len(feats.shape) == 2
  assert ("batch_stats" in variables) == uses_batch_stats(net)


def test_variants_change_what_their_name_says():
  assert get_net("ConvNetD4", 10).depth == 4
  assert get_net("ConvNetW64", 10).width == 64
  assert get_net("ConvNetBN", 10).norm == "batchnorm"
  assert get_net("ConvNetAL", 10).act == "leakyrelu"
  assert get_net("ConvNetMP", 10).pool == "maxpool"
  assert get_net("VGG11BN", 10).norm == "batchnorm"


def test_unknown_network_lists_known_names():
  with pytest.raises(ValueError, match="ConvNetD4.*ResNet18"):
    get_net("ConvNetXYZ", 10)


def test_too_small_images_for_lenet_get_clear_error():
  net = get_net("LeNet", 10)
  with pytest.raises(ValueError, match="at least 28x28"):
    net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


def test_instance_norm_is_groupnorm_per_channel_with_eps_1e5():
  net = ConvNet(10, depth=1, width=4)
  # Tiny activations (variance ~1e-5) make the eps visible: 1e-5 and 1e-6 give different maps.
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3)) * 3e-3
  variables = jax.jit(net.init)(jax.random.key(1), x)
  conv_params = variables["params"]["features"]["conv_0"]
  h = Conv(4, 3, padding=1).apply({"params": conv_params}, x)

  def expected(eps):
    ref = (h - h.mean((1, 2), keepdims=True)) / jnp.sqrt(h.var((1, 2), keepdims=True) + eps)
    return jax.nn.relu(ref).reshape(2, 4, 2, 4, 2, 4).mean((2, 4)).reshape(2, -1)

  got = net.apply(variables, x, method="embed")
  np.testing.assert_allclose(got, expected(1e-5), atol=1e-4)
  assert not np.allclose(got, expected(1e-6), atol=1e-2)


@pytest.mark.parametrize("stride,padding,k", [(1, 1, 3), (2, 1, 3), (1, 0, 5), (1, 3, 3)])
def test_im2col_conv_matches_native_conv(stride, padding, k):
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
  xla = Conv(5, k, padding=padding, stride=stride, impl="xla")
  col = Conv(5, k, padding=padding, stride=stride, impl="im2col")
  variables = xla.init(jax.random.key(1), x)
  np.testing.assert_allclose(xla.apply(variables, x), col.apply(variables, x), atol=1e-5)


def test_patch_grad_conv_has_the_native_gradients_to_second_order(stride=2, padding=1):
  """xla_patch_grad: kernel gradient as a patches matmul, under vmap over example groups (DC's
  per-class gradients), and the image gradient of a loss on those gradients (the matching
  loss's second order) equal the native convolution's."""
  x = jax.random.normal(jax.random.key(0), (3, 2, 9, 9, 3))  # (groups, batch, H, W, C)
  convs = {impl: Conv(5, 3, padding=padding, stride=stride, impl=impl)
           for impl in ("xla", "xla_patch_grad")}
  variables = convs["xla"].init(jax.random.key(1), x[0])

  def per_group_grads(impl, x):
    loss = lambda v, xg: jnp.sum(jnp.tanh(convs[impl].apply(v, xg)) ** 2)
    return jax.vmap(jax.grad(loss), (None, 0))(variables, x)

  @functools.partial(jax.jit, static_argnums=0)
  def second_order(impl):
    return jax.grad(lambda x: sum(jnp.sum(jnp.sin(g)) for g in
                                  jax.tree.leaves(per_group_grads(impl, x))))(x)

  for got, want in zip(jax.tree.leaves(per_group_grads("xla_patch_grad", x)),
                       jax.tree.leaves(per_group_grads("xla", x))):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  want = second_order("xla")
  # float32 sums in another order: differences relative to the largest entry, not per entry
  np.testing.assert_allclose(second_order("xla_patch_grad"), want,
                             atol=1e-5 * float(jnp.abs(want).max()))
  assert float(jnp.abs(want).max()) > 1.0  # a second-order signal, not rounding noise


def test_torch_init_is_uniform_within_fan_in_bound():
  conv = Conv(64, 3, init_scheme="torch")
  variables = conv.init(jax.random.key(0), jnp.zeros((1, 8, 8, 16)))
  bound = 1 / np.sqrt(3 * 3 * 16)
  for leaf in jax.tree.leaves(variables):
    assert np.abs(leaf).max() <= bound
    assert np.abs(leaf).max() > 0.9 * bound  # spread over the whole interval
  assert float(jnp.abs(variables["params"]["bias"]).max()) > 0  # torch's bias is not zero


def test_unknown_layer_options_are_rejected():
  with pytest.raises(ValueError, match="Unknown norm 'bogus'"):
    get_net("ConvNet", 10, norm="bogus").init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="num_classes"):
    get_net("ConvNet", 1)


def test_default_net_suits_the_image_size():
  from dcjax.nets import default_net  # pylint: disable=import-outside-toplevel
  assert default_net((32, 32, 3)) == "ConvNet"
  assert default_net((28, 28, 1)) == "ConvNet"
  assert default_net((8, 8, 1)) == "ConvNetD2"  # 3 blocks would pool 8x8 to 1x1
