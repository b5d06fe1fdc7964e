"""ResNet18 of the DC papers: BasicBlock [2, 2, 2, 2], 3x3 stem, no max-pool (NHWC)."""

from __future__ import annotations

import flax.linen as nn
import jax

from dcjax.nets import layers


class BasicBlock(nn.Module):
  features: int
  stride: int
  norm: str
  conv_impl: str
  init_scheme: str

  @nn.compact
  def __call__(self, x, train=False):
    conv = lambda f, k, s, p: layers.Conv(f, k, padding=p, stride=s, use_bias=False,
                                          impl=self.conv_impl, init_scheme=self.init_scheme)
    norm = lambda h: h if self.norm == "none" else layers.make_norm(self.norm, self.features)(
        h, train)
    out = nn.relu(norm(conv(self.features, 3, self.stride, 1)(x)))
    out = norm(conv(self.features, 3, 1, 1)(out))
    if self.stride != 1 or x.shape[-1] != self.features:
      x = norm(conv(self.features, 1, self.stride, 0)(x))
    return nn.relu(out + x)


class _ResNetFeatures(nn.Module):
  norm: str
  conv_impl: str
  init_scheme: str
  stages: tuple[int, ...] = (2, 2, 2, 2)

  @nn.compact
  def __call__(self, x, train=False):
    x = layers.Conv(64, 3, padding=1, use_bias=False, impl=self.conv_impl,
                    init_scheme=self.init_scheme)(x)
    if self.norm != "none":
      x = layers.make_norm(self.norm, 64)(x, train)
    x = nn.relu(x)
    for stage, blocks in enumerate(self.stages):
      for b in range(blocks):
        stride = 2 if stage > 0 and b == 0 else 1
        x = BasicBlock(64 * 2**stage, stride, self.norm, self.conv_impl, self.init_scheme)(
            x, train)
    return x.mean(axis=(1, 2))  # global average pool -> (N, 512)


class ResNet18(nn.Module):
  """ResNet18 with instance norm by default (``norm="batchnorm"`` for ResNet18BN)."""

  num_classes: int
  norm: str = "instancenorm"
  conv_impl: str = "xla"
  init_scheme: str = "flax"

  def setup(self):
    self.features = _ResNetFeatures(self.norm, self.conv_impl, self.init_scheme)
    self.classifier = layers.Dense(self.num_classes, init_scheme=self.init_scheme)

  def embed(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.features(x, train)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.classifier(self.embed(x, train))
