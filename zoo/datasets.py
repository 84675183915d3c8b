"""Every fact about each data set, in one table: SPECS, keyed by `data.name`. No torch here: the config's
schema reads its names (DATASETS, the choices of data.name) and IN_MEMORY (those loader memory can hold).
What a sample is, its `modality` (MODALITIES), is recorded here once: code that only works on pictures asks it.

    >>> SPECS["mnist"].channels, SPECS["mnist"].size, SPECS["mnist"].mean
    (1, 28, (0.1307,))
"""

from __future__ import annotations

from dataclasses import dataclass

# What a data set's samples are: pictures; flat features (xor's two bits); sentences, given to the network as token
# ids (zoo.data.text)
MODALITIES = ("image", "features", "text")


@dataclass(frozen=True)
class TorchvisionFiles:
    """Where torchvision's loader for a data set reads its files, and what to say when they are missing."""

    loader: str  # the class in torchvision.datasets
    folder: str  # where under data.root torchvision looks
    fix: str  # how to put the files there by hand
    checksummed: bool = False  # torchvision checks the files' md5 (CIFAR)


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: its images as stored (before fitting to the model) and how zoo loads them."""

    name: str  # data.name
    title: str  # as messages name it
    channels: int | None  # per image as stored (xor: its 2 features); None: the model's (synthetic)
    size: int | None  # side in pixels as stored (xor: 1); None: each image's own (imagefolder), the model's (synthetic)
    mean: tuple[float, ...] | None  # per stored channel, of values in [0, 1]; None: from the training split (digits)
    std: tuple[float, ...] | None
    in_memory: bool = False  # data.loader auto holds it in memory as tensors (zoo.data.memory)
    in_process: bool = False  # generated or held by the process: DataLoader workers would cost more than they save
    torchvision: TorchvisionFiles | None = None  # read by torchvision.datasets from files under data.root
    modality: str = "image"  # one of MODALITIES

    @property
    def pictures(self) -> bool:
        return self.modality == "image"


_IDX = "place the four IDX files there"
_CIFAR = "unpack {} (www.cs.toronto.edu/~kriz/cifar.html) into data.root"

SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("mnist", "MNIST", 1, 28, (0.1307,), (0.3081,), in_memory=True,
                torchvision=TorchvisionFiles("MNIST", "MNIST/raw", _IDX)),
    DatasetSpec("fashion_mnist", "Fashion-MNIST", 1, 28, (0.2860,), (0.3530,), in_memory=True,
                torchvision=TorchvisionFiles("FashionMNIST", "FashionMNIST/raw", _IDX)),
    DatasetSpec("cifar10", "CIFAR-10", 3, 32, (0.4914, 0.4822, 0.4465),
                (0.2470, 0.2435, 0.2616), in_memory=True,  # the pixel std, not the 0.2023 often copied
                torchvision=TorchvisionFiles("CIFAR10", "cifar-10-batches-py",
                                             _CIFAR.format("cifar-10-python.tar.gz"), checksummed=True)),
    DatasetSpec("cifar100", "CIFAR-100", 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), in_memory=True,
                torchvision=TorchvisionFiles("CIFAR100", "cifar-100-python",
                                             _CIFAR.format("cifar-100-python.tar.gz"), checksummed=True)),
    DatasetSpec("imagefolder", "ImageFolder", 3, None,  # torchvision opens every image as RGB, at its own size
                (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's
    DatasetSpec("manifest", "manifest", 3, None,  # your images, listed in a CSV or JSON-lines file; as imagefolder
                (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    DatasetSpec("digits", "scikit-learn's digits", 1, 8, None, None, in_memory=True, in_process=True),
    DatasetSpec("xor", "xor", 2, 1, (0.0,), (1.0,), in_process=True, modality="features"),  # the raw bits
    # your sentences and their labels, in a CSV or JSON-lines file; tokenized once and held by the process
    DatasetSpec("text", "text", None, None, None, None, in_process=True, modality="text"),
    DatasetSpec("synthetic", "FakeData", None, None,  # generated at the model's shape
                (0.5,), (0.2887,), in_process=True),  # FakeData's bytes are close to uniform: std 1/sqrt(12)
)}

DATASETS = tuple(SPECS)  # data.name's choices, in the order its messages list them
IN_MEMORY = tuple(sorted((name for name, spec in SPECS.items() if spec.in_memory),  # those loader memory holds,
                         key=lambda name: SPECS[name].channels * SPECS[name].size ** 2))  # smallest images first
