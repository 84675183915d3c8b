"""zoo.runtime's speed settings: mixed precision, channels_last, torch.compile, cuDNN benchmark; each where it
pays (CUDA) and off or ignored on the CPU. The GPU tests skip cleanly without CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.config import load_config
from zoo.loop import Compute
from zoo.evaluation import evaluate_checkpoint
from zoo.errors import ZooError
from zoo.runtime import autocast, compiled, grad_scaler, memory_format, resolve_device, tune_backends
from zoo.training import train

ROOT = Path(__file__).resolve().parents[1]


def short_run(tmp_path: Path, *overrides: str):
    config = load_config(ROOT / "configs" / "lenet5_digits.yaml",
                         [f"train.output_dir={tmp_path}", "train.epochs=2", "train.max_steps_per_epoch=8", *overrides])
    return train(config, quiet=True)


def test_device_auto_falls_back_to_the_cpu_silently_and_an_absent_device_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and capsys.readouterr() == ("", "")
    for name in ("cuda", "cuda:7"):
        with pytest.raises(ZooError, match=f"train.device is '{name}' but this machine has no CUDA device; use device: auto or cpu"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ZooError, match=r"train.device is 'cuda:7' but there are 2 CUDA devices \(0 to 1\)"):
        resolve_device("cuda:7")


def test_on_the_cpu_precision_benchmark_and_compile_are_off(capsys):
    cpu = torch.device("cpu")
    for precision in ("bf16", "16"):
        with autocast(cpu, precision):
            assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32  # full precision
        assert not grad_scaler(cpu, precision).is_enabled()
    before = torch.backends.cudnn.benchmark
    tune_backends(cpu, "bf16", deterministic=False)
    assert torch.backends.cudnn.benchmark == before
    model = torch.nn.Linear(2, 2)
    assert compiled(model, cpu, True) is model and compiled(model, cpu, False) is model
    assert "train.compile: ignored on cpu" in capsys.readouterr().out


def test_channels_last_batches_and_flat_inputs_left_alone():
    compute = Compute(torch.device("cpu"), memory_format=memory_format(True))
    images, targets = compute.batch(torch.rand(4, 3, 8, 8), torch.zeros(4))
    assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    features, _ = compute.batch(torch.rand(4, 2), torch.zeros(4))
    assert features.is_contiguous()  # xor's 2 features: no image layout to change


def test_a_channels_last_run_saves_plain_weights_that_evaluate_the_same(tmp_path, capsys):
    result = short_run(tmp_path, "train.channels_last=true", "train.compile=true", "train.precision=bf16")
    assert "train.compile: ignored on cpu" in capsys.readouterr().out
    recorded = json.loads((result.run_dir / "metrics.json").read_text())["test"]
    report = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", "test")  # a contiguous model
    assert report.metrics.count == recorded["count"] == 359
    assert report.metrics.accuracy == pytest.approx(recorded["accuracy"])


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_mixed_precision_on_cuda_autocasts_and_scales_only_float16(precision):
    device = torch.device("cuda")
    with autocast(device, precision):
        out = torch.nn.Linear(8, 8).to(device)(torch.rand(2, 8, device=device))
    assert out.dtype == (torch.bfloat16 if precision == "bf16" else torch.float16)
    assert grad_scaler(device, precision).is_enabled() == (precision == "16")
    tune_backends(device, precision, deterministic=False)
    assert torch.backends.cudnn.benchmark
    tune_backends(device, precision, deterministic=True)
    assert not torch.backends.cudnn.benchmark


@pytest.mark.gpu
def test_bf16_channels_last_compiled_run_on_cuda(tmp_path):
    result = short_run(tmp_path, "train.device=cuda", "train.precision=bf16", "train.channels_last=true",
                       "train.compile=true")
    assert result.metrics["test"]["count"] == 359 and result.metrics["test"]["accuracy"] > 0.3
