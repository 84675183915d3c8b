"""`zoo train --resume RUN_DIR_OR_CHECKPOINT`: the run continues exactly where its checkpoint left it.

A checkpoint (zoo.checkpoint.TrainingState) holds, besides the weights: the optimizer, scheduler and gradient
scaler; the position (epochs done, batches done in the next one, optimizer steps); and per rank the random state
and the epoch's metric sums so far. The training order of an epoch depends on (seed, epoch) alone, so the resumed
run draws it again and skips the batches already trained on. On the CPU in deterministic mode the resumed run
ends bit for bit where the uninterrupted one does. The config is the checkpoint's; a changed one is refused
unless allowed. Refused too, before anything is written: a checkpoint behind its run's last.pt (an earlier
best.pt), whose run would train over the later epochs, and a run with nothing left to train (its epochs done, or
ended by early stopping).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import FieldCheck, Progress, RankState, TrainingState, read_state
from zoo.config import HOLD_OUT_KEYS, Config, apply_overrides, load_config, validate_config
from zoo.distributed import Job
from zoo.errors import ZooError
from zoo.metrics import MetricAccumulator
from zoo.runtime import restore_rng
from zoo.training.optim import learning_rates

# ---- what to resume ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResumePlan:
    checkpoint: Path
    run_dir: Path
    state: TrainingState
    config: Config
    changed: list[tuple[str, Any, Any]] = field(default_factory=list)  # (key, old, new), allowed by allow_config_change
    reason: str | None = None  # why the same command line continues a run: "train.run_id", "torchrun restart 1 of 3"

    @property
    def changes(self) -> list[str]:
        """'key: old -> new' for each changed key, as the run prints them."""
        return [f"{key}: {old!r} -> {new!r}" for key, old, new in self.changed]

    def changes_key(self, key: str) -> bool:
        return any(_under(name, key) or _under(key, name) for name, _, _ in self.changed)


# What --allow-config-change does with a changed key. A key not named here takes effect as it is: the new
# optimizer settings, loss, augmentation, device, precision ... from the next step on; the learning-rate
# schedule is rebuilt and continues where the run is, counted in the new config's steps (restore_optimization).
_HELD_OUT = ("it changes which images are held out for validation and test, so the test figures could count "
             "images the model trained on; start a new run")
_NO_EFFECT = "it has no effect on a resumed run, whose weights come from its checkpoint; fine-tune from it instead"
REFUSED: dict[str, str] = {  # key (or section) -> why it cannot change on resume
    "data.name": "the run would go on with another data set; fine-tune on it instead (zoo finetune)",
    **dict.fromkeys(HOLD_OUT_KEYS, _HELD_OUT),
    **dict.fromkeys(("train.output_dir", "train.run_name", "train.run_id"),
                    "a resumed run continues in its own directory; start a new run to write elsewhere"),
    "init": _NO_EFFECT, "finetune.source": _NO_EFFECT, "finetune.strict": _NO_EFFECT,
    "sweep": "zoo sweep reads it, a run does not; change it for the next zoo sweep",
    "task": "the network's outputs were trained for another task (zoo.tasks: another loss and decision); start a "
            "new run, or fine-tune from it (zoo finetune)",
    "reconstruction.colorize": "the network was built for other inputs and outputs (gray to colour, or the picture to "
                               "itself); start a new run",
}
MID_EPOCH: dict[str, str] = {  # keys that change what a batch of the interrupted epoch is
    "data.batch_size": "the position in the epoch is counted in batches of the old size",
    "train.max_steps_per_epoch": "the position in the epoch is counted against the old length",
    "data.sampler": "the interrupted epoch's order was drawn by the old sampler",
    "train.accumulate_steps": "the interrupted epoch's optimizer steps were counted in groups of the old size",
}


def find_checkpoint(target: Path) -> Path:
    """A run directory's checkpoints/last.pt, or the checkpoint file itself."""
    target = Path(target)
    if target.is_dir():
        for candidate in (target / "checkpoints" / "last.pt", target / "last.pt"):
            if candidate.is_file():
                return candidate
        raise ZooError(f"{target} holds no checkpoints/last.pt to resume from; give a run directory "
                       "(runs/<name>/<time>) or a checkpoint file")
    if not target.exists():
        raise ZooError(f"--resume {str(target)!r} not found; "
                       "give a run directory (runs/<name>/<time>) or a checkpoint file")
    return target


