"""Convolution arithmetic: output sizes, padding forms, receptive fields, parameter counts.

Pure Python, no arrays. Every other module asks this one what size a result has, so the
formula lives in exactly one place::

    H_out = floor((H + pad_top + pad_bottom - dilation * (k - 1) - 1) / stride) + 1

The slides' numbers, checked by hand:

>>> conv_out(64, 5)                     # 5x5 kernel, no padding: 60
60
>>> conv_out(64, 5, pad_total=4)        # padding=2 on both sides: 64
64
>>> conv_out(64, 5, pad_total=2)        # padding=1 (the deck's slip): 62, not 64
62
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ArgumentError, ArgumentTypeError, ShapeError, message

__all__ = [
    "Pair",
    "Padding",
    "conv_out",
    "pool_out",
    "pair",
    "conv_padding",
    "same_padding",
    "padding_for",
    "ConvGeometry",
    "conv_geometry",
    "pool_geometry",
    "receptive_field",
    "check_size",
    "MAX_RESULT_BYTES",
    "conv_transpose_out",
    "ConvTransposeGeometry",
    "conv_transpose_args",
    "conv_transpose_geometry",
    "conv_transpose_output_padding",
    "adaptive_window",
    "adaptive_out",
    "interpolate_out",
]

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def conv_out(size: int, k: int, stride: int = 1, pad_total: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis (may be <= 0 when the kernel does not fit)."""
    return (size + pad_total - dilation * (k - 1) - 1) // stride + 1


