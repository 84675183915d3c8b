"""Text reports the CLI prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.tables import render

if TYPE_CHECKING:
    from zoo.evaluation import EvaluationReport


def _pct(value: float) -> str:
    return f"{value:.2%}"


def evaluation_table(report: EvaluationReport) -> str:
    m = report.metrics
    lines = [
        f"{report.checkpoint} on the {report.split} split: {m.count:,} images",
        f"loss {m.loss:.4f}  top-1 {_pct(m.accuracy)}  top-5 {_pct(m.top5_accuracy)}",
        "",
    ]
    precision, recall, f1, support = m.per_class()
    rows = [[name, _pct(p), _pct(r), f"{f:.4f}", s]
            for name, p, r, f, s in zip(report.classes, precision.tolist(), recall.tolist(), f1.tolist(), support.tolist())]
    macro = m.macro()
    rows.append(["macro average", _pct(macro["precision"]), _pct(macro["recall"]), f"{macro['f1']:.4f}", m.count])
    lines.append(render(["class", "precision", "recall", "f1", "support"], rows, numeric=[False, True, True, True, True]))
    if len(report.classes) <= 30:
        lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
        lines.append(render(["true \\\\ pred", *report.classes],
                            [[name, *row] for name, row in zip(report.classes, m.confusion.tolist())],
                            numeric=[False] + [True] * len(report.classes)))
    lines += ["", f"saved: {report.confusion_csv}", f"       {report.confusion_png}"]
    return "\n".join(lines)
