"""The DC network family (NHWC). Every network has ``__call__`` -> logits and ``embed``."""

from dcjax.nets.classic import MLP, AlexNet, LeNet, Linear, VGG11
from dcjax.nets.convnet import ConvNet
from dcjax.nets.layers import Conv
from dcjax.nets.registry import NET_NAMES, default_net, get_net, uses_batch_stats
from dcjax.nets.resnet import ResNet18

__all__ = ["MLP", "Linear", "AlexNet", "LeNet", "VGG11", "ConvNet", "Conv", "ResNet18", "NET_NAMES", "default_net",
           "get_net", "uses_batch_stats"]
