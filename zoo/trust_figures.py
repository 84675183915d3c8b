"""The pictures of zoo.trust's figures, as PNG bytes or PIL images, for `zoo evaluate` (beside the checkpoint)
and for any report that embeds them:

    roc_figure(trust, title) -> bytes          ROC curves, one class against the rest, with the macro mean
    pr_figure(trust, title) -> bytes           precision-recall curves, likewise
    reliability_figure(trust, title) -> bytes  accuracy per confidence bin against the diagonal; ECE in the title
    wrong_gallery(trust, pictures, title)      the most confidently wrong images in a grid (PIL image)
    input_picture(image, mean, std)            a network input (C x H x W, normalized) as the picture it was

Curves are drawn with matplotlib (its Agg canvas, without pyplot's global state), imported inside the
functions: `zoo evaluate` pays its import (0.5 s) once, and training never does. The gallery is Pillow's, as
zoo.plots' confusion matrix. Text goes in the font zoo.plots.picture_font chooses for it, a file matplotlib
loads too, so "café" draws in DejaVu; a character no font here has is written as zoo.plots spells it
(猫 -> U+732B) instead of a missing-glyph box.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from zoo.plots import picture_font, shorten
from zoo.trust import Trust

if TYPE_CHECKING:
    import torch

MAX_CURVES = 10  # classes drawn one by one; beyond, the macro curve with the EXTREMES worst and best
EXTREMES = 3
GRID = np.linspace(0.0, 1.0, 201)  # where the macro curves are averaged
SIZE, DPI = (6.4, 4.8), 100  # inches and dots per inch: 640 x 480 pixels
THUMB = 128  # pixels: the gallery's largest image side
COLUMNS = 4


def _fonts(texts: Sequence[str]) -> tuple[Any, list[str]]:
    """matplotlib's FontProperties for the font zoo.plots chooses for `texts` (None: matplotlib's default,
    DejaVu Sans, where zoo.plots picks Pillow's own ASCII font), and the texts as drawn."""
    from matplotlib.font_manager import FontProperties

    font, shown = picture_font(texts, 12)
    path = getattr(font, "path", None)  # Pillow's own font has a buffer there, not a file
    return (FontProperties(fname=path) if isinstance(path, str) else None), list(shown)


def _axes(title: str, texts: Sequence[str]) -> tuple[Any, Any, Any, list[str]]:
    """A figure and its axes (square, 0-1 on both), the font for `title` and `texts` and those texts as drawn."""
    from matplotlib.figure import Figure

    font, (title, *shown) = _fonts([title, *texts])
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontproperties=font, fontsize=10)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    return figure, axes, font, shown


def _small(font: Any) -> Any:
    """The legend's font: `font` at 8 points (a legend given a font ignores its fontsize)."""
    if font is None:
        return {"size": 8}
    small = font.copy()
    small.set_size(8)
    return small


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _chosen(values: list[float | None]) -> tuple[list[int], str]:
    """The classes drawn one by one: every defined one up to MAX_CURVES, else the EXTREMES worst and best by
    `values`; and what the title says of it."""
    defined = [k for k, v in enumerate(values) if v is not None]
    if len(defined) <= MAX_CURVES:
        return defined, ""
    ranked = sorted(defined, key=lambda k: (values[k], k))
    return ranked[:EXTREMES] + ranked[-EXTREMES:], (f"; the macro curve, the {EXTREMES} worst and {EXTREMES} best "
                                                    f"of {len(defined)} classes")


def _curves(kind: str, title: str, trust: Trust, curves: list[tuple[np.ndarray, np.ndarray] | None],
            values: list[float | None], macro: float | None, labels: tuple[str, str], steps: bool) -> bytes:
    chosen, note = _chosen(values)
    short = [shorten(name) for name in trust.classes]
    heading = (f"{kind}: macro {'AUC' if kind == 'ROC' else 'AP'} {macro:.3f}{note}" if macro is not None
               else f"{kind}: undefined, no class has {'both positives and negatives' if kind == 'ROC' else 'positives'}")
    figure, axes, font, names = _axes(f"{title}\n{heading}" if title else heading, short)
    style = {"drawstyle": "steps-post"} if steps else {}
    measure = "AUC" if kind == "ROC" else "AP"
    for k in chosen:
        x, y = curves[k]
        axes.plot(x, y, linewidth=1.2, label=f"{names[k]} ({measure} {values[k]:.3f})", **style)
    drawn = [curves[k] for k in range(len(curves)) if curves[k] is not None]
    if drawn and (note or len(drawn) > 1):
        # ROC: the mean true positive rate at each false positive rate (sklearn's macro-average example); PR: the
        # mean interpolated precision at each recall.
        if kind == "ROC":
            mean = np.mean([np.interp(GRID, x, y) for x, y in drawn], axis=0)
        else:
            mean = np.mean([_precision_at(GRID, x, y) for x, y in drawn], axis=0)
        axes.plot(GRID, mean, color="black", linewidth=2.2, label=f"macro mean ({measure} {macro:.3f})")
    if kind == "ROC":
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    if axes.lines:
        axes.legend(loc="lower right" if kind == "ROC" else "lower left", prop=_small(font))
    return _png(figure)


