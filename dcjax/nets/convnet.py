"""The ConvNet of the dataset-condensation papers, and its width/depth/norm/act/pool variants.

depth x [Conv 3x3 (width, bias, padding 1) -> norm -> act -> pool 2x2], then Dense on the
flattened features. A 28x28 one-channel input gets padding 3 on the first conv, so its map is
32x32 and the feature size matches the 32x32 case (2048 at width 128, depth 3).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from dcjax.nets import layers


def first_conv_padding(input_shape: tuple[int, ...]) -> int:
  """Padding 3 for 28x28x1 inputs (MNIST-like), 1 otherwise."""
  h, w, c = input_shape[-3:]
  return 3 if (h, w, c) == (28, 28, 1) else 1


class ConvFeatures(nn.Module):
  """The convolutional trunk: (N, H, W, C) -> (N, H', W', width)."""

  width: int
  depth: int
  act: str
  norm: str
  pool: str
  conv_impl: str
  init_scheme: str

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.depth < 1:
      raise ValueError(f"ConvNet depth must be >= 1, got {self.depth}.")
    act_fn = layers.activation(self.act)
    for i in range(self.depth):
      padding = first_conv_padding(x.shape) if i == 0 else 1
      x = layers.Conv(self.width, 3, padding=padding, impl=self.conv_impl, init_scheme=self.init_scheme,
                      name=f"conv_{i}")(x)
      norm = layers.make_norm(self.norm, self.width)
      if norm is not None:
        x = norm(x, train)
      x = act_fn(x)
      x = layers.pool2x2(x, self.pool)
    return x


class ConvNet(nn.Module):
  """Input (N, H, W, C) float32 -> logits (N, num_classes); ``embed`` -> (N, features)."""

  num_classes: int
  width: int = 128
  depth: int = 3
  act: str = "relu"
  norm: str = "instancenorm"
  pool: str = "avgpool"
  conv_impl: str = "xla"
  init_scheme: str = "flax"

  def setup(self):
    self.features = ConvFeatures(self.width, self.depth, self.act, self.norm, self.pool,
                                 self.conv_impl, self.init_scheme)
    self.classifier = layers.Dense(self.num_classes, init_scheme=self.init_scheme)

  def embed(self, x: jax.Array, train: bool = False) -> jax.Array:
    """(N, H, W, C) -> (N, D) flattened features before the classifier."""
    x = self.features(x, train)
    return x.reshape(x.shape[0], -1)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.classifier(self.embed(x, train))