def run_dir_of(checkpoint: Path) -> Path:
    """runs/<name>/<time>/checkpoints/last.pt -> runs/<name>/<time>; a loose file continues beside itself."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def prepare_resume(target: Path, config_path: Path | None = None, overrides: list[str] | None = None,
                   allow_config_change: bool = False) -> ResumePlan:
    """Read the checkpoint and decide the config: the checkpoint's, or the one given (`--config`, `--set`),
    which may differ from it only with `allow_config_change`."""
    checkpoint = find_checkpoint(target)
    state = read_state(checkpoint, "resume")
    check_newest(checkpoint, state, run_dir_of(checkpoint))
    stored = validate_config(state.config, f"{checkpoint} (config)")
    if config_path is not None:
        # A fine-tuning run stored its source's mean and std in its config: a file that sets none means those.
        requested = load_config(config_path, overrides).with_normalization(stored.data.mean, stored.data.std)
    else:
        requested = validate_config(apply_overrides(stored.to_dict(), overrides or []), "--set")
    plan = ResumePlan(checkpoint, run_dir_of(checkpoint), state, requested, changed_keys(stored, requested))
    if plan.changed and not allow_config_change:
        raise ZooError(f"the config differs from the checkpoint's: {'; '.join(plan.changes)}; "
                       "resume with the same config, or add --allow-config-change")
    check_changes(plan.changed, state, checkpoint)
    if state.progress is not None and plan.changes_key("train.early_stopping.metric"):
        state.progress.early_stopping = None  # counters of another metric: early stopping starts counting afresh
    check_unfinished(plan, target)
    return plan


def continue_run(run_dir: Path, config: Config, reason: str) -> ResumePlan:
    """The run in `run_dir` goes on from its last.pt, started again by the same command line (zoo.training.restarts):
    `config` is that command line's and must be the checkpoint's. `reason`: what made this start a continuation
    ("train.run_id abc", "torchrun restart 1 of 3"), named in the run's first line and in the refusals."""
    checkpoint = run_dir / "checkpoints" / "last.pt"
    state = read_state(checkpoint, "resume")
    stored = validate_config(state.config, f"{checkpoint} (config)")
    requested = config.with_normalization(stored.data.mean, stored.data.std)
    plan = ResumePlan(checkpoint, run_dir, state, requested, changed_keys(stored, requested), reason)
    if plan.changed:
        sets = " ".join(f"--set {_as_set(key, new)}" for key, _, new in plan.changed)
        raise ZooError(f"{reason} continues {run_dir}, whose config differs: {'; '.join(plan.changes)}; "
                       "give the config it was started with, or another train.run_id for a new run, "
                       f"or make the change with zoo train --resume {run_dir} {sets} --allow-config-change")
    check_unfinished(plan, run_dir)
    return plan


def _as_set(key: str, value: Any) -> str:
    """`key=value` as --set reads it back (YAML: null, true, [1, 2], {a: 1}), quoted for a shell where needed."""
    import shlex

    import yaml

    if value is not None and not isinstance(value, (bool, int, float, str, list, dict)):
        value = str(value)  # a path
    text = "null" if value is None else yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    text = text.removesuffix("\n...").strip()
    return shlex.quote(f"{key}={text}")


def check_newest(checkpoint: Path, state: TrainingState, run_dir: Path) -> None:
    """Refuse a checkpoint behind its run's last.pt (best.pt of an earlier epoch, say): the resumed run would write
    over last.pt, metrics.json and the history, and train the later epochs again. An unreadable last.pt holds
    nothing to lose and does not stop it."""
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file() or last.samefile(checkpoint):  # best.pt is often a hard link to last.pt
        return
    try:
        newest = read_state(last, "resume")
    except ZooError:
        return
    if newest.step <= state.step:  # best.pt of the last epoch: the same state as last.pt
        return
    config = run_dir / "config.yaml"
    raise ZooError(f"{checkpoint} is at {_where(state)}, behind the run's {last} at {_where(newest)}: resuming from it "
                   f"would train again over the later epochs and overwrite them; go on from last.pt with zoo train "
                   f"--resume {run_dir}, or fine-tune from {checkpoint.name} into a new run with zoo finetune --config "
                   f"{config if config.is_file() else '<the run config>'} --set finetune.source={checkpoint}")


