"""What the commands print as their result: rows as an aligned text table, Markdown, CSV or JSON, and each
command's report built on them. (A training run's own lines, printed as it goes, are zoo.training.log's.)

    render(headers, rows, fmt)        any table, in any Format
    render_catalog(rows, fmt)         `zoo list`: one row per model
    render_summary(summary, fmt)      `zoo summary`: the layer table, the totals and how to read them
    render_evaluation(report, fmt)    `zoo evaluate`: loss and accuracy, per-class table, trust figures,
                                      confusion matrix; an autoencoder's MSE, PSNR and anomaly figures beside PCA's
    render_predictions(report, fmt)   `zoo predict`: one row per image, its top-k classes and probabilities, or an
                                      autoencoder's score and verdict
    render_error_maps(report)         `zoo explain` of an autoencoder: the error maps written
    render_reconstruction_export(r)   `zoo export` of an autoencoder: the file and its check
    render_lr_find(result, ...)       `zoo lr-find`: the sweep, the suggestion and the command to train with it
    render_export(report)             `zoo export`: the file written and its check against eager PyTorch
    render_quantized_export(report)   `zoo export --quantize int8`: the float and int8 files side by side
    render_explain(report)            `zoo explain`: each picture's top-k and the PNGs written

The computing lives in the layers below (zoo.summary, zoo.evaluation, zoo.inference, zoo.training); this
module only turns their records into text.
It imports no torch: the CLI reads the format choices from here before it knows which command runs.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.evaluation.evaluate import EvaluationReport
    from zoo.inference.explain import ExplainReport
    from zoo.inference.export import ExportReport, QuantizeReport
    from zoo.inference.predict import PredictionReport
    from zoo.summary import CatalogRow, Layer, Summary, Totals
    from zoo.training.lr_find import LrFindResult


class Format(str, Enum):
    """What `zoo list` and `zoo summary` print."""

    table = "table"  # aligned columns for a terminal
    markdown = "markdown"  # pastes into a README
    csv = "csv"
    json = "json"  # every field, typed


class EvaluationFormat(str, Enum):
    """What `zoo evaluate` prints."""

    table = "table"
    json = "json"


class PredictionFormat(str, Enum):
    """What `zoo predict` prints (or writes to --output)."""

    table = "table"
    csv = "csv"  # path, class_1, probability_1, ... class_k, probability_k
    json = "json"


class ExportFormat(str, Enum):
    """The files `zoo export` writes; zoo.inference.export.FORMATS is the same list (importing it here would import
    torch)."""

    onnx = "onnx"
    pt2 = "pt2"
    safetensors = "safetensors"


class Quantization(str, Enum):
    """`zoo export --quantize`; zoo.inference.export.QUANTIZATIONS is the same list."""

    int8 = "int8"  # ONNX Runtime's static quantization, verified on the run's test split


BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def check_format(fmt: str, choices: type[Enum] = Format) -> None:
    """For Python callers; the CLI's Enum options have already refused anything else."""
    names = [choice.value for choice in choices]
    if fmt not in names:
        listing = " or ".join(names) if len(names) == 2 else f"one of {', '.join(names)}"
        raise ZooError(f"unknown format {fmt!r}; choose {listing}")


def format_bytes(count: int) -> str:
    """Bytes in binary units, as memory is sized: 97,517,568 -> '93.0 MiB'."""
    value, unit = float(count), 0
    while value >= 1024 and unit < len(BINARY_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {BINARY_UNITS[unit]}"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table",
           numeric: Sequence[bool] | None = None) -> str:
    """`numeric[i]` right-aligns column i (default: columns whose values are all numbers)."""
    if fmt == "json":
        import json  # here, not at the top: the CLI imports this module for --help

        return json.dumps([dict(zip(headers, row)) for row in rows], indent=2)
    if fmt == "csv":
        from zoo.rundir import csv_text

        return csv_text(headers, rows).rstrip("\n")
    if numeric is None:
        numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows) and bool(rows)
                   for i in range(len(headers))]
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric)]
        return ("| " + " | ".join(parts) + " |") if fmt == "markdown" else "  ".join(parts).rstrip()

    if fmt == "markdown":
        rule = "|" + "|".join(("-" * (w + 1) + ":") if right else ("-" * (w + 2))
                              for w, right in zip(widths, numeric)) + "|"
    elif fmt == "table":
        rule = "  ".join("-" * w for w in widths)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


