"""`zoo sweep CONFIG`: the config trained over a grid or a search of its keys, every configuration once per seed,
each trial an ordinary zoo run; then results.csv, best.yaml and compare.html in the sweep's folder.

    result = sweep("configs/lessons/optimizers.yaml", seeds="0-4", workers=2)
    result.results.best.point                      # {'variant': 'adam'}: the best mean validation top-1

The study is Optuna's (Akiba et al. 2019, arXiv:1907.10902): a grid's points are enqueued trials, a search's are
chosen by its TPE sampler, and MedianPruner stops a search's trial whose validation top-1 trails the median of the
trials before it at the same epoch (the run reports each epoch's; a pruned run is tested and kept as any run). Its
storage is a journal file in the sweep's folder (optuna.journal: Optuna's file storage for several processes on
one machine, nothing to start), or `storage`, an RDB URL that several machines share (Optuna's distributed mode).

A trial's run is train.output_dir = the sweep's folder, run_name `runs`, run_id named by its configuration and
seed: the same command again continues the sweep. Finished runs are kept (a run whose metrics.json is there is
read, not trained); a run of this host whose process is gone (a killed sweep) is tried again, and its run resumes
from its last.pt (zoo.training.restarts, train.run_id's rule); a failed trial (one line, kept in results.csv) is
tried again. `workers` trains that many trials at once on this machine (this process and workers - 1 spawned
beside it), each with its share of the physical cores (a spawned worker dies with the sweep: Linux's parent-death
signal, SIGTERM, which saves its run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.config import load_config
from zoo.errors import RunStopped, ZooError
from zoo.experiments.results import Results, RunRow, SweepResult, write_rows
from zoo.experiments.space import Space, build_space, check_space, trial_config
from zoo.loop import NONFINITE_EXIT_CODE
from zoo.present.console import say
from zoo.rundir import WriteError, atomic_write, is_live

JOURNAL = "optuna.journal"  # the embedded study: Optuna's JournalFileBackend
PLAN = "sweep.json"  # the sweep's identity (its study) and the command's settings, for the next start to check
BEST = "best.yaml"
PAGE = "compare.html"
RUNS = "runs"  # the trials' runs: <folder>/runs/<run_id>
SEARCH_TRIALS = 20  # a search's configurations when neither --trials nor sweep.trials says
STALE_START_S = 60.0  # a trial begun this long ago with no worker recorded was killed as it began


@dataclass(frozen=True)
class SweepPlan:
    """Everything a worker needs, picklable: the config, its --set, the space, the folder, the study and how."""

    config: Path
    overrides: tuple[str, ...]
    space: Space
    folder: Path
    study: str  # the study's name: "zoo-" and the sweep's identity
    storage: str | None  # an RDB URL; None: the journal in `folder`
    trials: int | None  # a search's configurations; None for a grid
    prune: bool
    threads: int | None  # train.threads of each trial (None: the config's)
    quiet: bool = True


def sweep(config: str | Path, params: Sequence[str] = (), *, seeds: str | None = None, workers: int = 1,
          trials: int | None = None, storage: str | None = None, output: str | Path | None = None,
          overrides: Sequence[str] = (), prune: bool | None = None, quiet: bool = True) -> SweepResult:
    """Run the sweep (module docstring) and return its results. Every check comes first, with nothing written:
    ZooError (exit code 2) for a key that does not exist (the near key named), a value a key refuses at any grid
    point, an empty range, a storage that cannot be opened, or a folder that holds another sweep. RunStopped when a
    signal stopped it (its runs saved; the same command continues)."""
    plan = make_plan(Path(config), params, seeds, workers, trials, storage, output, overrides, prune, quiet)
    check_folder(plan)
    storage_object = open_storage(plan)  # a URL that does not open: before the folder is made
    with _writing(plan.folder):
        plan.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(plan.folder / PLAN, json.dumps(describe_plan(plan), indent=2).encode())
        study = open_study(plan, storage_object or open_storage(plan), create=True)
        with _exclusive(plan):
            notes = recover(study, plan) + enqueue_grid(study, plan)
        for note in notes:
            say(note, sys.stderr)
        before = _trained(study)
        run_workers(plan, workers)
        notes += _elsewhere(study)  # before the table is read: a trial ending between the two is in the table
        results = collect(study, plan)
        files = write_outputs(plan, results)
    return SweepResult(plan.folder, results, files, _trained(study) - before, notes)


@contextlib.contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """OSError (a full or read-only disk, a folder that cannot be made) as one line: what could not be written, and
    that the same command continues the sweep once it can."""
    try:
        yield
    except OSError as error:
        where = Path(error.filename) if getattr(error, "filename", None) else folder
        raise WriteError(where, error.strerror or str(error), "free some space or give --output a writable folder; "
                                                              "the same command then continues the sweep") from None


def _elsewhere(study: Any) -> list[str]:
    """A note of the trials other workers of a shared study still run: the table holds the finished ones."""
    from optuna.trial import TrialState

    going = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    if not going:
        return []
    return [f"{len(going)} trials are still running or waiting on other workers of the study; the table holds the "
            "finished ones: run the same command again once they end to bring it up to date"]


def make_plan(config: Path, params: Sequence[str], seeds: str | None, workers: int, trials: int | None,
              storage: str | None, output: str | Path | None, overrides: Sequence[str], prune: bool | None,
              quiet: bool) -> SweepPlan:
    """The sweep's plan from the command, every point checked (zoo.experiments.space.check_space)."""
    if workers < 1:
        raise ZooError(f"--workers {workers}: give 1 or more trials at once")
    if trials is not None and trials < 1:
        raise ZooError(f"--trials {trials}: give 1 or more configurations to search")
    base = load_config(config, list(overrides))
    space = build_space(base.sweep, params, seeds, base.train.seed)
    if trials is not None and space.is_grid:
        raise ZooError(f"--trials {trials}: a grid runs each of its {space.grid_size()} points; --trials is for a "
                       "search, over a range (--param 'optimizer.lr=log:1e-4..1e-1')")
    check_space(config, overrides, space)
    if base.data.val_split == 0 and base.data.name not in ("xor", "synthetic"):
        raise ZooError("data.val_split 0: a sweep chooses by validation top-1 and this config holds no validation "
                       "split out; set data.val_split (e.g. --set data.val_split=0.1)")
    folder = Path(output) if output is not None else base.train.output_dir / "sweeps" / config.stem
    identity = {"config": load_config(config, [*overrides, "sweep=null"]).to_dict(),
                "params": [vars(param) for param in space.params], "variants": space.variants}
    study = "zoo-" + hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    threads = None
    if workers > 1 and base.train.threads == "auto":
        from zoo.runtime import physical_cores

        threads = max(1, physical_cores() // workers)  # one share each, fixed: a trial sums in one order
    search_trials = None if space.is_grid else trials or (base.sweep.trials if base.sweep else None) or SEARCH_TRIALS
    pruning = (not space.is_grid) if prune is None else prune
    return SweepPlan(config, tuple(overrides), space, folder, study, storage, search_trials, pruning, threads, quiet)


def describe_plan(plan: SweepPlan) -> dict[str, Any]:
    return {"study": plan.study, "config": str(plan.config), "set": list(plan.overrides),
            "params": plan.space.keys, "seeds": list(plan.space.seeds), "storage": plan.storage or JOURNAL,
            "trials": plan.trials, "prune": plan.prune}


def check_folder(plan: SweepPlan) -> None:
    """ZooError where the folder is a file, or holds another sweep's study (a sweep.json of another identity)."""
    if plan.folder.exists() and not plan.folder.is_dir():
        raise ZooError(f"--output {plan.folder} is a file; give a folder for the sweep")
    path = plan.folder / PLAN
    if not path.is_file():
        return
    try:
        study = json.loads(path.read_text()).get("study")
    except (OSError, ValueError, AttributeError):
        study = None
    if study != plan.study:
        raise ZooError(f"{plan.folder} holds another sweep (another config, --set or --param); give --output another "
                       "folder, or remove that one")


def open_storage(plan: SweepPlan) -> Any:
    """The study's storage: `plan.storage`'s database, or the journal file in the folder (None where the folder is
    not made yet; the file is made when first written). ZooError, one line, for a URL that does not open."""
    _quiet_optuna()
    import optuna

    if plan.storage is None:
        if not plan.folder.is_dir():
            return None  # the folder is made first
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(plan.folder / JOURNAL)))
    try:
        with _exclusive(plan):  # two starts making one SQLite file's tables at once collide
            return optuna.storages.RDBStorage(plan.storage)
    except Exception as error:  # SQLAlchemy's errors for a bad URL, a missing driver, a server that does not answer
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Failed to import DB access module" in reason:
            reason = ("its database's Python driver is not installed: pip install psycopg2-binary for PostgreSQL, "
                      "PyMySQL for MySQL")
    raise ZooError(f"--storage {plan.storage}: cannot be opened ({reason}); give an Optuna RDB URL that answers, "
                   "e.g. sqlite:///sweep.db or postgresql://user:password@host/database")