def _epochs(count: int) -> str:
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def _where(state: TrainingState) -> str:
    where = f"epoch {state.epoch + 1}, batch {state.batch}" if state.batch else f"the end of epoch {state.epoch}"
    return f"{where} (step {state.step:,})"


def check_unfinished(plan: ResumePlan, target: Path) -> None:
    """Refuse a run that would train nothing: its epochs all done, or early stopping's patience used up (a run
    early stopping ended is finished too); the fix is the change that gives it more to train."""
    state, train = plan.state, plan.config.train
    if state.batch:
        return
    done = state.epoch >= train.epochs
    if done and not (plan.run_dir / "metrics.json").is_file() and plan.checkpoint.name == "last.pt":
        return  # stopped after its last epoch, before its test (killed, preempted): the run goes on to the test
    counters = state.progress.early_stopping if state.progress is not None else None
    stopper = train.early_stopping
    stopped = stopper is not None and counters is not None and counters[1] >= stopper.patience
    if not (done or stopped):
        return
    last = plan.run_dir / "checkpoints" / "last.pt"
    again = plan.run_dir if last.is_file() and last.samefile(plan.checkpoint) else plan.checkpoint
    sets = ([f"train.epochs={state.epoch + 10}"] if done else []) + (
        [f"train.early_stopping.patience={counters[1] + 5}"] if stopped else [])
    fix = f"zoo train --resume {again} {' '.join(f'--set {item}' for item in sets)} --allow-config-change"
    if stopped:
        patience = (f"{stopper.metric} has not improved for {_epochs(counters[1])} "
                    f"(train.early_stopping.patience {stopper.patience})")
        why = (f"its {_epochs(state.epoch)} are done and early stopping would stop it at once: {patience}" if done else
               f"early stopping ended it after epoch {state.epoch} of {train.epochs}: {patience}")
    else:
        why = f"it has done its {_epochs(state.epoch)}"
    raise ZooError(f"--resume {target}: the run is finished, there is nothing left to train ({why}); "
                   f"to train more: {fix}")


