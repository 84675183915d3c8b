"""Shared fixtures: one trained digits run for the session, a seed per test, the `gpu` skip rule. Models are built on
the meta device wherever only shapes and counts matter. Plain helpers are in helpers.py."""

from __future__ import annotations

import os

# One CPU thread for torch in the suite and the commands it starts (before torch is imported: it reads this once).
# A test machine is often busy, where 2 threads wait for each other (README, Performance) and zoo train prints a
# note on stderr that tests reading stderr would have to expect. train.threads' own rules are tested directly.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import digits_config  # noqa: E402

import zoo  # noqa: E402


def build_on_meta(name: str, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The one skip rule for CUDA-only tests: mark them `gpu`; without CUDA they skip, saying so."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu: needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The README's main job (configs/lenet5_digits.yaml as written: LeNet-5, 20 epochs), in-process, once for the
    session; what zoo.train returns (run_dir, metrics). A module that needs another run (fewer steps, other data)
    trains its own, and says why."""
    from zoo.training import train

    return train(digits_config(tmp_path_factory.mktemp("digits_run")), quiet=True)
