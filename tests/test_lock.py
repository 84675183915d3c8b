"""zoo.rundir: the run directory's lock (one writer; a dead owner's lock taken over) and strict JSON files."""

import os
import subprocess
import sys

import pytest
import torch

from zoo.errors import RunStopped, ZooError
from zoo.rundir import RunLock


def test_a_second_writer_is_refused_and_the_lock_is_released(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
        with pytest.raises(ZooError, match=rf"{tmp_path} is in use by process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()


def test_a_dead_owners_lock_is_stale_and_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # that process has exited
    import socket

    (tmp_path / ".lock").write_text(f"{pid} {socket.gethostname()}\n")
    lock = RunLock(tmp_path).acquire()
    assert lock.stale_pid == pid and (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    lock.release()


def test_json_files_stay_strict_json_when_a_figure_is_not_finite(tmp_path):
    # A diverged run's NaN validation loss: Python's json writes a bare NaN, which JSON.parse refuses.
    import json

    from zoo.rundir import write_json

    write_json(tmp_path / "metrics.json",
               {"val": {"loss": float("nan"), "accuracy": 0.1}, "curve": [1.0, float("inf")]})
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda name: pytest.fail(name)) == {"val": {"loss": None, "accuracy": 0.1},
                                                                              "curve": [1.0, None]}


def test_a_lock_file_a_kill_left_empty_is_stale_after_a_few_seconds_and_fresh_one_is_held(tmp_path):
    # A process killed between creating .lock and writing its line leaves an empty file: held while a write could
    # still be under way, stale after UNREADABLE_LOCK_S (else every later start is refused for good).
    from zoo.rundir import UNREADABLE_LOCK_S

    lock = tmp_path / ".lock"
    lock.write_text("")
    with pytest.raises(ZooError, match="is in use by another run"):
        RunLock(tmp_path).acquire()
    old = lock.stat().st_mtime - UNREADABLE_LOCK_S - 1
    os.utime(lock, (old, old))
    taken = RunLock(tmp_path).acquire()
    assert lock.read_text().split()[0] == str(os.getpid())
    taken.release()


def test_a_lock_that_cannot_be_written_is_one_line_and_leaves_no_lock(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class Full:  # the lock's file on a full disk: created, then its one line does not fit
        def __init__(self, fd, *args):
            self.file = real_fdopen(fd, *args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, text):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", Full)
    with pytest.raises(ZooError, match=r"cannot write \S+\.lock \(No space left on device\); free some space"):
        RunLock(tmp_path).acquire()
    monkeypatch.undo()
    assert not (tmp_path / ".lock").exists()


def test_every_write_is_one_line_naming_the_file_and_leaves_it_as_it_was(tmp_path, monkeypatch):
    from zoo.rundir import WriteError, atomic_write, publish_copy

    target = tmp_path / "metrics.json"
    target.write_text("before")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match=rf"^cannot write {target} \(No space left on device\); free some space"):
        atomic_write(target, b"after")
    with pytest.raises(WriteError, match=r"; give --output a file in a writable folder$"):
        atomic_write(target, b"after", fix="give --output a file in a writable folder")
    monkeypatch.undo()
    assert target.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    (tmp_path / "folder").write_text("a file where a folder should be")
    with pytest.raises(WriteError, match=r"cannot write \S+folder/x.png \((File exists|Not a directory)\)"):
        atomic_write(tmp_path / "folder" / "x.png", b"png")
    with pytest.raises(ZooError, match=r"cannot read \S+missing.pt"):
        publish_copy(tmp_path / "missing.pt", tmp_path / "best.pt")
    assert WriteError(target, "Read-only file system").with_fix("keep it elsewhere").args[0] == (
        f"cannot write {target} (Read-only file system); keep it elsewhere")


def test_history_csv_is_written_whole_and_a_full_disk_keeps_the_rows_it_had(tmp_path, monkeypatch):
    from zoo.loop import EpochResult
    from zoo.metrics import Metrics
    from zoo.rundir import WriteError
    from zoo.training.history import History

    def result(loss: float) -> EpochResult:
        return EpochResult(Metrics(8, loss, 0.875, None, torch.tensor([[3, 1], [0, 4]])), 0.5, 8, 2)

    history = History(tmp_path / "history.csv", False, ["lr"])
    history.write(1, result(1.0), result(0.9), None, {"lr": 0.1})
    before = (tmp_path / "history.csv").read_text()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(WriteError, match=r"history.csv \(No space left on device\)"):
        history.write(2, result(0.8), result(0.7), None, {"lr": 0.1})
    monkeypatch.undo()
    assert (tmp_path / "history.csv").read_text() == before and before.count("\n") == 2
    import shutil

    shutil.rmtree(tmp_path)
    with pytest.raises(RunStopped, match="was removed while the run trained"):
        history.write(2, result(0.8), result(0.7), None, {"lr": 0.1})
    assert not tmp_path.exists()  # not made again by the write


def test_csv_cells_a_spreadsheet_would_run_are_made_inert_and_numbers_kept(tmp_path):
    # ../shared/cases/turn3/r07: class folders named =HYPERLINK(...) went into predict's and the confusion CSVs as-is.
    import csv
    import io

    from zoo.rundir import csv_text

    cells = ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "cat", "top-1", -0.5, 3, "-"]  # "-": zoo's empty cell
    text = csv_text(["class", "=header"], [cells])
    header, row = list(csv.reader(io.StringIO(text)))
    assert header == ["class", "'=header"]
    assert row == ["'=1+2", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "cat", "top-1", "-0.5", "3", "-"]
