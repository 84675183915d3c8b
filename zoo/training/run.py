"""`zoo train`: one run from a validated Config to a run directory with TensorBoard logs, checkpoints/last.pt and
best.pt (best by validation accuracy), and metrics.json; or, resumed, the rest of a run in its own directory."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import read_state
from zoo.config import Config, load_config
from zoo.distributed import Job, launch
from zoo.errors import ZooError
from zoo.loop import EpochResult, evaluate_loader, train_epoch
from zoo.metrics.calibration import Calibration
from zoo.present.console import say
from zoo.rundir import RunLock, WriteError, check_present, write_json
from zoo.training.calibrate import COVERAGE  # metrics.json's prediction sets are at this target
from zoo.training.directory import RunDirectory
from zoo.training.guard import Guard, one_line_errors
from zoo.training.hooks import EarlyStopping, Judge, Run, StepHook, better, record_epoch, section, stopped
from zoo.training.log import RunLog
from zoo.training.restarts import Attempt, find_run
from zoo.training.resume import ResumePlan, continue_run, prepare_resume
from zoo.training.setup import Parts, assemble, topic


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]  # what metrics.json holds


def train(config: Config, quiet: bool = False, resume: ResumePlan | None = None, said: Sequence[str] = (),
          judge: Judge | None = None) -> RunResult:
    """Train and test one model as `config` says (zoo.load_config); returns the run directory and what
    metrics.json holds. Every check and all data loading happen before anything is written; bad input raises
    ZooError, a signal or a non-finite loss RunStopped (after saving last.pt). Started by torchrun, each process
    trains its share with DDP (zoo.distributed) and rank 0 writes the run. `quiet`: no progress bars (always
    off when stderr is not a terminal). `resume`: used by zoo.resume, which continues a stopped run; without it,
    the run that train.run_id names, or a torchrun restart's first attempt began, is continued
    (zoo.training.restarts). `said`: set-up lines printed just before (lr-find --apply's sweep), not said again
    though their figures moved (the machine's load). `judge`: called on rank 0 after each epoch's validation with
    (epoch, its validation top-1); True stops the run there as early stopping does, and it is tested and written
    as any run (zoo sweep's pruner; metrics.json's `pruned_at_epoch`)."""
    with launch(config.train.device) as job:
        attempt = Attempt.current()
        if resume is None:
            # the same command line again: a launcher's restart, or train.run_id's run (zoo.training.restarts)
            action, run_dir = job.share(_find_run(config, attempt) if job.is_main else None)
            if action == "finished" and attempt.restarted:  # the run ended; a worker failed as the job did
                say(f"{attempt.describe()}: {run_dir} finished before it (metrics.json); nothing left to do")
                return RunResult(run_dir, json.loads((run_dir / "metrics.json").read_text()))
            if action == "continue":
                reason = attempt.describe() if config.train.run_id is None else f"train.run_id {config.train.run_id}"
                resume = continue_run(run_dir, config, reason)
            elif action != "new":
                _refuse(action, run_dir, config)
            if action == "again":  # begun by an earlier attempt, never saved: it goes, once the checks pass
                return _run(config, job, quiet, None, attempt, stale=run_dir, said=said, judge=judge)
        return _run(config, job, quiet, resume, attempt, said=said, judge=judge)


def resume(target: str | Path, config: str | Path | None = None, overrides: list[str] | None = None,
           allow_config_change: bool = False, quiet: bool = False) -> RunResult:
    """`zoo train --resume`: continue the run in `target` (its directory or a checkpoint) exactly, with its own
    config, or with `config` / `overrides` when they match it or `allow_config_change`."""
    plan = prepare_resume(Path(target), Path(config) if config is not None else None, overrides, allow_config_change)
    return train(plan.config, quiet=quiet, resume=plan)


def finetune(config: str | Path, overrides: list[str] | None = None, quiet: bool = False) -> RunResult:
    """`zoo finetune`: train as the YAML file `config` (with `overrides`) says, which must have a finetune section
    (finetune.source: the weights to start from); a ZooError otherwise, naming the file."""
    resolved = load_config(config, overrides)
    if resolved.finetune is None:
        raise ZooError(f"{config} has no finetune section; add finetune.source (a checkpoint, a .pth file or "
                       "torchvision:<Weights>), or run zoo train")
    return train(resolved, quiet=quiet)


def _find_run(config: Config, attempt: Attempt) -> tuple[str, Path | str | None]:
    """(zoo.training.restarts.find_run's action, its run directory), on rank 0, or ("error", the one line) to raise on
    every rank."""
    parent = config.train.output_dir / config.run_name
    try:
        return find_run(parent, config.train.run_id, attempt)
    except OSError as error:
        return "error", f"cannot read {parent} ({error.strerror}); set train.output_dir to a readable folder"


def _refuse(action: str, run_dir: Path | str, config: Config) -> None:
    """The one line for a start that can neither begin nor continue a run (zoo.training.restarts.find_run's action)."""
    if action == "error":
        raise ZooError(str(run_dir))
    if action == "busy":
        lock = RunLock(Path(run_dir))
        raise lock.in_use(*lock.blocker() or (None, None))
    if action == "finished":
        raise ZooError(f"train.run_id {config.train.run_id} names a finished run, {run_dir} (metrics.json); choose "
                       f"another train.run_id for a new run, or train it further with zoo train --resume {run_dir} "
                       f"--set train.epochs=N --allow-config-change")
    if action == "foreign":
        what, kind = (("is a file", "file") if Path(run_dir).is_file() else
                      ("exists and is not a run zoo began (no launch.json, no checkpoint)", "folder"))
        raise ZooError(f"train.run_id {config.train.run_id}: {run_dir} {what}; choose another train.run_id, or move "
                       f"that {kind}")


def _run(config: Config, job: Job, quiet: bool, plan: ResumePlan | None, attempt: Attempt,
         stale: Path | None = None, said: Sequence[str] = (), judge: Judge | None = None) -> RunResult:
    """The run: set up, then in its directory: train the epochs, test best.pt, write metrics.json. `stale`: a run
    directory an earlier attempt began and never saved in, removed before the run's is created (train.run_id's is
    made again; a torchrun restart's new run gets a new time-stamped one)."""
    with one_line_errors(job.device, config.data.batch_size):
        parts = assemble(config, job, plan)  # data, model, weights, optimizer: every check before anything is written
        config, progress = parts.config, parts.position.progress
        with RunDirectory(config, job, plan, attempt, stale) as directory, \
                RunLog(directory.path, config, job, quiet) as log:
            before = {topic(line) for line in said}
            for note in parts.start_notes + directory.notes():
                if topic(note) not in before:
                    print(note, file=sys.stderr, flush=True)
            run = Run(parts, job, directory.path, log, Guard(job.device, job.distributed),
                      EarlyStopping.of(config.train.early_stopping, progress), judge)
            if job.is_main:
                run.saver.clean()
            run.saver.write_config(config)
            log.start(run.directory, parts, plan.changes if plan else None, plan.checkpoint.name if plan else None,
                      plan.reason if plan else None)
            with run.guard.handling_signals():
                # the random state last: building the model and loaders drew from it
                parts.position.restore(parts.train_loader)
                step, pruned = _epochs(run)
            if job.is_main:
                check_present(run.directory)  # before best.pt is read back
            test, metrics = _finish(run, progress, step, pruned)
    m = test.metrics
    top5 = f" top5 {m.top5_accuracy:.2%}" if m.top5_accuracy is not None else ""
    given = "gray" if parts.config.reconstruction.colorize else "noisy"
    noisy = f" ({given} input {m.input_psnr:.2f} dB)" if getattr(m, "input_psnr", None) is not None else ""
    say(f"test loss {m.loss:.4f} {parts.task.accuracy_name} {parts.task.shown(m.accuracy).strip()}{top5}{noisy} "
        f"({m.count:,} images, best epoch "
        f"{progress.best_epoch})\n"
        f"metrics: {run.directory / 'metrics.json'}")
    if "calibration" in metrics:
        say(_calibration_line(metrics, parts.splits.vocabulary is None))
    return RunResult(run.directory, metrics)


def _calibration_line(metrics: dict[str, Any], pictures: bool = True) -> str:
    """What the run's calibration does on the test split, in one line (zoo.metrics.calibration's figures); a run
    without `pictures` (text's) says its unfamiliar score is the energy alone."""
    calibration, conformal = metrics["calibration"], metrics["conformal"]
    alone = "" if pictures else " (by the energy alone: sentences have no pixel statistics)"
    unfamiliar = (f", {metrics['unfamiliar']['test_flagged']:.2%} of it flagged unfamiliar{alone}"
                  if "unfamiliar" in metrics else "")
    kept = " (kept: no validation mistake to fit it on)" if calibration["temperature"] == 1.0 else ""
    return (f"calibrated on the validation split: temperature {calibration['temperature']:.3f}{kept} (test ECE "
            f"{calibration['ece_before']:.2%} -> {calibration['ece_after']:.2%}); {conformal['target']:.0%} prediction "
            f"sets cover {conformal['coverage']:.2%} of the test split with {conformal['mean_set_size']:.2f} classes"
            f"{unfamiliar}")


def _finish(run: Run, progress, step: int, pruned: int | None) -> tuple[EpochResult, dict[str, Any]]:
    """After the epochs: best.pt's weights decide the thresholds and fit the calibration, then are tested; rank 0
    writes test_scores.npz and, last, metrics.json. Returns the test split's figures and what metrics.json holds."""
    parts, job = run.parts, run.job
    _load_best(parts, job, run.directory)
    if _decide(parts, job, run.directory) and parts.val_loader is not None:
        progress.best_val = section(_validate(parts, parts.model))  # the figures at the thresholds decided
    calibration = _calibrate(parts, job, run.directory)
    test, scores = _test_best(parts, job)
    metrics = _metrics(parts, progress, step, test) | ({"pruned_at_epoch": pruned} if pruned else {})
    if calibration is not None and scores is not None:
        metrics |= calibration.figures(*scores, coverage=COVERAGE)
    scores = scores[:2] if scores is not None else None
    if job.is_main:
        try:
            if scores is not None:  # a reconstruction has no class scores
                _write_scores(parts, run.directory, *scores, 1.0 if calibration is None else calibration.temperature)
            write_json(run.directory / "metrics.json", metrics)  # last: a run with metrics.json has all
        except WriteError as error:
            raise error.with_fix(f"the checkpoints are saved: free some space, then zoo train --resume "
                                 f"{run.directory} tests best.pt again and writes the rest") from None
    run.log.finish(test, progress.epochs_run, progress.best_val, parts.splits.classes, scores, parts.task)
    return test, metrics


def _epochs(run: Run) -> tuple[int, int | None]:
    """For each epoch left: train, validate, log, checkpoint, stop? Returns the run's optimizer steps, and the epoch
    the judge stopped it at (None: it did not)."""
    parts, job, log, guard, saver, stopper = run.parts, run.job, run.log, run.guard, run.saver, run.stopper
    config, position = parts.config, parts.position
    progress, step = position.progress, position.step
    for epoch in range(position.epoch + 1, config.train.epochs + 1):
        start_batch, meter = parts.enter_epoch(epoch, job)
        with log.bar(epoch, start_batch, parts.batches_per_epoch) as bar:
            result = train_epoch(parts.step_model, parts.train_loader, parts.step, parts.num_classes,
                                 first_step=step, start_batch=start_batch, epoch_batches=parts.batches_per_epoch,
                                 meter=meter, hook=StepHook(epoch, run), progress=bar)
        step = result.steps
        progress.seconds, progress.images = progress.seconds + result.seconds, progress.images + result.images
        stop = result.stop or guard.check(step, force=True)  # nothing non-finite is validated or saved
        if stop is not None and (stop.nonfinite_step is not None or result.batches < parts.batches_per_epoch):
            raise stopped(stop, epoch, result.batches, step, run.directory, job, config.train.run_id)
        val = _validate(parts, parts.model)
        ema_val = _validate(parts, parts.ema.module) if parts.ema is not None else None  # beside the raw weights
        log.epoch(epoch, result, val, parts, ema_val)
        chosen, weights = better(val, ema_val) if parts.ema is not None else (val, "raw")
        improved = record_epoch(progress, epoch, result, chosen, weights)
        early_stop = stopper is not None and chosen is not None and stopper.should_stop(chosen)
        pruned = run.judge is not None and chosen is not None and job.share(
            run.judge(epoch, chosen.metrics.accuracy) if job.is_main else None)
        saver.save(epoch, 0, step, None, best=improved)
        stop = stop or guard.check(step, force=True)  # a signal during validation or the save
        if stop is not None:
            raise stopped(stop, epoch + 1, 0, step, run.directory, job, config.train.run_id)
        if early_stop:
            say(f"early stopping: {stopper.metric} has not improved for {stopper.patience} epochs")
            break
        if pruned:
            figure = "top-1" if parts.task.has_classes else parts.task.accuracy_name
            say(f"pruned at epoch {epoch}: its validation {figure} {parts.task.shown(chosen.metrics.accuracy).strip()} "
                "trails the sweep's other trials at this epoch")
            return step, epoch
    return step, None


def _validate(parts: Parts, network) -> EpochResult | None:
    if parts.val_loader is None:
        return None
    return evaluate_loader(network, parts.val_loader, parts.compute, parts.eval_criterion, parts.num_classes,
                           task=parts.task)


def _load_best(parts: Parts, job: Job, run_dir: Path) -> None:
    """best.pt's weights into the network, on every rank (the other ranks may not see rank 0's disk)."""
    if job.is_main:
        parts.model.load_state_dict(read_state(run_dir / "checkpoints" / "best.pt", "weights", job.device).model)
    job.sync_module(parts.model)


def _decide_thresholds(parts: Parts, job: Job, run_dir: Path) -> bool:
    """A multi-label run's decision thresholds, on best.pt's weights: config.multilabel.threshold for every class,
    or (val) each class's maximising its F1 on the validation split (zoo.metrics.multilabel.best_thresholds); written
    into best.pt, and the task validates and tests with them (metrics.json's val and test: zoo evaluate's figures;
    the epochs' were at 0.5). A single-label run decides by the arg max: nothing to choose (False)."""
    from dataclasses import replace

    from zoo.checkpoint import save_checkpoint
    from zoo.metrics.multilabel import best_thresholds
    from zoo.tasks import get_task

    config = parts.config
    if not parts.task.label_sets:
        return False
    chosen = config.multilabel.threshold
    if chosen != "val":
        thresholds = [float(chosen)] * parts.num_classes
    elif parts.val_loader is None:
        thresholds = [0.5] * parts.num_classes
    else:
        _, scores = _scores(parts, job, parts.val_loader)
        thresholds = (best_thresholds(parts.task.probabilities(scores[0]), scores[1]).tolist() if job.is_main
                      else None)
        thresholds = job.share(thresholds)
    parts.step = replace(parts.step, task=get_task(config.task, thresholds))
    if job.is_main:
        best = run_dir / "checkpoints" / "best.pt"
        save_checkpoint(replace(read_state(best, "weights"), thresholds=thresholds), best)
    return True


def _decide(parts: Parts, job: Job, run_dir: Path) -> bool:
    """What the task decides on best.pt's weights at the end of the run: a multi-label model's thresholds (True: the
    validation figures change with them), or an autoencoder's anomaly threshold."""
    _decide_anomaly_threshold(parts, job, run_dir)
    return _decide_thresholds(parts, job, run_dir)


def _decide_anomaly_threshold(parts: Parts, job: Job, run_dir: Path) -> None:
    """A reconstruction run's anomaly threshold, on best.pt's weights: the reconstruction error above which
    config.reconstruction.false_positive_rate of the validation split's (normal) pictures lie; written into best.pt,
    where zoo predict and zoo evaluate read it. None without a validation split."""
    from dataclasses import replace

    from zoo.checkpoint import save_checkpoint
    from zoo.metrics.reconstruction import threshold_at
    from zoo.tasks import task_of

    if parts.task.name != "reconstruction" or parts.val_loader is None or parts.config.reconstruction.colorize:
        return  # colourisation's output is not its input: no anomaly to flag
    errors: list[torch.Tensor] = []
    evaluate_loader(parts.model, parts.val_loader, parts.compute, parts.eval_criterion, parts.num_classes,
                    task=parts.task, scores=errors)
    shares = job.gather(torch.cat(errors) if errors else torch.empty(0, dtype=torch.float64))
    threshold = threshold_at(torch.cat(shares).numpy(), parts.config.reconstruction.false_positive_rate) \
        if job.is_main else None
    threshold = job.share(threshold)
    parts.step = replace(parts.step, task=task_of(parts.config, anomaly_threshold=threshold))
    if job.is_main:
        best = run_dir / "checkpoints" / "best.pt"
        save_checkpoint(replace(read_state(best, "weights"), anomaly_threshold=threshold), best)


def _calibrate(parts: Parts, job: Job, run_dir: Path) -> Calibration | None:
    """A single-label classifier's calibration on best.pt's weights (zoo.training.calibrate): fitted on rank 0 from
    the validation split gathered over the ranks and the training images' pixel statistics, written into best.pt.
    None for another task, without a validation split, or with calibration.enabled false (said once)."""
    from dataclasses import replace

    from zoo.checkpoint import save_checkpoint
    from zoo.training.calibrate import train_features

    config = parts.config
    if parts.task.name != "classification" or not config.calibration.enabled:
        return None
    if parts.val_loader is None:
        if job.is_main:
            say("note: no validation split (data.val_split 0), so no temperature, prediction sets or unfamiliar "
                "score: zoo predict gives the raw softmax; train with data.val_split above 0 for them", file=sys.stderr)
        return None
    _, scores = _scores(parts, job, parts.val_loader)
    if not job.is_main:
        return None
    pixels = train_features(parts.splits, config.data, parts.compute.device)
    calibration = Calibration.fit(*scores, pixels, config.calibration.familiar_share)
    best = run_dir / "checkpoints" / "best.pt"
    save_checkpoint(replace(read_state(best, "weights"), calibration=calibration), best)
    return calibration


def _test_best(parts: Parts, job: Job) -> tuple[EpochResult, tuple[torch.Tensor, ...] | None]:
    """The test split on best.pt's weights (_load_best), on every rank; and, on rank 0, its (N x classes logits, N
    labels) over every rank's share in the split's order, for TensorBoard's PR curves and test_scores.npz (one pass,
    after the training loop: its cost is the copy of each test batch's logits to the CPU). A reconstruction's
    figures alone: its outputs are pictures, not class scores."""
    if not parts.task.has_classes:
        return _validate_split(parts, parts.test_loader), None
    return _scores(parts, job, parts.test_loader)


def _validate_split(parts: Parts, loader) -> EpochResult:
    return evaluate_loader(parts.model, loader, parts.compute, parts.eval_criterion, parts.num_classes,
                           task=parts.task)


def _scores(parts: Parts, job: Job, loader) -> tuple[EpochResult, tuple[torch.Tensor, ...] | None]:
    """One split's figures on every rank, and on rank 0 its (N x classes logits, targets: N labels, or N x classes
    for multi-label, N x D pixel statistics of the inputs) gathered over every rank's share in the split's order."""
    logits: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    features: list[torch.Tensor] = []
    result = evaluate_loader(parts.model, loader, parts.compute, parts.eval_criterion, parts.num_classes,
                             logits=logits, targets=targets, task=parts.task, features=features)
    mine = ((torch.cat(logits), torch.cat(targets), torch.cat(features)) if logits
            else (torch.empty(0, parts.num_classes), parts.task.empty_targets(parts.num_classes),
                  torch.empty(0, 0, dtype=torch.float64)))
    shares = job.gather(mine)  # a rank's share may be empty: a split of fewer images than ranks
    if not job.is_main:
        return result, None
    count = sum(len(share[1]) for share in shares)
    width = max(share[2].shape[1] for share in shares)
    gathered = (torch.empty(count, parts.num_classes), torch.empty((count, *mine[1].shape[1:]), dtype=mine[1].dtype),
                torch.empty(count, width, dtype=torch.float64))
    # rank r evaluated samples r, r + w, ... (ShardSampler)
    for rank, share in enumerate(shares):
        for whole, part in zip(gathered, share):
            if len(part):
                whole[rank::len(shares)] = part.to(whole.dtype)
    return result, gathered


def _write_scores(parts: Parts, run_dir: Path, logits: torch.Tensor, targets: torch.Tensor,
                  temperature: float = 1.0) -> None:
    """test_scores.npz (zoo.evaluation.scores) for zoo report: the scores (the network's logits), and the pictures of
    the most confidently wrong images where the data set holds tensors (16 samples read again: milliseconds), the
    surest first by the probabilities the model gives (divided by the calibration's `temperature`)."""
    from zoo.evaluation.scores import fingerprint, most_confidently_wrong, write_scores

    if parts.task.label_sets:  # the file holds class indices: zoo report evaluates best.pt instead
        return
    test = parts.splits.test
    paths = getattr(test, "paths", None)
    wrong = most_confidently_wrong((logits / temperature).numpy(), targets.numpy())
    pictures = None
    if paths is None and wrong.size:
        from zoo.present.figures import input_picture

        inputs = [test[int(index)][0] for index in wrong]
        if all(image.dim() == 3 for image in inputs):  # images, not xor's points
            pictures = [input_picture(image, parts.splits.mean, parts.splits.std) for image in inputs]
    data = parts.config.data
    facts = {"data": data.name, "classes": parts.splits.classes,
             # FakeData's pictures are a function of their index and these
             "synthetic": [data.synthetic_size, data.synthetic_classes] if data.name == "synthetic" else None}
    split = fingerprint(test, targets.numpy(), facts)
    write_scores(run_dir, logits.numpy(), targets.numpy(), paths, wrong, pictures, split)


def _metrics(parts: Parts, progress, step: int, test) -> dict[str, Any]:
    """metrics.json: the best epoch's validation figures, the test split's, and the training totals."""
    config = parts.config
    return {
        "model": config.model.name,
        "data": config.data.name,
        "skipped_images": len(parts.splits.skipped),  # unreadable files left out of an ImageFolder
        "best_epoch": progress.best_epoch,
        "best_weights": progress.best_weights,  # "ema": train.ema's average validated better than the weights
        "epochs_run": progress.epochs_run,
        "val": progress.best_val,
        "test": section(test),
        # a reconstruction's: the reconstruction error above which zoo predict calls a picture abnormal
        **({"anomaly_threshold": parts.task.threshold} if not parts.task.has_classes else {}),
        "train": {"time_s": round(progress.seconds, 3),
                  "images_per_s": round(progress.images / max(progress.seconds, 1e-9), 1),
                  "images": progress.images, "steps": step},
    }
