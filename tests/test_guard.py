"""What stops a run: a non-finite loss (exit 3, the last finite checkpoints kept), SIGINT/SIGTERM (finish the
step, save once, print the resume command, exit 130/143), and a second run in the same directory (the lock).
Tests zoo.training.guard, and zoo.rundir's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import digits_config, run_zoo

import zoo.loop
from zoo.checkpoint import load_checkpoint
from zoo.errors import RunStopped, ZooError
from zoo.training import train
from zoo.training.guard import Guard
from zoo.training.resume import prepare_resume

STEPS = 41  # digits: 1,294 training images in batches of 32
EPOCHS = "train.epochs=3"  # the runs here: the digits config for 3 epochs


def _poison_step(monkeypatch, step: int) -> None:
    """From training step `step` on, the loss (and so every gradient after it) is NaN."""
    real, calls = zoo.loop.aux_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, logits = real(*args, **kwargs)
        return (loss * float("nan"), logits) if calls["n"] >= step else (loss, logits)

    monkeypatch.setattr(zoo.loop, "aux_loss", poisoned)


def test_a_nonfinite_loss_stops_at_its_step_and_keeps_the_last_finite_checkpoints(tmp_path, monkeypatch):
    _poison_step(monkeypatch, STEPS + 5)
    with pytest.raises(RunStopped) as stopped:
        train(digits_config(tmp_path, EPOCHS, "train.checkpoint_every_steps=4"), quiet=True)
    run_dir = next(tmp_path.glob("*/*"))
    assert stopped.value.exit_code == 3
    assert str(stopped.value).startswith(f"the loss is not finite at step {STEPS + 5} (epoch 2); stopped; "
                                         f"last good checkpoint: {run_dir}/checkpoints/last.pt; lower optimizer.lr")
    last, best = (load_checkpoint(run_dir / "checkpoints" / name) for name in ("last.pt", "best.pt"))
    # step 44 (epoch 2, batch 3): the last before the NaN
    assert (last["epoch"], last["batch"], last["step"]) == (1, 3, 44)
    assert best["epoch"] == 1
    for state in (last, best):
        assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert not (run_dir / "metrics.json").exists() and not (run_dir / ".lock").exists()


def test_a_nonfinite_loss_before_any_checkpoint_says_so(tmp_path, monkeypatch):
    _poison_step(monkeypatch, 3)
    with pytest.raises(RunStopped, match="at step 3 .epoch 1.; stopped; no checkpoint was saved before it") as stopped:
        train(digits_config(tmp_path, EPOCHS), quiet=True)
    assert str(stopped.value).endswith("and train again") and "--resume" not in str(stopped.value)  # nothing to resume


def test_a_second_signal_waits_for_the_save_and_otherwise_stops_at_once():
    guard = Guard(torch.device("cpu"))
    with guard.handling_signals():
        os.kill(os.getpid(), signal.SIGINT)
        assert guard.signal == signal.SIGINT and guard.check(1).signal == signal.SIGINT
        with guard.save():
            os.kill(os.getpid(), signal.SIGINT)  # during the save: noted, nothing raised
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # pytest's handler is back


def _wait_for(process: subprocess.Popen, text: str) -> str:
    seen = ""
    for line in process.stdout:
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never printed: {seen}{process.stderr.read()}")


@pytest.mark.parametrize("number", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_a_signal_to_zoo_train_saves_once_prints_the_resume_command_and_exits_128_plus_it(tmp_path, number):
    process = run_zoo("train", "--config", "configs/lenet5_digits.yaml", "--set", f"train.output_dir={tmp_path}",
                      "--set", "train.epochs=30", "--set", "train.checkpoint_every_steps=500", popen=True)
    _wait_for(process, "epoch 1/30")
    process.send_signal(number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + number
    run_dir = next(tmp_path.glob("*/*"))
    line = stderr.strip().splitlines()[-1]
    assert line.endswith(f"saved {run_dir}/checkpoints/last.pt; resume with: zoo train --resume {run_dir}")
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] >= STEPS and "Traceback" not in stderr and not (run_dir / ".lock").exists()

    resumed = run_zoo("train", "--resume", run_dir, "--set", "train.epochs=2", "--allow-config-change")
    stopped_in = state["epoch"] + 1
    assert resumed.returncode == 0, resumed.stderr
    assert "train.epochs: 30 -> 2" in resumed.stdout or stopped_in > 2  # a change allowed is reported


def test_a_run_directory_in_use_is_refused_and_a_dead_owners_lock_is_taken_over(tmp_path):
    whole = train(digits_config(tmp_path, EPOCHS, "train.epochs=1"), quiet=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (whole.run_dir / ".lock").write_text(f"{holder.pid} {os.uname().nodename}\n")
        before = (whole.run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns
        with pytest.raises(ZooError, match=f"is in use by process {holder.pid}"):
            plan = prepare_resume(whole.run_dir, overrides=["train.epochs=2"], allow_config_change=True)
            train(plan.config, quiet=True, resume=plan)
        assert (whole.run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns == before
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    plan = prepare_resume(whole.run_dir, overrides=["train.epochs=2"], allow_config_change=True)
    assert train(plan.config, quiet=True, resume=plan).metrics["epochs_run"] == 2  # the dead holder's lock is stale
    assert not (whole.run_dir / ".lock").exists()


def test_ctrl_c_under_a_pipe_whose_reader_died_still_saves_and_exits_130(tmp_path):
    # `zoo train 2>&1 | tee log` and Ctrl-C: the same Ctrl-C kills tee, so everything zoo prints afterwards meets a
    # closed pipe; the run used to die printing its stop message (exit 1, no last.pt).
    process = run_zoo("train", "--config", "configs/lenet5_digits.yaml", "--set", f"train.output_dir={tmp_path}",
                      "--set", "train.epochs=30", popen=True, stderr=subprocess.STDOUT)
    for line in process.stdout:
        if line.startswith("epoch 1/30"):
            break
    process.stdout.close()  # the reader dies
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    run_dir = next(tmp_path.glob("*/*"))
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] >= STEPS and not (run_dir / ".lock").exists()
