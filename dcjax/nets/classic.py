"""MLP, LeNet, AlexNet and VGG11 as used in the DC papers' cross-architecture tables (NHWC)."""

from __future__ import annotations

import flax.linen as nn
import jax

from dcjax.nets import layers


def _one_channel_28(x: jax.Array) -> bool:
  return tuple(x.shape[-3:]) == (28, 28, 1)


class MLP(nn.Module):
  """(N, H, W, C) -> flatten -> 128 -> 128 -> num_classes; ``embed`` is the last hidden layer."""

  num_classes: int
  width: int = 128
  init_scheme: str = "flax"

  def setup(self):
    self.hidden = [layers.Dense(self.width, init_scheme=self.init_scheme) for _ in range(2)]
    self.classifier = layers.Dense(self.num_classes, init_scheme=self.init_scheme)

  def embed(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    x = x.reshape(x.shape[0], -1)
    for dense in self.hidden:
      x = nn.relu(dense(x))
    return x

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.classifier(self.embed(x, train))


def _require_spatial(x: jax.Array, minimum: int, net: str) -> None:
  h, w = x.shape[-3:-1]
  if h < minimum or w < minimum:
    raise ValueError(f"{net} needs images of at least {minimum}x{minimum} pixels, got {h}x{w}; "
                     "use ConvNet or MLP for smaller images.")


class _LeNetFeatures(nn.Module):
  conv_impl: str
  init_scheme: str

  @nn.compact
  def __call__(self, x, train=False):
    _require_spatial(x, 28, "LeNet")
    pad = 2 if _one_channel_28(x) else 0
    x = layers.Conv(6, 5, padding=pad, impl=self.conv_impl, init_scheme=self.init_scheme)(x)
    x = layers.pool2x2(nn.relu(x), "maxpool")
    x = layers.Conv(16, 5, padding=0, impl=self.conv_impl, init_scheme=self.init_scheme)(x)
    x = layers.pool2x2(nn.relu(x), "maxpool")
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(layers.Dense(120, init_scheme=self.init_scheme)(x))
    return nn.relu(layers.Dense(84, init_scheme=self.init_scheme)(x))


class _AlexNetFeatures(nn.Module):
  conv_impl: str
  init_scheme: str

  @nn.compact
  def __call__(self, x, train=False):
    _require_spatial(x, 28, "AlexNet")
    conv = lambda f, k, p: layers.Conv(f, k, padding=p, impl=self.conv_impl,
                                       init_scheme=self.init_scheme)
    x = layers.pool2x2(nn.relu(conv(128, 5, 4 if _one_channel_28(x) else 2)(x)), "maxpool")
    x = layers.pool2x2(nn.relu(conv(192, 5, 2)(x)), "maxpool")
    x = nn.relu(conv(256, 3, 1)(x))
    x = nn.relu(conv(192, 3, 1)(x))
    x = layers.pool2x2(nn.relu(conv(192, 3, 1)(x)), "maxpool")
    return x.reshape(x.shape[0], -1)


VGG11_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class _VGGFeatures(nn.Module):
  norm: str
  conv_impl: str
  init_scheme: str

  @nn.compact
  def __call__(self, x, train=False):
    _require_spatial(x, 28, "VGG11")
    first = True
    for item in VGG11_PLAN:
      if item == "M":
        x = layers.pool2x2(x, "maxpool")
        continue
      pad = 3 if first and _one_channel_28(x) else 1
      first = False
      x = layers.Conv(item, 3, padding=pad, impl=self.conv_impl,
                      init_scheme=self.init_scheme)(x)
      norm = layers.make_norm(self.norm, item)
      if norm is not None:
        x = norm(x, train)
      x = nn.relu(x)
    return x.reshape(x.shape[0], -1)


class _WithClassifier(nn.Module):
  """Shared shape: features -> Dense(num_classes); ``embed`` returns the features."""

  num_classes: int
  conv_impl: str = "xla"
  init_scheme: str = "flax"

  def make_features(self) -> nn.Module:
    raise NotImplementedError

  def setup(self):
    self.features = self.make_features()
    self.classifier = layers.Dense(self.num_classes, init_scheme=self.init_scheme)

  def embed(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.features(x, train)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.classifier(self.embed(x, train))


class LeNet(_WithClassifier):
  """6@5x5 -> maxpool -> 16@5x5 -> maxpool -> 120 -> 84 -> num_classes."""

  def make_features(self):
    return _LeNetFeatures(self.conv_impl, self.init_scheme)


class AlexNet(_WithClassifier):
  """CIFAR-sized AlexNet of the DC code: 128@5, 192@5, 256@3, 192@3, 192@3."""

  def make_features(self):
    return _AlexNetFeatures(self.conv_impl, self.init_scheme)


class VGG11(_WithClassifier):
  """VGG11 with instance norm by default (``norm="batchnorm"`` for VGG11BN)."""

  norm: str = "instancenorm"

  def make_features(self):
    return _VGGFeatures(self.norm, self.conv_impl, self.init_scheme)


class Linear(nn.Module):
  """A linear feature extractor psi(x) = theta x with Gaussian theta, then a classifier.

  The setting of the "Privacy for Free" theorem (DM with a linear extractor); used by the
  closed-form check. ``embed``: (N, H, W, C) -> (N, features).
  """

  num_classes: int
  features: int = 64
  std: float = 1.0
  init_scheme: str = "flax"  # accepted for a uniform registry; theta is always Gaussian

  def setup(self):
    self.theta = nn.Dense(self.features, use_bias=False,
                          kernel_init=nn.initializers.normal(self.std))
    self.classifier = layers.Dense(self.num_classes)

  def embed(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return self.theta(x.reshape(x.shape[0], -1))

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.classifier(self.embed(x, train))
