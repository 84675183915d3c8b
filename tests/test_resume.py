"""Exact resume: a run stopped by a signal (between epochs, or mid-epoch after step-interval checkpoints) and
resumed ends bit for bit where the uninterrupted run ends; a changed config is refused unless allowed.
Tests zoo.training.resume and the run's restore (zoo.training.run, zoo.checkpoint)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from helpers import digits_config, metric_figures, signal_at_step

import zoo.loop
import zoo.training.run
from zoo.checkpoint import load_checkpoint
from zoo.errors import RunStopped, ZooError
from zoo.training import train
from zoo.training.resume import prepare_resume

ROOT = Path(__file__).resolve().parents[1]
STEPS = 41  # digits: 1,294 training images in batches of 32


CONFIG = ROOT / "configs" / "lenet5_digits.yaml"


def _stateful(loader: str, *extra: str) -> list[str]:
    """The --set items (after train.output_dir) of LeNet-5 on digits with everything that draws random numbers or
    keeps state: augmentation (crops, random erasing, Mixup/CutMix, TrivialAugment on the in-memory path), momentum,
    a warmup-then-cosine schedule, label smoothing, class weights, the balanced sampler, an EMA of the weights,
    early-stopping counters. 3 epochs of 41 steps."""
    policy = ["data.augment.policy=trivialaugment"] if loader == "memory" else []  # per image: slow on the other path
    return ["train.epochs=3", "train.deterministic=true", f"data.loader={loader}", "data.augment=true",
            "data.crop_padding=2", "data.augment.random_erasing=0.25", "data.augment.mixup_alpha=0.2",
            "data.augment.cutmix_alpha=1.0", *policy, "scheduler.warmup_epochs=0.5", "loss.label_smoothing=0.1",
            "loss.class_weights=[1, 1, 1, 1, 1, 1, 1, 1, 1, 2]", "data.sampler=balanced",
            "train.ema={decay: 0.99, warmup_steps: 20}",
            "train.early_stopping={metric: val_loss, patience: 5}", *extra]


def _signal_in_validation(monkeypatch, epoch: int) -> None:
    real, calls = zoo.training.run.evaluate_loader, {"n": 0}

    def evaluating(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo.training.run, "evaluate_loader", evaluating)


def _final_state(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    moments_a = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    moments_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(moments_a, moments_b, strict=True))
    assert a["ema"].keys() == b["ema"].keys() and all(torch.equal(a["ema"][key], b["ema"][key]) for key in a["ema"])
    assert a["scheduler"] == b["scheduler"] and a["step"] == b["step"] == 3 * STEPS
    assert a["progress"]["best_epoch"] == b["progress"]["best_epoch"]
    assert metric_figures(a["progress"]["best_val"]) == metric_figures(b["progress"]["best_val"])


@pytest.fixture(scope="module", params=["memory", "torchvision"])
def uninterrupted(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    result = train(digits_config(out, *_stateful(request.param)), quiet=True)
    return request.param, result


def test_resume_after_an_epoch_is_bit_exact(uninterrupted, tmp_path, monkeypatch, capsys):
    loader, whole = uninterrupted
    _signal_in_validation(monkeypatch, epoch=1)
    with pytest.raises(RunStopped) as stopped:
        train(digits_config(tmp_path, *_stateful(loader)), quiet=True)
    assert stopped.value.exit_code == 143
    run_dir = next(tmp_path.glob("*/*"))
    assert f"SIGTERM: stopped at the start of epoch 2 (step {STEPS}); saved {run_dir}/checkpoints/last.pt; " \
           f"resume with: zoo train --resume {run_dir}" == str(stopped.value)
    saved = _final_state(run_dir)
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 0, STEPS)
    monkeypatch.undo()

    plan = prepare_resume(run_dir)
    resumed = train(plan.config, quiet=True, resume=plan)
    assert resumed.run_dir == run_dir and len(list(tmp_path.glob("*/*"))) == 1  # the same directory
    epochs = [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]  # epoch 1's row kept, none written twice
    _assert_same_state(_final_state(whole.run_dir), _final_state(run_dir))
    assert metric_figures(resumed.metrics["test"]) == metric_figures(whole.metrics["test"])
    assert resumed.metrics["train"]["images"] == whole.metrics["train"]["images"]
    assert not (run_dir / ".lock").exists()


def test_resume_mid_epoch_from_a_step_checkpoint_is_bit_exact(uninterrupted, tmp_path, monkeypatch):
    loader, whole = uninterrupted
    signal_at_step(monkeypatch, STEPS + 17)  # epoch 2, batch 17; step checkpoints every 10 steps too
    with pytest.raises(RunStopped) as stopped:
        train(digits_config(tmp_path, *_stateful(loader, "train.checkpoint_every_steps=10")), quiet=True)
    assert stopped.value.exit_code == 130 and "SIGINT: stopped at epoch 2, batch 17 (step 58)" in str(stopped.value)
    run_dir = next(tmp_path.glob("*/*"))
    saved = _final_state(run_dir)
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 17, STEPS + 17)
    assert saved["ranks"][0]["meter"]["confusion"].sum() == 17 * 32  # the epoch's sums so far
    monkeypatch.undo()

    plan = prepare_resume(run_dir / "checkpoints" / "last.pt", overrides=["train.checkpoint_every_steps=10"])
    resumed = train(plan.config, quiet=True, resume=plan)
    _assert_same_state(_final_state(whole.run_dir), _final_state(run_dir))
    assert metric_figures(resumed.metrics["test"]) == metric_figures(whole.metrics["test"])
    assert metric_figures(resumed.metrics["val"]) == metric_figures(whole.metrics["val"])


def test_a_changed_config_is_refused_unless_allowed(uninterrupted, tmp_path):
    loader, whole = uninterrupted
    out = whole.run_dir.parent.parent
    with pytest.raises(ZooError, match=r": the run is finished, there is nothing left to train \(it has done its 3 "):
        # the same file and --set: not a change
        prepare_resume(whole.run_dir, CONFIG, [f"train.output_dir={out}", *_stateful(loader)])
    with pytest.raises(ZooError, match=r"the config differs from the checkpoint's: data.crop_padding: 2 -> 4; "):
        prepare_resume(whole.run_dir, CONFIG, [f"train.output_dir={out}", *_stateful(loader, "data.crop_padding=4")])
    with pytest.raises(ZooError,
                       match=r"the config differs from the checkpoint's: optimizer.lr: 0.05 -> 0.01; "
                             r"train.epochs: 3 -> 4; resume with the same config, or add --allow-config-change"):
        prepare_resume(whole.run_dir, overrides=["optimizer.lr=0.01", "train.epochs=4"])
    plan = prepare_resume(whole.run_dir, overrides=["train.epochs=4"], allow_config_change=True)
    assert plan.config.train.epochs == 4 and plan.checkpoint == whole.run_dir / "checkpoints" / "last.pt"


def test_resume_targets_that_cannot_be_resumed(tmp_path):
    with pytest.raises(ZooError, match="not found"):
        prepare_resume(tmp_path / "nowhere")
    with pytest.raises(ZooError, match="holds no checkpoints/last.pt"):
        prepare_resume(tmp_path)
    weights = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    with pytest.raises(ZooError, match="cannot be resumed: it holds no training state"):
        prepare_resume(weights)


def test_an_allowed_change_takes_effect_and_the_new_schedule_is_replayed(uninterrupted, tmp_path, capsys):
    _, whole = uninterrupted
    run_dir = tmp_path / "run"
    shutil.copytree(whole.run_dir, run_dir)
    plan = prepare_resume(run_dir, overrides=["train.epochs=4", "optimizer.lr=0.01"], allow_config_change=True)
    resumed = train(plan.config, quiet=True, resume=plan)
    assert "config changes (allowed): optimizer.lr: 0.05 -> 0.01; train.epochs: 3 -> 4" in capsys.readouterr().out
    state = _final_state(run_dir)
    group = state["optimizer"]["param_groups"][0]
    assert group["initial_lr"] == 0.01 and group["lr"] < 1e-6  # the new cosine, ended at 0 after 4 epochs
    assert state["step"] == 4 * STEPS and resumed.metrics["epochs_run"] == 4


def test_a_fine_tuning_run_resumes_exactly_across_its_unfreezing(uninterrupted, tmp_path, monkeypatch):
    """Frozen layers, the backbone's smaller lr and unfreeze_at_epoch come back; the source is not read again."""
    loader, whole = uninterrupted
    source = tmp_path / "source.pt"
    shutil.copy(whole.run_dir / "checkpoints" / "best.pt", source)
    extra = [f"finetune={{source: {source}, freeze: backbone, backbone_lr_mult: 0.1, unfreeze_at_epoch: 3}}"]
    straight = train(digits_config(tmp_path / "straight", *_stateful(loader, *extra)), quiet=True)

    _signal_in_validation(monkeypatch, epoch=2)
    with pytest.raises(RunStopped):
        train(digits_config(tmp_path / "stopped", *_stateful(loader, *extra)), quiet=True)
    monkeypatch.undo()
    run_dir = next((tmp_path / "stopped").glob("*/*"))
    source.unlink()  # a resumed run needs only its own checkpoint
    plan = prepare_resume(run_dir)
    train(plan.config, quiet=True, resume=plan)
    _assert_same_state(_final_state(straight.run_dir), _final_state(run_dir))


