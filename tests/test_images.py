"""Pictures as a viewer shows them: every image mode Pillow writes to a file, read back through the ImageFolder
path with exact values (zoo.data.images.display_rgb's rules), EXIF orientation, and class names drawn into the
confusion-matrix picture without missing-glyph boxes (zoo.present.figures)."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

import zoo.present.figures as plots
from zoo.config import DataConfig
from zoo.data import build_datasets
from zoo.data.images import display_rgb, open_rgb

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's path; the tests also run without it


def through_imagefolder(path: Path, in_channels: int = 3) -> np.ndarray:
    """The picture at `path` as zoo feeds it to a model: H x W x C uint8, from build_datasets' ImageFolder (the
    test split: eval transforms, not normalized) over copies of the file in root/{train,test}/{a,b}."""
    root = path.parent / f"{path.stem}_folder"
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / split / name / path.name)
    with Image.open(path) as image:
        side = min(image.size)  # square pictures here: no resize, no crop
    splits = build_datasets(DataConfig(name="imagefolder", root=root, normalize=False, val_split=0),
                            in_channels=in_channels, input_size=side)
    assert splits.skipped == () and splits.test.base.loader is open_rgb
    paths = [splits.test.base.samples[j][0] for j in splits.test.indices]
    x, _ = splits.test[paths.index(str(root / "test" / "a" / path.name))]
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def grid(values: list, side: int = 2) -> np.ndarray:
    """side x side pixels from a flat list of pixel values (numbers or tuples), row by row."""
    array = np.array(values)
    return array.reshape(side, side, *array.shape[1:])


def gray(values: list) -> np.ndarray:
    """Expected RGB for gray levels: each repeated three times."""
    return np.repeat(grid(values)[..., None], 3, axis=-1).astype(np.uint8)


def over_white(colour, alpha) -> np.ndarray:
    """Straight alpha over white, rounded: round((c a + 255 (255 - a)) / 255)."""
    c, a = np.asarray(colour, np.int64), np.asarray(alpha, np.int64)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def flat_blocks(colours: list) -> np.ndarray:
    """16 x 16 pixels: four 8 x 8 blocks of one colour each (a JPEG stores a flat block exactly at quality 100)."""
    blocks = np.kron(np.array(colours, np.uint8).reshape(2, 2, -1), np.ones((8, 8, 1), np.uint8))
    return blocks[..., 0] if np.ndim(colours[0]) == 0 else blocks


def save_png_rgb48(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG, written chunk by chunk (Pillow has no mode to save one from)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def premultiplied_tiff(path: Path, image: Image.Image) -> None:
    """`image` (LA or RGBA, its bytes already premultiplied) as a TIFF with associated alpha (ExtraSamples 1),
    which Pillow reads but does not write: its ExtraSamples entry (2, unassociated) is patched."""
    image.save(path)
    unassociated = struct.pack("<HHIHH", 338, 3, 1, 2, 0)  # tag, SHORT, count 1, value 2
    data = path.read_bytes()
    assert data.count(unassociated) == 1
    path.write_bytes(data.replace(unassociated, struct.pack("<HHIHH", 338, 3, 1, 1, 0)))


# ---- every mode: (file, the mode Pillow opens it in, the RGB a viewer shows) ---------------------------

Case = Callable[[Path], tuple[Path, str, np.ndarray]]
MODES: dict[str, Case] = {}


def mode_case(name: str) -> Callable[[Case], Case]:
    def register(write: Case) -> Case:
        MODES[name] = write
        return write
    return register


def _one(fmt: str, ext: str) -> Case:
    def write(tmp: Path) -> tuple[Path, str, np.ndarray]:
        path = tmp / f"one.{ext}"
        Image.fromarray(grid([False, True, True, False])).save(path, fmt)
        return path, "1", gray([0, 255, 255, 0])
    return write


for _fmt, _ext in (("PNG", "png"), ("TIFF", "tif"), ("BMP", "bmp")):
    mode_case(f"1-{_fmt}")(_one(_fmt, _ext))


@mode_case("L-PNG")
def _(tmp):
    Image.fromarray(grid([0, 90, 200, 255]).astype(np.uint8)).save(tmp / "l.png")
    return tmp / "l.png", "L", gray([0, 90, 200, 255])


@mode_case("L-JPEG")
def _(tmp):
    Image.fromarray(flat_blocks([0, 90, 200, 255])).save(tmp / "l.jpg", quality=100)
    return tmp / "l.jpg", "L", np.repeat(flat_blocks([0, 90, 200, 255])[..., None], 3, axis=-1)


@mode_case("L-PNG-transparency-key")
def _(tmp):
    Image.fromarray(grid([0, 90, 200, 255]).astype(np.uint8)).save(tmp / "lt.png", transparency=90)
    return tmp / "lt.png", "L", gray([0, 255, 200, 255])  # the key's pixels are transparent: white


@mode_case("LA-PNG")
def _(tmp):
    levels, alpha = [0, 200, 10, 50], [0, 128, 51, 255]
    Image.fromarray(np.stack([grid(levels), grid(alpha)], -1).astype(np.uint8), "LA").save(tmp / "la.png")
    return tmp / "la.png", "LA", np.repeat(over_white(grid(levels), grid(alpha))[..., None], 3, -1)


@mode_case("LA-TIFF")
def _(tmp):
    levels, alpha = [0, 200, 10, 50], [0, 128, 51, 255]
    Image.fromarray(np.stack([grid(levels), grid(alpha)], -1).astype(np.uint8), "LA").save(tmp / "la.tif")
    return tmp / "la.tif", "LA", np.repeat(over_white(grid(levels), grid(alpha))[..., None], 3, -1)


@mode_case("La-TIFF-premultiplied")
def _(tmp):
    stored, alpha = [0, 51, 10, 200], [0, 51, 51, 255]  # level x alpha / 255, as stored
    premultiplied_tiff(tmp / "lap.tif",
                       Image.fromarray(np.stack([grid(stored), grid(alpha)], -1).astype(np.uint8), "LA"))
    return tmp / "lap.tif", "La", gray([255, 255, 214, 200])  # stored + 255 - alpha


PALETTE = [0, 0, 0, 255, 0, 0, 0, 0, 255, 10, 200, 30]  # black, red, blue, green


def _paletted() -> Image.Image:
    image = Image.new("P", (2, 2))
    image.putpalette(PALETTE)
    image.putdata([0, 1, 2, 3])
    return image


@mode_case("P-PNG")
def _(tmp):
    _paletted().save(tmp / "p.png")
    return tmp / "p.png", "P", grid([(0, 0, 0), (255, 0, 0), (0, 0, 255), (10, 200, 30)]).astype(np.uint8)


@mode_case("P-BMP")
def _(tmp):
    _paletted().save(tmp / "p.bmp")
    return tmp / "p.bmp", "P", grid([(0, 0, 0), (255, 0, 0), (0, 0, 255), (10, 200, 30)]).astype(np.uint8)


@mode_case("P-PNG-tRNS")
def _(tmp):
    _paletted().save(tmp / "pt.png", transparency=bytes([255, 128, 0, 255]))  # alpha per palette entry
    colours = grid([(0, 0, 0), (255, 0, 0), (0, 0, 255), (10, 200, 30)])
    return tmp / "pt.png", "P", over_white(colours, grid([255, 128, 0, 255])[..., None])


@mode_case("P-GIF-transparency")
def _(tmp):
    _paletted().save(tmp / "p.gif", transparency=2)  # palette index 2 is transparent
    return tmp / "p.gif", "P", grid([(0, 0, 0), (255, 0, 0), (255, 255, 255), (10, 200, 30)]).astype(np.uint8)


@mode_case("PA-TIFF")
def _(tmp):
    image = Image.new("PA", (2, 2))
    image.putpalette(PALETTE)
    image.putdata([(0, 255), (1, 128), (2, 0), (3, 255)])
    image.save(tmp / "pa.tif")
    colours = grid([(0, 0, 0), (255, 0, 0), (0, 0, 255), (10, 200, 30)])
    return tmp / "pa.tif", "PA", over_white(colours, grid([255, 128, 0, 255])[..., None])


RGB = [(0, 0, 0), (200, 30, 60), (10, 120, 240), (255, 255, 255)]


def _rgb(fmt: str, ext: str, **save) -> Case:
    def write(tmp: Path) -> tuple[Path, str, np.ndarray]:
        Image.fromarray(grid(RGB).astype(np.uint8)).save(tmp / f"rgb.{ext}", fmt, **save)
        return tmp / f"rgb.{ext}", "RGB", grid(RGB).astype(np.uint8)
    return write


for _fmt, _ext, _save in (("PNG", "png", {}), ("TIFF", "tif", {}), ("BMP", "bmp", {}),
                          ("WEBP", "webp", {"lossless": True})):
    mode_case(f"RGB-{_fmt}")(_rgb(_fmt, _ext, **_save))


@mode_case("YCbCr-JPEG")  # a JPEG's YCbCr, decoded to RGB by libjpeg: colours a flat block keeps exactly
def _(tmp):
    colours = [(0, 0, 0), (255, 255, 0), (0, 255, 255), (90, 90, 90)]
    Image.fromarray(flat_blocks(colours)).save(tmp / "ycc.jpg", quality=100, subsampling=0)
    return tmp / "ycc.jpg", "RGB", flat_blocks(colours)


@mode_case("RGB-PNG-transparency-key")
def _(tmp):
    Image.fromarray(grid(RGB).astype(np.uint8)).save(tmp / "rgbt.png", transparency=(200, 30, 60))
    return tmp / "rgbt.png", "RGB", grid([RGB[0], (255, 255, 255), RGB[2], RGB[3]]).astype(np.uint8)


@mode_case("RGB-PNG-48-bit")  # Pillow reads 16 bits a channel by the high byte
def _(tmp):
    save_png_rgb48(tmp / "rgb48.png",
                   grid([(0, 0x0101, 0xFFFF), (0x1234, 0x8000, 0x7FFF), (65535,) * 3, (0x00FF,) * 3]))
    return tmp / "rgb48.png", "RGB", grid([(0, 1, 255), (0x12, 0x80, 0x7F), (255,) * 3, (0,) * 3]).astype(np.uint8)


RGBA_COLOURS, RGBA_ALPHA = [(0, 0, 0), (200, 30, 60), (10, 120, 240), (64, 0, 128)], [0, 128, 255, 51]


def _rgba(fmt: str, ext: str, **save) -> Case:
    def write(tmp: Path) -> tuple[Path, str, np.ndarray]:
        pixels = np.concatenate([grid(RGBA_COLOURS), grid(RGBA_ALPHA)[..., None]], -1).astype(np.uint8)
        Image.fromarray(pixels, "RGBA").save(tmp / f"rgba.{ext}", fmt, **save)
        return tmp / f"rgba.{ext}", "RGBA", over_white(grid(RGBA_COLOURS), grid(RGBA_ALPHA)[..., None])
    return write


for _fmt, _ext, _save in (("PNG", "png", {}), ("TIFF", "tif", {}), ("WEBP", "webp", {"lossless": True, "exact": True})):
    mode_case(f"RGBA-{_fmt}")(_rgba(_fmt, _ext, **_save))


@mode_case("RGBa-TIFF-premultiplied")  # Pillow reads it as RGBA, dividing by alpha: values chosen to divide exactly
def _(tmp):
    stored, alpha = [(0, 0, 0), (51, 51, 51), (10, 20, 30), (200, 100, 50)], [0, 51, 51, 255]
    pixels = np.concatenate([grid(stored), grid(alpha)[..., None]], -1).astype(np.uint8)
    premultiplied_tiff(tmp / "rgbap.tif", Image.fromarray(pixels, "RGBA"))
    shown = [(255, 255, 255), (255, 255, 255), (214, 224, 234), (200, 100, 50)]  # stored + 255 - alpha
    return tmp / "rgbap.tif", "RGBA", grid(shown).astype(np.uint8)


CMYK = [(0, 0, 0, 0), (255, 0, 0, 0), (100, 50, 0, 50), (0, 0, 0, 255)]


def cmyk_shown(values: list) -> np.ndarray:
    """(255 - C)(255 - K) / 255 per channel, rounded: Pillow's conversion without an ICC profile."""
    cmyk = grid(values).astype(np.int64)
    return (((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) + 127) // 255).astype(np.uint8)


@mode_case("CMYK-TIFF")
def _(tmp):
    Image.fromarray(grid(CMYK).astype(np.uint8), "CMYK").save(tmp / "cmyk.tif")
    return tmp / "cmyk.tif", "CMYK", cmyk_shown(CMYK)


@mode_case("CMYK-JPEG")  # Adobe's inverted CMYK JPEG, which Pillow writes and reads
def _(tmp):
    Image.fromarray(flat_blocks(CMYK), "CMYK").save(tmp / "cmyk.jpg", quality=100)
    return tmp / "cmyk.jpg", "CMYK", np.kron(cmyk_shown(CMYK), np.ones((8, 8, 1), np.uint8))


@mode_case("YCbCr-TIFF")
def _(tmp):
    ycc = [(128, 128, 128), (76, 85, 255), (150, 44, 21), (29, 255, 107)]
    Image.fromarray(grid(ycc).astype(np.uint8), "YCbCr").save(tmp / "ycc.tif")
    y, cb, cr = (grid(ycc)[..., i].astype(np.float64) for i in range(3))  # JFIF (ITU-T T.871), full range
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                    y + 1.772 * (cb - 128)], -1)
    return tmp / "ycc.tif", "YCbCr", np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


