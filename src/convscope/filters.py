"""Classic image kernels by name, made as deep as the image they will slide over.

The slides' rule is *kernel depth = input depth*: a kernel for a 64x64x3 image is kxkx3. A
2-D filter such as Sobel becomes a kxkxD kernel whose every depth slice is the 2-D filter
divided by D, so it acts on the mean intensity of the D channels (a grey-level filter on a
colour image). The colour detectors use the depth instead: ``red`` is +1 on the red slice
and -1/2 on green and blue, so it answers "how much redder than the rest is this pixel".

Convolution here is cross-correlation, as in every CNN library: ``sobel-x`` gives positive
values where brightness rises to the right, ``sobel-y`` where it rises downwards.

>>> w, names = bank("sobel-x,gaussian,red", depth=3)
>>> w.shape, names                # 3 kernels of 5x5x3 (the 3x3 ones zero-padded to 5x5)
((3, 3, 5, 5), ['sobel-x', 'gaussian', 'red'])
>>> float(w[0].sum()), float(w[1].sum())
(0.0, 1.0)
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np

from .errors import ArgumentError, message

__all__ = ["FILTERS", "COLOURS", "names", "describe", "kernel2d", "kernel", "bank"]


def _gaussian5() -> np.ndarray:
    row = np.array([1, 4, 6, 4, 1], np.float64)
    return np.outer(row, row) / 256.0


FILTERS: dict[str, tuple[str, np.ndarray]] = {
    "sobel-x": ("vertical edges: + where brightness rises to the right",
                np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)),
    "sobel-y": ("horizontal edges: + where brightness rises downwards",
                np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float64)),
    "laplacian": ("spots and thin lines: + on a dark dot, - on a bright one",
                  np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float64)),
    "gaussian": ("blur: weighted mean of the 5x5 neighbourhood (sigma about 1)", _gaussian5()),
    "box": ("blur: plain mean of the 3x3 neighbourhood", np.full((3, 3), 1 / 9)),
    "sharpen": ("sharpen: the pixel boosted against its 4 neighbours",
                np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float64)),
    "emboss": ("relief: + where brightness rises towards the bottom right",
               np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float64)),
    "edge": ("outline: the pixel minus its 8 neighbours, 0 on flat areas",
             np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float64)),
    "identity": ("the image itself (a single 1 in the middle)",
                 np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float64)),
}

COLOURS: dict[str, tuple[str, int]] = {
    "red": ("red detector: red minus the mean of green and blue", 0),
    "green": ("green detector: green minus the mean of red and blue", 1),
    "blue": ("blue detector: blue minus the mean of red and green", 2),
}


def names() -> list[str]:
    """Every known kernel name, grey-level filters first."""
    return list(FILTERS) + list(COLOURS)


def describe(name: str) -> str:
    """One line saying what the kernel responds to."""
    _check_name(name)
    return FILTERS[name][0] if name in FILTERS else COLOURS[name][0]


def _check_name(name: str) -> None:
    if name not in FILTERS and name not in COLOURS:
        close = [n for n in names() if name and n.startswith(name)] or \
            difflib.get_close_matches(name, names(), 1)
        raise ArgumentError(message(
            "filters", f"unknown kernel {name!r}",
            (f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "")
            + "Known kernels: "
            + ", ".join(names()), f"{name!r}"))


def kernel2d(name: str) -> np.ndarray:
    """The 2-D filter (float64) behind a grey-level kernel name."""
    _check_name(name)
    if name in COLOURS:
        raise ArgumentError(message("filters", f"{name!r} is a colour detector, not a 2-D filter",
                                    "use kernel(name, depth=3)"))
    return FILTERS[name][1].copy()


def kernel(name: str, depth: int) -> np.ndarray:
    """One kernel of shape (depth, k, k), float32, as deep as the image.

    Grey-level filters: every depth slice is the 2-D filter / depth. Colour detectors: a 1x1
    kernel (+1 on its channel, -1/2 on the two others); they need depth 3 (RGB).
    """
    _check_name(name)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ArgumentError(message("filters", "depth must be a positive int",
                                    "pass the image's channel count, e.g. depth=3",
                                    f"depth={depth!r}"))
    if name in COLOURS:
        if depth != 3:
            raise ArgumentError(message(
                "filters", f"the colour detector {name!r} needs an RGB image (depth 3)",
                "load the image with 3 channels, or drop the colour detectors",
                f"depth={depth}"))
        out = np.full((3, 1, 1), -0.5, np.float32)
        out[COLOURS[name][1]] = 1.0
        return out
    k2 = FILTERS[name][1]
    return np.repeat((k2 / depth)[None], depth, axis=0).astype(np.float32)


def bank(kernel_names: str | Sequence[str], depth: int) -> tuple[np.ndarray, list[str]]:
    """Several kernels as one conv weight of shape (O, depth, k, k), float32.

    Smaller kernels are zero-padded around their centre to the largest size, so one conv2d
    call applies them all (a 3x3 filter inside a 5x5 frame computes the same values).

    Parameters
    ----------
    kernel_names : "sobel-x,sobel-y" or a sequence of names
    depth : int
        The image's depth (channels).
    """
    if isinstance(kernel_names, str):
        kernel_names = [n.strip() for n in kernel_names.split(",")]
    picked = [str(n).strip().lower() for n in kernel_names if str(n).strip()]
    if not picked:
        raise ArgumentError(message("filters", "no kernel names given",
                                    "pass e.g. 'sobel-x,sobel-y'; known kernels: "
                                    + ", ".join(names())))
    kernels = [kernel(n, depth) for n in picked]
    size = max(k.shape[-1] for k in kernels)
    weight = np.zeros((len(kernels), depth, size, size), np.float32)
    for i, k in enumerate(kernels):
        off = (size - k.shape[-1]) // 2
        weight[i, :, off:off + k.shape[-1], off:off + k.shape[-1]] = k
    return weight, picked
