"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks",
arXiv:1506.01186, section 3.3): train for a few steps while the learning rate grows exponentially, record the
loss, and suggest the rate at which it falls fastest. fastai's lr_find and Lightning's Tuner.lr_find are the
same test; the conventions below are theirs.

    result = lr_find(zoo.load_config("configs/lenet5_digits.yaml"))
    result.suggestion                                     # optimizer.lr to train with, e.g. 0.0032
    write_plot(result, plot_path(config, None))           # runs/lenet5_digits/lr_find.png

- Step k of n trains at start_lr x (end_lr / start_lr)^(k / (n - 1)): the first at start_lr, the last at end_lr.
  Rates are optimizer.lr's: a fine-tuning parameter group trains at the rate x its lr_scale, as in training.
- A step's loss is its batches' training loss (cross-entropy in nats, as the config weights and smooths it),
  taken before the step's update; the curve is their exponential moving average (beta 0.98, bias-corrected).
- The sweep stops once that average passes 4x its lowest value, or a loss is not finite.
- The suggestion is the rate of steepest descent against log10(lr) of the losses averaged over +-0.5 decade
  of lr around each step, a centered average: the moving average's slope peaks late, next to divergence (see
  `suggest`, and the measurements there).

The sweep trains the run's own parts (zoo.training.setup.assemble): the model, optimizer, loss, precision,
gradient accumulation and batch mixing that `zoo train` would use, with the schedule replaced by the sweep's.
Afterwards the weights, optimizer, grad scaler, the loader's and the process's random state are as they were, so
a run in the same process trains exactly as it would without the sweep; nothing is written but the picture.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR
from tqdm import tqdm

from zoo.config import Config, load_config
from zoo.data import load_loader_state, loader_state, set_epoch
from zoo.distributed import launch, launched_by_torchrun
from zoo.errors import ZooError
from zoo.loop import Stop, train_epoch
from zoo.metrics import MetricAccumulator
from zoo.rundir import atomic_write
from zoo.runtime import capture_rng, restore_rng
from zoo.training.guard import one_line_errors
from zoo.training.setup import Parts, assemble

START_LR, END_LR, STEPS = 1e-7, 10.0, 100  # fastai's defaults (Lightning's: 1e-8 to 1 in 100 steps)
MIN_STEPS, MAX_STEPS = 5, 1000
BETA = 0.98  # the moving average's weight of the past, fastai's and Lightning's: about the last 50 steps
DIVERGED = 4.0  # the smoothed loss at this many times its lowest: the rate is too high (fastai, Lightning)
SKIP_START = 10  # the first steps' average is of a few losses, too noisy to take a slope of (Lightning's skip_begin)
CENTERED_DECADES = 0.5  # half the width, in decades of lr, of the centered average the slope is taken of
MIN_POINTS = 3  # of the slope's window
MIN_PER_DECADE = 4  # steps: fewer put the centered average's window at a single step (measured: 30 steps over
                    # 8 decades suggested 0.12 on lenet5_digits, the default 100 steps 0.045-0.095)
MIN_FALL = 0.05  # of the loss, from the slope's first step to the lowest: less is noise (seen: 0.1% over 2 decades)
MIN_DECADES = 4 * CENTERED_DECADES  # a narrower sweep is one or two of the centered average's windows: no slope


@dataclass(frozen=True)
class LrFindResult:
    """What a sweep saw, one entry per optimizer step taken."""

    lrs: list[float]  # optimizer.lr of each step (the rate it updated with)
    losses: list[float]  # each step's training loss in nats, before its update
    smoothed: list[float]  # their exponential moving average (BETA), bias-corrected: what stops the sweep
    centered: list[float]  # their mean within +-CENTERED_DECADES of lr: what the suggestion's slope is of
    suggestion: float | None  # optimizer.lr to train with, to 2 significant digits; None: see `problem`
    suggestion_index: int | None  # the step it was taken at
    stopped_early: bool  # diverged (or a non-finite loss) before end_lr
    reason: str  # why the sweep ended
    problem: str | None  # why there is no suggestion, and what to change
    start_lr: float
    end_lr: float
    steps: int  # asked for; len(lrs) were taken
    passes: int  # over the training loader
    batches_seen: int = 0  # training batches the sweep took (its steps x train.accumulate_steps)
    notes: list[str] = field(default_factory=list)  # the set-up lines it printed: lr-find --apply's run leaves them out
    batches_per_pass: int = 0  # of the training loader

    @property
    def curve_labels(self) -> tuple[str, str, str]:
        """The legend of the picture's curves: each step's loss, the moving average, the centered average."""
        return ("each step's loss", f"moving average (beta {BETA:g})",
                f"centered average (+-{CENTERED_DECADES:g} decade)")

    @property
    def rule(self) -> str:
        return f"steepest descent of the smoothed loss, a centered average over +-{CENTERED_DECADES:g} decade of lr"


