"""`zoo compare RUN_OR_SWEEP...`: finished runs side by side, grouped over seeds, and tested against each other.

    comparison = compare(["runs/sweeps/vanishing_gradients"])     # a sweep's folder: its runs
    comparison.paired                                              # McNemar over the shared test images, or None

What it finds, for the renderers in zoo.present.compare:

    differences   the config keys whose values differ between the runs (where and how fast a run went left out)
    groups        runs that differ only in train.seed, with the mean and standard error of their figures
    pairs         the reference group (the first, or a sweep's best) against each other group: the paired
                  difference of test top-1 over the seeds both have (zoo.metrics.paired), and, for each such
                  seed whose two runs answered the same test images, McNemar's exact test image by image, which
                  images flipped, and the per-class top-1 on both sides; the seeds' discordant counts pooled
    gallery       the first paired seed's flipped test images, each under both runs' heat maps (their own
                  default method: Grad-CAM, occlusion for LeNet-5 and networks without convolutions)

Two runs are paired image by image only where their test_scores.npz carry the same test-split fingerprint
(zoo.evaluation.scores.fingerprint: the same images, order and labels); otherwise the reason is said (another
seed carving another split, another data set, a run from before the fingerprint) and only the unpaired figures
are given. It reads the runs' files; only the gallery loads the networks and the test images again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from zoo.config import HOLD_OUT_KEYS
from zoo.errors import ZooError
from zoo.evaluation.scores import Scores
from zoo.metrics.paired import McNemar, PairedDifference, exact_p, mcnemar, mean_se, paired_difference

if TYPE_CHECKING:
    from PIL import Image

# Keys that say where a run went or how fast, not what it learnt: never a difference
IGNORED = ("train.run_id", "train.output_dir", "train.run_name", "train.threads", "train.device", "train.log_interval",
           "train.histogram_interval", "train.log_filters", "train.checkpoint_every_steps", "train.compile", "sweep")
SEED = "train.seed"
GALLERY = 6  # flipped images drawn each way


@dataclass(frozen=True)
class RunRecord:
    """A finished run's files, read: its resolved config flattened (key.path -> value), metrics.json, history.csv's
    rows, the test scores it kept (None for none) and its class names."""

    directory: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, str]]
    scores: Scores | None
    classes: list[str]
    label: str | None = None  # a sweep's run: its swept values ('variant=adam'), which name its group
    notes: tuple[str, ...] = ()  # what of its files was left out or shown changed, and why (read_record)

    @property
    def seed(self) -> Any:
        return self.config.get(SEED)

    def figure(self, name: str) -> float | None:
        """'test_accuracy', 'test_loss', 'val_accuracy', 'val_loss' or 'time_s' from metrics.json."""
        section, _, key = name.partition("_")
        value = (self.metrics.get("train" if section == "time" else section) or {}).get("time_s" if section == "time"
                                                                                         else key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class GroupRecord:
    """Runs that differ only in their seed: `label` names what sets them apart from the other groups."""

    label: str
    settings: dict[str, Any]
    runs: tuple[RunRecord, ...]

    def figure(self, name: str) -> tuple[float | None, float | None]:
        values = [value for run in self.runs if (value := run.figure(name)) is not None]
        return mean_se(values) if values else (None, None)

    def by_seed(self) -> dict[Any, RunRecord]:
        return {run.seed: run for run in self.runs}


@dataclass(frozen=True)
class Flip:
    """A test image the two runs answered differently: `to_right` (the first wrong, the second right) or not."""

    index: int
    label: int
    first: int  # each run's top-1 class
    second: int
    to_right: bool
    path: str | None


@dataclass(frozen=True)
class ImageTest:
    """Two runs (one seed of each group) on the same test images: McNemar's test, the flips, per-class top-1."""

    seed: Any
    first: RunRecord
    second: RunRecord
    test: McNemar
    flips: list[Flip]
    per_class: list[tuple[str, float, float, int]]  # class, first's top-1, second's, its test images


@dataclass(frozen=True)
class PairComparison:
    """The reference group against another: `difference` of test top-1 (second - first) over their shared seeds,
    the per-seed image tests, their pooled counts and p-value; `reason` why there is no image test, else None."""

    first: GroupRecord
    second: GroupRecord
    difference: PairedDifference | None
    tests: list[ImageTest]
    reason: str | None

    @property
    def pooled(self) -> McNemar | None:
        if not self.tests:
            return None
        to_right, to_wrong = (sum(getattr(test.test, name) for test in self.tests) for name in ("to_right", "to_wrong"))
        return McNemar(to_right, to_wrong, sum(test.test.both_right for test in self.tests),
                       sum(test.test.both_wrong for test in self.tests), exact_p(to_right, to_wrong))


