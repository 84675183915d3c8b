"""Setting a run up: the data, the model with its weights (initialized, fine-tuning's source, or a resumed
checkpoint's), freezing, and the optimizer, schedule and loss. Every check happens here, before the run
writes anything."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.checkpoint import Normalization, TrainingState, load_weights
from zoo.config import Config
from zoo.data import DataSplits, build_datasets, build_loaders, resume_at, set_epoch, uses_memory
from zoo.data.transforms import batch_mixing
from zoo.datasets import SPECS
from zoo.distributed import Job
from zoo.errors import ZooError
from zoo.loop import Compute, TrainStep
from zoo.metrics import MetricAccumulator
from zoo.models.weight_init import init_weights
from zoo.runtime import (
    busy_cpus,
    compiled,
    cpu_threads,
    grad_scaler,
    load_note,
    memory_format,
    seed_everything,
    threads_note,
    tune_backends,
)
from zoo.tasks import Classification, Task, task_of
from zoo.training.ema import WeightAverage, horizon_note
from zoo.training.finetune import Freezer, Source, describe, lr_scale, read_source, transplant
from zoo.training.imbalance import class_weights, imbalance_note, numeric_order_note, weights_line
from zoo.training.optim import build_optimizer, build_scheduler
from zoo.training.resume import Position, ResumePlan, restore_optimization


@dataclass
class Parts:
    """What a run trains with. `model` is the network; `step_model` is what training steps call (DDP and
    torch.compile around it), renewed when frozen layers join."""

    config: Config  # with a weights source's normalization, where it brings one
    splits: DataSplits
    train_loader: object
    val_loader: object | None
    test_loader: object
    model: nn.Module
    step_model: nn.Module
    freezer: Freezer | None
    step: TrainStep
    batches_per_epoch: int  # of the training loader, train.max_steps_per_epoch's cut included
    steps_per_epoch: int  # optimizer steps: batches_per_epoch / train.accumulate_steps, rounded up
    position: Position
    resume_notes: list[str]  # what a resumed run with a changed config says it does (zoo.training.resume)
    ema: WeightAverage | None = None  # train.ema's average of the weights
    # The run's lines on its set-up (the data's classes and splits, the class weights) and a new run's notes
    # (class imbalance, threads, the EMA's horizon), printed once its directory exists: a run refused after
    # assemble (a folder it cannot write) says one line, the error.
    start_notes: list[str] = field(default_factory=list)

    @property
    def compute(self) -> Compute:
        return self.step.compute

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def task(self) -> Task:
        """What the network is trained to do (config.task): its loss, figures and decisions (zoo.tasks)."""
        return self.step.task

    @property
    def eval_criterion(self) -> nn.Module:
        """The validation and test loss: the task's plain loss (cross-entropy, or binary cross-entropy), without
        loss.class_weights and label smoothing, as timm validates and as zoo evaluate and zoo report measure a
        checkpoint: one test loss wherever it is shown, and val_loss (and early stopping on it) measures the model,
        not the training loss's weighting or smoothing (with label smoothing 0.1 the smoothed loss of a perfect
        model is still about 0.5)."""
        return self.task.eval_criterion()

    def state(self, job: Job, **training: object) -> TrainingState:
        """The checkpoint of the network now, with `training` (optimizer, position ...) when resumable."""
        splits = self.splits
        if training:
            training["split_sizes"] = split_sizes(splits)
            if self.ema is not None:
                training["ema"] = self.ema.state_dict()
        return TrainingState.of_network(self.model, self.config.to_dict(), splits.classes, self.normalization,
                                        splits.vocabulary, **training)

    def averaged_state(self) -> TrainingState:
        """best.pt when the average of the weights validated better: its weights alone (no training state, so
        that a resumed run never trains on from the average)."""
        return TrainingState.of_network(self.ema.module, self.config.to_dict(), self.splits.classes, self.normalization,
                                        self.splits.vocabulary, weights="ema")

    @property
    def normalization(self) -> Normalization:
        """How the network's inputs are prepared, as every checkpoint of the run records it."""
        splits = self.splits
        if self.config.reconstruction.colorize:  # what the network takes: the gray picture, unnormalized
            return Normalization((0.0,), (1.0,), splits.input_size, 1)
        return Normalization(tuple(splits.mean), tuple(splits.std), splits.input_size, splits.in_channels)

    def enter_epoch(self, epoch: int, job: Job) -> tuple[int, MetricAccumulator | None]:
        """Ready `epoch`: frozen layers join at finetune.unfreeze_at_epoch, and the loader draws the epoch's
        order (a resumed epoch: from the batch it stopped at). Returns that batch and the epoch's sums so far."""
        start_batch, meter = self.position.entering(epoch, lambda: self.task.meter(self.num_classes,
                                                                                   self.compute.device))
        finetune = self.config.finetune
        if self.freezer is not None and self.freezer.frozen and epoch == finetune.unfreeze_at_epoch:
            self.freezer.unfreeze()
            # DDP must see the new parameters
            self.step_model = compiled(job.wrap(self.model), self.compute.device, self.config.train.compile)
            print(f"epoch {epoch}: every layer trains from now on")
        if start_batch:
            resume_at(self.train_loader, epoch, start_batch)
        else:
            set_epoch(self.train_loader, epoch)
        return start_batch, meter


