"""A generated dataset of coloured shapes: ten classes a small CNN can learn in minutes.

Every image is a ``size x size x 3`` volume holding one shape of a random size, a small
random shift and rotation, and a random light colour, on a dark background with its own
colour, a gentle gradient and pixel noise. What tells the classes apart is the outline,
never the colour.

Everything comes from ``np.random.default_rng(seed)`` with vectorised NumPy masks: the
same ``(n, size, seed)`` gives the same bytes (on one machine and NumPy version; vectorised
``sin``/``cos`` may differ in the last bit elsewhere, which can move an edge pixel).

Measured with a plain-NumPy Tiny VGG (4 conv 3x3 of 10 kernels, 2 max-pools, linear
1690 -> 10; Adam 1e-3, batch 32, default 80/10/10 split of 3000, one run each): test
accuracy 95% after 3 epochs and 99% after 5 (300 test images). With the centre jitter at
12% of the side, or dark-on-light shapes mixed in, the same run reached only 92-96% after 5.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, message
from .datasets import Dataset

__all__ = ["SHAPE_CLASSES", "shapes"]

SHAPE_CLASSES = (
    "circle",
    "square",
    "triangle",
    "diamond",
    "star",
    "plus",
    "ring",
    "hollow square",
    "horizontal bar",
    "vertical bar",
)
"""Class names of :func:`shapes`, in label order."""

# Geometry, as fractions of the side. The centre moves little on purpose: a small CNN
# that ends in flatten + linear (Tiny VGG) learns each position separately, so wide
# jitter would make the set a test of data quantity rather than of shape recognition.
_RADIUS = (0.2, 0.38)
_SHIFT = 0.08
_CHUNK = 256  # images drawn per step: bounds memory, fixed so results never depend on it
_STAR_INNER = 0.45  # inner radius of the 5-point star, as a fraction of the outer one
_SIN36 = np.sin(np.pi / 5)


def _star(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Inside a 5-point star of outer radius 1, one point up (y grows downward)."""
    rho = np.hypot(dx, dy)
    phi = np.mod(np.arctan2(dy, dx) + np.pi / 2, 2 * np.pi / 5)  # 0 at an outer point
    alpha = np.minimum(phi, 2 * np.pi / 5 - phi)  # 0 at an outer point, pi/5 at an inner one
    edge = _STAR_INNER * _SIN36 / (np.sin(alpha) + _STAR_INNER * np.sin(np.pi / 5 - alpha))
    return rho <= edge


