"""One writer per run directory: a lock file holding the owner's PID and host. A lock whose process is
gone (a killed run) is stale and taken over; a live one stops the second run with one line."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from zoo.errors import ZooError

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.stale_pid: int | None = None  # set when a dead owner's lock was taken over

    def acquire(self) -> RunLock:
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, host = self._owner()
                if pid is not None and host == socket.gethostname() and not _alive(pid):
                    self.stale_pid = pid
                    self.path.unlink(missing_ok=True)
                    continue
                holder = f"process {pid} on {host}" if pid is not None else "another run"
                raise ZooError(f"{self.path.parent} is in use by {holder}; wait for it to finish, or remove "
                               f"{self.path} if that run is gone") from None
            with os.fdopen(fd, "w") as file:
                file.write(me)
            return self
        raise ZooError(f"could not lock {self.path.parent}; remove {self.path} and try again")

    def _owner(self) -> tuple[int | None, str | None]:
        try:
            pid, host = self.path.read_text().split()
            return int(pid), host
        except (OSError, ValueError):
            return None, None

    def release(self) -> None:
        if self._owner()[0] == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
