"""zoo.data.manifest: images listed with their labels in a CSV or JSON-lines file, on tiny PNGs and JPEGs written
here; the same splits as an ImageFolder of the same files, multi-hot targets for task multilabel, and every bad
manifest refused in one line naming the file and the line. Also zoo.data.splits.hold_out_sets."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from datafiles import damage, write_imagefolder, write_jpeg
from torch.utils.data import default_collate

from zoo.config import DataConfig
from zoo.data import DataSplits, build_datasets, build_folder
from zoo.data.splits import hold_out_sets
from zoo.errors import ZooError


def build(manifest: Path, seed: int = 0, multilabel: bool = False, **settings) -> DataSplits:
    return build_datasets(DataConfig(name="manifest", manifest=manifest, **settings), in_channels=3, input_size=16,
                          seed=seed, multilabel=multilabel)


def photos(tmp_path: Path, counts: dict[str, int] | None = None) -> Path:
    """tmp_path/photos/<class>/<i>.png, 12 x 10 pixels."""
    return write_imagefolder(tmp_path / "photos", counts or {"cat": 6, "dog": 6}, size=(12, 10))


def csv_rows(root: Path, name: str = "labels.csv", header: str = "path,label", rows: list[str] | None = None,
             encoding: str = "utf-8") -> Path:
    """A CSV beside the class folders; rows default to every PNG under root labelled by its folder."""
    if rows is None:
        rows = [f"{path.relative_to(root)},{path.parent.name}" for path in sorted(root.rglob("*.png"))]
    (root / name).write_text("\n".join([header, *rows]) + "\n", encoding=encoding)
    return root / name


def labels_of(dataset) -> list:
    return [dataset[index][1] for index in range(len(dataset))]


# ---- reading ----------------------------------------------------------------------------------------

def test_a_csv_with_a_bom_relative_and_absolute_paths_and_extra_columns(tmp_path):
    root = photos(tmp_path, {"cat": 3, "dog": 3})
    rows = ["cat/0.png,cat,0.91,x", f"{(root / 'cat' / '1.png').resolve()},cat,0.5,y", "./cat/2.png,cat,,",
            "dog/0.png,dog,,", "dog/1.png, dog ,,", f"{root.resolve()}/dog/2.png,dog,,"]
    manifest = csv_rows(root, header="Path,LABEL,score,notes", rows=rows, encoding="utf-8-sig")  # Excel's BOM
    assert manifest.read_bytes().startswith(b"\xef\xbb\xbf")
    splits = build(manifest, val_split=0.0, test_split=0.2)
    assert splits.classes == ["cat", "dog"] and not splits.multilabel
    assert len(splits.train) + len(splits.test) == 6 and splits.val is None
    everything = sorted(splits.train.paths + splits.test.paths)
    assert everything == sorted([str(root / "cat" / "0.png"), str((root / "cat" / "1.png").resolve()),
                                 str(root / "cat" / "2.png"), str(root / "dog" / "0.png"), str(root / "dog" / "1.png"),
                                 f"{root.resolve()}/dog/2.png"])
    image, label = splits.train[0]
    assert image.shape == (3, 16, 16) and isinstance(label, int)
    for dataset in (splits.train, splits.test):
        assert labels_of(dataset) == [0 if "/cat/" in path else 1 for path in dataset.paths]
    assert splits.describe("manifest") == "manifest: 6 images, 2 classes (cat, dog): train 5, val 0, test 1"


def test_json_lines_blank_lines_skipped_and_numbers_as_labels_become_text(tmp_path):
    root = photos(tmp_path, {"3": 3, "10": 3})
    lines = [json.dumps({"path": f"{folder}/{i}.png", "label": int(folder), "source": "tool"})
             for folder in ("3", "10") for i in range(3)]
    (root / "labels.jsonl").write_text("\n\n".join(lines) + "\n\n")
    splits = build(root / "labels.jsonl", val_split=0.0)
    assert splits.classes == ["10", "3"]  # sorted as text, as ImageFolder sorts folder names
    assert all(labels_of(splits.train)[i] == (0 if "/10/" in path else 1) for i, path in enumerate(splits.train.paths))


def test_the_split_column_is_honoured_and_a_missing_split_held_out(tmp_path, capsys):
    root = photos(tmp_path, {"cat": 8, "dog": 8})
    split = {0: "Valid", 1: "TESTING", 2: "test", 3: "val"}  # any name folders.SPLIT_NAMES knows, any case
    rows = [f"{name}/{i}.png,{name},{split.get(i, '' if i % 2 else 'train')}" for name in ("cat", "dog")
            for i in range(8)]
    splits = build(csv_rows(root, header="path,label,split", rows=rows))
    assert sorted(splits.val.paths) == sorted(str(root / name / f"{i}.png") for name in ("cat", "dog") for i in (0, 3))
    assert sorted(splits.test.paths) == sorted(str(root / name / f"{i}.png") for name in ("cat", "dog") for i in (1, 2))
    assert len(splits.train) == 8 and capsys.readouterr().err == ""
    only_val = [row for row in rows if "test" not in row.lower()]
    splits = build(csv_rows(root, "val.csv", header="path,label,split", rows=only_val), test_split=0.25)
    assert len(splits.val) == 4 and len(splits.test) == 2 and len(splits.train) == 6  # test: 0.25 x 8
    assert not set(splits.test.paths) & set(splits.train.paths)
    assert "has no test rows: the test split is held out of its training rows" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_files_as_a_class_folder_tree_give_the_same_splits_in_any_row_order(tmp_path, seed):
    root = photos(tmp_path, {"cat": 13, "dog": 9, "emu": 11})
    write_imagefolder(root / "cat" / "+", {"more": 2}, size=(12, 10))  # a sub-folder: ImageFolder walks it after cat/
    rows = [f"{path.relative_to(root)},{path.relative_to(root).parts[0]}" for path in sorted(root.rglob("*.png"))]
    random.Random(seed).shuffle(rows)
    folder = build_datasets(DataConfig(name="imagefolder", root=root), in_channels=3, input_size=16, seed=seed)
    listed = build(csv_rows(root, rows=rows), seed=seed)
    assert listed.classes == folder.classes == ["cat", "dog", "emu"]
    for split in ("train", "val", "test"):
        assert getattr(listed, split).paths == getattr(folder, split).paths, split
        assert torch.equal(getattr(listed, split).labels, getattr(folder, split).labels)
    assert listed.describe("manifest").split(": ", 1)[1] == folder.describe("imagefolder").split(": ", 1)[1]


# ---- multilabel -------------------------------------------------------------------------------------

def test_multilabel_cells_give_multi_hot_targets_and_sorted_classes(tmp_path):
    root = photos(tmp_path, {"img": 10})
    cells = ["sky; tree", "tree", "sky|x", "tree ;sky; tree", "boat", "sky", "tree;boat", "sky", "boat;sky", "tree"]
    rows = [f"img/{i}.png,{cell}" for i, cell in enumerate(cells)]
    splits = build(csv_rows(root, rows=rows), multilabel=True, val_split=0.2, test_split=0.2)
    assert splits.multilabel and splits.classes == ["boat", "sky", "sky|x", "tree"]
    hot = {"sky; tree": [0, 1, 0, 1], "tree": [0, 0, 0, 1], "sky|x": [0, 0, 1, 0], "tree ;sky; tree": [0, 1, 0, 1],
           "boat": [1, 0, 0, 0], "sky": [0, 1, 0, 0], "tree;boat": [1, 0, 0, 1], "boat;sky": [1, 1, 0, 0]}
    seen = []
    for dataset in (splits.train, splits.val, splits.test):
        assert dataset.labels.shape == (len(dataset), 4) and dataset.labels.dtype == torch.float32
        for path, (_, target), row in zip(dataset.paths, (dataset[i] for i in range(len(dataset))), dataset.labels):
            expected = torch.tensor(hot[cells[int(Path(path).stem)]], dtype=torch.float32)
            assert target.dtype == torch.float32 and torch.equal(target, expected) and torch.equal(row, expected)
            seen.append(path)
    assert sorted(seen) == sorted(str(root / "img" / f"{i}.png") for i in range(10))
    assert default_collate([splits.train[0], splits.train[1]])[1].shape == (2, 4)
    assert splits.train.labels[:, 2].sum() == 1  # sky|x's one image stays in training


def test_json_lines_list_labels_as_they_are_and_an_empty_list_is_no_class(tmp_path):
    root = photos(tmp_path, {"img": 6})
    labels = [["a;b"], ["c", "a;b"], [], ["c"], [3], ["c", "c"]]
    (root / "labels.jsonl").write_text("".join(json.dumps({"path": f"img/{i}.png", "label": label}) + "\n"
                                               for i, label in enumerate(labels)))
    splits = build(root / "labels.jsonl", multilabel=True, val_split=0.0, test_split=0.2)
    assert splits.classes == ["3", "a;b", "c"]  # a list is not split at the delimiter
    targets = {Path(path).stem: row.tolist() for dataset in (splits.train, splits.test)
               for path, row in zip(dataset.paths, dataset.labels)}
    assert targets == {"0": [0, 1, 0], "1": [0, 1, 1], "2": [0, 0, 0], "3": [0, 0, 1], "4": [1, 0, 0], "5": [0, 0, 1]}


def test_hold_out_sets_is_seeded_disjoint_stratified_and_keeps_every_label_in_training():
    generator = torch.Generator().manual_seed(0)
    rates = torch.tensor([0.5, 0.3, 0.1, 0.02, 0.002])
    targets = (torch.rand(1000, 5, generator=generator) < rates).float()
    indices = torch.arange(1000) * 3  # indices into a base, not 0..N-1
    kept, held = hold_out_sets(indices, targets, 0.2, torch.Generator().manual_seed(7))
    again = hold_out_sets(indices, targets, 0.2, torch.Generator().manual_seed(7))
    other = hold_out_sets(indices, targets, 0.2, torch.Generator().manual_seed(8))
    assert torch.equal(kept, again[0]) and torch.equal(held, again[1]) and not torch.equal(held, other[1])
    assert sorted(kept.tolist() + held.tolist()) == indices.tolist()
    assert len(held) == 200  # round(0.2 x 1000): no label lost training, so nothing moved back
    positives, in_held = targets.sum(0), targets[held // 3].sum(0)
    assert (in_held - 0.2 * positives).abs().max() <= 1.5  # each label's share: within a sample or so of 20%
    assert (targets[kept // 3].sum(0) >= 1).all()
    single = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])  # one sample holds both labels
    kept, held = hold_out_sets(torch.arange(3), single, 0.9, torch.Generator().manual_seed(0))
    assert 0 in kept.tolist()


# ---- what image folders have -------------------------------------------------------------------------

def test_hidden_paths_are_skipped_with_one_note_and_repeats_read_once(tmp_path, capsys):
    root = photos(tmp_path, {"cat": 4, "dog": 4})
    (root / ".ipynb_checkpoints").mkdir()
    shutil.copy(root / "cat" / "0.png", root / ".ipynb_checkpoints" / "0-checkpoint.png")
    rows = [f"{name}/{i}.png,{name}" for name in ("cat", "dog") for i in range(4)]
    rows += [".ipynb_checkpoints/0-checkpoint.png,cat", "__MACOSX/cat/._1.png,cat", "cat/0.png,cat", "./dog/1.png,dog"]
    manifest = csv_rows(root, rows=rows)
    splits = build(manifest, val_split=0.0)
    assert len(splits.train) + len(splits.test) == 8 and splits.skipped == ()
    assert capsys.readouterr().err.splitlines() == [
        f"note: manifest: {manifest}: skipped 2 rows whose path is hidden or a system entry (line 10: "
        ".ipynb_checkpoints/0-checkpoint.png; line 11: __MACOSX/cat/._1.png): never images",
        f"note: manifest: {manifest}: 2 rows list an image already listed (line 12 repeats line 2); each image is "
        "read once"]


def test_an_unreadable_image_is_skipped_with_the_warning_and_other_files_noted(tmp_path, capsys):
    root = photos(tmp_path, {"cat": 4, "dog": 4})
    damage(root / "dog" / "2.png", "half")
    (root / "dog" / "IMG_1.HEIC").write_bytes(b"\0" * 32)
    rows = [f"{name}/{i}.png,{name}" for name in ("cat", "dog") for i in range(4)] + ["dog/IMG_1.HEIC,dog"]
    splits = build(csv_rows(root, rows=rows), val_split=0.0)
    assert splits.skipped == (root / "dog" / "2.png",) and len(splits.train) + len(splits.test) == 7
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"note: skipped 1 file in {root} that is not an image zoo reads (1 .heic)")
    assert err[1].startswith(f"warning: skipped 1 unreadable image in {root} (dog/2.png: ")


def test_an_image_that_fails_to_decode_after_the_scan_names_the_manifest(tmp_path):
    root = tmp_path / "photos"
    for i in range(4):
        write_jpeg(root / f"{i}.jpg", seed=i)
    damage(root / "0.jpg", "scan")  # header and end marker intact: only decoding finds it
    manifest = csv_rows(root, rows=[f"{i}.jpg,{'ab'[i % 2]}" for i in range(4)])
    splits = build_folder(DataConfig(name="manifest", manifest=manifest), in_channels=3, input_size=16, split="test")
    index = splits.test.paths.index(str(root / "0.jpg"))
    with pytest.raises(ZooError, match=rf"^manifest: {manifest}: {root / '0.jpg'} cannot be decoded"):
        splits.test[index]


def test_build_folder_reads_the_split_asked_for_or_every_row_with_nothing_held_out(tmp_path):
    root = photos(tmp_path, {"cat": 5, "dog": 5})
    plain = csv_rows(root)
    splits = build_folder(DataConfig(name="manifest", manifest=plain), in_channels=3, input_size=16, split="test")
    assert len(splits.test) == 10 and splits.val is None and splits.classes == ["cat", "dog"]
    rows = [f"{name}/{i}.png,{name},{'test' if i < 2 else 'val' if i == 2 else ''}" for name in ("cat", "dog")
            for i in range(5)]
    split = csv_rows(root, "split.csv", header="path,label,split", rows=rows)
    tested = build_folder(DataConfig(name="manifest", manifest=split), in_channels=3, input_size=16, split="test")
    assert sorted(tested.test.paths) == sorted(str(root / name / f"{i}.png") for name in ("cat", "dog") for i in (0, 1))
    checked = build_folder(DataConfig(name="manifest", manifest=split), in_channels=3, input_size=16, split="val")
    assert sorted(checked.test.paths) == [str(root / "cat" / "2.png"), str(root / "dog" / "2.png")]
    trained = build_folder(DataConfig(name="manifest", manifest=split), in_channels=3, input_size=16, split="train")
    assert len(trained.test) == 4 and trained.val is None
    no_val = csv_rows(root, "no_val.csv", header="path,label,split", rows=[row.replace(",val", ",") for row in rows])
    with pytest.raises(ZooError, match=rf"^manifest: {no_val} has rows of test, train but none of val; choose "
                                       "--split test or train$"):
        build_folder(DataConfig(name="manifest", manifest=no_val), in_channels=3, input_size=16, split="val")


# ---- bad manifests: one line naming the file and the line ----------------------------------------------

PNG_ROWS = "cat/0.png,cat\ncat/1.png,cat\ndog/0.png,dog\ndog/1.png,dog\n"
BAD = [  # (file name, its text or bytes, what the line says after "manifest: <file>")
    ("absent.csv", None, " not found; set data.manifest to a .csv or .jsonl file of path and label"),
    ("labels.txt", "path,label\n", ": not a .csv or .jsonl file; zoo reads a CSV with a header"),
    ("labels.json", "[]", ": not a .csv or .jsonl file (a JSON array: write one object per line, as .jsonl)"),
    ("labels.csv", "\n\n", " is empty; write a header (path,label) and a row per image"),
    ("labels.csv", "path,label\n\n", " line 1: a header but no rows; add a row per image"),
    ("labels.csv", "id,label\n" + PNG_ROWS, " line 1: no path column (its columns: id, label); rename id to path"),
    ("labels.csv", "path,labels\n" + PNG_ROWS, " line 1: no label column (its columns: path, labels); rename labels "
                                               "to label"),
    ("labels.csv", "path,breed\n" + PNG_ROWS, " line 1: no label column (its columns: path, breed); name the class "
                                              "column label"),
    ("labels.csv", "path;label\ncat/0.png;cat\n", " line 1: no path column (its columns: path;label); zoo reads "
                                                  "comma-separated values"),
    ("labels.csv", "path,label\ncat/0.png,cat\ncat/9.png,cat\ndog/8.png,dog\ndog/0.png,dog\n",
     " line 3: no file cat/9.png (looked for {root}/cat/9.png: paths are relative to the manifest's folder) (and 1 "
     "more row like it); put the image there, or fix or remove the row"),
    ("labels.csv", "path,label\ncat/0.png,cat\ncat/1.png,\n", " line 3: no label; give every image its class, or "
                                                              "remove the row"),
    ("labels.csv", "path,label,split\ncat/0.png,cat,\ndog/0.png,dog,dev\n", " line 3: unknown split 'dev'; give "
     "train/training, val/valid/validation, test/testing (any case), or leave it empty for a training row"),
    ("labels.csv", "path,label\n" + PNG_ROWS + "./cat/0.png,dog\n", " lines 2 and 6 list the same image (cat/0.png, "
                                                                    "as ./cat/0.png) with different labels (cat and "
                                                                    "dog); keep one row"),
    ("labels.csv", "path,label,split\ncat/0.png,cat,\ndog/0.png,dog,\ncat/0.png,cat,test\n", " lines 2 and 4 list the "
     "same image (cat/0.png) with different splits (train and test); keep one row"),
    ("labels.csv", "path,label\ncat/0.png,cat\ndog/0.png,cat;dog\n", " line 3: the label 'cat;dog' holds "
     "data.label_delimiter ';'; task classification takes one label per image: set task: multilabel"),
    ("labels.csv", 'path,label\ncat/0.png,"c\na\nt"\n', " line 4: the label 'c\\na\\nt' has a control character"),
    ("labels.csv", b"path,label\ncat/0.png,caf\xe9\n", " line 2: not UTF-8 text (byte 0xe9); save it as UTF-8"),
    ("labels.csv", "path,label,split\ncat/0.png,cat,\ndog/0.png,dog,test\n", ": the class dog has no readable image to "
     "train on (line 3: dog/0.png is in the test split); replace its images, or give it training rows"),
    ("labels.jsonl", '{"path": "cat/0.png", "label": "cat"}\n{"path": "dog/0.png", "label": "dog",}\n',
     " line 2: not valid JSON (Expecting property name enclosed in double quotes, column 38); write one object per "
     "line"),
    ("labels.jsonl", '\n["cat/0.png", "cat"]\n', " line 2: a JSON list, not an object; write one object per line"),
    ("labels.jsonl", '{"image": "cat/0.png", "label": "cat"}\n', " line 1: no path key (its keys: image, label); "
                                                                 "rename image to path"),
    ("labels.jsonl", '{"path": "cat/0.png", "label": "cat"}\n{"path": "dog/0.png"}\n', " line 2: no label key (its "
                                                                                       "keys: path); name the class"),
    ("labels.jsonl", '{"path": "cat/0.png", "label": "cat"}\n{"path": "dog/0.png", "label": " "}\n', " line 2: no "
                                                                                                     "label"),
    ("labels.jsonl", '{"path": "cat/0.png", "label": ["cat"]}\n', " line 1: a list of labels, but task classification "
                                                                  "takes one per image; set task: multilabel"),
    ("labels.jsonl", '{"path": 7, "label": "cat"}\n', " line 1: the path 7 is not text"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD, ids=[f"{i}-{case[0]}" for i, case in enumerate(BAD)])
def test_a_bad_manifest_is_one_line_naming_the_file_and_line(tmp_path, name, content, message):
    root = photos(tmp_path, {"cat": 2, "dog": 2})
    manifest = root / name
    if isinstance(content, bytes):
        manifest.write_bytes(content)
    elif content is not None:
        manifest.write_text(content)
    with pytest.raises(ZooError) as raised:
        build(manifest)
    text = str(raised.value)
    assert "\n" not in text and text.startswith(f"manifest: {manifest}{message.format(root=root)}"), text


def test_a_class_whose_images_are_all_unreadable_names_one_of_them(tmp_path):
    root = photos(tmp_path, {"cat": 2, "dog": 2})
    for i in range(2):
        damage(root / "dog" / f"{i}.png", "noise")
    manifest = csv_rows(root)
    with pytest.raises(ZooError, match=rf"^manifest: {manifest}: the class dog has no readable image to train on "
                                       r"\(line 4: dog/0.png is unreadable \(cannot identify image file\)\)"):
        build(manifest)


def test_multilabel_with_an_empty_cell_is_a_bad_row_and_other_sets_are_refused(tmp_path):
    root = photos(tmp_path, {"img": 3})
    manifest = csv_rows(root, rows=["img/0.png,a;b", "img/1.png, ; ", "img/2.png,a"])
    with pytest.raises(ZooError, match=rf"^manifest: {manifest} line 3: no label; give every image its classes"):
        build(manifest, multilabel=True)
    with pytest.raises(ZooError, match="task multilabel: data.name digits has one label per image"):
        build_datasets(DataConfig(name="digits"), in_channels=1, input_size=16, multilabel=True)


def test_one_image_reached_through_a_link_is_one_image(tmp_path, capsys):
    root = photos(tmp_path, {"cat": 3, "dog": 3})
    (root / "alias.png").symlink_to(root / "cat" / "0.png")
    rows = [f"{name}/{i}.png,{name},{'train' if i == 0 else ''}" for name in ("cat", "dog") for i in range(3)]
    manifest = csv_rows(root, header="path,label,split", rows=[*rows, "alias.png,cat,"])  # train and no split: one
    splits = build(manifest, val_split=0.0)
    assert len(splits.train) + len(splits.test) == 6
    assert "1 row lists an image already listed (line 8 repeats line 2)" in capsys.readouterr().err
    other = csv_rows(root, "other.csv", header="path,label,split", rows=[*rows, "alias.png,dog,"])
    with pytest.raises(ZooError, match=rf"^manifest: {other} lines 2 and 8 list the same image \(cat/0.png, as "
                                       r"alias.png\) with different labels \(cat and dog\); keep one row$"):
        build(other)


def test_a_manifest_of_the_digits_trains_exactly_as_their_class_folders(tmp_path):
    """The issue's bar: the main job on scikit-learn's digits written as PNG class folders, and on a CSV manifest
    listing the same files in shuffled order, gives the same splits and the same test accuracy for the same seed."""
    from helpers import digits_config
    from PIL import Image

    from zoo.data.sets import read_digits
    from zoo.training import train

    pixels, labels = read_digits()
    rows = []
    for index, (image, label) in enumerate(zip(pixels, labels)):
        path = tmp_path / "digits" / str(label) / f"{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).round().astype("uint8"), mode="L").save(path)
        rows.append(f"{path.relative_to(tmp_path / 'digits').as_posix()},{label}")
    random.Random(0).shuffle(rows)
    (tmp_path / "digits" / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    common = ["train.epochs=2", "train.threads=1", "data.workers=0", f"train.output_dir={tmp_path / 'runs'}"]
    folders = train(digits_config(tmp_path, *common, "data.name=imagefolder", f"data.root={tmp_path / 'digits'}"),
                    quiet=True)
    listed = train(digits_config(tmp_path, *common, "data.name=manifest",
                                 f"data.manifest={tmp_path / 'digits' / 'labels.csv'}"), quiet=True)
    assert folders.metrics["test"]["count"] == listed.metrics["test"]["count"] == 359
    assert folders.metrics["test"]["accuracy"] == listed.metrics["test"]["accuracy"]
    assert folders.metrics["val"]["loss"] == listed.metrics["val"]["loss"]


@pytest.mark.parametrize(("mode", "noted"), [("RGB", True), ("L", False), ("LA", False)])
def test_a_1_channel_model_is_warned_of_lost_colour_only_for_colour_pictures(tmp_path, mode, noted):
    """LeNet-5 takes gray: colour pictures lose their colour (a note says so); gray ones (with or without alpha) lose
    nothing, and the note would only alarm. Read as an ImageFolder and as a manifest of the same files alike."""
    from helpers import digits_config

    from zoo.training.setup import data_notes

    root = write_imagefolder(tmp_path / "pets", {"cat": 5, "dog": 5}, mode=mode)
    manifest = csv_rows(root)  # written after the folders were read: the CSV is no class folder
    for data in (["data.name=imagefolder", f"data.root={root}"], ["data.name=manifest", f"data.manifest={manifest}"]):
        config = digits_config(tmp_path, *data)
        splits = build_datasets(config.data, in_channels=1, input_size=32, seed=0)
        notes = data_notes(config, splits, torch.tensor([4, 4]), 1)
        assert any("their colour is lost" in note for note in notes) == noted, (data, notes)