def _triangle(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Inside an equilateral triangle of circumradius 1 around its centroid, point up."""
    h = np.float32(np.sqrt(3) / 2)
    return (dy <= 0.5) & (h * dx - 0.5 * dy <= 0.5) & (-h * dx - 0.5 * dy <= 0.5)


def _box(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(dx), np.abs(dy))


# One mask per class, in the coordinates of a shape of "radius" 1 centred at 0.
_MASKS = (
    lambda dx, dy: dx * dx + dy * dy <= 1.0,
    lambda dx, dy: _box(dx, dy) <= 0.85,
    _triangle,
    lambda dx, dy: np.abs(dx) + np.abs(dy) <= 1.0,
    _star,
    lambda dx, dy: (
        ((np.abs(dx) <= 0.3) & (np.abs(dy) <= 1.0)) | ((np.abs(dy) <= 0.3) & (np.abs(dx) <= 1.0))
    ),
    lambda dx, dy: (dx * dx + dy * dy <= 1.0) & (dx * dx + dy * dy >= 0.55**2),
    lambda dx, dy: (_box(dx, dy) <= 0.85) & (_box(dx, dy) >= 0.5),
    lambda dx, dy: (np.abs(dx) <= 1.0) & (np.abs(dy) <= 0.28),
    lambda dx, dy: (np.abs(dy) <= 1.0) & (np.abs(dx) <= 0.28),
)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs of shape (n,) in [0, 1], output (n, 3)."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], 1),
            np.stack([q, v, p], 1),
            np.stack([p, v, t], 1),
            np.stack([p, q, v], 1),
            np.stack([t, p, v], 1),
            np.stack([v, p, q], 1),
        ]
    )
    return table[i, np.arange(len(h))]


def _colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours (n, 3): a light shape on a dark background."""
    fg = _hsv_to_rgb(rng.random(n), rng.uniform(0.2, 1.0, n), rng.uniform(0.65, 1.0, n))
    bg = _hsv_to_rgb(rng.random(n), rng.uniform(0.0, 0.6, n), rng.uniform(0.0, 0.3, n))
    return fg, bg


def shapes(n: int = 3000, size: int = 64, seed: int = 0) -> Dataset:
    """Generate ``n`` images of coloured shapes in 10 balanced classes.

    Classes (see :data:`SHAPE_CLASSES`): circle, square, triangle, diamond, star, plus,
    ring, hollow square, horizontal bar, vertical bar. Each image has one shape whose
    radius is 20-38% of the side, its centre shifted up to 8% of the side from the image
    centre, rotated by up to 15 degrees, in a random light colour; the background has a
    random dark colour, a linear gradient and Gaussian pixel noise (sd 0.02-0.08).

    Parameters
    ----------
    n : int
        Number of images; class counts differ by at most one.
    size : int
        Side of the square images, at least 16.
    seed : int
        Same seed, same bytes.

    Returns
    -------
    Dataset
        ``images`` of shape (n, 3, size, size) float32 in [0, 1], ``labels`` (n,).

    Examples
    --------
    >>> ds = shapes(n=20, size=32, seed=0)
    >>> ds.images.shape, ds.classes[:3], ds.counts().tolist()
    ((20, 3, 32, 32), ['circle', 'square', 'triangle'], [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    """
    for name, value, low in (("n", n, 0), ("size", size, 16)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ArgumentTypeError(
                message(
                    "shapes",
                    f"{name} must be an int",
                    f"pass e.g. {name}={max(low, 64)}",
                    f"{name}={value!r}",
                )
            )
        if value < low:
            raise ArgumentError(
                message(
                    "shapes",
                    f"{name} must be at least {low}",
                    f"pass e.g. {name}=64",
                    f"{name}={value!r}",
                )
            )
    n, size = int(n), int(size)
    rng = np.random.default_rng(seed)
    k = len(SHAPE_CLASSES)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % k)
    radius = rng.uniform(*_RADIUS, n) * size
    reach = np.minimum(size / 2 - radius - 1.0, _SHIFT * size)  # stay inside the image
    cx = (size - 1) / 2 + rng.uniform(-1, 1, n) * reach
    cy = (size - 1) / 2 + rng.uniform(-1, 1, n) * reach
    angle = rng.uniform(-np.pi / 12, np.pi / 12, n)
    fg, bg = _colours(rng, n)
    grad_dir = rng.uniform(0, 2 * np.pi, n)
    grad_amp = rng.uniform(0.0, 0.15, n)
    noise_sd = rng.uniform(0.02, 0.08, n)

    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    pix = np.arange(size, dtype=np.float32)
    images = np.empty((n, 3, size, size), np.float32)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        m = sl.stop - sl.start

        def f32(a: np.ndarray, sl: slice = sl) -> np.ndarray:
            return a[sl].astype(np.float32)[:, None, None]

        x = (pix[None, None, :] - f32(cx)) / f32(radius)
        y = (pix[None, :, None] - f32(cy)) / f32(radius)
        cos, sin = np.cos(f32(angle)), np.sin(f32(angle))
        dx, dy = cos * x + sin * y, cos * y - sin * x
        mask = np.zeros((m, size, size), bool)
        chunk_labels = labels[sl]
        for label, inside in enumerate(_MASKS):
            pick = chunk_labels == label
            if pick.any():
                mask[pick] = inside(dx[pick], dy[pick])
        shade = f32(grad_amp) * (
            np.cos(f32(grad_dir)) * ramp[None, None, :]
            + np.sin(f32(grad_dir)) * ramp[None, :, None]
        )
        noise = rng.standard_normal((m, 3, size, size), dtype=np.float32)
        noise *= noise_sd[sl].astype(np.float32)[:, None, None, None]
        block = np.where(
            mask[:, None],
            fg[sl].astype(np.float32)[:, :, None, None],
            bg[sl].astype(np.float32)[:, :, None, None] + shade[:, None],
        )
        block += noise
        np.clip(block, 0.0, 1.0, out=images[sl])
    return Dataset(images, labels, list(SHAPE_CLASSES), name="shapes")