@pytest.mark.slow
def test_stochastic_depth_resumes_mid_epoch_bit_exact(tmp_path, monkeypatch):
    """model.drop_path draws from torch's global generator, which a checkpoint keeps per rank."""
    def config(out: Path):
        return digits_config(out, "model.name=resnet20", "model.drop_path=0.3", "model.in_channels=1", "train.epochs=2",
                             "train.deterministic=true", "data.batch_size=128", "train.checkpoint_every_steps=3",
                             "scheduler.name=none")

    whole = train(config(tmp_path / "whole"), quiet=True)
    signal_at_step(monkeypatch, 14)  # epoch 2 (11 steps an epoch), its 3rd batch, after the step checkpoint at 12
    with pytest.raises(RunStopped):
        train(config(tmp_path / "cut"), quiet=True)
    monkeypatch.undo()
    run_dir = next((tmp_path / "cut").glob("*/*"))
    plan = prepare_resume(run_dir)
    train(plan.config, quiet=True, resume=plan)
    a, b = _final_state(whole.run_dir), _final_state(run_dir)
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])


def test_accumulated_steps_resume_mid_epoch_bit_exact(tmp_path, monkeypatch):
    """train.accumulate_steps 2: 41 batches an epoch make 21 optimizer steps; a signal in the middle of one stops
    the run after it, at a step boundary, and the resumed run ends where the uninterrupted one does."""
    def config(out: Path):
        return digits_config(out, *_stateful("memory", "train.accumulate_steps=2", "train.checkpoint_every_steps=5",
                                             "train.epochs=2"))

    whole = train(config(tmp_path / "whole"), quiet=True)
    signal_at_step(monkeypatch, STEPS + 25)  # epoch 2, batch 25: the first of optimizer step 13's two
    with pytest.raises(RunStopped) as stopped:
        train(config(tmp_path / "cut"), quiet=True)
    assert "stopped at epoch 2, batch 26 (step 34)" in str(stopped.value)
    monkeypatch.undo()
    run_dir = next((tmp_path / "cut").glob("*/*"))
    plan = prepare_resume(run_dir)
    resumed = train(plan.config, quiet=True, resume=plan)
    a, b = _final_state(whole.run_dir), _final_state(run_dir)
    assert a["step"] == b["step"] == 42 and all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    assert all(torch.equal(a["ema"][key], b["ema"][key]) for key in a["ema"])
    assert metric_figures(resumed.metrics["test"]) == metric_figures(whole.metrics["test"])


