"""zoo.training.restarts: the same command line continues the run it began (train.run_id; torchrun's restarts), what it
refuses, and the lock of an earlier attempt of the same launcher job. The real torchrun restarts, two nodes, a
lost node and preemption are in test_elastic.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from helpers import digits_config, metric_figures, signal_at_step

from zoo.checkpoint import load_checkpoint
from zoo.config import load_config
from zoo.errors import RunStopped, ZooError
from zoo.rundir import RunLock
from zoo.training import train
from zoo.training.restarts import Attempt, find_run, read_launch, write_launch

ROOT = Path(__file__).resolve().parents[1]


# The runs here: the digits config, 2 epochs of 41 steps, deterministic, a checkpoint every 10 steps, run id job-1.
JOB = ("train.epochs=2", "train.deterministic=true", "train.checkpoint_every_steps=10", "train.run_id=job-1")


def _files(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def test_the_same_run_id_continues_a_stopped_run_bit_for_bit_and_then_refuses_to_train_it_again(tmp_path, monkeypatch):
    whole = train(digits_config(tmp_path / "whole", *JOB), quiet=True)
    assert whole.run_dir == tmp_path / "whole" / "lenet5_digits" / "job-1"  # named by the id, not the time

    signal_at_step(monkeypatch, 25)  # Ctrl-C during step 25 of 82: mid-epoch 1, after the save at step 20
    with pytest.raises(RunStopped):
        train(digits_config(tmp_path / "cut", *JOB), quiet=True)
    monkeypatch.undo()
    run = tmp_path / "cut" / "lenet5_digits" / "job-1"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 25 and not (run / "metrics.json").exists()
    from zoo.present.report import read_run

    with pytest.raises(ZooError, match=r"stopped before its end .*continue it by running the command that started "
                                       r"it again \(train.run_id job-1\)"):
        read_run(run)  # zoo report

    again = train(digits_config(tmp_path / "cut", *JOB), quiet=True)  # the same command line
    assert again.run_dir == run and [p.name for p in run.parent.iterdir()] == ["job-1"]
    final, expected = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (run, whole.run_dir))
    assert final["step"] == expected["step"] == 82
    for key, tensor in expected["model"].items():
        assert torch.equal(final["model"][key], tensor), key
    assert (metric_figures(again.metrics["test"]) == metric_figures(whole.metrics["test"])
            and metric_figures(again.metrics["val"]) == metric_figures(whole.metrics["val"]))
    assert [attempt["torchrun_restart"] for attempt in read_launch(run)["attempts"]] == [None, None]

    before = _files(run)
    with pytest.raises(ZooError, match=r"train.run_id job-1 names a finished run, .*job-1 \(metrics.json\); choose "
                                        r"another train.run_id .* zoo train --resume"):
        train(digits_config(tmp_path / "cut", *JOB), quiet=True)
    assert _files(run) == before  # nothing written


def test_a_run_killed_after_its_last_epoch_goes_on_to_its_test_alone(tmp_path):
    done = train(digits_config(tmp_path, *JOB), quiet=True)
    for name in ("metrics.json", "test_scores.npz"):  # killed before its test ended
        (done.run_dir / name).unlink()
    step = load_checkpoint(done.run_dir / "checkpoints" / "last.pt")["step"]
    again = train(digits_config(tmp_path, *JOB), quiet=True)
    assert again.metrics["test"]["accuracy"] == done.metrics["test"]["accuracy"]
    assert again.metrics["test"]["count"] == 359 and (done.run_dir / "test_scores.npz").is_file()
    assert load_checkpoint(done.run_dir / "checkpoints" / "last.pt")["step"] == step  # nothing trained again


def test_a_changed_config_under_the_same_run_id_is_refused_before_anything_is_written(tmp_path):
    done = train(digits_config(tmp_path, *JOB), quiet=True)
    (done.run_dir / "metrics.json").unlink()
    before = _files(done.run_dir)
    with pytest.raises(ZooError, match=r"train.run_id job-1 continues .*job-1, whose config differs: "
                                       r"optimizer.lr: 0.05 -> 0.1; give the config it was started with, .* or make "
                                       r"the change with zoo train --resume \S+job-1 --set optimizer.lr=0.1 "
                                       r"--allow-config-change$"):
        train(digits_config(tmp_path, *JOB, "optimizer.lr=0.1"), quiet=True)
    assert _files(done.run_dir) == before


def test_a_folder_that_is_not_a_run_is_refused_and_an_attempt_that_never_saved_starts_again(tmp_path):
    folder = tmp_path / "lenet5_digits" / "job-1"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ZooError, match=r"job-1 exists and is not a run zoo began .*choose another train.run_id"):
        train(digits_config(tmp_path, *JOB), quiet=True)
    assert (folder / "notes.txt").read_text() == "mine"
    (tmp_path / "lenet5_digits" / "job-2").write_text("a file")
    with pytest.raises(ZooError,
                       match=r"train.run_id job-2: \S+job-2 is a file; choose another train.run_id, or move that file"):
        train(digits_config(tmp_path, *JOB, "train.run_id=job-2"), quiet=True)

    (folder / "notes.txt").unlink()
    write_launch(folder, "job-1", Attempt())  # begun, then killed before its first checkpoint
    (folder / "config.yaml").write_text("stale")
    done = train(digits_config(tmp_path, *JOB), quiet=True)
    assert done.run_dir == folder and (folder / "config.yaml").read_text() != "stale"
    assert len(read_launch(folder)["attempts"]) == 1  # the new start's own record


def test_a_numeric_run_id_stays_text_and_an_empty_one_or_a_path_is_refused():
    config = ROOT / "configs" / "lenet5_digits.yaml"
    assert load_config(config, ["train.run_id=0042"]).train.run_id == "0042"  # a SLURM job id
    assert load_config(config, ["train.run_id=812_12"]).train.run_id == "812_12"  # an array task
    with pytest.raises(ZooError, match=r"--set train.run_id=: the value is empty \(an unset shell variable\?\)"):
        # `--set train.run_id=$SLURM_JOB_ID` outside SLURM: not a new run each time
        load_config(config, ["train.run_id="])
    for bad in ("a/b", "..", ".hidden", "--help", "my run"):
        with pytest.raises(ZooError, match="train.run_id: .*starting with a letter, a digit or '_'"):
            load_config(config, [f"train.run_id={bad}"])


def _begun(parent: Path, name: str, attempt: Attempt, *files: str) -> Path:
    run = parent / name
    (run / "checkpoints").mkdir(parents=True)
    write_launch(run, None, attempt)
    for file in files:
        (run / file).write_bytes(b"x")
    return run


def test_a_torchrun_restart_finds_the_run_its_first_attempt_began_and_no_other(tmp_path):
    first = Attempt("none", 0, 3, "node-a", 100)
    restart = Attempt("none", 1, 3, "node-a", 100)
    other_agent = Attempt("none", 0, 3, "node-a", 200)
    _begun(tmp_path, "20261203-100000", other_agent, "checkpoints/last.pt")
    assert find_run(tmp_path, None, restart) == ("new", None)  # another torchrun's run, though the id is "none" too
    assert find_run(tmp_path, None, first) == ("new", None)  # attempt 0 always starts a new run

    mine = _begun(tmp_path, "20261203-100500", first, "checkpoints/last.pt")
    assert find_run(tmp_path, None, restart) == ("continue", mine)
    (mine / "metrics.json").write_text("{}")
    assert find_run(tmp_path, None, restart) == ("finished", mine)

    named = Attempt("job-9", 2, 3, "node-b", 300)  # a rendezvous id: any host, any agent
    run = _begun(tmp_path, "20261203-101000", Attempt("job-9", 0, 3, "node-a", 100))
    assert find_run(tmp_path, None, named) == ("again", run)  # begun, never saved
    assert named.job == "torchrun:job-9" and restart.job is None


def test_the_launchers_facts_come_from_the_environment(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS", "SLURM_JOB_ID",
                 "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    alone = Attempt.current()
    assert alone.torchrun_id is None and not alone.restarted and alone.job is None
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "3")
    monkeypatch.setenv("SLURM_JOB_ID", "812")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "800")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    attempt = Attempt.current()
    assert attempt.restarted and attempt.describe() == "torchrun restart 2 of 3"
    assert attempt.agent_pid == os.getppid() and attempt.job == "slurm:800_12"  # a requeue keeps the job id


def test_an_earlier_attempts_lock_is_taken_over_even_from_another_host_and_no_one_elses(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(f"{os.getpid() + 1} elsewhere torchrun:job-9\n")  # alive or not, it cannot be checked from here
    with pytest.raises(ZooError, match="in use by process .* on elsewhere; .* if that run is gone \\(another host's"):
        RunLock(tmp_path, "torchrun:job-8").acquire()
    with pytest.raises(ZooError, match="in use by"):
        RunLock(tmp_path).acquire()
    taken = RunLock(tmp_path, "torchrun:job-9").acquire()
    assert lock.read_text() == f"{os.getpid()} {socket.gethostname()} torchrun:job-9\n" and taken.stale_pid is not None
    taken.release()
    assert not lock.exists()


def test_a_run_killed_between_last_pt_and_best_pt_publishes_best_pt_again_before_its_test(tmp_path, monkeypatch):
    """An epoch's save writes last.pt, then best.pt; killed between the two, best.pt is the earlier best while
    last.pt names this epoch as the best: the continued run must test this epoch's weights, as the whole run does."""
    whole = train(digits_config(tmp_path / "whole", *JOB), quiet=True)
    assert whole.metrics["best_epoch"] == 2  # epoch 2 improves: its save publishes best.pt

    import zoo.training.hooks as hooks

    real, calls = hooks.publish_copy, {"n": 0}

    class Killed(BaseException):
        pass

    def killed_at_the_second(source, target):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed  # as kill -9 between the two writes
        real(source, target)

    monkeypatch.setattr(hooks, "publish_copy", killed_at_the_second)
    with pytest.raises(Killed):
        train(digits_config(tmp_path / "cut", *JOB), quiet=True)
    monkeypatch.undo()
    run = tmp_path / "cut" / "lenet5_digits" / "job-1"
    last, best = (load_checkpoint(run / "checkpoints" / name) for name in ("last.pt", "best.pt"))
    assert last["progress"]["best_epoch"] == 2 and best["epoch"] == 1  # the window the kill left

    again = train(digits_config(tmp_path / "cut", *JOB), quiet=True)  # epochs done: it goes on to the test alone
    assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == 2
    assert (metric_figures(again.metrics["test"]) == metric_figures(whole.metrics["test"])
            and again.metrics["best_epoch"] == 2)


