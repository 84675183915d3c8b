"""zoo lr-find: the learning-rate range test (zoo.training.lr_find) on LeNet-5 and the real digits, on the CPU."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import zoo
from zoo.checkpoint import read_state
from zoo.cli import main
from zoo.distributed import Job
from zoo.loop import train_epoch
from zoo.runtime import capture_rng
from zoo.training.lr_find import _schedule, lr_find, lr_overrides, suggest, sweep
from zoo.training.run import train
from zoo.training.setup import assemble

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "lenet5_digits.yaml"
PNG = b"\x89PNG\r\n\x1a\n"


def config(output_dir: Path, *overrides: str) -> zoo.Config:
    return zoo.load_config(CONFIG, [f"train.output_dir={output_dir}", *overrides])


def zoo_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The zoo command in this process, through main(): the one place errors become exit codes.

    In this process rather than through helpers.run_zoo, as the sweeps here need no isolation: each call saves the
    seconds of a new interpreter importing torch."""
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    with pytest.raises(SystemExit) as done:
        main()
    captured = capsys.readouterr()
    return done.value.code or 0, captured.out, captured.err


def files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def same_rng(a: dict, b: dict) -> bool:
    return (a["python"] == b["python"] and torch.equal(a["numpy"]["key"], b["numpy"]["key"])
            and a["numpy"]["pos"] == b["numpy"]["pos"] and torch.equal(a["torch"], b["torch"]))


def untimed(record):
    """metrics.json without its clock readings (time_s, images_per_s), which differ between identical runs."""
    if isinstance(record, dict):
        return {k: untimed(v) for k, v in record.items() if k not in ("time_s", "images_per_s")}
    return record


def test_rates_grow_geometrically_from_start_to_end(tmp_path):
    result = lr_find(config(tmp_path), steps=30, start_lr=1e-5, end_lr=1e-2)  # too low to diverge
    assert not result.stopped_early and result.reason == "reached --end-lr"
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == len(result.centered) == 30
    assert result.lrs[0] == pytest.approx(1e-5, rel=1e-12) and result.lrs[-1] == pytest.approx(1e-2, rel=1e-12)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert ratios == pytest.approx([1000 ** (1 / 29)] * 29, rel=1e-12)
    assert result.smoothed[0] == pytest.approx(result.losses[0])  # bias-corrected: the first average is the first loss
    assert not list(tmp_path.iterdir())  # the library call writes nothing


def test_cli_prints_the_suggestion_and_writes_only_the_png(tmp_path, monkeypatch, capsys):
    code, out, err = zoo_cli(monkeypatch, capsys, "lr-find", "--config", str(CONFIG),
                             "--set", f"train.output_dir={tmp_path}", "--set", "train.epochs=3")
    assert code == 0, err
    swept, suggested, plot = out.splitlines()
    assert swept.startswith("swept lr 1.0e-07 to ") and "passes of the training data" in swept
    flag = re.search(r"--set optimizer\.lr=(\S+)$", suggested)
    assert flag and suggested.startswith(f"suggested lr {float(flag.group(1)):.1e} (steepest descent")
    assert (f"train with: zoo train --config {CONFIG} --set train.output_dir={tmp_path} --set train.epochs=3 "
            "--set optimizer.lr=") in suggested
    picture = tmp_path / "lenet5_digits" / "lr_find.png"
    assert plot == f"plot: {picture}"
    assert files(tmp_path) == ["lenet5_digits/lr_find.png"]  # no run directory, no TensorBoard files, no temporary file
    assert picture.read_bytes().startswith(PNG)
    with Image.open(picture) as image:
        image.verify()
        assert image.format == "PNG" and image.size == (720, 440)