def _precision_at(grid: np.ndarray, recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The interpolated precision at each recall of `grid`: the best precision at that recall or more (PASCAL
    VOC's, Everingham et al. 2010), from precision_recall_curve's points (recall decreasing)."""
    best = np.maximum.accumulate(precision)[::-1]  # over the points of at least each recall; recall increasing now
    index = np.searchsorted(recall[::-1], grid, side="left")
    return best[np.minimum(index, len(best) - 1)]


def roc_figure(trust: Trust, title: str = "") -> bytes:
    """ROC curves (false against true positive rate), one class against the rest: each class with its AUC up to
    MAX_CURVES, else the worst and best few; the macro mean of the curves; the diagonal of chance. PNG bytes."""
    return _curves("ROC", title, trust, trust.roc, trust.auc, trust.auc_macro,
                   ("false positive rate", "true positive rate"), steps=False)


def pr_figure(trust: Trust, title: str = "") -> bytes:
    """Precision-recall curves, one class against the rest, with each class's average precision (as roc_figure
    chooses the classes); the macro mean of the curves. PNG bytes."""
    return _curves("precision-recall", title, trust, trust.pr, trust.average_precision, trust.ap_macro,
                   ("recall", "precision"), steps=True)


def reliability_figure(trust: Trust, title: str = "") -> bytes:
    """The reliability diagram of Guo et al. 2017 (Figure 1): per confidence bin, the accuracy of its samples
    (bars) and the gap to their mean confidence (hatched), against the diagonal of perfect calibration; the
    ECE in the title and each bin's count above its bar. PNG bytes."""
    bins = trust.reliability
    heading = f"reliability: ECE {trust.ece:.2%} ({len(bins)} bins, {trust.count:,} images)"
    figure, axes, font, _ = _axes(f"{title}\n{heading}" if title else heading, [])
    width = bins[0].upper - bins[0].lower
    filled = [b for b in bins if b.count]
    centres = [(b.lower + b.upper) / 2 for b in filled]
    accuracy = [b.accuracy for b in filled]
    confidence = [b.confidence for b in filled]
    axes.bar(centres, accuracy, width=width, edgecolor="black", color="#3a6fb0", label="accuracy")
    axes.bar(centres, np.subtract(confidence, accuracy), bottom=accuracy, width=width, edgecolor="#b03a3a",
             color="#f0b0b0", alpha=0.6, hatch="//", label="gap to the mean confidence")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    for centre, b in zip(centres, filled):
        axes.text(centre, min(max(b.accuracy, b.confidence) + 0.01, 0.97), f"{b.count:,}", ha="center", fontsize=6)
    axes.set_xlabel("confidence (top-1 probability)")
    axes.set_ylabel("accuracy")
    axes.legend(loc="upper left", prop=_small(font))
    return _png(figure)


def input_picture(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> Image.Image:
    """A C x H x W network input, normalized with per-channel `mean` and `std` (after scaling to [0, 1]), as the
    8-bit picture it was: gray for 1 channel, RGB for 3 (other counts: the first channel, gray)."""
    import torch

    image = image.detach().float().cpu()
    pixels = image * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    pixels = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    if pixels.shape[0] == 3:
        return Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB")
    return Image.fromarray(pixels[0].numpy(), "L")


def _thumbnail(picture: Image.Image) -> Image.Image:
    """At most THUMB pixels a side: a small input enlarged a whole number of times, pixels kept sharp."""
    picture = picture.convert("RGB")
    side = max(picture.size)
    if side < THUMB:
        scale = THUMB // side
        return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    picture.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return picture


def wrong_gallery(trust: Trust, pictures: Sequence[Image.Image], title: str = "") -> Image.Image:
    """The wrong predictions of `trust` (its .wrong, the most confident first) in a grid of COLUMNS, each
    `pictures[i]` with the caption "true -> predicted" and the predicted probability. Raises ValueError when
    the pictures do not match the wrong predictions, or there are none."""
    if not trust.wrong or len(pictures) != len(trust.wrong):
        raise ValueError(f"{len(pictures)} pictures for {len(trust.wrong)} wrong predictions")
    heading = f"the {len(trust.wrong)} most confidently wrong of {trust.wrong_count:,} wrong ({trust.count:,} images)"
    captions = [f"{shorten(trust.classes[w.true], 10)} -> {shorten(trust.classes[w.predicted], 10)}" for w in trust.wrong]
    probabilities = [f"{w.probability:.1%} sure, #{w.index}" for w in trust.wrong]
    font, (title, heading, *texts) = picture_font([title, heading, *captions, *probabilities], 12)
    captions, probabilities = texts[:len(captions)], texts[len(captions):]
    cell_width = max(THUMB, *(int(font.getlength(text)) for text in captions)) + 12
    cell_height = THUMB + 40
    columns = min(COLUMNS, len(pictures))
    rows = -(-len(pictures) // columns)
    top = 44 if title else 26
    width = max(columns * cell_width, int(max(font.getlength(title), font.getlength(heading))) + 16)
    sheet = Image.new("RGB", (width, top + rows * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((8, 6), title, fill="black", font=font)
    draw.text((8, top - 20), heading, fill="black", font=font)
    for i, (picture, caption, probability) in enumerate(zip(pictures, captions, probabilities)):
        x, y = (i % columns) * cell_width, top + (i // columns) * cell_height
        thumb = _thumbnail(picture)
        sheet.paste(thumb, (x + (cell_width - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        draw.text((x + cell_width // 2, y + THUMB + 4), caption, fill="black", font=font, anchor="mt")
        draw.text((x + cell_width // 2, y + THUMB + 20), probability, fill="#b03a3a", font=font, anchor="mt")
    return sheet


def png_bytes(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="png")
    return out.getvalue()
