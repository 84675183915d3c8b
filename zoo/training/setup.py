"""Setting a run up: the data, the model with its weights (initialized, fine-tuning's source, or a resumed
checkpoint's), freezing, and the optimizer, schedule and loss. Every check happens here, before the run
writes anything."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from zoo.checkpoint import Normalization, TrainingState, load_weights
from zoo.config import Config
from zoo.data import DataSplits, build_datasets, build_loaders, resume_at, set_epoch, uses_memory
from zoo.distributed import Job
from zoo.errors import ZooError
from zoo.grids import first_conv
from zoo.loop import Compute, TrainStep
from zoo.metrics import MetricAccumulator
from zoo.models.weight_init import init_weights
from zoo.registry import get_model_info
from zoo.runtime import (busy_cpus, compiled, cpu_threads, grad_scaler, load_note, memory_format, seed_everything,
                         threads_note, tune_backends)
from zoo.training.finetune import Freezer, describe, lr_scale, read_source, transplant
from zoo.data.specs import SPECS
from zoo.data.transforms import batch_mixing
from zoo.training.ema import WeightAverage, horizon_note
from zoo.training.imbalance import class_counts, class_weights, imbalance_note
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
    # A new run's notes on its set-up (class imbalance, threads, the EMA's horizon), printed once its directory
    # exists: a run refused after assemble (a folder it cannot write) says one line, the error.
    start_notes: list[str] = field(default_factory=list)

    @property
    def compute(self) -> Compute:
        return self.step.compute

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def eval_criterion(self) -> nn.Module:
        """The validation and test loss: the training loss without loss.class_weights, as Keras reports it, so
        that val_loss (and early stopping on it) measures the model, not the weighting."""
        return nn.CrossEntropyLoss(label_smoothing=self.config.loss.label_smoothing)

    def state(self, job: Job, **training: object) -> TrainingState:
        """The checkpoint of the network now, with `training` (optimizer, position ...) when resumable."""
        splits = self.splits
        if training:
            training["split_sizes"] = split_sizes(splits)
            if self.ema is not None:
                training["ema"] = self.ema.state_dict()
        return TrainingState.of_network(self.model, self.config.to_dict(), splits.classes, self.normalization, **training)

    def averaged_state(self) -> TrainingState:
        """best.pt when the average of the weights validated better: its weights alone (no training state, so
        that a resumed run never trains on from the average)."""
        return TrainingState.of_network(self.ema.module, self.config.to_dict(), self.splits.classes, self.normalization,
                                        weights="ema")

    @property
    def normalization(self) -> Normalization:
        """How the network's inputs are prepared, as every checkpoint of the run records it."""
        splits = self.splits
        return Normalization(tuple(splits.mean), tuple(splits.std), splits.input_size, splits.in_channels)

    def enter_epoch(self, epoch: int, job: Job) -> tuple[int, MetricAccumulator | None]:
        """Ready `epoch`: frozen layers join at finetune.unfreeze_at_epoch, and the loader draws the epoch's
        order (a resumed epoch: from the batch it stopped at). Returns that batch and the epoch's sums so far."""
        start_batch, meter = self.position.entering(epoch, self.num_classes, self.compute.device)
        finetune = self.config.finetune
        if self.freezer is not None and self.freezer.frozen and epoch == finetune.unfreeze_at_epoch:
            self.freezer.unfreeze()
            self.step_model = compiled(job.wrap(self.model), self.compute.device, self.config.train.compile)  # DDP must see the new parameters
            print(f"epoch {epoch}: every layer trains from now on")
        if start_batch:
            resume_at(self.train_loader, epoch, start_batch)
        else:
            set_epoch(self.train_loader, epoch)
        return start_batch, meter


def model_geometry(config: Config) -> tuple[int, int]:
    """(in_channels, input_size): the config's, else the model's own from the registry."""
    info = get_model_info(config.model.name)
    return config.model.in_channels or info.input_size[0], config.data.input_size or info.input_size[1]


def check_classes(classes: list[str], config: Config) -> None:
    """A classifier needs two classes or more: with one, every loss is 0 and every accuracy 100%."""
    if len(classes) >= 2:
        return
    data = config.data
    if data.classes is not None:
        raise ZooError(f"data.classes keeps {len(data.classes)} class ({', '.join(classes)}); a classifier needs at "
                       "least 2: list two or more class indices")
    where = f"{data.root} holds" if data.name == "imagefolder" else f"{data.name} has"
    hint = ""
    if data.name == "imagefolder":
        from zoo.data.folders import nesting_hint

        hint = nesting_hint(data.root, classes)
    raise ZooError(f"{data.name}: {where} {len(classes)} class{'' if len(classes) == 1 else 'es'} "
                   f"({', '.join(classes) or 'none'}); a classifier needs at least 2: add a folder of images per "
                   f"class{hint}")


def split_sizes(splits: DataSplits) -> dict[str, int]:
    return {name: len(split) if split is not None else 0
            for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test))}


def check_same_data(splits: DataSplits, plan: ResumePlan) -> None:
    """A resumed run's data must be the run's: the same classes and as many images in each split. Images added
    or removed since would redraw the held-out splits and move the position in the epoch."""
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


