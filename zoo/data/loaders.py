"""DataLoaders for the splits: the training order from (seed, epoch) alone (TrainSampler, a rank's share under
DDP), which a resumed run can enter mid-epoch; under DDP an exact shard per rank for evaluation, so every
evaluation sample is counted once."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from zoo.config import DataConfig
from zoo.data.memory import MemoryLoader, Pipeline, memory_loaders
from zoo.data.samplers import ShardSampler, TrainSampler, drop_last
from zoo.data.splits import DataSplits, View
from zoo.data.text import Collate
from zoo.datasets import SPECS
from zoo.distributed import place


def default_workers(cfg: DataConfig) -> int:
    """cfg.workers; if None, 0 for in-memory and generated sets (SPECS' in_process), min(4, usable CPUs) for
    file-based ones."""
    if cfg.workers is not None:
        return cfg.workers
    if SPECS[cfg.name].in_process:
        return 0
    return file_workers()


def file_workers() -> int:
    """DataLoader workers for decoding files: min(4, the CPUs this process may use)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(4, cpus)


def uses_memory(splits: DataSplits, cfg: DataConfig) -> bool:
    """data.loader memory, or auto for a set SPECS holds in memory (when its splits carry the in-memory source),
    unless data.augment runs per-image transforms on a file-based set (per_image_augmentation)."""
    if cfg.loader == "memory" and splits.memory is None:
        raise ValueError("data.loader is memory but these splits have no in-memory source")
    spec = SPECS[cfg.name]
    return cfg.loader == "memory" or (cfg.loader == "auto" and spec.in_memory and splits.memory is not None
                                      and not (per_image_augmentation(cfg) and not spec.in_process))


def per_image_augmentation(cfg: DataConfig) -> bool:
    """Whether data.augment runs transforms image by image (a policy, jitter, rotation, random erasing). The
    in-memory path would run them one after another in the training process: 3,600-8,800 CIFAR images/s against
    66,000 with crop and flip alone (scripts/bench_augment.py), about what 2 DataLoader workers give, and 0.16x
    of them with AugMix; workers run them beside the training step, so auto chooses them for a set read from
    files. Digits, held by the process, keep the in-memory path."""
    return cfg.augmentation is not None and cfg.augmentation.per_image


def set_epoch(loader: DataLoader | MemoryLoader, epoch: int) -> None:
    """Draw `epoch`'s training order (from the seed and the epoch alone)."""
    _train_sampler(loader).set_epoch(epoch)


def resume_at(loader: DataLoader | MemoryLoader, epoch: int, batches: int) -> None:
    """The next pass over `loader` is epoch `epoch` from its batch `batches` on, as if never interrupted."""
    set_epoch(loader, epoch)
    _train_sampler(loader).resume_at(batches * loader.batch_size)


def _train_sampler(loader: DataLoader | MemoryLoader) -> TrainSampler:
    sampler = loader.sampler
    if not isinstance(sampler, TrainSampler):
        raise TypeError("not a training loader from build_loaders")
    return sampler


def loader_state(loader: DataLoader | MemoryLoader) -> dict[str, Any]:
    """This process's random state that lives in the loader rather than in torch's global generator."""
    return loader.state_dict() if isinstance(loader, MemoryLoader) else {}


def load_loader_state(loader: DataLoader | MemoryLoader, state: dict[str, Any]) -> None:
    if isinstance(loader, MemoryLoader):
        loader.load_state_dict(state)


def ignore_interrupts(worker_id: int) -> None:
    """Ctrl-C reaches every process of the terminal's group: workers leave it to the main process, which
    finishes its step, saves and then stops them. (SIGTERM stays: the loader's own shutdown may need it.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_loaders(splits: DataSplits, cfg: DataConfig, *, seed: int = 0, distributed: bool = False,
                  pin_memory: bool = False, device: torch.device | str = "cpu"
                  ) -> tuple[DataLoader | MemoryLoader, DataLoader | MemoryLoader | None, DataLoader | MemoryLoader]:
    """(train, val, test) loaders; val is None when splits.val is.

    The in-memory path (uses_memory) gives MemoryLoaders that hold the data on `device` and follow the same
    rules as the DataLoaders of torchvision's per-sample pipeline, which are otherwise built here:
    train draws its order with a TrainSampler seeded by `seed` (balanced over the classes with cfg.sampler
    balanced; this rank's share under `distributed`, an
    initialized process group), renewed each epoch by set_epoch; a generator seeded by `seed + rank` seeds the
    workers' augmentation. Under `distributed` val and test take a ShardSampler each. A last training batch of a
    single sample, which batch norm cannot train on, is dropped; every other sample is seen each epoch.
    """
    if uses_memory(splits, cfg):
        return memory_loaders(splits, cfg, seed=seed, distributed=distributed, device=device)
    workers = default_workers(cfg)
    common: dict[str, Any] = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory,
                                  worker_init_fn=ignore_interrupts if workers > 0 else None,
                                  # sentences: padded to the batch's longest (zoo.data.text)
                                  collate_fn=Collate(splits.vocabulary.min_tokens) if splits.vocabulary else None)
    rank, world_size = place() if distributed else (0, 1)
    sampler = TrainSampler(splits.train, world_size, rank, seed=seed,
                           balanced_by=splits.train.labels if cfg.sampler == "balanced" else None)
    per_rank = len(sampler)
    train = DataLoader(splits.train, cfg.batch_size, sampler=sampler,
                       generator=torch.Generator().manual_seed(seed + rank),
                       drop_last=drop_last(per_rank, cfg.batch_size), **common)

    def evaluation(dataset: Dataset | None) -> DataLoader | None:
        if dataset is None:
            return None
        return DataLoader(dataset, cfg.eval_batch_size or cfg.batch_size,
                          sampler=ShardSampler(dataset, rank, world_size) if distributed else None, **common)

    return train, evaluation(splits.val), evaluation(splits.test)



def unaugmented_train(splits: DataSplits, cfg: DataConfig, limit: int, device: torch.device | str = "cpu"
                      ) -> Iterable[Tensor] | None:
    """Batches (N x C x H x W, on `device`) of at most `limit` training images, evenly spaced through the split, as
    evaluation prepares pictures (fitted, normalized, never augmented): what the training images look like to a
    prediction, for their pixel statistics (zoo.metrics.familiarity). None where the split holds no pictures."""
    if splits.input_size == 1:
        return None
    size = cfg.eval_batch_size or cfg.batch_size
    if splits.memory is not None and "train" in splits.memory.splits:
        images, _ = splits.memory.tensors("train")
        chosen = _evenly(len(images), limit)
        pipeline = Pipeline(splits.memory.fit, *((splits.mean, splits.std) if cfg.normalize else (None, None))
                            ).to(torch.device(device))
        return (pipeline(images[chosen[start:start + size]].to(device)) for start in range(0, len(chosen), size))
    train, test = splits.train, splits.test
    if not isinstance(train, View) or not isinstance(test, View):
        return None
    plain = View(train.base, torch.as_tensor(train.indices)[_evenly(len(train), limit)], train.label_map,
                 test.transform)
    workers = default_workers(cfg)
    return (images.to(device) for images, _ in DataLoader(plain, size, num_workers=workers))


def _evenly(count: int, limit: int) -> Tensor:
    """min(count, limit) indices spread evenly over range(count)."""
    if count <= limit:
        return torch.arange(count)
    return torch.linspace(0, count - 1, limit).round().long().unique()
