"""The confusion-matrix figure: TensorBoard shows it each validation, `zoo evaluate` saves it as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_figure(confusion: Tensor, classes: Sequence[str], title: str = "confusion matrix") -> Figure:
    """Rows are true classes, columns predictions; cells show counts, colour the row-normalized rate."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    counts = confusion.cpu().long()
    rates = counts.double() / counts.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(classes)
    side = min(2 + 0.45 * n, 24)
    figure = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the true class")
    axes.set(xlabel="predicted", ylabel="true", title=title)
    if n <= 40:  # beyond that the labels are unreadable; the CSV has them
        axes.set_xticks(range(n), labels=classes, rotation=90 if n > 10 else 0)
        axes.set_yticks(range(n), labels=classes)
    if n <= 20:
        for row in range(n):
            for col in range(n):
                axes.text(col, row, str(int(counts[row, col])), ha="center", va="center", fontsize=8,
                          color="white" if rates[row, col] > 0.5 else "black")
    return figure