def check_range(steps: int, start_lr: float, end_lr: float) -> None:
    """One line for a sweep that cannot run: too few or too many steps, rates not positive or not increasing."""
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise ZooError(f"--steps is {steps}; give {MIN_STEPS} to {MAX_STEPS} optimizer steps ({STEPS} is usual)")
    for flag, value in (("--start-lr", start_lr), ("--end-lr", end_lr)):
        if not (math.isfinite(value) and value > 0):
            raise ZooError(f"{flag} is {value:g}; give a positive learning rate, "
                           f"e.g. --start-lr {START_LR:g} --end-lr {END_LR:g}")
    if start_lr >= end_lr:
        raise ZooError(f"--start-lr {start_lr:g} is not below --end-lr {end_lr:g}; the sweep goes up, "
                       f"e.g. --start-lr {START_LR:g} --end-lr {END_LR:g}")
    decades = math.log10(end_lr / start_lr)
    if (steps - 1) / decades < MIN_PER_DECADE:  # the suggestion would be refused after the sweep: say so before it
        raise ZooError(f"--steps {steps} over {decades:.2g} decades of lr are {(steps - 1) / decades:.2g} a decade, "
                       f"too coarse to take the loss's slope (it needs {MIN_PER_DECADE}); give --steps "
                       f"{math.ceil(MIN_PER_DECADE * decades) + 1} or more, or a narrower range")


def lr_find(config: Config, steps: int = STEPS, start_lr: float = START_LR, end_lr: float = END_LR,
            quiet: bool = True) -> LrFindResult:
    """The range test on the parts `zoo train` would build from `config` (every check it makes, nothing written):
    `steps` optimizer steps from `start_lr` to `end_lr` (optimizer.lr, per step), over as many passes of the
    training data as it takes. One process only: under torchrun it raises ZooError. The process is left as it
    was: random state, deterministic-algorithm and cuDNN settings. `quiet`: no progress bar."""
    check_range(steps, start_lr, end_lr)
    if launched_by_torchrun():
        raise ZooError("zoo lr-find runs in one process; start it without torchrun (the rate it suggests is for "
                       "the batch size of one process)")
    with _process_kept(), launch(config.train.device) as job, one_line_errors(job.device, config.data.batch_size):
        parts = assemble(config, job, None)
        for note in parts.start_notes:  # the sweep writes no run directory: they go now
            print(note, file=sys.stderr, flush=True)
        return replace(sweep(parts, steps, start_lr, end_lr, quiet), notes=parts.start_notes)


@dataclass(frozen=True)
class LrFindRun:
    """`zoo lr-find`'s outcome: the sweep, where its picture went, and the --set flags that train with the rate."""

    result: LrFindResult
    plot: Path
    overrides: list[str]  # the user's --set flags with optimizer.lr the suggestion's; [] without a suggestion


def run_lr_find(config_path: Path, overrides: list[str] | None = None, output: Path | None = None, *,
                steps: int = STEPS, start_lr: float = START_LR, end_lr: float = END_LR,
                quiet: bool = True) -> LrFindRun:
    """`zoo lr-find`: the range is checked before the config and the data are read, then the sweep runs on the
    config's parts (lr_find) and the picture is written to `output` (plot_path's default). Raises ZooError as
    lr_find and plot_path do."""
    check_range(steps, start_lr, end_lr)
    config = load_config(config_path, overrides)
    path = plot_path(config, output)
    result = lr_find(config, steps, start_lr, end_lr, quiet=quiet)
    write_plot(result, path, f"learning-rate range test: {config.model.name} on {config.data.name}")
    return LrFindRun(result, path, lr_overrides(overrides, result.suggestion) if result.suggestion is not None else [])