def test_a_run_after_the_sweep_is_bit_identical(tmp_path):
    quick = ("train.epochs=2", "train.max_steps_per_epoch=8", "train.deterministic=true")
    alone = train(config(tmp_path / "alone", *quick), quiet=True)
    deterministic = torch.are_deterministic_algorithms_enabled()
    before = capture_rng()
    lr_find(config(tmp_path / "after", *quick), steps=20, start_lr=1e-4, end_lr=1.0)
    assert same_rng(capture_rng(), before) and torch.are_deterministic_algorithms_enabled() == deterministic
    after = train(config(tmp_path / "after", *quick), quiet=True)
    best = [read_state(run.run_dir / "checkpoints" / "best.pt", "weights").model for run in (alone, after)]
    assert best[0].keys() == best[1].keys() and all(torch.equal(best[0][k], best[1][k]) for k in best[0])
    metrics = [untimed(json.loads((run.run_dir / "metrics.json").read_text())) for run in (alone, after)]
    assert metrics[0] == metrics[1]
    # the sweep wrote nothing
    assert [path.name for path in (tmp_path / "after" / "lenet5_digits").iterdir()] == [after.run_dir.name]


def test_sweep_puts_the_parts_back(tmp_path):
    """Weights, buffers, optimizer, loader and random state as they were: the next epoch is the one without it."""
    cfg = config(tmp_path, "train.max_steps_per_epoch=6", "data.augment=true")

    def epoch(parts):
        train_epoch(parts.step_model, parts.train_loader, parts.step, parts.num_classes,
                    epoch_batches=parts.batches_per_epoch)
        return {k: v.clone() for k, v in parts.model.state_dict().items()}

    parts = assemble(cfg, Job(torch.device("cpu")), None)
    weights = {k: v.clone() for k, v in parts.model.state_dict().items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in parts.step.optimizer.param_groups]
    rng = capture_rng()
    result = sweep(parts, steps=25, start_lr=1e-4, end_lr=1.0)
    assert result.lrs and all(torch.equal(v, weights[k]) for k, v in parts.model.state_dict().items())
    assert [{k: v for k, v in g.items() if k != "params"} for g in parts.step.optimizer.param_groups] == groups
    assert not parts.step.optimizer.state and all(p.grad is None for p in parts.model.parameters())
    assert same_rng(capture_rng(), rng)
    swept = epoch(parts)
    fresh = epoch(assemble(cfg, Job(torch.device("cpu")), None))
    assert all(torch.equal(swept[k], fresh[k]) for k in fresh)


def test_schedule_follows_each_groups_lr_scale():
    weights = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.SGD([{"params": [weights[0]], "lr_scale": 1.0}, {"params": [weights[1]], "lr_scale": 0.1}],
                                lr=0.5, momentum=0.9)
    optimizer.param_groups[0]["momentum"] = 0.95  # as one-cycle leaves it
    rate = lambda k: 1e-3 * 10.0 ** k  # noqa: E731
    schedule = _schedule(optimizer, rate)
    for k in range(3):
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([rate(k), rate(k) * 0.1], rel=1e-12)
        optimizer.step()
        schedule.step()
    assert [g["momentum"] for g in optimizer.param_groups] == [0.9, 0.9]


