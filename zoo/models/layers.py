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
