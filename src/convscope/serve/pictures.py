"""The pictures the page shows, as PNG bytes: feature maps tiled in an atlas, thumbnails,
one map, the image.

Colours are the library's (:mod:`convscope.viz.colors`): blue below zero, white at zero, red
above, each map on its own symmetric scale (a map of rounding noise stays white). An atlas
puts every map of a node side by side at one pixel per value, in the layout
:func:`atlas_layout` gives; the page reads the same layout from ``/api/model`` to turn a click
into (channel, row, column).
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..viz.colors import diverging, map_limits, symmetric_limit
from ..viz.receptive import image_rgb

__all__ = ["atlas_layout", "atlas", "thumbnails", "one_map", "image_png", "png_bytes"]

_GAP_COLOUR = 236  # light grey between maps
_FRAME = (196, 201, 209)  # around each thumbnail
THUMB_MAPS = 8  # maps in a node's thumbnail strip
THUMB_SIDE = 40  # longest side of one thumbnail map, in pixels


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes (fast compression: these pictures are made on demand)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(buffer, format="PNG",
                                                             compress_level=1)
    return buffer.getvalue()


def atlas_layout(shape: tuple[int, ...]) -> dict:
    """Where each map of a node's output lies in its atlas.

    (C, H, W): C tiles of H x W in ``cols`` columns, ``gap`` pixels apart, close to square.
    A flat output of F values is one tile of ``rows`` x ``cols`` values in reading order
    (``flat`` is True; cells past F are grey).
    """
    if len(shape) == 3:
        c, h, w = (int(v) for v in shape)
        gap = 1 if max(h, w) <= 16 else 2
        cols = max(1, min(c, round(math.sqrt(c * (h + gap) / (w + gap)))))
        rows = math.ceil(c / cols)
        return {"flat": False, "cols": cols, "rows": rows, "tile": [h, w], "gap": gap,
                "width": cols * (w + gap) - gap, "height": rows * (h + gap) - gap}
    n = math.prod(int(v) for v in shape)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    return {"flat": True, "cols": cols, "rows": rows, "tile": [rows, cols], "gap": 0,
            "width": cols, "height": rows, "count": n}


def _coloured(maps: np.ndarray) -> np.ndarray:
    """(C, H, W) values -> (C, H, W, 3) colours, each map on its own scale."""
    limits = map_limits(maps)
    return np.stack([diverging(m, vmax=v) for m, v in zip(maps, limits, strict=True)])


def _flat_grid(values: np.ndarray) -> np.ndarray:
    """Flat values as the one tile of :func:`atlas_layout`, coloured (grey past the end)."""
    v = np.asarray(values, np.float64).ravel()
    lay = atlas_layout(v.shape)
    cells = np.zeros(lay["rows"] * lay["cols"])
    cells[:v.size] = v
    rgb = diverging(cells.reshape(lay["rows"], lay["cols"]), vmax=symmetric_limit(v))
    rgb.reshape(-1, 3)[v.size:] = _GAP_COLOUR  # past the last value
    return rgb


def atlas(values: np.ndarray) -> bytes:
    """Every map of a node at one pixel per value, tiled as :func:`atlas_layout` says."""
    v = np.asarray(values)
    if v.ndim != 3:
        return png_bytes(_flat_grid(v))
    lay = atlas_layout(v.shape)
    (h, w), gap = lay["tile"], lay["gap"]
    canvas = np.full((lay["height"], lay["width"], 3), _GAP_COLOUR, np.uint8)
    for k, tile in enumerate(_coloured(v)):
        r, c = divmod(k, lay["cols"])
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return png_bytes(canvas)


def _shrink(tile: np.ndarray, side: int) -> np.ndarray:
    """Nearest-neighbour: at most ``side`` pixels along each axis."""
    h, w = tile.shape[:2]
    rows = np.linspace(0, h - 1, min(h, side)).round().astype(int)
    cols = np.linspace(0, w - 1, min(w, side)).round().astype(int)
    return tile[rows][:, cols]


def _framed(tile: np.ndarray) -> np.ndarray:
    """A one-pixel grey frame, so that a white (all-zero) map still shows where it is."""
    out = np.empty((tile.shape[0] + 2, tile.shape[1] + 2, 3), np.uint8)
    out[...] = _FRAME
    out[1:-1, 1:-1] = tile
    return out


def thumbnails(values: np.ndarray, count: int = THUMB_MAPS, side: int = THUMB_SIDE) -> bytes:
    """The first ``count`` maps of a node, each at most ``side`` pixels, in a row (a flat
    output: its values as one small grid)."""
    v = np.asarray(values)
    if v.ndim != 3:
        return png_bytes(_shrink(_flat_grid(v), 2 * side))
    tiles = [_framed(_shrink(t, side)) for t in _coloured(v[:count])]
    h = max(t.shape[0] for t in tiles)
    gap = 3
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    canvas = np.full((h, width, 3), 255, np.uint8)
    x = 0
    for t in tiles:
        canvas[:t.shape[0], x:x + t.shape[1]] = t
        x += t.shape[1] + gap
    return png_bytes(canvas)


def one_map(values: np.ndarray) -> bytes:
    """One feature map (H, W) at one pixel per value, on its own scale."""
    return png_bytes(diverging(values))


def image_png(image: np.ndarray) -> bytes:
    """The input volume as a picture (an RGB or grey image as it is, else the channel mean)."""
    return png_bytes(image_rgb(image))