@mode_case("LAB-TIFF")  # neutral grays: CIE L* to sRGB needs no white-point adaptation
def _(tmp):
    levels = [0, 128, 200, 255]  # L* x 2.55; a* and b* 0 (stored as signed bytes, as TIFF's CIELAB stores them)
    Image.fromarray(np.stack([grid(levels), grid([0] * 4), grid([0] * 4)], -1).astype(np.uint8),
                    "LAB").save(tmp / "lab.tif")
    lightness = grid(levels) * 100 / 255
    y = np.where(lightness > 8, ((lightness + 16) / 116) ** 3, lightness / 903.3)  # relative luminance
    srgb = np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)
    return tmp / "lab.tif", "LAB", np.repeat(np.floor(srgb * 255 + 0.5).astype(np.uint8)[..., None], 3, -1)


SIXTEEN = [0, 1000, 32768, 65535]
SIXTEEN_SHOWN = [0, 4, 128, 255]  # round(v / 257): 3.89, 127.50...


@mode_case("I;16-PNG")
def _(tmp):
    Image.fromarray(grid(SIXTEEN).astype(np.uint16)).save(tmp / "i16.png")
    return tmp / "i16.png", "I;16", gray(SIXTEEN_SHOWN)


@mode_case("I;16-TIFF")
def _(tmp):
    Image.fromarray(grid(SIXTEEN).astype(np.uint16)).save(tmp / "i16.tif")
    return tmp / "i16.tif", "I;16", gray(SIXTEEN_SHOWN)