# zoo list

CATALOG_HEADERS = ["name", "family", "year", "params", "input", "paper count", "torchvision weights", "task"]


def render_catalog(rows: Sequence[CatalogRow], fmt: str = "table") -> str:
    """JSON keeps the facts typed (a bool or null for the paper count); text spells them out."""
    check_format(fmt)
    if fmt == "json":
        table = [[r.name, r.family, r.year, r.params, r.input_size, r.reference_ok, r.torchvision, r.task]
                 for r in rows]
    else:
        table = [[r.name, r.family, str(r.year), r.params, r.input_size,
                  {True: "matches", False: "MISMATCH", None: "-"}[r.reference_ok], r.torchvision or "-", r.task]
                 for r in rows]
    return render(CATALOG_HEADERS, table, fmt, numeric=[False, False, False, True, False, False, False, False])


# zoo summary

LAYER_HEADERS = ["name", "type", "kernel", "stride", "padding", "input", "output", "calls", "params", "trainable",
                 "MACs", "note"]


def _dims(value: tuple[int, ...] | str | None, collapse: bool = False) -> str:
    """(3, 3) -> '3x3'; with collapse, equal entries print once, as tables give a stride: (2, 2) -> '2'."""
    if value is None or isinstance(value, str):
        return value or ""
    if collapse and len(set(value)) == 1:
        return str(value[0])
    return "x".join(map(str, value))


def _layer_row(layer: Layer) -> list:
    if layer.params == 0:
        trainable = ""
    else:
        trainable = {layer.params: "trainable", 0: "frozen"}.get(layer.trainable_params, "partly frozen")
    return [layer.name, layer.type, _dims(layer.kernel), _dims(layer.stride, True), _dims(layer.padding, True),
            _dims(layer.input_shape), _dims(layer.output_shape), layer.calls, layer.params, trainable, layer.macs,
            "training only" if layer.training_only else ""]


def _decimal(count: int, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count:,} ({count / scale:.3f} {prefix}{unit})"
    return f"{count:,} {unit}"


def _in_bytes(count: int) -> str:
    return f"{count:,} B ({format_bytes(count)})"


def _total_rows(totals: Totals, batch_size: int) -> list[tuple[str, str]]:
    return [
        ("parameters", f"{totals.params:,}"),
        ("  trainable", f"{totals.trainable_params:,}"),
        ("  frozen", f"{totals.frozen_params:,}"),
        ("buffers (e.g. batch-norm statistics)", f"{totals.buffers:,}"),
        ("MACs per image (1 multiply-add = 1 MAC)", _decimal(totals.macs, "MACs")),
        ("parameter memory", _in_bytes(totals.param_bytes)),
        ("buffer memory", _in_bytes(totals.buffer_bytes)),
        ("forward activations per image", _in_bytes(totals.activation_bytes)),
        (f"training estimate, batch {batch_size} (see below)", _in_bytes(totals.training_bytes)),
    ]


def _reference_lines(summary: Summary) -> list[str]:
    ref = summary.reference
    if ref is None:
        return ["reference count: none recorded for this model at these classes and input channels"]
    computed = (summary.totals_without_aux or summary.totals).params
    if ref.matches:
        return [f"reference count: {ref.count:,} ({ref.source}): matches"]
    return [f"!!! MISMATCH: computed {computed:,} parameters, but {ref.source} publishes {ref.count:,} !!!"]


def render_summary(summary: Summary, fmt: str = "table") -> str:
    """The layer table and totals as text or Markdown; CSV gives the layer rows, JSON everything."""
    check_format(fmt)
    if fmt == "json":
        import json
        from dataclasses import asdict

        return json.dumps(asdict(summary), indent=2)
    layers = render(LAYER_HEADERS, [_layer_row(layer) for layer in summary.layers], fmt)
    if fmt == "csv":
        return layers
    totals = _total_rows(summary.totals, summary.batch_size)
    if summary.totals_without_aux is None:
        totals_table = render(["total", "value"], totals, fmt)
    else:
        inference = _total_rows(summary.totals_without_aux, summary.batch_size)
        totals_table = render(["total", "with auxiliary heads", "without (inference)"],
                              [(label, a, b) for (label, a), (_, b) in zip(totals, inference)], fmt)
    sample = "image" if summary.input == "image" else "sentence"
    given = _dims(summary.input_size) + ("" if summary.input == "image" else " token ids")
    title = f"{summary.model}: input {given}, depth {summary.depth}, shapes per {sample}, MACs at batch 1"
    notes = [
        "training estimate: batch x 2 x activations (kept for backward, plus their gradients) + weights + "
        "weight gradients + buffers; optimizer state not included (SGD momentum adds 1x the weights, Adam 2x)",
    ]
    code = [] if summary.code_shape is None else [_code_line(summary.code_shape)]
    return "\n\n".join([title, layers, *code, totals_table, "\n".join(_reference_lines(summary) + notes)])


