"""The data sets: torchvision's MNIST, FashionMNIST, CIFAR10/100, ImageFolder and FakeData; a manifest (a CSV or
JSON-lines file of images and labels, zoo.data.manifest); scikit-learn's digits and the course's xor, preprocessed
once into tensors; sentences (zoo.data.text). `build_datasets` picks one by cfg.name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.checkpoint import Vocabulary
from zoo.config import DataConfig
from zoo.data.images import ImageCheck, holds_pictures, note_others, open_rgb, warn_skipped
from zoo.data.memory import base_tensors
from zoo.data.splits import DataSplits, MemorySource, Selection, TensorSet, select
from zoo.data.transforms import augmentation, fit, image_transforms, normalization
from zoo.datasets import SPECS, DatasetSpec
from zoo.errors import ZooError

IMAGEFOLDER_LAYOUT = ("one sub-folder of images per class (an autoencoder's normal pictures: a single one), or train/ "
                      "and val/ (and test/) folders of them")


@contextmanager
def _rank_zero_first(download: bool) -> Iterator[None]:
    """Under torchrun with downloads on, rank 0 reads (and downloads) first while the others wait at a
    barrier, so ranks never download into the same files: every rank must then call build_datasets."""
    import torch.distributed as dist

    from zoo.distributed import place

    rank, world_size = place()
    ranked = download and dist.is_available() and dist.is_initialized() and world_size > 1  # a barrier needs the group
    if ranked and rank != 0:
        dist.barrier()
    try:
        yield
    finally:
        if ranked and rank == 0:
            dist.barrier()


def _torchvision(cfg: DataConfig, spec: DatasetSpec) -> tuple[dict[str, Dataset | None], list[str]]:
    """Train and test as torchvision reads them; val is left to be held out of train."""
    import torchvision.datasets

    files = spec.torchvision
    loader = getattr(torchvision.datasets, files.loader)
    bases: dict[str, Dataset | None] = {}
    absent = [path for path in (cfg.root / files.folder, *(cfg.root / files.folder).parents) if not path.exists()]
    with _rank_zero_first(cfg.download):
        for split in ("train", "test"):
            try:
                bases[split] = loader(str(cfg.root), train=split == "train", download=cfg.download)
            except (RuntimeError, OSError) as error:  # not there, fails the checksum, or no network
                for path in absent:  # deepest first: the folders the failed download made, if it left them empty
                    with suppress(OSError):
                        path.rmdir()
                checksum = " (or failing its checksum)" if files.checksummed else ""
                missing = f"{spec.title} not found{checksum} under {cfg.root / files.folder}"
                if cfg.download:
                    lines = str(error).strip().splitlines()  # MNIST's: a few per mirror tried; the last is the cause
                    reason = lines[-1].strip() if lines else type(error).__name__
                    raise ZooError(f"{missing} and the download failed ({reason}); run again while online, "
                                   f"or {files.fix}") from None
                raise ZooError(f"{missing}; run with data.download: true while online, or {files.fix}") from None
    return bases, list(bases["train"].classes)


def _imagefolder(cfg: DataConfig, whole: str | None = None) -> tuple[dict[str, Dataset | None], list[str], list[Path]]:
    """The split folders zoo.data.folders finds under root (a missing val or test is held out of train), else
    root itself as the one folder to split. With `whole` (a split's name), only that split's folder, or root
    where there are no split folders, as train and test both: every image of it is tested. Hidden and system
    entries are skipped, unreadable images left out, each with one note; the unreadable are returned third."""
    from zoo.data.folders import announce_held_out_test, announce_skipped, find_layout

    root = cfg.root
    if not root.is_dir():
        raise ZooError(f"imagefolder: {root} not found; set data.root to a folder with {IMAGEFOLDER_LAYOUT}")
    layout = find_layout(root)
    dirs = layout.splits
    if whole is not None:
        named = {name: path for name, path in dirs.items() if path != root}
        if named and whole not in named:
            raise ZooError(f"imagefolder: {root} has {', '.join(f'{path.name}/' for path in named.values())} but no "
                           f"{whole} folder; choose --split {' or '.join(named)}")
        dirs = {"train": named.get(whole, root), "test": named.get(whole, root)}
    if "train" not in dirs:
        raise ZooError(f"imagefolder: {root} has {'/ and '.join(path.name for path in dirs.values())}/ but no train/; "
                       f"add train/ with {IMAGEFOLDER_LAYOUT}")
    check = ImageCheck()
    bases = _read_folders(dirs, check)
    names = bases["train"].classes
    for split, base in bases.items():
        if base.classes != names:
            raise ZooError(f"imagefolder: {dirs[split]} has classes {base.classes} but {dirs['train']} has "
                           f"{names}; give every split the same class folders")
    announce_skipped(layout)
    if whole is None:
        announce_held_out_test(layout, cfg.test_split)
    note_others(root, check.others)
    warn_skipped(root, check.unreadable)
    for base in bases.values():
        base.gray = check.gray  # every picture stored gray: a 1-channel model loses no colour (DataSplits.gray)
    return bases, names, [path for path, _ in check.unreadable]


def _read_folders(dirs: dict[str, Path], check: ImageCheck) -> dict[str, Dataset | None]:
    """Each split's folder as a VisibleImageFolder (a folder that is two splits is scanned once), every class folder
    holding a valid image. Raises ZooError for a folder without class folders, or a class without a valid file."""
    from zoo.data.folders import FlatImageFolder, VisibleImageFolder

    bases: dict[str, Dataset | None] = {}
    read: dict[Path, Dataset] = {}
    for split, folder in dirs.items():
        if folder in read:
            bases[split] = read[folder]
            continue
        try:
            base = bases[split] = read[folder] = VisibleImageFolder(str(folder), loader=open_rgb, is_valid_file=check,
                                                                   allow_empty=True)
        except FileNotFoundError as error:  # no class folders: its own pictures are one class, or nothing to read
            if not holds_pictures(folder):
                raise ZooError(f"imagefolder: {folder}: {str(error).rstrip('.')}; put {IMAGEFOLDER_LAYOUT} there") \
                    from None
            base = bases[split] = read[folder] = FlatImageFolder(folder, loader=open_rgb, is_valid_file=check,
                                                                 allow_empty=True)
        empty = sorted(set(base.classes) - {base.classes[target] for target in base.targets})
        if empty:
            missing = f"imagefolder: {folder}: Found no valid file for the classes {', '.join(empty)}"
            bad = [(path, why) for path, why in check.unreadable if path.relative_to(folder).parts[0] in empty]
            if bad:
                raise ZooError(f"{missing}: {len(bad)} unreadable image file(s), e.g. {bad[0][0].relative_to(folder)} "
                               f"({bad[0][1]}); replace them, or remove the class folder")
            raise ZooError(f"{missing}. Supported extensions are: {', '.join(check.extensions)}; put "
                           f"{IMAGEFOLDER_LAYOUT} there")
    return bases


def _images(cfg: DataConfig, in_channels: int, input_size: int, seed: int, whole: str | None = None,
            multilabel: bool = False) -> DataSplits:
    """The file-based sets, read by torchvision (a manifest: by zoo.data.manifest) and transformed per sample (in
    DataLoader workers)."""
    spec = SPECS[cfg.name]
    skipped: list[Path] = []
    if cfg.name == "imagefolder":
        bases, names, skipped = _imagefolder(cfg, whole)
    elif cfg.name == "manifest":
        from zoo.data.manifest import read_manifest

        bases, names, skipped = read_manifest(cfg.manifest, multilabel=multilabel, delimiter=cfg.label_delimiter,
                                              whole=whole)
    else:
        bases, names = _torchvision(cfg, spec)
    stats = normalization(cfg, (spec.mean, spec.std), in_channels)
    steps = fit(spec.channels, spec.size, in_channels, input_size, cfg.name)
    selection = select(bases, names, cfg, seed)
    train, val, test = selection.views(*image_transforms(steps, cfg, input_size, stats))
    memory = None
    if spec.in_memory:
        tensors = {id(base): base_tensors(base) for base in bases.values() if base is not None}
        memory = _memory(selection, lambda base: tensors[id(base)], steps)
    gray = all(getattr(base, "gray", False) for base in bases.values() if base is not None)
    return DataSplits(train, val, test, selection.classes, *stats, in_channels, input_size, memory, tuple(skipped),
                      multilabel, gray)


def _memory(selection: Selection, tensors: Callable[[Dataset], tuple[torch.Tensor, torch.Tensor]],
            steps: list) -> MemorySource:
    """The in-memory path's source: each split's (images, targets) of its base, and its indices into them."""
    return MemorySource({split: (*tensors(selection.bases[split]), indices)
                         for split, indices in selection.indices.items()},
                        selection.label_map, steps)


def _synthetic(cfg: DataConfig, in_channels: int, input_size: int, seed: int) -> DataSplits:
    """FakeData at the model's shape. Val is the last val_split of the synthetic_size images and test up to 64
    more; each image is a function of its index, so every split is fixed."""
    from torchvision.datasets import FakeData

    shape, size, classes = (in_channels, input_size, input_size), cfg.synthetic_size, cfg.synthetic_classes
    n_val = min(max(1, round(cfg.val_split * size)), size - 1) if cfg.val_split else 0
    bases: dict[str, Dataset | None] = {
        "train": FakeData(size - n_val, shape, classes),
        "val": FakeData(n_val, shape, classes, random_offset=size - n_val) if n_val else None,
        "test": FakeData(min(64, size), shape, classes, random_offset=size),
    }
    spec = SPECS["synthetic"]
    stats = normalization(cfg, (spec.mean, spec.std), in_channels)
    selection = select(bases, [f"class {i}" for i in range(classes)], cfg, seed)
    train, val, test = selection.views(*image_transforms([], cfg, input_size, stats))
    return DataSplits(train, val, test, selection.classes, *stats, in_channels, input_size)


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as load_digits gives them: (images N x 8 x 8, float64 in 0-16; labels N, int64),
    N = 1,797, read from the file scikit-learn ships (datasets/data/digits.csv.gz: 64 pixels and the label per
    row) without importing scikit-learn, which takes 1-2 s of the main job's start (importing its datasets
    module); load_digits itself where that file is not where this scikit-learn keeps it."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    files = [Path(folder) / "datasets" / "data" / "digits.csv.gz" for folder in
             (spec.submodule_search_locations or [] if spec is not None else [])]
    file = next((file for file in files if file.is_file()), None)
    if file is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(file, "rt") as rows:
        table = np.loadtxt(rows, delimiter=",")
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)


def _digits(cfg: DataConfig, in_channels: int, input_size: int, seed: int) -> DataSplits:
    """scikit-learn's 1,797 handwritten 8x8 digits, resized once as one tensor, test and val held out of
    them, normalized with the training split's statistics."""
    from torchvision.transforms import v2

    pixels, labels = read_digits()
    images = torch.from_numpy(pixels).float().div_(16).unsqueeze(1)  # N x 1 x 8 x 8 in [0, 1]
    spec = SPECS["digits"]
    for step in fit(spec.channels, spec.size, in_channels, input_size, "digits"):  # once, on the whole tensor
        images = step(images)
    images, targets = images.contiguous(), torch.from_numpy(labels).long()
    selection = select({"train": TensorSet(images, targets)}, [str(d) for d in range(10)], cfg, seed)
    pixels = images[selection.indices["train"]].transpose(0, 1).flatten(1)  # C x (training pixels)
    mean, std = normalization(cfg, (pixels.mean(1).tolist(), pixels.std(1).tolist()), in_channels)
    crop_flip, stored, erasing = augmentation(cfg, input_size)  # on [0, 1] images, as the in-memory path's
    if crop_flip or stored or erasing:  # per sample, normalized after the augmentation that needs [0, 1] images
        train, val, test = selection.views(v2.Compose([*crop_flip, *stored, v2.Normalize(mean, std), *erasing]),
                                           v2.Normalize(mean, std))
    else:  # nothing random: the whole tensor normalized once
        normalized = TensorSet(images.sub(torch.tensor(mean).view(-1, 1, 1)).div_(torch.tensor(std).view(-1, 1, 1)),
                               targets)
        train, val, test = replace(selection, bases=dict.fromkeys(selection.bases, normalized)).views(None, None)
    memory = _memory(selection, lambda _: (images, targets), [])
    return DataSplits(train, val, test, selection.classes, mean, std, in_channels, input_size, memory)


def _xor(cfg: DataConfig) -> DataSplits:
    """The course's four points as 2 flat features, labels 0, 1, 1, 0. Val and test are the four points; a
    training epoch shows them synthetic_size / 4 times each, so that an epoch is more than one step."""
    if cfg.augmentation is not None:
        raise ZooError("data.augment: xor has no images to augment; set data.augment: false")
    points = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 0])
    spec = SPECS["xor"]
    mean, std = normalization(cfg, (spec.mean, spec.std), spec.channels)
    inputs = (points - torch.tensor(mean)) / torch.tensor(std)
    repeats = max(1, cfg.synthetic_size // 4)
    evaluation = TensorSet(inputs, labels)
    bases = {"train": TensorSet(inputs.repeat(repeats, 1), labels.repeat(repeats)), "val": evaluation,
             "test": evaluation}
    selection = select(bases, ["0", "1"], cfg, 0)
    return DataSplits(*selection.views(None, None), selection.classes, mean, std, spec.channels, spec.size)


def _check_multilabel(cfg: DataConfig, multilabel: bool) -> None:
    if multilabel and cfg.name != "manifest":  # the config refuses it too (Config's task check)
        raise ZooError(f"task multilabel: data.name {cfg.name} has one label per image; multilabel reads data.name: "
                       "manifest")


def build_folder(cfg: DataConfig, *, in_channels: int, input_size: int, split: str,
                 multilabel: bool = False, vocabulary: Vocabulary | None = None) -> DataSplits:
    """Every image of one ImageFolder split, to evaluate: its split folder (test/, valid/ ...) where the folder has
    split folders, else every image under cfg.root: a new folder is new data, nothing of it is held out. A
    manifest's likewise: the rows of `split` where its split column gives any, else every row; a text manifest's too,
    as ids of `vocabulary` (the checkpoint's). It is the returned splits' test split. `multilabel`: the config's task
    is multilabel (a manifest's label sets, multi-hot)."""
    _check_multilabel(cfg, multilabel)
    if cfg.name == "text":
        from zoo.data.text import text_splits

        return text_splits(cfg.model_copy(update={"val_split": 0.0}), 0, vocabulary, whole=split)
    return _images(cfg.model_copy(update={"val_split": 0.0}), in_channels, cfg.input_size or input_size, 0, whole=split,
                   multilabel=multilabel)


def build_datasets(cfg: DataConfig, *, in_channels: int, input_size: int, seed: int = 0,
                   multilabel: bool = False, vocabulary: Vocabulary | None = None) -> DataSplits:
    """The train, val and test splits of cfg.name, fitted to a model taking in_channels x input_size^2.

    cfg.input_size, when set, wins over `input_size`. `seed` draws the held-out splits (val from train; test
    for digits, an ImageFolder without test/ and a manifest without test rows): pass the training seed again to
    rebuild the same test set. `multilabel` (the config's task is multilabel; a manifest only): targets are
    float32 multi-hot vectors of num_classes, and the returned splits say so (DataSplits.multilabel). Text
    (zoo.data.text): sentences as token ids of `vocabulary` (a checkpoint's), or of the training split's own.
    """
    _check_multilabel(cfg, multilabel)
    input_size = cfg.input_size or input_size
    if cfg.name == "text":
        from zoo.data.text import text_splits

        return text_splits(cfg, seed, vocabulary)
    if cfg.name == "xor":
        return _xor(cfg)
    if cfg.name == "digits":
        return _digits(cfg, in_channels, input_size, seed)
    if cfg.name == "synthetic":
        return _synthetic(cfg, in_channels, input_size, seed)
    return _images(cfg, in_channels, input_size, seed, multilabel=multilabel)