@mode_case("I;16B-TIFF")  # big-endian (Motorola) TIFF
def _(tmp):
    Image.fromarray(grid(SIXTEEN).astype(">u2")).save(tmp / "i16b.tif")
    return tmp / "i16b.tif", "I;16B", gray(SIXTEEN_SHOWN)


@mode_case("I;16-PNG-transparency-key")
def _(tmp):
    Image.fromarray(grid(SIXTEEN).astype(np.uint16)).save(tmp / "i16t.png", transparency=0)
    return tmp / "i16t.png", "I;16", gray([255, 4, 128, 255])


@mode_case("I-PGM-16-bit")  # Pillow reads a 16-bit PGM as I
def _(tmp):
    (tmp / "i.pgm").write_bytes(b"P5 2 2 65535\n" + grid(SIXTEEN).astype(">u2").tobytes())
    return tmp / "i.pgm", "I", gray(SIXTEEN_SHOWN)


@mode_case("I-TIFF-32-bit-in-16-bit-range")
def _(tmp):
    Image.fromarray(grid(SIXTEEN).astype(np.int32)).save(tmp / "i32.tif")
    return tmp / "i32.tif", "I", gray(SIXTEEN_SHOWN)


@mode_case("I-TIFF-32-bit-signed")  # outside 0-65535: min-max
def _(tmp):
    Image.fromarray(grid([-100, 0, 100, 300]).astype(np.int32)).save(tmp / "i32s.tif")
    return tmp / "i32s.tif", "I", gray([0, 64, 128, 255])  # (v + 100) / 400 x 255: 63.75, 127.5


