"""Every picture zoo draws that is not a tile grid (those are zoo.present.grids'), and the one way each becomes PNG.

    png(picture)                               a PIL image as PNG bytes (compress_level=1 for TensorBoard's speed)
    figure_png(figure)                         a matplotlib Figure as PNG bytes; new_figure() makes one, no pyplot
    picture_font(texts, size)                  the font every picture's text is drawn in, and the texts as drawn
    drawable(text)                             text on one line: control characters written as escapes (a\\nb)
    confusion_image(confusion, classes)        TensorBoard shows it each validation, `zoo evaluate` saves it
    roc_figure, pr_figure, reliability_figure  zoo.metrics.trust's figures, as PNG bytes
    wrong_gallery(trust, pictures)             the most confidently wrong images in a grid
    input_picture(image, mean, std)            a network input (C x H x W, normalized) as the picture it was
    training_curves(history)                   loss, top-1 and the learning rate per epoch (history.csv's rows)
    error_histogram(normal, abnormal, t)       the reconstruction errors of normal and abnormal pictures, and t
    lr_find_image(result)                      the learning-rate range test's losses against the rate

Pictures of many small marks (the confusion matrix, the gallery, the lr-find curve) are drawn with Pillow in
milliseconds: matplotlib took 0.8 s a confusion matrix, half of a small training run. Curves with legends and
axes (ROC, precision-recall, reliability, training curves) are matplotlib's, through its Agg canvas without
pyplot's global state, imported inside the functions that draw them: `zoo evaluate` pays its import (0.5 s)
once, and training never does.

Every name a picture holds (a class, a folder, a file) goes through picture_font, which makes it drawable first: a
class folder named "a\\nb" (a newline in it) is drawn as a\\nb on one line, where Pillow would refuse its anchors
and matplotlib break its legend. Text is drawn in the first font that has a glyph for every character of the
picture: Pillow's own (Aileron, ASCII), then the well-known font files below, found once per process under the usual
font folders of Linux, macOS and Windows; matplotlib is given the same file, so "café" draws in DejaVu in both.
Characters that no font has are written legibly in ASCII instead of as missing-glyph boxes: by their Unicode
decomposition without accents (café -> cafe), else as their code point (猫 -> U+732B). Pillow cannot ask a font
whether it has a glyph, so a character counts as missing when it draws exactly as the font's .notdef glyph (the one
it draws for U+10FFFF). Choosing costs 1 ms the first time for ASCII names, 10 ms for names that need DejaVu (café,
Ωmega, 猫), and 0.1 ms for every later picture of the same names (drawing the picture itself: 8 ms for 10 classes).

The pictures take numbers, tensors and zoo.metrics' records: this module sits below the run, which draws with it.
"""

from __future__ import annotations

import functools
import io
import math
import os
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from zoo.metrics.trust import Trust

_WHITE, _BLUE = np.array([247, 251, 255]), np.array([8, 48, 107])  # the ends of matplotlib's "Blues"
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont  # ImageFont: Pillow without FreeType (printable ASCII only)
SIZE, DPI = (6.4, 4.8), 100  # a matplotlib figure's inches and dots per inch: 640 x 480 pixels


# ---- PNG ----------------------------------------------------------------------------------------------

def png(picture: Image.Image, compress_level: int = 6) -> bytes:
    """`picture` as PNG bytes. Pillow's default level, 6; TensorBoard's images take 1, four times faster to write
    (4 ms against 17 ms for a 10-class confusion matrix through add_image's conversions)."""
    buffer = io.BytesIO()
    picture.save(buffer, format="png", compress_level=compress_level)
    return buffer.getvalue()


def new_figure(size: tuple[float, float] = SIZE) -> Any:
    """A matplotlib Figure of `size` inches at DPI, its layout constrained; no pyplot: no global state, no GUI
    backend to choose."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def figure_png(figure: Any) -> bytes:
    """A matplotlib Figure as PNG bytes, drawn by the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


# ---- text in pictures ---------------------------------------------------------------------------------

