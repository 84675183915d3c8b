"""Tiny data sets in the real on-disk formats, for any test: MNIST IDX files, CIFAR pickle batches, PNG folders,
JPEGs and damaged image files.

    images, labels = write_mnist(tmp_path)        # then DataConfig(name="mnist", root=tmp_path, download=False)
    write_cifar(tmp_path); accept_cifar_files(monkeypatch, tmp_path)
    write_imagefolder(tmp_path / "pets", {"cat": 4, "dog": 3})
    write_jpeg(tmp_path / "pets" / "cat" / "4.jpg"); damage(tmp_path / "pets" / "dog" / "0.png", "half")

Labels cycle through the classes (sample i has label i % classes), so every class is present; pixels are
seeded random bytes, so augmentation always changes something.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _pixels(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


def _idx(array: np.ndarray) -> bytes:
    """The IDX format: magic (0, 0, type 0x08 = uint8, dimensions), big-endian sizes, then the bytes."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(root: Path, train: int = 40, test: int = 20, folder: str = "MNIST", seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, as torchvision's MNIST (and, with
    folder="FashionMNIST", FashionMNIST) reads them. Returns train images, labels, test images, labels."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = []
    for prefix, count in (("train", train), ("t10k", test)):
        images = _pixels(count, (28, 28), seed + (prefix == "t10k"))
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels))
        arrays += [images, labels]
    return tuple(arrays)


def write_cifar(root: Path, per_batch: int = 8, test: int = 20, cifar100: bool = False, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10's cifar-10-batches-py (data_batch_1..5, test_batch, batches.meta) or CIFAR-100's
    cifar-100-python (train, test, meta): pickled dicts of N x 3072 uint8 rows (R, G, B planes).
    Returns train images (N x 32 x 32 x 3), labels, test images, labels."""
    classes = 100 if cifar100 else 10
    folder = Path(root) / ("cifar-100-python" if cifar100 else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = "fine_labels" if cifar100 else "labels"
    batches = [("train", 5 * per_batch)] if cifar100 else [(f"data_batch_{i}", per_batch) for i in range(1, 6)]
    images, labels = [], []
    for number, (name, count) in enumerate([*batches, ("test" if cifar100 else "test_batch", test)]):
        rows = _pixels(count, (3 * 32 * 32,), seed + number)
        targets = [int(i % classes) for i in range(count)]
        with open(folder / name, "wb") as file:
            pickle.dump({"data": rows, label_key: targets}, file)
        images.append(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.array(targets))
    names = [f"class_{i}" for i in range(100)] if cifar100 else CIFAR10_NAMES
    with open(folder / ("meta" if cifar100 else "batches.meta"), "wb") as file:
        pickle.dump({"fine_label_names" if cifar100 else "label_names": names}, file)
    return np.concatenate(images[:-1]), np.concatenate(labels[:-1]), images[-1], labels[-1]


def accept_cifar_files(monkeypatch: pytest.MonkeyPatch, root: Path, cifar100: bool = False) -> None:
    """Point torchvision's CIFAR md5 table at the files written by write_cifar, for this test only: its real
    integrity check then runs and passes, as it does for the real files against the real checksums."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR100 if cifar100 else CIFAR10
    folder = Path(root) / cls.base_folder

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(cls, "train_list", [[name, md5(name)] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, md5(name)] for name, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(cls.meta["filename"])})


def write_imagefolder(root: Path, counts: dict[str, int], size: tuple[int, int] = (40, 30), mode: str = "RGB",
                      seed: int = 0) -> Path:
    """root/<class>/<i>.png for each class and count; size is (width, height). Returns root."""
    root = Path(root)
    channels = len(Image.new(mode, (1, 1)).getbands())
    for number, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(_pixels(count, (size[1], size[0], channels), seed + number)):
            Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(root / name / f"{i}.png")
    return root


def write_colour_folders(root: Path, colours: dict[str, tuple[int, int, int]], count: int,
                         seed: int | None = None) -> Path:
    """root/<class>/<i>.png: `count` 20 x 20 pictures a class, each its class's RGB colour plus noise (sd 15), so
    that a LeNet-5 learns them in a few epochs. `seed` None: from the path's length, as the tests first did."""
    rng = np.random.default_rng(len(str(root)) if seed is None else seed)
    for name, colour in colours.items():
        (Path(root) / name).mkdir(parents=True)
        for i in range(count):
            pixels = np.clip(np.array(colour)[None, None] + rng.normal(0, 15, (20, 20, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(Path(root) / name / f"{i}.png")
    return Path(root)


def write_jpeg(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    """A real JPEG of seeded random RGB pixels; size is (width, height)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(1, (size[1], size[0], 3), seed)[0]).save(path, quality=90)
    return Path(path)


DAMAGE = ("empty", "noise", "half", "scan")


def damage(path: Path, how: str) -> Path:
    """Make an image file unreadable in place: `empty` (0 bytes), `noise` (300 random bytes), `half` (its first
    half: a truncated PNG or JPEG), or `scan` (a JPEG whose entropy-coded data holds markers where pixels should
    be: its header and end marker are intact, so only decoding finds it)."""
    path = Path(path)
    data = path.read_bytes() if path.exists() else b""
    if how == "empty":
        data = b""
    elif how == "noise":
        data = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    elif how == "half":
        data = data[: len(data) // 2]
    elif how == "scan":
        start = data.index(b"\xff\xda") + 20  # into the scan after its header
        data = data[:start] + b"\xff\xc8" * 50 + data[start + 100:]
    else:
        raise ValueError(f"damage: {how!r} is not one of {DAMAGE}")
    path.write_bytes(data)
    return path
