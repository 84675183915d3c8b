"""The samplers: the training order (shuffled, or balanced over the classes), which a resumed run can draw again
and enter mid-epoch, and the exact per-rank shards of the evaluation sets."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, Sampler

from zoo.distributed import place


def drop_last(per_rank: int, batch_size: int) -> bool:
    """Whether a rank's training epoch of `per_rank` samples drops its last batch: only where that batch would hold
    a single sample, which batch norm cannot train on; every other sample is seen each epoch."""
    return per_rank % batch_size == 1 and per_rank > 1


class TrainSampler(DistributedSampler):
    """Each epoch's order is a permutation drawn from (seed, epoch) alone, as DistributedSampler draws it; a
    single process is rank 0 of 1. Nothing carries over from earlier epochs, so a resumed run draws the epoch
    it stopped in again, and `resume_at` skips the samples already trained on without loading them (their
    augmentation would consume random numbers the uninterrupted run did not spend twice)."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 balanced_by: Tensor | None = None) -> None:
        """`balanced_by`: the samples' class labels, to draw each class equally often (data.sampler balanced)."""
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0
        self.weights = None
        if balanced_by is not None:
            counts = torch.bincount(balanced_by)
            self.weights = (1.0 / counts.double())[balanced_by]  # every class's samples weigh 1 in all

    def resume_at(self, samples: int) -> None:
        """The next pass starts after this rank's first `samples` indices of the current epoch."""
        self.skip = samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__()) if self.weights is None else self._balanced()
        skip, self.skip = self.skip, 0  # once: the epochs after it are whole
        return iter(indices[skip:])

    def _balanced(self) -> list[int]:
        """As many draws as an epoch has samples (padded for the ranks as DistributedSampler pads), with
        replacement, each class equally likely (torch's WeightedRandomSampler's rule), from (seed, epoch) alone;
        rank r takes draws r, r + w, ... of the same sequence on every rank."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator)
        return drawn[self.rank:self.total_size:self.num_replicas].tolist()


class ShardSampler(Sampler[int]):
    """Rank r of w takes samples r, r + w, r + 2w ...: each sample exactly once over all ranks.

    Unlike DistributedSampler nothing is padded with duplicates, so shards differ in length by at most one:
    sum counts over ranks (all_reduce of correct, loss sum and seen), never average per-rank means.
    """

    def __init__(self, dataset: Dataset, rank: int | None = None, world_size: int | None = None) -> None:
        """`rank` of `world_size` processes; None: this process's (zoo.distributed.place)."""
        here = place()
        self.size = len(dataset)
        self.rank = here[0] if rank is None else rank
        self.world_size = here[1] if world_size is None else world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
