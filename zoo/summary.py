"""`zoo summary`: per-layer shapes, parameters and MACs, and the totals a course table gives.

Parameters are counted by ownership: each tensor once, by the first module that registers it,
so tied weights count once and a parameter that a forward uses through a functional call is still
counted. Shapes and MACs come from one traced forward pass (zoo.tracing). A row at the chosen depth
folds in everything below it, and a parent shown expanded gets an "(own)" row for what it holds or
computes itself, so the rows add up to the totals at every depth.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.registry import ParamReference, create_model, get_model_info
from zoo.tables import check_format, format_bytes, render
from zoo.tracing import ModuleTrace, input_dtype, trace_forward


@dataclass(frozen=True)
class Stats:
    """Counts for one module's own share, a subtree, or the whole model. MACs and activations per image."""

    params: int = 0
    trainable_params: int = 0
    buffers: int = 0  # elements, e.g. batch-norm running statistics
    param_bytes: int = 0
    gradient_bytes: int = 0  # one gradient per trainable parameter
    buffer_bytes: int = 0
    macs: int = 0
    activation_bytes: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


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
    training_bytes: int  # see _totals


@dataclass(frozen=True)
class ReferenceCheck:
    count: int
    source: str
    matches: bool


@dataclass(frozen=True)
class Summary:
    model: str
    input_size: tuple[int, ...]  # one image's: C, H, W
    batch_size: int
    depth: int
    layers: tuple[Layer, ...]
    totals: Totals
    totals_without_aux: Totals | None  # set when training-only layers (auxiliary heads) are listed
    reference: ReferenceCheck | None  # the registry's published count, for the paper's configuration


@dataclass
class _Node:
    name: str
    module: nn.Module
    trace: ModuleTrace
    own: Stats
    training_only: bool
    children: list[_Node]

    @property
    def depth(self) -> int:
        return self.name.count(".") + 1 if self.name else 0

    def total(self) -> Stats:
        return sum((child.total() for child in self.children), self.own)

    def walk(self) -> Iterator[_Node]:
        yield self
        for child in self.children:
            yield from child.walk()


def _own_stats(module: nn.Module, trace: ModuleTrace, seen: set[int]) -> Stats:
    """What `module` itself registers (first owner only) and computes, not its children."""
    params = [p for p in module.parameters(recurse=False) if id(p) not in seen]
    buffers = [b for b in module.buffers(recurse=False) if id(b) not in seen]
    seen.update(id(t) for t in (*params, *buffers))
    trainable = [p for p in params if p.requires_grad]

    def size(tensors: Iterable[torch.Tensor]) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    return Stats(
        params=sum(p.numel() for p in params), trainable_params=sum(p.numel() for p in trainable),
        buffers=sum(b.numel() for b in buffers), param_bytes=size(params), gradient_bytes=size(trainable),
        buffer_bytes=size(buffers), macs=trace.macs, activation_bytes=trace.activation_bytes,
    )


def _tree(model: nn.Module, traces: dict[nn.Module, ModuleTrace], training_only: set[nn.Module]) -> _Node:
    seen: set[int] = set()
    nodes: dict[str, _Node] = {}
    for name, module in model.named_modules():  # pre-order; a module registered twice appears once
        node = _Node(name, module, traces[module], _own_stats(module, traces[module], seen), module in training_only, [])
        nodes[name] = node
        if name:
            nodes[name.rpartition(".")[0]].children.append(node)
    for node in nodes.values():  # rows in the order the forward runs them; modules never called last
        node.children.sort(key=lambda child: (child.trace.order is None, child.trace.order or 0))
    return nodes[""]


def _geometry(module: nn.Module, attribute: str) -> tuple[int, ...] | str | None:
    """kernel_size, stride or padding as one entry per spatial dimension (MaxPool2d(3) -> (3, 3))."""
    value = getattr(module, attribute, None)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        dims = re.search(r"(\d)d$", type(module).__name__)
        return (value,) * (int(dims.group(1)) if dims else 1)
    return tuple(value)


