"""A manifest: images listed with their labels in a CSV (with a header) or JSON-lines file, read where they lie, so
a Kaggle-style train.csv or an annotation tool's export needs no class folders. zoo.data.sets reads it for
data.name manifest; everything an image folder has applies, through the same code: ImageCheck's scan (unreadable
files skipped with one warning, other extensions noted), open_image, and folders.is_hidden.

    bases, classes, skipped = read_manifest(Path("photos/labels.csv"), multilabel=False, delimiter=";")

    path,label,split                  {"path": "cat/1.png", "label": "cat", "split": "val"}
    cat/1.png,cat,val                 {"path": "/data/2.jpg", "label": ["cat", "indoor"]}   (task multilabel)
    /data/2.jpg,cat;indoor,           {"path": "3.png", "label": []}   (multilabel: none of the classes)

Columns (any case; others ignored): `path`, relative to the manifest's folder or absolute; `label`, one class, or for
task multilabel several in one cell split by data.label_delimiter (a JSON list as it is), numbers read as text;
`split`, optional: train, val or test under any name folders.SPLIT_NAMES knows, empty for a training row. Classes
are every label seen, sorted as text (as ImageFolder sorts folder names). Rows of train or no split train; a split
no row gives is held out of them by data.val_split / data.test_split and train.seed (zoo.data.splits.select: by
class, or for multilabel by iterative stratification of the label sets). One file listed twice (found by its
device and inode, so links too) is read once where both rows agree, and refused where they do not. Each
split's samples are in ImageFolder's order (by class index, then folder and file name; multilabel: by path), so a
manifest of the files of a class-folder tree gives that tree's splits exactly, whatever its row order.

A bad manifest is one ZooError naming the file and the line, raised before anything is written.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.data.folders import KNOWN, SPLIT_NAMES, breaks_lines, is_hidden
from zoo.data.images import ImageCheck, note_others, open_image, warn_skipped
from zoo.errors import ZooError

SUFFIXES = (".csv", ".jsonl")
EXAMPLE = '{"path": "cat/1.png", "label": "cat"}'
# Names exports give the sample and label columns; difflib finds misspellings (labels, Path), these the other words.
ALIASES = {"path": ("id", "image", "image_id", "img", "file", "filename", "file_name", "filepath", "image_path",
                    "image_name", "name", "uri"),
           "text": ("sentence", "sentences", "review", "content", "body", "comment", "document", "tweet", "phrase",
                    "utterance", "question"),
           "label": ("class", "category", "target", "tag", "tags", "classes", "class_name", "y", "annotation",
                     "sentiment", "polarity")}
SHOWN = 3  # rows named in a note


@dataclass(frozen=True)
class Listing:
    """What a manifest lists, as its reader and messages name it: images by `path` (data.name manifest), or
    sentences by their `text` (data.name text, zoo.data.text)."""

    column: str = "path"  # the sample's column, beside label and split
    sample: str = "image"
    example: str = EXAMPLE

    @property
    def columns(self) -> tuple[str, str, str]:
        return self.column, "label", "split"

    @property
    def header(self) -> str:
        return f"{self.column},label"


IMAGES = Listing()


@dataclass(frozen=True)
class Row:
    line: int  # in the file, from 1 (a CSV's header is line 1)
    cell: str  # the path as written
    labels: tuple[str, ...]  # one, for classification; any number (none: a JSON []) for multilabel
    split: str | None  # train, val or test; None: a training row, which held-out splits come out of


class ManifestSet(Dataset):
    """The images of a manifest's rows: samples are (path, class index), or for multilabel (path, class indices),
    and targets the class indices, or an N x K float32 multi-hot tensor. Each image is read by open_image."""

    def __init__(self, file: Path, samples: list[tuple[str, Any]], classes: list[str], multilabel: bool) -> None:
        self.file, self.root, self.classes, self.multilabel = file, str(file.parent), classes, multilabel
        self.split_column = False  # a whole manifest read for evaluation: its rows name splits (read_manifest)
        self.samples = samples
        self.targets: list[int] | Tensor = [target for _, target in samples]
        if multilabel:
            hot = torch.zeros(len(samples), len(classes))
            rows = [index for index, (_, labels) in enumerate(samples) for _ in labels]
            hot[rows, [label for _, labels in samples for label in labels]] = 1
            self.targets = hot

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int | Tensor]:
        path, target = self.samples[index]
        return self.load(path), (self.targets[index].clone() if self.multilabel else target)

    def load(self, path: str) -> Any:
        """open_image, its error naming the manifest (torch re-raises it from a DataLoader worker)."""
        try:
            return open_image(path)
        except ZooError as error:
            raise ZooError(f"manifest: {self.file}: {error}") from None


def read_manifest(file: Path, *, multilabel: bool, delimiter: str, whole: str | None = None
                  ) -> tuple[dict[str, Dataset | None], list[str], list[Path]]:
    """The manifest's splits as ManifestSets ({"train": ..., and "val" and "test" where rows give them}), its class
    names and the unreadable files left out. With `whole` (a split's name), that split's rows, or every row where
    no row names a split, as train and test both: every image of it is tested."""
    records = _records(file, _text(file))
    rows = [_row(file, line, record, delimiter, multilabel) for line, record in records]
    named = any(row.split is not None for row in rows)  # the rows name splits: evaluation reads one split's
    if whole is not None:
        rows = _whole(file, rows, whole)
    located = _locate(file, rows)
    check = ImageCheck()
    readable = [(row, path) for row, path in located if check(path)]
    classes = sorted({label for row, _ in located for label in row.labels})
    _check_training(file, located, readable, check, classes, whole is not None)
    note_others(file.parent, check.others)
    warn_skipped(file.parent, check.unreadable, f"replace them, or remove their rows from {file.name}")
    groups: dict[str, list[tuple[Row, str]]] = ({"train": []} if whole is not None else  # each split given: a base
                                                {row.split or "train": [] for row in rows})
    for row, path in readable:
        groups["train" if whole is not None else row.split or "train"].append((row, path))
    bases: dict[str, Dataset | None] = {split: _set(file, entries, classes, multilabel)
                                        for split, entries in groups.items()}
    for base in bases.values():
        base.gray = check.gray  # every picture stored gray: a 1-channel model loses no colour (DataSplits.gray)
    if whole is not None:
        bases["test"] = bases["train"]
        bases["train"].split_column = named  # evaluate's header says which rows
    elif {row.split for row in rows} - {None, "train"} and "test" not in bases:
        _print_once(f"note: manifest: {file} has no test rows: the test split is held out of its training rows by "
                    "data.test_split and train.seed (give rows the split test to choose them)")
    return bases, classes, [path for path, _ in check.unreadable]


def _set(file: Path, entries: list[tuple[Row, str]], classes: list[str], multilabel: bool) -> ManifestSet:
    """One split's rows in ImageFolder's order: by class (multilabel: none), then folder, then file name."""
    index = {name: number for number, name in enumerate(classes)}
    samples: list[tuple[str, Any]] = [
        (path, tuple(sorted(index[label] for label in row.labels)) if multilabel else index[row.labels[0]])
        for row, path in entries]
    samples.sort(key=lambda sample: (0 if multilabel else sample[1], *os.path.split(sample[0])))
    return ManifestSet(file, samples, classes, multilabel)


# ---- reading the file: records of path, label and split, each with its line -----------------------

def _text(file: Path, listing: Listing = IMAGES) -> str:
    """The manifest's text (a leading BOM, as Excel writes, dropped); ZooError for a file that is not one."""
    where, wanted = f"manifest: {file}", f"a .csv or .jsonl file of {listing.column} and label"
    if not file.exists():
        raise ZooError(f"{where} not found; set data.manifest to {wanted}")
    if file.is_dir():
        folders = " (a folder of class folders is data.name imagefolder)" if listing == IMAGES else ""
        raise ZooError(f"{where} is a folder; set data.manifest to {wanted}{folders}")
    if file.suffix.lower() not in SUFFIXES:
        hint = " (a JSON array: write one object per line, as .jsonl)" if file.suffix.lower() == ".json" else ""
        raise ZooError(f"{where}: not a .csv or .jsonl file{hint}; zoo reads a CSV with a header ({listing.header}) or "
                       f"JSON lines ({listing.example} per line)")
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ZooError(f"{where} cannot be read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ZooError(f"{where} line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save it as UTF-8 "
                       "(Excel: CSV UTF-8)") from None
    if not text.strip():
        raise ZooError(f"{where} is empty; write a header ({listing.header}) and a row per {listing.sample}")
    return text


def _records(file: Path, text: str, listing: Listing = IMAGES) -> list[tuple[int, dict[str, Any]]]:
    """(line, {column: value}) per row that is not blank; ZooError where there is none."""
    records = list(_jsonl(file, text, listing) if file.suffix.lower() == ".jsonl" else _csv(file, text, listing))
    if not records:
        raise ZooError(f"manifest: {file} line 1: a header but no rows; add a row per {listing.sample}")
    return records


def _csv(file: Path, text: str, listing: Listing) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((cells for cells in reader if any(cell.strip() for cell in cells)), [])
        columns = {name.strip().lower(): index for index, name in reversed(list(enumerate(header)))}  # the first wins
        missing = next((column for column in listing.columns[:2] if column not in columns), None)
        if missing is not None:
            raise ZooError(_no_column(file, reader.line_num, missing, header, "column", listing))
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield reader.line_num, {column: cells[columns[column]] if columns[column] < len(cells) else None
                                        for column in listing.columns if column in columns}
    except csv.Error as error:
        raise ZooError(f"manifest: {file} line {reader.line_num}: not valid CSV ({error})") from None


def _jsonl(file: Path, text: str, listing: Listing) -> Iterator[tuple[int, dict[str, Any]]]:
    kinds = {list: "list", str: "string", int: "number", float: "number", bool: "true or false", type(None): "null"}
    for line, content in enumerate(text.split("\n"), 1):  # not splitlines: a JSON string may hold U+2028
        if not content.strip():
            continue
        where = f"manifest: {file} line {line}"
        try:
            value = json.loads(content)
        except json.JSONDecodeError as error:
            raise ZooError(f"{where}: not valid JSON ({error.msg}, column {error.colno}); write one object per line, "
                           f"e.g. {listing.example}") from None
        if not isinstance(value, dict):
            raise ZooError(f"{where}: a JSON {kinds.get(type(value), 'value')}, not an object; write one object per "
                           f"line, e.g. {listing.example}")
        keys = {key.strip().lower(): key for key in reversed(list(value))}
        missing = next((column for column in listing.columns[:2] if column not in keys), None)
        if missing is not None:
            raise ZooError(_no_column(file, line, missing, list(value), "key", listing))
        yield line, {column: value[keys[column]] for column in listing.columns if column in keys}


def _no_column(file: Path, line: int, column: str, found: list[str], kind: str,
               listing: Listing = IMAGES) -> str:
    """The line refusing a header (or JSON object) without `column`, naming what it has and the near name."""
    names = [name.strip() for name in found]
    near = difflib.get_close_matches(column, names, n=1, cutoff=0.6) or [
        name for name in names if name.lower() in ALIASES[column]][:1]
    meaning = listing.sample if column == listing.column else "class"
    fix = f"rename {near[0]} to {column}" if near else f"name the {meaning} {kind} {column}"
    if kind == "column" and len(names) == 1 and any(char in names[0] for char in ";\t|"):
        fix = "zoo reads comma-separated values: save it with commas"
    shown = ", ".join(repr(name) if not name or name != name.strip() else name for name in found) or "none"
    return f"manifest: {file} line {line}: no {column} {kind} (its {kind}s: {shown}); {fix}"


# ---- one row's values -----------------------------------------------------------------------------

def _row(file: Path, line: int, record: dict[str, Any], delimiter: str, multilabel: bool) -> Row:
    where = f"manifest: {file} line {line}"
    path = record.get("path")
    if not isinstance(path, str) or not path.strip():
        what = "no path" if path is None or isinstance(path, str) else f"the path {json.dumps(path)} is not text"
        raise ZooError(f"{where}: {what}; give each image's file, relative to the manifest's folder or absolute")
    return Row(line, path.strip(), _labels(where, record.get("label"), delimiter, multilabel),
               _split(where, record.get("split")))


def _labels(where: str, value: Any, delimiter: str, multilabel: bool) -> tuple[str, ...]:
    if isinstance(value, list) and not multilabel:
        raise ZooError(f"{where}: a list of labels, but task classification takes one per image; set task: "
                       "multilabel to give several")
    if isinstance(value, list):  # JSON lines: the labels as listed, none meaning none of the classes
        labels = [_label_text(where, item) for item in value]
        if not all(labels):
            raise ZooError(f"{where}: an empty label in the list; remove it, or give the class")
    else:
        text = _label_text(where, value)
        labels = [part.strip() for part in text.split(delimiter)] if multilabel else [text]
        labels = [label for label in labels if label]
        if not labels:
            none = (" (an image of none of the classes: a JSON-lines manifest's \"label\": [])" if multilabel
                    else "")
            raise ZooError(f"{where}: no label; give every image its class{'es' if multilabel else ''}, or remove "
                           f"the row{none}")
        if not multilabel and delimiter in text:
            raise ZooError(f"{where}: the label {text!r} holds data.label_delimiter {delimiter!r}; task classification "
                           "takes one label per image: set task: multilabel if it names several, or "
                           "data.label_delimiter to a character no label has")
    bad = next((label for label in labels if breaks_lines(label)), None)  # as a class folder's name is refused
    if bad is not None:
        raise ZooError(f"{where}: the label {bad!r} has a control character (a newline, a tab); class names are "
                       "printed, drawn and written to CSV")
    return tuple(dict.fromkeys(labels))


def _label_text(where: str, value: Any) -> str:
    """A label as text: a string stripped, a number as written ("3"), a missing one empty."""
    if value is None or isinstance(value, str):
        return (value or "").strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ZooError(f"{where}: the label {json.dumps(value)} is not text or a number; give the class's name")


def _split(where: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip().lower() if isinstance(value, str) else ""
    split = next((split for split, names in SPLIT_NAMES.items() if text in names), None)
    if split is None:
        shown = value.strip() if isinstance(value, str) else json.dumps(value)
        raise ZooError(f"{where}: unknown split {shown!r}; give {KNOWN} (any case), or leave it empty for a training "
                       "row")
    return split


# ---- the files: where each row's image is, and which rows are one ----------------------------------

def _whole(file: Path, rows: list[Row], whole: str) -> list[Row]:
    """The rows of split `whole` (None counts as train), or every row where none names a split."""
    if all(row.split is None for row in rows):
        return rows
    given = {row.split or "train" for row in rows}
    if whole not in given:
        raise ZooError(f"manifest: {file} has rows of {', '.join(sorted(given))} but none of {whole}; choose "
                       f"--split {' or '.join(sorted(given))}")
    return [row for row in rows if (row.split or "train") == whole]


def _hidden(cell: str, base: str) -> bool:
    """Whether a row's path passes through a hidden or system entry (folders.is_hidden): the parts as written, or
    for an absolute path those below the manifest's folder (else its file name: /home/me/.cache is not the data's)."""
    if os.path.isabs(cell):
        cell = cell[len(base) + 1:] if cell.startswith(base + os.sep) else os.path.basename(cell)
    return any(is_hidden(part) for part in Path(cell).parts if part not in (".", ".."))


def _locate(file: Path, rows: list[Row]) -> list[tuple[Row, str]]:
    """(row, its image's path) of each row, hidden ones skipped and repeats kept once, each with one note.
    Raises ZooError for a missing file, or one image listed twice with different labels or splits."""
    base = os.path.abspath(file.parent)
    hidden = [row for row in rows if _hidden(row.cell, base)]
    skip = {row.line for row in hidden}
    if hidden:
        named = "; ".join(f"line {row.line}: {row.cell}" for row in hidden[:SHOWN])
        more = f"; and {len(hidden) - SHOWN} more" if len(hidden) > SHOWN else ""
        _print_once(f"note: manifest: {file}: skipped {len(hidden)} row{'s' if len(hidden) > 1 else ''} whose path is "
                    f"hidden or a system entry ({named}{more}): never images")
    seen: dict[tuple[int, int], tuple[Row, str]] = {}
    missing: list[tuple[Row, str]] = []
    repeats: list[tuple[Row, Row]] = []
    for row in rows:
        if row.line in skip:
            continue
        path = os.path.normpath(os.path.join(file.parent, row.cell))
        try:  # one stat per row: (device, inode) is the file, however it is reached (links), 6x cheaper than realpath
            stat = os.stat(path)
            real = (stat.st_dev, stat.st_ino)
        except OSError:
            missing.append((row, path))
            continue
        if real not in seen:
            seen[real] = (row, path)
            continue
        first = seen[real][0]
        _same(file, first, row)
        repeats.append((first, row))
    if missing:
        _refuse_missing(file, missing)
    if repeats:
        first, again = repeats[0]
        _print_once(f"note: manifest: {file}: {len(repeats)} row{'s list' if len(repeats) > 1 else ' lists'} an image "
                    f"already listed (line {again.line} repeats line {first.line}); each image is read once")
    return list(seen.values())


def _same(file: Path, first: Row, again: Row) -> None:
    """Refuse one image listed twice with different labels or splits: which would it be?"""
    what = (f"different labels ({'; '.join(first.labels) or 'none'} and {'; '.join(again.labels) or 'none'})"
            if set(first.labels) != set(again.labels) else
            f"different splits ({first.split or 'train'} and {again.split or 'train'})"
            if (first.split or "train") != (again.split or "train") else None)  # no split: a training row
    if what is not None:
        image = first.cell if first.cell == again.cell else f"{first.cell}, as {again.cell}"
        raise ZooError(f"manifest: {file} lines {first.line} and {again.line} list the same image ({image}) with "
                       f"{what}; keep one row")


def _refuse_missing(file: Path, missing: list[tuple[Row, str]]) -> None:
    row, path = missing[0]
    looked = "" if os.path.isabs(row.cell) else f" (looked for {path}: paths are relative to the manifest's folder)"
    slash = "; write / between folders, not \\" if "\\" in row.cell and os.sep == "/" else ""
    if not Path(row.cell).suffix:  # Kaggle's ids: a file's name without its folder or extension
        slash += "; a path names the file with its folder and extension (train/1000.png), not an id"
    more = f" (and {len(missing) - 1} more row{'s' if len(missing) > 2 else ''} like it)" if len(missing) > 1 else ""
    raise ZooError(f"manifest: {file} line {row.line}: no file {row.cell}{looked}{more}; put the image there, or fix "
                   f"or remove the row{slash}")


def _check_training(file: Path, located: list[tuple[Row, str]], readable: list[tuple[Row, str]], check: ImageCheck,
                    classes: list[str], whole: bool) -> None:
    """Every class has a readable image to train on (`whole`: in the rows read); else one line naming a row of it."""
    def trains(row: Row) -> bool:
        return whole or row.split in (None, "train")

    present = {label for row, _ in readable if trains(row) for label in row.labels}
    absent = [name for name in classes if name not in present]
    if not absent:
        return
    why = {str(path): f"is unreadable ({reason})" for path, reason in check.unreadable}
    why.update({str(path): "is not an image zoo reads" for path in check.others})
    row, path = sorted(((row, path) for row, path in located if absent[0] in row.labels),
                       key=lambda entry: (not trains(entry[0]), entry[0].line))[0]
    reason = why.get(path, f"is in the {row.split} split")
    more = f" (and {len(absent) - 1} more class{'es' if len(absent) > 2 else ''})" if len(absent) > 1 else ""
    raise ZooError(f"manifest: {file}: the class {absent[0]}{more} has no readable image to train on (line {row.line}: "
                   f"{row.cell} {reason}); replace its images, or give it training rows")


def _print_once(line: str) -> None:
    from zoo.distributed import place

    if place()[0] == 0:
        print(line, file=sys.stderr, flush=True)