def sweep(parts: Parts, steps: int = STEPS, start_lr: float = START_LR, end_lr: float = END_LR,
          quiet: bool = True) -> LrFindResult:
    """The range test on `parts` (see lr_find), which it leaves as they were: weights and buffers, optimizer
    state and hyperparameters, the grad scaler, the training loader's order and random state, and the
    process's RNGs."""
    check_range(steps, start_lr, end_lr)
    kept = _Kept.take(parts)
    recorder = _Recorder(steps, start_lr, end_lr)
    try:
        step = replace(parts.step, scheduler=_schedule(parts.step.optimizer, recorder.rate))
        passes = 0
        bar = tqdm(total=steps * step.accumulate_steps, desc="lr-find", unit="batch", leave=False,
                   disable=quiet or not sys.stderr.isatty())
        with bar:
            while recorder.reason is None:
                passes += 1
                set_epoch(parts.train_loader, passes)  # the order epoch `passes` of the run would see
                train_epoch(parts.step_model, parts.train_loader, step, parts.num_classes,
                            first_step=len(recorder.losses), epoch_batches=parts.batches_per_epoch,
                            hook=recorder, progress=bar)
    finally:
        kept.restore(parts)
    centered, index, problem = suggest(recorder.lrs, recorder.losses, start_lr, end_lr)
    return LrFindResult(recorder.lrs, recorder.losses, recorder.smoothed, centered,
                        None if index is None else float(f"{recorder.lrs[index]:.2g}"), index,
                        recorder.stopped_early, recorder.reason, problem, start_lr, end_lr, steps, passes,
                        len(recorder.losses) * step.accumulate_steps, parts.batches_per_epoch)