@dataclass
class Comparison:
    runs: list[RunRecord]
    differences: dict[str, list[Any]]  # key -> each run's value
    groups: list[GroupRecord]
    pairs: list[PairComparison]
    notes: list[str] = field(default_factory=list)

    @property
    def paired(self) -> PairComparison | None:
        """The one pair of a comparison of two groups, where it has an image test."""
        return self.pairs[0] if len(self.pairs) == 1 and self.pairs[0].tests else None

    @property
    def paired_reason(self) -> str | None:
        if self.paired is not None:
            return None
        if len(self.pairs) != 1:
            return (f"{len(self.groups)} groups: each is paired with the first in `pairs`" if self.pairs
                    else "one group: nothing to pair")
        return self.pairs[0].reason


def compare(sources: Sequence[str | Path], reference: Sequence[Path] | None = None) -> Comparison:
    """Read and compare the runs in `sources` (run directories, a checkpoint inside one, or sweep folders: their
    results.csv's runs, grouped by their swept values). `reference`: the runs of the group the others are compared
    with (default: a sweep folder's best configuration, else the first group). Raises ZooError for a source that
    is no finished run or sweep, a run given twice, or fewer than two."""
    found = expand(sources)
    runs = [replace(read_record(path), label=found.labels.get(path)) for path in found.paths]
    differences = config_differences(runs)
    groups = group_runs(runs, differences)
    reference = reference if reference is not None else found.best
    if reference:
        wanted = {Path(path).resolve() for path in reference}
        groups.sort(key=lambda group: not any(run.directory.resolve() in wanted for run in group.runs))
    pairs = [pair_groups(groups[0], group) for group in groups[1:]]
    return Comparison(runs, differences, groups, pairs, found.notes + [note for run in runs for note in run.notes])


@dataclass
class Sources:
    """The run directories to compare, the swept values that name a sweep's runs (run -> 'variant=adam'), the runs
    of a sweep's best configuration, and notes of the sweep's runs left out (diverged, failed)."""

    paths: list[Path] = field(default_factory=list)
    labels: dict[Path, str] = field(default_factory=dict)
    best: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def expand(sources: Sequence[str | Path]) -> Sources:
    """Each source as run directories: a sweep folder (results.csv) as its complete and pruned runs. ZooError for a
    run given twice, or fewer than two runs."""
    from zoo.experiments.results import FILE

    found = Sources()
    for source in sources:
        path = Path(source)
        if path.is_file() and path.parent.name == "checkpoints":
            path = path.parent.parent
        if not path.is_dir():
            raise ZooError(f"{path}: {'no such' if not path.exists() else 'a file, not a'} run directory or sweep "
                           "folder; give a run's directory (runs/<name>/<time>) or a sweep's folder")
        if (path / FILE).is_file() and not (path / "metrics.json").is_file():
            _sweep_runs(path, found)
        else:
            found.paths.append(path)
    seen: set[Path] = set()
    for path in found.paths:
        if path.resolve() in seen:
            raise ZooError(f"{path} is given twice; comparing a run with itself says nothing: give two different runs")
        seen.add(path.resolve())
    if len(found.paths) < 2:
        raise ZooError(f"zoo compare needs two runs or more; got {len(found.paths)}: give run directories or sweep "
                       "folders")
    return found


def _sweep_runs(folder: Path, found: Sources) -> None:
    """A sweep folder's runs into `found`: each named by its swept values, the best configuration's kept as the
    reference (zoo sweep's choice: zoo.experiments.results.Results), the runs left out said in a note."""
    from zoo.experiments.results import Results, read_results

    keys, records = read_results(folder)
    for row in records:
        label = " ".join(f"{key}={value}" for key, value in row.point.items())
        if row.state in ("complete", "pruned") and not (Path(row.run_dir) / "metrics.json").is_file():
            found.notes.append(f"{folder}: {label} seed {row.seed}: its run {row.run_dir} is not on this machine (a "
                               "shared study's other worker?); left out")
        elif row.state in ("complete", "pruned"):
            found.paths.append(Path(row.run_dir))
            found.labels[Path(row.run_dir)] = label
        else:
            found.notes.append(f"{folder}: {label} seed {row.seed} {row.state} (results.csv); its group is compared "
                               "over its other seeds")
    best = Results.of(keys, records).best
    if best is not None and not found.best:
        found.best = [Path(row.run_dir) for row in best.rows]