@mode_case("F-TIFF-in-0-1")
def _(tmp):
    Image.fromarray(grid([0.0, 0.25, 0.5, 1.0]).astype(np.float32)).save(tmp / "f.tif")
    return tmp / "f.tif", "F", gray([0, 64, 128, 255])  # v x 255: 63.75, 127.5


@mode_case("F-TIFF-outside-0-1")
def _(tmp):
    Image.fromarray(grid([-1.0, 0.0, 1.0, 3.0]).astype(np.float32)).save(tmp / "fr.tif")
    return tmp / "fr.tif", "F", gray([0, 64, 128, 255])  # min-max: (v + 1) / 4 x 255


@mode_case("F-TIFF-non-finite")
def _(tmp):
    Image.fromarray(grid([np.nan, 0.5, np.inf, -np.inf]).astype(np.float32)).save(tmp / "fn.tif")
    return tmp / "fn.tif", "F", gray([0, 128, 255, 0])  # NaN and -inf: the range's low end, +inf its high end


@mode_case("F-PFM")
def _(tmp):
    Image.fromarray(grid([0.0, 0.25, 0.5, 1.0]).astype(np.float32)).save(tmp / "f.pfm")
    return tmp / "f.pfm", "F", gray([0, 64, 128, 255])


@pytest.mark.parametrize("name", MODES)
def test_each_mode_reaches_the_model_with_the_values_a_viewer_shows(name, tmp_path):
    from torchvision.datasets.folder import IMG_EXTENSIONS

    path, mode, expected = MODES[name](tmp_path)
    with Image.open(path) as image:
        assert image.mode == mode  # the file really holds the mode under test
    if path.suffix in IMG_EXTENSIONS:
        assert np.array_equal(through_imagefolder(path), expected)
    else:  # .gif, .pfm: ImageFolder leaves them out; the loader is what `zoo predict` uses too
        assert np.array_equal(np.asarray(open_rgb(str(path))), expected)


