"""The confusion-matrix picture: TensorBoard shows it each validation, `zoo evaluate` saves it as PNG.

Drawn with Pillow (already here through torchvision) in milliseconds; matplotlib took 0.8 s a figure,
half of a small training run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

_WHITE, _BLUE = np.array([247, 251, 255]), np.array([8, 48, 107])  # the ends of matplotlib's "Blues"


def confusion_image(confusion: Tensor, classes: Sequence[str], title: str = "confusion matrix") -> Image.Image:
    """Rows are true classes, columns predictions; cells show counts, shade the share of the true class."""
    counts = confusion.cpu().long().numpy()
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    cell = 40 if n <= 20 else max(6, 800 // n)  # beyond 20 classes: shades only, the CSV has the counts
    font = ImageFont.load_default(size=max(8, min(14, cell // 3)))
    labels = [str(c)[:16] for c in classes] if n <= 40 else [""] * n
    label_width = max((int(font.getlength(text)) for text in labels), default=0) + 8
    left, top = label_width + 24, 40 + label_width
    image = Image.new("RGB", (left + n * cell + 12, top + n * cell + 12), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), title, fill="black", font=font)
    draw.text((left, 24), "columns: predicted", fill="black", font=font)
    draw.text((4, top - 16), "rows: true", fill="black", font=font)
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
