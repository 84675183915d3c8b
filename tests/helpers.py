"""What many test modules need, written once: the digits config, `zoo` in a subprocess, a free port, a run's figures, a
multi-label data set of real pictures (digit_sets), torchvision's weights offline (cache_torchvision_weights).

Imported as `from helpers import ...` (tests/ is on sys.path, as for datafiles.py and bad_input_cases.py).
Fixtures are in conftest.py; the shared trained digits run (`digits_run`) among them."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs" / "lenet5_digits.yaml"  # the README's main job: LeNet-5 on scikit-learn's digits


def digits_config(out: Path | str, *extra: str) -> Config:
    """The digits config with train.output_dir=`out`, then each of `extra` as one --set item, in order."""
    return load_config(DIGITS, [f"train.output_dir={out}", *extra])


def run_zoo(*args: str | Path, cwd: Path | str = ROOT, env: dict[str, str | None] | None = None, popen: bool = False,
            timeout: float = 180, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check: bool = False):
    """`python -m zoo *args` in a new interpreter, in `cwd`, its streams as text (both captured unless told).

    It imports this checkout's zoo wherever `cwd` is (PYTHONPATH starts with the repository). `env`: variables set
    over this process's environment (None removes one). popen=False waits up to `timeout` seconds and returns the
    CompletedProcess; popen=True returns the running Popen at once.
    tests/bad_input_cases.py's `run_zoo` is another thing: a process forked from a server that has already
    imported zoo, for the many cases of the table (test_bad_input.py checks it against this one, the real command)."""
    command = [sys.executable, "-m", "zoo", *map(str, args)]
    path = os.pathsep.join(entry for entry in (str(ROOT), os.environ.get("PYTHONPATH")) if entry)
    environment = {**os.environ, "PYTHONPATH": path, **(env or {})}
    environment = {name: value for name, value in environment.items() if value is not None}
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=environment, stdout=stdout, stderr=stderr, text=True)
    return subprocess.run(command, cwd=cwd, env=environment, stdout=stdout, stderr=stderr, text=True, timeout=timeout,
                          check=check)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metric_figures(section: dict) -> dict:
    """A metrics section (metrics.json's val or test, a checkpoint's best_val) without its clock readings, which
    differ between identical runs."""
    return {key: value for key, value in section.items() if key not in ("time_s", "images_per_s")}


def digit_sets(folder: Path, train: int, test: int) -> Path:
    """scripts/digit_sets.py's data set under `folder`; its manifest's path."""
    spec = importlib.util.spec_from_file_location("digit_sets", ROOT / "scripts" / "digit_sets.py")
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode, before = True, sys.dont_write_bytecode  # leave no scripts/__pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module.write(folder, train, test, seed=0)


def signal_at_step(monkeypatch, step: int, number: int = signal.SIGINT) -> None:
    """Deliver `number` to this process during training step `step` (1-based), as a user's Ctrl-C would."""
    import zoo.loop

    real, calls = zoo.loop.aux_loss, {"n": 0}

    def counting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), number)
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo.loop, "aux_loss", counting)


def stopped_and_resumed(config: Callable[[Path], Any], folder: Path, monkeypatch, step: int):
    """The run `config(out)` trains, twice: whole in folder/whole, and in folder/cut stopped by Ctrl-C at training
    step `step` (asserted mid-epoch: after a step checkpoint), then resumed. Returns (whole, resumed, the cut run's
    directory), the RunResults of zoo.train."""
    import pytest
    import torch

    import zoo
    from zoo.errors import RunStopped
    from zoo.training.resume import prepare_resume

    whole = zoo.train(config(folder / "whole"), quiet=True)
    signal_at_step(monkeypatch, step)
    with pytest.raises(RunStopped):
        zoo.train(config(folder / "cut"), quiet=True)
    monkeypatch.undo()
    run_dir = next((folder / "cut").glob("*/*"))
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["batch"] > 0  # stopped mid-epoch
    plan = prepare_resume(run_dir)
    return whole, zoo.train(plan.config, quiet=True, resume=plan), run_dir


def cache_torchvision_weights(weights: Any, state: dict, folder: Path, monkeypatch: Any) -> Path:
    """`state` saved where torch.hub looks for torchvision's `weights` file, under a TORCH_HOME in `folder`, so that
    `torchvision:<weights>` loads offline; the file's path."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(folder / "torch"))
    cached = folder / "torch" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, cached)
    return cached
