"""ImageFolder layouts as people bring them (zoo.data.folders): hidden and system entries are never classes
or images, and split folders are found under the names in use, or refused when they only look like splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from datafiles import write_imagefolder

from zoo.config import DataConfig
from zoo.data import build_datasets
from zoo.data.folders import find_layout, is_hidden
from zoo.errors import ZooError


def build(root: Path, **settings):
    return build_datasets(DataConfig(name="imagefolder", root=root, **settings), in_channels=3, input_size=16, seed=0)


def test_what_systems_and_notebooks_leave_behind_is_never_a_class_or_an_image(tmp_path, capsys):
    root = write_imagefolder(tmp_path / "photos", {"cat": 6, "dog": 6})
    checkpoints = root / ".ipynb_checkpoints"
    checkpoints.mkdir()
    shutil.copy(root / "cat" / "0.png", checkpoints / "0-checkpoint.png")  # Jupyter: one image in a hidden folder
    shutil.copytree(root / "dog", root / "__MACOSX" / "dog")  # a zip made on macOS
    shutil.copy(root / "cat" / "1.png", root / "cat" / "._1.png")  # macOS's resource fork, an image by its name
    (root / "cat" / ".ipynb_checkpoints").mkdir()
    shutil.copy(root / "cat" / "2.png", root / "cat" / ".ipynb_checkpoints" / "2-checkpoint.png")
    (root / "dog" / "Thumbs.db").write_bytes(b"\0" * 64)
    (root / "dog" / ".DS_Store").write_bytes(b"\0" * 64)
    splits = build(root, val_split=0.0)
    assert splits.classes == ["cat", "dog"]
    assert len(splits.train) + len(splits.test) == 12 and splits.skipped == ()  # none counted as unreadable either
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: skipped 6 hidden or system entries in {root} (.ipynb_checkpoints/, __MACOSX/, "
                   "cat/.ipynb_checkpoints/ and 3 more): never classes or images"]


def test_an_empty_hidden_folder_is_no_empty_class(tmp_path):
    root = write_imagefolder(tmp_path / "photos", {"cat": 4, "dog": 4})
    (root / ".ipynb_checkpoints").mkdir()  # torchvision: "Found no valid file for the classes .ipynb_checkpoints"
    assert build(root).classes == ["cat", "dog"]


@pytest.mark.parametrize("names", [("train", "valid", "test"), ("Training", "Validation", "Testing"), ("TRAIN", "VAL")])
def test_split_folders_are_found_under_the_names_people_use(tmp_path, names, capsys):
    for name, count in zip(names, (6, 3, 2)):  # train, val, test
        write_imagefolder(tmp_path / name, {"cat": count, "dog": count})
    splits = build(tmp_path)
    # the folder's, not carved from train/
    assert len(splits.val) == 6 and splits.val.base.root == str(tmp_path / names[1])
    if len(names) == 3:
        assert len(splits.train) == 12 and len(splits.test) == 4 and splits.test.base.root == str(tmp_path / names[2])
        assert capsys.readouterr().err == ""
    else:
        assert len(splits.train) + len(splits.test) == 12  # no test folder: test is held out of train, and it says so
        assert capsys.readouterr().err == (f"note: imagefolder: {tmp_path} has TRAIN/ and VAL/ but no test/: the test "
                                           "split is 20% of TRAIN/'s images, held out by train.seed (add a test/ "
                                           "folder to choose them)\n")


@pytest.mark.parametrize(("names", "message"), [
    (("train_set", "test_set"), "test_set/, train_set/ look like split folders, but zoo reads splits named "
                                "train/training, val/valid/validation, test/testing (any case); rename them"),
    (("train", "eval"), "eval/ looks like a split folder"),
    (("Training", "Test-Data"), "Test-Data/ looks like a split folder"),
    (("train", "Train"), "has both Train/ and train/ as its train split; keep one"),
])
def test_folders_that_only_look_like_splits_are_refused_not_made_classes(tmp_path, names, message):
    for name in names:
        write_imagefolder(tmp_path / name, {"cat": 2, "dog": 2})
    with pytest.raises(ZooError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(tmp_path)


def test_a_folder_beside_the_split_folders_is_warned_about(tmp_path, capsys):
    write_imagefolder(tmp_path / "train", {"cat": 4, "dog": 4})
    write_imagefolder(tmp_path / "extra", {"cat": 2})
    assert len(build(tmp_path, val_split=0.0).train) + 0 > 0
    assert capsys.readouterr().err.strip().splitlines()[0] == (f"warning: {tmp_path}: extra/ not read: only the split "
                                                              "folders are (train/); move its images into them, "
                                                              "or remove it")


def test_class_names_that_contain_split_words_are_classes(tmp_path):
    write_imagefolder(tmp_path, {"test_tube": 5, "training_wheels": 5})  # 3 each would leave no validation image
    layout = find_layout(tmp_path)
    assert layout.splits == {"train": tmp_path} and build(tmp_path).classes == ["test_tube", "training_wheels"]


@pytest.mark.parametrize(("name", "hidden"), [(".git", True), ("._IMG_1.jpg", True), ("__MACOSX", True),
                                               ("thumbs.db", True), ("Desktop.ini", True), ("cat", False),
                                               ("my.photos", False), ("_private", False)])
def test_is_hidden(name, hidden):
    assert is_hidden(name) is hidden


def test_gifs_are_images_and_other_files_are_counted_once(tmp_path, capsys):
    from PIL import Image

    root = write_imagefolder(tmp_path / "photos", {"cat": 4, "dog": 4})
    Image.open(root / "cat" / "0.png").convert("P").save(root / "cat" / "extra.gif")  # torchvision's list has no .gif
    (root / "dog" / "IMG_0001.HEIC").write_bytes(b"\0" * 32)  # an iPhone's photo: Pillow cannot read it
    (root / "dog" / "notes.txt").write_text("dogs")
    splits = build(root, val_split=0.0, test_split=0.2)
    assert len(splits.train) + len(splits.test) == 9
    assert any(path.endswith("extra.gif") for path, _ in splits.train.base.samples)
    assert capsys.readouterr().err.strip().startswith(
        f"note: skipped 2 files in {root} that are not images zoo reads (1 .heic, 1 .txt); it reads .jpg, .jpeg, .png")


@pytest.mark.parametrize(("names", "message"), [
    (("seg_train", "seg_test", "seg_pred"), "seg_test/, seg_train/ look like split folders"),  # Kaggle's Intel
    (("train2017", "val2017"), "train2017/, val2017/ look like split folders"),  # COCO's
    (("trainval", "holdout"), "holdout/, trainval/ look like split folders"),
])
def test_split_folders_under_other_tools_names_are_refused(tmp_path, names, message):
    for name in names:
        write_imagefolder(tmp_path / name, {"cat": 2, "dog": 2})
    with pytest.raises(ZooError, match=message):
        build(tmp_path)


def test_one_level_too_many_gets_a_word_on_data_root(tmp_path):
    from zoo.config import load_config
    from zoo.training import train

    write_imagefolder(tmp_path / "photos" / "images" / "train", {"cat": 3, "dog": 3})
    (tmp_path / "photos" / "images" / "val").mkdir()
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "lenet5_digits.yaml",
                         ["data.name=imagefolder", f"data.root={tmp_path / 'photos'}",
                          f"train.output_dir={tmp_path / 'runs'}"])
    with pytest.raises(ZooError, match=r"holds 1 class \(images\); a classifier needs at least 2: add a folder of "
                                       r"images per class; if images/ holds the splits or the class folders, set "
                                       r"data.root one level down"):
        train(config, quiet=True)


def test_a_file_reached_twice_through_a_symbolic_link_is_one_image(tmp_path, capsys):
    root = write_imagefolder(tmp_path / "photos", {"cat": 3, "dog": 3})
    (root / "cat" / "up").symlink_to("..")  # a link to the parent: every file again, over and over
    splits = build(root, val_split=0.0)
    assert len(splits.train) + len(splits.test) == 6
    assert "paths lead to files already read (symbolic links); each file is one image" in capsys.readouterr().err
