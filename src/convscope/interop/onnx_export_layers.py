"""ONNX builders for the operations with windows and weights: convolutions, pooling, batch
norm, linear, adaptive pooling, resizing and padding.

Each builder takes a :class:`~.onnx_emit.Call` (a layer or a traced function, as its
function's arguments) and returns the name of the ONNX value it made. The table
:data:`LAYER_BUILDERS` maps a graph op to its builder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import shapes
from .onnx_common import WRAP_OPSET, interpolate_copies, pad_indices, pool_ceil_plan
from .onnx_emit import Call

__all__ = ["LAYER_BUILDERS"]

_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad(c: Call, x: str, pads: tuple[tuple[int, int], tuple[int, int]], mode: str) -> str:
    """``x`` padded in a mode other than zeros: Pad, or Gather for circular below opset 19."""
    (pt, pb), (pl, pr) = pads
    if mode == "circular" and c.e.opset < WRAP_OPSET:
        h, w = c.in_shape[2], c.in_shape[3]
        if pt or pb:
            x = c.op("Gather", [x, c.const("pad_rows", pad_indices(h, pt, pb, "circular"))],
                     axis=2)
        if pl or pr:
            x = c.op("Gather", [x, c.const("pad_cols", pad_indices(w, pl, pr, "circular"))],
                     axis=3)
        return x
    onnx_mode = "constant" if mode == "zeros" else _PAD_MODE[mode]
    return c.op("Pad", [x, c.const("pads", np.array([0, 0, pt, pl, 0, 0, pb, pr], np.int64))],
                mode=onnx_mode)


def conv2d(c: Call, relu: bool = False) -> str:
    w = c.ref("weight")
    if w is None or len(w.shape) != 4:
        raise c.fail("its weight is not a 4-D tensor", "pass a weight (C_out, C_in/g, kH, kW)")
    bias = c.ref("bias")
    kernel = tuple(w.shape[2:])
    stride = shapes.pair(c.args.get("stride", 1), "stride", c.where)
    dilation = shapes.pair(c.args.get("dilation", 1), "dilation", c.where)
    padding = shapes.conv_padding(c.args.get("padding", 0), kernel, dilation, c.where, stride)
    geo = shapes.conv_geometry(c.in_shape, w.shape, stride, padding, dilation,
                               c.args.get("groups", 1), c.where)
    (pt, pb), (pl, pr) = geo.padding
    pads = [pt, pl, pb, pr]
    x, mode = c.x, c.args.get("padding_mode", "zeros")
    if mode != "zeros" and any(pads):
        x, pads = _pad(c, x, geo.padding, mode), [0, 0, 0, 0]
    inputs = [x, w.name] + ([bias.name] if bias is not None else [])
    y = c.op("Conv", inputs, kernel_shape=list(kernel), strides=list(geo.stride), pads=pads,
             dilations=list(geo.dilation), group=geo.groups)
    return c.op("Relu", [y]) if relu else y


def conv_transpose2d(c: Call) -> str:
    w = c.ref("weight")
    if w is None or len(w.shape) != 4:
        raise c.fail("its weight is not a 4-D tensor", "pass a weight (C_in, C_out/g, kH, kW)")
    bias = c.ref("bias")
    stride, padding, out_pad, dilation = shapes.conv_transpose_args(
        c.args.get("stride", 1), c.args.get("padding", 0), c.args.get("output_padding", 0),
        c.args.get("dilation", 1), c.where)
    inputs = [c.x, w.name] + ([bias.name] if bias is not None else [])
    return c.op("ConvTranspose", inputs, kernel_shape=list(w.shape[2:]), strides=list(stride),
                pads=[padding[0], padding[1], padding[0], padding[1]],
                output_padding=list(out_pad), dilations=list(dilation),
                group=int(c.args.get("groups", 1)))


def _pool(c: Call, is_max: bool) -> str:
    if c.args.get("return_indices"):
        raise c.fail("max_pool2d with return_indices has no ONNX export here",
                     "use return_indices=False")
    if len(c.in_shape) != 4:
        raise c.fail("pooling is exported for (N, C, H, W) inputs only",
                     "add a batch axis", f"input shape {c.in_shape}")
    kernel = shapes.pair(c.args["kernel_size"], "kernel_size", c.where)
    stride_arg = c.args.get("stride")
    stride = kernel if stride_arg in (None, ()) else shapes.pair(stride_arg, "stride", c.where)
    padding = shapes.pair(c.args.get("padding", 0), "padding", c.where, minimum=0)
    dilation = shapes.pair(c.args.get("dilation", 1), "dilation", c.where)
    count_pad = not is_max and bool(c.args.get("count_include_pad", True))
    ceil, extra = 0, [0, 0]
    if c.args.get("ceil_mode"):
        plan = pool_ceil_plan(c.in_shape[2:], kernel, stride, padding, dilation)
        if plan is None or (count_pad and any(plan[1])):
            raise c.fail(
                "this ceil_mode pooling keeps a partial last window along one axis and not the "
                "other, which ONNX's single ceil_mode flag cannot say"
                + ("" if plan is None else " when padding counts toward the average"),
                "use ceil_mode=False, or an input size where both axes agree"
                + ("" if plan is None else ", or count_include_pad=False"),
                f"input {c.in_shape[2]}x{c.in_shape[3]}, kernel_size={kernel}, "
                f"stride={stride}, padding={padding}")
        ceil, extra = plan
    (ph, pw), (eh, ew) = padding, extra
    attrs: dict[str, Any] = dict(kernel_shape=list(kernel), strides=list(stride),
                                 pads=[ph, pw, ph + eh, pw + ew], ceil_mode=ceil)
    if is_max:
        return c.op("MaxPool", [c.x], dilations=list(dilation), **attrs)
    return c.op("AveragePool", [c.x], count_include_pad=int(count_pad), **attrs)


def _adaptive_axis(n: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) of one axis of adaptive pooling when its windows are uniform."""
    starts = [i * n // out for i in range(out)]
    ends = [-(-(i + 1) * n // out) for i in range(out)]
    k = ends[0] - starts[0]
    stride = starts[1] - starts[0] if out > 1 else 1
    if any(e - s != k for s, e in zip(starts, ends, strict=True)) or any(
            s != i * stride for i, s in enumerate(starts)) or stride < 1:
        return None
    return k, stride


def adaptive_avg_pool2d(c: Call) -> str:
    if len(c.in_shape) != 4:
        raise c.fail("adaptive pooling is exported for (N, C, H, W) inputs only",
                     "add a batch axis", f"input shape {c.in_shape}")
    (h, w), (oh, ow) = c.in_shape[2:], c.out_shape[2:]
    if (oh, ow) == (1, 1):
        return c.op("GlobalAveragePool", [c.x])
    plans = [_adaptive_axis(h, oh), _adaptive_axis(w, ow)]
    if plans[0] is None or plans[1] is None:
        raise c.fail(f"adaptive pooling of {h}x{w} to {oh}x{ow} has windows of different "
                     "sizes or spacings, which no ONNX pooling operator computes",
                     "use an input size that the output size divides, or output size 1",
                     f"input {h}x{w}, output_size {c.args.get('output_size')!r}")
    (kh, sh), (kw, sw) = plans  # type: ignore[misc]
    return c.op("AveragePool", [c.x], kernel_shape=[kh, kw], strides=[sh, sw],
                pads=[0, 0, 0, 0], ceil_mode=0, count_include_pad=0)


def batch_norm(c: Call) -> str:
    mean, var = c.ref("running_mean"), c.ref("running_var")
    if c.args.get("training") or mean is None or var is None:
        raise c.fail("this BatchNorm2d keeps no running statistics, so even in eval mode it "
                     "normalises by the batch's own statistics, which ONNX's inference "
                     "BatchNormalization cannot do", "build it with track_running_stats=True "
                     "and train it", "track_running_stats=False")
    ch = c.in_shape[1]
    scale, shift = c.ref("weight"), c.ref("bias")
    inputs = [c.x,
              scale.name if scale is not None else c.const("scale", np.ones(ch, np.float32)),
              shift.name if shift is not None else c.const("shift", np.zeros(ch, np.float32)),
              mean.name, var.name]
    return c.op("BatchNormalization", inputs, epsilon=float(c.args.get("eps", 1e-5)))


def linear(c: Call) -> str:
    w, bias = c.ref("weight"), c.ref("bias")
    if w is None or len(w.shape) != 2:
        raise c.fail("its weight is not a 2-D tensor", "pass a weight (out, in)")
    if len(c.in_shape) == 2:
        inputs = [c.x, w.name] + ([bias.name] if bias is not None else [])
        return c.op("Gemm", inputs, transB=1)
    y = c.op("MatMul", [c.x, c.op("Transpose", [w.name], perm=[1, 0])])
    return c.op("Add", [y, bias.name]) if bias is not None else y


def interpolate(c: Call) -> str:
    mode, corners = c.args.get("mode", "nearest"), bool(c.args.get("align_corners"))
    if len(c.in_shape) != 4 or mode not in ("nearest", "nearest-exact", "bilinear"):
        raise c.fail(f"interpolate mode {mode!r} on a {len(c.in_shape)}-D input has no ONNX "
                     "export here", "use mode 'nearest', 'nearest-exact' or 'bilinear' on "
                     "(N, C, H, W)", f"mode={mode!r}, input shape {c.in_shape}")
    if c.args.get("antialias"):
        raise c.fail("antialias=True has no ONNX export here", "use antialias=False")
    attrs: dict[str, Any] = {"mode": "linear" if mode == "bilinear" else "nearest"}
    if mode == "nearest":
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode == "nearest-exact":
        attrs.update(coordinate_transformation_mode="half_pixel",
                     nearest_mode="round_prefer_ceil")
    else:
        attrs["coordinate_transformation_mode"] = "align_corners" if corners else "half_pixel"
    in_hw, out_hw = c.in_shape[2:], tuple(c.out_shape[2:])
    _, scales = shapes.interpolate_out(in_hw, c.args.get("size"), c.args.get("scale_factor"),
                                       c.args.get("recompute_scale_factor"), c.where)
    if scales is not None and interpolate_copies(mode, corners, in_hw, out_hw, scales):
        scales = None  # where interpolate copies whatever the scale, ONNX's sizes agree
    if scales is not None:  # ONNX's size: floor(in * scale) in float32 arithmetic
        s32 = np.asarray(scales, np.float32)
        got = tuple(int(np.floor(np.float32(n) * s)) for n, s in zip(in_hw, s32, strict=True))
        if got != out_hw:
            raise c.fail(f"scale_factor {scales} gives {out_hw[0]}x{out_hw[1]} here but "
                         f"{got[0]}x{got[1]} in ONNX's float32 arithmetic",
                         "use size=... or a scale factor that float32 holds exactly (2, 0.5, "
                         "1.5 ...)", f"input {in_hw[0]}x{in_hw[1]}, scale_factor={scales}")
        return c.op("Resize", [c.x, "", c.const("scales", np.array([1, 1, *s32], np.float32))],
                    **attrs)
    if c.e.opset >= 18:
        return c.op("Resize", [c.x, "", "", c.const("sizes", np.array(out_hw, np.int64))],
                    axes=[2, 3], **attrs)
    shape = c.op("Shape", [c.x])
    nc = c.op("Slice", [shape, c.const("starts", np.array([0], np.int64)),
                        c.const("ends", np.array([2], np.int64))])
    sizes = c.op("Concat", [nc, c.const("sizes", np.array(out_hw, np.int64))], axis=0)
    return c.op("Resize", [c.x, "", "", sizes], **attrs)


def pad(c: Call) -> str:
    mode = c.args.get("mode", "zeros")
    if len(c.in_shape) != 4 or mode not in ("zeros", *_PAD_MODE):
        raise c.fail(f"pad mode {mode!r} on a {len(c.in_shape)}-D input has no ONNX export",
                     "pad (N, C, H, W) with zeros, reflect, replicate or circular",
                     f"mode={mode!r}")
    p = shapes.conv_padding(c.args.get("padding", 0), (1, 1), (1, 1), c.where)
    if isinstance(p, str):
        return c.op("Identity", [c.x])
    return _pad(c, c.x, p, mode)


def _dropout(c: Call) -> str:
    return c.op("Dropout", [c.x, c.const("ratio", np.array(c.args.get("p", 0.5), np.float32))])


LAYER_BUILDERS: dict[str, Callable[[Call], str]] = {
    "conv2d": conv2d,
    "conv2d_relu": lambda c: conv2d(c, relu=True),
    "conv_transpose2d": conv_transpose2d,
    "max_pool2d": lambda c: _pool(c, True),
    "avg_pool2d": lambda c: _pool(c, False),
    "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "batch_norm": batch_norm,
    "linear": linear,
    "interpolate": interpolate,
    "pad": pad,
    "dropout": _dropout,
    "dropout2d": _dropout,
}
