"""DataLoaders for the splits: a seeded shuffle for training; under DDP a DistributedSampler for training and
an exact shard per rank for evaluation, so every evaluation sample is counted once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from zoo.config import IN_MEMORY, DataConfig
from zoo.data.memory import MemoryLoader, memory_loaders
from zoo.data.splits import DataSplits

IN_PROCESS = {"digits", "xor", "synthetic"}  # in memory or generated: workers would cost more than they save


class ShardSampler(Sampler[int]):
    """Rank r of w takes samples r, r + w, r + 2w ...: each sample exactly once over all ranks.

    Unlike DistributedSampler nothing is padded with duplicates, so shards differ in length by at most one:
    sum counts over ranks (all_reduce of correct, loss sum and seen), never average per-rank means.
    """

    def __init__(self, dataset: Dataset, rank: int | None = None, world_size: int | None = None) -> None:
        import torch.distributed as dist

        self.size = len(dataset)
        self.rank = dist.get_rank() if rank is None else rank
        self.world_size = dist.get_world_size() if world_size is None else world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def default_workers(cfg: DataConfig) -> int:
    """cfg.workers; if None, 0 for in-memory and generated sets, min(4, usable CPUs) for file-based ones."""
    if cfg.workers is not None:
        return cfg.workers
    if cfg.name in IN_PROCESS:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(4, cpus)


def uses_memory(splits: DataSplits, cfg: DataConfig) -> bool:
    """data.loader memory, or auto for a set of IN_MEMORY (when its splits carry the in-memory source)."""
    if cfg.loader == "memory" and splits.memory is None:
        raise ValueError("data.loader is memory but these splits have no in-memory source")
    return cfg.loader == "memory" or (cfg.loader == "auto" and cfg.name in IN_MEMORY and splits.memory is not None)


def set_epoch(loader: DataLoader | MemoryLoader, epoch: int) -> None:
    """Reshuffle for `epoch`: a DistributedSampler and the in-memory path draw their order from (seed, epoch)."""
    target = loader if isinstance(loader, MemoryLoader) else getattr(loader, "sampler", None)
    if isinstance(target, (MemoryLoader, DistributedSampler)):
        target.set_epoch(epoch)


def build_loaders(splits: DataSplits, cfg: DataConfig, *, seed: int = 0, distributed: bool = False,
                  pin_memory: bool = False, device: torch.device | str = "cpu"
                  ) -> tuple[DataLoader | MemoryLoader, DataLoader | MemoryLoader | None, DataLoader | MemoryLoader]:
    """(train, val, test) loaders; val is None when splits.val is.

    The in-memory path (uses_memory) gives MemoryLoaders that hold the data on `device` and follow the same
    rules as the DataLoaders of torchvision's per-sample pipeline, which are otherwise built here:
    train shuffles with a generator seeded by `seed`, which also seeds the workers' augmentation (`seed + rank`
    under DDP). Under `distributed` (an initialized process group) train uses a DistributedSampler seeded by
    `seed`, whose order the trainer renews each epoch (set_epoch), and val and test a ShardSampler. A last training
    batch of a single sample, which batch norm cannot train on, is dropped; every other sample is seen each epoch.
    """
    if uses_memory(splits, cfg):
        return memory_loaders(splits, cfg, seed=seed, distributed=distributed, device=device)
    workers = default_workers(cfg)
    common: dict[str, Any] = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory)
    sampler = DistributedSampler(splits.train, shuffle=True, seed=seed) if distributed else None
    per_rank = len(sampler) if sampler is not None else len(splits.train)
    train = DataLoader(splits.train, cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                       generator=torch.Generator().manual_seed(seed + (sampler.rank if sampler else 0)),
                       drop_last=per_rank % cfg.batch_size == 1 and per_rank > 1, **common)

    def evaluation(dataset: Dataset | None) -> DataLoader | None:
        if dataset is None:
            return None
        return DataLoader(dataset, cfg.eval_batch_size or cfg.batch_size,
                          sampler=ShardSampler(dataset) if distributed else None, **common)

    return train, evaluation(splits.val), evaluation(splits.test)
