"""Resampling: interpolation (upsampling, downsampling) and adaptive average pooling."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import shapes
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..kernels import resample as kernels
from ..tensor import Tensor, make
from ..tracing import traced
from ._common import _batched, _unbatch, as_tensor

MODES = ("nearest", "nearest-exact", "linear", "bilinear")
_RANK = {"linear": 3, "bilinear": 4}  # the nearest modes take 3-D and 4-D inputs


@traced("interpolate")
def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the height and width of a volume (PyTorch's ``interpolate``).

    Each output cell takes its value from the input cells nearest to where it falls in the
    input: ``'nearest'`` copies one cell, ``'bilinear'`` mixes the 2 x 2 cells around that
    point by their distances.

    Parameters
    ----------
    input : array_like of shape (N, C, H, W), or (N, C, W) for the 1-D modes
        As in PyTorch, a 3-D input is a batch of 1-D signals (``'nearest'``,
        ``'nearest-exact'``, ``'linear'``), not an unbatched image.
    size : int or (int, int), optional
        The output size. Give exactly one of ``size`` and ``scale_factor``.
    scale_factor : float or (float, float), optional
        ``out = floor(in * scale_factor)``.
    mode : {'nearest', 'nearest-exact', 'bilinear', 'linear'}
        ``'nearest'`` is PyTorch's legacy rule, source cell ``floor(i * s)``;
        ``'nearest-exact'`` is ``floor((i + 0.5) * s)`` (Pillow's, scikit-image's), with
        ``s = 1 / scale_factor`` or ``in / out``.
    align_corners : bool, optional
        Linear modes only. True: the corner cells of input and output line up, source
        coordinate ``i * (in - 1) / (out - 1)``. False (default): cells are areas, source
        coordinate ``(i + 0.5) * s - 0.5``, clamped at 0.
    recompute_scale_factor : bool, optional
        With ``scale_factor``: True computes ``s`` from the sizes (``in / out``) instead of
        ``1 / scale_factor``.
    antialias : bool
        Only False (PyTorch's default) is supported.

    Returns
    -------
    Tensor of shape (N, C, H_out, W_out)

    Shape:
        ``H_out = size[0]`` or ``floor(H * scale_factor[0])``, the same for ``W_out``
        (:func:`convscope.shapes.interpolate_out`).

    Examples
    --------
    >>> import numpy as np, convscope as cs
    >>> x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    >>> cs.functional.interpolate(x, scale_factor=2).numpy()[0, 0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [2., 2., 3., 3.],
           [2., 2., 3., 3.]], dtype=float32)
    >>> cs.functional.interpolate(x, size=3, mode="bilinear", align_corners=True).numpy()[0, 0]
    array([[0. , 0.5, 1. ],
           [1. , 1.5, 2. ],
           [2. , 2.5, 3. ]], dtype=float32)
    """
    return interpolate_at(
        input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias,
        "interpolate",
    )


def check_mode(mode: Any, align_corners: Any, antialias: Any, ndim: int | None,
               where: str) -> None:
    """Refuse an unknown mode, ``align_corners`` with a nearest mode, ``antialias``, and (when
    ``ndim`` is given) an input rank the mode does not take."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ArgumentError(
            message(
                where,
                f"unknown or unsupported mode {mode!r}",
                f"use one of {', '.join(repr(m) for m in MODES)}",
                f"mode={mode!r}",
            )
        )
    if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
        raise ArgumentTypeError(
            message(where, "`align_corners` must be True, False or None",
                    "pass align_corners=False", f"align_corners={align_corners!r}")
        )
    if align_corners is not None and mode not in _RANK:
        raise ArgumentError(
            message(
                where,
                f"align_corners applies to the linear modes only, not to {mode!r}",
                "drop align_corners (or use mode='bilinear')",
                f"mode={mode!r}, align_corners={align_corners!r}",
            )
        )
    if antialias:
        raise ArgumentError(
            message(where, "antialias=True is not supported", "use antialias=False",
                    f"antialias={antialias!r}")
        )
    rank = _RANK.get(mode)
    if ndim is None:
        return
    if ndim not in (3, 4) or (rank is not None and ndim != rank):
        want = (f"a {rank}-D input" if rank else "a 3-D (N, C, W) or 4-D (N, C, H, W) input")
        fix = ("add a batch axis with x[None] (a 3-D input is read as (N, C, W), as in "
               "PyTorch)" if ndim == 3 else "pass (N, C, H, W) images, or (N, C, W) signals")
        raise ShapeError(
            message(where, f"mode {mode!r} needs {want}, got {ndim}-D", fix,
                    f"input with {ndim} axes")
        )


def interpolate_at(
    input: Any,
    size: Any,
    scale_factor: Any,
    mode: str,
    align_corners: bool | None,
    recompute_scale_factor: bool | None,
    antialias: bool,
    where: str,
) -> Tensor:
    """:func:`interpolate` with the caller's name in its error messages (for layers)."""
    x = as_tensor(input, where)
    check_mode(mode, align_corners, antialias, x.ndim, where)
    in_size = x.shape[2:]
    out, scales = shapes.interpolate_out(in_size, size, scale_factor, recompute_scale_factor,
                                         where)
    shapes.check_size(x.shape[:2] + out, where, itemsize=x.dtype.itemsize)
    kmode = "linear" if mode in _RANK else mode
    corners = bool(align_corners)
    y = kernels.interpolate(np.ascontiguousarray(x.data), out, kmode, corners, scales)
    return make(
        y,
        (x,),
        lambda g: (kernels.interpolate_grad(np.asarray(g), in_size, kmode, corners, scales),),
        "interpolate",
    )


@traced("adaptive_avg_pool2d")
def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Average pooling to a chosen output size, whatever the input size.

    Output cell ``(i, j)`` is the mean of the input window of rows
    ``[floor(i * H / H_out), ceil((i + 1) * H / H_out))`` and the columns likewise
    (PyTorch's windows; they may overlap). ``output_size=1`` is global average pooling:
    one mean per feature map, as in ResNet's head.

    Parameters
    ----------
    input : array_like of shape (N, C, H, W) or (C, H, W)
    output_size : int or (int, int)
        An entry None keeps that input size.

    Returns
    -------
    Tensor of shape (N, C, H_out, W_out)

    Shape:
        ``(H_out, W_out) = output_size`` (:func:`convscope.shapes.adaptive_out`).

    Examples
    --------
    >>> import numpy as np, convscope as cs
    >>> x = np.ones((1, 512, 7, 7), np.float32)            # 7x7x512 feature maps
    >>> cs.functional.adaptive_avg_pool2d(x, 1).shape      # one mean per map
    (1, 512, 1, 1)
    """
    return adaptive_avg_pool2d_at(input, output_size, "adaptive_avg_pool2d")


def adaptive_avg_pool2d_at(input: Any, output_size: Any, where: str) -> Tensor:
    """:func:`adaptive_avg_pool2d` with the caller's name in its error messages."""
    x, unbatched = _batched(as_tensor(input, where), where)
    hw = x.shape[2:]
    out = shapes.adaptive_out(output_size, hw, where)
    shapes.check_size(x.shape[:2] + out, where, itemsize=x.dtype.itemsize)
    y = kernels.adaptive_avg_pool2d(np.ascontiguousarray(x.data), out)
    node = make(
        y, (x,), lambda g: (kernels.adaptive_avg_pool2d_grad(np.asarray(g), hw),),
        "adaptive_avg_pool2d",
    )
    return _unbatch(node, unbatched)