def _code_line(shape: tuple[int, ...]) -> str:
    """An autoencoder's code, the encoder's output: 'code: 8 x 7 x 7 (392 values)'."""
    values = f"{math.prod(shape):,} values"
    return f"code: {' x '.join(map(str, shape))} ({values}), the encoder's output, the decoder's input"


# zoo evaluate

def share(value: float) -> str:
    """A target fraction as a percentage with the digits it has: 0.9 -> 90%, 0.995 -> 99.5%."""
    return f"{value * 100:.4g}%"


def percent(value: float | None) -> str:
    """A fraction as a percentage with 2 decimals; n/a for an undefined figure."""
    return "n/a" if value is None else f"{value:.2%}"


def fraction(value: float | None) -> str:
    """A figure that is no percentage (a loss, an F1, an AUC) with 4 decimals; n/a for an undefined one."""
    return "n/a" if value is None else f"{value:.4f}"


def _evaluation_table(report: EvaluationReport) -> str:
    m = report.metrics
    sets = report.thresholds is not None  # a multi-label model: its figures are of label sets
    lines = [
        f"{report.checkpoint} on {report.evaluated or f'the {report.split} split'}: {m.count:,} images",
        (f"loss {m.loss:.4f}  mAP {fraction(report.trust.ap_macro if report.trust else None)}  exact match "
         f"{percent(m.exact_match)}  Hamming loss {m.hamming_loss:.4f}  F1 micro {m.micro()['f1']:.4f}  macro "
         f"{m.macro()['f1']:.4f}" if sets else
         f"loss {m.loss:.4f}  top-1 {percent(m.accuracy)}  top-5 {percent(m.top5_accuracy)}"),
        "",
    ]
    lines.append(_per_class_table(report))
    lines += _trust_lines(report)
    lines += _calibration_lines(report)
    if not sets and len(report.classes) <= 30:
        lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
        lines.append(render(["true class", *report.classes],
                            [[name, *row] for name, row in zip(report.classes, m.confusion.tolist())],
                            numeric=[False] + [True] * len(report.classes)))
    if report.not_saved is not None:
        lines += ["", f"not saved: {report.not_saved}"]
    else:
        saved = [path for path in (report.confusion_csv, report.confusion_png) if path is not None]
        if report.trust_files is not None:
            files = report.trust_files
            saved += [path for path in (files.roc, files.pr, files.reliability, files.wrong) if path is not None]
        lines += ["", *(f"{'saved: ' if index == 0 else '       '}{path}" for index, path in enumerate(saved))]
    return "\n".join(lines)


def _per_class_table(report: EvaluationReport) -> str:
    """Precision, recall, F1 and support per class with their macro average; a multi-label model's also gives each
    class's threshold and average precision."""
    m, trust, thresholds = report.metrics, report.trust, report.thresholds
    extra = thresholds is not None
    rows = [[row["class"], percent(row["precision"]), percent(row["recall"]),
             "n/a" if row["f1"] is None else f"{row['f1']:.4f}", row["support"],
             *([f"{thresholds[k]:.3f}", fraction(trust.average_precision[k] if trust else None)] if extra else [])]
            for k, row in enumerate(report.per_class())]
    macro = m.macro()
    over = "" if macro["classes"] == len(report.classes) else f" ({macro['classes']} of {len(report.classes)} classes)"
    rows.append([f"macro average{over}", percent(macro["precision"]), percent(macro["recall"]), f"{macro['f1']:.4f}",
                 m.count, *(["", fraction(trust.ap_macro if trust else None)] if extra else [])])
    headers = ["class", "precision", "recall", "f1", "support", *(["threshold", "AP"] if extra else [])]
    return render(headers, rows, numeric=[False, *[True] * (len(headers) - 1)])