def pool_out(
    size: int, k: int, stride: int, pad: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Output length of a pooling window along one axis, with PyTorch's ceil_mode rule.

    With ``ceil_mode`` a last, partial window is kept unless it would start inside the right
    padding (PyTorch and ONNX drop that one).

    >>> pool_out(5, 2, 2), pool_out(5, 2, 2, ceil_mode=True)
    (2, 3)
    """
    span = size + 2 * pad - dilation * (k - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad:
            out -= 1
    else:
        out = span // stride + 1
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def pair(value: object, name: str, where: str, minimum: int = 1) -> Pair:
    """Normalise an int-or-pair argument (``3`` or ``(3, 5)``) and check its lower bound."""
    if _is_int(value):
        out = (int(value), int(value))  # type: ignore[call-overload]
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_int(v) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise ArgumentTypeError(
            message(
                where,
                f"`{name}` must be an int or a pair of ints",
                f"pass e.g. {name}=3 or {name}=(3, 3)",
                f"{name}={value!r}",
            )
        )
    if min(out) < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ArgumentError(
            message(
                where,
                f"`{name}` must be {bound}",
                f"use {name}={minimum} or larger",
                f"{name}={value!r}",
            )
        )
    return out


def same_padding(size: int, k: int, stride: int, dilation: int) -> Pair:
    """Padding (before, after) that gives ``ceil(size / stride)`` outputs, extra at the end.

    This is PyTorch's ``padding='same'`` (stride 1) and ONNX's ``SAME_UPPER`` (any stride).

    >>> same_padding(64, 5, 1, 1), same_padding(64, 4, 1, 1)
    ((2, 2), (1, 2))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def conv_padding(
    padding: object,
    kernel: Pair,
    dilation: Pair,
    where: str,
    stride: Pair = (1, 1),
    input_hw: Pair | None = None,
) -> Padding | str:
    """Normalise every padding form to ``((top, bottom), (left, right))``.

    Accepted: ``int``; ``(ph, pw)``; ``((top, bottom), (left, right))``; ``'valid'``;
    ``'same'``. ``'same'`` depends on the input size only when stride > 1; without
    ``input_hw`` it is returned as the string ``'same'`` and resolved at call time.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode == "same":
            if stride == (1, 1):
                return tuple(  # type: ignore[return-value]
                    same_padding(1, k, 1, d) for k, d in zip(kernel, dilation, strict=True)
                )
            if input_hw is None:
                return "same"
            return tuple(  # type: ignore[return-value]
                same_padding(n, k, s, d)
                for n, k, s, d in zip(input_hw, kernel, stride, dilation, strict=True)
            )
        raise ArgumentError(
            message(
                where,
                "`padding` must be an int, a pair, ((top, bottom), (left, right)), "
                "'valid' or 'same'",
                "use padding='same' to keep the size, or padding=0",
                f"padding={padding!r}",
            )
        )
    if (
        isinstance(padding, Sequence)
        and len(padding) == 2
        and all(isinstance(p, Sequence) and not isinstance(p, str) for p in padding)
    ):
        pads = tuple(pair(p, "padding", where, minimum=0) for p in padding)
        return (pads[0], pads[1])
    ph, pw = pair(padding, "padding", where, minimum=0)
    return ((ph, ph), (pw, pw))


@dataclass(frozen=True)
class ConvGeometry:
    """Everything a kernel needs to know about one convolution, normalised and checked."""

    stride: Pair
    padding: Padding
    dilation: Pair
    groups: int
    out_hw: Pair


def conv_geometry(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: object = 1,
    padding: object = 0,
    dilation: object = 1,
    groups: object = 1,
    where: str = "conv2d",
) -> ConvGeometry:
    """Check a conv2d request against the volumes and return its normalised geometry.

    ``input_shape`` is ``(N, C, H, W)``; ``weight_shape`` is ``(C_out, C_in/groups, kh, kw)``.
    Raises a :class:`ShapeError` or :class:`ArgumentError` with the numbers and a fix.
    """
    s = pair(stride, "stride", where)
    d = pair(dilation, "dilation", where)
    if not _is_int(groups):
        raise ArgumentTypeError(
            message(where, "`groups` must be an int", "pass groups=1", f"groups={groups!r}")
        )
    g = int(groups)  # type: ignore[call-overload]
    if g < 1:
        raise ArgumentError(
            message(where, "`groups` must be positive", "use groups=1", f"groups={g}")
        )
    n, c, h, w = input_shape
    o, cg, kh, kw = weight_shape
    if c % g or o % g:
        raise ArgumentError(
            message(
                where,
                "`groups` must divide both in_channels and out_channels",
                f"choose groups from the common divisors of {c} and {o}",
                f"in_channels={c}, out_channels={o}, groups={g}",
            )
        )
    if cg * g != c:
        raise ShapeError(
            message(
                where,
                f"input depth {c} does not match kernel depth {cg}"
                + (f" x {g} groups" if g > 1 else "")
                + " (input depth = kernel depth)",
                f"pass an input volume with {cg * g} channels, or kernels of depth {c // g}",
                f"input shape {tuple(input_shape)}, weight shape {tuple(weight_shape)}",
            )
        )
    if kh < 1 or kw < 1:
        raise ShapeError(
            message(
                where,
                f"the kernels are {kh}x{kw}: a kernel needs at least 1x1 values",
                "pass a weight of shape (C_out, C_in/groups, kH, kW) with kH, kW >= 1",
                f"weight shape {tuple(weight_shape)}",
            )
        )
    pad = conv_padding(padding, (kh, kw), d, where, s, (h, w))
    assert not isinstance(pad, str)
    (pt, pb), (pl, pr) = pad
    oh = conv_out(h, kh, s[0], pt + pb, d[0])
    ow = conv_out(w, kw, s[1], pl + pr, d[1])
    if oh < 1 or ow < 1:
        eff = (d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1)
        raise ShapeError(
            message(
                where,
                f"the {eff[0]}x{eff[1]} kernel"
                + (" (dilated)" if d != (1, 1) else "")
                + f" is larger than the padded input {h + pt + pb}x{w + pl + pr}",
                "use a smaller kernel, more padding, or a larger input",
                f"input {h}x{w}, kernel {kh}x{kw}, padding {pad}, dilation {d}",
            )
        )
    return ConvGeometry(s, pad, d, g, (oh, ow))


def pool_geometry(
    input_hw: Pair,
    kernel_size: object,
    stride: object,
    padding: object,
    dilation: object,
    ceil_mode: bool,
    where: str,
) -> tuple[Pair, Pair, Pair, Pair, Pair]:
    """Check a pooling request; return ``(kernel, stride, padding, dilation, out_hw)``."""
    k = pair(kernel_size, "kernel_size", where)
    s = k if stride is None else pair(stride, "stride", where)
    p = pair(padding, "padding", where, minimum=0)
    d = pair(dilation, "dilation", where)
    for pi, ki, di in zip(p, k, d, strict=True):
        if pi > (di * (ki - 1) + 1) // 2:
            raise ArgumentError(
                message(
                    where,
                    "padding must be at most half the (dilated) pooling window",
                    f"use padding <= {(di * (ki - 1) + 1) // 2}",
                    f"kernel_size={k}, padding={p}, dilation={d}",
                )
            )
    out = tuple(
        pool_out(n, ki, si, pi, di, ceil_mode)
        for n, ki, si, pi, di in zip(input_hw, k, s, p, d, strict=True)
    )
    if min(out) < 1:
        raise ShapeError(
            message(
                where,
                f"the {k[0]}x{k[1]} pooling window is larger than the padded input "
                f"{input_hw[0] + 2 * p[0]}x{input_hw[1] + 2 * p[1]}",
                "use a smaller kernel_size or a larger input",
                f"input {input_hw[0]}x{input_hw[1]}, kernel_size={k}, padding={p}",
            )
        )
    return k, s, p, d, (out[0], out[1])


def padding_for(size: int, k: int, target: int, stride: int = 1, dilation: int = 1) -> int | None:
    """Smallest symmetric padding p with ``conv_out(size, k, stride, 2p, dilation) == target``.

    >>> padding_for(64, 5, 64)
    2
    """
    for p in range(0, dilation * (k - 1) + stride * target + 1):
        out = conv_out(size, k, stride, 2 * p, dilation)
        if out == target:
            return p
        if out > target:
            return None
    return None


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Receptive field size and jump after each layer along one axis.

    ``layers`` holds ``(kernel, stride, dilation)`` per layer (use ``(1, 1, 1)`` for layers
    that do not look at neighbours). Returns ``(rf, jump)`` per layer, where ``rf`` is how many
    input pixels one output value sees and ``jump`` the input distance between neighbours.

    >>> receptive_field([(5, 1, 1), (5, 1, 1)])
    [(5, 1), (9, 1)]
    >>> receptive_field([(3, 1, 1), (2, 2, 1), (3, 1, 1)])
    [(3, 1), (4, 2), (8, 2)]
    """
    rf, jump, out = 1, 1, []
    for k, s, d in layers:
        rf += (d * (k - 1)) * jump
        jump *= s
        out.append((rf, jump))
    return out


MAX_RESULT_BYTES = 8 << 30
"""Largest single array an operation may allocate (8 GiB), checked before allocating.

Read at call time: set ``convscope.shapes.MAX_RESULT_BYTES`` to change it for the whole
program (or pass ``limit_bytes`` to :func:`check_size`).
"""


def _bytes(n: int) -> str:
    """``8 << 30`` -> ``'8 GiB'``; ``1.2e12`` -> ``'1117.6 GiB'``; ``4e6`` -> ``'3.8 MiB'``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            text = f"{n / size:.1f}"
            return f"{text.removesuffix('.0')} {unit}"
    return f"{n} bytes"


def check_size(
    shape: Sequence[int],
    where: str,
    limit_bytes: int | None = None,
    itemsize: int = 4,
    what: str = "the result",
    fix: str = "use a smaller batch or input, or a larger stride",
) -> None:
    """Refuse an array that would not fit in memory, before anything is allocated.

    Sizes are computed with Python ints (no wrap-around). ``what`` names the array in the
    message (``"the result"``, ``"the weight"``...); the limit is ``limit_bytes`` or, for
    ``None``, :data:`MAX_RESULT_BYTES` read at call time.

    >>> try:
    ...     check_size((100_000, 3, 1000, 1000), "conv2d")
    ... except ValueError as exc:
    ...     print(str(exc)[:72])
    conv2d: the result would need 1117.6 GiB, above the 8 GiB limit. Fix: us
    """
    limit = MAX_RESULT_BYTES if limit_bytes is None else limit_bytes
    need = math.prod(int(v) for v in shape) * itemsize
    if need > limit:
        raise ShapeError(
            message(
                where,
                f"{what} would need {_bytes(need)}, above the {_bytes(limit)} limit",
                fix,
                f"shape {tuple(int(v) for v in shape)}, {itemsize} bytes per value",
            )
        )



# --------------------------------------------------------------------------- transposed conv
def conv_transpose_out(
    size: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1, output_padding: int = 0
) -> int:
    """Output length of a transposed convolution along one axis (may be <= 0).

    ``H_out = (H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``:
    the input length of the convolution whose input gradient it is.

    >>> conv_transpose_out(32, 2, stride=2)        # a U-Net's 2x2, stride-2 upsampling
    64
    >>> conv_out(conv_transpose_out(7, 3, 2, 1, 1, 1), 3, 2, 2, 1)  # and back again
    7
    """
    return (size - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


@dataclass(frozen=True)
class ConvTransposeGeometry:
    """A transposed convolution, normalised and checked (symmetric ``padding`` per axis)."""

    stride: Pair
    padding: Pair
    output_padding: Pair
    dilation: Pair
    groups: int
    out_hw: Pair


def conv_transpose_args(
    stride: object, padding: object, output_padding: object, dilation: object, where: str
) -> tuple[Pair, Pair, Pair, Pair]:
    """Normalise and check what does not depend on the volumes: ``(stride, padding,
    output_padding, dilation)`` as pairs. ``output_padding`` must be smaller than ``stride``
    or ``dilation`` on each axis (PyTorch's rule)."""
    if isinstance(padding, str):
        raise ArgumentTypeError(message(
            where, "`padding` of a transposed convolution must be an int or a pair of ints "
            "('same' and 'valid' exist for conv2d only)",
            "pass e.g. padding=1, and output_padding to pick the output size",
            f"padding={padding!r}"))
    s = pair(stride, "stride", where)
    p = pair(padding, "padding", where, minimum=0)
    op = pair(output_padding, "output_padding", where, minimum=0)
    d = pair(dilation, "dilation", where)
    if any(o >= si and o >= di for o, si, di in zip(op, s, d, strict=True)):
        top = tuple(max(si, di) - 1 for si, di in zip(s, d, strict=True))
        raise ArgumentError(message(
            where, "output_padding must be smaller than stride or dilation on each axis",
            f"use output_padding <= {top[0] if top[0] == top[1] else top} here, or pass "
            "output_size= to the layer's forward", f"output_padding={op}, stride={s}, "
            f"dilation={d}"))
    return s, p, op, d


def conv_transpose_geometry(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: object = 1,
    padding: object = 0,
    output_padding: object = 0,
    groups: object = 1,
    dilation: object = 1,
    where: str = "conv_transpose2d",
) -> ConvTransposeGeometry:
    """Check a conv_transpose2d request against the volumes and return its geometry.

    ``input_shape`` is ``(N, C_in, H, W)``; ``weight_shape`` is ``(C_in, C_out / groups,
    kH, kW)`` (PyTorch's layout: input channels first). Output size: see
    :func:`conv_transpose_out`, which must be at least 1.
    """
    s, p, op, d = conv_transpose_args(stride, padding, output_padding, dilation, where)
    if not _is_int(groups):
        raise ArgumentTypeError(
            message(where, "`groups` must be an int", "pass groups=1", f"groups={groups!r}"))
    g = int(groups)  # type: ignore[call-overload]
    if g < 1:
        raise ArgumentError(
            message(where, "`groups` must be positive", "use groups=1", f"groups={g}"))
    _, c, h, w = input_shape
    ci, _, kh, kw = weight_shape
    got = f"input shape {tuple(input_shape)}, weight shape {tuple(weight_shape)}"
    if ci % g:
        raise ArgumentError(message(
            where, f"`groups` must divide the weight's first axis (in_channels = {ci})",
            f"choose groups from the divisors of {ci}", f"{got}, groups={g}"))
    if c != ci:
        raise ShapeError(message(
            where, f"input depth {c} does not match the weight's in_channels {ci} (a "
            "transposed conv's weight is (C_in, C_out/groups, kH, kW))",
            f"pass an input volume with {ci} channels, or a weight of shape ({c}, "
            "C_out/groups, kH, kW)", got))
    if kh < 1 or kw < 1:
        raise ShapeError(message(
            where, f"the kernels are {kh}x{kw}: a kernel needs at least 1x1 values",
            "pass a weight of shape (C_in, C_out/groups, kH, kW) with kH, kW >= 1", got))
    if h < 1 or w < 1:
        raise ShapeError(message(
            where, f"the input is {h}x{w}: a transposed conv needs at least 1x1 values per "
            "channel (only the batch may be empty)", "pass a non-empty volume", got))
    oh = conv_transpose_out(h, kh, s[0], p[0], d[0], op[0])
    ow = conv_transpose_out(w, kw, s[1], p[1], d[1], op[1])
    if oh < 1 or ow < 1:
        raise ShapeError(message(
            where, f"the output would be {oh}x{ow}: padding {p} on each side removes more "
            f"than the {oh + 2 * p[0]}x{ow + 2 * p[1]} values the transposed conv makes",
            "use less padding or a larger input",
            f"input {h}x{w}, kernel {kh}x{kw}, stride {s}, padding {p}, dilation {d}"))
    return ConvTransposeGeometry(s, p, op, d, g, (oh, ow))


def conv_transpose_output_padding(
    input_hw: Pair, output_size: object, kernel: Pair, stride: Pair, padding: Pair,
    dilation: Pair, where: str,
) -> Pair:
    """The ``output_padding`` that gives ``output_size`` (``(H, W)`` or a whole shape ending
    with them), as PyTorch's ``ConvTranspose2d.forward(x, output_size)``: each size must lie
    in ``[H_min, H_min + stride - 1]``, ``H_min`` being the size with ``output_padding=0``."""
    sizes = list(output_size) if isinstance(output_size, Sequence) else []
    if len(sizes) < 2 or not all(_is_int(v) for v in sizes):
        raise ArgumentTypeError(message(
            where, "`output_size` must be a sequence of ints ending with (H_out, W_out)",
            "pass e.g. output_size=(64, 64) or output_size=skip.shape",
            f"output_size={output_size!r}"))
    want = (int(sizes[-2]), int(sizes[-1]))
    low = [conv_transpose_out(n, k, s, p, d)
           for n, k, s, p, d in zip(input_hw, kernel, stride, padding, dilation, strict=True)]
    if any(not lo <= t < lo + s for t, lo, s in zip(want, low, stride, strict=True)):
        raise ShapeError(message(
            where, f"an output of {want[0]}x{want[1]} cannot come from a {input_hw[0]}x"
            f"{input_hw[1]} input: the possible sizes are {low[0]}..{low[0] + stride[0] - 1} "
            f"x {low[1]}..{low[1] + stride[1] - 1}",
            "ask for a size in that range, or change stride or padding",
            f"output_size={tuple(sizes)}"))
    return (want[0] - low[0], want[1] - low[1])


# --------------------------------------------------------------------------- resampling
def adaptive_window(i: int, size: int, out: int) -> Pair:
    """Input cells ``[start, end)`` of output cell ``i`` of an adaptive pooling (PyTorch's):
    ``start = floor(i * size / out)``, ``end = ceil((i + 1) * size / out)``.

    >>> [adaptive_window(i, 5, 3) for i in range(3)]      # windows may overlap
    [(0, 2), (1, 4), (3, 5)]
    """
    return (i * size) // out, -(-(i + 1) * size // out)


def adaptive_out(output_size: object, input_hw: Pair, where: str) -> Pair:
    """``output_size`` (an int, or a pair whose None entries keep the input size) as a pair.

    >>> adaptive_out((None, 1), (7, 9), "adaptive_avg_pool2d")
    (7, 1)
    """
    seq = isinstance(output_size, Sequence) and not isinstance(output_size, str)
    items = list(output_size) if seq else [output_size] * 2  # type: ignore[arg-type]
    if output_size is None or len(items) != 2 or not all(v is None or _is_int(v) for v in items):
        raise ArgumentTypeError(message(
            where, "`output_size` must be an int or a pair of ints (None keeps that input size)",
            "pass e.g. output_size=1 (global pooling) or output_size=(7, 7)",
            f"output_size={output_size!r}"))
    out = tuple(n if v is None else int(v) for v, n in zip(items, input_hw, strict=True))
    if min(out) < 0:
        raise ArgumentError(message(where, "`output_size` must be >= 0",
                                    "pass e.g. output_size=1", f"output_size={output_size!r}"))
    if min(input_hw) < 1:
        raise ShapeError(message(
            where, f"the input is {input_hw[0]}x{input_hw[1]}: there is nothing to pool",
            "pass an input of at least 1x1", f"input size {input_hw[0]}x{input_hw[1]}"))
    return (out[0], out[1])


def interpolate_out(
    input_size: Sequence[int], size: object, scale_factor: object,
    recompute_scale_factor: object, where: str,
) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
    """Output size of ``interpolate`` and the scales of its index formula (PyTorch's rules).

    Exactly one of ``size`` (an int, or one per spatial axis) and ``scale_factor`` (a number,
    or one per axis) is given. With ``scale_factor``, ``out = floor(in * scale_factor)`` and
    the source index of output cell ``i`` uses ``1 / scale_factor``; with ``size``, or with
    ``recompute_scale_factor=True``, it uses ``in / out``. Returns ``(out, scales)``;
    ``scales`` is None when ``in / out`` is used.

    >>> interpolate_out((5, 7), None, 2.5, None, "interpolate")
    ((12, 17), (2.5, 2.5))
    """
    dims = len(input_size)
    given = f"size={size!r}, scale_factor={scale_factor!r}"
    if (size is None) == (scale_factor is None):
        raise ArgumentError(message(
            where, "give exactly one of `size` and `scale_factor`",
            "pass e.g. size=(64, 64) or scale_factor=2", given))
    if size is not None and recompute_scale_factor:
        raise ArgumentError(message(
            where, "recompute_scale_factor has no meaning with an explicit `size`",
            "drop recompute_scale_factor, or pass scale_factor instead of size",
            f"{given}, recompute_scale_factor={recompute_scale_factor!r}"))
    name, value = ("size", size) if size is not None else ("scale_factor", scale_factor)
    seq = isinstance(value, Sequence) and not isinstance(value, str)
    items = list(value) if seq else [value] * dims  # type: ignore[arg-type]
    if not all((_is_int if name == "size" else _is_real)(v) for v in items):
        raise ArgumentTypeError(message(
            where, f"`{name}` must be {'an int' if name == 'size' else 'a number'} or one per "
            "spatial axis", f"pass e.g. {name}=2 or {name}={(2,) * dims}", f"{name}={value!r}"))
    if len(items) != dims:
        raise ShapeError(message(
            where, f"`{name}` has {len(items)} entries for an input with {dims} spatial "
            f"ax{'i' if dims == 1 else 'e'}s {tuple(input_size)}", f"pass {dims}, or one number "
            "for all; a 3-D input is (N, C, W) as in PyTorch: add a batch axis for an image",
            f"{name}={value!r}"))
    scales: tuple[float, ...] | None = None
    if name == "size":
        out = tuple(int(v) for v in items)
    else:
        scales = tuple(float(v) for v in items)
        if not all(math.isfinite(v) and v > 0 for v in scales):
            raise ArgumentError(message(
                where, "`scale_factor` must be a finite number > 0",
                "pass e.g. scale_factor=2 (up) or 0.5 (down)", f"scale_factor={value!r}"))
        out = tuple(math.floor(n * v) for n, v in zip(input_size, scales, strict=True))
        scales = None if recompute_scale_factor else scales
    if min(out) < 1 or min(input_size) < 1:
        raise ShapeError(message(
            where, f"input and output sizes must be at least 1, got input {tuple(input_size)}"
            f" and output {out}", "use a larger size or scale_factor (out = floor(in * "
            "scale_factor))", f"{name}={value!r}"))
    return out, scales


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)