FONT_DIRS = (  # searched (with sub-folders) once per process, in this order
    "/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",  # Linux
    "/System/Library/Fonts", "/Library/Fonts", "~/Library/Fonts",  # macOS
    "%WINDIR%/Fonts", "%LOCALAPPDATA%/Microsoft/Windows/Fonts",  # Windows
)
FONT_FILES = (  # preferred first: Latin, Greek and Cyrillic; then fonts that also have CJK ideographs
    "DejaVuSans.ttf", "NotoSans-Regular.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "segoeui.ttf",
    "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "SourceHanSans-Regular.otf", "Arial Unicode.ttf",
    "arialuni.ttf", "PingFang.ttc", "Hiragino Sans GB.ttc", "msyh.ttc", "YuGothM.ttc", "malgun.ttf",
    "wqy-microhei.ttc", "DroidSansFallbackFull.ttf",
)
MISSING = "\U0010ffff"  # a noncharacter: every font draws its .notdef glyph for it
PROBE_SIZE = 16  # pixels: glyph masks are compared at this size, whatever size the picture uses
BLANK = ("Zs", "Zl", "Zp", "Cc", "Cf")  # Unicode categories with nothing to draw: spaces, controls, format
BREAKING = ("Cc", "Zl", "Zp")  # controls (newline, tab, escape), line and paragraph separators: escaped to draw
LABEL_CHARS = 24  # a drawn label's longest text; the CSV has the full names


@functools.cache
def font_files(dirs: tuple[str, ...]) -> tuple[str, ...]:
    """Paths of the FONT_FILES found under `dirs` (names compared without case), in FONT_FILES' order."""
    wanted = {name.lower(): rank for rank, name in enumerate(FONT_FILES)}
    found: dict[int, str] = {}
    for folder in dirs:
        folder = os.path.expandvars(os.path.expanduser(folder))
        if not os.path.isabs(folder):  # a variable not set here (%WINDIR% outside Windows)
            continue
        for parent, _, names in os.walk(folder):  # a folder that is not there yields nothing
            for name in names:
                rank = wanted.get(name.lower())
                if rank is not None:
                    found.setdefault(rank, os.path.join(parent, name))
    return tuple(found[rank] for rank in sorted(found))


@functools.cache
def _font(path: str | None, size: int) -> Font | None:
    """Pillow's own font (path None) or the font file at `size` pixels; None when the file does not load."""
    if path is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(path, size)
    except OSError:  # damaged, or a format this FreeType does not read (Pillow first tries the name elsewhere)
        return None


