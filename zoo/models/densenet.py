"""DenseNet: Huang, Liu, van der Maaten, Weinberger (2017), "Densely Connected Convolutional Networks",
arXiv:1608.06993.

Each layer of a dense block takes the concatenation of every earlier map of the block and adds k (the growth rate)
maps to it. All networks here are the paper's DenseNet-BC: every layer is a bottleneck (BN, ReLU, 1x1 convolution
to 4k maps, BN, ReLU, 3x3 convolution to k maps), and each transition between blocks (BN, ReLU, 1x1 convolution,
2x2 average pool) keeps half the maps (compression 0.5).

- `densenet121` ... `densenet201`: the ImageNet networks of the paper's Table 1 (k = 32; 48 for DenseNet-161, whose
  stem has 96 maps) with torchvision's layout and attribute names, so its state dicts load key for key. Files
  saved by torchvision before 0.3 name a layer's modules `norm.1`, `conv.2` ...; `rename_legacy_keys` gives them
  today's names, as torchvision does with a regex when it loads its weights.
- `densenet_bc_100`: the paper's CIFAR network (section 3, "Implementation Details"): k = 12, depth 100, three
  blocks of 16 bottleneck layers on 32x32, 16x16 and 8x8 maps, a first 3x3 convolution to 2k = 24 maps and no
  pooling before the first block (`small_input=True`).
- `memory_efficient=True` recomputes each layer's concatenation, batch norm and 1x1 convolution in the backward
  pass instead of keeping them (torch.utils.checkpoint, as torchvision does; Pleiss et al. 2017, "Memory-Efficient
  Implementation of DenseNets", arXiv:1707.06990): the same gradients, memory linear rather than quadratic in depth.
  Unlike torchvision's, the recomputation does not update batch norm's running statistics a second time.
- `activation=name` (default "relu", the paper's) replaces every ReLU with any name in
  zoo.models.layers.ACTIVATIONS. The final ReLU before pooling is a function, as in torchvision's forward, unless
  another activation makes it a module (`act`); no state dict key changes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from functools import partial

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from zoo.models.base import Classifier
from zoo.models.layers import activation_layer
from zoo.models.registry import Paper, ParamReference, register_model

HUANG_2017 = Paper("Huang, Liu, van der Maaten, Weinberger", 2017, "Densely Connected Convolutional Networks",
                   "arXiv:1608.06993")

# torchvision before 0.3 named a dense layer's modules norm.1, relu.1, conv.1, norm.2 ... (dots are no longer allowed
# in module names); its published ImageNet files still do. The pattern is torchvision's own.
LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                        r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def rename_legacy_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A DenseNet state dict with torchvision's old key names (`features.denseblock1.denselayer1.norm.1.weight`)
    given today's (`...denselayer1.norm1.weight`); other keys unchanged, in the same order."""
    return {(f"{match.group(1)}{match.group(2)}" if (match := LEGACY_KEY.match(key)) else key): value
            for key, value in state.items()}


@contextlib.contextmanager
def _statistics_kept(norm: nn.BatchNorm2d) -> Iterator[None]:
    """Batch norm's running statistics as they were before the block, whatever it runs."""
    buffers = [norm.running_mean, norm.running_var, norm.num_batches_tracked]
    saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)


class DenseLayer(nn.Module):
    """BN, activation, 1x1 convolution to bn_size * k maps, BN, activation, 3x3 convolution to k maps: takes the
    list of the block's maps so far (N x C_i x H x W each), gives the k new ones (N x k x H x W)."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float = 0.0,
                 memory_efficient: bool = False, activation: str = "relu") -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = activation_layer(activation)  # torchvision's names, whatever the activation
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = activation_layer(activation)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def _contexts(self) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        """The checkpoint's forward and recomputation contexts: the recomputation leaves norm1's running statistics
        as the forward pass left them, where torchvision's adds the batch a second time (its running statistics move
        twice per step, gpleiss/efficient_densenet_pytorch#73)."""
        return contextlib.nullcontext(), _statistics_kept(self.norm1)

    def bottleneck(self, *inputs: Tensor) -> Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def forward(self, inputs: Tensor | list[Tensor]) -> Tensor:
        inputs = [inputs] if isinstance(inputs, Tensor) else inputs
        if self.memory_efficient and any(tensor.requires_grad for tensor in inputs):
            # The concatenation is the quadratic memory; recomputing it costs one more pass of cat, norm1 and conv1.
            out = torch.utils.checkpoint.checkpoint(self.bottleneck, *inputs, use_reentrant=False,
                                                    context_fn=self._contexts)
        else:
            out = self.bottleneck(*inputs)
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = nn.functional.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers: N x C x H x W in, N x (C + num_layers * k) x H x W out."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, **layer_options) -> None:
        super().__init__()
        for index in range(num_layers):
            layer = DenseLayer(in_channels + index * growth_rate, growth_rate, **layer_options)
            self.add_module(f"denselayer{index + 1}", layer)

    def forward(self, x: Tensor) -> Tensor:
        maps = [x]
        for layer in self.values():
            maps.append(layer(maps))
        return torch.cat(maps, 1)