def test_sixteen_bit_gray_keeps_its_levels_for_a_one_channel_model(tmp_path):
    path, _, expected = MODES["I;16-PNG"](tmp_path)
    with Image.open(path) as image:
        assert np.asarray(image.convert("RGB"))[..., 0].tolist() == [[0, 255], [255, 255]]  # what Pillow alone gives
    one_channel = through_imagefolder(path, in_channels=1)[..., 0].astype(int)
    # torchvision's Grayscale: weights summing to 0.9999, truncated
    assert np.abs(one_channel - expected[..., 0]).max() <= 1


def test_hsv_which_no_format_saves_converts_by_pillow():
    hsv = Image.fromarray(np.array([[[0, 255, 255], [85, 255, 128]]], np.uint8), "HSV")
    assert np.array_equal(np.asarray(display_rgb(hsv)), [[[255, 0, 0], [0, 128, 0]]])


# ---- EXIF orientation ---------------------------------------------------------------------------

SHOWN = {  # EXIF orientation: the stored pixels (rows x columns) as every viewer displays them
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def exif(orientation: int) -> Image.Exif:
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags


@pytest.mark.parametrize("orientation", SHOWN)
def test_every_exif_orientation_is_applied_by_the_imagefolder_loader(orientation, tmp_path):
    stored = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14  # 3 wide, 2 high: every pixel distinct
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif(orientation))
    assert np.array_equal(np.asarray(open_rgb(str(tmp_path / "o.png"))), SHOWN[orientation](stored))


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "WEBP"])
def test_a_phone_photo_stored_landscape_is_trained_on_upright(fmt, tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16] = 255  # stored 32 wide: the left half white; orientation 6 turns it 90 degrees clockwise
    path = tmp_path / f"photo.{fmt.lower()}"
    save = {"JPEG": {"exif": exif(6), "quality": 100}, "TIFF": {"tiffinfo": {0x0112: 6}},
            "WEBP": {"exif": exif(6), "lossless": True}}[fmt]
    Image.fromarray(stored).save(path, fmt, **save)
    x = through_imagefolder(path)  # 16 x 32 upright, cropped to its centre 16 x 16: the top half white
    assert x.shape == (16, 16, 3) and x[:8].min() == 255 and x[8:].max() == 0


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_damaged_exif_block_gives_the_picture_as_stored(fmt, tmp_path):
    path = tmp_path / f"damaged.{fmt.lower()}"
    Image.fromarray(grid(RGB).astype(np.uint8)).save(path, fmt, exif=b"Exif\x00\x00not a TIFF header", lossless=True)
    # Pillow 13 raises SyntaxError ("not a TIFF file") from ImageOps.exif_transpose on these
    assert np.array_equal(through_imagefolder(path), grid(RGB))


