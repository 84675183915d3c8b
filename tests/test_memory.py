"""zoo.data.memory: the in-memory path gives the torchvision path's tensors, labels and order, and shards
exactly under DDP. Tiny on-disk files from tests/datafiles.py; no network."""

from __future__ import annotations

import pytest
import torch
from datafiles import accept_cifar_files, write_cifar, write_mnist
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.transforms.v2 import functional as F

import zoo.data.memory as memory
from zoo.config import DataConfig, load_config
from zoo.data import MemoryLoader, build_datasets, build_loaders
from zoo.data.memory import Pipeline, crop_and_flip
from zoo.errors import ZooError


def both_paths(name: str, in_channels: int, input_size: int, **data):
    """(splits, memory loaders, torchvision loaders) for the same config, one loader choice apart."""
    cfg = DataConfig(name=name, download=False, **data)
    splits = build_datasets(cfg, in_channels=in_channels, input_size=input_size)
    fast = build_loaders(splits, cfg.model_copy(update={"loader": "memory"}))
    slow = build_loaders(splits, cfg.model_copy(update={"loader": "torchvision", "workers": 0}))
    return splits, fast, slow


def batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


@pytest.mark.parametrize("case", [
    ("mnist", 1, 32, {}),  # padded 28 -> 32, once
    ("mnist", 3, 40, {"classes": (1, 3, 5)}),  # gray to RGB, resized, a class subset relabelled
    ("fashion_mnist", 1, 28, {"normalize": False}),
    ("cifar10", 3, 32, {}),
    ("cifar10", 1, 32, {"mean": (0.5,), "std": (0.25,)}),  # RGB to luma, the config's normalization
    ("cifar100", 3, 36, {}),
    ("digits", 1, 32, {}),
])
def test_every_image_is_the_same_tensor_both_ways_before_augmentation(tmp_path, monkeypatch, case):
    name, in_channels, input_size, data = case
    if name.startswith("cifar"):
        write_cifar(tmp_path, per_batch=30 if name == "cifar100" else 8, cifar100=name == "cifar100")
        accept_cifar_files(monkeypatch, tmp_path, cifar100=name == "cifar100")
    elif name != "digits":
        write_mnist(tmp_path, folder="FashionMNIST" if name == "fashion_mnist" else "MNIST")
    splits, fast, slow = both_paths(name, in_channels, input_size, root=tmp_path, val_split=0.25, **data)
    assert isinstance(fast[0], MemoryLoader) and isinstance(slow[0], DataLoader)
    for split, memory_loader, data_loader in zip(("train", "val", "test"), fast, slow):
        x, y = batches(memory_loader if split != "train" else [(memory_loader.pipeline(memory_loader.images),
                                                                memory_loader.targets)])
        dataset = getattr(splits, split)
        expected = torch.stack([dataset[i][0] for i in range(len(dataset))])
        assert x.shape == (len(dataset), in_channels, input_size, input_size) and x.dtype == torch.float32
        assert torch.equal(x, expected), split
        assert y.tolist() == [dataset[i][1] for i in range(len(dataset))]


def test_fitting_per_batch_equals_fitting_once(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    _, once, _ = both_paths("mnist", 3, 48, root=tmp_path)
    monkeypatch.setattr(memory, "FIT_ONCE_BYTES", 0)  # as for a set that would not fit once resized
    _, per_batch, slow = both_paths("mnist", 3, 48, root=tmp_path)
    assert once[2].images.shape[1:] == (3, 48, 48) and per_batch[2].images.shape[1:] == (1, 28, 28)
    assert torch.equal(batches(once[2])[0], batches(per_batch[2])[0])
    assert torch.equal(batches(per_batch[2])[0], batches(slow[2])[0])


def test_training_batches_come_in_the_dataloaders_order_every_epoch():
    _, fast, slow = both_paths("digits", 1, 32, batch_size=100)
    for _ in range(2):
        for (x, y), (x2, y2) in zip(fast[0], slow[0], strict=True):
            assert torch.equal(y, y2) and torch.equal(x, x2)
    assert len(fast[0]) == len(slow[0]) == 13


def test_under_ddp_ranks_share_the_distributed_samplers_order_and_evaluate_each_sample_once():
    images, targets = torch.zeros(11, 1, 2, 2, dtype=torch.uint8), torch.arange(11)
    pipeline = Pipeline([], None, None)

    def ranks(train: bool, epoch: int) -> list[list[int]]:
        loaders = [MemoryLoader(images, targets, pipeline, 4, train=train, seed=3, rank=r, world_size=2)
                   for r in range(2)]
        for loader in loaders:
            loader.set_epoch(epoch)
        return [batches(loader)[1].tolist() for loader in loaders]

    for epoch in (0, 1):
        train = ranks(True, epoch)
        samplers = [DistributedSampler(range(11), 2, r, seed=3) for r in range(2)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        assert train == [list(sampler) for sampler in samplers]  # 6 each: one sample padded in, as torch pads
        assert set(sum(train, [])) == set(range(11))
    assert ranks(True, 0) != ranks(True, 1)  # reshuffled each epoch
    assert ranks(False, 0) == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9]]  # evaluation: exact, no padding


