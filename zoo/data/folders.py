"""ImageFolder layouts as people bring them: split folders under the names in use (Roboflow's train/ valid/
test/, Kaggle's Training/ Testing/), and the entries that file managers, operating systems and notebooks
leave behind (Jupyter's .ipynb_checkpoints/, macOS's __MACOSX/ and ._* files, Windows' Thumbs.db), which are
never classes or images. zoo.data.sets imports this module (and so torchvision) when it reads an ImageFolder.

    layout = find_layout(Path("data/photos"))   # layout.splits: {"train": .../train, "val": .../valid}
    dataset = VisibleImageFolder(layout.splits["train"], loader=open_rgb, is_valid_file=check, allow_empty=True)
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchvision.datasets import ImageFolder

from zoo.errors import ZooError

# The names each split's folder goes by, compared without case. The first is zoo's own.
SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
# Left by operating systems, file managers, notebooks and version control; compared without case. Any name
# starting with "." is hidden too (.ipynb_checkpoints, .DS_Store, .git, macOS's ._<name> resource forks).
SYSTEM_NAMES = frozenset({"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "$recycle.bin",
                          "system volume information", "lost+found", "@eadir", "__pycache__", "icon\r"})
# A split word, with a word before it (Kaggle's seg_train), a year or "set" after it (COCO's train2017, Test-Data),
# or a split word zoo does not read (eval, holdout): a split folder under a name zoo does not know. A class name
# that only contains one (test_tube, contest) is not.
_SPLIT_WORDS = "train|training|trainval|val|valid|validate|validation|test|testing|eval|evaluation|dev|holdout"
_SPLIT_LIKE = re.compile(rf"\s*(?:[a-z]+[\s_.-]+)?(?:{_SPLIT_WORDS})(?:[\s_.-]*(?:set|data|images|imgs|split|\d+))*\s*",
                         re.IGNORECASE)
_CONTAINERS = {"images", "imgs", "data", "dataset", "photos", "pictures"}  # folders people nest the data in
KNOWN = ", ".join("/".join(names) for names in SPLIT_NAMES.values())
SHOWN = 3  # entries named in the note


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is one an operating system, file manager or notebook left (SYSTEM_NAMES)."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def breaks_lines(name: str) -> bool:
    """Whether a class name holds a control character (a newline, a tab): it would break every line that prints
    it, the CSVs and the pictures' captions."""
    return any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name)


def hidden_under(path: str | Path, root: Path) -> bool:
    """Whether any part of `path` below `root` is hidden: .ipynb_checkpoints/cat/1.png is never an image."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        parts = Path(path).parts
    return any(is_hidden(part) for part in parts)


class VisibleImageFolder(ImageFolder):
    """torchvision's ImageFolder without hidden class folders, and without hidden files or folders inside the
    class folders (whatever `is_valid_file` says): its targets index the visible classes, sorted by name."""

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes = [name for name in _folders(Path(directory)) if not is_hidden(name)]
        if not classes:
            raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")  # torchvision's words
        unusable = [name for name in classes if breaks_lines(name)]
        if unusable:
            raise ZooError(f"imagefolder: {directory}: the class folder {unusable[0]!r} has a control character (a "
                           "newline, a tab) in its name; rename it: class names are printed, drawn and written to CSV")
        return classes, {name: index for index, name in enumerate(classes)}

    @staticmethod
    def make_dataset(directory: str | Path, class_to_idx: dict[str, int], extensions: tuple[str, ...] | None = None,
                     is_valid_file: Callable[[str], bool] | None = None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        def visible(path: str) -> bool:
            return not hidden_under(path, Path(directory)) and (
                is_valid_file(path) if is_valid_file is not None else path.lower().endswith(extensions))

        samples = ImageFolder.make_dataset(directory, class_to_idx, None, visible, allow_empty)
        # A file reached twice through symbolic links (a link to a parent folder repeats the tree) is one image:
        # twice, it would count double, and could land in the training and the test split at once. The shortest
        # path to it stands, whose class folder is the one it is in, not one a link passes through.
        shortest: dict[str, str] = {}
        for path, _ in samples:
            real = os.path.realpath(path)
            if real not in shortest or len(Path(path).parts) < len(Path(shortest[real]).parts):
                shortest[real] = path
        unique = [(path, target) for path, target in samples if shortest[os.path.realpath(path)] == path]
        if len(unique) < len(samples):
            _print_once(f"note: {directory}: {len(samples) - len(unique)} paths lead to files already read (symbolic "
                        "links); each file is one image")
        return unique


class FlatImageFolder(VisibleImageFolder):
    """A folder of pictures without class folders, read as one class named after the folder: an autoencoder's normal
    pictures (task reconstruction), which need no class. A classifier is then refused for having one class."""

    def __init__(self, folder: str | Path, **kwargs: Any) -> None:
        self.folder = Path(folder)
        super().__init__(str(self.folder.parent), **kwargs)  # the folder is its parent's one class folder

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        return [self.folder.name], {self.folder.name: 0}


@dataclass(frozen=True)
class Layout:
    """Where each split's class folders are: root itself as "train" when it has no split folders."""

    root: Path
    splits: dict[str, Path]
    ignored: tuple[Path, ...] = ()  # folders beside the split folders, not read
    hidden: tuple[Path, ...] = field(default_factory=tuple)  # skipped entries, at any depth


