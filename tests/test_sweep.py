"""zoo sweep on tiny digits runs: a grid with seeds and two workers killed with SIGKILL and started again (12 runs,
none trained twice, the table of an uninterrupted sweep), two processes sharing one SQLite study, a search with its
pruner. What a sweep refuses (one line, nothing written) is in tests/bad_input_cases.py with every command's."""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_zoo

pytest.importorskip("optuna")

# A 2 x 2 grid over 3 seeds: 12 runs of 2 epochs of 4 steps each, LeNet-5 on digits (seconds each)
TINY = """
model: {name: lenet5}
data: {name: digits, batch_size: 32}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 2, max_steps_per_epoch: 4, log_interval: 2}
"""
GRID = ["--param", "optimizer.name=sgd,adam", "--param", "init=xavier_uniform,he_normal", "--seeds", "0-2"]
FIGURES = ("optimizer.name", "init", "seed", "state", "epochs_run", "best_epoch", "val_accuracy", "test_accuracy",
           "test_loss")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as file:
        return list(csv.DictReader(file))


def _table(folder: Path) -> list[tuple[str, ...]]:
    return [tuple(row[name] for name in FIGURES) for row in _rows(folder)]


def test_a_killed_grid_sweep_started_again_finishes_its_12_runs_once_each(tiny, tmp_path):
    killed = tmp_path / "killed"
    command = ["sweep", tiny, *GRID, "--workers", "2", "--output", killed]
    process = run_zoo(*command, popen=True, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # SIGKILL once some runs finished and another is under way
        finished = list(killed.glob("runs/*/metrics.json"))
        going = [run for run in killed.glob("runs/*") if (run / "checkpoints" / "last.pt").is_file()
                 and not (run / "metrics.json").is_file()]
        if len(finished) >= 3 and going:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    before = {run.parent.name: run.stat().st_mtime_ns for run in killed.glob("runs/*/metrics.json")}
    assert 3 <= len(before) < 12

    again = run_zoo(*command, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    runs = sorted(killed.glob("runs/*"))
    assert len(runs) == 12 and all((run / "metrics.json").is_file() for run in runs)
    after = {run.parent.name: run.stat().st_mtime_ns for run in killed.glob("runs/*/metrics.json")}
    assert all(after[name] == stamp for name, stamp in before.items())  # a finished run is read, never trained
    for run in runs:  # no epoch twice in any run: each history.csv holds epochs 1 and 2 once
        with open(run / "history.csv", newline="") as file:
            assert [row["epoch"] for row in csv.DictReader(file)] == ["1", "2"], run
    assert len(_rows(killed)) == 12
    assert "12 in all" in again.stdout

    whole = tmp_path / "whole"
    uninterrupted = run_zoo("sweep", tiny, *GRID, "--workers", "2", "--output", whole, cwd=tmp_path, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert _table(killed) == _table(whole)  # the same figures, run by run: exact resume
    best = (killed / "best.yaml").read_text()
    assert best.startswith("# zoo sweep's best configuration") and yaml.safe_load(best)["sweep"] is None
    assert (killed / "compare.html").read_text().count('<section id="') >= 5


def test_two_processes_share_one_sqlite_study_and_run_each_trial_once(tiny, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    grid = ["--param", "optimizer.name=sgd,adam", "--param", "init=xavier_uniform,he_normal", "--seeds", "0"]
    machines = [run_zoo("sweep", tiny, *grid, "--storage", storage, "--output", tmp_path / name, popen=True,
                        cwd=tmp_path) for name in ("a", "b")]
    outputs = []
    for machine in machines:
        out, err = machine.communicate(timeout=300)
        assert machine.returncode == 0, err
        outputs.append(out)
    names = [run.name for name in ("a", "b") for run in (tmp_path / name).glob("runs/*")]
    assert len(names) == 4 and len(set(names)) == 4  # each trial trained by one of them, once
    # each writes the study's table as it ends: the last to end holds every run; the first, what had finished,
    # and says that the rest still run
    tables = sorted((len(_rows(tmp_path / name)), out) for name, out in zip("ab", outputs))
    assert tables[-1][0] == 4 and tables[0][0] >= 2
    assert tables[0][0] == 4 or "still running or waiting on other workers" in tables[0][1]


def test_a_search_samples_its_trials_with_seeds_and_prunes_by_the_median(tiny, tmp_path):
    folder = tmp_path / "search"
    result = run_zoo("sweep", tiny, "--param", "optimizer.lr=log:1e-4..0.3", "--trials", "8", "--seeds", "0-1",
                     "--set", "train.epochs=3", "--output", folder, "--format", "json", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = _rows(folder)
    configurations = {row["optimizer.lr"] for row in rows}
    assert len(configurations) == 8 and len(rows) <= 16
    for lr in configurations:  # each configuration's seeds: both, or the first alone when it was pruned
        seeds = sorted(row["seed"] for row in rows if row["optimizer.lr"] == lr)
        assert seeds in (["0", "1"], ["0"])
    assert all(1e-4 <= float(lr) <= 0.3 for lr in configurations)
    pruned = [row for row in rows if row["state"] == "pruned"]
    for row in pruned:  # stopped early, still tested and kept
        metrics = json.loads(Path(row["run_dir"], "metrics.json").read_text())
        assert metrics["pruned_at_epoch"] == int(row["epochs_run"]) < 3 and row["test_accuracy"]
    printed = json.loads(result.stdout)
    assert printed["best"]["optimizer.lr"] in {float(lr) for lr in configurations}


def test_a_judge_stops_a_run_as_the_pruner_would(tmp_path):
    from tests.helpers import digits_config
    from zoo.training import train

    told = []

    def judge(epoch: int, accuracy: float) -> bool:
        told.append((epoch, accuracy))
        return epoch == 2

    result = train(digits_config(tmp_path, "train.epochs=4", "train.max_steps_per_epoch=3"), quiet=True, judge=judge)
    assert [epoch for epoch, _ in told] == [1, 2] and all(0 <= accuracy <= 1 for _, accuracy in told)
    assert result.metrics["pruned_at_epoch"] == 2 and result.metrics["epochs_run"] == 2
    assert told[-1][1] == pytest.approx(result.metrics["val"]["accuracy"]) or result.metrics["best_epoch"] == 1


def test_params_and_seeds_parse_as_written():
    from zoo.errors import ZooError
    from zoo.experiments.space import parse_param, parse_seeds

    assert parse_param("model.hidden_sizes=[10,10],[256]").values == ("[10,10]", "[256]")
    lr = parse_param("optimizer.lr=log:1e-4..1e-1")
    assert (lr.low, lr.high, lr.log, lr.integer) == (1e-4, 0.1, True, False)
    width = parse_param("data.batch_size=16..128")
    assert (width.low, width.high, width.integer) == (16, 128, True)
    assert parse_seeds("0-2,7", 0) == (0, 1, 2, 7) and parse_seeds(None, 5) == (5,) and parse_seeds("3", 0) == (3,)
    with pytest.raises(ZooError, match="given twice"):
        parse_seeds("0-2,1", 0)
    with pytest.raises(ZooError, match="whole ends"):
        parse_param("data.batch_size=int:1.5..8")


def test_a_diverging_point_is_kept_as_diverged_and_not_trained_again(tiny, tmp_path):
    folder = tmp_path / "lr"
    command = ["sweep", tiny, "--param", "optimizer.lr=0.01,1e30", "--set", "model.activation=relu", "--output", folder]
    first = run_zoo(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr  # a setting that does not train is a result, not a failure
    states = {row["optimizer.lr"]: row["state"] for row in _rows(folder)}
    assert states == {"0.01": "complete", "1e30": "diverged"}
    assert "diverged: " in first.stdout and "the loss is not finite" in first.stdout
    again = run_zoo(*command, cwd=tmp_path)
    assert again.returncode == 0 and "0 runs trained now, 2 in all" in again.stdout


def test_a_key_given_twice_and_no_trials_are_refused_in_one_line(tiny):
    from zoo.errors import ZooError
    from zoo.experiments.space import build_space
    from zoo.experiments.sweep import make_plan

    with pytest.raises(ZooError, match=r"--param optimizer.lr is given twice; give its values once"):
        build_space(None, ["optimizer.lr=0.1,0.2", "optimizer.lr=0.3"], None, 0)
    with pytest.raises(ZooError, match=r"--trials 0: give 1 or more configurations to search"):
        make_plan(tiny, ["optimizer.lr=log:1e-3..1e-1"], None, 1, 0, None, None, (), None, True)


def test_a_search_started_again_with_more_trials_draws_new_points(tiny, tmp_path):
    # TPE's first points are random: a second start seeded as the first would draw the first start's again
    folder = tmp_path / "more"
    search = ["sweep", tiny, "--param", "optimizer.lr=log:1e-3..1e-1", "--set", "train.epochs=1", "--output", folder]
    assert run_zoo(*search, "--trials", "2", cwd=tmp_path).returncode == 0
    again = run_zoo(*search, "--trials", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 run trained now, 3 in all" in again.stdout and again.stderr.count("sweep: optimizer.lr=") == 1
