"""Restarts by a launcher: under `torchrun --max-restarts`, a scheduler's requeue or a job restarted by hand, the
same command line continues the run it began instead of starting a new one.

    attempt = Attempt.current()                      # torchrun's facts and the scheduler's, from the environment
    found = find_run(parent, run_id, attempt)         # (what to do, the run directory)
    write_launch(run_dir, run_id, attempt)            # a new run's launch.json, read by the next attempt
    stopped_runs(parent, run_dir)                     # runs of the same name that stopped before their end

Which run a restart continues, on the launcher's own facts (torchrun sets them in every worker:
torch.distributed.elastic.agent.server.local_elastic_agent):
- `train.run_id` names the run directory (runs/<run_name>/<run_id> instead of the start time): the same id
  continues the same run, however it was started again (sbatch --requeue, a second torchrun, by hand).
- Without it, a worker of torchrun's restart n > 0 (TORCHELASTIC_RESTART_COUNT) continues the newest run whose
  launch.json its attempt 0 wrote: the same TORCHELASTIC_RUN_ID (--rdzv-id; torchrun's default, "none", also
  needs the same host and torchrun agent, the worker's parent process, which outlives its restarts).

No torch here.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zoo.rundir import LOCK_NAME, RunLock, atomic_write, is_temporary, json_text

LAUNCH_NAME = "launch.json"
Action = Literal["new", "continue", "again", "finished", "foreign", "busy"]


@dataclass(frozen=True)
class Attempt:
    """This process's launch: which torchrun job and which of its attempts, on which host."""

    torchrun_id: str | None = None  # TORCHELASTIC_RUN_ID; None when not started by torchrun
    restart: int = 0  # TORCHELASTIC_RESTART_COUNT: 0 on the first attempt, n after the nth restart
    max_restarts: int = 0  # TORCHELASTIC_MAX_RESTARTS (--max-restarts)
    host: str = ""
    agent_pid: int = 0  # torchrun's agent, this worker's parent: the same process through its restarts
    scheduler_job: str | None = None  # SLURM's job id (and array task), the same across requeues

    @classmethod
    def current(cls) -> Attempt:
        env = os.environ
        slurm = env.get("SLURM_JOB_ID")
        if slurm and env.get("SLURM_ARRAY_TASK_ID"):
            slurm = f"{env.get('SLURM_ARRAY_JOB_ID', slurm)}_{env['SLURM_ARRAY_TASK_ID']}"
        return cls(env.get("TORCHELASTIC_RUN_ID"), int(env.get("TORCHELASTIC_RESTART_COUNT", 0)),
                   int(env.get("TORCHELASTIC_MAX_RESTARTS", 0)), socket.gethostname(), os.getppid(), slurm)

    @property
    def restarted(self) -> bool:
        return self.torchrun_id is not None and self.restart > 0

    @property
    def job(self) -> str | None:
        """What names this job through all its attempts, on any host (the lock's owner, zoo.rundir.RunLock):
        torchrun's rendezvous id when one was given, else the scheduler's job id, else None."""
        if self.torchrun_id not in (None, "", "none"):
            return f"torchrun:{self.torchrun_id}"
        return f"slurm:{self.scheduler_job}" if self.scheduler_job else None

    def describe(self) -> str:
        """'torchrun restart 1 of 3', for the line a continued run starts with."""
        return f"torchrun restart {self.restart} of {self.max_restarts}"

    def began(self, record: dict) -> bool:
        """Whether a run's launch.json was written by an earlier attempt of this torchrun launch."""
        if self.torchrun_id is None or record.get("torchrun_id") != self.torchrun_id:
            return False
        if self.torchrun_id != "none":
            return True
        return record.get("host") == self.host and record.get("agent_pid") == self.agent_pid


def read_launch(run_dir: Path) -> dict | None:
    try:
        record = json.loads((Path(run_dir) / LAUNCH_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_launch(run_dir: Path, run_id: str | None, attempt: Attempt) -> None:
    """launch.json in a new run: train.run_id and torchrun's facts, so a restart finds the run; each attempt
    that continues it adds itself to `attempts`."""
    torchrun = attempt.torchrun_id is not None
    record = read_launch(run_dir) or {"run_id": run_id, "torchrun_id": attempt.torchrun_id, "host": attempt.host,
                                      "agent_pid": attempt.agent_pid if torchrun else None,
                                      "scheduler_job": attempt.scheduler_job, "attempts": []}
    record["attempts"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": attempt.host,
                               "torchrun_restart": attempt.restart if torchrun else None})
    atomic_write(Path(run_dir) / LAUNCH_NAME, (json_text(record) + "\n").encode())


def find_run(parent: Path, run_id: str | None, attempt: Attempt) -> tuple[Action, Path | None]:
    """What this start does, and in which directory under `parent` (runs/<run_name>):
    new        a new run (in parent/run_id, when given; else in a new time-stamped directory)
    busy       a live process holds the run's lock (zoo.rundir.RunLock.blocker): another start of the same run
    continue   the run there has a checkpoints/last.pt and no metrics.json: go on from it
    again      an earlier attempt made the directory (launch.json, or only its lock: begun_only) and stopped before
               its first save: start again
    finished   the run there wrote metrics.json
    foreign    parent/run_id exists and is not a run zoo began: refuse
    """
    if run_id is not None:
        target = Path(parent) / run_id
        if not target.exists():
            return "new", target
    elif attempt.restarted:
        target = _newest_begun(Path(parent), attempt)
        if target is None:
            return "new", None
    else:
        return "new", None
    if target.is_dir() and RunLock(target, attempt.job).blocker() is not None:
        return "busy", target
    if (target / "metrics.json").is_file():
        return "finished", target
    if (target / "checkpoints" / "last.pt").is_file():
        return "continue", target
    if read_launch(target) is not None or begun_only(target):
        return "again", target
    return "foreign", target


def begun_only(run_dir: Path) -> bool:
    """Whether `run_dir` is a folder holding nothing but what a start writes before launch.json: a lock (its owner
    gone, or it would be "busy") and the temporary files of a write a kill cut short. A start killed there (a
    launcher's SIGKILL) is started again, not refused as a folder zoo did not make."""
    return run_dir.is_dir() and all(path.name == LOCK_NAME or is_temporary(path) for path in run_dir.iterdir())


def stopped_runs(parent: Path, beside: Path) -> list[Path]:
    """The runs under `parent` (runs/<run_name>) other than `beside` that stopped before their end (a last.pt, no
    metrics.json) and that no live process holds: what a new run of the same command may have been meant to
    continue. Newest first."""
    if not Path(parent).is_dir():
        return []
    stopped = [run for run in Path(parent).iterdir() if run != beside and (run / "checkpoints" / "last.pt").is_file()
               and not (run / "metrics.json").exists() and not RunLock(run).held()]
    return sorted(stopped, key=lambda run: (run / "checkpoints" / "last.pt").stat().st_mtime, reverse=True)


def _newest_begun(parent: Path, attempt: Attempt) -> Path | None:
    """The newest run directory under `parent` that an earlier attempt of `attempt`'s launch began."""
    if not parent.is_dir():
        return None
    begun = [run for run in parent.iterdir() if run.is_dir() and attempt.began(read_launch(run) or {})]
    return max(begun, key=lambda run: (run.stat().st_mtime, run.name), default=None)
