"""Image files as a viewer shows them (`open_image`, for training, evaluation and prediction alike), and those PIL
cannot read: found cheaply when an ImageFolder is scanned, refused in one line when read.

Reading: Pillow opens the file (a multi-frame file's first frame), turns it by its EXIF orientation tag, and
`display_rgb` converts its mode to 8-bit RGB with the values a viewer shows (the rule per mode is there).
Embedded ICC profiles are not applied (as torchvision's loader does not): a Display P3 or Adobe RGB photo is
read as if it were sRGB, slightly less saturated than a colour-managed viewer shows it.

Scanning: the scan opens every file with PIL: the header for every format, every chunk's CRC for PNG (`verify`),
and for a JPEG whose last two bytes are not its end marker, a decode at 1/8 scale, since `verify` does not read
JPEG data and a truncated JPEG loses its end marker first. No other pixels are decoded, so it stays fast:
about 0.1 ms a file here (a 640x480 PNG, whose every byte the CRCs cover: 0.8 ms).
A file that passes and still fails to decode (damaged JPEG data) stops the run with one line naming it.
"""

from __future__ import annotations

import functools
import glob
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from zoo.errors import ZooError

if TYPE_CHECKING:
    from PIL import ImageCms

JPEG_END = b"\xff\xd9"  # the EOI marker
SHOWN = 3  # unreadable files named in the warning
WHITE = (255, 255, 255)  # what transparent pixels are composited over
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")  # Pillow's 16-bit gray modes
PREMULTIPLIED = ("La", "RGBa")  # colour already multiplied by alpha (TIFF's associated alpha)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", *SIXTEEN_BIT})  # one channel of brightness (a palette: colour)
NOOPTIMIZE = 0x0100  # LittleCMS's cmsFLAGS_NOOPTIMIZE: its optimized LAB pipeline reads L* 100 as (254, 255, 254)


def _reason(error: Exception, path: str) -> str:
    """PIL's message, its first line, without the path (the warning names the file itself)."""
    text = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return text.replace(repr(path), "").replace(path, "").strip().rstrip(":") or type(error).__name__


def _ends_with_jpeg_end(path: str) -> bool:
    with open(path, "rb") as file:
        file.seek(-2, 2)
        return file.read(2) == JPEG_END


def unreadable(path: str, modes: set[str] | None = None) -> str | None:
    """Why PIL cannot read the image at `path`, or None when it can (see the module docstring); `modes` gets its
    mode as stored (from the header: no pixel decoded for it)."""
    try:
        with Image.open(path) as image:
            if modes is not None:
                modes.add(image.mode)
            if image.format == "JPEG" and not _ends_with_jpeg_end(path):
                image.draft(image.mode, (1, 1))  # the smallest scale libjpeg decodes to: the whole stream, cheaply
                image.load()
            else:
                image.verify()
    except Exception as error:  # PIL reports damage as OSError, SyntaxError, struct.error, ValueError, EOFError ...
        return _reason(error, path)
    return None


# Formats phones and cameras write that Pillow reads only through a plugin.
NO_PLUGIN = {".heic": "HEIC needs the pillow-heif plugin", ".heif": "HEIF needs the pillow-heif plugin",
             ".dng": "raw DNG needs a raw decoder (rawpy)", ".cr2": "raw CR2 needs a raw decoder (rawpy)"}

# torchvision's ImageFolder extensions, and those Pillow reads too that cameras and the web give (GIF: its first frame).
EXTRA_EXTENSIONS = (".gif", ".jfif", ".jpe")


def image_extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS  # torchvision: imported when needed, as in sets.py

    return (*IMG_EXTENSIONS, *EXTRA_EXTENSIONS)


class ImageCheck:
    """ImageFolder's `is_valid_file`: an image extension, and readable; the unreadable are kept as (path, why),
    the files of other extensions (an iPhone's .heic, notes) as `others`, for the one note that names them; the
    modes the images are stored in as `modes` (`gray`: every one of them)."""

    def __init__(self) -> None:
        self.extensions = image_extensions()
        self.unreadable: list[tuple[Path, str]] = []
        self.others: list[Path] = []
        self.modes: set[str] = set()

    @property
    def gray(self) -> bool:
        """Whether every image scanned is stored gray (8-bit, 16-bit, 32-bit or 1-bit, with or without alpha)."""
        return bool(self.modes) and self.modes <= GRAY_MODES

    def __call__(self, path: str) -> bool:
        if not path.lower().endswith(self.extensions):
            self.others.append(Path(path))
            return False
        reason = unreadable(path, self.modes)
        if reason is not None:
            self.unreadable.append((Path(path), reason))
        return reason is None