def _quiet_optuna() -> None:
    """Optuna's own log lines (a study created, each trial's value) off: zoo says what matters."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_study(plan: SweepPlan, storage: Any, create: bool = False, worker: int = 0) -> Any:
    """The study, made where `create` and it is not there yet. Its TPE sampler is seeded by the first seed, this
    worker's number and the trials the study holds: a sweep started again, or a second worker, does not draw again
    the random first points an earlier one drew (TPE's first ten are random)."""
    import optuna

    pruner = (optuna.pruners.MedianPruner(n_startup_trials=max(5, len(plan.space.seeds)), n_warmup_steps=2)
              if plan.prune else optuna.pruners.NopPruner())
    if create:
        study = optuna.create_study(storage=storage, pruner=pruner, study_name=plan.study, direction="maximize",
                                    load_if_exists=True)
    else:
        study = optuna.load_study(study_name=plan.study, storage=storage, pruner=pruner)
    held = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=(plan.space.seeds[0] * 1_000_003 + worker * 10_007 + held) % 2**32)
    return study


@contextlib.contextmanager
def _exclusive(plan: SweepPlan) -> Iterator[None]:
    """One process at a time changes the study's queue (recovery, the grid's trials, taking the next trial): an
    exclusive lock on a file beside the storage where that is a file (the journal; a SQLite database, which cannot
    lock a row, so that two workers would take one waiting trial). A server's database (PostgreSQL, MySQL) locks
    the row itself: no file. Two starts planning on different machines may queue a trial twice; its second run
    finds the first's finished run and trains nothing."""
    import fcntl

    if plan.storage is None:
        path = plan.folder / ".study.lock"
    elif plan.storage.startswith("sqlite:///") and len(plan.storage) > len("sqlite:///"):
        path = Path(plan.storage.removeprefix("sqlite:///") + ".lock")
    else:
        yield
        return
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