def check_classes(classes: list[str], config: Config) -> None:
    """A classifier needs two classes or more: with one, every loss is 0 and every accuracy 100%. An autoencoder
    needs one (the normal pictures may all be one class)."""
    if len(classes) >= (1 if config.task == "reconstruction" else 2):
        return
    data = config.data
    if data.classes is not None:
        raise ZooError(f"data.classes keeps {len(data.classes)} class ({', '.join(classes)}); a classifier needs at "
                       "least 2: list two or more class indices (an autoencoder, task: reconstruction, trains on one)")
    where = f"{data.root} holds" if data.name == "imagefolder" else f"{data.name} has"
    hint = ""
    if data.name == "imagefolder":
        from zoo.data.folders import nesting_hint

        hint = nesting_hint(data.root, classes)
    fix = {"text": "give the sentences of at least 2 labels", "manifest": "list images of at least 2 labels"}.get(
        data.name, "add a folder of images per class")
    raise ZooError(f"{data.name}: {where} {len(classes)} class{'' if len(classes) == 1 else 'es'} "
                   f"({', '.join(classes) or 'none'}); a classifier needs at least 2: {fix}{hint}")


def split_sizes(splits: DataSplits) -> dict[str, int]:
    return {name: len(split) if split is not None else 0
            for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test))}


def check_same_data(splits: DataSplits, plan: ResumePlan) -> None:
    """A resumed run's data must be the run's: the same classes and as many images in each split, and a text run's
    vocabulary the same words. Images added or removed since would redraw the held-out splits and move the position
    in the epoch; another vocabulary would give the trained word vectors other words."""
    saved = plan.state
    if saved.classes and list(splits.classes) != list(saved.classes):
        raise ZooError(f"the data's classes ({', '.join(splits.classes[:5])} ...) are not the run's "
                       f"({', '.join(saved.classes[:5])} ...); resume on the data it trained on")
    now = split_sizes(splits)
    if saved.split_sizes and now != saved.split_sizes:
        changed = "; ".join(f"{name} {saved.split_sizes.get(name, 0):,} -> {count:,} images"
                            for name, count in now.items() if count != saved.split_sizes.get(name, 0))
        raise ZooError(f"the data changed since {plan.checkpoint} was saved ({changed}): its splits would be drawn "
                       "again; resume on the same images, or start a new run (fine-tune from the checkpoint)")
    if saved.vocabulary is not None and splits.vocabulary.words != saved.vocabulary.words:
        raise ZooError(f"the training split's vocabulary ({len(splits.vocabulary.words):,} words) is not the run's "
                       f"({len(saved.vocabulary.words):,}): its sentences changed since {plan.checkpoint} was saved; "
                       "resume on the same sentences")


