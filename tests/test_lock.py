"""zoo.rundir: the run directory's lock (one writer; a dead owner's lock taken over) and strict JSON files."""

import os
import subprocess
import sys

import pytest

from zoo.errors import ZooError
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
