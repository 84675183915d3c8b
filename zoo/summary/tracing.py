"""One forward pass at batch 1 that records, for every module, what zoo.summary reports.

The pass runs on the CPU on zeros and never reads the model's own weights: the model may live on
the meta device (built without allocating or initializing anything). For the pass, every parameter
and buffer is swapped for a stride-0 zero tensor (no memory), one per tensor so tied weights stay
tied, and put back after.
Why not run the pass itself on meta: batch norm's meta kernel is a Python decomposition whose
first call imports torch._dynamo, about 2 s, several times the whole CPU pass of ResNet-152.

Forward hooks keep the stack of modules being called and record shapes; a TorchFunctionMode sees
every convolution and linear map, whether a module or a functional call in some forward made it,
and charges its MACs to the innermost module running. Since only shapes matter, it also spares them
their arithmetic (see _output_zeros).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode


@dataclass
class ModuleTrace:
    calls: int = 0
    order: int | None = None  # when the module was first called, among all modules
    input_shape: tuple[int, ...] | None = None  # of the first call, batch dimension included
    output_shape: tuple[int, ...] | None = None
    macs: int = 0  # convolutions and linear maps called directly by this module's forward
    activation_bytes: int = 0  # outputs of a leaf module's calls that are new memory


def _weight(args: tuple, kwargs: dict) -> Tensor:
    return args[1] if len(args) > 1 else kwargs["weight"]


def _forward_macs(args: tuple, kwargs: dict, out: Tensor) -> int:
    # Every output element is one dot product over a weight row: in_features (linear) or
    # in_channels / groups x kernel (convolution); weight is (out, in, ...) for both.
    return out.numel() * math.prod(_weight(args, kwargs).shape[1:])


def _transposed_macs(args: tuple, kwargs: dict, out: Tensor) -> int:
    # A transposed convolution scatters each input element through a weight (in, out / groups, *kernel).
    x = args[0] if args else kwargs["input"]
    return x.numel() * math.prod(_weight(args, kwargs).shape[1:])


# One multiply-add = 1 MAC; bias additions, normalization, pooling and activations are not counted
# (the convention of torchvision's published operation counts).
MAC_FORMULAS: dict[Callable, Callable[[tuple, dict, Tensor], int]] = {
    F.linear: _forward_macs,
    F.conv1d: _forward_macs, F.conv2d: _forward_macs, F.conv3d: _forward_macs,
    F.conv_transpose1d: _transposed_macs, F.conv_transpose2d: _transposed_macs, F.conv_transpose3d: _transposed_macs,
}
# Argument names of those functions, which are builtins without a Python signature.
_ARGUMENTS: dict[Callable, tuple[str, ...]] = {
    F.linear: ("input", "weight", "bias"),
    **dict.fromkeys((F.conv1d, F.conv2d, F.conv3d),
                    ("input", "weight", "bias", "stride", "padding", "dilation", "groups")),
    **dict.fromkeys((F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d),
                    ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")),
}


def _output_zeros(func: Callable, args: tuple, kwargs: dict) -> Tensor:
    """A linear map's or convolution's output as zeros, from a probe that computes one filter per group.

    Only shapes matter in this pass. The probe keeps torch's own argument checks and output-size
    arithmetic, and drops the real work: ResNet-152's pass goes from 0.45 s to 0.1 s, and VGG-16's
    first linear layer no longer copies its 411 MB stride-0 zero weight.
    """
    call = {**dict(zip(_ARGUMENTS[func], args)), **kwargs, "bias": None}
    weight, groups = call["weight"], call.get("groups", 1)
    if func is F.linear:  # weight (out, in)
        call["weight"], channels, channel_dim = weight[:1], weight.shape[0], -1
    elif func in (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d):  # weight (in, out / groups, *kernel)
        call["weight"], channels, channel_dim = weight[:, :1], weight.shape[1] * groups, None
    else:  # weight (out, in / groups, *kernel)
        call["weight"], channels, channel_dim = weight[:groups], weight.shape[0], None
    probe = func(**call)
    shape = list(probe.shape)
    # Convolutions take batched (N, C, ...) or unbatched (C, ...) inputs.
    shape[channel_dim if channel_dim is not None else probe.dim() - weight.dim() + 1] = channels
    return probe.new_zeros(shape)


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _shape(value: Any) -> tuple[int, ...] | None:
    first = next(_tensors(value), None)
    return None if first is None else tuple(first.shape)


class _Recorder(TorchFunctionMode):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.traces = {module: ModuleTrace() for module in model.modules()}
        self._leaves = {module for module in self.traces if next(module.children(), None) is None}
        self._stack: list[nn.Module] = []
        self._called = 0
        self._handles = [handle for module in self.traces for handle in (
            module.register_forward_pre_hook(self._enter), module.register_forward_hook(self._exit))]

    def _enter(self, module: nn.Module, args: tuple) -> None:
        self._stack.append(module)
        trace = self.traces[module]
        trace.calls += 1
        if trace.calls == 1:
            trace.order = self._called
            self._called += 1
            trace.input_shape = _shape(args)

    def _exit(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._stack.pop()
        trace = self.traces[module]
        if trace.calls == 1:
            trace.output_shape = _shape(output)
        if module in self._leaves:
            # In-place results (ReLU(inplace=True)), views (Flatten) and pass-throughs (Dropout in
            # eval, Identity) share their input's storage: they allocate nothing.
            inputs = {t.untyped_storage().data_ptr() for t in _tensors(args)}
            trace.activation_bytes += sum(t.numel() * t.element_size() for t in _tensors(output)
                                          if t.untyped_storage().data_ptr() not in inputs)

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        formula = MAC_FORMULAS.get(func)
        if formula is None:
            return func(*args, **kwargs)
        out = _output_zeros(func, args, kwargs)
        if self._stack:
            self.traces[self._stack[-1]].macs += formula(args, kwargs, out)
        return out

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


@contextmanager
def _zero_weights(model: nn.Module) -> Iterator[None]:
    """Swap every parameter and buffer for zeros of its shape, then restore the very same objects.

    Not torch.func.functional_call: it restores in the order it swapped, so a module registered
    under two names comes back holding the zeros (torch 2.14).
    """
    saved: list[tuple[dict, str, Tensor]] = []
    zeros: dict[int, Tensor] = {}
    for module in model.modules():
        for store in (module._parameters, module._buffers):
            for key, tensor in store.items():
                if tensor is not None:
                    saved.append((store, key, tensor))
                    store[key] = zeros.setdefault(id(tensor), torch.zeros((), dtype=tensor.dtype).expand(tensor.shape))
    try:
        yield
    finally:
        for store, key, tensor in saved:
            store[key] = tensor


def input_dtype(model: nn.Module) -> torch.dtype:
    """The inputs' dtype: a model's that says it (TextCNN's `input_dtype`: int64 token ids), else the images', the
    model's floating-point parameters'."""
    stated = getattr(model, "input_dtype", None)
    if isinstance(stated, torch.dtype):
        return stated
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype())


def trace_forward(model: nn.Module, input_size: tuple[int, ...], aux: bool = False) -> dict[nn.Module, ModuleTrace]:
    """Run `model` once on a zero batch of one (C, H, W) image (a token model: L <pad> ids); `aux` asks for
    auxiliary heads too.

    Modules stay in eval mode (batch norm cannot take training statistics of a 1x1 map at batch 1);
    with `aux`, only the root's flag says training, which is what gates GoogLeNet's auxiliary heads.
    """
    x = torch.zeros((1, *input_size), dtype=input_dtype(model))
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    model.training = aux
    # One thread: at batch 1 a second one gains little, and with another process keeping the two
    # cores busy, OpenMP's spinning threads made ResNet-152's pass (real convolutions, then) go from 0.5 s to 7 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    recorder = _Recorder(model)
    try:
        with torch.no_grad(), _zero_weights(model), recorder:
            model(x, **({"return_aux": True} if aux else {}))
    finally:
        recorder.remove()
        torch.set_num_threads(threads)
        for module, training in modes:
            module.training = training
    return recorder.traces
