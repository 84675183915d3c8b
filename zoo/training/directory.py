"""The run directory's life, from the run's first write to its last, as one context manager.

    with RunDirectory(config, job, plan, attempt, stale) as directory:    # every rank: the same directory.path
        for note in directory.notes(): ...                                 # a stopped run of the same name
        ... the run ...

Entering, rank 0 locks the directory an earlier attempt began and never saved in (`stale`) and empties it (or,
for a torchrun restart without train.run_id, removes it), or creates the run's directory (runs/<run_name>/<time>,
or <run_id>; a resumed run's is its own) and locks it (zoo.rundir.RunLock: one writer; nothing is removed without
its lock), and writes launch.json where a restart must find the run (zoo.training.restarts); every rank gets the
path. Leaving, the lock goes; a new run that failed before its first checkpoint is removed with the folders made
for it, by the lock's holder only (a stopped run keeps its directory: its message names the checkpoint); a
collective that failed because another process of the run is gone becomes one line (RunStopped) saying how to
continue.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType

from zoo.config import Config
from zoo.distributed import Job, first_line
from zoo.errors import RunStopped, ZooError
from zoo.present.console import say
from zoo.rundir import RunLock, create_run_dir, discard_run_dir, missing_folders
from zoo.training.hooks import resume_command
from zoo.training.restarts import Attempt, stopped_runs, write_launch
from zoo.training.resume import ResumePlan


class RunDirectory:
    """See the module docstring. `plan`: a resumed run's (its directory is kept whatever happens); `attempt`: this
    process's launch (zoo.training.restarts); `stale`: a directory an earlier attempt began and never saved in."""

    def __init__(self, config: Config, job: Job, plan: ResumePlan | None, attempt: Attempt,
                 stale: Path | None = None) -> None:
        self.config, self.job, self.plan, self.attempt, self.stale = config, job, plan, attempt, stale
        self.fresh = job.is_main and plan is None  # a new run's directory goes again if it fails before its first save
        self.path: Path | None = None
        self.made: list[Path] = []  # the folders creating the directory made
        self.lock: RunLock | None = None
        self.created = False  # rank 0 made the directory this moment

    def __enter__(self) -> RunDirectory:
        config, job = self.config, self.job
        parent = config.train.output_dir / config.run_name
        self.made = missing_folders(parent) if self.fresh else []
        path = self._take_over(self.stale) if job.is_main and self.stale is not None else None
        if job.is_main and path is None and self.plan is not None:
            path = self.plan.run_dir
        elif job.is_main and path is None:
            path = create_run_dir(config.train.output_dir, config.run_name, config.train.run_id)
            self.created = True
        self.path = job.share(path)
        try:
            if job.is_main:
                if self.lock is None:
                    self.lock = RunLock(self.path, self.attempt.job).acquire()
                if config.train.run_id is not None or self.attempt.torchrun_id is not None:
                    write_launch(self.path, config.train.run_id, self.attempt)  # what the next attempt finds the run by
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _take_over(self, stale: Path) -> Path | None:
        """The directory an earlier attempt began and never saved in: locked first (one writer: a start beside a
        live one stops at its lock, and never removes what another process holds), then emptied for train.run_id's
        run, or removed for a torchrun restart's, which gets a new time-stamped directory (None)."""
        lock = RunLock(stale, self.attempt.job).acquire()
        if (stale / "checkpoints" / "last.pt").exists() or (stale / "metrics.json").exists():
            lock.release()  # another start of this run saved in it since find_run looked
            raise ZooError(f"{stale} changed while this run started (another start of the same run saved in it); "
                           "run the same command again to continue it")
        # only what a run writes before its first save (config, logs) is lost
        say(f"{stale}: the earlier attempt stopped before its first checkpoint; starting the run again")
        if self.config.train.run_id is None:
            shutil.rmtree(stale)  # the lock with it
            return None
        for entry in stale.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry != lock.path:
                entry.unlink()
        self.lock = lock
        return stale

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        held, self.lock = self.lock, None
        # only the lock's holder may remove the directory, or its maker while no one has written in it (a lock
        # that could not be written on a full disk)
        if error is not None and (held is not None or self.created and not any(self.path.iterdir())):
            saved = (self.path / "checkpoints" / "last.pt").is_file()
            if self.fresh and not isinstance(error, RunStopped) and not saved:
                discard_run_dir(self.path, self.made)  # its lock with it
        if held is not None:
            held.release()
        if error is not None and self.job.distributed and peer_lost(error):
            raise self.lost(error) from None

    def notes(self) -> list[str]:
        """A new run beside one of the same name that stopped before its end (killed, preempted, torchrun's restarts
        used up): the same command started this one afresh; say how to continue that one instead. Not for a run
        named by train.run_id: each such run is its own command's (zoo sweep's trials: the sweep continues them)."""
        if not self.fresh or self.config.train.run_id:
            return []
        stopped = stopped_runs(self.config.train.output_dir / self.config.run_name, self.path)
        if not stopped:
            return []
        return [f"note: {stopped[0]} stopped before its end (no metrics.json); this is a new run; to continue that one "
                f"instead, stop this and run {resume_command(stopped[0], self.job)} (with train.run_id set, the same "
                "command continues its run)"]

    def lost(self, error: BaseException) -> RunStopped:
        """The one line a rank ends with when another process of the run is gone: last.pt (written only when every
        rank took part in the save) holds the run up to its last save."""
        last = self.path / "checkpoints" / "last.pt"
        saved = f"{last} is intact as last saved" if last.is_file() else "no checkpoint was saved yet"
        return RunStopped(f"lost another process of the run ({first_line(error)}): a worker or node stopped; {saved}; "
                          f"continue with {resume_command(self.path, self.job, self.config.train.run_id)}", 1,
                          every_rank=True)


def peer_lost(error: BaseException) -> bool:
    """Whether a collective failed because another process of the run is gone (killed, its node lost): torch's
    DistError (NCCL's errors, the store's), or gloo's RuntimeError from its transport."""
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, dist.DistError) or isinstance(error, RuntimeError) and (
        "gloo/transport" in text or "Connection reset by peer" in text or "Connection closed by peer" in text)
