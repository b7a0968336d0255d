"""Colour maps for feature maps and kernels: diverging (blue - white - red) and grey.

Feature maps hold negative and positive values; a diverging map shows their sign at a
glance: blue below zero, white at zero, red above, symmetric around 0 so that equal and
opposite values get equally strong colours.

>>> import numpy as np
>>> diverging(np.array([-1.0, 0.0, 1.0])).tolist()
[[5, 48, 97], [255, 255, 255], [103, 0, 31]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["DIVERGING", "diverging", "grey", "symmetric_limit", "map_limits"]

# ColorBrewer RdBu (reversed), with a pure white centre: index 0 = most negative.
DIVERGING = np.array([
    (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
    (255, 255, 255),
    (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
], np.float64)


def symmetric_limit(values: np.ndarray) -> float:
    """The largest absolute finite value (0.0 for an empty or all-zero array)."""
    v = np.abs(np.asarray(values, np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else 0.0


def map_limits(maps: object, rel: float = 1e-4, floor: float = 1e-6) -> list[float]:
    """Per-map colour limits (each map's largest |value|), with rounding noise shown as 0.

    A map whose largest |value| is below ``rel`` times the largest of all the maps (or below
    ``floor``) holds float rounding noise, not signal (a horizontal-edge kernel on a purely
    vertical edge gives values near 1e-8); its limit is 0, so it is drawn white instead of
    the noise being stretched to full colour.

    >>> import numpy as np
    >>> map_limits([np.array([3.0, -1.0]), np.array([4e-8, 0.0])])
    [3.0, 0.0]
    """
    own = [symmetric_limit(m) for m in maps]  # type: ignore[attr-defined]
    cut = max(floor, rel * max(own, default=0.0))
    return [v if v >= cut else 0.0 for v in own]


def _lookup(t: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] to colours by linear interpolation between the table's rows."""
    pos = np.clip(t, 0.0, 1.0) * (len(table) - 1)
    lo = np.floor(pos).astype(np.int64).clip(0, len(table) - 2)
    frac = (pos - lo)[..., None]
    rgb = table[lo] * (1 - frac) + table[lo + 1] * frac
    return np.rint(rgb).astype(np.uint8)


def diverging(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """RGB uint8 of shape ``values.shape + (3,)``: -vmax blue, 0 white, +vmax red.

    ``vmax`` defaults to the largest absolute value (so each map uses its full colour range);
    an all-zero map is white. NaN shows as mid grey.
    """
    v = np.asarray(values, np.float64)
    limit = symmetric_limit(v) if vmax is None else float(vmax)
    t = np.full(v.shape, 0.5) if limit <= 0 else 0.5 + 0.5 * np.nan_to_num(v) / limit
    rgb = _lookup(t, DIVERGING)
    rgb[np.isnan(v)] = 128
    return rgb


def grey(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """RGB uint8 grey levels: ``vmin`` (default: the minimum) black, ``vmax`` white."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    lo = float(finite.min()) if vmin is None and finite.size else float(vmin or 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else float(
        1.0 if vmax is None else vmax)
    t = np.zeros(v.shape) if hi <= lo else (np.nan_to_num(v, nan=lo) - lo) / (hi - lo)
    g = np.rint(np.clip(t, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
