"""The samplers: the training order, which a resumed run can draw again and enter mid-epoch, and the
exact per-rank shards of the evaluation sets."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler, Sampler

from zoo.distributed import place


class TrainSampler(DistributedSampler):
    """Each epoch's order is a permutation drawn from (seed, epoch) alone, as DistributedSampler draws it; a
    single process is rank 0 of 1. Nothing carries over from earlier epochs, so a resumed run draws the epoch
    it stopped in again, and `resume_at` skips the samples already trained on without loading them (their
    augmentation would consume random numbers the uninterrupted run did not spend twice)."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def resume_at(self, samples: int) -> None:
        """The next pass starts after this rank's first `samples` indices of the current epoch."""
        self.skip = samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0  # once: the epochs after it are whole
        return iter(indices[skip:])


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
