"""The in-memory path for data sets that fit in memory (digits, MNIST, Fashion-MNIST, CIFAR-10/100).

Each split is held once, as read (uint8 N x C x H x W; digits: float in [0, 1]), on the training device. Each
batch is gathered by index and then fitted, augmented (random crop with padding, horizontal flip: two gathers
for the whole batch) and normalized on the device, with no Python per sample (data.augment's policies, jitter,
rotation and random erasing excepted: they run image by image, torchvision's transforms on the device); a split
that nothing augments is fitted and normalized once, when its loader is built. The steps and their order are
the torchvision path's, through the same torchvision functions, so an image comes out as the same tensor both
ways before augmentation; and the order of the batches comes from the same torch samplers, so without
augmentation both paths train on the same batches.

Under DDP every rank holds the whole set: training takes rank r's share of TrainSampler's permutation (a
DistributedSampler's), padded as it pads so that every rank steps the same number of times; evaluation takes
samples r, r + w, ..., so each sample is counted once.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.config import DataConfig
from zoo.data.samplers import TrainSampler, drop_last
from zoo.data.splits import DataSplits
from zoo.data.transforms import augmentation
from zoo.distributed import place

FIT_ONCE_BYTES = 2**30  # fit (pad, resize, convert channels) once when the fitted splits take at most this


def base_tensors(base: Dataset) -> tuple[Tensor, Tensor]:
    """A torchvision MNIST-style (N x H x W tensor) or CIFAR-style (N x H x W x C array) set's `data` and
    `targets` as N x C x H x W uint8 and int64, without copying the images."""
    data = torch.as_tensor(base.data)
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return images, torch.as_tensor(base.targets, dtype=torch.long)


class Pipeline:
    """Per batch, on the batch's device: the remaining fit steps, augmentation (training only), scaling to
    [0, 1] float and normalization, in the torchvision path's order. Crop and flip run batched; the other
    random steps (zoo.data.transforms.augmentation: jitter, rotation, the policy, random erasing) image by
    image, because a torchvision v2 transform given a batch draws one set of parameters for all of it."""

    def __init__(self, fit: list, mean: tuple[float, ...] | None, std: tuple[float, ...] | None,
                 crop_padding: int = 0, hflip: bool = False, stored: list | None = None,
                 erasing: list | None = None) -> None:
        from torchvision.transforms import v2

        self.fit, self.crop_padding, self.hflip = fit, crop_padding, hflip
        self.stored = v2.Compose(stored) if stored else None  # on the images as stored, after crop and flip
        self.erasing = v2.Compose(erasing) if erasing else None  # on the normalized images
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def to(self, device: torch.device) -> Pipeline:
        if self.mean is not None:
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.hflip or self.stored is not None or self.erasing is not None

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if images.dtype == torch.float32 and not self.fit and self.mean is None and not self.augments:
            return images  # prepared once when the loader was built
        from torchvision.transforms.v2.functional import to_dtype_image

        for step in self.fit:
            images = step(images)
        training = generator is not None
        if training and (self.crop_padding > 0 or self.hflip):
            images = crop_and_flip(images, self.crop_padding, self.hflip, generator)
        if training and self.stored is not None:
            images = torch.stack([self.stored(image) for image in images])  # torch's global generator, per rank
        images = to_dtype_image(images, torch.float32, scale=True)  # uint8: x / 255; float: as it is
        if self.mean is not None:
            images = images.sub(self.mean).div_(self.std)  # torchvision's Normalize, without its check that syncs
        if training and self.erasing is not None:
            images = torch.stack([self.erasing(image) for image in images])
        return images


def crop_and_flip(images: Tensor, padding: int, hflip: bool, generator: torch.Generator) -> Tensor:
    """Each image padded with black by `padding`, cropped back to its size at a random offset, and mirrored
    with probability 1/2: torchvision's RandomCrop(padding) and RandomHorizontalFlip as two batched gathers
    (rows, then columns, which also flip)."""
    n, c, h, w = images.shape
    device = images.device
    if padding:
        images = torch.nn.functional.pad(images, [padding] * 4)  # 0: black before normalization
    dy, dx = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator, device=device)
    columns = torch.arange(w, device=device).expand(n, w)
    if hflip:
        flip = torch.rand(n, 1, generator=generator, device=device) < 0.5
        columns = torch.where(flip, w - 1 - columns, columns)
    rows = (dy + torch.arange(h, device=device)).view(n, 1, h, 1).expand(n, c, h, images.shape[3])
    columns = (dx + columns).view(n, 1, 1, w).expand(n, c, h, w)
    return images.gather(2, rows).gather(3, columns)


class MemoryLoader:
    """Batches of one split from tensors held on the device, as (N x C x H x W float, N labels) there.

    Training batches come in the torchvision path's order, drawn by the same TrainSampler (set_epoch renews it;
    under `distributed` each rank takes its share). Augmentation draws from a generator on the device seeded by
    seed + rank, whose state a checkpoint keeps (state_dict). Evaluation batches go in order, rank r of w taking
    samples r, r + w, ... (as ShardSampler).
    """

    def __init__(self, images: Tensor, targets: Tensor, pipeline: Pipeline, batch_size: int, *, train: bool,
                 seed: int = 0, rank: int = 0, world_size: int = 1, balanced: bool = False) -> None:
        self.images, self.targets, self.pipeline, self.batch_size, self.train = (
            images, targets, pipeline, batch_size, train)
        self.eval_indices = torch.arange(rank, len(images), world_size)
        self.sampler = TrainSampler(range(len(images)), world_size, rank, seed=seed,
                                    balanced_by=targets.cpu() if balanced else None)
        self.augmentation = (torch.Generator(images.device).manual_seed(seed + rank) if train and pipeline.augments
                             else None)
        self.per_rank = len(self.sampler) if train else len(self.eval_indices)
        self.drop_last = train and drop_last(self.per_rank, batch_size)  # as build_loaders

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Tensor]:
        return {"augmentation": self.augmentation.get_state()} if self.augmentation is not None else {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if self.augmentation is not None and "augmentation" in state:
            try:
                self.augmentation.set_state(state["augmentation"])
            except RuntimeError:
                # saved by a generator of another device (a GPU run resumed on the CPU): its size differs
                print("warning: the augmentation's saved random state is another device's; it starts afresh",
                      file=sys.stderr, flush=True)

    def __len__(self) -> int:
        return self.per_rank // self.batch_size if self.drop_last else math.ceil(self.per_rank / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        indices = torch.tensor(list(self.sampler)) if self.train else self.eval_indices  # once an epoch
        indices = indices.to(self.images.device)
        end = len(self) * self.batch_size - (self.per_rank - len(indices))  # less what resume_at skipped
        for start in range(0, end, self.batch_size):
            batch = indices[start:start + self.batch_size]
            yield self.pipeline(self.images[batch], self.augmentation), self.targets[batch]


def memory_loaders(splits: DataSplits, cfg: DataConfig, *, seed: int = 0, distributed: bool = False,
                   device: torch.device | str = "cpu") -> tuple[MemoryLoader, MemoryLoader | None, MemoryLoader]:
    """(train, val, test) MemoryLoaders over splits.memory, the data moved to `device` once. The fit steps run
    once here when the fitted splits stay under FIT_ONCE_BYTES (e.g. MNIST padded to 32), else per batch
    (e.g. CIFAR resized to 227 for AlexNet)."""
    rank, world_size = place() if distributed else (0, 1)
    parts = {split: splits.memory.tensors(split) for split in ("train", "val", "test")}
    fit = splits.memory.fit
    fitted_bytes = sum(len(part[0]) for part in parts.values() if part) * splits.in_channels * splits.input_size**2
    if fit and fitted_bytes <= FIT_ONCE_BYTES:
        parts = {split: part and (_apply(fit, part[0]), part[1]) for split, part in parts.items()}
        fit = []
    mean, std = (splits.mean, splits.std) if cfg.normalize else (None, None)

    def loader(split: str) -> MemoryLoader | None:
        if parts[split] is None:
            return None
        train = split == "train"
        augment = train and cfg.augmentation is not None
        _, stored, erasing = augmentation(cfg, splits.input_size) if augment else ([], [], [])
        pipeline = Pipeline(fit, mean, std, cfg.crop_padding if augment else 0, augment and cfg.hflip, stored,
                            erasing).to(device)
        images, targets = (t.to(device) for t in parts[split])
        if not pipeline.fit and not pipeline.augments and images.numel() * 4 <= FIT_ONCE_BYTES:
            # nothing random: normalize once, not per batch
            images, pipeline = pipeline(images), Pipeline([], None, None)
        return MemoryLoader(images, targets, pipeline,
                            cfg.batch_size if train else cfg.eval_batch_size or cfg.batch_size,
                            train=train, seed=seed, rank=rank, world_size=world_size,
                            balanced=train and cfg.sampler == "balanced")

    return loader("train"), loader("val"), loader("test")


def _apply(steps: list, images: Tensor, chunk: int = 4096) -> Tensor:
    """torchvision v2 `steps` over a whole N x C x H x W tensor, a chunk of images at a time."""
    parts = []
    for start in range(0, len(images) or 1, chunk):  # an empty split still takes the fitted shape
        part = images[start:start + chunk]
        for step in steps:
            part = step(part)
        parts.append(part)
    return torch.cat(parts)