def check_batch_of_one(config: Config, num_classes: int, in_channels: int, input_size: int) -> None:
    """Batch norm cannot train on one value per channel (torch raises in the first step): with batches of one
    image, a forward pass in training mode on the meta device (shapes only, nothing computed) finds it first."""
    with torch.device("meta"):
        probe = config.model.build(num_classes, in_channels).train()
    entered: list[str] = []
    for name, module in probe.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
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
    """Everything `config` trains with, on this process's device; with `plan`, as its checkpoint left it."""
    train = config.train
    device = job.device
    seed_everything(train.seed + job.rank, train.deterministic)  # DDP starts every rank from rank 0's weights
    tune_backends(device, train.precision, train.deterministic)
    in_channels, input_size = model_geometry(config)
    finetune = config.finetune
    source = read_source(finetune.source, config.model.name, finetune.source_key) if finetune and plan is None else None
    if source is not None and source.normalization is not None:  # pre-trained weights expect their statistics
        config = config.with_normalization(source.normalization.mean, source.normalization.std, in_channels)
    splits = build_datasets(config.data, in_channels=in_channels, input_size=input_size, seed=train.seed)
    check_classes(splits.classes, config)
    if plan is not None:
        check_same_data(splits, plan)
    counts = class_counts(splits.train.labels, len(splits.classes))
    weights = class_weights(config, counts, splits.classes)  # a list of another length: one line, nothing written yet
    says = job.is_main and plan is None
    start_notes = [note] if says and (note := imbalance_note(config, counts, splits.classes)) else []
    stored = SPECS[config.data.name].channels
    if says and config.model.in_channels is None and stored and in_channels < stored:  # a colour task fails silently in gray
        start_notes.append(f"note: {config.model.name} takes {in_channels} channel{'s' if in_channels > 1 else ''}: "
                           f"{config.data.name}'s {stored}-channel pictures are converted to gray, and their colour is "
                           f"lost; --set model.in_channels={stored} keeps it")
    loaders = build_loaders(splits, config.data, seed=train.seed, distributed=job.distributed,
                            pin_memory=device.type == "cuda", device=device)
    if says and config.data.loader == "auto" and splits.memory is not None and not uses_memory(splits, config.data):
        start_notes.append("note: data.augment transforms images one by one: they run in DataLoader workers beside the "
                           "training step (data.loader auto); --set data.loader=memory runs them in this process")
    compute = Compute(device, train.precision, memory_format(train.channels_last), job.distributed)
    model = init_weights(config.model.build(len(splits.classes), in_channels), config.init)
    model = model.to(device, memory_format=compute.memory_format)
    if splits.input_size > 1:  # images: too small for the model fails here, before anything is written
        model.check_input(torch.empty(1, in_channels, splits.input_size, splits.input_size, device="meta"))
    if train.log_filters:  # a network without convolutions has no filters to log: one line, nothing written yet
        first_conv(model, "train.log_filters")
    if model.num_classes < len(splits.classes):
        raise ZooError(f"model.num_classes is {model.num_classes} but {config.data.name} has {len(splits.classes)} "
                       "classes; remove model.num_classes")
    if min(config.data.batch_size, -(-len(splits.train) // job.world_size)) == 1:
        check_batch_of_one(config, len(splits.classes), in_channels, splits.input_size)
    per_step = train.accumulate_steps
    batches_per_epoch = min(len(loaders[0]), (train.max_steps_per_epoch or len(loaders[0])) * per_step)
    steps_per_epoch = -(-batches_per_epoch // per_step)
    position = Position.of(plan.state, job) if plan else Position()
    follows_load = (train.threads == "auto" and plan is None and device.type == "cpu" and job.local_world_size == 1
                    and "OMP_NUM_THREADS" not in os.environ)  # where cpu_threads reads the load: 40 ms of looks
    busy = busy_cpus() if follows_load else None
    threads = cpu_threads(train.threads, job.local_world_size, busy, position.progress.threads)
    torch.set_num_threads(threads)
    position.progress.threads = threads  # a resumed run's auto goes on with it
    if says and (note := threads_note(train.threads, threads) or load_note(threads, busy)):
        start_notes.append(note)

    # Weights and freezing before DDP wraps the model: it broadcasts rank 0's weights and registers only
    # the parameters that require gradients at construction.
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
    step_model = compiled(job.wrap(model), device, train.compile)

    scale = lr_scale(model, finetune.backbone_lr_mult) if finetune else None
    optimizer = build_optimizer(model, config.optimizer, scale, include_frozen=freezer is not None)
    scheduler = build_scheduler(optimizer, config.scheduler, train.epochs, steps_per_epoch)
    criterion = nn.CrossEntropyLoss(weight=None if weights is None else weights.float().to(device),
                                    label_smoothing=config.loss.label_smoothing)
    scaler = grad_scaler(device, train.precision)
    notes = restore_optimization(optimizer, scheduler, scaler, plan, steps_per_epoch, job.world_size) if plan else []
    step = TrainStep(optimizer, scheduler, scaler, criterion, compute, config.loss.aux_weight, train.grad_clip,
                     per_step, batch_mixing(config.data.augmentation, len(splits.classes)))
    ema = WeightAverage(model, train.ema) if train.ema is not None else None
    if ema is not None and says and (note := horizon_note(train.ema, train.epochs * steps_per_epoch)):
        start_notes.append(note)
    if ema is not None and plan is not None:
        if plan.state.ema is not None:
            ema.load_state_dict(plan.state.ema)
        else:  # train.ema added on resume (--allow-config-change)
            notes.append(f"train.ema: the checkpoint holds no average of the weights; it starts from them at step {position.step:,}")
    return Parts(config, splits, *loaders, model, step_model, freezer, step, batches_per_epoch, steps_per_epoch,
                 position, notes, ema, start_notes)
