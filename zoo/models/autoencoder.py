"""The course's autoencoders (course 004: Mnist_AE, Mnist_AE_CNN, Colorization), for task reconstruction.

An autoencoder's target is its input: the encoder squeezes the picture into a code much smaller than it, the decoder
rebuilds the picture from the code alone, so the code keeps what most pictures share (a non-linear PCA: Hinton and
Salakhutdinov 2006, doi:10.1126/science.1127647). The course uses it to remove noise, to find anomalies (a picture
rebuilt badly is unlike the training pictures) and, from gray pictures to colour ones, to colourize.

- autoencoder: dense, 784 -> 32 -> 784, as Keras's blog "Building Autoencoders in Keras" (Chollet 2016).
- conv_autoencoder: the blog's convolutional one with two stages where it has three (see ConvAutoencoder).
- deep_conv_autoencoder: strided convolutions with batch norm for colour pictures of 64x64 and up.

Every one returns logits, never the sigmoid: the task applies it, and binary cross-entropy takes the logits, which is
exact where the sigmoid's output would round to 0 or 1. `out_channels` (default: in_channels) lets a 1-channel input
rebuild 3 channels: the colourisation lesson. Builders take num_classes, as every builder does, and ignore it.
The layers keep torch's own initialization.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from zoo.errors import ZooError
from zoo.models.base import Autoencoder
from zoo.models.layers import activation_layer, check_activation
from zoo.models.registry import Paper, ParamReference, register_model

__all__ = ["Autoencoder", "ConvAutoencoder", "DeepConvAutoencoder", "DenseAutoencoder"]

HINTON_2006 = Paper("Hinton, Salakhutdinov", 2006, "Reducing the dimensionality of data with neural networks",
                    "doi:10.1126/science.1127647")
CHOLLET_2016 = Paper("Chollet", 2016, "Building Autoencoders in Keras (The Keras Blog)",
                     "https://blog.keras.io/building-autoencoders-in-keras.html")
MASCI_2011 = Paper("Masci, Meier, Ciresan, Schmidhuber", 2011,
                   "Stacked convolutional auto-encoders for hierarchical feature extraction",
                   "doi:10.1007/978-3-642-21735-7_7")


def _check_widths(what: str, widths: Sequence[int], at_least_one: bool = True) -> None:
    """Raise ZooError in one line unless every width is a positive integer (and there is one, where asked)."""
    if (at_least_one and not widths) or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ZooError(f"{what} must be {'one or more' if at_least_one else 'zero or more'} positive integers, "
                       f"got {list(widths)!r}")


def _conv_bn_act(in_channels: int, out_channels: int, stride: int, activation: str, kernel_size: int = 3
                 ) -> nn.Sequential:
    """A convolution without bias (the norm's beta shifts instead), batch norm and the activation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels), activation_layer(activation))


class DenseAutoencoder(Autoencoder):
    """Dense layers on the flattened picture, after the Keras blog's first autoencoder (`encoding_dim = 32`):

        encoder: Flatten                      # N x 784 (C x H x W)
                 Linear(784, 32) + ReLU       # N x 32: the code
        decoder: Linear(32, 784)              # N x 784 logits
                 Unflatten                    # N x 1 x 28 x 28

    hidden_sizes adds dense layers on both sides, mirrored: (128, 64) is the blog's deep autoencoder
    784-128-64-32-64-128-784. The blog's decoder ends in a sigmoid; here the task applies it (the module docstring).
    The picture's size is fixed by input_size: other sizes are refused before any layer runs.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,  # None: in_channels
        input_size: int = 28,  # side of the square pictures it rebuilds, and only those
        code_size: int = 32,  # the blog's encoding_dim: 784 / 32 = 24.5 times smaller
        hidden_sizes: Sequence[int] = (),  # dense layers between the picture and the code, mirrored in the decoder
        activation: str = "relu",  # after every layer but the last: a name in zoo.models.layers.ACTIVATIONS
    ) -> None:
        super().__init__()
        check_activation(activation)
        _check_widths("code_size", [code_size])
        _check_widths("hidden_sizes", list(hidden_sizes), at_least_one=False)
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.input_size = self.min_input_size = input_size
        self.code_features = code_size  # not self.code_size: that is the method
        widths = [in_channels * input_size**2, *hidden_sizes, code_size]
        encoder: list[nn.Module] = [nn.Flatten()]
        for width, next_width in zip(widths, widths[1:]):
            encoder += [nn.Linear(width, next_width), activation_layer(activation)]
        widths = [*reversed(widths[1:]), self.out_channels * input_size**2]
        decoder: list[nn.Module] = []
        for width, next_width in zip(widths, widths[1:]):
            decoder += [nn.Linear(width, next_width), activation_layer(activation)]
        decoder[-1] = nn.Unflatten(1, (self.out_channels, input_size, input_size))  # logits: no activation
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)

    def check_size(self, height: int, width: int) -> None:
        side = self.input_size
        if (height, width) != (side, side):
            other = f", or model.input_size to {height}" if height == width else ""
            self.refuse_size(f"rebuilds {side}x{side} inputs only", height, width,
                             f"set data.input_size to {side}{other}")

    def code_shape(self, input_size: int) -> tuple[int, ...]:
        self.check_size(input_size, input_size)
        return (self.code_features,)


class ConvAutoencoder(Autoencoder):
    """The Keras blog's convolutional autoencoder for 28x28 digits, with two stages where the blog has three:

        encoder: Conv(1, 16, 3, same) + ReLU  # N x 16 x 28 x 28
                 MaxPool(2)                   # N x 16 x 14 x 14
                 Conv(16, 8, 3, same) + ReLU  # N x 8 x 14 x 14
                 MaxPool(2)                   # N x 8 x 7 x 7: the code, 392 values
        decoder: Conv(8, 8, 3, same) + ReLU   # N x 8 x 7 x 7
                 Upsample(2, nearest)         # N x 8 x 14 x 14
                 Conv(8, 16, 3, same) + ReLU  # N x 16 x 14 x 14
                 Upsample(2, nearest)         # N x 16 x 28 x 28
                 Conv(16, 1, 3, same)         # N x 1 x 28 x 28 logits

    The blog's third stage (Conv(8, 8) and a pool that pads 7 to 8 and halves it to a 4x4 code of 128 values, undone
    in the decoder by a 'valid' convolution taking 16 to 14) works at 28 only; two stages rebuild any H and W that are
    multiples of 4 exactly. Its two convolutions of 584 parameters go with it: 3,217 parameters where the blog's
    network has 4,385. The blog's last layer has a sigmoid; here the task applies it (the module docstring).
    `channels` gives one stage per entry: the code is channels[-1] maps at H / 2 ** len(channels).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,  # None: in_channels
        channels: Sequence[int] = (16, 8),  # each stage's maps, encoder order; the decoder takes them in reverse
        activation: str = "relu",  # after every convolution but the last: a name in zoo.models.layers.ACTIVATIONS
    ) -> None:
        super().__init__()
        check_activation(activation)
        _check_widths("channels", list(channels))
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.channels = tuple(channels)
        self.size_multiple = self.min_input_size = 2 ** len(channels)  # the code is at least 1x1
        encoder: list[nn.Module] = []
        for width, next_width in zip([in_channels, *channels], channels):
            encoder += [nn.Conv2d(width, next_width, 3, padding=1), activation_layer(activation), nn.MaxPool2d(2)]
        decoder: list[nn.Module] = []
        for width, next_width in zip([channels[-1], *reversed(channels)], reversed(channels)):
            decoder += [nn.Conv2d(width, next_width, 3, padding=1), activation_layer(activation),
                        nn.Upsample(scale_factor=2, mode="nearest")]
        decoder.append(nn.Conv2d(channels[0], self.out_channels, 3, padding=1))  # logits
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)

    def code_shape(self, input_size: int) -> tuple[int, ...]:
        self.check_size(input_size, input_size)
        return (self.channels[-1], input_size // self.size_multiple, input_size // self.size_multiple)


class DeepConvAutoencoder(Autoencoder):
    """A deeper convolutional autoencoder for colour pictures, as the course's colourisation lesson uses one (course
    004, Colorization_TF2; gray in, colour out with in_channels=1, out_channels=3). Defaults, 3 x 64 x 64 in:

        encoder.0-3: Conv(3, stride 2) + BN + ReLU, 32, 64, 128, 256 maps  # N x 256 x 4 x 4
        encoder.4:   Conv(256, 16, 1)                                      # N x 16 x 4 x 4: the code, 256 values
        decoder.0:   Conv(16, 256, 1) + BN + ReLU                          # N x 256 x 4 x 4
        decoder.1-4: Upsample(2, nearest), Conv(3) + BN + ReLU, 128, 64, 32, 32 maps  # N x 32 x 64 x 64
        decoder.5:   Conv(32, out_channels, 3)                             # N x 3 x 64 x 64 logits

    After Masci et al. 2011's convolutional autoencoder, with what has since become the usual way to build one:
    strided convolutions halve the maps where the paper max-pools, batch norm (Ioffe and Szegedy 2015,
    arXiv:1502.03167) follows every hidden convolution, and the network trains end to end where the paper trains
    one layer at a time and stacks them. The decoder upsamples and then convolves, as Odena, Dumoulin and Olah
    (2016, doi:10.23915/distill.00003) advise over transposed convolutions, whose overlaps leave checkerboard
    patterns. The code is linear (no norm, no activation): a 1x1 convolution to code_channels maps.
    H and W must be multiples of 2 ** len(channels).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,  # None: in_channels; 3 from in_channels=1 colourizes
        channels: Sequence[int] = (32, 64, 128, 256),  # each stride-2 stage's maps, encoder order
        code_channels: int = 16,  # maps of the code: 16 x 4 x 4 = 256 values at 64x64, 1/48 of the picture
        activation: str = "relu",  # after every hidden convolution's norm: a name in zoo.models.layers.ACTIVATIONS
    ) -> None:
        super().__init__()
        check_activation(activation)
        _check_widths("channels", list(channels))
        _check_widths("code_channels", [code_channels])
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.channels, self.code_channels = tuple(channels), code_channels
        self.size_multiple = self.min_input_size = 2 ** len(channels)
        stages = [_conv_bn_act(width, next_width, 2, activation)
                  for width, next_width in zip([in_channels, *channels], channels)]
        self.encoder = nn.Sequential(*stages, nn.Conv2d(channels[-1], code_channels, 1))
        widths = [channels[-1], *reversed(channels[:-1]), channels[0]]
        ups = [nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             *_conv_bn_act(width, next_width, 1, activation))
               for width, next_width in zip(widths, widths[1:])]
        self.decoder = nn.Sequential(_conv_bn_act(code_channels, channels[-1], 1, activation, kernel_size=1), *ups,
                                     nn.Conv2d(channels[0], self.out_channels, 3, padding=1))

    def code_shape(self, input_size: int) -> tuple[int, ...]:
        self.check_size(input_size, input_size)
        side = input_size // self.size_multiple
        return (self.code_channels, side, side)


@register_model(family="autoencoder", task="reconstruction", paper=HINTON_2006, input_size=(1, 28, 28), num_classes=0,
                reference=ParamReference(50_992, "Keras blog's 784-32-784 autoencoder (Chollet 2016): "
                                                 "25,120 + 25,872"))
def autoencoder(num_classes: int = 0, in_channels: int = 1, **kwargs) -> DenseAutoencoder:
    """The course's dense autoencoder (Keras blog). Other keyword arguments go to DenseAutoencoder: out_channels,
    input_size, code_size, hidden_sizes, activation."""
    return DenseAutoencoder(in_channels, **kwargs)


@register_model(family="autoencoder", task="reconstruction", paper=CHOLLET_2016, input_size=(1, 28, 28),
                num_classes=0)
def conv_autoencoder(num_classes: int = 0, in_channels: int = 1, **kwargs) -> ConvAutoencoder:
    """The course's convolutional autoencoder (the Keras blog's, two stages). Other keyword arguments go to
    ConvAutoencoder: out_channels, channels, activation."""
    return ConvAutoencoder(in_channels, **kwargs)


@register_model(family="autoencoder", task="reconstruction", paper=MASCI_2011, input_size=(3, 64, 64),
                num_classes=0)
def deep_conv_autoencoder(num_classes: int = 0, in_channels: int = 3, **kwargs) -> DeepConvAutoencoder:
    """A convolutional autoencoder for colour pictures (colourisation: in_channels=1, out_channels=3). Other keyword
    arguments go to DeepConvAutoencoder: out_channels, channels, code_channels, activation."""
    return DeepConvAutoencoder(in_channels, **kwargs)