def read_record(path: Path) -> RunRecord:
    """A finished run's files (zoo.present.report.read_run's checks: ZooError for a missing or unfinished run)."""
    from zoo.checkpoint import read_state
    from zoo.evaluation.scores import DamagedScores, read_scores
    from zoo.present.report import read_run

    run = read_run(path)
    try:
        config = yaml.safe_load(run.config_text or "") or {}
    except yaml.YAMLError as error:
        raise ZooError(f"{run.directory / 'config.yaml'} is not valid YAML ({error}); train the run again") from None
    state = read_state(run.checkpoint, "evaluate")
    if config.get("task") == "reconstruction":  # no top-1, no answers to pair image by image
        raise ZooError(f"{run.directory} is an autoencoder (task reconstruction): zoo compare pairs classifiers' test "
                       "answers; compare autoencoders by zoo evaluate's figures (PSNR, anomaly ROC AUC)")
    classes = list(state.classes or map(str, range(state.num_classes)))
    notes: list[str] = list(run.notes)
    try:
        scores = read_scores(run.directory, (run.metrics.get("test") or {}).get("count"), state.num_classes,
                             1.0 if state.calibration is None else state.calibration.temperature)
    except DamagedScores as damaged:
        scores, notes = None, [*notes, f"{damaged}; the run is compared without its image by image answers"]
    notes += scores.notes if scores is not None else ()
    return RunRecord(run.directory, flatten(config), run.metrics, run.history, scores, classes, notes=tuple(notes))


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A config's nested sections as key.path -> value (lists kept whole)."""
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def config_differences(runs: list[RunRecord]) -> dict[str, list[Any]]:
    keys = sorted({key for run in runs for key in run.config})
    return {key: [run.config.get(key) for run in runs] for key in keys
            if not key.startswith(IGNORED) and len({json.dumps(run.config.get(key), sort_keys=True, default=str)
                                                     for run in runs}) > 1}


def group_runs(runs: list[RunRecord], differences: dict[str, list[Any]]) -> list[GroupRecord]:
    """Runs alike in every differing key but the seed, in the order first given, each named by those keys (a sweep's
    runs: by their swept values, so that a variant is named as the sweep names it); each run its own group, named
    by its directory, where nothing differs or two runs differ only in their seeds."""
    keys = [key for key in differences if key != SEED]
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        label = run.label if all(other.label for other in runs) else " ".join(
            f"{key}={_value(run.config.get(key))}" for key in keys)
        groups.setdefault(label, []).append(run)
    if len(groups) == 1 and (SEED not in differences or len(runs) == 2):
        # nothing differs, or two runs only their seeds: each run its own group, so that the two are compared
        return [GroupRecord(run.directory.name, {}, (run,)) for run in runs]
    return [GroupRecord(label or "all runs", {key: members[0].config.get(key) for key in keys}, tuple(members))
            for label, members in groups.items()]


def _value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def pair_groups(first: GroupRecord, second: GroupRecord) -> PairComparison:
    """`first` against `second` (see PairComparison). Two single runs pair whatever their seeds, where their test
    images are the same."""
    if len(first.runs) == 1 and len(second.runs) == 1:
        couples = [(first.runs[0].seed, first.runs[0], second.runs[0])]
    else:
        mine, theirs = first.by_seed(), second.by_seed()
        couples = [(seed, mine[seed], theirs[seed]) for seed in mine if seed in theirs]
    values = [(a.figure("test_accuracy"), b.figure("test_accuracy")) for _, a, b in couples]
    values = [(a, b) for a, b in values if a is not None and b is not None]
    difference = paired_difference([b for _, b in values], [a for a, _ in values]) if values else None
    tests, reasons = [], []
    for seed, a, b in couples:
        reason = unpaired_reason(a, b)
        if reason is None:
            tests.append(image_test(seed, a, b))
        else:
            reasons.append(reason)
    if not couples:
        reasons.append(f"the two groups share no seed ({_seeds(first)} against {_seeds(second)}): give both the same "
                       "--seeds")
    return PairComparison(first, second, difference, tests, None if tests else reasons[0])


def _seeds(group: GroupRecord) -> str:
    return ", ".join(str(run.seed) for run in group.runs)


def unpaired_reason(a: RunRecord, b: RunRecord) -> str | None:
    """Why runs `a` and `b` cannot be compared image by image, or None where they can: their kept test scores carry
    the same test-split fingerprint."""
    for run in (a, b):
        if run.scores is None:
            return (f"{run.directory} kept no test scores (test_scores.npz: a test split too large to keep, or a "
                    "damaged file); it cannot be paired image by image")
        if run.scores.split is None:
            return (f"{run.directory} was trained before zoo kept its test split's fingerprint; train it again to pair "
                    "it image by image")
    if a.scores.split == b.scores.split:
        return None
    keys = [key for key in ("data.name", "data.root", *(f"{key}" for key in HOLD_OUT_KEYS))
            if a.config.get(key) != b.config.get(key)]
    if keys == [SEED] or SEED in keys and len(keys) == 1:
        cause = (f"train.seed {a.seed} and {b.seed} hold out different test images from {a.config.get('data.name')}, "
                 "which has no fixed test split")
    elif keys:
        cause = "they differ in " + ", ".join(f"{key} ({_value(a.config.get(key))} against {_value(b.config.get(key))})"
                                              for key in keys)
    else:
        cause = "their data changed between the runs (other files or labels)"
    return f"the runs' test splits hold different images: {cause}; only the unpaired figures are compared"