def open_image(path: str | Path) -> Image.Image:
    """The picture at `path` as a viewer shows it: 8-bit RGB, H x W as displayed (after its EXIF orientation).

    Any format Pillow opens (a multi-frame file: its first frame). The EXIF orientation tag (2-8) is applied by
    Pillow's ImageOps.exif_transpose; a damaged EXIF block Pillow cannot parse leaves the picture as stored.
    The mode becomes RGB by `display_rgb`'s rules. Raises ZooError, one line naming the file, when Pillow cannot
    decode it (torch re-raises one from a DataLoader worker around the worker's traceback; its str keeps the line).
    """
    try:
        with Image.open(path) as image:
            image.load()  # decoding errors are the file's; only the EXIF block's below are forgiven
            _upright(image)
            return display_rgb(image)
    except MemoryError:
        raise
    except Exception as error:
        hint = NO_PLUGIN.get(Path(path).suffix.lower())
        why = f"{hint}, which zoo does not install; convert it to JPEG or PNG" if hint else _reason(error, str(path))
        raise ZooError(f"{path} cannot be decoded ({why}); remove or replace it") from None


def open_rgb(path: str) -> Image.Image:
    """ImageFolder's `loader` (torchvision calls loader(path) for every sample): open_image, its error naming
    the data set."""
    try:
        return open_image(path)
    except ZooError as error:
        raise ZooError(f"imagefolder: {error}") from None


def _upright(image: Image.Image) -> None:
    """Turn `image` in place as its EXIF orientation tag says. Pillow raises SyntaxError, struct.error, ... on an
    EXIF block it cannot parse (found in PNG eXIf and WebP EXIF chunks); then the picture stays as stored,
    or as turned when only exif_transpose's rewriting of the metadata failed. (Recent Pillow turns a TIFF itself
    when it loads it, and drops its tag.) Costs 10-30 us a file here, reading the tag; 0.6 ms more when a
    640 x 480 picture is turned (its decode: 4 ms)."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # a damaged EXIF block is no reason to lose the picture
        return


def display_rgb(image: Image.Image) -> Image.Image:
    """`image` (any Pillow mode) as 8-bit RGB with the values a viewer shows, by mode:

    1, L, P, RGB, RGBX, CMYK, YCbCr, HSV  Pillow's convert("RGB"): 1 is 0 or 255; L is repeated; P looked up in
        its palette; CMYK as (255 - C)(255 - K) / 255 (no ICC profile); YCbCr by JPEG's (JFIF) full-range matrix.
    LAB  CIE L*a*b* (D50; stored as TIFF's CIELAB: L* x 2.55, a* and b* signed) to sRGB by LittleCMS (ImageCms),
        unoptimized so that white stays 255.
    I;16, I;16B, I;16L, I;16N (16-bit)  the full 0-65535 range onto 0-255, round(v / 257), as Firefox (libpng's
        scale_16) and Chrome (skcms) show 16-bit PNGs; convert("RGB") clips at 255, so all but the darkest become
        white. (Pillow reads 16-bit RGB(A) files as 8 bits by their high byte: those can differ by 1.)
    I (32-bit integers)  as 16-bit when every value is in 0-65535 (16-bit PGM/PPM, which Pillow scales to that
        range; 16-bit PNG in older Pillow); otherwise (signed or 32-bit TIFF) min-max onto 0-255.
    F (32-bit float)  v x 255 when every value is in [0, 1]; otherwise min-max onto 0-255 (as ImageJ shows data).
        NaN and -inf show as the range's low end, +inf as its high end; a constant image outside the range is
        clipped to it. All scaled values are rounded half up.
    Transparency (LA, PA, RGBA; La and RGBa premultiplied; P, L, RGB, I;16 with a transparency key, as PNG tRNS
        and GIF write it)  composited over white, as browsers show it on their default white page and as editors
        flatten it. Not kept as stored: the colour under alpha 0 is whatever the encoder left (often black), so
        the same picture would read differently from two encoders, and a black logo on transparency as all black.
        Straight alpha: round((c a + 255 (255 - a)) / 255); premultiplied: c + 255 - a.
    Any other mode: convert("RGB"). Raises what Pillow raises for a mode it cannot convert.
    """
    if image.mode in SIXTEEN_BIT or image.mode in ("I", "F"):
        image = _gray(image)
    if image.mode in PREMULTIPLIED:
        pixels = np.asarray(image).astype(np.uint16)
        shown = np.minimum(pixels[..., :-1] + (255 - pixels[..., -1:]), 255).astype(np.uint8)
        return Image.fromarray(shown[..., 0] if image.mode == "La" else shown).convert("RGB")
    if image.mode == "LAB":
        from PIL import ImageCms  # LittleCMS: loaded for the rare LAB file only

        return ImageCms.applyTransform(image, _lab_to_srgb())
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        shown = Image.new("RGB", image.size, WHITE)
        shown.paste(rgba, mask=rgba.getchannel("A"))  # Pillow blends exactly: round((c a + 255 (255 - a)) / 255)
        return shown
    return image.convert("RGB")


def _gray(image: Image.Image) -> Image.Image:
    """An I;16*, I or F image as L by display_rgb's rules; LA where its transparency key marks pixels."""
    values = np.asarray(image)
    floating = image.mode == "F"
    full = (0.0, 1.0) if floating else (0, 65535)
    finite = values[np.isfinite(values)] if floating else values
    low, high = (finite.min(), finite.max()) if finite.size else full
    if (full[0] <= low and high <= full[1]) or low == high:
        low, high = full
    scaled = (np.nan_to_num(values.astype(np.float64), nan=low, posinf=high, neginf=low) - low) / (high - low)
    gray = Image.fromarray(np.floor(np.clip(scaled, 0, 1) * 255 + 0.5).astype(np.uint8))
    key = image.info.get("transparency")
    if isinstance(key, int) and not floating:
        gray = Image.merge("LA", (gray, Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8))))
    return gray


