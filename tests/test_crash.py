"""kill -9 at 20 moments of a training run, half of them inside a checkpoint write: last.pt always loads,
the next start clears the killed save's temporary file and the dead run's lock, and the run goes on.
Tests zoo.checkpoint's and zoo.rundir's atomic writes and lock under kill -9."""

from __future__ import annotations

import multiprocessing
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_zoo

from zoo.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
# ResNet-18 with its momentum buffers: 90 MB checkpoints, written after every step, so a save takes long
# enough (tenths of a second) to be hit.
SETTINGS = ["model.name=resnet18", "data.name=synthetic", "data.input_size=32", "data.synthetic_size=64",
            "data.batch_size=8", "train.epochs=500", "train.checkpoint_every_steps=1", "scheduler.name=none"]


def _zoo_main(argv: list[str]) -> None:
    """`zoo train ...` in a process forked from a server that has already imported torch and zoo."""
    import torch

    from zoo.cli import main

    torch.set_num_threads(1)
    sys.argv = ["zoo", *argv]
    main()


@pytest.fixture(scope="module")
def forked():
    """Starts `zoo train` processes in a blink: each is forked from one that imported torch once (the
    standard library's forkserver), instead of a new interpreter paying seconds of imports, 21 times."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torchvision", "zoo.cli", "zoo.training"])

    def start(*argv: str) -> multiprocessing.Process:
        process = context.Process(target=_zoo_main, args=(["train", "--quiet", *argv],))
        process.start()
        return process

    return start


def _temporaries(checkpoints: Path) -> list[Path]:
    return list(checkpoints.glob(".*.tmp")) if checkpoints.is_dir() else []


def _kill_when(process: multiprocessing.Process, checkpoints: Path, in_save: bool, delay: float,
               deadline: float = 120) -> bool:
    """kill -9 `process` `delay` s after it starts writing a checkpoint (in_save) or after it has written one.
    Returns whether a write was under way (its temporary file there) at the moment of the kill."""
    stale = set(_temporaries(checkpoints))  # a killed write's leftovers, until this process clears them
    last = checkpoints / "last.pt"
    written = last.stat().st_mtime_ns if last.exists() else None
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        assert process.is_alive(), f"zoo train exited with {process.exitcode}"
        if in_save:
            ready = bool(set(_temporaries(checkpoints)) - stale)
        else:
            ready = last.exists() and last.stat().st_mtime_ns != written
        if ready:
            time.sleep(delay)
            during = bool(set(_temporaries(checkpoints)) - stale)
            process.kill()  # SIGKILL
            process.join()
            return during
        time.sleep(0.001)
    process.kill()
    raise AssertionError("no checkpoint was written in time")


@pytest.mark.slow
def test_kill_9_at_20_moments_never_costs_the_last_checkpoint(tmp_path, forked):
    chance = random.Random(7)
    process = forked("--config", "configs/lenet5_digits.yaml",
                     *(a for s in [*SETTINGS, f"train.output_dir={tmp_path}"] for a in ("--set", s)))
    while not list(tmp_path.glob("*/*/checkpoints")):  # the run directory
        assert process.is_alive(), f"zoo train exited with {process.exitcode}"
        time.sleep(0.01)
    run_dir = next(tmp_path.glob("*/*"))
    checkpoints = run_dir / "checkpoints"
    steps, during_saves = [], 0
    for kill in range(KILLS):
        in_save = kill % 2 == 1  # the first kill waits for a last.pt to exist
        delay = chance.uniform(0, 0.05) if in_save else chance.uniform(0, 0.5)
        during_saves += _kill_when(process, checkpoints, in_save, delay)
        state = load_checkpoint(checkpoints / "last.pt")  # whatever the moment, last.pt is whole
        assert {"model", "optimizer", "scheduler", "ranks", "step"} <= state.keys()
        steps.append(state["step"])
        assert (run_dir / ".lock").exists()  # a killed run leaves its lock behind ...
        process = forked("--resume", str(run_dir))  # ... which the next start finds stale
    process.kill()
    process.join()

    assert steps == sorted(steps) and steps[-1] > steps[0]  # each resumed run went on from the last one
    assert during_saves >= 5, f"only {during_saves} kills landed inside a checkpoint write"

    # A last, ordinary start: once it has saved, SIGTERM stops it cleanly, and the killed saves' leftovers are gone.
    last = checkpoints / "last.pt"
    before = last.stat().st_mtime_ns
    final = run_zoo("train", "--quiet", "--resume", run_dir, env={"OMP_NUM_THREADS": "1"}, popen=True,
                    stdout=subprocess.DEVNULL)
    while last.stat().st_mtime_ns == before:
        assert final.poll() is None, final.stderr.read()
        time.sleep(0.01)
    final.send_signal(signal.SIGTERM)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 143, stderr
    assert _temporaries(checkpoints) == [] and not (run_dir / ".lock").exists()
    assert load_checkpoint(last)["step"] > steps[-1]
