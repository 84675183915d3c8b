"""The rows of `zoo list`: registry facts plus parameter counts computed without allocating weights."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooError
from zoo.models.registry import create_model, get_model_info, list_models


@dataclass(frozen=True)
class CatalogRow:
    name: str
    family: str
    year: int
    params: int  # at the paper's class count (an autoencoder has none)
    input_size: str  # C x H x W; a token model's L tokens
    reference_ok: bool | None  # computed count matches the published one; None if none is recorded
    torchvision: str | None
    task: str  # classification or reconstruction (zoo.models.registry.TASKS)


def count_parameters(name: str) -> int:
    """Build on the meta device (shapes only, no memory, no init cost) and count, tied weights once."""
    import torch

    with torch.device("meta"):
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())


def catalog(pattern: str = "*") -> list[CatalogRow]:
    """One row per registered model matching `pattern` (fnmatch); none matching is an error, with the way out."""
    names = list_models(pattern)
    if not names:
        raise ZooError(f"no model matches {pattern!r}; run 'zoo list' to see them all")
    rows = []
    for name in names:
        info = get_model_info(name)
        params = count_parameters(name)
        rows.append(CatalogRow(
            name, info.family, info.paper.year, params, info.shown_input,
            info.reference.matches(params) if info.reference else None, info.torchvision, info.task,
        ))
    return rows
