"""Blocks shared by several families."""

from __future__ import annotations

from torch import Tensor, nn


class SqueezeExcite(nn.Module):
    """Hu et al. 2017: global average pool, FC reduce by r, ReLU, FC, sigmoid, channel-wise scale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean(dim=(2, 3))  # N x C
        scale = self.fc2(self.fc1(squeezed).relu()).sigmoid()
        return x * scale[:, :, None, None]


def conv_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    """A convolution with bias followed by ReLU, as two layers for an nn.Sequential."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(inplace=True)]


class FitAvgPool2d(nn.AdaptiveAvgPool2d):
    """nn.AdaptiveAvgPool2d that passes a map already at its output size through untouched. At a network's
    native input size the pool is the identity, yet torch still runs it forward and backward: 0.1 ms of
    LeNet-5's 4.5 ms CPU training step at batch 32. The output is the same either way."""

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__(output_size)
        self.size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: Tensor) -> Tensor:
        return x if tuple(x.shape[-2:]) == self.size else super().forward(x)