def test_a_single_sample_last_batch_is_dropped_as_by_the_dataloader():
    def sizes(count: int) -> list[int]:
        loader = MemoryLoader(torch.zeros(count, 1, 2, 2), torch.zeros(count, dtype=torch.long),
                              Pipeline([], None, None), 5, train=True)
        return [len(y) for _, y in loader]

    assert sizes(11) == [5, 5] and sizes(12) == [5, 5, 2] and sizes(1) == [1]


def test_crop_and_flip_is_random_crop_with_black_padding_then_a_mirror_per_image():
    images = torch.randint(1, 256, (64, 3, 6, 5), dtype=torch.uint8)  # no 0 pixel: 0 is the padding
    generator = torch.Generator().manual_seed(0)
    out = crop_and_flip(images, 2, True, generator)
    padded = torch.nn.functional.pad(images, [2] * 4)
    seen = set()
    for image, source in zip(out, padded):
        candidates = {(dy, dx, flip): F.horizontal_flip(crop) if flip else crop
                      for dy in range(5) for dx in range(5) for flip in (False, True)
                      for crop in [source[:, dy:dy + 6, dx:dx + 5]]}
        matches = [key for key, candidate in candidates.items() if torch.equal(candidate, image)]
        assert matches, "not a crop of the padded image, nor its mirror"
        seen.update(matches)
    assert {flip for _, _, flip in seen} == {False, True} and len({(dy, dx) for dy, dx, _ in seen}) > 10
    unflipped = crop_and_flip(images, 0, False, generator)
    assert torch.equal(unflipped, images)


def test_augmented_training_batches_differ_each_epoch_and_pad_with_normalized_black():
    _, fast, _ = both_paths("digits", 1, 32, batch_size=2000, augment=True, crop_padding=4, hflip=False)
    first, second = batches(fast[0])[0], batches(fast[0])[0]
    assert first.shape == (1294, 1, 32, 32) and not torch.equal(first, second)
    black = fast[0].pipeline(torch.zeros(1, 1, 1, 1)).item()
    assert first.min().item() == pytest.approx(black) and (first == black).flatten(1).any(1).float().mean() > 0.5
    assert torch.equal(batches(fast[2])[0], batches(fast[2])[0])  # evaluation is never augmented


def test_loader_memory_is_for_the_sets_that_fit(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: lenet5}\ndata: {name: imagefolder, loader: memory}\n")
    with pytest.raises(ZooError, match="data: loader memory holds digits, mnist, .*; "
                                       "imagefolder takes loader auto or torchvision"):
        load_config(path)
    assert DataConfig(name="cifar10").loader == "auto"


@pytest.mark.gpu
def test_the_data_is_held_on_the_training_device():
    cfg = DataConfig(name="digits", augment=True, crop_padding=4)
    splits = build_datasets(cfg, in_channels=1, input_size=32)
    train, _, test = build_loaders(splits, cfg, device="cuda")
    x, y = next(iter(train))
    assert train.images.is_cuda and x.is_cuda and y.is_cuda
    assert torch.equal(batches(test)[0].cpu(), batches(build_loaders(splits, cfg)[2])[0])


def test_without_augmentation_a_split_is_normalized_once_and_batches_are_slices_of_it():
    cfg = DataConfig(name="digits", loader="memory", batch_size=16)
    splits = build_datasets(cfg, in_channels=1, input_size=32)
    train = build_loaders(splits, cfg)[0]
    reference = build_loaders(splits, cfg.model_copy(update={"loader": "torchvision"}))[0]
    assert train.images.dtype == torch.float32 and abs(float(train.images.mean())) < 0.05  # held normalized
    assert torch.allclose(next(iter(train))[0], next(iter(reference))[0], atol=1e-6)  # the same first batch
    augmented = build_loaders(splits, cfg.model_copy(update={"augment": True}))[0]
    assert float(augmented.images.min()) >= 0  # held as read: padding must be black before normalization


def test_an_augmentation_state_saved_on_another_device_starts_afresh(capsys):
    # A GPU run's loader saves a CUDA generator's state (16 bytes); the CPU's generator takes 5,056.
    splits = build_datasets(DataConfig(name="digits", augment=True), in_channels=1, input_size=32)
    train, _, _ = build_loaders(splits, DataConfig(name="digits", augment=True))
    state = train.state_dict()
    train.load_state_dict({"augmentation": torch.zeros(16, dtype=torch.uint8)})
    assert "saved random state is another device's; it starts afresh" in capsys.readouterr().err
    train.load_state_dict(state)  # its own device's state still loads
    assert torch.equal(train.state_dict()["augmentation"], state["augmentation"])