def test_suggestion_is_the_steepest_descent_and_says_when_there_is_none():
    lrs = [10 ** (-6 + 6 * k / 99) for k in range(100)]
    cliff = [2.3 - 2.0 / (1 + math.exp(-(math.log10(lr) + 2) * 4)) for lr in lrs]  # falls fastest at 1e-2
    _, index, problem = suggest(lrs, cliff, lrs[0], lrs[-1])
    assert problem is None and lrs[index] == pytest.approx(1e-2, rel=0.15)
    _, index, problem = suggest(lrs[:8], cliff[:8], lrs[0], lrs[-1])  # diverged after 0.42 decade
    assert index is None and "covered 0.42 decades" in problem and "--start-lr 1e-08" in problem
    _, index, problem = suggest(lrs[:8], cliff[:8], lrs[0], lrs[7])  # asked for 0.42 decade
    assert index is None and "covered 0.42 decades" in problem and "--end-lr 10" in problem
    wide = [1e-7, 1e-3]  # a 5-step sweep over 8 decades that diverged at its second
    _, index, problem = suggest(wide, [2.0, 90.0], wide[0], 10.0)
    assert index is None and "too coarse" in problem and "--steps 100" in problem
    noise = [2.3 + 0.01 * math.sin(7 * k) - 0.0001 * k for k in range(100)]  # falls by 0.4%: the slope of noise
    _, index, problem = suggest(lrs, noise, lrs[0], lrs[-1])
    assert index is None and "less than 5%" in problem and "--end-lr" in problem
    _, index, problem = suggest(lrs[:60], cliff[:60], lrs[0], lrs[59])  # ends at 4e-3, still falling
    assert index is None and "fell fastest at the sweep's end" in problem
    _, index, problem = suggest(lrs, [1.0 + k for k in range(100)], lrs[0], lrs[-1])  # rising from the start
    assert index is None and "--start-lr" in problem
    assert lr_overrides(["optimizer.lr=1", "data.batch_size=64"], 0.0032) == ["data.batch_size=64",
                                                                               "optimizer.lr=0.0032"]


@pytest.mark.slow
def test_lenet5_on_digits_trains_well_with_the_suggestion(tmp_path):
    result = lr_find(config(tmp_path))
    assert result.suggestion is not None, result.problem
    run = train(config(tmp_path, f"optimizer.lr={result.suggestion}"), quiet=True)
    assert run.metrics["test"]["accuracy"] >= 0.97, (result.suggestion, run.metrics["test"])


@pytest.mark.parametrize(("args", "message"), [
    (("--steps", "5000"), "error: --steps is 5000; give 5 to 1000"),
    (("--start-lr", "0.1", "--end-lr", "0.1"), "error: --start-lr 0.1 is not below --end-lr 0.1"),
    (("--start-lr", "0"), "error: --start-lr is 0; give a positive learning rate"),
    (("--end-lr", "-1"), "error: --end-lr is -1; give a positive learning rate"),
    (("--end-lr", "nan"), "error: --end-lr is nan; give a positive learning rate"),
    (("--steps", "20"), "error: --steps 20 over 8 decades of lr are 2.4 a decade, too coarse to take the loss's slope"),
])
def test_bad_input_is_one_line_exit_code_2_and_nothing_written(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = zoo_cli(monkeypatch, capsys, "lr-find", "--config", str(CONFIG),
                             "--set", f"train.output_dir={tmp_path / 'runs'}", *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(message), err
    assert not list(tmp_path.iterdir())


def test_under_torchrun_it_refuses_before_reading_the_data(tmp_path, monkeypatch):
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "29500"), ("LOCAL_WORLD_SIZE", "2"), ("GROUP_RANK", "0")):
        monkeypatch.setenv(name, value)
    with pytest.raises(zoo.ZooError, match="zoo lr-find runs in one process; start it without torchrun"):
        lr_find(config(tmp_path), steps=100)
    assert not list(tmp_path.iterdir())


def test_apply_trains_with_the_suggestion(tmp_path, monkeypatch, capsys):
    code, out, err = zoo_cli(monkeypatch, capsys, "lr-find", "--config", str(CONFIG), "--apply", "--quiet",
                             "--set", f"train.output_dir={tmp_path}", "--set", "train.epochs=1",
                             "--set", "train.max_steps_per_epoch=5")
    assert code == 0, err
    flag = float(re.search(r"--set optimizer\.lr=(\S+)\n", out).group(1))
    suggested = float(re.search(r"^suggested lr (\S+) ", out, re.MULTILINE).group(1))
    assert flag == pytest.approx(suggested, rel=0.05)  # printed to 2 digits, as the flag
    runs = [path for path in (tmp_path / "lenet5_digits").iterdir() if path.is_dir()]
    assert len(runs) == 1 and (runs[0] / "metrics.json").is_file()
    saved = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert float(saved["optimizer"]["lr"]) == flag and saved["train"]["epochs"] == 1