def _layer(node: _Node, own: bool) -> Layer:
    stats = node.own if own else node.total()
    trace, module = node.trace, node.module

    def per_image(shape: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if shape is None else shape[1:]

    return Layer(
        name=(node.name or "(model)") + (" (own)" if own else ""), type=type(module).__name__, depth=node.depth,
        kernel=_geometry(module, "kernel_size"), stride=_geometry(module, "stride"), padding=_geometry(module, "padding"),
        input_shape=per_image(trace.input_shape), output_shape=per_image(trace.output_shape), calls=trace.calls,
        params=stats.params, trainable_params=stats.trainable_params, macs=stats.macs,
        activation_bytes=stats.activation_bytes, training_only=node.training_only, own=own,
    )


def _rows(node: _Node, depth: int) -> Iterator[Layer]:
    if node.depth >= depth or not node.children:
        yield _layer(node, own=False)
        return
    if node.own != Stats():
        yield _layer(node, own=True)
    for child in node.children:
        yield from _rows(child, depth)


def _totals(stats: Stats, input_bytes: int, batch_size: int) -> Totals:
    activations = input_bytes + stats.activation_bytes
    # Training keeps every activation for the backward pass and creates a gradient of the same size
    # for each (the course's "x2 for backward"), per image; weights, their gradients and buffers once.
    # Optimizer state is not included: SGD with momentum adds one more copy of the trainable weights, Adam two.
    training = batch_size * 2 * activations + stats.param_bytes + stats.gradient_bytes + stats.buffer_bytes
    return Totals(
        params=stats.params, trainable_params=stats.trainable_params, frozen_params=stats.params - stats.trainable_params,
        buffers=stats.buffers, macs=stats.macs, param_bytes=stats.param_bytes, buffer_bytes=stats.buffer_bytes,
        activation_bytes=activations, training_bytes=training,
    )


def _check_positive(what: str, *values: int) -> None:
    if any(v < 1 for v in values):
        raise ZooError(f"{what} must be positive, got {' '.join(map(str, values))}")


def _check_arguments(input_size: tuple[int, ...], batch_size: int, depth: int) -> None:
    _check_positive("--input-size values", *input_size)
    _check_positive("--batch-size", batch_size)
    _check_positive("--depth", depth)


def summarize_model(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1, depth: int = 2,
                    aux: bool = False, name: str | None = None, reference: ParamReference | None = None) -> Summary:
    """Summarize any module for one input of `input_size` (C, H, W for images); `aux` runs its auxiliary heads too.

    The model is not changed and its weights are not read: it may be on the meta device.
    """
    _check_arguments(input_size, batch_size, depth)
    traces = trace_forward(model, input_size, aux=aux)
    training_only: set[nn.Module] = set()
    if aux:  # what the auxiliary pass runs and the inference pass does not
        inference = trace_forward(model, input_size)
        training_only = {m for m, trace in traces.items() if trace.calls and not inference[m].calls}
    root = _tree(model, traces, training_only)
    # Ownership must account for every parameter exactly once: model.parameters() deduplicates tied ones.
    total = root.total()
    assert total.params == sum(p.numel() for p in model.parameters()), "parameter ownership lost a tensor"
    input_bytes = math.prod(input_size) * input_dtype(model).itemsize
    without_aux = None
    if training_only:
        without_aux = _totals(sum((n.own for n in root.walk() if not n.training_only), Stats()), input_bytes, batch_size)
    main_params = without_aux.params if without_aux else total.params
    return Summary(
        model=name or type(model).__name__, input_size=tuple(input_size), batch_size=batch_size, depth=depth,
        layers=tuple(_rows(root, depth)), totals=_totals(total, input_bytes, batch_size), totals_without_aux=without_aux,
        reference=ReferenceCheck(reference.count, reference.source, reference.matches(main_params)) if reference else None,
    )


def summarize(name: str, input_size: tuple[int, int, int] | None = None, num_classes: int | None = None,
              batch_size: int = 1, depth: int = 2, aux: bool = False) -> Summary:
    """Summarize a registered model; input size and class count default to the registry's."""
    info = get_model_info(name)
    input_size = tuple(input_size or info.input_size)
    if len(input_size) != 3:
        raise ZooError(f"--input-size takes three values, C H W; got {len(input_size)}")
    _check_arguments(input_size, batch_size, depth)
    num_classes = info.num_classes if num_classes is None else num_classes
    _check_positive("--num-classes", num_classes)
    with torch.device("meta"):  # no weights allocated, no initialization run
        model = create_model(name, num_classes=num_classes, in_channels=input_size[0])
        if aux:
            if "aux_logits" not in inspect.signature(type(model)).parameters:
                raise ZooError(f"{name} has no auxiliary heads; --aux applies to googlenet")
            model = create_model(name, num_classes=num_classes, in_channels=input_size[0], aux_logits=True)
    # The published count is for the paper's configuration only.
    paper_config = num_classes == info.num_classes and input_size[0] == info.input_size[0]
    return summarize_model(model, input_size, batch_size=batch_size, depth=depth, aux=aux, name=name,
                           reference=info.reference if paper_config else None)


LAYER_HEADERS = ["name", "type", "kernel", "stride", "padding", "input", "output", "calls", "params", "trainable", "MACs", "note"]


def _dims(value: tuple[int, ...] | str | None, collapse: bool = False) -> str:
    """(3, 3) -> '3x3'; with collapse, equal entries print once, as tables give a stride: (2, 2) -> '2'."""
    if value is None or isinstance(value, str):
        return value or ""
    if collapse and len(set(value)) == 1:
        return str(value[0])
    return "x".join(map(str, value))


def _layer_row(layer: Layer) -> list:
    if layer.params == 0:
        trainable = ""
    else:
        trainable = {layer.params: "trainable", 0: "frozen"}.get(layer.trainable_params, "partly frozen")
    return [layer.name, layer.type, _dims(layer.kernel), _dims(layer.stride, True), _dims(layer.padding, True),
            _dims(layer.input_shape), _dims(layer.output_shape), layer.calls, layer.params, trainable, layer.macs,
            "training only" if layer.training_only else ""]


def _decimal(count: int, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count:,} ({count / scale:.3f} {prefix}{unit})"
    return f"{count:,} {unit}"


def _in_bytes(count: int) -> str:
    return f"{count:,} B ({format_bytes(count)})"


def _total_rows(totals: Totals, batch_size: int) -> list[tuple[str, str]]:
    return [
        ("parameters", f"{totals.params:,}"),
        ("  trainable", f"{totals.trainable_params:,}"),
        ("  frozen", f"{totals.frozen_params:,}"),
        ("buffers (e.g. batch-norm statistics)", f"{totals.buffers:,}"),
        ("MACs per image (1 multiply-add = 1 MAC)", _decimal(totals.macs, "MACs")),
        ("parameter memory", _in_bytes(totals.param_bytes)),
        ("buffer memory", _in_bytes(totals.buffer_bytes)),
        ("forward activations per image", _in_bytes(totals.activation_bytes)),
        (f"training estimate, batch {batch_size} (see below)", _in_bytes(totals.training_bytes)),
    ]


def _reference_lines(summary: Summary) -> list[str]:
    ref = summary.reference
    if ref is None:
        return ["reference count: none recorded for this model at these classes and input channels"]
    computed = (summary.totals_without_aux or summary.totals).params
    if ref.matches:
        return [f"reference count: {ref.count:,} ({ref.source}): matches"]
    return [f"!!! MISMATCH: computed {computed:,} parameters, but {ref.source} publishes {ref.count:,} !!!"]


def render_summary(summary: Summary, fmt: str = "table") -> str:
    """The layer table and totals as text or Markdown; CSV gives the layer rows, JSON everything."""
    check_format(fmt)
    if fmt == "json":
        return json.dumps(asdict(summary), indent=2)
    layers = render(LAYER_HEADERS, [_layer_row(layer) for layer in summary.layers], fmt)
    if fmt == "csv":
        return layers
    totals = _total_rows(summary.totals, summary.batch_size)
    if summary.totals_without_aux is None:
        totals_table = render(["total", "value"], totals, fmt)
    else:
        inference = _total_rows(summary.totals_without_aux, summary.batch_size)
        totals_table = render(["total", "with auxiliary heads", "without (inference)"],
                              [(label, a, b) for (label, a), (_, b) in zip(totals, inference)], fmt)
    title = f"{summary.model}: input {_dims(summary.input_size)}, depth {summary.depth}, shapes per image, MACs at batch 1"
    notes = [
        "training estimate: batch x 2 x activations (kept for backward, plus their gradients) + weights + "
        "weight gradients + buffers; optimizer state not included (SGD momentum adds 1x the weights, Adam 2x)",
    ]
    return "\n\n".join([title, layers, totals_table, "\n".join(_reference_lines(summary) + notes)])
