"""`zoo report RUN_DIR`: one self-contained HTML page of a training run, to attach to homework or a pull request.

    path = write_report("runs/lenet5_digits/20261203-073422")   # -> runs/.../report.html

The page inlines everything (figures as PNG data URIs, one style sheet, no script and no network), so it opens
the same from a mail attachment as from the run directory. Its sections, in order (`SECTIONS`, each an `id` a
test or a link can name):

    summary      the model, the data, the test split's top-1 / top-5 / macro F1 and the training totals
    curves       loss and top-1 accuracy per epoch (training and validation) and the learning rate: history.csv
    classes      per-class precision, recall, F1 and support of the test split, as `zoo evaluate` measures them
    confusion    the confusion matrix, as `zoo evaluate` draws it (zoo.present.figures)
    trust        ROC and precision-recall curves, the reliability diagram and its ECE (zoo.metrics.trust;
                 zoo.present.figures draws them), of the temperature-scaled probabilities where best.pt is calibrated
    calibration  a single-label classifier's trust at prediction time (zoo.metrics.calibration): its temperature and
                 the ECE before and after it, its prediction sets at 90% coverage, the share of the test split its
                 unfamiliar score flags; or how to add them (zoo calibrate)
    wrong        the test images the model got wrong most confidently, with their files where the data has files
    filters      the first convolution's filters (zoo.present.grids.filter_grid: zoo explain --filters' picture)
    timing       seconds and images/s per epoch, and the whole run's: history.csv and metrics.json
    config       the resolved config the run trained with: config.yaml

It reads the run directory (config.yaml, history.csv, metrics.json, checkpoints/best.pt) and the test split's
scores the run kept (test_scores.npz, zoo.evaluation.scores): no data, no evaluation, no torchvision. A run without them
(older, or a split too large to keep) has best.pt evaluated on its test split again, as `zoo evaluate` does. It
writes only the page.

Damaged files: what the page cannot do without (metrics.json, history.csv, best.pt) is one line naming the file
(ZooError); a damaged test_scores.npz is measured again as a missing one is, its damaged pictures or file names
are left out, and a config.yaml that is not UTF-8 is shown with its bad bytes replaced: each with a note, on
stderr and at the top of the page.

Its pictures are zoo.present.figures' and zoo.present.grids'; their matplotlib is imported when a curve is drawn,
never by training.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.present.console import say
from zoo.present.figures import (
    confusion_image,
    number,
    png,
    pr_figure,
    reliability_figure,
    roc_figure,
    training_curves,
    wrong_gallery,
)
from zoo.present.text import fraction, percent
from zoo.rundir import atomic_write

if TYPE_CHECKING:
    from PIL import Image
    from torch import nn

    from zoo.evaluation.evaluate import EvaluationReport
    from zoo.metrics.calibration import Calibration

SECTIONS = ("summary", "curves", "classes", "confusion", "trust", "calibration", "wrong", "filters", "timing",
            "config")
FILTERS_WIDTH = 480  # pixels: the filter grid's width at least, with tiles of 1/columns of it
RUN_FILES = ("config.yaml", "history.csv", "metrics.json", "checkpoints/best.pt")  # what a finished run has


@dataclass(frozen=True)
class Run:
    """A finished run directory's files, read: the resolved config as text, history.csv's rows (one dict of
    column -> text per epoch) and metrics.json."""

    directory: Path
    config_text: str | None  # None: config.yaml does not read (a note says why)
    history: list[dict[str, str]]
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what the page leaves out or shows changed, and why

    @property
    def checkpoint(self) -> Path:
        return self.directory / "checkpoints" / "best.pt"


@dataclass
class Page:
    """The report's parts as they are built: (section id, title, HTML body) in `SECTIONS` order."""

    title: str
    sections: list[tuple[str, str, str]] = field(default_factory=list)
    notes: Sequence[str] = ()  # damaged parts of the run, said above the sections

    def add(self, section: str, title: str, body: str) -> None:
        self.sections.append((section, title, body))

    def html(self) -> str:
        nav = " · ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in self.sections)
        bodies = "\n".join(f'<section id="{key}">\n<h2>{html.escape(title)}</h2>\n{body}\n</section>'
                           for key, title, body in self.sections)
        notes = "".join(f'<p class="note">note: {html.escape(note)}</p>\n' for note in self.notes)
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
                f"<h1>{html.escape(self.title)}</h1>\n<nav>{nav}</nav>\n{notes}{bodies}\n</body>\n</html>\n")


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans", sans-serif; margin: 2em auto;
       max-width: 70em; padding: 0 1em; color: #1b1f24; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