# ---- trials --------------------------------------------------------------------------------------

def config_key(point: dict[str, Any]) -> str:
    """A configuration's name in the study: the hash of its point (seeds apart)."""
    return hashlib.sha256(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_id(plan: SweepPlan, point: dict[str, Any], seed: int) -> str:
    """A trial's train.run_id: a grid point's values (a search's configuration hash alone), the hash, the seed:
    'sgd_he_normal-3fa2c1-s0'."""
    key = config_key(point)[:6]
    if not plan.space.is_grid:
        return f"c{key}-s{seed}"
    values = "_".join(re.sub(r"[^\w.-]+", "_", str(point[name])).strip("_.-") for name in plan.space.keys)
    values = values[:48].strip("_.-")
    return f"{values}-{key}-s{seed}" if values and re.match(r"\w", values) else f"c{key}-s{seed}"


def enqueue_grid(study: Any, plan: SweepPlan) -> list[str]:
    """Queue each (grid point, seed) not yet in the study (waiting, running or done): the first start queues all,
    a start with more seeds the new ones, a start after failures the failed ones again (not one whose loss
    diverged: it would again)."""
    if not plan.space.is_grid:
        return []
    from optuna.trial import TrialState

    held = {(trial.user_attrs.get("config"), trial.user_attrs.get("seed"))
            for trial in study.get_trials(deepcopy=False)
            if trial.state != TrialState.FAIL or trial.user_attrs.get("final")}
    for point in plan.space.points():
        for seed in plan.space.seeds:
            if (config_key(point), seed) not in held:
                study.enqueue_trial(point, user_attrs={"config": config_key(point), "seed": seed})
    return []


def recover(study: Any, plan: SweepPlan) -> list[str]:
    """Trials left running by a worker of this host that is gone (a killed sweep): marked failed and queued again
    with the same configuration and seed, so that their runs resume. Returns a note for each."""
    import datetime

    from optuna.trial import TrialState

    notes = []
    host, now = socket.gethostname(), datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid, where = trial.user_attrs.get("pid"), trial.user_attrs.get("host")
        gone = (where == host and not is_live(pid, host)) if pid is not None else (
            trial.datetime_start is not None and (now - trial.datetime_start).total_seconds() > STALE_START_S)
        if not gone:
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # Optuna's fail_stale_trials' way
        except Exception:  # another start marked it first
            continue
        if "seed" in trial.user_attrs:
            study.enqueue_trial(trial.params, user_attrs={key: trial.user_attrs[key] for key in ("config", "seed")})
            notes.append(f"trial {trial.number} ({_label(plan, trial.params, trial.user_attrs['seed'])}) was "
                         "stopped with its sweep; it runs again, from its run's last checkpoint where it saved one")
    return notes


def _label(plan: SweepPlan, point: dict[str, Any], seed: int) -> str:
    described = plan.space.describe(point)
    return f"{described} seed {seed}" if described else f"seed {seed}"


def _trained(study: Any) -> int:
    """The trials whose run was trained (or went on), not read: a run an earlier start finished is read."""
    return sum(bool(trial.user_attrs.get("trained")) for trial in study.get_trials(deepcopy=False))


def work(plan: SweepPlan, worker: int = 0) -> None:
    """One worker (`worker`: its number, 0 for the sweep's own process): take trials from the study until none is
    left (a grid's queue is empty; a search has begun its configurations), training each. A failed trial's line is
    said and kept; a signal stops the worker."""
    study = open_study(plan, open_storage(plan), worker=worker)
    while True:
        with _exclusive(plan):
            taken = next_trial(study, plan)
        if taken is None:
            return
        run_trial(study, trial=taken[0], plan=plan, point=taken[1], seed=taken[2])


def next_trial(study: Any, plan: SweepPlan) -> tuple[Any, dict[str, Any], int] | None:
    """The next trial with its point and seed: a queued one first (a grid's, a configuration's other seeds, a
    retry), else a new configuration from the sampler while a search has some to go; None when done."""
    from optuna.trial import TrialState

    while True:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        begun = {trial.user_attrs.get("config") for trial in study.get_trials(deepcopy=False)} - {None}
        if not waiting and (plan.space.is_grid or len(begun) >= plan.trials):
            return None
        trial = study.ask(plan.space.distributions())
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        point = {key: trial.params[key] for key in plan.space.keys}
        if "seed" in trial.user_attrs:  # queued
            if _pruned_configuration(study, trial.user_attrs["config"]):
                study.tell(trial, state=TrialState.PRUNED)  # its first seed was pruned: so are the others
                continue
            return trial, point, trial.user_attrs["seed"]
        if plan.space.is_grid:  # the queue emptied as this worker asked: a trial to give back
            trial.set_user_attr("spare", True)
            study.tell(trial, state=TrialState.FAIL)
            return None
        key, first, *others = config_key(point), *plan.space.seeds
        trial.set_user_attr("config", key)
        trial.set_user_attr("seed", first)
        for seed in others:  # the configuration's other seeds next, by any worker
            study.enqueue_trial(point, user_attrs={"config": key, "seed": seed})
        return trial, point, first


def _pruned_configuration(study: Any, key: str) -> bool:
    from optuna.trial import TrialState

    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    return any(trial.user_attrs.get("config") == key for trial in pruned)


def run_trial(study: Any, trial: Any, plan: SweepPlan, point: dict[str, Any], seed: int) -> None:
    """Train (or read, where its run finished) one trial's run and tell the study: its validation top-1, PRUNED,
    or FAIL with the error's line kept. RunStopped goes through: the trial stays running, for `recover`."""
    from optuna.trial import TrialState

    from zoo.training import train

    name = run_id(plan, point, seed)
    run_dir = plan.folder / RUNS / name
    trial.set_user_attr("run_dir", str(run_dir))
    settings = [*plan.space.settings(point), f"train.seed={seed}", f"train.output_dir={plan.folder}",
                f"train.run_name={RUNS}", f"train.run_id={name}"]
    settings += [f"train.threads={plan.threads}"] if plan.threads else []
    say(f"sweep: {_label(plan, point, seed)} -> {run_dir}", sys.stderr)

    def judge(epoch: int, accuracy: float) -> bool:
        trial.report(accuracy, epoch)
        return plan.prune and trial.should_prune()

    try:
        metrics = _finished_metrics(run_dir)
        if metrics is None:
            trial.set_user_attr("trained", True)
            with contextlib.redirect_stdout(sys.stderr):  # the run's lines: stdout is the sweep's table (or JSON)
                metrics = train(trial_config(plan.config, plan.overrides, settings), quiet=plan.quiet,
                                judge=judge).metrics
    except (ZooError, RunStopped) as error:
        diverged = isinstance(error, RunStopped) and error.exit_code == NONFINITE_EXIT_CODE
        if isinstance(error, RunStopped) and not diverged:
            raise  # a signal: the trial stays running; the next start resumes its run
        say(f"sweep: {_label(plan, point, seed)} failed: {error}", sys.stderr)
        trial.set_user_attr("error", str(error).splitlines()[0] if str(error) else type(error).__name__)
        trial.set_user_attr("final", diverged)  # it would diverge again; another error (a full disk) may not
        study.tell(trial, state=TrialState.FAIL)
        return
    trial.set_user_attr("metrics", _kept(metrics))
    if metrics.get("pruned_at_epoch"):
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, (metrics.get("val") or {}).get("accuracy", float("nan")))


