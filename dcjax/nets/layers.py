"""Building blocks shared by the DC network family (NHWC).

Two things here are not stock Flax:

* ``Conv`` can lower to XLA's native convolution (``impl="xla"``), to shifted slices
  concatenated along channels and one matmul (``impl="im2col"``), or to the native
  convolution whose weight gradient is that matmul (``impl="xla_patch_grad"``). All use the
  same ``kernel`` (kh, kw, cin, cout) and ``bias`` (cout,) parameters, so a parameter tree
  works with any. On CPU the matmul form trains faster and survives ``vmap`` over per-model
  weights far better than the native convolution (see benchmarks/train_throughput.py).
  ``xla_patch_grad`` is for per-example-group weight gradients under ``vmap`` (DC/DSA's
  per-class gradients): XLA's CPU backend turns a vmapped native weight gradient into a
  grouped convolution, which runs ~5x slower than the same sums as one batched matmul.
* ``init_scheme="torch"`` reproduces PyTorch's default initialisation (kaiming-uniform with
  a=sqrt(5) and a uniform bias, both U(-1/sqrt(fan_in), 1/sqrt(fan_in))). DM embeds with
  random networks, so the initialiser changes what is matched.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dcjax import checks

INITS = ("flax", "torch")
CONV_IMPLS = ("xla", "im2col", "xla_patch_grad")
NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
ACTIVATIONS = ("relu", "sigmoid", "leakyrelu", "swish")
POOLINGS = ("avgpool", "maxpool", "none")


_check_choice = checks.one_of


def _torch_uniform(fan_in: int) -> Callable:
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def weight_and_bias_init(init: str, fan_in: int) -> tuple[Callable, Callable]:
  """Returns (kernel_init, bias_init) for a layer with the given fan-in."""
  _check_choice(init, INITS, "init")
  if init == "torch":
    return _torch_uniform(fan_in), _torch_uniform(fan_in)
  return nn.initializers.lecun_normal(), nn.initializers.zeros


class Conv(nn.Module):
  """2-D convolution, stride 1 or 2, symmetric integer zero padding. NHWC in and out."""

  features: int
  kernel_size: int = 3
  padding: int = 1
  stride: int = 1
  use_bias: bool = True
  impl: str = "xla"
  init_scheme: str = "flax"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_choice(self.impl, CONV_IMPLS, "conv impl")
    k, cin = self.kernel_size, x.shape[-1]
    kernel_init, bias_init = weight_and_bias_init(self.init_scheme, k * k * cin)
    kernel = self.param("kernel", kernel_init, (k, k, cin, self.features))
    if self.impl == "xla":
      y = _xla_conv(x, kernel.astype(x.dtype), self.padding, self.stride)
    elif self.impl == "xla_patch_grad":
      y = _conv_patch_grad(x, kernel.astype(x.dtype), self.padding, self.stride)
    else:
      y = _im2col_conv(x, kernel, self.padding, self.stride)
    if self.use_bias:
      y = y + self.param("bias", bias_init, (self.features,))
    return y


def _xla_conv(x: jax.Array, kernel: jax.Array, padding: int, stride: int) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), [(padding, padding)] * 2,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _patches(x: jax.Array, k: int, padding: int, stride: int) -> jax.Array:
  """(n, ho, wo, k*k*cin): the k*k shifted slices of x concatenated on channels, (i, j, c)."""
  _, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  ho = (h + 2 * padding - k) // stride + 1
  wo = (w + 2 * padding - k) // stride + 1
  return jnp.concatenate([
      xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
      for i in range(k) for j in range(k)
  ], axis=-1)


def _im2col_conv(x: jax.Array, kernel: jax.Array, padding: int, stride: int) -> jax.Array:
  """Convolution as k*k shifted slices concatenated on channels, then one matmul."""
  k, _, cin, cout = kernel.shape
  cols = _patches(x, k, padding, stride)
  n, ho, wo, _ = cols.shape
  return (cols.reshape(n * ho * wo, k * k * cin) @ kernel.reshape(k * k * cin, cout)
         ).reshape(n, ho, wo, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_patch_grad(x: jax.Array, kernel: jax.Array, padding: int, stride: int) -> jax.Array:
  """The native convolution; its kernel gradient is patches^T @ dy, its input gradient native.

  The backward pass is plain JAX, so gradients of gradients (DC's matching loss) work.
  """
  return _xla_conv(x, kernel, padding, stride)


def _conv_patch_grad_fwd(x, kernel, padding, stride):
  return _xla_conv(x, kernel, padding, stride), (x, kernel)


def _conv_patch_grad_bwd(padding, stride, residuals, dy):
  x, kernel = residuals
  _, x_grad = jax.vjp(lambda x_: _xla_conv(x_, kernel, padding, stride), x)
  cols = _patches(x, kernel.shape[0], padding, stride)
  kernel_grad = jnp.einsum("nhwk,nhwo->ko", cols, dy).reshape(kernel.shape)
  return x_grad(dy)[0], kernel_grad


_conv_patch_grad.defvjp(_conv_patch_grad_fwd, _conv_patch_grad_bwd)


class Dense(nn.Module):
  features: int
  init_scheme: str = "flax"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel_init, bias_init = weight_and_bias_init(self.init_scheme, x.shape[-1])
    return nn.Dense(self.features, kernel_init=kernel_init, bias_init=bias_init)(x)


def make_norm(norm: str, channels: int) -> Callable[[jax.Array, bool], jax.Array] | None:
  """Returns a norm layer callable as ``layer(x, train)``, or None for "none"."""
  _check_choice(norm, NORMS, "norm")
  del channels  # Flax infers it; kept so call sites read like the torch definitions.
  if norm == "none":
    return None
  if norm == "batchnorm":
    return _BatchNorm()
  if norm == "instancenorm":
    return _NoTrainArg(nn.GroupNorm(num_groups=None, group_size=1, epsilon=1e-5))
  if norm == "groupnorm":
    return _NoTrainArg(nn.GroupNorm(num_groups=4, epsilon=1e-5))
  # layernorm: normalise over (H, W, C) with an affine per element, as torch's
  # nn.LayerNorm([C, H, W]) does in the DC code.
  return _NoTrainArg(nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1),
                                  feature_axes=(-3, -2, -1)))


class _NoTrainArg(nn.Module):
  layer: nn.Module

  def __call__(self, x, train: bool = False):
    del train
    return self.layer(x)


class _BatchNorm(nn.Module):
  # Flax momentum 0.9 == torch momentum 0.1; torch's eps 1e-5.
  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  _check_choice(name, ACTIVATIONS, "activation")
  return {
      "relu": nn.relu,
      "sigmoid": nn.sigmoid,
      "leakyrelu": lambda x: nn.leaky_relu(x, 0.01),
      "swish": nn.swish,
  }[name]


def pool2x2(x: jax.Array, kind: str) -> jax.Array:
  """2x2 pooling with stride 2 (floor on odd sizes, as torch does)."""
  _check_choice(kind, POOLINGS, "pooling")
  if kind == "none":
    return x
  n, h, w, c = x.shape
  if h < 2 or w < 2:
    raise ValueError(f"Cannot pool a {h}x{w} feature map with 2x2 windows; use fewer "
                     "layers (depth) or larger images.")
  # A reshape-reduce is cheaper than reduce_window on CPU and identical in value.
  x = x[:, :h // 2 * 2, :w // 2 * 2, :].reshape(n, h // 2, 2, w // 2, 2, c)
  return x.mean(axis=(2, 4)) if kind == "avgpool" else x.max(axis=(2, 4))
