"""zoo.runtime's speed settings: mixed precision, channels_last, torch.compile, cuDNN benchmark; each where it
pays (CUDA) and off or ignored on the CPU. The GPU tests skip cleanly without CUDA."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from zoo import runtime
from zoo.checkpoint import read_state
from zoo.config import load_config
from zoo.errors import ZooError
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.loop import Compute
from zoo.runtime import autocast, compiled, grad_scaler, memory_format, resolve_device, tune_backends
from zoo.training import resume, setup, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "lenet5_digits.yaml"


def short_run(tmp_path: Path, *overrides: str):
    config = load_config(ROOT / "configs" / "lenet5_digits.yaml",
                         [f"train.output_dir={tmp_path}", "train.epochs=2", "train.max_steps_per_epoch=8", *overrides])
    return train(config, quiet=True)


def test_device_auto_falls_back_to_the_cpu_silently_and_an_absent_device_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and capsys.readouterr() == ("", "")
    for name in ("cuda", "cuda:7"):
        with pytest.raises(ZooError, match=f"train.device is '{name}' but this machine has no CUDA device; "
                                           "use device: auto or cpu"):
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
    printed = capsys.readouterr().out
    assert "train.precision: bf16 ignored on cpu (autocast does not pay there); training in float32" in printed
    assert "train.compile: ignored on cpu" in printed
    tune_backends(cpu, "32", deterministic=False)
    assert capsys.readouterr().out == ""  # float32 asks for nothing to ignore


def test_channels_last_batches_and_flat_inputs_left_alone():
    compute = Compute(torch.device("cpu"), memory_format=memory_format(True))
    images, targets = compute.batch(torch.rand(4, 3, 8, 8), torch.zeros(4))
    assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    features, _ = compute.batch(torch.rand(4, 2), torch.zeros(4))
    assert features.is_contiguous()  # xor's 2 features: no image layout to change


def test_a_channels_last_run_saves_plain_weights_that_evaluate_the_same(tmp_path, capsys):
    result = short_run(tmp_path, "train.channels_last=true", "train.compile=true", "train.precision=bf16")
    printed = capsys.readouterr().out
    assert "train.precision: bf16 ignored on cpu" in printed and "train.compile: ignored on cpu" in printed
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


# ---- train.threads ---------------------------------------------------------------------------------------

def spin() -> None:
    while True:
        pass


def topology(root: Path, siblings: dict[int, str]) -> None:
    """Linux's /sys/devices/system/cpu as `root`: each CPU's thread_siblings_list."""
    for cpu, listed in siblings.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "thread_siblings_list").write_text(listed + "\n")


def test_physical_cores_count_hyperthreads_once_and_follow_the_affinity(monkeypatch, tmp_path):
    topology(tmp_path, {0: "0,4", 1: "1,5", 2: "2,6", 3: "3,7", 4: "0,4", 5: "1,5", 6: "2,6", 7: "3,7"})
    monkeypatch.setattr(runtime, "SYS_CPU", str(tmp_path))
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert runtime.physical_cores() == 4
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 4})  # taskset -c 0,1,4
    assert runtime.physical_cores() == 2
    monkeypatch.setattr(runtime, "SYS_CPU", str(tmp_path / "absent"))  # no topology: the CPUs count
    assert runtime.physical_cores() == 3


def test_auto_threads_are_the_users_omp_setting_or_this_process_share_of_the_idle_cores(monkeypatch):
    monkeypatch.setattr(runtime, "physical_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [runtime.cpu_threads("auto", n) for n in (1, 2, 3, 16)] == [8, 4, 2, 1]
    assert runtime.cpu_threads(3, 2) == 3  # a number is taken as it is
    assert [runtime.cpu_threads("auto", 1, busy) for busy in (0, 1, 2.4, 7, 12)] == [8, 7, 6, 1, 1]  # the idle cores
    assert runtime.cpu_threads("auto", 2, 7) == 4  # several workers: the share (the others count as busy)
    assert runtime.cpu_threads("auto", 1, 7, started=8) == 8  # a resumed run: the count it started with
    assert runtime.cpu_threads(2, 1, 7, started=8) == 2  # the key overrides the rule
    monkeypatch.setenv("OMP_NUM_THREADS", "6")
    assert runtime.cpu_threads("auto", 1, 7) == 6 and runtime.cpu_threads("auto", 2) == 6  # the user's
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets for several processes
    assert runtime.cpu_threads("auto", 2) == 4 and runtime.cpu_threads("auto", 1) == 1


def test_more_threads_than_cores_get_a_note(monkeypatch):
    monkeypatch.setattr(runtime, "physical_cores", lambda: 2)
    assert runtime.threads_note(64, 64) == ("note: train.threads 64 is more than the 2 physical cores this process may "
                                            "use: threads sharing a core wait for each other; 2 or fewer (auto) "
                                            "train faster")
    assert runtime.threads_note(2, 2) is None and runtime.threads_note("auto", 2) is None


def test_cores_left_to_other_processes_get_a_note_all_cores_none(monkeypatch):
    monkeypatch.setattr(runtime, "physical_cores", lambda: 2)
    assert runtime.load_note(1, 1.0) == ("note: train.threads auto: 1 of 2 cores, as 1 other thread wanted a CPU as "
                                         "it started (the load average's runnable count; threads on busy cores wait "
                                         "for each other, several times slower); --set train.threads=2 uses all")
    # the runnable count is threads that want a CPU, not CPUs: on 2 cores it said "keep 6 CPUs busy"
    assert runtime.load_note(1, 6.0).startswith("note: train.threads auto: 1 of 2 cores, as 6 other threads wanted a "
                                                "CPU as it started (the load average's runnable count, more than the "
                                                "cores; ")
    assert (runtime.load_note(2, 0.0) is None and runtime.load_note(1, None) is None
            and runtime.load_note(2, 3.0) is None)


def test_busy_cpus_counts_the_processes_that_spin_now():
    import multiprocessing

    spinners = [multiprocessing.get_context("spawn").Process(target=spin, daemon=True) for _ in range(2)]
    for process in spinners:
        process.start()
    try:
        time.sleep(1.0)  # started and spinning
        busy = runtime.busy_cpus()
    finally:
        for process in spinners:
            process.terminate()
    assert busy is not None and busy >= 1.5, busy


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 3), (1.0, 2), (5.0, 1)])
def test_auto_leaves_the_busy_cores_and_a_resumed_run_keeps_its_count(tmp_path, monkeypatch, capsys, busy, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "physical_cores", lambda: 3)
    monkeypatch.setattr(setup, "busy_cpus", lambda: busy)
    before = torch.get_num_threads()
    try:
        overrides = [f"train.output_dir={tmp_path}", "train.epochs=2", "train.max_steps_per_epoch=2"]
        done = train(load_config(CONFIG, overrides + ["train.epochs=1"]), quiet=True)
        assert torch.get_num_threads() == expected
        assert ("note: train.threads auto" in capsys.readouterr().err) == (expected < 3)
        assert read_state(done.run_dir / "checkpoints" / "last.pt", "resume").progress.threads == expected
        monkeypatch.setattr(setup, "busy_cpus", lambda: 0.0 if busy else 2.0)  # the load has changed since
        torch.set_num_threads(1)
        resume(done.run_dir, overrides=["train.epochs=2"], allow_config_change=True, quiet=True)
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_a_run_trains_with_train_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        train(load_config(CONFIG, [f"train.output_dir={tmp_path}", "train.epochs=1", "train.max_steps_per_epoch=2",
                                   "train.threads=1"]), quiet=True)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_bad_thread_counts_are_one_line(value):
    with pytest.raises(ZooError, match=r"train\.threads") as error:
        load_config(CONFIG, [f"train.threads={value}"])
    assert "\n" not in str(error.value)


def test_lr_find_apply_says_the_set_up_lines_once(tmp_path, monkeypatch, capsys):
    """`zoo lr-find --apply`: the sweep says the run's set-up lines (its data, the thread note), and the run that
    follows with the lr found does not say them again, though the load it measures has moved."""
    import sys

    from zoo.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "physical_cores", lambda: 3)
    loads = iter([1.0, 2.0])
    monkeypatch.setattr(setup, "busy_cpus", lambda: next(loads))
    monkeypatch.setattr(sys, "argv", ["zoo", "lr-find", "--config", str(CONFIG), "--apply", "--quiet", "--steps", "17",
                                      "--start-lr", "1e-3", "--end-lr", "10", "--set", "data.batch_size=16",
                                      "--set", f"train.output_dir={tmp_path}", "--set", "train.epochs=1",
                                      "--set", "train.max_steps_per_epoch=2"])
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as done:
            main()
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err.splitlines()
    assert done.value.code in (0, None), err
    assert len([line for line in err if line.startswith("note: train.threads auto: 2 of 3 cores")]) == 1, err
    assert len([line for line in err if line.startswith("digits: 1,797 images, 10 classes")]) == 1, err
    assert next(loads, None) is None  # the run measured the load again: 1 thread, and said nothing more
    assert [path.name for path in (tmp_path / "lenet5_digits").iterdir() if path.is_dir()]  # it trained