def _trust_lines(report: EvaluationReport) -> list[str]:
    """One line of zoo.metrics.trust's figures (macro AUC and AP, one class against the rest; ECE) and one of the
    gallery."""
    trust = report.trust
    if trust is None:
        return []
    lines = ["", f"trust: macro AUC {fraction(trust.auc_macro)}  macro AP {fraction(trust.ap_macro)}  "
                 f"ECE {trust.ece:.2%} ({len(trust.reliability)} bins)"]
    if report.thresholds is not None:  # a multi-label model's: its ECE is over every (image, class) decision
        return [*lines, f"label sets not exact: {trust.wrong_count:,} of {trust.count:,} images"]
    if not trust.wrong:
        lines.append("most confidently wrong: none, every prediction is right (no gallery)")
    else:
        gallery = ("" if report.trust_files is None or report.trust_files.wrong is None
                   else f" in {report.trust_files.wrong.name}")
        first = trust.wrong[0]
        shown = (f"{trust.wrong_count:,} wrong" if len(trust.wrong) == trust.wrong_count
                 else f"the {len(trust.wrong)} surest of {trust.wrong_count:,} wrong")
        lines.append(f"most confidently wrong: {shown}{gallery}; the surest {trust.classes[first.true]} -> "
                     f"{trust.classes[first.predicted]} at {first.probability:.1%}")
    return lines


def _calibration_lines(report: EvaluationReport) -> list[str]:
    """A calibrated classifier's figures (EvaluationReport.calibrated): its temperature and the ECE before and after
    it, its prediction sets at the coverage asked for, and the share of the split (and of an --unfamiliar folder)
    its unfamiliar score flags; for an uncalibrated one, none (evaluate said how to add them)."""
    figures = report.calibrated
    if figures is None:
        return []
    calibration = figures["calibration"]
    bins = f" ({len(report.trust.reliability)} bins)" if report.trust is not None else ""
    lines = ["", f"calibration: temperature {calibration['temperature']:.2f}, ECE {calibration['ece_before']:.2%} -> "
                 f"{calibration['ece_after']:.2%}{bins}"]
    if (conformal := figures.get("conformal")) is not None:
        count = conformal["calibration_images"]
        few = (f"; {count} can promise at most {count / (count + 1):.2%}, so every set holds every class"
               if conformal["target"] > count / (count + 1) else "")
        lines.append(f"prediction sets at {share(conformal['target'])} coverage: {conformal['coverage']:.1%} covered, "
                     f"{conformal['mean_set_size']:.2f} classes on average (from {count:,} validation images{few})")
    if (unfamiliar := figures.get("unfamiliar")) is not None:
        evaluated = report.evaluated or f"the {report.split} split"
        evaluated = evaluated.replace("every image of", "the images of", 1).replace("every row of", "the rows of", 1)
        lines.append(f"unfamiliar: {unfamiliar['test_flagged']:.1%} of {evaluated} flagged (threshold "
                     f"{unfamiliar['threshold']:.2f}: {unfamiliar['familiar_share']:.0%} of validation pictures pass)")
        if "folder" in unfamiliar:
            lines.append(f"unfamiliar folder {unfamiliar['folder']}: {unfamiliar['folder_flagged']:.1%} of "
                         f"{unfamiliar['folder_images']:,} flagged, AUROC {fraction(unfamiliar['auroc'])}")
    return lines


def render_evaluation(report: EvaluationReport, fmt: str = "table") -> str:
    """Metrics, the per-class table and the confusion matrix (up to 30 classes) as text; JSON gives every figure."""
    check_format(fmt, EvaluationFormat)
    if fmt == "json":
        from zoo.rundir import json_text

        return json_text(report.to_dict())
    if report.task.name == "reconstruction":
        return _reconstruction_table(report)
    return _evaluation_table(report)


