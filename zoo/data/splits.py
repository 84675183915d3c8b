"""Splits: views over a base data set, a class subset relabelled 0..k-1, and seeded stratified hold-outs, none
left empty (a fraction too small for one image is refused in one line, before anything is written): by class for
one label per image (hold_out), by label set for multi-hot targets (hold_out_sets, a manifest's task multilabel).

A validation split carved from the training set is a second View over the same base with the eval
transform, so it is never augmented.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.checkpoint import Vocabulary
from zoo.config import DataConfig
from zoo.errors import ZooError

SPLITS = ("train", "val", "test")
CLASSES_SHOWN = 10  # class names a run's first line lists; more: the first 8, "...", the last


@dataclass(frozen=True)
class DataSplits:
    train: Dataset
    val: Dataset | None  # None when val_split == 0 and the set has no validation split
    test: Dataset
    classes: list[str]  # after any `classes` subset, relabelled 0..k-1
    mean: tuple[float, ...]  # the normalization applied, per output channel (0s and 1s when off)
    std: tuple[float, ...]
    in_channels: int  # xor: its 2 features, with input_size 1
    input_size: int
    memory: MemorySource | None = None  # the same splits for the in-memory path (data.loader), where it applies
    skipped: tuple[Path, ...] = ()  # image files left out as unreadable (ImageFolder, manifest), already warned about
    multilabel: bool = False  # targets are float multi-hot vectors of num_classes (View.labels: N x K), not indices
    gray: bool = False  # every picture read from files is stored gray (an ImageFolder's, a manifest's)
    # text's: samples are sentences as token ids of this vocabulary (zoo.data.text), with in_channels and input_size 1
    vocabulary: Vocabulary | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self, name: str) -> str:
        """The line a run starts with: `name`'s images, classes (past CLASSES_SHOWN, the first few and the last)
        and each split's size, e.g. 'imagefolder: 90 images, 3 classes (circle, square, triangle): train 73, val 8,
        test 9'. xor's samples are its four points, repeated in training: no total."""
        sizes = {split: len(data) if data is not None else 0
                 for split, data in (("train", self.train), ("val", self.val), ("test", self.test))}
        shown = self.classes if len(self.classes) <= CLASSES_SHOWN else [*self.classes[:CLASSES_SHOWN - 2], "...",
                                                                          self.classes[-1]]
        names = ", ".join(repr(name) if "," in name else name for name in shown)
        classes = f"{len(self.classes)} class{'es' if len(self.classes) != 1 else ''} ({names})"
        splits = ", ".join(f"{split} {size:,}" for split, size in sizes.items())
        if self.vocabulary is not None:
            return (f"{name}: {sum(sizes.values()):,} sentences, {classes}: {splits}; a vocabulary of "
                    f"{len(self.vocabulary.words) - 2:,} words, from the training split")
        if self.input_size == 1:  # not pictures
            return f"{name}: {classes}: {splits} samples"
        return f"{name}: {sum(sizes.values()):,} images, {classes}: {splits}"


@dataclass(frozen=True)
class MemorySource:
    """Where each split comes from: (base images as read, base targets, the split's indices into them)."""

    splits: dict[str, tuple[Tensor, Tensor, Tensor]]
    label_map: list[int]  # base label -> kept label
    fit: list  # torchvision v2 steps from the stored images to the model's channels and side

    def tensors(self, split: str) -> tuple[Tensor, Tensor] | None:
        """(images, kept labels) of `split`, gathered out of its base; None when there is no such split."""
        if split not in self.splits:
            return None
        images, targets, indices = self.splits[split]
        return images[indices].contiguous(), torch.as_tensor(self.label_map)[targets[indices]]


class TensorSet(Dataset):
    """Samples preprocessed once and held as one tensor: indexing is the whole per-sample cost."""

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.inputs[index], int(self.targets[index])


class View(Dataset):
    """Some samples of a base data set, their labels mapped to the kept classes, through a transform. A base with
    `multilabel` true (a manifest's) gives multi-hot targets, passed through as they are."""

    def __init__(self, base: Dataset, indices: Tensor, label_map: list[int], transform: Callable | None) -> None:
        self.base, self.indices, self.label_map, self.transform = base, indices.tolist(), label_map, transform
        self.multilabel = _multilabel(base)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, int | Tensor]:
        sample, target = self.base[self.indices[index]]
        return ((sample if self.transform is None else self.transform(sample)),
                target if self.multilabel else self.label_map[target])

    @property
    def labels(self) -> Tensor:
        """Each sample's class, in the kept classes' numbering (what __getitem__ returns second), without loading it;
        multilabel: the N x K multi-hot targets."""
        targets = _targets(self.base)[torch.as_tensor(self.indices, dtype=torch.long)]
        return targets if self.multilabel else torch.as_tensor(self.label_map)[targets]

    @property
    def paths(self) -> list[str] | None:
        """Each sample's file, in order, where the base reads files (ImageFolder's samples); else None."""
        samples = getattr(self.base, "samples", None)
        return None if samples is None else [samples[index][0] for index in self.indices]