nav { margin-bottom: 1.5em; color: #57606a; } nav a { color: #0969da; text-decoration: none; }
table { border-collapse: collapse; margin: 0.5em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f6f8fa; }
figure { margin: 0.5em 0 1.5em; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.9em; } pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 0 1em; } .figures figure { flex: 1 1 30em; }
.na { color: #8c959f; } table.kv td { text-align: left; } table.kv td:first-child { color: #57606a; }
.note { background: #fff8c5; border: 1px solid #d4a72c; padding: 0.4em 0.8em; }
"""


def read_run(path: str | Path) -> Run:
    """The run directory `path` (runs/<name>/<time>), or the one a checkpoint inside it belongs to. Raises
    ZooError for a path that is not there, or a directory without a finished run's files (RUN_FILES)."""
    path = Path(path)
    if path.is_file() and path.parent.name == "checkpoints" or path.name == "checkpoints" and path.is_dir():
        path = path.parent.parent if path.is_file() else path.parent  # best.pt, or its folder: the run's
    if not path.is_dir():
        raise ZooError(f"{path}: no such run directory; give a run's directory, e.g. runs/lenet5_digits/<time>")
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if "metrics.json" in missing and {"config.yaml", "history.csv"}.isdisjoint(missing) \
            and (path / "checkpoints" / "last.pt").is_file():  # stopped (Ctrl-C, a signal, a crash) or still running
        from zoo.training.restarts import read_launch

        launch = read_launch(path) or {}
        how = (f"by running the command that started it again (train.run_id {launch['run_id']})" if launch.get("run_id")
               else f"with torchrun (as many processes as it had) -m zoo train --resume {path}"
               if launch.get("torchrun_id") is not None else f"with zoo train --resume {path}")
        raise ZooError(f"{path} has no metrics.json: the run stopped before its end (or is still running); continue "
                       f"it {how}, or measure its checkpoint with zoo evaluate")
    if missing:
        runs = sorted({str(best.parent.parent) for pattern in ("*/checkpoints/best.pt", "*/*/checkpoints/best.pt")
                       for best in path.glob(pattern)})
        shown = ", ".join(runs[-3:]) + (f" ({len(runs)} in all)" if len(runs) > 3 else "")
        hint = f"; runs inside it: {shown}" if runs else "; give a finished run's directory (runs/<name>/<time>)"
        raise ZooError(f"{path} is not a finished run: {', '.join(missing)} missing{hint}")
    name = "history.csv"
    try:
        with (path / name).open(newline="", encoding="utf-8") as file:
            # a row longer than the header keeps its extra fields under None: no column of the curves
            history = [{key: value for key, value in row.items() if key is not None} for row in csv.DictReader(file)]
        name = "metrics.json"
        metrics = json.loads((path / name).read_text(encoding="utf-8"))
    except (OSError, ValueError, csv.Error) as error:  # ValueError: not UTF-8, or not JSON
        raise ZooError(f"{path / name} does not read ({error}); train the run again") from None
    check_metrics(metrics, path / "metrics.json")
    notes: list[str] = []
    return Run(path, read_config_text(path / "config.yaml", notes), history, metrics, notes)


METRICS_NUMBERS = {"train": ("time_s", "images_per_s", "images", "steps"),  # what the page reads of metrics.json
                   "test": ("count", "time_s", "images_per_s")}


def check_metrics(metrics: Any, path: Path) -> None:
    """metrics.json holds what a run writes where the page reads it: an object, and numbers in METRICS_NUMBERS'
    places. Raises ZooError naming the file and the first key that does not."""
    fix = "it is written at the run's end: train the run again, or measure best.pt with zoo evaluate"
    if not isinstance(metrics, dict):
        raise ZooError(f"{path} holds a JSON {type(metrics).__name__}, not the run's figures (an object); {fix}")
    for section, keys in METRICS_NUMBERS.items():
        values = metrics.get(section, {})
        if not isinstance(values, dict):
            raise ZooError(f"{path}: {section} is {values!r:.40}, not an object of figures; {fix}")
        for key in keys:
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise ZooError(f"{path}: {section}.{key} is {value!r:.40}, not a number of 0 or more; {fix}")


def read_config_text(path: Path, notes: list[str]) -> str | None:
    """config.yaml as text, to show (the run's config is read from best.pt): bytes that are not UTF-8 replaced
    (U+FFFD), and a note of it in `notes`; one that does not read at all is None and a note."""
    try:
        data = path.read_bytes()
    except OSError as error:
        notes.append(f"{path} does not read ({error.strerror or error}); the config section is left out")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        notes.append(f"{path} is not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start:,}); it is shown "
                     "with such bytes replaced by \N{REPLACEMENT CHARACTER}")
        return data.decode("utf-8", errors="replace")


def check_output(output: str | Path | None) -> Path | None:
    """`--output` as given, checked before anything is read: a page named .html in a folder that exists. Raises
    ZooError for a folder, another kind of file, or a folder that is not there."""
    if output is None:
        return None
    path = Path(output)
    if path.is_dir():
        raise ZooError(f"--output {path} is a folder; name the page, e.g. {path / 'report.html'}")
    if path.suffix.lower() not in (".html", ".htm"):
        raise ZooError(f"--output {path}: the report is an HTML page; name it *.html")
    if not path.parent.is_dir():
        raise ZooError(f"--output {path}: the folder {path.parent} does not exist; create it first")
    return path


def write_report(run_dir: str | Path, output: str | Path | None = None, device: str = "auto") -> Path:
    """Build the report of `run_dir` (zoo.present.report's docstring says what it holds) and write it atomically to
    `output` (default: report.html in the run directory); returns its path. Raises ZooError for a path that is
    not a finished run, a bad `output`, or a test split that cannot be read (the data moved)."""
    path = check_output(output)
    run = read_run(run_dir)
    path = path or run.directory / "report.html"
    atomic_write(path, build_page(run, device).encode("utf-8"), fix="give --output a file in a writable folder")
    return path


def build_page(run: Run, device: str = "auto") -> str:
    """The whole page, as text."""
    from zoo.inference.load import open_checkpoint

    state, _, model = open_checkpoint(run.checkpoint)
    if state.config.get("task") == "reconstruction":
        return autoencoder_page(run, device)
    notes = list(run.notes)
    evaluation = test_split(run, list(state.classes or map(str, range(state.num_classes))), state.num_classes, device,
                            notes, state.calibration)
    for note in notes:
        say(f"note: {note}", sys.stderr)
    metrics = run.metrics
    page = Page(f"{metrics.get('model', 'model')} on {metrics.get('data', 'data')}: {run.directory.name}", notes=notes)
    page.add("summary", "Summary", summary_html(run, evaluation))
    accuracy = "exact-match ratio" if evaluation.thresholds is not None else "top-1 accuracy"
    page.add("curves", "Training curves", figure(training_curves(run.history), f"Loss and {accuracy} per epoch "
                                                 "(training, validation) and the learning rate; from history.csv."))
    page.add("classes", "Per-class figures (test split)", classes_html(evaluation))
    title = f"{metrics.get('model')} on the test split"
    if evaluation.thresholds is None:
        confusion = confusion_image(evaluation.metrics.confusion, evaluation.classes, title)
        page.add("confusion", "Confusion matrix (test split)",
                 figure(png(confusion),
                        "Rows: the true class; columns: the predicted one; each row shaded by its own total."))
    else:
        page.add("confusion", "Decisions per class (test split)", decisions_html(evaluation))
    page.add("trust", "Can its scores be trusted? (test split)", trust_html(evaluation, title))
    if evaluation.thresholds is None:  # a single-label classifier: calibrated, or one zoo calibrate can calibrate
        page.add("calibration", "Trust at prediction time (test split)", calibration_html(evaluation, run))
    page.add("wrong", "The most confidently wrong test images", wrong_html(evaluation, title))
    page.add("filters", "First-layer filters", filters_html(model))
    page.add("timing", "Timing and throughput", timing_html(run))
    page.add("config", "Config", "<p>The resolved config the run trained with (config.yaml).</p>\n"
                                 + (f"<pre>{html.escape(run.config_text)}</pre>" if run.config_text is not None
                                    else '<p class="na">config.yaml does not read: see the note above.</p>'))
    return page.html()


def autoencoder_page(run: Run, device: str = "auto") -> str:
    """An autoencoder's page: its test figures beside PCA's, the training curves (PSNR), its reconstructions."""
    from zoo.evaluation.evaluate import evaluate_checkpoint
    from zoo.present.grids import reconstruction_grid

    evaluation = evaluate_checkpoint(run.checkpoint, "test", device=device, save=False)
    m, pca, metrics = evaluation.metrics, evaluation.pca, run.metrics
    page = Page(f"{metrics.get('model', 'model')} on {metrics.get('data', 'data')}: {run.directory.name}",
                notes=list(run.notes))
    rows = [("model", metrics.get("model")), ("data", metrics.get("data")), ("run", str(run.directory)),
            ("test pictures", f"{m.count:,}"), ("code size (values)", f"{evaluation.code_size:,}"),
            ("test MSE, autoencoder / PCA", f"{m.mse:.5f} / {'n/a' if pca is None else f'{pca.mse:.5f}'}"),
            ("test PSNR, autoencoder / PCA", f"{m.psnr:.2f} dB / {'n/a' if pca is None else f'{pca.psnr:.2f} dB'}"),
            ("noisy or gray input PSNR", "n/a" if m.input_psnr is None else f"{m.input_psnr:.2f} dB"),
            ("anomaly threshold (reconstruction MSE)", "n/a" if evaluation.task.threshold is None
             else f"{evaluation.task.threshold:.5g}"),
            ("best epoch", f"{metrics.get('best_epoch')} of {metrics.get('epochs_run')}")]
    page.add("summary", "Summary", table(["", ""], rows, header=False, kind="summary")
             + ("<p>PCA: none for colourisation.</p>" if pca is None else
                f"<p>PCA: scikit-learn's, with {pca.components:,} components, fitted on the training split's pixels."
                " zoo evaluate --abnormal adds the anomaly figures.</p>"))
    page.add("curves", "Training curves", figure(training_curves(run.history), "Loss and PSNR per epoch (training, "
                                                 "validation) and the learning rate; from history.csv."))
    page.add("reconstructions", "Reconstructions (test split)",
             figure(png(reconstruction_grid(evaluation.pictures)), "The first test pictures: the input, the noisy "
                    "input where the run adds noise, and the output."))
    page.add("timing", "Timing and throughput", timing_html(run))
    page.add("config", "Config", f"<pre>{html.escape(run.config_text)}</pre>" if run.config_text is not None
             else '<p class="na">config.yaml does not read: see the note above.</p>')
    return page.html()


def test_split(run: Run, classes: list[str], outputs: int, device: str = "auto",
               notes: list[str] | None = None, calibration: Calibration | None = None) -> EvaluationReport:
    """best.pt on the run's test split: from the scores the run kept (zoo.evaluation.scores: no data read, nothing
    evaluated), or, for a run without them (older, or a split too large to keep) or with damaged ones, evaluated
    again as zoo evaluate does. What was damaged and left out is added to `notes`; evaluating again where the
    data is gone too is a ZooError naming both. With best.pt's `calibration`, the trust figures are of the
    temperature-scaled probabilities, as zoo evaluate's, and `calibrated` holds its figures (calibrated_figures)."""
    import torch
    from torch.nn import functional

    from zoo.evaluation.evaluate import EvaluationReport, evaluate_checkpoint
    from zoo.evaluation.scores import DamagedScores, read_scores
    from zoo.loop import EpochResult
    from zoo.metrics import MetricAccumulator
    from zoo.metrics.trust import compute_trust, output_names
    from zoo.training.calibrate import COVERAGE

    notes = [] if notes is None else notes
    coverage = None if calibration is None else COVERAGE  # the prediction sets metrics.json gives figures of
    try:
        scores = read_scores(run.directory, run.metrics.get("test", {}).get("count"), outputs,
                             1.0 if calibration is None else calibration.temperature)
    except DamagedScores as damaged:
        try:
            evaluation = evaluate_checkpoint(run.checkpoint, "test", device=device, save=False, coverage=coverage)
        except ZooError as error:
            raise ZooError(f"{damaged}; and best.pt cannot be measured again: {error}") from None
        notes.append(f"{damaged}; the figures are best.pt's measured on the test split again")
        return evaluation
    if scores is None:  # a multi-label run keeps none: its targets are sets
        return evaluate_checkpoint(run.checkpoint, "test", device=device, save=False, coverage=coverage)
    notes.extend(scores.notes)
    logits, targets = torch.from_numpy(scores.logits), torch.from_numpy(scores.targets)
    accumulator = MetricAccumulator(outputs)
    accumulator.update(logits, targets, functional.cross_entropy(logits, targets))
    calibrated = None if calibration is None else calibrated_figures(run, calibration, logits, targets, COVERAGE)
    tempered = logits if calibration is None else logits / calibration.temperature  # as zoo evaluate measures them
    trust = compute_trust(tempered, targets, output_names(classes, outputs), scores.paths)
    pictures = scores.pictures
    if scores.paths is not None and trust.wrong:  # the files themselves, where they still are
        pictures = pictures_of([wrong.path for wrong in trust.wrong])
    return EvaluationReport(run.checkpoint, "test", classes, EpochResult(accumulator.compute(), 0.0, 0), None, None,
                            logits=logits, paths=scores.paths, targets=targets, trust=trust, wrong_images=pictures,
                            calibrated=calibrated)


def calibrated_figures(run: Run, calibration: Calibration, logits: Any, targets: Any, coverage: float
                       ) -> dict[str, Any]:
    """Calibration.figures of the kept test logits (no data read): the temperature, the ECE before and after it and
    the prediction sets at `coverage`; and the share of the test split the unfamiliar score flags, which needs the
    pictures, as metrics.json holds it where the run (or zoo calibrate) fitted this calibration."""
    from dataclasses import replace

    # without its familiarity, figures() reads no pixel statistics: the kept scores have none
    figures = replace(calibration, familiarity=None).figures(logits, targets, None, coverage)
    kept, unfamiliar = run.metrics.get("calibration"), run.metrics.get("unfamiliar")
    same = isinstance(kept, dict) and kept.get("temperature") == calibration.temperature
    if same and isinstance(unfamiliar, dict) and all(isinstance(unfamiliar.get(key), (int, float)) for key in
                                                     ("threshold", "familiar_share", "test_flagged")):
        figures["unfamiliar"] = {key: unfamiliar[key] for key in ("threshold", "familiar_share", "test_flagged")}
    return figures


def pictures_of(paths: Sequence[str]) -> list[Image.Image] | None:
    """The pictures at `paths`, as zoo predict opens them; None when one of them is gone or unreadable."""
    from zoo.data.images import open_image

    try:
        return [open_image(path) for path in paths]
    except (OSError, ValueError, ZooError):  # moved, deleted or damaged since the run: the table still lists them
        return None


# ---- sections -------------------------------------------------------------------------------------------

def summary_html(run: Run, evaluation: EvaluationReport) -> str:
    m, train = evaluation.metrics, run.metrics.get("train", {})
    macro = m.macro()
    figures = ([("test mAP (macro average precision)", fraction(evaluation.trust.ap_macro)),
                ("test exact match", percent(m.exact_match)), ("test Hamming loss", fraction(m.hamming_loss)),
                ("test F1, micro / macro", f"{fraction(m.micro()['f1'])} / {fraction(macro.get('f1'))}")]
               if evaluation.thresholds is not None else
               [("test top-1 accuracy", percent(m.accuracy)), ("test top-5 accuracy", percent(m.top5_accuracy)),
                ("test macro F1", fraction(macro.get("f1")))])
    rows = [
        ("model", run.metrics.get("model")), ("data", run.metrics.get("data")), ("run", str(run.directory)),
        ("test images", f"{m.count:,}"), *figures,
        ("test loss", fraction(m.loss)),
        ("test macro ROC AUC", fraction(evaluation.trust.auc_macro)),
        ("expected calibration error", percent(evaluation.trust.ece)),
        ("best epoch", f"{run.metrics.get('best_epoch')} of {run.metrics.get('epochs_run')} "
                       f"({run.metrics.get('best_weights', 'raw')} weights)"),
        ("training time", seconds(train.get("time_s"))),
        ("training throughput", f"{train.get('images_per_s', 0):,.0f} images/s"),
    ]
    return table(["", ""], rows, header=False, kind="kv")


def classes_html(evaluation: EvaluationReport) -> str:
    trust = evaluation.trust
    rows = [(row["class"], percent(row["precision"]), percent(row["recall"]), fraction(row["f1"]),
             fraction(trust.auc[k]), fraction(trust.average_precision[k]), f"{row['support']:,}")
            for k, row in enumerate(evaluation.per_class())]
    macro = evaluation.metrics.macro()
    rows.append(("macro average", percent(macro.get("precision")), percent(macro.get("recall")),
                 fraction(macro.get("f1")), fraction(trust.auc_macro), fraction(trust.ap_macro),
                 f"{evaluation.metrics.count:,}"))
    return ("<p>As <code>zoo evaluate</code> measures them on best.pt. AUC and AP: the class against the rest on "
            f"its {'sigmoid' if evaluation.thresholds is not None else 'softmax'} probability (scikit-learn's ROC AUC "
            f"and average precision). {_left_out(evaluation)}</p>\n"
            + table(["class", "precision", "recall", "F1", "ROC AUC", "AP", "support"], rows))


def _left_out(evaluation: EvaluationReport) -> str:
    """What the macro averages run over, as scikit-learn's do: for one label per image the classes in the split or
    the predictions (n/a: the others); for label sets every class, one absent and never predicted counting 0."""
    if evaluation.thresholds is not None:
        return ("The macro averages of precision, recall and F1 run over every class, as scikit-learn's do for label "
                "sets: a class absent from the split and never predicted counts 0 (AUC, AP: n/a where not in the "
                "split, left out of their macro average).")
    return "n/a: a class neither in the split nor predicted (AUC, AP: not in the split), left out of the macro average."


def decisions_html(evaluation: EvaluationReport) -> str:
    """A multi-label model's decisions, class by class: its threshold and the counts of scikit-learn's
    multilabel_confusion_matrix (true and false positives and negatives) on the test split."""
    counts = evaluation.metrics.counts.tolist()  # K x 2 x 2: [[tn, fp], [fn, tp]]
    rows = [(name, f"{threshold:.3f}", f"{tp:,}", f"{fp:,}", f"{fn:,}", f"{tn:,}")
            for name, threshold, ((tn, fp), (fn, tp)) in zip(evaluation.classes, evaluation.thresholds, counts)]
    return ("<p>Each class is predicted where its sigmoid probability is at least its threshold, chosen on the "
            "validation split to maximise the class's F1 (or config.multilabel.threshold). Counts over the test "
            "images.</p>\n" + table(["class", "threshold", "true positives", "false positives", "false negatives",
                                      "true negatives"], rows))


def trust_html(evaluation: EvaluationReport, title: str) -> str:

    trust = evaluation.trust
    confidence = ("every (image, class) decision's confidence (p where the class is predicted, else 1 - p)"
                  if evaluation.thresholds is not None else "the top-1 confidence")
    return "\n".join([
        f"<p>Macro ROC AUC {fraction(trust.auc_macro)}, macro average precision {fraction(trust.ap_macro)}; "
        f"expected calibration error {percent(trust.ece)} of {confidence} in {len(trust.reliability)} "
        "equal-width bins (Guo et al. 2017): how far the probabilities the model gives are from how often it is "
        "right.</p>",
        '<div class="figures">',
        figure(roc_figure(trust, title), "ROC curves: each class against the rest."),
        figure(pr_figure(trust, title), "Precision-recall curves: each class against the rest."),
        figure(reliability_figure(trust, title), "Reliability diagram: accuracy in each confidence bin; a "
                                                 "calibrated model follows the diagonal."),
        "</div>",
    ])


def calibration_html(evaluation: EvaluationReport, run: Run) -> str:
    """What a prediction of best.pt says beside its class (zoo.metrics.calibration): its temperature and the test
    ECE before and after it, its prediction sets, the share of the test split flagged unfamiliar; or, uncalibrated,
    how to add them."""
    figures = evaluation.calibrated
    if figures is None:
        return (f"<p>None: best.pt has no calibration (trained before zoo fitted one, or with calibration.enabled "
                f"false). <code>zoo calibrate {html.escape(str(run.directory))}</code> fits a temperature, prediction "
                "sets (<code>zoo predict --coverage</code>) and an unfamiliar score on the validation split.</p>")
    calibration, conformal, unfamiliar = figures["calibration"], figures.get("conformal"), figures.get("unfamiliar")
    before, after = percent(calibration["ece_before"]), percent(calibration["ece_after"])
    rows = [("temperature", f"{calibration['temperature']:.3f}"), ("test ECE, before / after it",
                                                                  f"{before} / {after}")]
    if conformal is not None:
        size, count = conformal["mean_set_size"], conformal["calibration_images"]
        rows += [(f"prediction sets at {conformal['target'] * 100:.4g}% coverage: test coverage",
                  percent(conformal["coverage"])),
                 ("mean set size", f"{size:.2f} classes (from {count:,} validation images)")]
    rows.append(("test images flagged unfamiliar", "n/a: zoo evaluate measures it" if unfamiliar is None else
                 f"{percent(unfamiliar['test_flagged'])} (threshold {unfamiliar['threshold']:.3g}: "
                 f"{unfamiliar['familiar_share']:.0%} of the validation pictures pass)"))
    return ("<p>Fitted on the validation split: the temperature that divides the logits (Guo et al. 2017; the "
            "figures above are of the probabilities it gives, as <code>zoo predict</code> gives them), the "
            "prediction sets that hold the true class at least as often as the coverage asked for (split conformal "
            "prediction, <code>zoo predict --coverage</code>), and the score that flags pictures unlike the "
            "training data.</p>\n" + table(["", ""], rows, header=False, kind="kv"))


def wrong_html(evaluation: EvaluationReport, title: str) -> str:
    trust = evaluation.trust
    if evaluation.thresholds is not None:  # label sets: an image is rarely wholly wrong, so no gallery
        return (f"<p>{trust.wrong_count:,} of the {trust.count:,} test images have a predicted label set that is not "
                "exactly theirs; the per-class decisions above say which labels are missed or added.</p>")
    if not trust.wrong:
        return f"<p>None: every one of the {trust.count:,} test images is predicted right.</p>"
    rows = [(trust.classes[w.true], trust.classes[w.predicted], percent(w.probability), w.path or f"image {w.index}")
            for w in trust.wrong]
    shown = f"The {len(trust.wrong)} surest of {trust.wrong_count:,} wrong predictions"
    picture = "" if evaluation.wrong_images is None else figure(
        png(wrong_gallery(trust, evaluation.wrong_images, title)),
        f"{shown}: true -> predicted, probability{', file' if trust.wrong[0].path else ''}.")
    return picture + "\n" + table(["true", "predicted", "probability", "image"], rows)


def filters_html(model: nn.Module) -> str:
    from torch import nn

    from zoo.present.grids import TILE, filter_grid

    try:
        name, conv = model.first_conv("filters")
    except ZooError:
        if any(isinstance(module, nn.Conv1d) for module in model.modules()):  # TextCNN's
            return "<p>Not drawn: its convolutions slide over sentences (windows of word vectors), not pictures.</p>"
        return "<p>None: the network has no convolution (its layers are fully connected).</p>"
    shape = " x ".join(str(size) for size in conv.weight.shape)
    columns = math.ceil(math.sqrt(conv.out_channels))  # tile_grid's; LeNet-5's 6 filters would be a stamp
    grid = filter_grid(model, tile=max(TILE, FILTERS_WIDTH // columns))
    return figure(png(grid), f"{name}'s {conv.out_channels} filters ({shape}: out x in x height x "
                  "width), each scaled to its own range; what zoo explain --filters draws.")


def timing_html(run: Run) -> str:
    train, test = run.metrics.get("train", {}), run.metrics.get("test", {})
    totals = table(["", ""], [
        ("training", f"{seconds(train.get('time_s'))}, {train.get('images', 0):,} images in {train.get('steps', 0):,} "
                     f"optimizer steps, {train.get('images_per_s', 0):,.0f} images/s"),
        ("test split", f"{seconds(test.get('time_s'))}, {test.get('images_per_s', 0):,.0f} images/s"),
    ], header=False, kind="kv")
    rows = [(row.get("epoch", ""), seconds(number(row.get("time_s"))), f"{number(row.get('images_per_s')) or 0:,.0f}")
            for row in run.history]
    return totals + "\n" + table(["epoch", "training time", "images/s"], rows)


# ---- figures --------------------------------------------------------------------------------------------

def figure(data: bytes, caption: str, alt: str | None = None) -> str:
    """An inline <figure>: the PNG as a data URI, and its caption."""
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(alt or caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


# ---- text -----------------------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], header: bool = True, kind: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(name))}</th>" for name in headers) + "</tr>\n" if header else ""
    body = "".join("<tr>" + "".join(cell(value) for value in row) + "</tr>\n" for row in rows)
    return f'<table class="{kind}">\n{head}{body}</table>' if kind else f"<table>\n{head}{body}</table>"


def cell(value: Any) -> str:
    return '<td class="na">n/a</td>' if value is None or value == "n/a" else f"<td>{html.escape(str(value))}</td>"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} s" if value >= 10 else f"{value:.2f} s"

