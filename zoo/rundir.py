"""Run directories and the files in them: runs/<run-name>/<time>/ created once and never reused, one writer at a
time (a lock file), and files written atomically (a crash mid-write never leaves a half-written file).

No torch here: zoo.checkpoint turns a checkpoint into bytes and hands them to `atomic_write`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import RunStopped, ZooError

LOCK_NAME = ".lock"
UNREADABLE_LOCK_S = 5.0  # writing a lock file's one line takes microseconds; 5 s is a killed writer's


# ---- the directory -----------------------------------------------------------------------------------

def create_run_dir(output_dir: Path, run_name: str, run_id: str | None = None) -> Path:
    """A new, empty directory: output_dir/run_name/run_id, or for no run_id one named by the time, where a second
    run in the same second gets a -1, -2 ... suffix, never the same one."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = Path(output_dir) / run_name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise ZooError(f"cannot create {parent}: {blocking} is a file, not a folder; set train.output_dir to a "
                           "folder, or move the file") from None
        raise ZooError(f"cannot create {parent} ({error.strerror}); "
                       "set train.output_dir to a writable folder") from None
    if run_id is not None:
        try:
            (parent / run_id).mkdir()
        except FileExistsError:
            raise ZooError(f"{parent / run_id} appeared while this run started (another run with train.run_id "
                           f"{run_id}?); wait for it, or choose another train.run_id") from None
        return parent / run_id
    for suffix in ["", *(f"-{i}" for i in range(1, 1000))]:
        candidate = parent / f"{stamp}{suffix}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ZooError(f"{parent} already holds 1,000 runs from {stamp}; choose another train.run_name")


def check_present(run_dir: Path) -> None:
    """Raise RunStopped (exit code 1) when `run_dir` is gone: removed while its run went on (a clean-up script,
    rm -rf) or its disk unmounted. Nothing is written again: a write would make a half run directory anew."""
    if not Path(run_dir).is_dir():
        raise RunStopped(f"{run_dir} was removed while the run trained (or its disk went away); stopped, as nothing "
                         "can be saved there any more; start the run again, or restore the folder and continue with "
                         f"zoo train --resume {run_dir}", 1)


def missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first: the folders creating it makes."""
    missing = []
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def discard_run_dir(run_dir: Path, made: list[Path]) -> None:
    """Remove a new run's directory, and the folders made for it (missing_folders) where they are empty now:
    a run that fails before its first checkpoint leaves nothing half-made behind."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # not empty: another run's, or the user's
            break


# ---- one writer --------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_live(pid: int, host: str | None) -> bool:
    """Whether a lock's owner (or a sweep's trial) may still run: a process on another host counts as live (it
    cannot be checked)."""
    return host != socket.gethostname() or _alive(pid)


class RunLock:
    """A lock file holding the owner's PID, host and launcher job. A lock whose process is gone (a killed run) is
    stale and taken over, and so is one of an earlier attempt of the same launcher job (`job`, zoo.training.restarts:
    torchrun restarts and a scheduler requeues only once the earlier attempt is gone, maybe on another host);
    a live one stops the second run with one line."""

    def __init__(self, run_dir: Path, job: str | None = None) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.job = job.replace(" ", "_") if job else None
        self.stale_pid: int | None = None  # set when a dead owner's lock was taken over

    def acquire(self) -> RunLock:
        """Take the lock, or raise ZooError: one line naming its live owner (see `blocker`), or the cause of a
        lock file that cannot be written (a full or read-only disk)."""
        me = f"{os.getpid()} {socket.gethostname()}{f' {self.job}' if self.job else ''}\n"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if (owner := self.blocker()) is not None:
                    raise self.in_use(*owner) from None
                self.stale_pid = self._owner()[0]
                try:
                    self.path.unlink(missing_ok=True)
                except OSError as error:
                    raise ZooError(f"cannot remove the stale lock {self.path} ({error.strerror}); remove it "
                                   "yourself, or set train.output_dir to a writable folder") from None
                continue
            except OSError as error:
                raise _cannot_write(self.path, error, "free some space, or set train.output_dir to a writable "
                                                      "folder") from None
            try:
                with os.fdopen(fd, "w") as file:
                    file.write(me)
            except OSError as error:  # a full disk: no lock file with no owner in it left behind
                self.path.unlink(missing_ok=True)
                raise _cannot_write(self.path, error, "free some space, or set train.output_dir to a writable "
                                                      "folder") from None
            return self
        raise ZooError(f"could not lock {self.path.parent}; remove {self.path} and try again")

    def blocker(self) -> tuple[int | None, str | None] | None:
        """(PID, host) of the live process that holds the lock and that this one may not take it from, else None.
        The one rule for every start: a lock whose process is gone is stale, and so is one of an earlier attempt of
        this launcher job. A lock file without an owner in it is being written this moment, or was left by a process
        killed between creating and writing it: stale once it is older than a write takes (UNREADABLE_LOCK_S)."""
        pid, host, job = self._owner()
        if pid is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return None
            return None if age > UNREADABLE_LOCK_S else (None, None)
        earlier_attempt = self.job is not None and job == self.job and pid != os.getpid()
        return None if earlier_attempt or not is_live(pid, host) else (pid, host)

    def in_use(self, pid: int | None, host: str | None) -> ZooError:
        """The one line for a lock held by a live process (`blocker`). On this host the process is checked, so a
        run that has ended leaves its lock to the next start; on another it cannot be, so the fix names the file."""
        holder = f"process {pid} on {host}" if pid is not None else "another run"
        fix = (f"wait for it to finish, or remove {self.path} if that run is gone (another host's process cannot "
               "be checked from here)" if host not in (None, socket.gethostname())
               else "wait for it to finish, or stop it (a run that has ended leaves its lock to the next start)")
        return ZooError(f"{self.path.parent} is in use by {holder}; {fix}")

    def _owner(self) -> tuple[int | None, str | None, str | None]:
        try:
            pid, host, *job = self.path.read_text().split()
            return int(pid), host, job[0] if job else None
        except (OSError, ValueError):
            return None, None, None

    def held(self) -> bool:
        """Whether a live process holds the lock."""
        pid, host, _ = self._owner()
        return pid is not None and is_live(pid, host)

    def release(self) -> None:
        if self._owner()[0] == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---- atomic files ------------------------------------------------------------------------------------

