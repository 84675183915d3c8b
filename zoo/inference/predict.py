"""`zoo predict`: a trained network's top-k classes for image files, folders and glob patterns; an autoencoder's
anomaly score and verdict for each; a text network's top-k classes for sentences (`zoo predict RUN --text ...`).

    report = predict_files("runs/.../checkpoints/best.pt", ["photos/", "extra/*.jpg"], top_k=3)
    report.rows[0]  # (Path('photos/cat/1.jpg'), Prediction(classes=('cat', 'dog', 'fox'), ...))
    report = predict_files("runs/conv_autoencoder_digits/<time>", ["digits/"])
    report.rows[0]  # (Path('digits/3.png'), AnomalyScore(score=0.021, verdict='normal', threshold=0.073))
    report = predict_texts("runs/textcnn_text/<time>", ["A fine, funny film."])
    report.rows[0]  # ('A fine, funny film.', Prediction(classes=('pos', 'neg'), ...))

Any source zoo.load opens. Pictures are decoded in DataLoader workers, each through the source's preprocessing
(zoo.data.preprocess: evaluation's transform), and run in batches; the Predictor turns each batch into its records
(Predictor.decide). A file that cannot be decoded is one warning line and has no row; the rest go on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from zoo.data.images import gather, image_extensions
from zoo.errors import ZooError
from zoo.inference.load import AnomalyScore, Prediction, Predictor, TextPredictor, load

SHOWN = 10  # unreadable files named one line each; one more line counts the rest
Record = Prediction | AnomalyScore  # a classifier's top-k, or an autoencoder's score and verdict


@dataclass(frozen=True)
class PredictionReport:
    source: str
    classes: list[str]  # an autoencoder's: the classes it learnt as normal
    rows: list[tuple[Path | str, Record]]  # in input order: each image's path, or (`column` text) sentence
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable files and why
    others: list[Path] = field(default_factory=list)  # files in the folders that are not images
    task: str = "classification"  # the model's (zoo.tasks): a multi-label one's decisions are label sets
    threshold: float | None = None  # an autoencoder's anomaly threshold on the score (None: the run chose none)
    # a calibrated classifier's threshold on the unfamiliar score (None: no calibration), and the coverage asked
    unfamiliar_threshold: float | None = None
    coverage: float | None = None
    column: str = "path"  # what a row is: an image's path, or a sentence ("text")

    @property
    def flagged(self) -> int:
        """How many pictures were found unfamiliar."""
        return sum(bool(getattr(record, "unfamiliar", False)) for _, record in self.rows)

    def to_dict(self) -> dict[str, Any]:
        threshold = {"threshold": self.threshold} if self.task == "reconstruction" else {}
        judged = ({"unfamiliar_threshold": self.unfamiliar_threshold, "unfamiliar_count": self.flagged}
                  if self.unfamiliar_threshold is not None else {})
        coverage = {"coverage": self.coverage} if self.coverage is not None else {}
        counted = {"images": len(self.rows)} if self.column == "path" else {"sentences": len(self.rows)}
        return {"source": self.source, "task": self.task, **threshold, **judged, **coverage, **counted,
                "predictions": [{self.column: str(key), **prediction.to_dict()} for key, prediction in self.rows],
                "skipped": [{"path": str(path), "reason": reason} for path, reason in self.skipped]}


class Pictures(Dataset):
    """Files through a transform: (index, C x H x W tensor or None, why it could not be read)."""

    def __init__(self, paths: Sequence[Path], transform: Callable) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Tensor | None, str]:
        from zoo.data.images import open_image

        try:
            return index, self.transform(open_image(self.paths[index])), ""
        except ZooError as error:
            return index, None, str(error)


def _collate(items: list[tuple[int, Tensor | None, str]]) -> tuple[list[int], Tensor | None, list[tuple[int, str]]]:
    read = [(index, tensor) for index, tensor, _ in items if tensor is not None]
    failed = [(index, reason) for index, tensor, reason in items if tensor is None]
    return [index for index, _ in read], torch.stack([tensor for _, tensor in read]) if read else None, failed


TOP_K = 5  # classes per image when top_k is not given (all of them for a model of fewer)


def predict_files(source: str | Path, inputs: Sequence[str | Path], *, top_k: int | None = None, batch_size: int = 64,
                  device: str = "auto", workers: int | None = None, progress: bool = False,
                  coverage: float | None = None) -> PredictionReport:
    """The top_k classes (None: TOP_K, or every class of a model with fewer; a top_k above the model's classes
    shows them all, with a note) of every image `inputs` name (files, folders, glob patterns; see `gather`), by the
    network at `source` (see zoo.load) on `device`, `batch_size` pictures at a time, decoded by `workers`
    DataLoader processes (None: up to 4, none for a single batch). Unreadable files are warned about on stderr
    once the rest are predicted (one line a file for the first SHOWN, then one line counting the rest) and listed
    in the report's `skipped`. An autoencoder's rows are AnomalyScores (the reconstruction's MSE and the verdict at
    the run's threshold, which the report keeps), and it takes no top_k. A calibrated classifier's rows say whether
    each picture is unfamiliar (how many were is said on stderr), and with `coverage` hold its prediction set; an
    uncalibrated one is said once on stderr.

    Raises ZooError for no input, a missing path, a pattern matching nothing, no readable image, an unknown source,
    top_k or batch_size below 1, a top_k for an autoencoder, or a coverage outside (0, 1) or for a model without a
    calibration (Predictor.check_coverage).
    """
    if (top_k is not None and top_k < 1) or batch_size < 1:
        raise ZooError(f"--{'top-k' if top_k is not None and top_k < 1 else 'batch-size'} must be 1 or more")
    if not inputs:
        raise ZooError("give image files, folders or glob patterns to classify (or sentences: --text, --text-file)")
    paths, others = gather(inputs)
    if not paths:
        kinds = f" (only {len(others)} {'file' if len(others) == 1 else 'files'} of other kinds)" if others else ""
        raise ZooError(f"no image files in {', '.join(map(str, inputs))}{kinds}; zoo reads "
                       f"{', '.join(image_extensions())}")
    predictor = load(source, device)
    if predictor.preprocessing is not None:
        predictor.preprocessing.check_pictures()  # xor's network: one line before any file is read
    top_k = _top_k(predictor, top_k, source)
    predictor.check_coverage(coverage)
    if others:  # once the source is known good: a bad one is the only line
        from zoo.data.images import note_others

        note_others(Path(inputs[0]) if len(inputs) == 1 else Path.cwd(), others)
    rows, skipped = _predict(predictor, paths, top_k, batch_size, workers, progress, coverage)
    if not rows:
        raise ZooError(f"none of the {len(paths)} image files could be read ({_why(skipped[0][1])}); replace them")
    for _, reason in skipped[:SHOWN]:  # one line a file, as the README promises
        print(f"warning: {_why(reason)}; skipped", file=sys.stderr, flush=True)
    if len(skipped) > SHOWN:
        print(f"warning: {len(skipped) - SHOWN} more of the {len(paths)} image files could not be read and have no "
              "prediction", file=sys.stderr, flush=True)
    familiarity = predictor.calibration.familiarity if predictor.calibration is not None else None
    report = PredictionReport(predictor.source, predictor.classes, [(paths[i], rows[i]) for i in sorted(rows)],
                              skipped, others, predictor.task.name, getattr(predictor.task, "threshold", None),
                              None if familiarity is None else familiarity.threshold, coverage)
    _say_trust(predictor, report)
    return report


def predict_texts(source: str | Path, sentences: Sequence[str] = (), text_file: str | Path | None = None, *,
                  top_k: int | None = None, batch_size: int = 64, device: str = "auto",
                  coverage: float | None = None) -> PredictionReport:
    """The top_k classes (as predict_files gives them) of each sentence: `sentences` (zoo predict --text), then each
    line of `text_file` that is not blank (--text-file), by the text network at `source` (zoo.load). A calibrated
    network's rows say whether each sentence is unfamiliar (by the energy alone) and, with `coverage`, hold its
    prediction set; a note on stderr counts the sentences with no word the network knows (all <unk>).

    Raises ZooError, before the network is loaded, for no sentence, an empty one, a text file that is missing, not
    UTF-8 or blank; then for a source that is no text network, and what predict_files refuses (top_k, batch_size,
    coverage)."""
    from zoo.data.text import read_lines

    if (top_k is not None and top_k < 1) or batch_size < 1:
        raise ZooError(f"--{'top-k' if top_k is not None and top_k < 1 else 'batch-size'} must be 1 or more")
    empty = next((number for number, sentence in enumerate(sentences, 1) if not sentence.strip()), None)
    if empty is not None:
        which = f" (the {_ordinal(empty)} --text)" if len(sentences) > 1 else ""
        raise ZooError(f"--text: the sentence is empty{which}; give the words to classify")
    texts = [*sentences, *(read_lines(Path(text_file), "--text-file") if text_file is not None else [])]
    if not texts:
        raise ZooError("no sentence given; give --text 'a sentence' or --text-file FILE (one sentence a line)")
    predictor = load(source, device)
    if not isinstance(predictor, TextPredictor):
        raise ZooError(f"--text: {predictor.source} classifies pictures, not sentences; give it image files "
                       "(zoo predict SOURCE photos/)")
    top_k = _top_k(predictor, top_k, source)
    records = predictor.predict(texts, top_k, batch_size, coverage)
    familiarity = predictor.calibration.familiarity if predictor.calibration is not None else None
    report = PredictionReport(predictor.source, predictor.classes, list(zip(texts, records)), task=predictor.task.name,
                              unfamiliar_threshold=None if familiarity is None else familiarity.threshold,
                              coverage=coverage, column="text")
    unknown = sum(set(predictor.prepare(text).tolist()) == {predictor.vocabulary.index["<unk>"]} for text in texts)
    if unknown:
        print(f"note: {unknown} of {len(texts)} sentences hold no word of the training split's vocabulary (every "
              "token <unk>): their classes mean little", file=sys.stderr, flush=True)
    _say_trust(predictor, report)
    return report


def _ordinal(number: int) -> str:
    return f"{number}{'th' if 10 <= number % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')}"


def _say_trust(predictor: Predictor, report: PredictionReport) -> None:
    """One stderr line: how many pictures were unfamiliar, or that a single-label zoo classifier is older than
    calibration (zoo calibrate adds it)."""
    from zoo.inference.load import uncalibrated_fix

    if predictor.task.name != "classification" or predictor.preprocessing is None:  # torchvision's: none to fit
        return
    noun = "sentences" if report.column == "text" else "pictures"
    if predictor.predates_calibration:  # a run without one by choice (calibration.enabled, val_split 0): no note
        print(f"note: {predictor.source} has no calibration: the probabilities are the raw softmax and no picture is "
              f"checked for being unlike the training data; {uncalibrated_fix(predictor)}", file=sys.stderr, flush=True)
        return
    conformal = predictor.calibration.conformal if predictor.calibration is not None else None
    if report.coverage is not None and conformal is not None and report.coverage > conformal.highest_coverage:
        print(f"note: --coverage {report.coverage:g} is more than {conformal.count} validation {noun} can promise "
              f"(at most {conformal.highest_coverage:.2%}, n / (n + 1)): every set holds every class",
              file=sys.stderr, flush=True)
    familiarity = predictor.calibration.familiarity if predictor.calibration is not None else None
    if familiarity is not None and report.flagged:
        verb = "is" if report.flagged == 1 else "are"
        print(f"note: {report.flagged} of {len(report.rows)} {noun} {verb} unfamiliar, unlike the training "
              f"data (score above {familiarity.threshold:.3g}, which {familiarity.familiar_share:.0%} of the "
              f"validation {noun} pass): their classes may mean nothing", file=sys.stderr, flush=True)


def _top_k(predictor: Predictor, top_k: int | None, source: str | Path) -> int:
    """The classes shown per image: `top_k`, or TOP_K (at most the class count) when None; a top_k above the class
    count is said on stderr. Raises ZooError for a top_k given to a model without classes (an autoencoder)."""
    if not predictor.task.has_classes:
        if top_k is not None:
            raise ZooError(f"--top-k: {source} is an autoencoder; it gives each picture an anomaly score (its "
                           "reconstruction error) and a verdict, not classes to rank; remove --top-k")
        return 1  # unused: an autoencoder's records have no classes
    if top_k is None:
        return min(TOP_K, len(predictor.classes))
    if top_k > len(predictor.classes):  # every class is shown: said, so that 10 columns for -k 20 are no surprise
        print(f"note: --top-k {top_k} is more than the {len(predictor.classes)} classes {source} predicts; showing all "
              f"{len(predictor.classes)}", file=sys.stderr, flush=True)
    return top_k


def _predict(predictor: Predictor, paths: list[Path], top_k: int, batch_size: int, workers: int | None,
             progress: bool, coverage: float | None = None) -> tuple[dict[int, Record], list[tuple[Path, str]]]:
    """({index into paths: its record}, [(unreadable file, why)]): the files decoded by `workers` DataLoader
    processes (None: up to 4, none for a single batch) and run `batch_size` at a time."""
    if workers is None:
        from zoo.data.loaders import file_workers

        workers = 0 if len(paths) <= batch_size else file_workers()
    loader = DataLoader(Pictures(paths, predictor.transform), batch_size, num_workers=workers, collate_fn=_collate)
    rows: dict[int, Record] = {}
    skipped: list[tuple[Path, str]] = []
    bar = _progress(len(paths)) if progress else None
    for indices, batch, failed in loader:
        skipped += [(paths[index], reason) for index, reason in failed]
        if batch is not None:
            rows.update(zip(indices, predictor.decide(batch, top_k, coverage)))
        if bar is not None:
            bar.update(len(indices) + len(failed))
    if bar is not None:
        bar.close()
    return rows, skipped


OUTPUT_FORMATS = {".csv": "csv", ".json": "json"}  # --output's suffix gives the format when --format is not given


def output_format(format: str | None, output: Path | None) -> str:
    """--format, else the one --output's name says (.csv, .json), else table. Raises ZooError for an --output that
    is a folder, or a --format its name contradicts (a .csv holding JSON)."""
    named = OUTPUT_FORMATS.get(output.suffix.lower()) if output is not None else None
    if output is not None and output.is_dir():
        raise ZooError(f"--output {output} is a folder; give a file name, e.g. {output / 'predictions.csv'}")
    if format is not None and named is not None and format != named:
        raise ZooError(f"--output {output} is named for {named} but --format is {format}; name it *.{format} "
                       f"or give --format {named}")
    return format or named or "table"


def write_output(output: Path, text: str) -> None:
    """`text` into `output`, atomically; an unwritable place is one line."""
    from zoo.rundir import atomic_write

    atomic_write(output, (text + "\n").encode(), fix="give --output a file in a writable folder")


def _why(reason: str) -> str:
    """open_image's message without its advice, which the warning or error gives once."""
    return reason.removesuffix("; remove or replace it")


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="predict", file=sys.stderr, dynamic_ncols=True,
                disable=not sys.stderr.isatty())