def _finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run's metrics.json where it finished (an earlier start trained it), else None."""
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def _kept(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the study keeps of metrics.json: what results.csv shows."""
    return {"epochs_run": metrics.get("epochs_run"), "best_epoch": metrics.get("best_epoch"),
            "pruned_at_epoch": metrics.get("pruned_at_epoch"), "val": metrics.get("val"), "test": metrics.get("test")}


# ---- workers -------------------------------------------------------------------------------------

def run_workers(plan: SweepPlan, workers: int) -> None:
    """`workers` workers: this process, and workers - 1 spawned processes beside it (a worker's start imports torch
    again: seconds), waited for. RunStopped when a signal stopped them (a worker's run saved its last.pt)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no torch threads forked
    processes = [context.Process(target=_worker_main, args=(plan, index), name=f"zoo-sweep-{index}")
                 for index in range(1, workers)]
    try:
        for process in processes:
            process.start()
        work(plan)
        for process in processes:
            process.join()
    except (KeyboardInterrupt, RunStopped):
        for process in processes:  # Ctrl-C reached them too; a SIGTERM to this process alone is passed on
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
            process.join()  # each saves its run
        raise
    codes = [process.exitcode for process in processes]
    if any(code != 0 for code in codes):
        raise RunStopped(f"a sweep worker stopped (exit codes {codes}); its run saved what it could: run the same "
                         "command again to continue the sweep", 1)


def _worker_main(plan: SweepPlan, worker: int) -> None:
    """A spawned worker: dies with the sweep (SIGTERM, which its run answers by saving), says its errors in one
    line each, and exits 0 when the study has no trial left for it."""
    _die_with_parent()
    try:
        with _writing(plan.folder):
            work(plan, worker)
    except ZooError as error:  # the study could not be written: the sweep says so as it ends
        say(f"error: {error}", sys.stderr)
        sys.exit(2)
    except RunStopped as stop:
        say(str(stop), sys.stderr)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def _die_with_parent() -> None:
    """Linux's PR_SET_PDEATHSIG: SIGTERM to this process when its parent dies (a killed `zoo sweep`)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker finishes its trial, then finds nothing more to do
        pass


# ---- results -------------------------------------------------------------------------------------

def collect(study: Any, plan: SweepPlan) -> Results:
    """The study's runs as rows, one per configuration and seed (a retry's result over its failed try), in the
    sweep's order."""
    from optuna.trial import TrialState

    chosen: dict[tuple[str, int], Any] = {}
    rank = {TrialState.COMPLETE: 2, TrialState.PRUNED: 2, TrialState.FAIL: 1}
    for trial in study.get_trials(deepcopy=False, states=tuple(rank)):
        if trial.user_attrs.get("spare") or "seed" not in trial.user_attrs or "run_dir" not in trial.user_attrs:
            continue
        pair = (trial.user_attrs["config"], trial.user_attrs["seed"])
        if pair not in chosen or rank[trial.state] >= rank[chosen[pair].state]:
            chosen[pair] = trial
    order = ({config_key(point): index for index, point in enumerate(plan.space.points())} if plan.space.is_grid
             else {})
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda trial: trial.number):
        order.setdefault(trial.user_attrs.get("config"), len(order))
    rows = [_row(plan, trial) for _, trial in sorted(chosen.items(), key=lambda item: (order.get(item[0][0], 0),
                                                                                        item[0][1]))]
    return Results.of(plan.space.keys, rows)