@functools.cache
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    """LittleCMS's LAB (D50) to sRGB transform, built once per process (2 ms)."""
    from PIL import ImageCms

    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB",
                                   flags=NOOPTIMIZE)


def warn_skipped(root: Path, skipped: list[tuple[Path, str]], fix: str = "remove or replace them") -> None:
    """One line on stderr (rank 0 only under torchrun) naming how many were skipped and the first few, and `fix`."""
    from zoo.distributed import place  # torch: imported when needed, as torchvision is here

    if not skipped or place()[0] != 0:
        return
    named = "; ".join(f"{_relative(path, root)}: {why}" for path, why in skipped[:SHOWN])
    more = f"; and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
    images = "image" if len(skipped) == 1 else "images"
    print(f"warning: skipped {len(skipped)} unreadable {images} in {root} ({named}{more}); {fix}",
          file=sys.stderr, flush=True)


def note_others(root: Path, others: list[Path]) -> None:
    """One line on stderr (rank 0 only) counting the files skipped as not images, by extension."""
    from collections import Counter

    from zoo.distributed import place

    if not others or place()[0] != 0:
        return
    kinds = Counter(path.suffix.lower() or "no extension" for path in others)
    listed = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
    files = "file" if len(others) == 1 else "files"
    print(f"note: skipped {len(others)} {files} in {root} "
          f"that {'is not an image' if len(others) == 1 else 'are not images'} "
          f"zoo reads ({listed}); it reads "
          f"{', '.join(image_extensions())}", file=sys.stderr, flush=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


GLOB_CHARACTERS = frozenset("*?[")


def gather(inputs: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """(image files, other files) named by `inputs`: files as given, folders walked (recursive, sorted, hidden and
    system entries skipped, files of other extensions set aside), glob patterns expanded (sorted; `**` recursive).
    Each file once, in order. Raises ZooError for a path that does not exist or a pattern that matches nothing."""
    from zoo.data.folders import is_hidden  # folders reads images: imported when called

    extensions = image_extensions()
    found: list[Path] = []
    others: list[Path] = []
    for given in inputs:
        text = str(given)
        if GLOB_CHARACTERS & set(text) and not Path(text).exists():
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise ZooError(f"{text!r} matches no file; check the pattern")
            paths = [Path(match) for match in matches]
        elif Path(text).exists():
            paths = [Path(text)]
        else:
            raise ZooError(f"{text} not found; give image files, folders of them or glob patterns")
        for path in paths:
            if not path.is_dir():
                found.append(path)
                continue
            for directory, folders, files in os.walk(path):
                folders[:] = sorted(name for name in folders if not is_hidden(name))
                for name in sorted(files):
                    if is_hidden(name):
                        continue
                    file = Path(directory, name)
                    (found if name.lower().endswith(extensions) else others).append(file)
    unique = list(dict.fromkeys(found))  # a file named twice (a folder and a pattern inside it) is predicted once
    return unique, others


def holds_pictures(folder: Path) -> bool:
    """Whether `folder` itself (not its sub-folders) holds a visible file of an image extension."""
    from zoo.data.folders import is_hidden  # folders reads images: imported when called

    extensions = image_extensions()
    with os.scandir(folder) as entries:
        return any(entry.is_file() and not is_hidden(entry.name) and entry.name.lower().endswith(extensions)
                   for entry in entries)