def suggest(lrs: list[float], losses: list[float], start_lr: float, end_lr: float
            ) -> tuple[list[float], int | None, str | None]:
    """(the centered average of `losses`, the step of its steepest descent against log10(lr), None), or with
    None and why not and what to change instead of the step.

    Why not the moving average's slope (fastai's lr_steep, Lightning's suggestion): the average's slope at step
    k is (1 - BETA) x (loss_k - the average before), largest where the loss is furthest below its past, which is
    at its lowest, next to divergence, not where it falls fastest. Measured on configs/lenet5_digits.yaml
    (100 steps, seeds 0-4): that rule suggested 0.14-0.29, and 0.2 trained to 96.9% test accuracy (0.3: 95.0%);
    the centered average's slope suggested 0.045-0.095, which trained each seed to 97.8-99.7% (the config's 0.05:
    97.8-99.2%). The average spans +-CENTERED_DECADES of lr (+-6 steps of the default sweep): in decades, so that
    a longer sweep smooths the same range of rates. The slope is looked for from the first SKIP_START steps' end
    (fewer on a short sweep) to the average's lowest point: past it the loss only rises. No suggestion either
    when the sweep spans under MIN_DECADES, when the loss falls by less than MIN_FALL over it (the slope of
    noise: 1e-7 to 1e-5 on lenet5_digits pointed at 4.3e-7), or when it falls fastest at end_lr (the rate
    would be the sweep's limit, not the loss's)."""
    n = len(losses)
    half = max(1, round(CENTERED_DECADES / math.log10(lrs[1] / lrs[0]))) if n > 1 else 1
    sums = np.concatenate([[0.0], np.cumsum(losses)])
    low, high = np.clip(np.arange(n) - half, 0, n), np.clip(np.arange(n) + half + 1, 0, n)
    centered = (sums[high] - sums[low]) / (high - low)  # the window shrinks at the ends instead of padding them
    skip = min(SKIP_START, n // 5)
    lowest = int(np.argmin(centered))
    problem = _no_slope(lrs, centered, skip, lowest, start_lr, end_lr)
    if problem is not None:
        return centered.tolist(), None, problem
    slopes = np.gradient(centered, np.log10(np.asarray(lrs)))  # nats per decade of lr
    index = skip + int(np.argmin(slopes[skip:lowest + 1]))
    # Within a window of the end of a sweep that reached end_lr, the slope may steepen past it: the averages there
    # lose the steps to their right.
    if index >= n - 1 - 2 * half and lrs[-1] >= end_lr / (1 + 1e-9):
        return centered.tolist(), None, (f"no suggestion: the loss fell fastest at the sweep's end, lr {lrs[-1]:.1e}; "
                                         f"sweep higher (--end-lr {max(end_lr * 100, END_LR):g})")
    return centered.tolist(), index, None


def _no_slope(lrs: list[float], centered: np.ndarray, skip: int, lowest: int, start_lr: float,
              end_lr: float) -> str | None:
    """Why the sweep's centered losses have no slope worth suggesting from, and what to change; None when they
    have: steps too coarse, too few decades covered, too few steps, the lowest loss too early, too small a fall."""
    n = len(centered)
    taken = f"{n} step{'s' if n != 1 else ''}"
    per_decade = 1 / math.log10(lrs[1] / lrs[0]) if n > 1 else 0.0
    if per_decade < MIN_PER_DECADE:
        needed = math.ceil(MIN_PER_DECADE * math.log10(end_lr / start_lr)) + 1
        return (f"no suggestion: {taken} of {per_decade:.2g} a decade of lr are too coarse to take the loss's slope; "
                f"sweep with --steps {max(needed, STEPS)}")
    covered = math.log10(lrs[-1] / lrs[0])
    if covered < MIN_DECADES:
        where = (f"start lower (--start-lr {start_lr / 100:g})" if lrs and lrs[-1] < end_lr / 1.0001
                 else f"sweep a wider range (--start-lr {min(start_lr, START_LR):g} --end-lr {max(end_lr, END_LR):g})")
        return (f"no suggestion: the sweep covered {covered:.2g} decade{'s' if covered != 1 else ''} of lr, fewer than "
                f"the {MIN_DECADES:g} the slope of a +-{CENTERED_DECADES:g}-decade average needs; {where}")
    if n < skip + MIN_POINTS:
        return f"no suggestion: {taken} are too few to take the loss's slope; sweep longer (--steps {STEPS})"
    if lowest < skip + MIN_POINTS - 1:
        return (f"no suggestion: the loss was lowest at lr {lrs[lowest]:.1e}, within the first "
                f"{skip + MIN_POINTS - 1} of {taken}; start lower (--start-lr {start_lr / 100:g})")
    fall = (centered[skip] - centered[lowest]) / abs(centered[skip]) if centered[skip] else 0.0
    if fall < MIN_FALL:  # a slope of the noise: the rate it points to trains no better than start_lr
        return (f"no suggestion: the loss fell by {fall:.1%} between lr {lrs[skip]:.1e} and {lrs[-1]:.1e} "
                f"({centered[skip]:.4g} to {centered[lowest]:.4g}), less than {MIN_FALL:.0%}; sweep higher "
                f"(--end-lr {max(end_lr * 100, END_LR):g})")
    return None


def plot_path(config: Config, output: Path | None) -> Path:
    """Where the picture goes: `output`, else <train.output_dir>/<run name>/lr_find.png, beside the config's runs
    (output_dir is the place this project writes to; the config's folder is source). One line if it is no PNG."""
    path = Path(output) if output is not None else config.train.output_dir / config.run_name / "lr_find.png"
    if path.suffix.lower() != ".png":
        raise ZooError(f"--output {path}: the picture is a PNG; name it *.png")
    if path.is_dir():
        raise ZooError(f"--output {path} is a folder; name a file in it, e.g. {path / 'lr_find.png'}")
    return path


def lr_overrides(overrides: list[str] | None, lr: float) -> list[str]:
    """`overrides` (--set) with optimizer.lr set to `lr`, as `zoo train` takes them; the user's own optimizer.lr
    gives way."""
    kept = [item for item in overrides or [] if item.partition("=")[0].strip() != "optimizer.lr"]
    return [*kept, f"optimizer.lr={lr:g}"]


# ---- the sweep ----------------------------------------------------------------------------------------

class _Recorder:
    """The hook after each optimizer step: the step's loss, its moving average, and whether to stop."""

    def __init__(self, steps: int, start_lr: float, end_lr: float) -> None:
        self.steps, self.start_lr, self.ratio = steps, start_lr, end_lr / start_lr
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.average, self.lowest = 0.0, math.inf
        self.reason: str | None = None
        self.stopped_early = False

    def rate(self, k: int) -> float:
        """optimizer.lr of step k (0 to steps - 1)."""
        return self.start_lr * self.ratio ** (min(k, self.steps - 1) / (self.steps - 1))

    def __call__(self, step: int, batches: int, loss: torch.Tensor, meter: MetricAccumulator) -> Stop | None:
        k = len(self.losses)
        value = float(loss)  # waits for the device: a sweep is short, and it must see every step
        if not math.isfinite(value):
            self.reason, self.stopped_early = f"the loss was not finite at lr {self.rate(k):.2g}", True
            return Stop(nonfinite_step=step)
        self.average = BETA * self.average + (1 - BETA) * value
        smooth = self.average / (1 - BETA ** (k + 1))
        self.lrs.append(self.rate(k))
        self.losses.append(value)
        self.smoothed.append(smooth)
        self.lowest = min(self.lowest, smooth)
        if smooth > DIVERGED * self.lowest:
            self.reason, self.stopped_early = (
                f"the smoothed loss passed {DIVERGED:g}x its lowest at lr {self.rate(k):.2g}", True)
        elif k + 1 == self.steps:
            self.reason = "reached --end-lr"
        return Stop() if self.reason is not None else None


def _schedule(optimizer: torch.optim.Optimizer, rate) -> LambdaLR:
    """The sweep's schedule on `optimizer`: each group at rate(k) x its lr_scale. The groups' momentum (betas) is
    the optimizer's own: a one-cycle schedule would have set its cycle's first value."""
    start = rate(0)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = start * group.get("lr_scale", 1.0)  # LambdaLR multiplies initial_lr
        for key in ("momentum", "betas"):
            if key in group and key in optimizer.defaults:
                group[key] = optimizer.defaults[key]
    return LambdaLR(optimizer, lambda k: rate(k) / start)


@dataclass
class _Kept:
    """What a sweep changes in Parts, taken before it to be put back after."""

    weights: dict[str, torch.Tensor]  # and buffers (batch norm's statistics)
    training: bool
    optimizer: dict[str, Any]
    scaler: dict[str, Any]
    loader: dict[str, Any]
    generator: torch.Tensor | None  # a DataLoader's: it seeds the workers of each new pass
    order: tuple[int, int]  # the sampler's epoch and the samples it skips next (resume_at)
    rng: dict[str, Any]

    @classmethod
    def take(cls, parts: Parts) -> _Kept:
        generator = getattr(parts.train_loader, "generator", None)
        return cls({name: value.detach().clone() for name, value in parts.model.state_dict().items()},
                   parts.model.training, copy.deepcopy(parts.step.optimizer.state_dict()),
                   copy.deepcopy(parts.step.scaler.state_dict()), copy.deepcopy(loader_state(parts.train_loader)),
                   generator.get_state() if isinstance(generator, torch.Generator) else None,
                   (parts.train_loader.sampler.epoch, parts.train_loader.sampler.skip), capture_rng())

    def restore(self, parts: Parts) -> None:
        parts.model.load_state_dict(self.weights)  # copies into the same tensors: the optimizer's
        parts.model.zero_grad(set_to_none=True)
        parts.model.train(self.training)
        parts.step.optimizer.load_state_dict(self.optimizer)
        if parts.step.scaler.is_enabled():
            parts.step.scaler.load_state_dict(self.scaler)
        load_loader_state(parts.train_loader, self.loader)
        parts.train_loader.sampler.epoch, parts.train_loader.sampler.skip = self.order
        if self.generator is not None:
            parts.train_loader.generator.set_state(self.generator)
            if getattr(parts.train_loader, "_iterator", None) is not None:
                # persistent workers' random state went on: the next pass starts new ones
                parts.train_loader._iterator = None
        restore_rng(self.rng)


@contextlib.contextmanager
def _process_kept() -> Iterator[None]:
    """The process's settings that assemble changes (seed_everything, tune_backends, train.threads), put back
    afterwards."""
    rng = capture_rng()
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        restore_rng(rng)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.benchmark = benchmark
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


# ---- the picture ----------------------------------------------------------------------------------------

def write_plot(result: LrFindResult, path: Path, title: str = "learning-rate range test") -> Path:
    """The losses against lr on a log axis (zoo.present.figures.lr_find_image: each step's faint, the moving
    average, the centered average, the suggestion marked), as a PNG written atomically to `path`."""
    from zoo.present.figures import lr_find_image, png

    atomic_write(Path(path), png(lr_find_image(result, title)), fix="give --output a file in a writable folder")
    return Path(path)