def _reconstruction_table(report: Any) -> str:
    """An autoencoder's figures beside PCA's of its code size (a zoo.evaluation.reconstruction.ReconstructionReport):
    how well each rebuilds the split, and how well each flags the abnormal pictures."""
    m, pca, anomaly = report.metrics, report.pca, report.anomaly
    kind = "normal pictures" if anomaly is not None else "pictures"
    lines = [f"{report.checkpoint} on the {report.split} split: {m.count:,} {kind}", ""]
    rows = [["MSE", f"{m.mse:.5f}"], ["PSNR", f"{m.psnr:.2f} dB"]]
    if anomaly is not None:
        rows += [["anomaly ROC AUC", f"{anomaly.auc:.4f}"], ["anomaly average precision",
                                                            f"{anomaly.average_precision:.4f}"]]
    if pca is not None:  # colourisation has none
        detected = [f"{pca.anomaly.auc:.4f}", f"{pca.anomaly.average_precision:.4f}"] if anomaly else []
        figures = [f"{pca.mse:.5f}", f"{pca.psnr:.2f} dB", *detected]
        rows = [[*row, figure] for row, figure in zip(rows, figures)]
    baseline = [f"PCA ({pca.components:,} components)"] if pca is not None else []
    headers = ["", f"autoencoder (code {report.code_size:,})", *baseline]
    lines.append(render(headers, rows, numeric=[False] + [True] * (len(headers) - 1)))
    if m.input_psnr is not None:
        given = "gray" if report.task.colorize else "noisy"
        lines.append(f"{given} input PSNR {m.input_psnr:.2f} dB: the output is {m.psnr - m.input_psnr:+.2f} dB from it")
    if anomaly is not None:
        lines += ["", f"abnormal: {report.abnormal} ({len(report.abnormal_errors):,} pictures)"]
        if anomaly.threshold is None:
            lines.append("threshold: none chosen (the run had no validation split)")
        else:
            lines.append(f"threshold {anomaly.threshold:.5g} (reconstruction MSE): {anomaly.true_positives:,} of "
                         f"{anomaly.true_positives + anomaly.false_negatives:,} abnormal flagged, "
                         f"{anomaly.false_positives:,} of {anomaly.false_positives + anomaly.true_negatives:,} normal")
    if report.not_saved is not None:
        lines += ["", f"not saved: {report.not_saved}"]
    elif report.files:
        lines += ["", *(f"{'saved: ' if index == 0 else '       '}{path}"
                        for index, path in enumerate(report.files.values()))]
    return "\n".join(lines)


# zoo predict

def render_predictions(report: PredictionReport, fmt: str = "table") -> str:
    """Table: the path and the top-k as 'class 97.1%'; CSV: path, class_i, probability_i (fractions, full
    precision); JSON: the source, every prediction with class indices, and the skipped files with the reason.
    An autoencoder's: each picture's score and verdict (_anomaly_scores)."""
    check_format(fmt, PredictionFormat)
    if fmt == "json":
        from zoo.rundir import json_text

        return json_text(report.to_dict())
    if report.task == "reconstruction":
        return _anomaly_scores(report, fmt)
    k = max(len(prediction.classes) for _, prediction in report.rows)
    sets = report.task == "multilabel"  # its decision is a set of labels: a column of its own, first
    judged = report.unfamiliar_threshold is not None  # a calibrated classifier: each row says if it is unfamiliar
    chosen = report.coverage is not None  # each row's prediction set
    if fmt == "csv":
        headers = [*([report.column, "labels"] if sets else [report.column]),
                   *(["unfamiliar", "unfamiliar_score"] if judged else []),
                   *(["set"] if chosen else []),
                   *(f"{name}_{rank}" for rank in range(1, k + 1) for name in ("class", "probability"))]
        rows = [[str(path), *([";".join(p.labels)] if sets else []),
                 *([p.unfamiliar, p.unfamiliar_score] if judged else []), *([";".join(p.set)] if chosen else []),
                 *(value for pair in zip(p.classes, p.probabilities) for value in pair)] for path, p in report.rows]
        return render(headers, rows, "csv")
    headers = ["image" if report.column == "path" else report.column, *(["labels"] if sets else []),
               *(["unfamiliar"] if judged else []),
               *([f"set ({share(report.coverage)})"] if chosen else []), *(f"top-{rank}" for rank in range(1, k + 1))]
    rows = [[str(path), *(["; ".join(p.labels) or "(none)"] if sets else []),
             *(["yes" if p.unfamiliar else ""] if judged else []), *([", ".join(p.set)] if chosen else []),
             *(f"{name} {probability:.1%}" for name, probability in zip(p.classes, p.probabilities))]
            for path, p in report.rows]
    return render(headers, rows, "table", numeric=[False] * len(headers))