def image_test(seed: Any, a: RunRecord, b: RunRecord) -> ImageTest:
    """McNemar's test of `a` against `b` on their (proven) shared test images, the flips and per-class top-1."""
    targets = a.scores.targets
    first, second = a.scores.logits.argmax(axis=1), b.scores.logits.argmax(axis=1)
    right_a, right_b = first == targets, second == targets
    test = mcnemar(right_a, right_b)
    paths = a.scores.paths
    flips = [Flip(int(index), int(targets[index]), int(first[index]), int(second[index]), bool(right_b[index]),
                  paths[index] if paths else None) for index in np.flatnonzero(right_a != right_b)]
    per_class = []
    for label, name in enumerate(a.classes):
        mask = targets == label
        if mask.any():
            per_class.append((name, float(right_a[mask].mean()), float(right_b[mask].mean()), int(mask.sum())))
    return ImageTest(seed, a, b, test, flips, per_class)


# ---- the gallery -----------------------------------------------------------------------------------

def flip_gallery(test: ImageTest, limit: int = GALLERY) -> Image.Image | None:
    """The first `limit` images of each flip direction, each under both runs' heat maps of their own top-1 class
    (the model's default method: zoo.inference.explain.default_method; occlusion where it has no convolution), side
    by side; None where there is no flip. Loads both networks and both test splits again (as the runs built them)."""
    from zoo.present.grids import beside, captioned, heatmap_overlay, stacked

    chosen = ([flip for flip in test.flips if not flip.to_right][:limit]
              + [flip for flip in test.flips if flip.to_right][:limit])
    if not chosen:
        return None
    sides = [_side(run, [flip.index for flip in chosen]) for run in (test.first, test.second)]
    rows = []
    classes = test.first.classes
    for number, flip in enumerate(chosen):
        how = "right -> wrong" if not flip.to_right else "wrong -> right"
        panels = []
        for (label, pictures, maps, method), guess in zip(sides, (flip.first, flip.second)):
            verdict = "right" if guess == flip.label else "wrong"
            panels.append(heatmap_overlay(pictures[number], maps[number],
                                          [f"{label}: {classes[guess]} ({verdict}), {method}"]))
        rows.append(captioned(beside(panels), [f"test image {flip.index}: a {classes[flip.label]}, {how}"]))
    return stacked(rows)


def _side(run: RunRecord, indices: list[int]) -> tuple[str, list[np.ndarray], list[np.ndarray], str]:
    """(run's name, the pictures as it saw them, its heat maps of its top-1, the method) for the test images at
    `indices`, from its best.pt and its test split built again."""
    import torch

    from zoo.inference.explain import default_method, find_stages, heatmaps, seen
    from zoo.inference.load import load

    predictor = load(run.directory / "checkpoints" / "best.pt")
    model = predictor.model
    inputs = torch.stack([_test_input(run, predictor, index) for index in indices])
    with torch.no_grad():
        targets = model(inputs).argmax(dim=1).tolist()
    method = default_method(predictor.config.model.name)
    layer = find_stages(model, inputs[:1]).default if method == "gradcam" else None
    method = "occlusion" if method == "gradcam" and layer is None else method
    maps = heatmaps(model, inputs, targets, method, layer)
    pictures = [seen(predictor, picture).numpy() for picture in inputs]
    return run.directory.name, pictures, [heat.numpy() for heat in maps], method


def _test_input(run: RunRecord, predictor: Any, index: int) -> Any:
    """Test image `index` prepared as the run's network takes it: its file through the predictor, or the tensor
    of the test split built again from the run's config (a data set held in memory: digits, MNIST)."""
    if run.scores is not None and run.scores.paths:
        return predictor.prepare(run.scores.paths[index])
    return _test_split(run.directory)[index][0]


@functools.lru_cache(maxsize=4)  # a gallery reads both runs' splits once, whatever the number of images
def _test_split(directory: Path) -> Any:
    """The run's test split, built again from its config.yaml and seed, as the run built it."""
    from zoo.config import load_config
    from zoo.data import build_datasets

    config = load_config(directory / "config.yaml")
    channels, size = config.geometry()
    return build_datasets(config.data, in_channels=channels, input_size=size, seed=config.train.seed).test
