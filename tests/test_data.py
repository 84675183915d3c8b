"""zoo.data: the real torchvision loaders on tiny files written in their on-disk formats (tests/datafiles.py),
digits, xor and FakeData, the splits, and the loaders. No network: downloads are made to fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.distributed as dist
from datafiles import CIFAR10_NAMES, accept_cifar_files, damage, write_cifar, write_imagefolder, write_jpeg, write_mnist
from helpers import run_zoo
from PIL import Image
from torch.utils.data import DistributedSampler

from zoo.config import DataConfig
from zoo.data import SPECS, DataSplits, MemoryLoader, ShardSampler, TensorSet, build_datasets, build_loaders
from zoo.data.sets import read_digits
from zoo.errors import ZooError

ROOT = Path(__file__).resolve().parents[1]
MNIST_BLACK = (0 - 0.1307) / 0.3081  # a 0 pixel after MNIST's normalization


def build(name: str, in_channels: int = 1, input_size: int = 32, seed: int = 0, **data) -> DataSplits:
    return build_datasets(DataConfig(name=name, download=False, **data), in_channels=in_channels,
                          input_size=input_size, seed=seed)


def normalized(pixels: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return (torch.tensor(pixels, dtype=torch.float32) / 255 - mean) / std


def draws(dataset, index: int, count: int = 8) -> list[torch.Tensor]:
    return [dataset[index][0] for _ in range(count)]


# ---- the table of data sets ---------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_each_spec_is_consistent(spec):
    assert (spec.mean is None) == (spec.std is None)
    if spec.mean is not None:  # one value per stored channel, or one for all (synthetic: the model's channels)
        assert len(spec.mean) == len(spec.std) in (1, spec.channels) and all(s > 0 for s in spec.std)
    assert not spec.in_memory or spec.torchvision is not None or spec.in_process  # zoo.data.memory reads these
    assert (spec.torchvision is None) or (spec.channels and spec.size)  # torchvision's files have one shape


# ---- MNIST and Fashion-MNIST (IDX files) -------------------------------------------------------

def test_mnist_pads_28_to_32_and_normalizes_with_its_own_statistics(tmp_path):
    images, labels, test_images, test_labels = write_mnist(tmp_path, train=40, test=20)
    splits = build("mnist", root=tmp_path, val_split=0)
    assert (len(splits.train), splits.val, len(splits.test)) == (40, None, 20)
    assert splits.classes[0] == "0 - zero" and len(splits.classes) == 10
    assert (splits.mean, splits.std, splits.in_channels, splits.input_size) == ((0.1307,), (0.3081,), 1, 32)
    for dataset, pixels, targets in ((splits.train, images, labels), (splits.test, test_images, test_labels)):
        x, y = dataset[5]
        assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and y == targets[5]
        assert torch.allclose(x[0, 2:30, 2:30], normalized(pixels[5], 0.1307, 0.3081), atol=1e-5)
        border = torch.cat([x[0, :2].flatten(), x[0, 30:].flatten(), x[0, :, :2].flatten(), x[0, :, 30:].flatten()])
        assert torch.allclose(border, torch.tensor(MNIST_BLACK))  # padded with black, as LeNet-5's paper did


def test_fashion_mnist_reads_its_own_folder_and_statistics(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST")
    splits = build("fashion_mnist", input_size=28, root=tmp_path)
    assert splits.classes[0] == "T-shirt/top" and (splits.mean, splits.std) == ((0.2860,), (0.3530,))
    assert splits.train[0][0].shape == (1, 28, 28)


def test_grayscale_becomes_rgb_and_a_much_larger_side_is_resized_not_padded(tmp_path):
    write_mnist(tmp_path)
    splits = build("mnist", in_channels=3, input_size=64, root=tmp_path)
    x, _ = splits.test[0]
    assert x.shape == (3, 64, 64) and splits.mean == (0.1307,) * 3 and splits.std == (0.3081,) * 3
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert not torch.allclose(x[:, 0], torch.tensor(MNIST_BLACK))  # the random pixels reach the edge


# ---- CIFAR (pickle batches) --------------------------------------------------------------------

def test_cifar10_batches_load_through_torchvision_and_its_checksum(tmp_path, monkeypatch):
    images, labels, test_images, test_labels = write_cifar(tmp_path, per_batch=8, test=20)
    accept_cifar_files(monkeypatch, tmp_path)
    splits = build("cifar10", in_channels=3, root=tmp_path, val_split=0)
    assert (len(splits.train), len(splits.test), splits.classes) == (40, 20, CIFAR10_NAMES)
    x, y = splits.train[33]
    assert x.shape == (3, 32, 32) and y == labels[33]
    for c in range(3):
        assert torch.allclose(x[c], normalized(images[33][..., c], splits.mean[c], splits.std[c]), atol=1e-5)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "ab") as file:
        file.write(b"\0")  # torchvision's md5 check now fails
    with pytest.raises(ZooError, match="CIFAR-10 not found \\(or failing its checksum\\) under .*cifar-10-batches-py"):
        build("cifar10", in_channels=3, root=tmp_path)


def test_cifar_to_one_channel_uses_luma_for_pixels_and_statistics(tmp_path, monkeypatch):
    _, _, test_images, _ = write_cifar(tmp_path)
    accept_cifar_files(monkeypatch, tmp_path)
    splits = build("cifar10", in_channels=1, root=tmp_path)
    luma = np.array([0.299, 0.587, 0.114])
    assert splits.mean == pytest.approx((luma @ [0.4914, 0.4822, 0.4465],))
    x, _ = splits.test[2]
    gray = (test_images[2].astype(np.float64) @ luma).round().astype(np.uint8)
    assert x.shape == (1, 32, 32)
    assert torch.allclose(x[0], normalized(gray, splits.mean[0], splits.std[0]), atol=1.01 / 255 / splits.std[0])


def test_cifar100_reads_fine_labels_and_its_statistics(tmp_path, monkeypatch):
    _, labels, _, _ = write_cifar(tmp_path, per_batch=30, cifar100=True)
    accept_cifar_files(monkeypatch, tmp_path, cifar100=True)
    splits = build("cifar100", in_channels=3, root=tmp_path, val_split=0)
    assert len(splits.classes) == 100 and splits.mean == (0.5071, 0.4865, 0.4409)
    assert [splits.train[i][1] for i in range(150)] == labels.tolist()


# ---- splits, augmentation, class subsets ---------------------------------------------------------

def test_augmentation_touches_only_train_and_val_is_carved_from_the_same_files_untransformed(tmp_path):
    images, _, _, _ = write_mnist(tmp_path, train=40)
    augmented = build("mnist", root=tmp_path, val_split=0.25, augment=True, crop_padding=4, hflip=True)
    plain = build("mnist", root=tmp_path, val_split=0.25)
    train, val = augmented.train, augmented.val
    assert (len(train), len(val)) == (30, 10) and val.base is train.base  # two views over one data set
    assert set(train.indices).isdisjoint(val.indices) and set(train.indices) | set(val.indices) == set(range(40))
    assert val.indices == plain.val.indices  # the split depends on the seed only
    first = val[0][0]
    assert torch.allclose(first[0, 2:30, 2:30], normalized(images[val.indices[0]], 0.1307, 0.3081), atol=1e-5)
    assert all(torch.equal(x, first) for x in draws(val, 0)) and torch.equal(first, plain.val[0][0])
    assert all(torch.equal(x, plain.test[0][0]) for x in draws(augmented.test, 0))
    train_draws = draws(train, 0)
    assert any(not torch.equal(x, train_draws[0]) for x in train_draws) and train_draws[0].shape == (1, 32, 32)
    assert all(torch.equal(x, plain.train[0][0]) for x in draws(plain.train, 0))


def test_class_subset_is_kept_and_relabelled_in_every_split(tmp_path):
    _, labels, _, test_labels = write_mnist(tmp_path, train=40, test=20)
    splits = build("mnist", root=tmp_path, classes=(5, 6, 7, 8, 9), val_split=0.25)
    assert splits.classes == ["5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 10)
    for dataset, originals in ((splits.train, labels), (splits.val, labels), (splits.test, test_labels)):
        assert [dataset[i][1] for i in range(len(dataset))] == [int(originals[j]) - 5 for j in dataset.indices]
    with pytest.raises(ZooError, match=r"data.classes: 12 is not a class index of mnist, which has 10 classes"):
        build("mnist", root=tmp_path, classes=(3, 12))


def test_digits_are_read_as_scikit_learn_loads_them_without_importing_it():
    script = ("import sys; from zoo.data.sets import read_digits; images, labels = read_digits(); "
              "print(any(name.startswith('sklearn') for name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    from sklearn.datasets import load_digits

    images, labels = read_digits()
    digits = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == digits.images.dtype and (images == digits.images).all()
    assert labels.dtype == np.int64 and (labels == digits.target).all()


def test_digits_splits_cover_all_1797_images_once_and_normalize_with_training_statistics():
    splits = build("digits")
    train, val, test = splits.train, splits.val, splits.test
    assert (len(train), len(val), len(test)) == (1294, 144, 359)  # test 20% of all, val 10% of the rest
    assert sorted(train.indices + val.indices + test.indices) == list(range(1797))
    assert splits.classes == [str(d) for d in range(10)] and {test[i][1] for i in range(len(test))} == set(range(10))
    x = torch.stack([train[i][0] for i in range(len(train))])
    assert x.shape == (1294, 1, 32, 32)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    assert splits.mean[0] == pytest.approx(train.base.inputs.mul(splits.std[0]).add(splits.mean[0]).mean().item(),
                                           abs=0.02)
    assert build("digits").test.indices == test.indices and build("digits", seed=1).test.indices != test.indices


def test_digits_channels_subset_and_normalize_off():
    rgb = build("digits", in_channels=3, input_size=28)
    assert build("digits", input_size=8).train[0][0].shape == (1, 8, 8)  # native: nothing to fit
    assert rgb.train[0][0].shape == (3, 28, 28) and len(set(rgb.mean)) == 1 and len(rgb.mean) == 3
    raw = build("digits", normalize=False, val_split=0)
    x = torch.stack([raw.train[i][0] for i in range(len(raw.train))])
    assert raw.val is None and (raw.mean, raw.std) == ((0.0,), (1.0,)) and x.min() >= 0 and x.max() <= 1
    first = build("digits", classes=(0, 1, 2, 3, 4))
    assert (first.classes == ["0", "1", "2", "3", "4"]
            and 850 < len(first.train) + len(first.val) + len(first.test) < 950)
    assert {first.train[i][1] for i in range(len(first.train))} == set(range(5))


def test_digits_augmentation_pads_with_normalized_black_on_train_only():
    splits = build("digits", augment=True, crop_padding=4, hflip=False)
    train_draws = draws(splits.train, 3, count=12)
    assert any(not torch.equal(x, train_draws[0]) for x in train_draws)
    black = -splits.mean[0] / splits.std[0]
    for x in train_draws:  # pixels are [0, 1] before normalizing: a padded 0.0 would show up as a row of 0.0
        assert x.min() >= black - 1e-5
        assert not (x[0] == 0).all(dim=1).any() and not (x[0] == 0).all(dim=0).any()
    assert all(torch.equal(x, splits.val[3][0]) for x in draws(splits.val, 3))


def test_xor_is_the_four_points_in_every_split():
    splits = build("xor", in_channels=1, input_size=28, synthetic_size=12)
    points = [([0.0, 0.0], 0), ([0.0, 1.0], 1), ([1.0, 0.0], 1), ([1.0, 1.0], 0)]
    for dataset in (splits.val, splits.test):
        assert [(x.tolist(), y) for x, y in dataset] == points
    assert [(x.tolist(), y) for x, y in splits.train] == points * 3  # an epoch shows each point 12 / 4 times
    assert splits.train[0][0].shape == (2,) and splits.train[0][0].dtype == torch.float32
    assert (splits.in_channels, splits.input_size, splits.mean, splits.std) == (2, 1, (0.0, 0.0), (1.0, 1.0))
    with pytest.raises(ZooError, match="data.augment: xor has no images"):
        build("xor", augment=True)


def test_a_held_out_split_left_empty_is_refused_naming_its_size_and_the_fix(tmp_path):
    # data.test_split=1e-9 held out no image, and the run ended in a StopIteration after its directory was made
    with pytest.raises(ZooError) as caught:
        build("digits", test_split=1e-9)
    assert str(caught.value) == ("data.test_split 1e-09 holds out none of digits's 1,797 training images, so the test "
                                 "split would be empty; set data.test_split to 0.00056 or more (one image)")
    assert len(build("digits", test_split=0.00056).test) == 1  # the fix it names holds out one image
    with pytest.raises(ZooError, match=r"^data.val_split 0.0001 holds out none of digits's 1,438 training images, so "
                                       r"the val split would be empty; set data.val_split to 0.0007 or more \(one "
                                       r"image\) \(or 0 for none\)$"):
        build("digits", val_split=1e-4)
    root = write_imagefolder(tmp_path / "photos", {"cat": 1, "dog": 1, "fox": 1}, size=(12, 10))
    with pytest.raises(ZooError, match=r"^data.test_split 0.5: the test split of imagefolder would be empty: every "
                                       r"class keeps at least one of the 3 training images and none has two"):
        build("imagefolder", root=root, test_split=0.5)


def test_the_first_line_of_a_run_names_the_classes_and_the_size_of_each_split():
    digits = build("digits")
    assert digits.describe("digits") == ("digits: 1,797 images, 10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9): "
                                         f"train {len(digits.train):,}, val {len(digits.val):,}, test 359")
    many = build("synthetic", synthetic_size=40, synthetic_classes=12, val_split=0)
    assert many.describe("synthetic") == ("synthetic: 80 images, 12 classes (class 0, class 1, class 2, class 3, "
                                          "class 4, class 5, class 6, class 7, ..., class 11): train 40, val 0, "
                                          "test 40")
    assert build("xor", synthetic_size=12).describe("xor") == "xor: 2 classes (0, 1): train 12, val 4, test 4 samples"


def test_synthetic_has_the_model_shape_and_fixed_splits():
    splits = build("synthetic", in_channels=3, input_size=20, synthetic_size=40, synthetic_classes=3, val_split=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test), len(splits.classes)) == (30, 10, 40, 3)
    x, y = splits.train[0]
    assert x.shape == (3, 20, 20) and 0 <= y < 3 and splits.mean == (0.5,) * 3
    again = build("synthetic", in_channels=3, input_size=20, synthetic_size=40, synthetic_classes=3, val_split=0.25)
    assert torch.equal(again.train[0][0], x) and not torch.equal(splits.test[0][0], x)
    subset = build("synthetic", in_channels=1, input_size=16, synthetic_size=40, synthetic_classes=3, classes=(2,))
    assert len(subset.train) < 40 and {y for _, y in subset.train} == {0} and subset.train[0][0].shape == (1, 16, 16)


def test_mean_std_override_and_wrong_lengths(tmp_path):
    images, _, _, _ = write_mnist(tmp_path)
    splits = build("mnist", in_channels=3, root=tmp_path, mean=(0.5,), std=(0.25,), val_split=0)
    assert splits.mean == (0.5,) * 3 and splits.std == (0.25,) * 3
    assert torch.allclose(splits.train[1][0][2, 2:30, 2:30], normalized(images[1], 0.5, 0.25), atol=1e-5)
    with pytest.raises(ZooError, match=r"data.mean: 2 values for 3 input channel\(s\); give 1 or 3"):
        build("mnist", in_channels=3, root=tmp_path, mean=(0.1, 0.2), std=(0.3,))
    off = build("mnist", in_channels=3, root=tmp_path, normalize=False)
    assert (off.mean, off.std) == ((0.0,) * 3, (1.0,) * 3) and 0 <= off.test[0][0].min() and off.test[0][0].max() <= 1


# ---- ImageFolder (PNG files) -----------------------------------------------------------------

def test_imagefolder_one_folder_is_split_by_fractions(tmp_path):
    write_imagefolder(tmp_path / "pets", {"cat": 10, "dog": 10, "fish": 5}, size=(40, 30))
    splits = build("imagefolder", in_channels=3, input_size=24, root=tmp_path / "pets", val_split=0.2, test_split=0.2)
    assert splits.classes == ["cat", "dog", "fish"] and splits.mean == (0.485, 0.456, 0.406)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 5)
    indices = splits.train.indices + splits.val.indices + splits.test.indices
    assert sorted(indices) == list(range(25))
    samples = splits.test.base.samples
    assert [splits.test[i][1] for i in range(5)] == [samples[j][1] for j in splits.test.indices]
    assert {samples[j][1] for j in splits.test.indices} == {0, 1, 2}  # stratified: every class is tested
    assert splits.train[0][0].shape == (3, 24, 24)
    exact = build("imagefolder", in_channels=3, input_size=30, root=tmp_path / "pets")  # 40 x 30: only the crop
    x, _ = exact.test[0]
    pixels = np.asarray(Image.open(exact.test.base.samples[exact.test.indices[0]][0]))[:, 5:35]  # the centre square
    for c in range(3):
        assert torch.allclose(x[c], normalized(pixels[..., c], exact.mean[c], exact.std[c]), atol=1e-5)


def test_imagefolder_uses_train_val_test_folders_and_converts_to_gray(tmp_path):
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        write_imagefolder(tmp_path / split, {"a": count, "b": count}, mode="L")
    splits = build("imagefolder", in_channels=1, input_size=16, root=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 6)
    assert splits.train[0][0].shape == (1, 16, 16) and len(splits.mean) == 1
    assert splits.val.base.root == str(tmp_path / "val")
    (tmp_path / "test" / "a").rename(tmp_path / "a_only_here")
    with pytest.raises(ZooError, match="give every split the same class folders"):
        build("imagefolder", root=tmp_path)


def test_imagefolder_without_test_folder_holds_test_out_of_train(tmp_path):
    write_imagefolder(tmp_path / "train", {"a": 5, "b": 5})
    write_imagefolder(tmp_path / "val", {"a": 1, "b": 1})
    splits = build("imagefolder", in_channels=3, root=tmp_path, test_split=0.2)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 2, 2)
    assert splits.test.base is splits.train.base and set(splits.test.indices).isdisjoint(splits.train.indices)


def test_imagefolder_missing_empty_or_imageless_fails_with_one_line_naming_it(tmp_path):
    cases = []
    cases.append((tmp_path / "absent", "imagefolder: .*absent not found; set data.root"))
    (tmp_path / "empty").mkdir()
    cases.append((tmp_path / "empty", "imagefolder: .*empty: Couldn't find any class folder"))
    write_imagefolder(tmp_path / "partial", {"cat": 2})
    (tmp_path / "partial" / "dog").mkdir()
    cases.append((tmp_path / "partial", "imagefolder: .*partial: Found no valid file for the classes dog"))
    write_imagefolder(tmp_path / "valonly" / "val", {"cat": 2})
    cases.append((tmp_path / "valonly", "has val/ but no train/"))
    for root, message in cases:
        with pytest.raises(ZooError, match=message) as error:
            build("imagefolder", root=root)
        assert "\n" not in str(error.value)



def pets_with_unreadable_images(root: Path) -> list[Path]:
    """pets/cat and pets/dog with 6 PNGs and a JPEG each, and 4 unreadable files among them (returned)."""
    write_imagefolder(root, {"cat": 6, "dog": 6})
    for name in ("cat", "dog"):
        write_jpeg(root / name / "6.jpg")
    return [damage(root / "cat" / "4.png", "noise"), damage(root / "cat" / "5.png", "empty"),
            damage(root / "dog" / "0.png", "half"), damage(root / "dog" / "6.jpg", "half")]


def test_imagefolder_skips_unreadable_images_with_one_warning_and_counts_them(tmp_path, capsys):
    bad = pets_with_unreadable_images(tmp_path / "pets")
    splits = build("imagefolder", in_channels=3, input_size=16, root=tmp_path / "pets", val_split=0.2, test_split=0.2)
    assert sorted(splits.skipped) == sorted(bad)
    samples = splits.train.base.samples
    assert len(samples) == 10 and not {Path(path) for path, _ in samples} & set(bad)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 10
    for split in (splits.train, splits.val, splits.test):
        assert all(split[i][0].shape == (3, 16, 16) for i in range(len(split)))  # every kept file loads
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err == (f"warning: skipped 4 unreadable images in {tmp_path / 'pets'} (cat/4.png: cannot identify image "
                   "file; cat/5.png: cannot identify image file; dog/0.png: Truncated File Read; and 1 more); "
                   "remove or replace them\n")
    clean = build("imagefolder", root=tmp_path / "pets", classes=(0,))  # the whole folder is scanned, dog's too
    assert len(clean.skipped) == 4 and capsys.readouterr().err.count("\n") == 1


def test_a_class_folder_of_unreadable_images_only_is_one_line_naming_it(tmp_path, capsys):
    write_imagefolder(tmp_path / "pets", {"cat": 3, "dog": 2})
    for path in (tmp_path / "pets" / "dog").iterdir():
        damage(path, "noise")
    with pytest.raises(ZooError) as error:
        build("imagefolder", root=tmp_path / "pets")
    assert str(error.value) == (f"imagefolder: {tmp_path / 'pets'}: Found no valid file for the classes dog: "
                                "2 unreadable image file(s), e.g. dog/0.png (cannot identify image file); "
                                "replace them, or remove the class folder")
    assert capsys.readouterr().err == ""  # the error says it all: no warning before it


def test_an_image_that_fails_to_decode_after_the_scan_is_one_line_in_the_workers_too(tmp_path):
    write_imagefolder(tmp_path / "pets", {"cat": 2, "dog": 2})
    broken = damage(write_jpeg(tmp_path / "pets" / "dog" / "2.jpg"), "scan")  # header and end marker intact
    splits = build("imagefolder", in_channels=3, input_size=16, root=tmp_path / "pets", val_split=0, test_split=0.2)
    assert splits.skipped == ()
    message = (f"imagefolder: {broken} cannot be decoded (broken data stream when reading image file); "
               "remove or replace it")
    for workers in (0, 1):
        cfg = DataConfig(name="imagefolder", root=tmp_path / "pets", batch_size=8, workers=workers)
        train, _, test = build_loaders(splits, cfg)
        with pytest.raises(ZooError) as error:
            list(train), list(test)
        assert str(error.value) == message  # from a worker, torch wraps it in the worker's traceback: str drops that


def test_zoo_train_skips_unreadable_images_and_finishes(tmp_path):
    pets_with_unreadable_images(tmp_path / "pets")
    sets = ["data.name=imagefolder", f"data.root={tmp_path / 'pets'}", "data.batch_size=4", "train.epochs=1",
            f"train.output_dir={tmp_path / 'runs'}"]
    result = run_zoo("train", "--config", "configs/lenet5_digits.yaml",
                     *(arg for item in sets for arg in ("--set", item)), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: skipped 4 unreadable images in ") and "Traceback" not in result.stderr
    assert list((tmp_path / "runs").glob("lenet5_imagefolder/*/checkpoints/best.pt"))

# ---- missing data sets -------------------------------------------------------------------------

def test_missing_mnist_says_where_it_looked_and_how_to_fetch_it(tmp_path):
    with pytest.raises(ZooError) as error:
        build("mnist", root=tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    assert str(error.value) == (f"MNIST not found under {raw}; run with data.download: true while online, "
                                "or place the four IDX files there")


def test_a_failed_download_is_one_line_with_its_cause(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    for name, message in (("mnist", "MNIST not found under .*MNIST.raw and the download failed "
                                    r"\(<urlopen error no network>\); run again while online"),
                          ("cifar10", r"CIFAR-10 not found \(or failing its checksum\) under .*cifar-10-batches-py "
                                      r"and the download failed \(<urlopen error no network>\)")):
        root = tmp_path / name / "data"  # absent: the failed download leaves no empty folders behind
        with pytest.raises(ZooError, match=message) as error:
            build_datasets(DataConfig(name=name, root=root, download=True), in_channels=1, input_size=32)
        assert "\n" not in str(error.value)
        assert not (tmp_path / name).exists()


# ---- loaders -----------------------------------------------------------------------------------

def test_loaders_batch_shuffle_with_the_seed_and_choose_workers(tmp_path):
    splits = build("digits")
    cfg = DataConfig(name="digits", batch_size=100, loader="torchvision")
    train, val, test = build_loaders(splits, cfg, seed=3)
    assert (train.batch_size, val.batch_size, test.batch_size, train.num_workers) == (100, 100, 100, 0)
    x, y = next(iter(train))
    assert x.shape == (100, 1, 32, 32) and y.dtype == torch.int64
    assert torch.equal(next(iter(build_loaders(splits, cfg, seed=3)[0]))[1], y)
    assert not torch.equal(next(iter(build_loaders(splits, cfg, seed=4)[0]))[1], y)
    assert sum(len(labels) for _, labels in test) == len(splits.test)  # eval: in order, every sample once
    assert build_loaders(splits, DataConfig(name="digits", eval_batch_size=7, loader="torchvision"))[2].batch_size == 7
    write_mnist(tmp_path)
    mnist = build("mnist", root=tmp_path)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    loader = build_loaders(mnist, DataConfig(name="mnist", loader="torchvision"))[0]
    assert loader.num_workers == min(4, cpus) and loader.persistent_workers == (min(4, cpus) > 0)
    assert build_loaders(mnist, DataConfig(name="mnist", workers=0, loader="torchvision"))[0].num_workers == 0
    assert isinstance(build_loaders(mnist, DataConfig(name="mnist"))[0], MemoryLoader)  # auto: the in-memory path
    # A policy runs image by image: auto gives it the workers for files, keeps digits (held in process) in memory.
    from zoo.config import AugmentConfig

    policy = AugmentConfig(policy="trivialaugment")
    assert not isinstance(build_loaders(mnist, DataConfig(name="mnist", augment=policy))[0], MemoryLoader)
    assert isinstance(build_loaders(mnist, DataConfig(name="mnist", augment=AugmentConfig(mixup_alpha=0.2)))[0],
                      MemoryLoader)
    assert isinstance(build_loaders(mnist, DataConfig(name="mnist", augment=policy, loader="memory"))[0], MemoryLoader)
    assert isinstance(build_loaders(splits, DataConfig(name="digits", augment=policy))[0], MemoryLoader)


def test_a_last_training_batch_of_one_is_dropped():
    def loader(count: int):
        data = TensorSet(torch.zeros(count, 1, 4, 4), torch.zeros(count, dtype=torch.long))
        splits = DataSplits(data, None, data, ["0"], (0.0,), (1.0,), 1, 4)
        return build_loaders(splits, DataConfig(name="digits", batch_size=5))[0]

    assert [len(y) for _, y in loader(11)] == [5, 5] and [len(y) for _, y in loader(12)] == [5, 5, 2]
    assert [len(y) for _, y in loader(1)] == [1]


def test_shard_sampler_counts_every_eval_sample_exactly_once():
    shards = [list(ShardSampler(range(10), rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10)) and [len(s) for s in shards] == [4, 3, 3]
    assert len(ShardSampler(range(10), rank=2, world_size=3)) == 3


def test_distributed_loaders_use_a_distributed_sampler_for_train_and_shards_for_eval(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        splits = build("digits")
        train, val, test = build_loaders(splits, DataConfig(name="digits", loader="torchvision"), seed=5,
                                         distributed=True)
        assert isinstance(train.sampler, DistributedSampler) and train.sampler.seed == 5
        assert isinstance(val.sampler, ShardSampler) and isinstance(test.sampler, ShardSampler)
        assert len(test.sampler) == len(splits.test)
        in_memory = build_loaders(splits, DataConfig(name="digits"), seed=5, distributed=True)[0]
        assert isinstance(in_memory.sampler, DistributedSampler) and in_memory.sampler.seed == 5
    finally:
        dist.destroy_process_group()
