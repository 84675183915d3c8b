"""summarize and summarize_model: check the arguments, trace one forward pass, fold the tree into a Summary."""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.base import Autoencoder
from zoo.models.registry import ParamReference, argument_types, create_model, get_model_info, list_models
from zoo.summary.results import ReferenceCheck, Summary
from zoo.summary.tracing import ModuleTrace, input_dtype, trace_forward
from zoo.summary.tree import Stats, layer_rows, module_tree, totals


def _check_positive(what: str, *values: int) -> None:
    if any(v < 1 for v in values):
        raise ZooError(f"{what} must be positive, got {' '.join(map(str, values))}")


def _check_arguments(input_size: tuple[int, ...], batch_size: int, depth: int) -> None:
    _check_positive("--input-size values", *input_size)
    _check_positive("--batch-size", batch_size)
    _check_positive("--depth", depth)


def summarize_model(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1, depth: int = 2,
                    aux: bool = False, name: str | None = None, reference: ParamReference | None = None) -> Summary:
    """Summarize any module for one input of `input_size` (C, H, W for images; L for a model that reads token ids,
    traced on int64 ids: zoo.summary.tracing.input_dtype); `aux` runs its auxiliary heads too.
    For an Autoencoder, code_shape is its encoder's traced output.

    The model is not changed and its weights are not read: it may be on the meta device.
    """
    _check_arguments(input_size, batch_size, depth)
    traces = trace_forward(model, input_size, aux=aux)
    training_only: set[nn.Module] = set()
    if aux:  # what the auxiliary pass runs and the inference pass does not
        inference = trace_forward(model, input_size)
        training_only = {m for m, trace in traces.items() if trace.calls and not inference[m].calls}
    root = module_tree(model, traces, training_only)
    # Ownership must account for every parameter exactly once: model.parameters() deduplicates tied ones.
    total = root.total()
    assert total.params == sum(p.numel() for p in model.parameters()), "parameter ownership lost a tensor"
    input_bytes = math.prod(input_size) * input_dtype(model).itemsize
    without_aux = None
    if training_only:
        without_aux = totals(sum((n.own for n in root.walk() if not n.training_only), Stats()), input_bytes, batch_size)
    main_params = without_aux.params if without_aux else total.params
    return Summary(
        model=name or type(model).__name__, input_size=tuple(input_size), batch_size=batch_size, depth=depth,
        layers=tuple(layer_rows(root, depth)), totals=totals(total, input_bytes, batch_size),
        totals_without_aux=without_aux,
        reference=(ReferenceCheck(reference.count, reference.source, reference.matches(main_params)) if reference
                   else None),
        code_shape=_code_shape(model, traces), input="image" if input_dtype(model).is_floating_point else "tokens",
    )


def _code_shape(model: nn.Module, traces: dict[nn.Module, ModuleTrace]) -> tuple[int, ...] | None:
    """An autoencoder's code for one image: its encoder's output as traced, batch dimension dropped."""
    shape = traces[model.encoder].output_shape if isinstance(model, Autoencoder) else None
    return None if shape is None else shape[1:]


def summarize(name: str, input_size: tuple[int, int, int] | None = None, num_classes: int | None = None,
              batch_size: int = 1, depth: int = 2, aux: bool = False) -> Summary:
    """Summarize a registered model; input size and class count default to the registry's (a reconstruction model
    has no classes, and refuses one; a token model traces a sentence of the registry's length, and refuses a
    picture's size)."""
    info = get_model_info(name)
    if info.input == "tokens" and input_size is not None:
        raise ZooError(f"--input-size is a picture's C H W; {name} reads token ids, and its summary traces a sentence "
                       f"of {info.shown_input}: remove --input-size")
    input_size = tuple(input_size or info.input_size)
    if len(input_size) != 3 and info.input == "image":
        raise ZooError(f"--input-size takes three values, C H W; got {len(input_size)}")
    _check_arguments(input_size, batch_size, depth)
    if info.task == "reconstruction" and num_classes is not None:
        raise ZooError(f"{name} rebuilds pictures and has no classes; leave out --num-classes")
    num_classes = info.num_classes if num_classes is None else num_classes
    if info.task != "reconstruction":
        _check_positive("--num-classes", num_classes)
    if aux and "aux_logits" not in argument_types(name):  # the models that build auxiliary heads take aux_logits
        having = ", ".join(n for n in list_models() if "aux_logits" in argument_types(n))
        raise ZooError(f"{name} has no auxiliary heads; --aux applies to {having}")
    heads = {"aux_logits": True} if aux else {}
    channels = input_size[0] if info.input == "image" else info.in_channels
    with torch.device("meta"):  # no weights allocated, no initialization run
        model = create_model(name, num_classes=num_classes, in_channels=channels, **heads)
    # The published count is for the paper's configuration only.
    paper_config = num_classes == info.num_classes and input_size[0] == info.input_size[0]
    return summarize_model(model, input_size, batch_size=batch_size, depth=depth, aux=aux, name=name,
                           reference=info.reference if paper_config else None)
