"""zoo.distributed: real 2-process DDP runs on the CPU (gloo) through torchrun, and the process group's life."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from helpers import free_port

from zoo.checkpoint import load_checkpoint
from zoo.config import DataConfig
from zoo.data import build_datasets
from zoo.distributed import launch
from zoo.errors import RunStopped, ZooError
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.evaluation.scores import read_scores

ROOT = Path(__file__).resolve().parents[1]


def torchrun(output_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=2 -m zoo train` on the main job's config, 2 epochs, one thread a process."""
    return subprocess.run(_torchrun_command(output_dir, "train.epochs=2", *overrides), cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)


def _torchrun_command(output_dir: Path, *overrides: str) -> list[str]:
    sets = [f"train.output_dir={output_dir}", *overrides]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(free_port()),
            "-m", "zoo", "train", "--config", "configs/lenet5_digits.yaml", "--quiet",
            *(part for item in sets for part in ("--set", item))]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


RECIPE = ("data.sampler=balanced", "loss.class_weights=[1, 1, 1, 1, 1, 1, 1, 1, 1, 2]",
          "train.accumulate_steps=2", "train.ema={decay: 0.9}",
          "model.activation=elu",
          "data.augment={mixup_alpha: 0.2, cutmix_alpha: 1.0, random_erasing: 0.25, policy: trivialaugment}")


@pytest.mark.parametrize("loader, recipe",
                         [("memory", ()), pytest.param("torchvision", RECIPE, marks=pytest.mark.slow)])
def test_two_process_gloo_run_writes_one_run_and_counts_every_sample_once(tmp_path, loader, recipe):
    done = torchrun(tmp_path, f"data.loader={loader}", *recipe)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list(tmp_path.glob("*/*"))
    assert len(runs) == 1 and runs[0].parent.name == "lenet5_digits"  # one directory: rank 0's, shared
    run = runs[0]
    assert done.stdout.count("run: ") == 1 and done.stdout.count("test loss") == 1  # rank 0 alone prints
    assert len(list(run.glob("events.out.tfevents.*"))) == 1

    splits = build_datasets(DataConfig(name="digits"), in_channels=1, input_size=32)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["count"] == len(splits.test) == 359  # ranks' shards of 180 and 179, summed
    assert metrics["val"]["count"] == len(splits.val) == 144
    assert metrics["train"]["images"] == 2 * len(splits.train)  # both ranks' halves, every epoch
    per_step = 2 if recipe else 1  # accumulated: 11 optimizer steps of the 21 batches
    assert metrics["train"]["steps"] == 2 * -(-21 // per_step)  # per rank: ceil(1294 / 2 / 32) batches an epoch

    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["weights"] == metrics["best_weights"] and load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2
    # ema: weights
    assert best["epoch"] == metrics["best_epoch"] if best["weights"] == "raw" else "optimizer" not in best
    assert not any(key.startswith("module.") for key in best["model"])  # the network's keys, not DDP's
    alone = evaluate_checkpoint(run / "checkpoints" / "best.pt", "test")  # loaded into one process, whole split
    assert alone.metrics.count == 359
    assert alone.metrics.accuracy == pytest.approx(metrics["test"]["accuracy"])
    assert alone.metrics.loss == pytest.approx(metrics["test"]["loss"], rel=1e-5)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(run), size_guidance={"tensors": 0})
    events.Reload()  # the test split's PR curves on rank 0: both ranks' shards, each image once (true positives at 0)
    positives = [tensor_util.make_ndarray(events.Tensors(f"pr/test/{d}")[-1].tensor_proto)[0, 0] for d in range(10)]
    assert positives == alone.trust.support and sum(positives) == 359
    # zoo report's scores: both ranks' shares put back in the split's order; the gallery chosen by the calibrated
    # probabilities, as zoo evaluate's
    kept = read_scores(run, 359, 10, best["calibration"]["temperature"])
    assert torch.equal(torch.from_numpy(kept.targets), alone.targets)
    assert torch.allclose(torch.from_numpy(kept.logits), alone.logits, atol=1e-5)
    assert kept.wrong.tolist() == [wrong.index for wrong in alone.trust.wrong]
    assert len(kept.pictures) == len(alone.wrong_images) == len(alone.trust.wrong) > 0
    for picture, evaluated in zip(kept.pictures, alone.wrong_images):  # read again by rank 0, as one process reads them
        assert np.array_equal(np.asarray(picture), np.asarray(evaluated.convert("RGB")))


def test_launch_joins_torchruns_group_and_leaves_it_also_on_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    with launch("cpu") as job:
        assert job.distributed and job.is_main and dist.get_backend() == "gloo" and job.device.type == "cpu"
        assert job.share(tmp_path) == tmp_path
        model = torch.nn.Linear(2, 2)
        assert isinstance(job.wrap(model), torch.nn.parallel.DistributedDataParallel)
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="boom"), launch("auto"):
        raise RuntimeError("boom")
    assert not dist.is_initialized()
    with pytest.raises(ZooError, match="each process takes its own device"), launch("cuda:1"):
        pass


def test_a_process_of_the_launch_lost_while_joining_ends_in_one_line(monkeypatch):
    """What torch raises when the store's host goes while this rank joins (seen: a node killed during start-up)."""
    for name, value in (("RANK", "1"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", str(free_port()))):
        monkeypatch.setenv(name, value)

    def lost(*args, **kwargs):
        raise dist.DistNetworkError("Failed to recv, got 0 bytes. Connection was likely closed. Did the remote "
                                    "server shutdown or crash?")

    monkeypatch.setattr(dist, "init_process_group", lost)
    with pytest.raises(RunStopped) as stopped, launch("cpu"):
        pass
    assert str(stopped.value) == ("could not join the run's processes (Failed to recv, got 0 bytes): another process "
                                  "of the launch stopped or cannot be reached; start the launch again on every node")
    assert stopped.value.exit_code == 1 and stopped.value.every_rank


def test_without_torchrun_a_process_runs_alone():
    assert "RANK" not in os.environ
    with launch("cpu") as job:
        assert not job.distributed and job.is_main and job.world_size == 1 and job.share("x") == "x"
        model = torch.nn.Linear(2, 2)
        assert job.wrap(model) is model
    assert not dist.is_initialized()


@pytest.mark.slow
def test_a_two_process_run_stopped_by_sigterm_resumes_bit_exact(tmp_path):
    """torchrun forwards SIGTERM to both ranks; they agree on the step to stop after, rank 0 saves every rank's
    random state and epoch sums, and the resumed pair ends where an uninterrupted pair ends."""
    sets = ["train.epochs=3", "train.deterministic=true", "data.augment=true", "train.checkpoint_every_steps=5"]
    whole = torchrun(tmp_path / "whole", *sets)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "stopped"
    command = _torchrun_command(out, *sets)
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("epoch 1/3"):
            process.send_signal(signal.SIGTERM)
            break
    _, stderr = process.communicate(timeout=120)
    run = next(out.glob("*/*"))
    stopped = load_checkpoint(run / "checkpoints" / "last.pt")
    assert stopped["epoch"] >= 1 and len(stopped["ranks"]) == 2, stderr[-3000:]
    assert stopped["step"] < 3 * 21, "the run ended before the signal reached it"

    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
                              str(free_port()), "-m", "zoo", "train", "--resume", str(run), "--quiet"],
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = load_checkpoint(next((tmp_path / "whole").glob("*/*")) / "checkpoints" / "last.pt")
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    assert final["step"] == expected["step"] == 3 * 21
    for key, tensor in expected["model"].items():
        assert torch.equal(final["model"][key], tensor), key
