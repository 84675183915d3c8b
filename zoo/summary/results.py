"""What a summary is: frozen records, the fields `zoo summary --format json` prints, in this order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    depth: int
    kernel: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    padding: tuple[int, ...] | str | None
    input_shape: tuple[int, ...] | None  # one image's, batch dimension dropped; None if never called
    output_shape: tuple[int, ...] | None
    calls: int  # a module used twice is one row with two calls
    params: int
    trainable_params: int
    macs: int
    activation_bytes: int
    training_only: bool  # an auxiliary head: runs in training, not at inference
    own: bool  # only what an expanded parent holds or computes itself, not its children


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    frozen_params: int
    buffers: int
    macs: int  # per image, batch 1
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int  # forward, per image: the input and every layer output that is new memory
    training_bytes: int  # see zoo.summary.tree.totals


@dataclass(frozen=True)
class ReferenceCheck:
    count: int
    source: str
    matches: bool


@dataclass(frozen=True)
class Summary:
    model: str
    input_size: tuple[int, ...]  # one image's: C, H, W; one sentence's: L (input "tokens")
    batch_size: int
    depth: int
    layers: tuple[Layer, ...]
    totals: Totals
    totals_without_aux: Totals | None  # set when training-only layers (auxiliary heads) are listed
    reference: ReferenceCheck | None  # the registry's published count, for the paper's configuration
    code_shape: tuple[int, ...] | None = None  # an autoencoder's code for one image (its encoder's output); else None
    input: str = "image"  # what input_size is: an image's C, H, W, or a sentence's L token ids ("tokens")
