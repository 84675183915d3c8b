"""Shared fixtures. Models are built on the meta device wherever only shapes and counts matter."""

from __future__ import annotations

import torch
import pytest

import zoo


def build_on_meta(name: str, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