def _mask(font: ImageFont.FreeTypeFont, text: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(text)
    return mask.size, bytes(mask)


@functools.cache
def has_glyph(path: str | None, char: str) -> bool:
    """Whether the font (see _font) draws `char` as something other than its .notdef glyph. Spaces, controls
    and format characters (zero-width joiners...) count as drawn: they have nothing to show."""
    if unicodedata.category(char) in BLANK:
        return True
    font = _font(path, PROBE_SIZE)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow's bitmap font, or one that did not load
        return font is not None and " " <= char <= "~"
    return _mask(font, char) != _mask(font, MISSING)


def _ascii(char: str, has: Callable[[str], bool]) -> str:
    """`char`, which the font lacks, in characters it has: its decomposition without combining marks (é -> e,
    ﬁ -> fi, Ａ -> A), nothing for a lone combining mark, else its code point (U+732B)."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and base != char and all(has(c) for c in base):
        return base
    return "" if unicodedata.combining(char) else f"U+{ord(char):04X}"


def _legible(text: str, has: Callable[[str], bool]) -> str:
    """`text` with each character the font lacks in ASCII; code points set off by spaces (dog猫1 -> dog U+732B 1)."""
    out, spaced = "", False
    for char in text:
        shown = char if has(char) else _ascii(char, has)
        code = shown.startswith("U+")
        if out and (code or spaced) and not out.endswith(" ") and not shown.startswith(" "):
            shown = " " + shown
        out, spaced = out + shown, code
    return out


def drawable(text: str) -> str:
    """`text` as one line that every font draws: each control character, line or paragraph separator (BREAKING)
    written as Python writes it in a string literal (newline: \\n, escape: \\x1b, U+2028: \\u2028); the rest
    as it is."""
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in BREAKING else char for char in text)


def picture_font(texts: Sequence[str], size: int) -> tuple[Font, tuple[str, ...]]:
    """The font to draw `texts` in at `size` pixels, and the texts as drawn: drawable() (one line each), in
    Unicode's composed form (NFC), each character the font lacks written in ASCII (see the module docstring).
    The font is the first of Pillow's own and font_files(FONT_DIRS) that has every character; when none has,
    the one with most."""
    return _choose(tuple(texts), size, FONT_DIRS)


@functools.lru_cache(maxsize=64)
def _choose(texts: tuple[str, ...], size: int, dirs: tuple[str, ...]) -> tuple[Font, tuple[str, ...]]:
    texts = tuple(drawable(unicodedata.normalize("NFC", text)) for text in texts)
    chars = set("".join(texts))
    best, best_count = None, -1
    for path in (None, *font_files(dirs)):
        if _font(path, size) is None:
            continue
        count = sum(has_glyph(path, char) for char in chars)
        if count > best_count:
            best, best_count = path, count
        if count == len(chars):
            break
    has = functools.partial(has_glyph, best)
    return _font(best, size), tuple(_legible(text, has) for text in texts)


LABEL_CHARACTERS = 16


def shorten(name: str, limit: int = LABEL_CHARACTERS) -> str:
    """A class name in at most `limit` characters, its start and its end kept: golden_retriever_dog and
    golden_retriever_puppy stay apart (golden_..ever_dog, golden_..er_puppy), which cutting the end would not keep.
    ASCII dots: every font has them."""
    if len(name) <= limit:
        return name
    head = (limit - 2) // 2
    return f"{name[:head]}..{name[-(limit - 2 - head):]}"


ROWS_CAPTION, COLUMNS_CAPTION = "rows: true", "columns: predicted"


def confusion_margins(font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
                      labels: Sequence[str]) -> tuple[int, int, int]:
    """(the labels' width, the matrix's left and top edges) in pixels. The row caption sits left of the column
    labels, above the row labels: the left margin holds the wider of the row labels and the caption, so that
    the caption never runs into the first column's label (short names, such as digits, are narrower than it)."""
    label_width = max((int(font.getlength(text)) for text in labels), default=0) + 8
    left = max(label_width + 24, int(font.getlength(ROWS_CAPTION)) + 4 + 8)
    return label_width, left, 40 + label_width


def confusion_image(confusion: Tensor, classes: Sequence[str], title: str = "confusion matrix") -> Image.Image:
    """Rows are true classes, columns predictions; cells show counts, shade the share of the true class."""
    counts = confusion.cpu().long().numpy()
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    cell = 40 if n <= 20 else max(6, 800 // n)  # beyond 20 classes: shades only, the CSV has the counts
    names = [shorten(str(c)) for c in classes] if n <= 40 else [""] * n
    font, (title, *labels) = picture_font((title, *names), max(8, min(14, cell // 3)))
    labels = [text[:LABEL_CHARS] for text in labels]
    label_width, left, top = confusion_margins(font, labels)
    heading = max(font.getlength(title), font.getlength(COLUMNS_CAPTION))  # the picture is at least as wide
    image = Image.new("RGB", (left + max(n * cell + 12, int(heading) + 8), top + n * cell + 12), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), title, fill="black", font=font)
    draw.text((left, 24), COLUMNS_CAPTION, fill="black", font=font)
    draw.text((4, top - 16), ROWS_CAPTION, fill="black", font=font)
    for index, text in enumerate(labels):
        draw.text((left - 6, top + index * cell + cell // 2), text, fill="black", font=font, anchor="rm")
        column = Image.new("RGBA", (label_width, cell), (255, 255, 255, 0))
        ImageDraw.Draw(column).text((4, cell // 2), text, fill="black", font=font, anchor="lm")
        image.paste(column.rotate(90, expand=True), (left + index * cell, top - label_width - 4),
                    column.rotate(90, expand=True))
    for row in range(n):
        for col in range(n):
            colour = tuple(int(v) for v in _WHITE + (_BLUE - _WHITE) * rates[row, col])
            box = (left + col * cell, top + row * cell, left + (col + 1) * cell - 1, top + (row + 1) * cell - 1)
            draw.rectangle(box, fill=colour)
            if n <= 20:
                text_colour = "white" if rates[row, col] > 0.5 else "black"
                draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), str(counts[row, col]), fill=text_colour,
                          font=font, anchor="mm")
    return image


# ---- trust figures and the gallery (zoo.metrics.trust) ---------------------------------------------

MAX_CURVES = 10  # classes drawn one by one; beyond, the macro curve with the EXTREMES worst and best
EXTREMES = 3
GRID = np.linspace(0.0, 1.0, 201)  # where the macro curves are averaged
THUMB = 128  # pixels: the gallery's largest image side
COLUMNS = 4
COUNT_POINTS = 10  # the reliability diagram's bin counts, as its tick labels: digits 9 pixels high (6 points: 5)
FILE_CHARS = 24  # a gallery caption's file name, shortened (the report's table has the whole path)


def _fonts(texts: Sequence[str]) -> tuple[Any, list[str]]:
    """matplotlib's FontProperties for the font picture_font chooses for `texts` (None: matplotlib's default,
    DejaVu Sans, where picture_font picks Pillow's own ASCII font), and the texts as drawn: each $ escaped, so
    that a class named $x^$ is not taken for mathtext (which fails to draw on an unknown symbol)."""
    from matplotlib.font_manager import FontProperties

    font, shown = picture_font(texts, 12)
    path = getattr(font, "path", None)  # Pillow's own font has a buffer there, not a file
    return (FontProperties(fname=path) if isinstance(path, str) else None), [text.replace("$", r"\$") for text in shown]


def _axes(title: Sequence[str], texts: Sequence[str]) -> tuple[Any, Any, Any, list[str]]:
    """A figure and its axes (square, 0-1 on both), titled with the lines of `title`; the font for them and
    `texts`, and those texts as drawn."""
    font, shown = _fonts([*title, *texts])
    figure = new_figure()
    axes = figure.add_subplot()
    axes.set_title("\n".join(shown[:len(title)]), fontproperties=font, fontsize=10)
    shown = shown[len(title):]
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
               else f"{kind}: undefined, no class has "
                    f"{'both positives and negatives' if kind == 'ROC' else 'positives'}")
    figure, axes, font, names = _axes([title, heading] if title else [heading], short)
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
    return figure_png(figure)


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
    figure, axes, font, _ = _axes([title, heading] if title else [heading], [])
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
        axes.text(centre, min(max(b.accuracy, b.confidence) + 0.01, 0.96), f"{b.count:,}", ha="center",
                  fontsize=COUNT_POINTS)
    axes.set_xlabel("confidence (top-1 probability)")
    axes.set_ylabel("accuracy")
    axes.legend(loc="upper left", prop=_small(font))
    return figure_png(figure)


def input_picture(image: Tensor, mean: Sequence[float], std: Sequence[float]) -> Image.Image:
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
    `pictures[i]` with the caption "true -> predicted", the predicted probability and the image's file name
    (where the data has files; else its position in the split, #12). Raises ValueError when the pictures do not
    match the wrong predictions, or there are none."""
    if not trust.wrong or len(pictures) != len(trust.wrong):
        raise ValueError(f"{len(pictures)} pictures for {len(trust.wrong)} wrong predictions")
    heading = f"the {len(trust.wrong)} most confidently wrong of {trust.wrong_count:,} wrong ({trust.count:,} images)"
    captions = [f"{shorten(trust.classes[w.true], 10)} -> {shorten(trust.classes[w.predicted], 10)}"
                for w in trust.wrong]
    files = all(w.path is not None for w in trust.wrong)
    probabilities = [f"{w.probability:.1%} sure" + ("" if files else f", #{w.index}") for w in trust.wrong]
    names = [shorten(os.path.basename(w.path), FILE_CHARS) for w in trust.wrong] if files else []
    font, (title, heading, *texts) = picture_font([title, heading, *captions, *probabilities, *names], 12)
    count = len(captions)
    captions, probabilities, names = texts[:count], texts[count:2 * count], texts[2 * count:]
    cell_width = max(THUMB, *(int(font.getlength(text)) for text in (*captions, *names))) + 12
    cell_height = THUMB + (56 if files else 40)
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
        if files:
            draw.text((x + cell_width // 2, y + THUMB + 36), names[i], fill="#57606a", font=font, anchor="mt")
    return sheet


# ---- curves ------------------------------------------------------------------------------------------

def number(text: str | float | None) -> float | None:
    """A history.csv field as a number; None for an empty field (no validation split, no EMA)."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def training_curves(history: Sequence[dict[str, str]]) -> bytes:
    """Loss, top-1 accuracy (an autoencoder's: PSNR) and learning rate against the epoch, as three panels of one
    PNG."""
    epochs = [number(row.get("epoch")) for row in history]
    rates = [key for key in (history[0] if history else {}) if key.startswith("lr")]
    psnr = bool(history) and "train_psnr" in history[0]  # an autoencoder's history: PSNR in dB
    fig = new_figure((12, 3.4))
    loss, accuracy, lr = fig.subplots(1, 3)
    for axes, kind, label in ((loss, "loss", "loss"),
                              (accuracy, *(("psnr", "PSNR (dB)") if psnr else ("accuracy", "top-1 accuracy")))):
        for split, style in (("train", "-"), ("val", "--"), ("ema_val", ":")):
            values = [number(row.get(f"{split}_{kind}")) for row in history]
            if any(value is not None for value in values):
                axes.plot(epochs, values, style, marker=".", label=split.replace("_", " "))
        axes.set(xlabel="epoch", title=label)
        axes.grid(alpha=0.3)
        axes.legend()
    from matplotlib.ticker import MaxNLocator

    for axes in (loss, accuracy, lr):  # epochs, not 1.5 of them
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for key in rates:
        lr.plot(epochs, [number(row.get(key)) for row in history], marker=".", label=key.replace("_", "/"))
    lr.set(xlabel="epoch", title="learning rate (at the epoch's end)")
    lr.grid(alpha=0.3)
    if len(rates) > 1:
        lr.legend()
    return figure_png(fig)


def overlaid_curves(series: Sequence[tuple[str, int, Sequence[dict[str, str]]]]) -> bytes:
    """Several runs' history.csv on one PNG: validation top-1 and training loss against the epoch, one line per
    run, coloured by its group. `series`: (the run's label, its group's number, its history rows)."""
    fig = new_figure((12, 3.8))
    accuracy, loss = fig.subplots(1, 2)
    colours = [f"C{index % 10}" for index in range(10)]  # matplotlib's default cycle, one colour a group
    shown: set[int] = set()
    for label, group, history in series:
        epochs = [number(row.get("epoch")) for row in history]
        for axes, column in ((accuracy, "val_accuracy"), (loss, "train_loss")):
            values = [number(row.get(column)) for row in history]
            if any(value is not None for value in values):
                axes.plot(epochs, values, color=colours[group % 10], marker=".", alpha=0.8,
                          label=label if group not in shown and axes is accuracy else None)
        shown.add(group)
    from matplotlib.ticker import MaxNLocator

    for axes, title in ((accuracy, "validation top-1"), (loss, "training loss")):
        axes.set(xlabel="epoch", title=title)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    if shown:
        accuracy.legend(fontsize="small")
    return figure_png(fig)


WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 440, 70, 20, 40, 50  # pixels
GREY, BLUE, ORANGE, RED = (190, 190, 190), (8, 48, 107), (230, 120, 20), (200, 30, 30)


class LrCurves(Protocol):
    """What lr_find_image draws: zoo.training.lr_find.LrFindResult, by its fields."""

    lrs: list[float]  # optimizer.lr of each step
    losses: list[float]  # each step's loss
    smoothed: list[float]  # their moving average
    centered: list[float]  # their centered average
    suggestion: float | None
    suggestion_index: int | None  # the step the suggestion was taken at
    start_lr: float
    end_lr: float

    @property
    def curve_labels(self) -> tuple[str, str, str]:
        """The legend of the losses, the moving average and the centered average."""


def _loss_range(result: LrCurves) -> tuple[float, float]:
    """The loss axis of lr_find_image: from the lowest loss to the curves' highest before their lowest point, and
    a quarter more."""
    curves = [values for values in (result.smoothed, result.centered) if values]
    if curves:
        bottom = min(min(values) for values in (*curves, result.losses))
        top = max(max(values[:int(np.argmin(values)) + 1]) for values in curves)
    else:
        bottom, top = 0.0, 1.0
    return bottom, (top + (top - bottom) / 4 if top > bottom else bottom + 1.0)


def lr_find_image(result: LrCurves, title: str = "learning-rate range test") -> Image.Image:
    """The losses of a learning-rate range test against the rate on a log axis: each step's faint, the moving
    average and the centered average, the suggestion marked (zoo.training.lr_find.write_plot saves it). The loss
    axis spans the curves up to their lowest point and a quarter more: the divergence at the end leaves it at the
    top instead of flattening the rest."""
    marked = f"suggested lr {result.suggestion:.1e}" if result.suggestion is not None else "no suggestion"
    legend = result.curve_labels
    font, (title, marked, *legend) = picture_font((title, marked, *legend), 13)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((LEFT, 12), title, fill="black", font=font)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    decades = range(math.floor(math.log10(result.start_lr)), math.ceil(math.log10(result.end_lr)) + 1)
    bottom, top = _loss_range(result)

    def point(lr: float, loss: float) -> tuple[float, float]:
        x = x0 + (math.log10(lr) - decades[0]) / max(decades[-1] - decades[0], 1) * (x1 - x0)
        y = y1 - (min(max(loss, bottom), top) - bottom) / (top - bottom) * (y1 - y0)
        return x, y

    for decade in decades:  # the lr axis: a tick per power of ten
        x = point(10.0 ** decade, bottom)[0]
        draw.line((x, y1, x, y1 + 5), fill="black")
        draw.text((x, y1 + 8), f"1e{decade}", fill="black", font=font, anchor="mt")
    for k in range(5):  # the loss axis
        value = bottom + (top - bottom) * k / 4
        y = point(result.start_lr, value)[1]
        draw.line((x0 - 5, y, x0, y), fill="black")
        draw.text((x0 - 8, y), f"{value:.3g}", fill="black", font=font, anchor="rm")
    draw.text(((x0 + x1) / 2, HEIGHT - 14), "learning rate (optimizer.lr, log scale)", fill="black", font=font,
              anchor="mm")
    draw.text((8, TOP - 18), "loss", fill="black", font=font)
    for values, colour, width in ((result.losses, GREY, 1), (result.smoothed, BLUE, 2), (result.centered, ORANGE, 2)):
        if len(values) > 1:
            draw.line([point(lr, loss) for lr, loss in zip(result.lrs, values)], fill=colour, width=width)
    if result.suggestion_index is not None:
        x, y = point(result.lrs[result.suggestion_index], result.centered[result.suggestion_index])
        draw.line((x, y0, x, y1), fill=RED, width=1)
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), outline=RED, width=2)
    for row, (text, colour) in enumerate(zip((*legend, marked), (GREY, BLUE, ORANGE, RED))):
        y = y1 - 12 - (3 - row) * 18  # bottom left: the curves start high and fall at the right
        draw.line((x0 + 10, y, x0 + 30, y), fill=colour, width=2)
        draw.text((x0 + 36, y), text, fill="black" if colour != RED else RED, font=font, anchor="lm")
    draw.rectangle((x0, y0, x1, y1), outline="black")
    return image


# ---- autoencoders ---------------------------------------------------------------------------------------

def error_histogram(normal: np.ndarray, abnormal: np.ndarray, threshold: float | None, title: str = "") -> bytes:
    """PNG bytes of the reconstruction errors (per-picture MSE) of normal and abnormal pictures as two histograms on
    shared bins, with the anomaly threshold as a vertical line where there is one."""
    font, shown = _fonts([title, "normal", "abnormal"])
    figure = new_figure()
    axes = figure.add_subplot()
    values = np.concatenate([normal, abnormal])
    bins = np.linspace(float(values.min()), float(np.quantile(values, 0.995)), 41)
    axes.hist(np.clip(normal, bins[0], bins[-1]), bins, alpha=0.6, label=f"{shown[1]} ({len(normal):,})")
    axes.hist(np.clip(abnormal, bins[0], bins[-1]), bins, alpha=0.6, label=f"{shown[2]} ({len(abnormal):,})")
    if threshold is not None:
        axes.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.4g}")
    above = int((values > bins[-1]).sum())  # the far tail, drawn in the last bin so that the bulk stays readable
    axes.set_xlabel("reconstruction error (MSE per pixel)" + (f"; the last bin holds {above} above {bins[-1]:.3g}"
                                                              if above else ""))
    axes.set_ylabel("pictures")
    axes.set_title(shown[0], fontproperties=font, fontsize=10)
    axes.legend(prop=_small(font))
    return figure_png(figure)