class Transition(nn.Sequential):
    """BN, activation, 1x1 convolution to out_channels, 2x2 average pool: N x C x H x W to N x out x H/2 x W/2."""

    def __init__(self, in_channels: int, out_channels: int, activation: str = "relu") -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = activation_layer(activation)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class DenseNet(Classifier):
    head_paths = ("classifier",)

    def __init__(
        self,
        block_config: Sequence[int],  # dense layers per block
        num_classes: int = 1000,
        in_channels: int = 3,
        growth_rate: int = 32,  # k: maps each layer adds
        num_init_features: int = 64,  # the stem's maps: 2k in the paper's networks
        bn_size: int = 4,  # the bottleneck's maps, in multiples of k (the paper's 4k)
        compression: float = 0.5,  # theta: the share of its maps a transition keeps
        drop_rate: float = 0.0,  # dropout after each dense layer (the paper's 0.2 on CIFAR without augmentation)
        small_input: bool = False,  # 3x3 stride-1 stem without norm or pooling: the paper's CIFAR networks
        memory_efficient: bool = False,  # recompute the bottlenecks in the backward pass (torch.utils.checkpoint)
        activation: str = "relu",  # every non-linearity: a name in zoo.models.layers.ACTIVATIONS
    ) -> None:
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression is {compression}; give the share of maps a transition keeps, in (0, 1]")
        self.num_classes = num_classes
        self.features = self._stem(in_channels, num_init_features, small_input, activation)
        block = partial(DenseBlock, growth_rate=growth_rate, bn_size=bn_size, drop_rate=drop_rate,
                        memory_efficient=memory_efficient, activation=activation)
        # densenet121 at 224: blocks at 56, 28, 14 and 7 pixels; densenet_bc_100 at 32: 32, 16 and 8.
        width = num_init_features
        for index, num_layers in enumerate(block_config, start=1):
            self.features.add_module(f"denseblock{index}", block(num_layers, width))
            width += num_layers * growth_rate
            if index < len(block_config):
                self.features.add_module(f"transition{index}", Transition(width, int(width * compression), activation))
                width = int(width * compression)
        self.features.add_module("norm5", nn.BatchNorm2d(width))
        self.num_features = width  # densenet121: 1024
        # The final activation: a function for the default ReLU (torchvision's tree), else a module.
        self.act = None if activation == "relu" else activation_layer(activation)
        self.classifier = nn.Linear(width, num_classes)
        # Each transition halves the map; the ImageNet stem quarters it: the last map is 1x1 at this size.
        self.min_input_size = 2 ** (len(block_config) - 1) * (1 if small_input else 4)
        self.initialize()

    @staticmethod
    def _stem(in_channels: int, width: int, small_input: bool, activation: str) -> nn.Sequential:
        stem = nn.Sequential()
        if small_input:
            stem.add_module("conv0", nn.Conv2d(in_channels, width, 3, padding=1, bias=False))  # N x 2k x 32 x 32
            return stem
        # ImageNet: N x 64 x 112 x 112, then N x 64 x 56 x 56 after the pool
        stem.add_module("conv0", nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False))
        stem.add_module("norm0", nn.BatchNorm2d(width))
        stem.add_module("relu0", activation_layer(activation))
        stem.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))
        return stem

    def init_weights(self) -> None:
        # torchvision's: He normal (fan in) for convolutions, BN to the identity, zero biases for the FC layer
        # (its weights keep nn.Linear's own draw).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)  # densenet121 at 224: N x 1024 x 7 x 7, after norm5, before the final activation

    def forward_head(self, x: Tensor) -> Tensor:
        x = x.relu() if self.act is None else self.act(x)  # not in place: it would change forward_features' output
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


_imagenet = partial(register_model, family="densenet", paper=HUANG_2017, input_size=(3, 224, 224))


def _tv(name: str, count: int) -> dict:
    return {"reference": ParamReference(count, f"torchvision {name}"), "torchvision": name}


@_imagenet(**_tv("densenet121", 7_978_856))
def densenet121(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    """Other keyword arguments go to DenseNet: growth_rate, bn_size, compression, drop_rate, memory_efficient,
    small_input, activation ..."""
    return DenseNet((6, 12, 24, 16), num_classes, in_channels, **kwargs)


@_imagenet(**_tv("densenet161", 28_681_000))
def densenet161(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    return DenseNet((6, 12, 36, 24), num_classes, in_channels, growth_rate=48, num_init_features=96, **kwargs)


@_imagenet(**_tv("densenet169", 14_149_480))
def densenet169(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    return DenseNet((6, 12, 32, 32), num_classes, in_channels, **kwargs)


@_imagenet(**_tv("densenet201", 20_013_928))
def densenet201(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    return DenseNet((6, 12, 48, 32), num_classes, in_channels, **kwargs)


@register_model(family="densenet", paper=HUANG_2017, input_size=(3, 32, 32), num_classes=10,
                reference=ParamReference(800_000, "Huang et al. 2017, Table 2 (DenseNet-BC, L = 100, k = 12)",
                                         100_000))
def densenet_bc_100(num_classes: int = 10, in_channels: int = 3, **kwargs) -> DenseNet:
    """Depth 100: the first convolution, 3 blocks x 16 layers x 2 convolutions, 2 transitions and the FC layer."""
    return DenseNet((16, 16, 16), num_classes, in_channels, growth_rate=12, num_init_features=24, small_input=True,
                    **kwargs)