def changed_keys(old: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """(key.path, old, new) for every value that differs."""
    before, after = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [(key, before.get(key), after.get(key))
            for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]


def _under(key: str, section: str) -> bool:
    """Whether `key` is `section` or a key inside it (train.early_stopping.metric is under train.early_stopping)."""
    return key == section or key.startswith(f"{section}.")


def check_changes(changed: list[tuple[str, Any, Any]], state: TrainingState, checkpoint: Path) -> None:
    """Refuse, in one line and before anything is written, a change that could not take effect correctly."""
    for key, before, after in changed:
        rule = next((why for name, why in REFUSED.items() if _under(key, name)), None)
        if rule is None and state.batch and key in MID_EPOCH:
            rule = (f"{MID_EPOCH[key]}; resume without the change to finish epoch {state.epoch + 1}, then change it "
                    "at the epoch boundary (the run stops there with Ctrl-C, or use its last epoch-end checkpoint)")
        if rule is not None:
            raise ZooError(f"--allow-config-change cannot change {key} ({before!r} -> {after!r}): {rule}")
        if key == "train.epochs" and after <= state.epoch:  # as many as done would train nothing
            done = f"{state.epoch} epochs and {state.batch} batches" if state.batch else f"{state.epoch} epochs"
            raise ZooError(f"train.epochs {after}: {checkpoint} has done {done} already; "
                           f"give at least {state.epoch + 1}")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def restore_optimization(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                         scaler: torch.amp.GradScaler, plan: ResumePlan, steps_per_epoch: int,
                         world_size: int) -> list[str]:
    """The optimizer's buffers and the scaler as saved. The schedule as saved, too, unless the config changed
    (--allow-config-change) or the number of processes did: then the new config's hyperparameters stand and
    its schedule, rebuilt in the new steps per epoch, goes on from where the run is (epochs done x steps per
    epoch + batches of this one), so `--set train.epochs=200` or `--set data.batch_size=256` mean what they say.
    A changed optimizer.name starts its state afresh (SGD's momentum means nothing to Adam). Returns what to
    tell the user about either."""
    state, notes = plan.state, []
    check_position(plan, steps_per_epoch)
    fresh = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    renamed = next((text for (key, _, _), text in zip(plan.changed, plan.changes) if key == "optimizer.name"), None)
    if renamed is not None:
        notes.append(f"{renamed}: the new optimizer starts with no state (momentum, moment estimates)")
    else:
        check_like(state.optimizer, optimizer.state_dict(), "optimizer", plan.checkpoint)
        try:
            optimizer.load_state_dict(state.optimizer)
        except (ValueError, KeyError) as error:
            raise ZooError(f"{plan.checkpoint}: the optimizer state does not fit ({error}); "
                           "resume without the change to the optimizer or fine-tuning settings") from None
        check_optimizer_state(optimizer, plan.checkpoint)
    if state.scaler:  # empty: saved by a disabled scaler (float32, or not on CUDA)
        check_like(state.scaler, scaler.state_dict(), "scaler", plan.checkpoint)
        scaler.load_state_dict(state.scaler)
    if not plan.changed and (state.world_size or world_size) == world_size:
        check_like(state.scheduler, scheduler.state_dict(), "scheduler", plan.checkpoint)
        scheduler.load_state_dict(state.scheduler)
        return notes
    for group, settings in zip(optimizer.param_groups, fresh):
        group.update(settings)
    per_step = plan.config.train.accumulate_steps  # the checkpoint's, mid-epoch (MID_EPOCH)
    position = state.epoch * steps_per_epoch + -(-state.batch // per_step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": replaying is the point
        for _ in range(position):
            scheduler.step()
    lr = next(iter(learning_rates(optimizer).values()))  # the head's when fine-tuning sets the backbone apart
    total = plan.config.train.epochs * steps_per_epoch
    rest = _rest_of_schedule(optimizer, scheduler, total - position)
    high = max(rest)
    notes.append(f"the learning-rate schedule goes on at step {position:,} of {total:,} "
                 f"({steps_per_epoch:,} per epoch): {_course(lr, rest)}")
    peak = plan.config.optimizer.lr
    if total > position and high < 0.1 * peak:  # a finished schedule extended: the new epochs would barely train
        notes.append(f"note: the rest of the schedule stays below 10% of optimizer.lr {peak:g}, so the added epochs "
                     "train little; for a new schedule from these weights, fine-tune from the checkpoint "
                     f"(finetune.source: {plan.checkpoint})")
    return notes


def check_position(plan: ResumePlan, steps_per_epoch: int) -> None:
    """Refuse a checkpoint whose position (batches done in the epoch it stopped in) lies past the end of an
    epoch of this run's length: the loader would yield nothing to go on with."""
    state, per_step = plan.state, plan.config.train.accumulate_steps
    if state.batch and -(-state.batch // per_step) >= steps_per_epoch:
        raise ZooError(f"{plan.checkpoint} is damaged: its batch is {state.batch:,}, past the end of an epoch of "
                       f"{steps_per_epoch:,} optimizer steps; use another checkpoint")


def check_like(saved: Any, fresh: Any, name: str, checkpoint: Path) -> None:
    """Refuse a saved state (the optimizer's settings, the schedule's, the gradient scaler's) that holds another
    kind of value than this run's own `fresh` one where both have a key: torch's load_state_dict takes any
    dict, and text for a number fails only at a later step. Lists of another length are the load's to judge."""
    found = _mismatch(saved, fresh, name)
    if found is not None:
        where, value, kind = found
        shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
        raise ZooError(f"{checkpoint} is damaged: its {where} is {shown}, where the run's {name} holds {kind}; "
                       "use another checkpoint")


def _mismatch(saved: Any, fresh: Any, where: str) -> tuple[str, Any, str] | None:
    """(where, the value, the kind expected) at the first place `saved` holds another kind of value than `fresh`
    (a mapping, a list, a number), or None. Text, flags and None are not compared: torch versions differ in
    them (a scheduler's verbose)."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            return where, saved, "a mapping"
        return next((found for key in fresh.keys() & saved.keys()
                     if (found := _mismatch(saved[key], fresh[key], f"{where}.{key}"))), None)
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)):
            return where, saved, "a list"
        return next((found for index, (old, new) in enumerate(zip(saved, fresh))
                     if (found := _mismatch(old, new, f"{where}[{index}]"))), None)
    number = (int, float, torch.Tensor)
    if isinstance(fresh, (int, float)) and not isinstance(fresh, bool) and (
            not isinstance(saved, number) or isinstance(saved, bool)):
        return where, saved, "a number"
    return None


def check_optimizer_state(optimizer: torch.optim.Optimizer, checkpoint: Path) -> None:
    """Refuse saved optimizer buffers (momentum, moment estimates) of another shape than their parameter, or not
    finite: torch loads them as they are, and the first step would fail or make every weight NaN."""
    buffers = {}
    params = (param for group in optimizer.param_groups for param in group["params"])
    for index, param in enumerate(params):
        for name, value in optimizer.state.get(param, {}).items():
            if not isinstance(value, torch.Tensor) or not value.dim():  # a step count
                continue
            if value.shape != param.shape:
                raise ZooError(f"{checkpoint} is damaged: its optimizer's {name} is {tuple(value.shape)} for a "
                               f"parameter of {tuple(param.shape)}; use another checkpoint")
            buffers[f"{index}.{name}"] = value
    FieldCheck(checkpoint).weights("optimizer state", buffers)


def _rest_of_schedule(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                      steps: int) -> list[float]:
    """The head learning rate of each of the next `steps` optimizer steps (at least the next one), found by
    stepping the schedule ahead and putting it and the optimizer's rates back as they were."""
    saved, rates = scheduler.state_dict(), [group["lr"] for group in optimizer.param_groups]
    now = next(iter(learning_rates(optimizer).values()))
    seen = [now]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(max(steps - 1, 0)):
            scheduler.step()
            seen.append(next(iter(learning_rates(optimizer).values())))
    scheduler.load_state_dict(saved)
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate
    return seen


def _course(now: float, rest: list[float]) -> str:
    """The rest of the schedule in the order it goes: 'lr 0.05 now, up to 0.1, then down to 0 by the last step'.
    Compared as printed (3 digits), so float noise of a flat schedule reads as flat."""
    first, last, low, high = (float(f"{rate:.3g}") for rate in (now, rest[-1], min(rest), max(rest)))
    if high > max(first, last):
        path = f"up to {high:.3g}, then down to {last:.3g}"
    elif low < min(first, last):
        path = f"down to {low:.3g}, then up to {last:.3g}"
    elif last != first:
        path = f"{'up' if last > first else 'down'} to {last:.3g}"
    else:
        return f"lr {now:.3g} now and to the last step"
    return f"lr {now:.3g} now, {path} by the last step"


# ---- where the run is --------------------------------------------------------------------------------

@dataclass
class Position:
    """Where a run goes on: after `epoch` epochs and `batch` batches of the next, `step` optimizer steps;
    with this rank's saved random state and, mid-epoch, its share of the epoch's sums."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    progress: Progress = field(default_factory=Progress)
    rank_state: RankState | None = None

    @classmethod
    def of(cls, state: TrainingState, job: Job) -> Position:
        ranks = state.ranks
        if len(ranks) != job.world_size and state.batch:
            raise ZooError(f"the checkpoint was saved mid-epoch by {len(ranks)} processes and this run has "
                           f"{job.world_size}; resume it with {len(ranks)} (torchrun --nproc_per_node={len(ranks)})")
        if len(ranks) != job.world_size and job.is_main:
            print(f"warning: saved by {len(ranks)} processes, resumed by {job.world_size}: the data order and weights "
                  "go on exactly, the random state (augmentation, dropout) starts afresh")
        return cls(state.epoch, state.batch, state.step, state.progress,
                   ranks[job.rank] if len(ranks) == job.world_size else None)

    def describe(self, steps_per_epoch: int) -> str:
        where = (f"epoch {self.epoch + 1}, batch {self.batch}/{steps_per_epoch}" if self.batch
                 else f"the start of epoch {self.epoch + 1}")
        return f"{where} (step {self.step})"

    def restore(self, train_loader: Any) -> None:
        """This rank's random state, as it was when the checkpoint was written."""
        from zoo.data import load_loader_state

        if self.rank_state is not None:
            restore_rng(self.rank_state.rng)
            load_loader_state(train_loader, self.rank_state.loader)

    def entering(self, epoch: int, meter: Callable[[], MetricAccumulator]) -> tuple[int, MetricAccumulator | None]:
        """(the batch to start `epoch` at, its sums so far): the saved ones for the epoch the run stopped in, loaded
        into `meter()` (the task's accumulator, zoo.tasks)."""
        if epoch != self.epoch + 1 or not self.batch:
            return 0, None
        meter = meter()
        meter.load_state_dict(self.rank_state.meter)
        batch, self.batch = self.batch, 0
        return batch, meter