def render_calibration(result: Any, fmt: str = "table") -> str:
    """`zoo calibrate`: what was fitted (a zoo.training.calibrate.CalibrationResult) and the test split's figures
    with it; JSON: its to_dict."""
    check_format(fmt)
    if fmt == "json":
        from zoo.rundir import json_text

        return json_text(result.to_dict())
    figures = result.figures
    replaced = ", replacing the calibration it had" if result.replaced else ""
    calibration, lines = figures["calibration"], [f"calibrated {result.checkpoint} on its validation split "
                                                  f"({result.validation_images} images){replaced}"]
    lines.append(f"temperature {calibration['temperature']:.3f}: test ECE {percent(calibration['ece_before'])} -> "
                 f"{percent(calibration['ece_after'])}")
    conformal = figures.get("conformal")
    if conformal is not None:
        lines.append(f"prediction sets at {share(conformal['target'])} coverage: {percent(conformal['coverage'])} of "
                     f"the test split covered, {conformal['mean_set_size']:.2f} classes on average")
    unfamiliar = figures.get("unfamiliar")
    if unfamiliar is not None:
        lines.append(f"unfamiliar above {unfamiliar['threshold']:.3g} ({unfamiliar['familiar_share']:.0%} of the "
                     f"validation pictures pass): {percent(unfamiliar['test_flagged'])} of the test split flagged")
    if result.metrics is not None:
        lines.append(f"updated {result.metrics} with these figures")
    return "\n".join(lines)


def _anomaly_scores(report: PredictionReport, fmt: str) -> str:
    """An autoencoder's predictions. CSV: path, score (full precision), verdict (empty without a threshold); table:
    image, score, verdict, and under it what the score is and the threshold it was judged by."""
    if fmt == "csv":
        return render(["path", "score", "verdict"], [[str(path), r.score, r.verdict] for path, r in report.rows], "csv")
    rows = [[str(path), f"{r.score:.5f}", r.verdict or "-"] for path, r in report.rows]
    table = render(["image", "score", "verdict"], rows, "table", numeric=[False, True, False])
    rule = (f"abnormal above the run's threshold {report.threshold:.5f}" if report.threshold is not None else
            "no verdict: the run chose no threshold (it had no validation split)")
    return f"{table}\n\nscore: the mean squared error of the picture's reconstruction (pixels 0 to 1); {rule}"


def render_error_maps(report: Any) -> str:
    """`zoo explain` of an autoencoder (a zoo.inference.explain.ErrorMapReport): each picture's score and verdict,
    and the PNG written (the picture, its reconstruction and each pixel's squared error)."""
    lines = []
    for row in report.rows:
        anomaly = row.anomaly
        verdict = f", {anomaly.verdict} (threshold {anomaly.threshold:.5f})" if anomaly.verdict is not None else ""
        lines += [f"{row.path}: reconstruction error {anomaly.score:.5f} (MSE){verdict}",
                  f"wrote {row.written} (the picture, its reconstruction, the squared error per pixel)"]
    return "\n".join(lines)


def render_reconstruction_export(report: ExportReport) -> str:
    """`zoo export` of an autoencoder, or of its encoder alone: the file written and how far its outputs (the
    reconstruction's pixels, or the code) are from eager PyTorch's."""
    batch = "dynamic batch" if report.batch is None else f"batch {report.batch}"
    opset = f", opset {report.opset}" if report.opset is not None else ""
    what = "the encoder alone, output the code" if report.outputs == "code" else "output the reconstruction in [0, 1]"
    verdicts = ("" if report.verdict_agreement is None else
                f", anomaly verdicts agree {round(report.verdict_agreement * report.images)}/{report.images}")
    return (f"wrote {report.path} ({report.bytes / 1e6:.1f} MB, {report.format}{opset}, {batch}; {what}); checked on "
            f"{report.images} {report.inputs}: largest |{report.outputs} difference| {report.max_abs_diff:.2e} "
            f"(tolerance {report.tolerance:.1e}){verdicts}")


# zoo lr-find