def check_batch_of_one(config: Config, num_classes: int, in_channels: int, input_size: int) -> None:
    """Batch norm cannot train on one value per channel (torch raises in the first step): with batches of one
    image, a forward pass in training mode on the meta device (shapes only, nothing computed) finds it first."""
    with torch.device("meta"):
        probe = config.model.build(num_classes, in_channels).train()
    norms = [(name, module) for name, module in probe.named_modules()
             if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    if not norms:  # nothing to find (and a network of other inputs, a text one's, need not be run on a picture)
        return
    entered: list[str] = []
    for name, module in norms:
        module.register_forward_pre_hook(lambda module, args, name=name: entered.append(name))
    shape = (1, in_channels, input_size, input_size) if input_size > 1 else (1, in_channels)
    try:
        probe(torch.empty(shape, device="meta"), return_aux=True)
    except ValueError as error:
        if "Expected more than 1 value per channel" not in str(error):
            raise
        size = "x".join(map(str, shape[2:]))
        raise ZooError(f"data.batch_size 1: {config.model.name}'s batch norm {entered[-1]} sees one value per channel "
                       f"in training at {size} inputs; set data.batch_size to 2 or more, or use larger inputs "
                       "(data.input_size)") from None


def assemble(config: Config, job: Job, plan: ResumePlan | None) -> Parts:
    """Everything `config` trains with, on this process's device; with `plan`, as its checkpoint left it. Stage by
    stage, in the order their random draws and checks have always been made: the data, the network and its checks,
    the position and the CPU threads, the weights (fine-tuning's source or the checkpoint's) and freezing, then
    the optimization step. Every check comes before the run writes anything."""
    # DDP starts every rank from rank 0's weights
    seed_everything(config.train.seed + job.rank, config.train.deterministic)
    tune_backends(job.device, config.train.precision, config.train.deterministic)
    config, source = weights_source(config, plan)
    data = build_data(config, job, plan)
    model = build_model(config, data, job)
    vectors_notes = word_vectors(model, data.splits, job) if plan is None else []
    position = Position.of(plan.state, job) if plan else Position()
    threads_notes = set_threads(config, job, plan, position)
    step_model, freezer = place_weights(model, config, job, plan, source, position)
    step, ema, resume_notes, step_notes = build_step(config, model, data, job, plan, freezer, position)
    return Parts(config, data.splits, *data.loaders, model, step_model, freezer, step, data.batches_per_epoch,
                 data.steps_per_epoch, position, resume_notes, ema,
                 data.notes + vectors_notes + threads_notes + step_notes)


def topic(line: str) -> str:
    """What a set-up line is about (lr-find --apply's run leaves out what its sweep said, zoo.training.run.train):
    a note's text up to the colon after its subject ('note: train.threads auto'), so that a note whose figures
    moved since (the machine's load) is the same note; any other line whole."""
    head, colon, _ = line.partition(": ")
    if head != "note" or colon == "":
        return line
    subject, colon, _ = line[len("note: "):].partition(": ")
    return f"note: {subject}" if colon else line


def weights_source(config: Config, plan: ResumePlan | None) -> tuple[Config, Source | None]:
    """A new fine-tuning run's source of weights (finetune.source), read before anything else: its normalization
    becomes the config's, since pre-trained weights expect their statistics. None for other runs."""
    finetune = config.finetune
    if finetune is None or plan is not None:
        return config, None
    source = read_source(finetune.source, config.model.name, finetune.source_key)
    if source.normalization is not None:
        config = config.with_normalization(source.normalization.mean, source.normalization.std, config.geometry()[0])
    return config, source


@dataclass(frozen=True)
class Data:
    """What build_data gives the run: the splits, their (train, val, test) loaders, the training loss's class
    weights, the epoch's length, and the notes a new run prints on its data."""

    splits: DataSplits
    loaders: tuple[Any, Any, Any]
    class_weights: torch.Tensor | None
    batches_per_epoch: int  # of the training loader, train.max_steps_per_epoch's cut included
    steps_per_epoch: int  # optimizer steps: batches_per_epoch / train.accumulate_steps, rounded up
    notes: list[str]


def build_data(config: Config, job: Job, plan: ResumePlan | None) -> Data:
    """The data sets and loaders, checked: two classes or more, a resumed run's data the run's own, class weights
    of the right length."""
    input_size, in_channels = config.geometry()[1], config.data_channels()
    splits = build_datasets(config.data, in_channels=in_channels, input_size=input_size, seed=config.train.seed,
                            multilabel=config.task == "multilabel")
    check_classes(splits.classes, config)
    if plan is not None:
        check_same_data(splits, plan)
    task = task_of(config)
    counts = task.class_counts(splits.train.labels, len(splits.classes))
    # a list of another length: one line, nothing written yet
    weights = class_weights(config, counts, splits.classes, task, len(splits.train))
    loaders = build_loaders(splits, config.data, seed=config.train.seed, distributed=job.distributed,
                            pin_memory=job.device.type == "cuda", device=job.device)
    per_step = config.train.accumulate_steps
    batches = min(len(loaders[0]), (config.train.max_steps_per_epoch or len(loaders[0])) * per_step)
    lines = [line for line in (splits.describe(config.data.name), weights_line(config, weights, splits.classes))
             if line] if job.is_main else []
    notes = data_notes(config, splits, counts, in_channels, task) if job.is_main and plan is None else []
    return Data(splits, loaders, weights, batches, -(-batches // per_step), lines + notes)


def data_notes(config: Config, splits: DataSplits, counts: torch.Tensor, in_channels: int,
               task: Task = Classification()) -> list[str]:
    """A new run's notes on its data: class names that are numbers out of numeric order, an imbalanced training
    split, colour pictures turned gray for a 1-channel model (a colour task fails silently in gray; not said where
    every picture is stored gray), per-image augmentation moved to DataLoader workers."""
    classes = splits.classes
    class_notes = (numeric_order_note(config, classes), imbalance_note(config, counts, classes)) if task.has_classes \
        else ()  # an autoencoder's classes are its normal pictures, not what it predicts
    notes = [note for note in class_notes if note]
    stored = SPECS[config.data.name].channels
    pictures = splits.input_size > 1  # xor's 2 features are not a picture's channels
    if config.model.in_channels is None and stored and pictures and in_channels < stored and not splits.gray:
        notes.append(f"note: {config.model.name} takes {in_channels} channel{'s' if in_channels > 1 else ''}: "
                     f"{config.data.name}'s {stored}-channel pictures are converted to gray, and their colour is "
                     f"lost; --set model.in_channels={stored} keeps it")
    if config.data.loader == "auto" and splits.memory is not None and not uses_memory(splits, config.data):
        notes.append("note: data.augment transforms images one by one: they run in DataLoader workers beside the "
                     "training step (data.loader auto); --set data.loader=memory runs them in this process")
    return notes


def build_model(config: Config, data: Data, job: Job) -> nn.Module:
    """The network, initialized as config.init says, on the device; refused in one line before anything is
    written when the inputs are too small for it, train.log_filters finds no convolution, its head is narrower
    than the classes, or batch norm would see batches of one image."""
    splits, train = data.splits, config.train
    in_channels = config.geometry()[0]
    model = init_weights(config.model.build(len(splits.classes), in_channels, splits.vocabulary), config.init)
    model = model.to(job.device, memory_format=memory_format(train.channels_last))
    if splits.input_size > 1:  # images: too small for the model fails here
        model.check_input(torch.empty(1, in_channels, splits.input_size, splits.input_size, device="meta"))
    if train.log_filters:  # a network without convolutions has no filters to log
        model.first_conv("train.log_filters")
    if config.task != "reconstruction" and model.num_classes < len(splits.classes):
        raise ZooError(f"model.num_classes is {model.num_classes} but {config.data.name} has {len(splits.classes)} "
                       "classes; remove model.num_classes")
    if min(config.data.batch_size, -(-len(splits.train) // job.world_size)) == 1:
        check_batch_of_one(config, len(splits.classes), in_channels, splits.input_size)
    return model


def word_vectors(model: nn.Module, splits: DataSplits, job: Job) -> list[str]:
    """A new text run's pretrained word vectors (model.vectors: zoo.data.text.read_vectors) in its embedding, and
    its note on how many words they held. Nothing for a network without vectors to read."""
    file = getattr(model, "vectors", None)
    if file is None or splits.vocabulary is None:
        return []
    from zoo.data.text import read_vectors

    vectors, found = read_vectors(Path(file), splits.vocabulary)
    bound = model.load_vectors(vectors, found)
    held, words = int(found.sum()), len(found)
    return [f"note: model.vectors: {file} holds {held:,} of the vocabulary's {words:,} words; the other "
            f"{words - held:,} start from U[-{bound:.3g}, {bound:.3g}], of the pretrained vectors' variance"
            ] if job.is_main else []


def set_threads(config: Config, job: Job, plan: ResumePlan | None, position: Position) -> list[str]:
    """torch's intra-op threads for this process (train.threads; zoo.runtime.cpu_threads), kept in the position
    so that a resumed run goes on with them; a new run's note when they differ from the cores it has."""
    train = config.train
    follows_load = (train.threads == "auto" and plan is None and job.device.type == "cpu"
                    and job.local_world_size == 1 and "OMP_NUM_THREADS" not in os.environ)  # 40 ms of looks at the load
    busy = busy_cpus() if follows_load else None
    threads = cpu_threads(train.threads, job.local_world_size, busy, position.progress.threads)
    torch.set_num_threads(threads)
    position.progress.threads = threads  # a resumed run's auto goes on with it
    says = job.is_main and plan is None
    return [note] if says and (note := threads_note(train.threads, threads) or load_note(threads, busy)) else []


def place_weights(model: nn.Module, config: Config, job: Job, plan: ResumePlan | None, source: Source | None,
                  position: Position) -> tuple[nn.Module, Freezer | None]:
    """Fine-tuning's source transplanted (its report printed) or the checkpoint's weights loaded, and the frozen
    layers frozen, before DDP wraps the model: it broadcasts rank 0's weights and registers only the parameters
    that require gradients at construction. Returns what the training steps call (DDP and torch.compile around
    the model) and the Freezer (None without fine-tuning)."""
    finetune = config.finetune
    freezer = Freezer(model, finetune.freeze) if finetune else None
    if source is not None:
        report = transplant(model, source, finetune.strict)
        if job.is_main:
            print(describe(source, report, freezer))
    if plan is not None:
        load_weights(model, plan.state, plan.checkpoint, config.model.name)
        unfreeze_at = finetune.unfreeze_at_epoch if freezer is not None else None
        if unfreeze_at and unfreeze_at <= position.epoch + 1:
            freezer.unfreeze()
    return compiled(job.wrap(model), job.device, config.train.compile), freezer


def build_step(config: Config, model: nn.Module, data: Data, job: Job, plan: ResumePlan | None,
               freezer: Freezer | None, position: Position
               ) -> tuple[TrainStep, WeightAverage | None, list[str], list[str]]:
    """The optimization step (optimizer, schedule, loss, gradient scaler, batch mixing) and train.ema's average,
    restored as the checkpoint left them for a resumed run. Returns them with what a resumed run says of its
    changed config (restore_optimization) and a new run's note on the average's horizon."""
    train, finetune = config.train, config.finetune
    scale = lr_scale(model, finetune.backbone_lr_mult) if finetune else None
    optimizer = build_optimizer(model, config.optimizer, scale, include_frozen=freezer is not None)
    scheduler = build_scheduler(optimizer, config.scheduler, train.epochs, data.steps_per_epoch)
    weights = data.class_weights
    task = task_of(config)
    criterion = task.criterion(None if weights is None else weights.to(job.device), config.loss.label_smoothing)
    scaler = grad_scaler(job.device, train.precision)
    notes = (restore_optimization(optimizer, scheduler, scaler, plan, data.steps_per_epoch, job.world_size) if plan
             else [])
    compute = Compute(job.device, train.precision, memory_format(train.channels_last), job.distributed)
    step = TrainStep(optimizer, scheduler, scaler, criterion, compute, config.loss.aux_weight, train.grad_clip,
                     train.accumulate_steps, batch_mixing(config.data.augmentation, len(data.splits.classes)), task,
                     getattr(model, "apply_constraints", None))
    if train.ema is None:
        return step, None, notes, []
    ema = WeightAverage(model, train.ema)
    horizon = horizon_note(train.ema, train.epochs * data.steps_per_epoch) if job.is_main and plan is None else None
    if plan is not None:
        if plan.state.ema is not None:
            ema.load_state_dict(plan.state.ema)
        else:  # train.ema added on resume (--allow-config-change)
            notes.append(f"train.ema: the checkpoint holds no average of the weights; it starts from them at step "
                         f"{position.step:,}")
    return step, ema, notes, [horizon] if horizon else []
