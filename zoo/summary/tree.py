"""The module tree of one traced model: who owns each parameter, the rows at a depth, and the totals.

Parameters are counted by ownership: each tensor once, by the first module that registers it, so tied
weights count once and a parameter that a forward uses through a functional call is still counted.
A row at the chosen depth folds in everything below it, and a parent shown expanded gets an "(own)" row
for what it holds or computes itself, so the rows add up to the totals at every depth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import torch
from torch import nn

from zoo.summary.results import Layer, Totals
from zoo.summary.tracing import ModuleTrace


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


@dataclass
class Node:
    name: str
    module: nn.Module
    trace: ModuleTrace
    own: Stats
    training_only: bool
    children: list[Node]

    @property
    def depth(self) -> int:
        return self.name.count(".") + 1 if self.name else 0

    def total(self) -> Stats:
        return sum((child.total() for child in self.children), self.own)

    def walk(self) -> Iterator[Node]:
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


def module_tree(model: nn.Module, traces: dict[nn.Module, ModuleTrace], training_only: set[nn.Module]) -> Node:
    seen: set[int] = set()
    nodes: dict[str, Node] = {}
    for name, module in model.named_modules():  # pre-order; a module registered twice appears once
        node = Node(name, module, traces[module], _own_stats(module, traces[module], seen), module in training_only, [])
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


def _layer(node: Node, own: bool) -> Layer:
    stats = node.own if own else node.total()
    trace, module = node.trace, node.module

    def per_image(shape: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if shape is None else shape[1:]

    return Layer(
        name=(node.name or "(model)") + (" (own)" if own else ""), type=type(module).__name__, depth=node.depth,
        kernel=_geometry(module, "kernel_size"), stride=_geometry(module, "stride"),
        padding=_geometry(module, "padding"),
        input_shape=per_image(trace.input_shape), output_shape=per_image(trace.output_shape), calls=trace.calls,
        params=stats.params, trainable_params=stats.trainable_params, macs=stats.macs,
        activation_bytes=stats.activation_bytes, training_only=node.training_only, own=own,
    )


def layer_rows(node: Node, depth: int) -> Iterator[Layer]:
    if node.depth >= depth or not node.children:
        yield _layer(node, own=False)
        return
    if node.own != Stats():
        yield _layer(node, own=True)
    for child in node.children:
        yield from layer_rows(child, depth)


def totals(stats: Stats, input_bytes: int, batch_size: int) -> Totals:
    activations = input_bytes + stats.activation_bytes
    # Training keeps every activation for the backward pass and creates a gradient of the same size
    # for each (the course's "x2 for backward"), per image; weights, their gradients and buffers once.
    # Optimizer state is not included: SGD with momentum adds one more copy of the trainable weights, Adam two.
    training = batch_size * 2 * activations + stats.param_bytes + stats.gradient_bytes + stats.buffer_bytes
    return Totals(
        params=stats.params, trainable_params=stats.trainable_params,
        frozen_params=stats.params - stats.trainable_params,
        buffers=stats.buffers, macs=stats.macs, param_bytes=stats.param_bytes, buffer_bytes=stats.buffer_bytes,
        activation_bytes=activations, training_bytes=training,
    )