# ---- class names in the confusion-matrix picture ---------------------------------------------------

LABELS = ["café", "Ωmega", "猫"]


def missing_glyphs(font, text: str) -> list[str]:
    """The characters of `text` that `font` draws as its .notdef glyph (a box): the mask it draws for U+10FFFF."""
    if not isinstance(font, ImageFont.FreeTypeFont):
        return [c for c in text if not " " <= c <= "~"]
    notdef = font.getmask("\U0010ffff")
    box = (notdef.size, bytes(notdef))
    return [c for c in text if not c.isspace() and (font.getmask(c).size, bytes(font.getmask(c))) == box]


def drawn_texts(monkeypatch, labels: list[str]) -> list[tuple[str, object]]:
    """Every (text, font) confusion_image draws for these class names."""
    drawn = []
    original = ImageDraw.ImageDraw.text

    def record(self, xy, text, *args, **kwargs):
        drawn.append((text, kwargs.get("font")))
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", record)
    plots.confusion_image(torch.eye(len(labels), dtype=torch.long), labels, "val, epoch 1")
    return drawn


def fonts_in(monkeypatch, folder: Path, *files: Path) -> None:
    """Make `folder`, holding copies of `files`, the only place zoo.present.figures looks for fonts."""
    folder.mkdir(exist_ok=True)
    for file in files:
        shutil.copy(file, folder / file.name)
    monkeypatch.setattr(plots, "FONT_DIRS", (str(folder),))


