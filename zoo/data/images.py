"""Image files that PIL cannot read: found cheaply when an ImageFolder is scanned, refused in one line when read.

The scan opens every file with PIL: the header for every format, every chunk's CRC for PNG (`verify`), and
for a JPEG whose last two bytes are not its end marker, a decode at 1/8 scale, since `verify` does not read
JPEG data and a truncated JPEG loses its end marker first. No other pixels are decoded, so it stays fast:
about 0.1 ms a file here (a 640x480 PNG, whose every byte the CRCs cover: 0.8 ms).
A file that passes and still fails to decode (damaged JPEG data) stops the run with one line naming it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from zoo.errors import ZooError

JPEG_END = b"\xff\xd9"  # the EOI marker
SHOWN = 3  # unreadable files named in the warning


def _reason(error: Exception, path: str) -> str:
    """PIL's message, its first line, without the path (the warning names the file itself)."""
    text = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return text.replace(repr(path), "").replace(path, "").strip().rstrip(":") or type(error).__name__


def _ends_with_jpeg_end(path: str) -> bool:
    with open(path, "rb") as file:
        file.seek(-2, 2)
        return file.read(2) == JPEG_END


def unreadable(path: str) -> str | None:
    """Why PIL cannot read the image at `path`, or None when it can (see the module docstring)."""
    try:
        with Image.open(path) as image:
            if image.format == "JPEG" and not _ends_with_jpeg_end(path):
                image.draft(image.mode, (1, 1))  # the smallest scale libjpeg decodes to: the whole stream, cheaply
                image.load()
            else:
                image.verify()
    except Exception as error:  # PIL reports damage as OSError, SyntaxError, struct.error, ValueError, EOFError ...
        return _reason(error, path)
    return None


class ImageCheck:
    """ImageFolder's `is_valid_file`: an image extension, and readable; the unreadable are kept as (path, why)."""

    def __init__(self) -> None:
        from torchvision.datasets.folder import IMG_EXTENSIONS  # torchvision: imported when needed, as in sets.py

        self.extensions = IMG_EXTENSIONS
        self.unreadable: list[tuple[Path, str]] = []

    def __call__(self, path: str) -> bool:
        if not path.lower().endswith(self.extensions):
            return False
        reason = unreadable(path)
        if reason is not None:
            self.unreadable.append((Path(path), reason))
        return reason is None


def open_rgb(path: str) -> Image.Image:
    """ImageFolder's loader (torchvision's, as RGB), with a file that fails to decode as one line, not a traceback.
    Raised in a DataLoader worker, torch re-raises it in the main process around the worker's traceback;
    ZooError's str keeps the one line."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except MemoryError:
        raise
    except Exception as error:
        raise ZooError(f"imagefolder: {path} cannot be decoded ({_reason(error, path)}); remove or replace it") from None


def warn_skipped(root: Path, skipped: list[tuple[Path, str]]) -> None:
    """One line on stderr (rank 0 only under torchrun) naming how many were skipped and the first few."""
    from zoo.distributed import place  # torch: imported when needed, as torchvision is here

    if not skipped or place()[0] != 0:
        return
    named = "; ".join(f"{_relative(path, root)}: {why}" for path, why in skipped[:SHOWN])
    more = f"; and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
    images = "image" if len(skipped) == 1 else "images"
    print(f"warning: skipped {len(skipped)} unreadable {images} in {root} ({named}{more}); remove or replace them",
          file=sys.stderr, flush=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