def _row(plan: SweepPlan, trial: Any) -> RunRow:
    from optuna.trial import TrialState

    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(
        trial.state, "diverged" if trial.user_attrs.get("final") else "failed")
    point = {key: trial.params.get(key) for key in plan.space.keys}
    return RunRow.of(point, trial.user_attrs["seed"], state, trial.user_attrs["run_dir"],
                     trial.user_attrs.get("metrics"), trial.user_attrs.get("error"))


def write_outputs(plan: SweepPlan, results: Results) -> list[Path]:
    """results.csv, best.yaml (the best configuration, to train from) and compare.html (zoo compare's page of
    the sweep's finished runs)."""
    files = [write_rows(plan.folder, results)]
    if results.best is not None:
        best = trial_config(plan.config, plan.overrides, plan.space.settings(results.best.point))
        mean, se = results.best.figure("val_accuracy")
        spread = f" ± {se:.2%}" if se is not None else ""
        seeds = [str(row.seed) for row in results.best.rows]
        header = (f"# zoo sweep's best configuration, by mean validation top-1 {mean:.2%}{spread} over "
                  f"seed{'s' * (len(seeds) > 1)} {', '.join(seeds)}: {plan.space.describe(results.best.point)}"
                  f"\n# zoo train {plan.folder / BEST}\n")
        atomic_write(plan.folder / BEST, (header + best.to_yaml()).encode())
        files.append(plan.folder / BEST)
    runs = [row for row in results.rows if row.state in ("complete", "pruned")]
    if len(runs) >= 2:  # the page of the folder, as zoo compare reads it: the best configuration against the others
        from zoo.present.compare import write_comparison

        files.append(write_comparison([plan.folder], plan.folder / PAGE))
    return files