def test_no_system_font_draws_class_names_in_ascii_without_boxes(monkeypatch, tmp_path):
    fonts_in(monkeypatch, tmp_path / "no fonts")
    drawn = drawn_texts(monkeypatch, LABELS)
    assert {text for text, _ in drawn} >= {"cafe", "U+03A9 mega", "U+732B", "val, epoch 1"}
    assert not {"café", "Ωmega", "猫"} & {text for text, _ in drawn}
    assert all(missing_glyphs(font, text) == [] for text, font in drawn)


@pytest.mark.skipif(not DEJAVU.exists(), reason="DejaVu Sans is not at Debian's path on this machine")
def test_with_dejavu_accents_and_greek_are_drawn_and_cjk_falls_back(monkeypatch, tmp_path):
    fonts_in(monkeypatch, tmp_path / "fonts", DEJAVU)
    drawn = drawn_texts(monkeypatch, LABELS)
    assert {"café", "Ωmega", "U+732B"} <= {text for text, _ in drawn}
    assert all(missing_glyphs(font, text) == [] for text, font in drawn)
    assert Path(drawn[0][1].path).name == "DejaVuSans.ttf"


def test_a_damaged_font_file_is_passed_over(monkeypatch, tmp_path):
    damaged = tmp_path / "fonts" / "NotoSans-Regular.ttf"
    damaged.parent.mkdir()
    damaged.write_bytes(b"not a font")  # Pillow then looks for the name in the system's font folders itself
    fonts_in(monkeypatch, damaged.parent)
    drawn = drawn_texts(monkeypatch, LABELS)
    assert all(getattr(font, "path", None) != str(damaged) for _, font in drawn)
    assert all(missing_glyphs(font, text) == [] for text, font in drawn)


def test_class_names_with_this_machines_fonts_have_no_boxes(monkeypatch):
    drawn = drawn_texts(monkeypatch, LABELS + ["dog house"])
    texts = {text for text, _ in drawn}
    assert all(missing_glyphs(font, text) == [] for text, font in drawn)
    assert "dog house" in texts and ({"café", "cafe"} & texts) and ({"Ωmega", "U+03A9 mega"} & texts)
    assert {"猫", "U+732B"} & texts


def test_fallback_text_keeps_names_readable():
    def has(char: str) -> bool:  # a font with ASCII only
        return " " <= char <= "~"

    assert plots._legible("dog猫1", has) == "dog U+732B 1"
    assert plots._legible("猫犬", has) == "U+732B U+72AC"
    assert plots._legible("cafe\u0301 ﬁ Ａ", has) == "cafe fi A"  # a combining accent dropped, compatibility forms


def test_long_class_names_keep_their_start_and_end_apart():
    from zoo.present.figures import shorten

    dog, puppy = shorten("golden_retriever_dog"), shorten("golden_retriever_puppy")
    assert dog != puppy and len(dog) == len(puppy) == 16 and dog.endswith("_dog") and puppy.startswith("golden")
    assert shorten("cat") == "cat"


@pytest.mark.parametrize("labels", [[str(d) for d in range(10)], ["a", "b"], ["golden_retriever_dog", "cat", "x"]])
def test_the_row_caption_stays_left_of_the_first_columns_label(monkeypatch, labels):
    confusion = torch.eye(len(labels), dtype=torch.long)
    with_caption = np.asarray(plots.confusion_image(confusion, labels))
    original = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, text, *args, **kwargs:
                        None if text == plots.ROWS_CAPTION else original(self, xy, text, *args, **kwargs))
    without = np.asarray(plots.confusion_image(confusion, labels))
    assert with_caption.shape == without.shape
    columns = np.nonzero((with_caption != without).any(axis=(0, 2)))[0]  # where the caption drew
    # confusion_image's size, up to 20 classes
    font, names = plots.picture_font([plots.shorten(name) for name in labels], 13)
    monkeypatch.undo()
    _, left, _ = plots.confusion_margins(font, names)
    assert columns.size and columns.max() < left - 4  # the column labels start at `left`
