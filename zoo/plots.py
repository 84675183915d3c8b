"""The confusion-matrix picture: TensorBoard shows it each validation, `zoo evaluate` saves it as PNG.

Drawn with Pillow (already here through torchvision) in milliseconds; matplotlib took 0.8 s a figure,
half of a small training run.

Text is drawn in the first font that has a glyph for every character of the picture: Pillow's own (Aileron,
ASCII), then the well-known font files below, found once per process under the usual font folders of Linux,
macOS and Windows. Characters that no font has are written legibly in ASCII instead of as missing-glyph boxes:
by their Unicode decomposition without accents (café -> cafe), else as their code point (猫 -> U+732B).
Pillow cannot ask a font whether it has a glyph, so a character counts as missing when it draws exactly as
the font's .notdef glyph (the one it draws for U+10FFFF). Choosing costs 1 ms the first time for ASCII names,
10 ms for names that need DejaVu (café, Ωmega, 猫), and 0.1 ms for every later picture of the same names
(drawing the picture itself: 8 ms for 10 classes).
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

_WHITE, _BLUE = np.array([247, 251, 255]), np.array([8, 48, 107])  # the ends of matplotlib's "Blues"
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont  # ImageFont: Pillow without FreeType (printable ASCII only)

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


def picture_font(texts: Sequence[str], size: int) -> tuple[Font, tuple[str, ...]]:
    """The font to draw `texts` in at `size` pixels, and the texts as drawn: in Unicode's composed form (NFC),
    each character the font lacks written in ASCII (see the module docstring). The font is the first of
    Pillow's own and font_files(FONT_DIRS) that has every character; when none has, the one with most."""
    return _choose(tuple(texts), size, FONT_DIRS)


@functools.lru_cache(maxsize=64)
def _choose(texts: tuple[str, ...], size: int, dirs: tuple[str, ...]) -> tuple[Font, tuple[str, ...]]:
    texts = tuple(unicodedata.normalize("NFC", text) for text in texts)
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


def confusion_margins(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, labels: Sequence[str]) -> tuple[int, int, int]:
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
        image.paste(column.rotate(90, expand=True), (left + index * cell, top - label_width - 4), column.rotate(90, expand=True))
    for row in range(n):
        for col in range(n):
            colour = tuple(int(v) for v in _WHITE + (_BLUE - _WHITE) * rates[row, col])
            box = (left + col * cell, top + row * cell, left + (col + 1) * cell - 1, top + (row + 1) * cell - 1)
            draw.rectangle(box, fill=colour)
            if n <= 20:
                text_colour = "white" if rates[row, col] > 0.5 else "black"
                draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), str(counts[row, col]), fill=text_colour, font=font, anchor="mm")
    return image
