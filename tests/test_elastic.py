"""Restarts at scale, on this machine's CPUs (gloo) with the real torchrun: a worker killed under --max-restarts
and the run continued by torchrun's restart; two launches as two nodes (a c10d rendezvous on 127.0.0.1); a node
lost mid-run and both launched again; SIGTERM to the launcher (preemption). Each ends where one uninterrupted
2-process run ends, bit for bit (CPU, deterministic mode).
Tests zoo.training.restarts and zoo.distributed under the real torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import free_port

from zoo.checkpoint import load_checkpoint
from zoo.training.restarts import read_launch

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# LeNet-5 on digits, 2 epochs of 41 batches of 16 per rank, a checkpoint every 10 steps: 82 steps, about 3 s.
SETS = ["train.epochs=2", "data.batch_size=16", "train.deterministic=true", "train.checkpoint_every_steps=10"]


def _torchrun(out: Path, launcher: list[str], *sets: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "zoo", "train", "--config",
            "configs/lenet5_digits.yaml", "--quiet",
            *(part for item in [f"train.output_dir={out}", *SETS, *sets] for part in ("--set", item))]


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _node(out: Path, port: int, job: str, *extra: str) -> list[str]:
    """One of two nodes: torchrun's c10d rendezvous on 127.0.0.1, one process each."""
    return _torchrun(out, ["--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
                           f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={job}", *extra], f"train.run_id={job}")


def _first_checkpoint(out: Path, *processes: subprocess.Popen, deadline: float = 90) -> Path:
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        found = list(out.glob("*/*/checkpoints/last.pt"))
        if found:
            return found[0].parents[1]
        assert all(process.poll() is None for process in processes), "a launch ended before its first checkpoint"
        time.sleep(0.02)
    raise AssertionError("no checkpoint within the deadline")


def _descendants(pid: int) -> list[int]:
    """`pid`'s child processes and theirs (torchrun starts each worker in a session of its own)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


def _same_weights(run: Path, reference: Path) -> None:
    final, expected = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (run, reference))
    assert final["step"] == expected["step"] == 82 and len(final["ranks"]) == 2
    for key, tensor in expected["model"].items():
        assert torch.equal(final["model"][key], tensor), key
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["count"] == 359  # every test image once, over both ranks
    assert metrics["test"]["accuracy"] == json.loads((reference / "metrics.json").read_text())["test"]["accuracy"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One launch of 2 processes, never interrupted."""
    out = tmp_path_factory.mktemp("reference")
    code, _, err = _finish(_start(_torchrun(out, ["--standalone", "--nproc_per_node=2"])))
    assert code == 0, err[-3000:]
    return next(out.glob("*/*"))


def test_a_worker_killed_under_max_restarts_is_continued_by_torchruns_restart_in_the_same_run(tmp_path, reference):
    launch = _start(_torchrun(tmp_path, ["--standalone", "--nproc_per_node=2", "--max-restarts=1"]))
    run = _first_checkpoint(tmp_path, launch)
    workers = _descendants(launch.pid)
    os.kill(workers[-1], signal.SIGKILL)
    code, out, err = _finish(launch)
    assert code == 0, err[-3000:]
    assert list(tmp_path.glob("*/*")) == [run]  # one run directory, continued
    assert f"resuming {run} from last.pt at epoch 1, batch " in out and "(torchrun restart 1 of 1)" in out
    assert [attempt["torchrun_restart"] for attempt in read_launch(run)["attempts"]] == [0, 1]
    _same_weights(run, reference)


def test_two_nodes_train_as_one_launch_and_a_lost_node_is_continued_by_launching_both_again(tmp_path, reference):
    port = free_port()
    nodes = [_start(_node(tmp_path / "whole", port, "two")) for _ in range(2)]
    results = [_finish(node) for node in nodes]
    assert [code for code, _, _ in results] == [0, 0], results[0][2][-2000:] + results[1][2][-2000:]
    assert sum(out.count("run: ") for _, out, _ in results) == 1  # the node holding rank 0 writes and prints
    whole = tmp_path / "whole" / "lenet5_digits" / "two"
    assert list((tmp_path / "whole").glob("*/*")) == [whole]
    _same_weights(whole, reference)

    out, port = tmp_path / "lost", free_port()
    # The first node hosts the rendezvous store, so the node that goes is a worker node: a lost host takes
    # torchrun's store with it, and the survivor's launcher fails before its worker can say anything.
    first = _start(_node(out, port, "lost", "--rdzv-conf=is_host=1"))
    second = _start(_node(out, port, "lost", "--rdzv-conf=is_host=0"))
    run = _first_checkpoint(out, first, second)
    for pid in [second.pid, *_descendants(second.pid)]:  # the second node goes: its torchrun and its worker
        os.kill(pid, signal.SIGKILL)
    second.wait()
    lost = time.monotonic()
    code, _, err = _finish(first, timeout=60)
    assert time.monotonic() - lost < 30 and code != 0  # gloo sees the closed connection at once
    said = [line for line in err.splitlines() if line.startswith("lost another process of the run")]
    assert len(said) == 1 and "train.run_id lost continues the run" in said[0], err[-3000:]
    stopped = load_checkpoint(run / "checkpoints" / "last.pt")  # loads: intact
    assert 10 <= stopped["step"] < 82 and not (run / "metrics.json").exists()

    port = free_port()
    again = [_finish(node) for node in [_start(_node(out, port, "lost")) for _ in range(2)]]  # the same command lines
    assert [code for code, _, _ in again] == [0, 0], again[0][2][-2000:] + again[1][2][-2000:]
    printed = "".join(out for _, out, _ in again)
    assert f"resuming {run} from last.pt at " in printed and "(train.run_id lost)" in printed
    _same_weights(run, reference)


# The wrapper README's "Restarts and preemption" gives a batch script: SIGTERM goes on to torchrun, which hands it
# to every worker; the script then exits 143 (torchrun itself exits 1 after a signal).
WRAPPER = 'trap \'kill -TERM "$child"; wait "$child"; exit 143\' TERM\n"$@" &\nchild=$!\nwait "$child"\n'


def test_sigterm_to_the_launcher_saves_every_rank_exits_143_and_the_same_command_continues(tmp_path, reference):
    command = _torchrun(tmp_path, ["--standalone", "--nproc_per_node=2"], "train.run_id=preempted")
    job = _start(["bash", "-c", WRAPPER, "job", *command])
    run = _first_checkpoint(tmp_path, job)
    job.send_signal(signal.SIGTERM)
    code, _, err = _finish(job)
    assert code == 143, err[-3000:]
    assert "SIGTERM: stopped at epoch 1, batch " in err and f"saved {run / 'checkpoints' / 'last.pt'}" in err
    assert "resume with: the same command (train.run_id preempted continues the run)" in err
    assert err.count("SIGTERM: stopping after this step") == 1  # torchrun signals both ranks; rank 0 says it
    stopped = load_checkpoint(run / "checkpoints" / "last.pt")
    assert len(stopped["ranks"]) == 2 and stopped["step"] < 82  # every rank's state, saved by rank 0

    code, out, err = _finish(_start(command))
    assert code == 0, err[-3000:]
    assert f"resuming {run} from last.pt at epoch 1, batch {stopped['batch']}/41 (step {stopped['step']})" in out
    _same_weights(run, reference)