def render_lr_find(result: LrFindResult, config: Path, overrides: Sequence[str], plot: Path) -> str:
    """What the sweep did, the suggestion and the `zoo train` line that uses it (`overrides`: zoo.training.lr_find's
    lr_overrides, the user's --set flags with the suggested optimizer.lr), and where the picture is."""
    taken = len(result.lrs)
    passes = f"{result.passes} pass{'es' if result.passes != 1 else ''} of the training data"
    if result.passes == 1 and result.batches_seen < result.batches_per_pass:
        passes = f"{result.batches_seen:,} of the training data's {result.batches_per_pass:,} batches"
    lines = [f"swept lr {result.start_lr:.1e} to {result.lrs[-1] if taken else result.start_lr:.1e} in {taken} "
             f"step{'s' if taken != 1 else ''} ({passes}): {result.reason}"]
    if result.suggestion is not None:
        command = " ".join(["zoo train --config", shlex.quote(str(config)),
                            *(f"--set {shlex.quote(item)}" for item in overrides)])
        lines.append(f"suggested lr {result.suggestion:.1e} ({result.rule}); train with: {command}")
    lines.append(f"plot: {plot}")
    return "\n".join(lines)


# zoo export

def render_export(report: ExportReport) -> str:
    """The file written and its check: size, format, batch, and how far its logits are from eager PyTorch's."""
    batch = "dynamic batch" if report.batch is None else f"batch {report.batch}"
    opset = f", opset {report.opset}" if report.opset is not None else ""
    agreed = round(report.top1_agreement * report.images)
    sets = ("" if report.set_agreement is None else
            f", label sets agree {round(report.set_agreement * report.images)}/{report.images}")
    return (f"wrote {report.path} ({report.bytes / 1e6:.1f} MB, {report.format}{opset}, {batch}); checked on "
            f"{report.images} {report.inputs}: largest |logit difference| {report.max_abs_diff:.2e} (tolerance "
            f"{report.tolerance:.1e}), top-1 agreement {agreed}/{report.images}{sets}")


def render_quantized_export(report: QuantizeReport) -> str:
    """The int8 file written, how it was made, and the float file's and its figures side by side: size, latency at
    each batch size, test top-1 (ONNX Runtime on the CPU), with the float file's check against eager PyTorch."""
    files = (report.float32, report.int8)
    rows = [["size", *(format_bytes(figures.bytes) for figures in files), f"{files[1].bytes / files[0].bytes:.2f}x"]]
    rows += [[f"latency, batch {size}", *(f"{figures.latency_ms[size]:.2f} ms" for figures in files),
              f"{files[1].latency_ms[size] / files[0].latency_ms[size]:.2f}x"] for size in files[0].latency_ms]
    rows.append(["test top-1", *(percent(figures.accuracy) for figures in files),
                 f"{-report.drop or 0.0:+.2f} points (--max-drop {report.max_drop:g})"])
    check = report.check
    return "\n".join([
        f"wrote {report.path} ({report.quantization}: ONNX Runtime's static quantization, QDQ, per-channel weights; "
        f"calibrated on {report.calibration_images} training images of {report.data})",
        render(["", "float", report.quantization, f"{report.quantization} / float"], rows,
               numeric=[False, True, True, False]),
        f"test split of {report.data}: {report.test_images} images, top-1 agreement "
        f"{round(report.agreement * report.test_images)}/{report.test_images}; ONNX Runtime on the CPU, latency the "
        "median of a few runs",
        f"the float file (not kept) checked against PyTorch on {check.images} {check.inputs}: largest |logit "
        f"difference| {check.max_abs_diff:.2e} (tolerance {check.tolerance:.1e})"])


# zoo explain

def render_explain(report: ExplainReport) -> str:
    """Per picture its top-k (a multi-label model's: its labels first) and the overlays written; then the other PNGs."""
    lines = []
    for number, row in enumerate(report.rows):
        if number == 0 or row.path != report.rows[number - 1].path:  # a set's several maps: the picture once
            top = ", ".join(f"{name} {p:.1%}" for name, p in zip(row.prediction.classes, row.prediction.probabilities))
            labels = f"labels {', '.join(row.prediction.labels) or 'none'}; top: " if report.label_sets else ""
            strange = " (unfamiliar: unlike the training data)" if row.prediction.unfamiliar else ""
            lines.append(f"{row.path}: {labels}{top}{strange}")
        where = f" at {report.layer}" if report.method == "gradcam" else ""
        lines.append(f"wrote {row.written} ({report.method}{where} of {row.target_class}, {row.probability:.1%}"
                     f"{': an empty map, the picture alone' if row.empty else ''})")
    if report.filters is not None:
        lines.append(f"wrote {report.filters}")
    lines += [f"wrote {path}" for path in report.feature_maps]
    return "\n".join(lines)