def _folders(directory: Path) -> list[str]:
    with os.scandir(directory) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir())


def find_layout(root: Path) -> Layout:
    """The splits under `root`: folders named as SPLIT_NAMES says, in any case, or else root as one folder of
    class folders. Raises ZooError for a split named twice (train/ and Training/) or for top-level folders that
    look like split folders under a name zoo does not read (train_set/, eval/): never silently classes."""
    visible = [name for name in _folders(root) if not is_hidden(name)]
    splits: dict[str, Path] = {}
    for name in visible:
        split = next((split for split, names in SPLIT_NAMES.items() if name.lower() in names), None)
        if split is None:
            continue
        if split in splits:
            raise ZooError(f"imagefolder: {root} has both {splits[split].name}/ and {name}/ as its {split} split; "
                           "keep one")
        splits[split] = root / name
    unknown = [name for name in visible if _SPLIT_LIKE.fullmatch(name) and root / name not in splits.values()]
    if unknown:
        looks = "looks like a split folder" if len(unknown) == 1 else "look like split folders"
        raise ZooError(f"imagefolder: {root}: {', '.join(f'{name}/' for name in unknown)} {looks}, but zoo reads "
                       f"splits named {KNOWN} (any case); rename {'it' if len(unknown) == 1 else 'them'}, or move the "
                       "classes up a level")
    if splits and "train" not in splits:
        return Layout(root, splits)  # the caller refuses it: no train/
    others = tuple(root / name for name in visible if root / name not in splits.values())
    return Layout(root, splits or {"train": root}, others if splits else (), tuple(hidden_entries(root)))


def nesting_hint(root: Path, classes: list[str]) -> str:
    """For a layout of one class: a word on data.root where that class folder looks like a level too many."""
    if len(classes) == 1 and (_SPLIT_LIKE.fullmatch(classes[0]) or classes[0].lower() in _CONTAINERS):
        return f"; if {classes[0]}/ holds the splits or the class folders, set data.root one level down"
    return ""


def hidden_entries(folder: Path) -> list[Path]:
    """The hidden entries under `folder` (not descending into them), in walk order."""
    found: list[Path] = []
    for directory, subfolders, files in os.walk(folder, followlinks=True):  # as torchvision's make_dataset walks
        found += [Path(directory, name) for name in sorted(subfolders) + sorted(files) if is_hidden(name)]
        subfolders[:] = sorted(name for name in subfolders if not is_hidden(name))
    return found


def skipped_lines(layout: Layout) -> list[str]:
    """What was not read, one line each: hidden entries (a note) and folders beside the split folders (a warning)."""
    lines = []
    if layout.hidden:
        named = ", ".join(_name(path, layout.root) for path in layout.hidden[:SHOWN])
        more = f" and {len(layout.hidden) - SHOWN} more" if len(layout.hidden) > SHOWN else ""
        entries = "entry" if len(layout.hidden) == 1 else "entries"
        lines.append(f"note: skipped {len(layout.hidden)} hidden or system {entries} in {layout.root} ({named}{more}): "
                     "never classes or images")
    if layout.ignored:
        splits = ", ".join(f"{path.name}/" for path in layout.splits.values())
        lines.append(f"warning: {layout.root}: {', '.join(f'{path.name}/' for path in layout.ignored)} not read: only "
                     f"the split folders are ({splits}); move its images into them, or remove it")
    return lines


def announce_skipped(layout: Layout) -> None:
    """skipped_lines on stderr, once (rank 0 under torchrun)."""
    for line in skipped_lines(layout):
        _print_once(line)


def announce_held_out_test(layout: Layout, test_split: float) -> None:
    """One note when split folders have no test folder: the test images then come out of train's, which a
    user with train/ and val/ may not expect (they might take val/ for the test)."""
    named = {name: path for name, path in layout.splits.items() if path != layout.root}
    if "train" in named and "test" not in named:
        folders = " and ".join(f"{path.name}/" for path in named.values())
        _print_once(f"note: imagefolder: {layout.root} has {folders} but no test/: the test split is "
                    f"{test_split:.0%} of {named['train'].name}/'s images, held out by train.seed "
                    "(add a test/ folder to choose them)")


def _print_once(line: str) -> None:
    from zoo.distributed import place

    if place()[0] == 0:
        print(line, file=sys.stderr, flush=True)


def _name(path: Path, root: Path) -> str:
    text = str(path.relative_to(root))
    return f"{text}/" if path.is_dir() else text
