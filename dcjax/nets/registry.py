"""Networks by the names the DC papers use: ``get_net("ConvNetD4", num_classes=10)``."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn

from dcjax.nets.classic import MLP, AlexNet, LeNet, Linear, VGG11
from dcjax.nets.convnet import ConvNet
from dcjax.nets.resnet import ResNet18

_CONVNET_VARIANTS: dict[str, dict[str, Any]] = {
    "ConvNet": {},
    **{f"ConvNetW{w}": {"width": w} for w in (32, 64, 128, 256)},
    **{f"ConvNetD{d}": {"depth": d} for d in (1, 2, 3, 4, 5)},
    "ConvNetAS": {"act": "sigmoid"},
    "ConvNetAR": {"act": "relu"},
    "ConvNetAL": {"act": "leakyrelu"},
    "ConvNetASwish": {"act": "swish"},
    "ConvNetNN": {"norm": "none"},
    "ConvNetBN": {"norm": "batchnorm"},
    "ConvNetLN": {"norm": "layernorm"},
    "ConvNetIN": {"norm": "instancenorm"},
    "ConvNetGN": {"norm": "groupnorm"},
    "ConvNetNP": {"pool": "none"},
    "ConvNetMP": {"pool": "maxpool"},
    "ConvNetAP": {"pool": "avgpool"},
}

_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    **{name: (lambda kw: lambda **o: ConvNet(**{**kw, **o}))(kw)
       for name, kw in _CONVNET_VARIANTS.items()},
    "MLP": MLP,
    "Linear": Linear,
    "LeNet": LeNet,
    "AlexNet": AlexNet,
    "VGG11": VGG11,
    "VGG11BN": lambda **o: VGG11(**{"norm": "batchnorm", **o}),
    "ResNet18": ResNet18,
    "ResNet18BN": lambda **o: ResNet18(**{"norm": "batchnorm", **o}),
}

NET_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def default_net(image_shape: tuple[int, ...]) -> str:
  """The DC ConvNet whose depth suits the image size: 3 blocks for 28-32 px (the papers'),
  2 for the 8x8 digits. Three blocks would pool 8x8 down to 1x1 and instance-normalise the
  last conv over a 2x2 map, which makes gradient matching's image gradients explode (~50 per
  image of norm ~8 at init, measured), so DC/DSA destroy the images at their reference lr."""
  side = min(image_shape[-3:-1])
  return "ConvNet" if side >= 16 else "ConvNetD2"


def get_net(name: str, num_classes: int, **overrides: Any) -> nn.Module:
  """Builds a network by registry name; ``overrides`` set module fields (e.g. conv_impl)."""
  if name not in _FACTORIES:
    raise ValueError(f"Unknown network {name!r}; known networks: {', '.join(NET_NAMES)}.")
  if not isinstance(num_classes, int) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
  return _FACTORIES[name](num_classes=num_classes, **overrides)


def uses_batch_stats(net: nn.Module) -> bool:
  """True when the network keeps BatchNorm running statistics."""
  return getattr(net, "norm", None) == "batchnorm"
