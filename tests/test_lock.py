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