WRITABLE = "free some space, or choose a writable folder"  # atomic_write's fix, where the caller names none


def atomic_write(path: Path, data: bytes, check: Callable[[Path], None] | None = None, fix: str = WRITABLE) -> None:
    """Write to a temporary file in the same directory, fsync, rename over `path`, fsync the directory. `check`,
    when given, reads the temporary file first: whatever it raises leaves `path` as it was, and no file behind.

    Every file zoo writes goes through here. Raises WriteError "cannot write PATH (cause); `fix`" for an OSError
    (a full or read-only disk, a folder that is a file or was removed, no permission), with `path` as it was."""
    try:
        _write_replace(Path(path), data, check)
    except OSError as error:
        raise _cannot_write(path, error, fix) from None


class WriteError(ZooError):
    """"cannot write PATH (cause); fix": the one line for a file that could not be written."""

    def __init__(self, path: Path, cause: str, fix: str = WRITABLE) -> None:
        super().__init__(f"cannot write {path} ({cause}); {fix}")
        self.path, self.cause = path, cause

    def with_fix(self, fix: str) -> WriteError:
        """The same failure with the fix the caller knows better (a run's: how to finish it)."""
        return WriteError(self.path, self.cause, fix)


def _cannot_write(path: Path, error: OSError, fix: str) -> WriteError:
    return WriteError(path, error.strerror or str(error), fix)


def _write_replace(path: Path, data: bytes, check: Callable[[Path], None] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; the file is the user's, readable as open() makes it
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def json_text(data: Any) -> str:
    """Strict JSON: a NaN or infinite figure (a diverged run's loss) is null, which every JSON reader takes;
    Python's json would write the bare NaN that JavaScript's JSON.parse refuses."""
    return json.dumps(_finite(data), indent=2, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula (OWASP)


def csv_text(headers: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV text (Python's csv dialect, newline-terminated lines), headers first. A text cell that a
    spreadsheet would run as a formula (a class folder named `=HYPERLINK(...)`) gets a leading apostrophe, as
    OWASP's "CSV Injection" advice says; numbers, negative ones too, are written as they are."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_inert(cell) for cell in headers])
    writer.writerows([_inert(cell) for cell in row] for row in rows)
    return out.getvalue()


def _inert(cell: Any) -> Any:
    # a lone "-" (zoo's empty cell) is text to a spreadsheet, not a formula
    return f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) and cell != "-" else cell


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, (json_text(data) + "\n").encode())


def publish_copy(source: Path, target: Path, fix: str = WRITABLE) -> None:
    """Make `target` hold what `source` holds now, atomically: a hard link when the file system allows
    (no second write of a large checkpoint; replacing `source` later leaves `target` alone), else a copy.
    Raises ZooError as atomic_write does."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
    except OSError:
        try:
            data = source.read_bytes()
        except OSError as error:
            raise ZooError(f"cannot read {source} ({error.strerror or error}); {fix}") from None
        atomic_write(target, data, fix=fix)
        return
    try:
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(target, error, fix) from None


def is_temporary(path: Path) -> bool:
    """Whether `path` is a temporary file of atomic_write's or publish_copy's (.<name>.*.tmp)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Temporary files a killed write left behind (atomic_write's and publish_copy's .<name>.*.tmp)."""
    stale = sorted(p for p in Path(directory).iterdir() if is_temporary(p)) if Path(directory).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