def _multilabel(base: Dataset) -> bool:
    return bool(getattr(base, "multilabel", False))


def _targets(base: Dataset) -> Tensor:
    """The base's class indices (N, long), or its multi-hot targets (N x K) where it is multilabel."""
    targets = getattr(base, "targets", None)
    if targets is None:  # FakeData: generate the samples once to learn their labels
        targets = [base[i][1] for i in range(len(base))]
    return torch.as_tensor(targets) if _multilabel(base) else torch.as_tensor(targets, dtype=torch.long)


def _label_map(classes: tuple[int, ...] | None, count: int, dataset: str) -> list[int]:
    """Base label -> kept label (0..k-1), or -1 for a class left out."""
    if classes is None:
        return list(range(count))
    unknown = [c for c in classes if c >= count]
    if unknown:
        raise ZooError(f"data.classes: {unknown[0]} is not a class index of {dataset}, which has {count} "
                       f"classes (0-{count - 1})")
    label_map = [-1] * count
    for new, old in enumerate(classes):
        label_map[old] = new
    return label_map


def hold_out(indices: Tensor, targets: Tensor, fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(kept, held out): round(fraction x N) of `indices`, stratified by their `targets` (largest remainders,
    ties drawn at random), each class's drawn by a seeded shuffle. Every class keeps at least one sample."""
    labels, counts = targets.unique(return_counts=True)
    exact = fraction * counts
    quota = exact.floor().long()
    shuffled = torch.randperm(len(labels), generator=generator)
    by_remainder = shuffled[(exact - quota)[shuffled].argsort(descending=True, stable=True)]
    quota[by_remainder[: round(fraction * len(indices)) - int(quota.sum())]] += 1
    quota = torch.minimum(quota, counts - 1)
    kept, held = [], []
    for label, count in zip(labels, quota.tolist()):
        members = indices[targets == label]
        members = members[torch.randperm(len(members), generator=generator)]
        held.append(members[:count])
        kept.append(members[count:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def hold_out_sets(indices: Tensor, targets: Tensor, fraction: float, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    """(kept, held out) of `indices` by their multi-hot `targets` (N x K): iterative stratification (Sechidis,
    Tsoumakas and Vlahavas 2011, ECML PKDD) into two subsets of N - round(fraction x N) and round(fraction x N)
    samples. The rarest label left is placed first, each of its samples where that label is most wanted, then where
    samples are, never into a subset already full (so the sizes are exact, as hold_out's); ties and the order of
    visits are drawn from `generator`. Samples of no label go where samples are most wanted. Every label keeps at
    least one sample in training: where none is kept, one held out is moved back (the held-out split is then
    smaller by one)."""
    positives = targets.bool().numpy()
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    order = rng.permutation(len(indices))
    sizes = np.array([len(indices) - round(fraction * len(indices)), round(fraction * len(indices))], dtype=float)
    wanted = np.outer([1 - fraction, fraction], positives.sum(0))  # 2 x K: each subset's share of each label
    left = positives.sum(0)
    place = np.full(len(indices), -1)

    def assign(sample: int, by: np.ndarray) -> None:
        best = np.flatnonzero(sizes > 0) if (sizes > 0).sum() == 1 else np.flatnonzero(by == by.max())  # one is full
        if len(best) > 1 and by is not sizes:
            best = np.flatnonzero(sizes == sizes.max())
        subset = best[0] if len(best) == 1 else rng.integers(2)
        place[sample] = subset
        labels = positives[sample]
        wanted[subset, labels] -= 1
        sizes[subset] -= 1
        left[labels] -= 1

    while left.any():
        rarest = np.flatnonzero(left == left[left > 0].min())
        label = rarest[rng.integers(len(rarest))] if len(rarest) > 1 else rarest[0]
        for sample in order[positives[order, label] & (place[order] < 0)]:
            assign(sample, wanted[:, label])
    for sample in order[place[order] < 0]:  # no label at all
        assign(sample, sizes)
    for label in np.flatnonzero(positives.any(0)):
        if not positives[place == 0, label].any():
            place[order[positives[order, label] & (place[order] == 1)][0]] = 0
    kept = torch.as_tensor(place == 0)
    return indices[kept].sort().values, indices[~kept].sort().values


def _empty_hold_out(split: str, fraction: float, available: int, dataset: str) -> str:
    """The line refusing a held-out split left empty: its fraction too small for the images, or (hold_out keeps a
    class's last image for training) no class with two images."""
    key = f"data.{split}_split"
    if fraction * available >= 1:
        return (f"{key} {fraction:g}: the {split} split of {dataset} would be empty: every class keeps at least one "
                f"of the {available:,} training images and none has two; add images of each class")
    least = 1 / available  # one image: round(fraction x N) >= 1
    scale = 10.0 ** (math.floor(math.log10(least)) - 1)
    least = math.ceil(least / scale - 1e-9) * scale  # up, to two significant figures
    other = (" (or 0 for none)" if split == "val" else
             ", or add a test/ folder" if dataset == "imagefolder" else
             ", or give rows the split test in the manifest" if dataset == "manifest" else "")
    return (f"{key} {fraction:g} holds out none of {dataset}'s {available:,} training images, so the {split} split "
            f"would be empty; set {key} to {least:.2g} or more (one image){other}")


@dataclass(frozen=True)
class Selection:
    """Which samples of which base each split takes, and how their labels map to the kept classes."""

    bases: dict[str, Dataset]
    indices: dict[str, Tensor]  # a split missing here does not exist (val with val_split 0)
    label_map: list[int]
    classes: list[str]

    def views(self, train_transform: Callable | None, eval_transform: Callable | None) -> list[View | None]:
        """[train, val, test] views; val and test go through the eval transform."""
        return [View(self.bases[split], self.indices[split], self.label_map,
                     train_transform if split == "train" else eval_transform) if split in self.indices else None
                for split in SPLITS]


def select(bases: dict[str, Dataset | None], names: list[str], cfg: DataConfig, seed: int) -> Selection:
    """Keep cfg.classes in every split. A split given in `bases` is used as it is (None: there is none); one
    left out is held out of train by cfg.test_split / cfg.val_split, test first, with a seeded generator."""
    label_map = _label_map(cfg.classes, len(names), cfg.name)
    generator = torch.Generator().manual_seed(seed)
    chosen: dict[str, Tensor] = {}
    given: dict[str, Dataset] = {}
    for split, base in bases.items():
        if base is not None:
            given[split] = base
            if -1 not in label_map:
                chosen[split] = torch.arange(len(base))
            else:
                chosen[split] = (torch.as_tensor(label_map)[_targets(base)] >= 0).nonzero().flatten()
    classes = names if cfg.classes is None else [names[c] for c in cfg.classes]
    checked = len(classes) >= 2  # with fewer, the run refuses the classes (zoo.training.setup.check_classes)
    for split, fraction in (("test", cfg.test_split), ("val", cfg.val_split)):
        if split not in bases and fraction > 0:
            targets = _targets(given["train"])[chosen["train"]]
            available = len(chosen["train"])
            draw = hold_out_sets if _multilabel(given["train"]) else hold_out
            chosen["train"], chosen[split] = draw(chosen["train"], targets, fraction, generator)
            given[split] = given["train"]
            if checked and not len(chosen[split]):
                raise ZooError(_empty_hold_out(split, fraction, available, cfg.name))
    for split, indices in chosen.items():
        if checked and not len(indices):
            raise ZooError(f"{cfg.name}: the {split} split has no images{' of data.classes' if cfg.classes else ''}; "
                           f"give it images of every class")
    return Selection(given, chosen, label_map, classes)