@pytest.mark.gpu
def test_a_float16_run_on_cuda_stopped_and_resumed_ends_where_the_uninterrupted_one_does(tmp_path, monkeypatch):
    """precision 16 on CUDA: the gradient scaler's scale and growth tracker are saved and restored with the rest.
    Deterministic mode on CUDA (cuDNN's deterministic kernels, CUBLAS_WORKSPACE_CONFIG) makes the pair agree
    bit for bit where the kernels allow; the scaler's state must agree exactly."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    sets = ["train.device=cuda", "train.precision=16", "train.checkpoint_every_steps=10", "train.epochs=2"]
    whole = train(digits_config(tmp_path / "whole", *_stateful("memory", *sets)), quiet=True)
    signal_at_step(monkeypatch, STEPS + 17)
    with pytest.raises(RunStopped):
        train(digits_config(tmp_path / "cut", *_stateful("memory", *sets)), quiet=True)
    monkeypatch.undo()
    run_dir = next((tmp_path / "cut").glob("*/*"))
    saved = _final_state(run_dir)
    # on a GPU the flag is looked at every 10 steps (and at each step checkpoint): it stops within 10 of step 58
    assert saved["scaler"] and saved["scaler"]["scale"] > 0 and saved["epoch"] == 1 and 17 <= saved["batch"] <= 27
    plan = prepare_resume(run_dir)
    resumed = train(plan.config, quiet=True, resume=plan)
    a, b = _final_state(whole.run_dir), _final_state(run_dir)
    assert a["step"] == b["step"] == 2 * STEPS and a["scaler"] == b["scaler"]
    for key in a["model"]:
        assert torch.allclose(a["model"][key].float(), b["model"][key].float(), atol=1e-5), key
    assert resumed.metrics["test"]["count"] == whole.metrics["test"]["count"] == 359