def test_a_new_run_beside_a_stopped_one_of_the_same_name_says_how_to_continue_that_one(tmp_path, capsys):
    plain = ["train.run_id=null", "train.epochs=1"]
    first = train(digits_config(tmp_path, *JOB, *plain), quiet=True)
    (first.run_dir / "metrics.json").unlink()  # stopped before its end (killed during its test, say)
    (first.run_dir / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # held by a live process
    capsys.readouterr()
    train(digits_config(tmp_path, *JOB, *plain), quiet=True)
    assert "stopped before its end" not in capsys.readouterr().err  # a run still going is not named

    (first.run_dir / ".lock").unlink()
    second = train(digits_config(tmp_path, *JOB, *plain), quiet=True)
    err = capsys.readouterr().err
    assert (f"note: {first.run_dir} stopped before its end (no metrics.json); this is a new run; to continue that one "
            f"instead, stop this and run zoo train --resume {first.run_dir} (with train.run_id set") in err
    assert second.run_dir != first.run_dir and len(list(tmp_path.glob("*/*"))) == 3


@pytest.mark.parametrize("saved", [False, True], ids=["before its first checkpoint", "after it"])
def test_a_second_start_of_a_live_run_is_refused_and_touches_nothing(tmp_path, saved):
    # ../shared/cases/turn3/r01: the second start of one train.run_id took the live run for an earlier attempt
    # and removed its directory (its lock, launch.json, even a last.pt saved a moment before).
    import subprocess
    import sys

    folder = tmp_path / "lenet5_digits" / "job-1"
    folder.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (folder / ".lock").write_text(f"{live.pid} {socket.gethostname()}\n")
        write_launch(folder, "job-1", Attempt())
        (folder / "history.csv").write_text("epoch\n")
        if saved:
            (folder / "checkpoints").mkdir()
            (folder / "checkpoints" / "last.pt").write_bytes(b"the live run's")
        before = _files(folder)
        with pytest.raises(ZooError, match=rf"job-1 is in use by process {live.pid} on {socket.gethostname()}; wait "
                                           r"for it to finish, or stop it \(a run that has ended leaves its lock"):
            train(digits_config(tmp_path, *JOB), quiet=True)
        assert _files(folder) == before and (folder / ".lock").read_text().startswith(f"{live.pid} ")
        assert find_run(folder.parent, "job-1", Attempt()) == ("busy", folder)
    finally:
        live.kill()
        live.wait()
    assert find_run(folder.parent, "job-1", Attempt())[0] == ("continue" if saved else "again")


@pytest.mark.parametrize("left", [[".lock"], [".lock", ".launch.json.mce93jza.tmp"]])
def test_a_start_killed_between_its_lock_and_launch_json_is_started_again(tmp_path, left):
    # ../shared/cases/turn3/r04: such a folder was refused for good ("exists and is not a run zoo began").
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    folder = tmp_path / "lenet5_digits" / "job-1"
    folder.mkdir(parents=True)
    for name in left:
        (folder / name).write_text(f"{dead} {socket.gethostname()}\n" if name == ".lock" else "{\"run_id\"")
    assert find_run(folder.parent, "job-1", Attempt()) == ("again", folder)
    done = train(digits_config(tmp_path, *JOB, "train.epochs=1"), quiet=True)
    assert done.run_dir == folder and (folder / "metrics.json").is_file() and not (folder / ".lock").exists()
    assert sorted(path.name for path in folder.iterdir() if path.name.startswith(".")) == []
    (folder / "notes.txt").write_text("mine")  # anything else: not zoo's
    (folder / "metrics.json").unlink()
    assert find_run(folder.parent, "job-1", Attempt())[0] == "continue"


def test_a_start_that_finds_its_directory_taken_leaves_it_to_its_holder(tmp_path, monkeypatch):
    # The race find_run cannot see: another start makes and locks the directory between this start's look and its
    # own lock. The loser stops in one line and removes nothing (only a lock's holder may).
    import subprocess
    import sys

    import zoo.training.directory as directory

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    made = directory.create_run_dir

    def taken(output_dir, run_name, run_id=None):
        path = made(output_dir, run_name, run_id)
        (path / ".lock").write_text(f"{live.pid} {socket.gethostname()}\n")
        return path

    monkeypatch.setattr(directory, "create_run_dir", taken)
    try:
        with pytest.raises(ZooError, match=rf"is in use by process {live.pid}"):
            train(digits_config(tmp_path, *JOB), quiet=True)
        assert (tmp_path / "lenet5_digits" / "job-1" / ".lock").read_text().startswith(f"{live.pid} ")
    finally:
        live.kill()
        live.wait()


def test_a_run_directory_removed_mid_run_stops_the_run_in_one_line_and_is_not_made_again(tmp_path, monkeypatch):
    # ../shared/cases/turn3/r11: the TensorBoard event writer's traceback; a later save would have made the folder anew.
    import shutil

    from zoo.training.hooks import Checkpointer

    save = Checkpointer.save

    def save_then_remove(self, epoch, batch, step, meter, best=False):
        save(self, epoch, batch, step, meter, best)
        if epoch == 1 and batch == 0:
            shutil.rmtree(self.folder.parent)

    monkeypatch.setattr(Checkpointer, "save", save_then_remove)
    with pytest.raises(RunStopped, match=r"job-1 was removed while the run trained .*stopped") as stopped:
        train(digits_config(tmp_path, *JOB, "train.checkpoint_every_steps=null"), quiet=True)
    assert stopped.value.exit_code == 1 and not (tmp_path / "lenet5_digits" / "job-1").exists()


def test_a_disk_that_fills_after_the_last_checkpoint_says_how_to_finish_the_run(tmp_path, monkeypatch):
    # ../shared/cases/turn3/r08: test_scores.npz's write on a full disk was a traceback.
    import zoo.evaluation.scores as scores

    def full(run_dir, *args):
        scores.atomic_write(run_dir / scores.FILE, b"x" * 10, check=lambda path: (_ for _ in ()).throw(
            OSError(28, "No space left on device")))

    monkeypatch.setattr(scores, "write_scores", full)
    with pytest.raises(ZooError, match=r"cannot write \S+test_scores.npz \(No space left on device\); the checkpoints "
                                       r"are saved: free some space, then zoo train --resume \S+job-1 tests best.pt"):
        train(digits_config(tmp_path, *JOB, "train.epochs=1"), quiet=True)
    folder = tmp_path / "lenet5_digits" / "job-1"
    assert (folder / "checkpoints" / "last.pt").is_file() and not (folder / "metrics.json").exists()
    monkeypatch.undo()
    assert train(digits_config(tmp_path, *JOB, "train.epochs=1"), quiet=True).run_dir == folder
    assert (folder / "metrics.json").is_file() and (folder / "test_scores.npz").is_file()
