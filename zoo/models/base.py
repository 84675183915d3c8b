"""The two interfaces a zoo model has: Classifier, after timm's (features, head, classifier reset, a size check), and
Autoencoder (encoder, decoder, the code's shape, a size check), for task reconstruction.

`forward(x)` always returns logits: class scores, or an autoencoder's pixels before the sigmoid. Networks with
auxiliary heads (GoogLeNet) return `(logits, [aux logits])` only when the caller asks with
`forward(x, return_aux=True)` in training; going through `forward` keeps DistributedDataParallel's gradient hooks in
the path. Every other model answers that call with `(logits, [])`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.errors import ZooError


class Classifier(nn.Module):
    """Base class: subclasses build their layers, set the attributes below and call `self.initialize()` last.

    The default forward_features and forward_head are those of the features/avgpool/classifier layout
    (LeNet-5, AlexNet, VGG); networks laid out otherwise override them.
    """

    num_classes: int
    min_input_size: int | None = None  # smallest H = W accepted; None when any size works
    # Dotted paths of the final Linear layer of every head (aux heads included), for reset_classifier.
    head_paths: tuple[str, ...]

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone: image batch to the last feature map, before pooling and the head."""
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        """Pool, flatten and classify the feature map."""
        return self.classifier(self.avgpool(x).flatten(1))

    def forward(self, x: Tensor, *, return_aux: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        self.check_input(x)
        logits = self.forward_head(self.forward_features(x))
        return (logits, []) if return_aux else logits

    def check_input(self, x: Tensor) -> None:
        """Fail before any layer runs, with the minimum, rather than deep inside a pooling layer."""
        if self.min_input_size is None or x.dim() != 4:
            return
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            size = self.min_input_size
            raise ZooError(
                f"{getattr(self, 'name', type(self).__name__.lower())} needs inputs of at least "
                f"{size}x{size}, got {height}x{width}; resize or pad the images (data.input_size)"
            )

    def first_conv(self, key: str = "--filters") -> tuple[str, nn.Conv2d]:
        """(dotted name, module) of the first convolution, the one the input meets first: its weights are the
        filters zoo explain --filters and train.log_filters draw. Raises ZooError naming `key` (the option or
        config key that asked) for a network without one."""
        return first_conv(self, key)

    def get_classifier(self) -> nn.Linear:
        return self.get_submodule(self.head_paths[0])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every head's final Linear layer (auxiliary heads too) with a new one for num_classes."""
        for path in self.head_paths:
            old = self.get_submodule(path)
            new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
            self.set_submodule(path, new.to(device=old.weight.device, dtype=old.weight.dtype))
        self.num_classes = num_classes

    def apply_constraints(self) -> None:
        """The network's constraints on its weights, which the training loop applies after every optimizer step
        (zoo.loop.TrainStep): TextCNN's max-norm on its head's rows (Kim 2014). None by default."""

    def initialize(self) -> None:
        """Constructors call this last: the model's own init_weights, where it defines one. Elsewhere the
        layers' constructors have initialized every weight already; initializing again would draw new random
        numbers and change every result for a given seed. Skipped on the meta device (shapes only)."""
        if type(self).init_weights is Classifier.init_weights or any(p.is_meta for p in self.parameters()):
            return
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """The model's own initialization (the paper's, or torchvision's where weights must match); by default
        every layer's reset_parameters, which its constructor ran (the "default" scheme of zoo.models.weight_init)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()


class AuxClassifier(Classifier):
    """A Classifier with auxiliary heads in training (GoogLeNet's two, Inception v3's one): subclasses give
    `_trunk(x, aux)`, the backbone, which appends each head's logits to `aux` when it is a list, and `has_aux`."""

    @property
    def has_aux(self) -> bool:
        """Whether the auxiliary heads are built (the builder's aux_logits)."""
        raise NotImplementedError

    def _trunk(self, x: Tensor, aux: list[Tensor] | None) -> Tensor:
        raise NotImplementedError

    def forward_features(self, x: Tensor) -> Tensor:
        return self._trunk(x, aux=None)

    def forward(self, x: Tensor, *, return_aux: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """N x C x H x W -> N x num_classes logits; with return_aux=True, (logits, [the heads' logits]) in training
        with the heads built, (logits, []) otherwise. Raises ZooError as check_input does."""
        self.check_input(x)
        aux: list[Tensor] | None = [] if return_aux and self.training and self.has_aux else None
        logits = self.forward_head(self._trunk(x, aux))
        return (logits, aux or []) if return_aux else logits


class Autoencoder(nn.Module):
    """Base class of the reconstruction networks (zoo.models.autoencoder): `encoder` takes [0, 1] pixels to the code,
    `decoder` takes the code to pixel logits; the sigmoid of `forward(x)` is the reconstruction. No head, no classes.

    Subclasses build `encoder` and `decoder` (the names are the checkpoint's keys), set in_channels, out_channels and
    the size rule (min_input_size and size_multiple, or their own check_size), and give code_shape.
    """

    num_classes = 0  # the target is the picture itself
    in_channels: int
    out_channels: int  # in_channels, or 3 from 1 to colour gray pictures
    encoder: nn.Module
    decoder: nn.Module
    min_input_size: int | None = None  # smallest H = W rebuilt
    size_multiple: int = 1  # H and W must be multiples of it: 2 ** the encoder's halvings, so the decoder doubles back

    def encode(self, x: Tensor) -> Tensor:
        """N x C x H x W pixels in [0, 1] to the code: N x code values (dense) or N x c x h x w (convolutional)."""
        return self.encoder(x)

    def decode(self, code: Tensor) -> Tensor:
        """The code to N x out_channels x H x W logits (apply the sigmoid for pixels)."""
        return self.decoder(code)

    def forward(self, x: Tensor, *, return_aux: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        self.check_input(x)
        logits = self.decode(self.encode(x))
        return (logits, []) if return_aux else logits

    def code_shape(self, input_size: int) -> tuple[int, ...]:
        """The code's shape for one H = W = input_size picture, no batch dimension: (32,) or (8, 7, 7)."""
        raise NotImplementedError

    def code_size(self, input_size: int) -> int:
        """The code's number of values at H = W = input_size: what the picture is compressed to (PCA's components)."""
        return math.prod(self.code_shape(input_size))

    def check_input(self, x: Tensor) -> None:
        """Fail before any layer runs for a size the network cannot give back exactly (a halving would drop a row)."""
        if x.dim() == 4:
            self.check_size(*x.shape[-2:])

    def check_size(self, height: int, width: int) -> None:
        """Raise ZooError in one line unless both sides are multiples of size_multiple and at least min_input_size."""
        step, least = self.size_multiple, self.min_input_size or 1
        if height % step or width % step or min(height, width) < least:
            near = max(least, (max(height, width) + step // 2) // step * step)  # the nearest multiple, ties up
            floor = f" and at least {least}" if least > step else ""
            self.refuse_size(f"rebuilds inputs whose height and width are multiples of {step}{floor}", height, width,
                             f"set data.input_size to such a size, e.g. {near}")

    def refuse_size(self, rule: str, height: int, width: int, fix: str) -> None:
        name = getattr(self, "name", type(self).__name__.lower())
        raise ZooError(f"{name} {rule}, got {height}x{width}; {fix}")

    def first_conv(self, key: str = "--filters") -> tuple[str, nn.Conv2d]:
        """As Classifier.first_conv: the encoder's first convolution, or ZooError naming `key` (the dense one)."""
        return first_conv(self, key)


def first_conv(model: nn.Module, key: str = "--filters") -> tuple[str, nn.Conv2d]:
    """(dotted name, module) of the first nn.Conv2d in `model.named_modules()` order (any module;
    unwrap a DistributedDataParallel wrapper first: zoo.distributed.unwrap): the one the input meets first in
    every zoo network (conv1, features.0, GoogLeNet's conv1.conv). Raises ZooError for a network without one
    (the MLP), naming `key`, the option or config key that asked."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    kind = getattr(model, "name", None) or type(model).__name__
    raise ZooError(f"{key}: {kind} has no convolution, so no filters to show; a convolutional network has them "
                   "(lenet5, mnist_cnn, alexnet, resnet18 ...)")
