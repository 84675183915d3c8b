"""The pictures of `zoo explain` and of train.log_filters, drawn with Pillow: grids of small tiles and heat maps.

    picture = filter_grid(model)     # the first convolution's filters: AlexNet's figure 3 (Krizhevsky et al. 2012)
    picture.save("filters.png")

    filter_grid       the first Conv2d's weights, one tile a filter (RGB for 3 input channels, gray otherwise)
    map_grid          a stage's activations for one picture, one gray tile a channel
    heatmap_overlay   a picture as the network saw it beside the same picture under a heat map (Grad-CAM ...),
                      with the colour bar that says which colour is which value
    reconstruction_grid  an autoencoder's pictures row by row: input, noisy or gray input, output
    error_overlay     an autoencoder's picture, its reconstruction, and the squared error per pixel as a heat map

Tiles are min-max normalized one by one and enlarged with nearest-neighbour resampling, so a 5x5 kernel is 25
visible squares, not a blur; each is at least TILE pixels a side, for a picture opened alone in an image viewer
(LeNet-5's filters: 170 x 95 pixels with tiles of 32, 316 x 235 with 96). Every grid starts GAP pixels from the
top-left corner with its caption below it, so tile (row, column) sits at GAP + index x (side + GAP). Captions use
zoo.present.figures' fonts (non-Latin class names). Importable without captum: the run report and TensorBoard draw
filters with no attribution library.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from zoo.distributed import unwrap
from zoo.models.base import first_conv
from zoo.present.figures import picture_font

GAP = 4  # pixels between tiles and around the grid: white lines that part 100-pixel tiles
TILE = 96  # a tile's smallest side in pixels: a 5x5 kernel is enlarged 20 times, an 11x11 one 9 times
PANEL = 224  # a heat-map panel's smallest side: LeNet's 32 x 32 input is shown at 7 x
ALPHA = 0.5  # the heat map's share of an overlay pixel
BAR = 14  # pixels: the colour bar's height, under the overlay
CAPTION_SIZE = 15  # pixels: the font size of captions
BACKGROUND = (255, 255, 255)
COLORMAP = "jet"  # matplotlib's; the Grad-CAM paper's (Selvaraju et al. 2017, figure 1)


@torch.no_grad()
def filter_grid(model: nn.Module, tile: int | None = None) -> Image.Image:
    """The first convolution's filters (out x in x kh x kw) as a grid, one tile per filter, each min-max
    normalized over its own weights: RGB for 3 input channels, gray for 1, the mean over the input channels
    (gray) for other counts; `tile`: each at least this many pixels a side (default TILE). Raises ZooError for a
    network without a Conv2d."""
    name, conv = first_conv(unwrap(model))
    weight = conv.weight.detach().float().cpu()  # out x in x kh x kw
    out, channels, height, width = weight.shape
    if channels not in (1, 3):
        weight = weight.mean(dim=1, keepdim=True)
    tiles = _normalized(weight.flatten(1)).reshape(weight.shape)
    tiles = tiles.permute(0, 2, 3, 1).numpy()  # out x kh x kw x (1 or 3)
    tiles = tiles[..., 0] if tiles.shape[-1] == 1 else tiles
    mean = "" if channels in (1, 3) else f", the mean of {channels} input channels"
    caption = f"{name}: {out} filters, {channels} x {height} x {width}{mean}"
    return tile_grid(_bytes(tiles), caption, tile=tile)


@torch.no_grad()
def map_grid(activations: torch.Tensor, name: str, limit: int = 64) -> Image.Image:
    """One stage's activations for one picture (C x h x w) as gray tiles, the first `limit` channels, each
    min-max normalized on its own (a constant channel is black); the caption says which channels are shown."""
    channels, height, width = activations.shape
    shown = activations[:limit].detach().float().cpu()
    tiles = _normalized(shown.flatten(1)).reshape(shown.shape).numpy()
    which = f"all {channels} channels" if channels <= limit else f"channels 1-{limit} of {channels}"
    return tile_grid(_bytes(tiles), f"{name}: {which}, {height} x {width}")


def tile_grid(tiles: np.ndarray, caption: str, columns: int | None = None, tile: int | None = None) -> Image.Image:
    """N x h x w (gray) or N x h x w x 3 (RGB) uint8 tiles in a grid of `columns` (default: ceil(sqrt(N))),
    each enlarged by nearest neighbour to at least `tile` (default TILE) pixels a side, GAP pixels apart,
    `caption` below."""
    count, height, width = tiles.shape[:3]
    scale = max(1, math.ceil((tile or TILE) / max(height, width)))
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    side_x, side_y = width * scale, height * scale
    grid = Image.new("RGB", (GAP + columns * (side_x + GAP), GAP + rows * (side_y + GAP)), BACKGROUND)
    for index in range(count):
        tile = Image.fromarray(tiles[index]).convert("RGB").resize((side_x, side_y), Image.Resampling.NEAREST)
        row, column = divmod(index, columns)
        grid.paste(tile, (GAP + column * (side_x + GAP), GAP + row * (side_y + GAP)))
    return captioned(grid, [caption])


def heatmap_overlay(picture: np.ndarray, heat: np.ndarray, caption: Sequence[str],
                    between: Sequence[np.ndarray] = ()) -> Image.Image:
    """Two panels: `picture` (H x W x 3 uint8, the input as the network saw it) and the same under `heat`
    (H x W, values in [0, 1]) in COLORMAP at ALPHA, enlarged by nearest neighbour to at least PANEL pixels,
    GAP apart; under the overlay the colour bar of COLORMAP from 0 to 1, and the caption's lines below.
    `between`: more H x W x 3 panels drawn between the two (an autoencoder's reconstruction)."""
    height, width = heat.shape
    coloured = _colormap()[np.clip(np.rint(heat * 255), 0, 255).astype(np.uint8)]  # H x W x 3
    blended = np.rint((1 - ALPHA) * picture + ALPHA * coloured).astype(np.uint8)
    scale = max(1, math.ceil(PANEL / max(height, width)))
    size = (width * scale, height * scale)
    shown = (picture, *between, blended)
    panels = Image.new("RGB", (GAP + len(shown) * (size[0] + GAP), GAP + size[1] + GAP), BACKGROUND)
    for index, pixels in enumerate(shown):
        panel = Image.fromarray(pixels).resize(size, Image.Resampling.NEAREST)
        panels.paste(panel, (GAP + index * (size[0] + GAP), GAP))
    return captioned(colour_bar(panels, GAP + (len(shown) - 1) * (size[0] + GAP), size[0]), caption)


def colour_bar(image: Image.Image, left: int, width: int) -> Image.Image:
    """`image` with COLORMAP's bar below it, from `left` over `width` pixels: its ends and middle marked 0, 0.5
    and 1, and its name to its left."""
    font, (name, *ticks) = picture_font(("heat (1 = the map's maximum)", "0", "0.5", "1"), CAPTION_SIZE)
    out = Image.new("RGB", (image.width, image.height + BAR + CAPTION_SIZE + 2 * GAP + 4), BACKGROUND)
    out.paste(image, (0, 0))
    bar = _colormap()[np.linspace(0, 255, width).round().astype(np.uint8)]  # width x 3
    out.paste(Image.fromarray(np.repeat(bar[None], BAR, axis=0)), (left, image.height))
    draw = ImageDraw.Draw(out)
    draw.rectangle((left, image.height, left + width - 1, image.height + BAR - 1), outline="black")
    below = image.height + BAR + 2
    for text, x, anchor in zip(ticks, (left, left + width // 2, left + width - 1), ("lt", "mt", "rt")):
        draw.line((x, image.height + BAR - 4, x, image.height + BAR + 1), fill="black")
        draw.text((x, below), text, fill="black", font=font, anchor=anchor)
    draw.text((left - 2 * GAP - 2, image.height + BAR // 2), name, fill="black", font=font, anchor="rm")
    return out


def captioned(image: Image.Image, lines: Sequence[str]) -> Image.Image:
    """`image` with `lines` of text below it, widened to fit the longest."""
    font, lines = picture_font(tuple(lines), CAPTION_SIZE)
    line_height = CAPTION_SIZE + 4
    text_width = max((int(font.getlength(line)) for line in lines), default=0) + 2 * GAP + 4
    out = Image.new("RGB", (max(image.width, text_width), image.height + line_height * len(lines) + GAP), BACKGROUND)
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    for index, line in enumerate(lines):
        draw.text((GAP + 2, image.height + index * line_height), line, fill="black", font=font)
    return out


def beside(images: Sequence[Image.Image]) -> Image.Image:
    """`images` in a row, GAP pixels apart, top-aligned on the background (zoo compare's two runs' panels)."""
    out = Image.new("RGB", (sum(image.width for image in images) + GAP * (len(images) - 1),
                            max(image.height for image in images)), BACKGROUND)
    left = 0
    for image in images:
        out.paste(image, (left, 0))
        left += image.width + GAP
    return out


def stacked(images: Sequence[Image.Image]) -> Image.Image:
    """`images` one under another, 2 x GAP pixels apart, left-aligned on the background."""
    out = Image.new("RGB", (max(image.width for image in images),
                            sum(image.height for image in images) + 2 * GAP * (len(images) - 1)), BACKGROUND)
    top = 0
    for image in images:
        out.paste(image, (0, top))
        top += image.height + 2 * GAP
    return out


def reconstruction_grid(rows: Sequence[tuple[str, torch.Tensor]], title: str = "") -> Image.Image:
    """An autoencoder's pictures: one row per (name, N x C x H x W [0, 1] pictures) pair (input, noisy input,
    output), the same N pictures in every row, each row's name below it, `title` at the bottom."""
    grids = []
    for name, pictures in rows:
        pixels = (pictures.detach().float().cpu().clamp(0, 1) * 255).round().byte()
        tiles = pixels[:, 0].numpy() if pixels.shape[1] != 3 else pixels.permute(0, 2, 3, 1).numpy()
        grids.append(tile_grid(tiles, name, columns=len(tiles)))
    return captioned(stacked(grids), [title]) if title else stacked(grids)


def _normalized(rows: torch.Tensor) -> torch.Tensor:
    """Each row onto [0, 1] by its own min and max; a constant row becomes 0."""
    low = rows.min(dim=1, keepdim=True).values
    span = rows.max(dim=1, keepdim=True).values - low
    return torch.where(span > 0, (rows - low) / span.clamp_min(1e-12), torch.zeros_like(rows))


def _bytes(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded."""
    return np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)


@functools.cache
def _colormap() -> np.ndarray:
    """COLORMAP as a 256 x 3 uint8 lookup table; matplotlib is imported here only (0.3 s)."""
    import matplotlib

    return _bytes(matplotlib.colormaps[COLORMAP](np.linspace(0, 1, 256))[:, :3])


def error_overlay(picture: np.ndarray, reconstruction: np.ndarray, heat: np.ndarray,
                  caption: Sequence[str]) -> Image.Image:
    """An autoencoder's reconstruction error, three panels: `picture` and its `reconstruction` (H x W x 3 uint8, as
    the network saw and gave them) and the picture under `heat` (H x W in [0, 1]: each pixel's squared error over
    the largest), as heatmap_overlay draws them."""
    return heatmap_overlay(picture, heat, caption, between=(reconstruction,))
