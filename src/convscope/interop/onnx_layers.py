"""ONNX operators that become one of convscope's newer layers: the activations,
ConvTranspose and Resize.

:class:`LayerOps` turns each into its layer on the walk's current volume (``self.shape``),
as :class:`~.onnx_graph.GraphChain` does for Conv and the pooling layers, so the chain walk
and the graph walk (:mod:`.onnx_dag`) share them::

    Sigmoid, Tanh, Relu       Sigmoid, Tanh, ReLU
    Clip                      ReLU6 (0, 6), ReLU (0, none), Hardtanh (any two finite bounds)
    LeakyRelu, Elu            LeakyReLU(alpha), ELU(alpha)
    HardSigmoid               Hardsigmoid (alpha 1/6 and beta 1/2 only: PyTorch's)
    HardSwish, Gelu           Hardswish, GELU (approximate 'none' or 'tanh')
    Softmax, LogSoftmax       Softmax(dim), LogSoftmax(dim) (one axis: opset 13 and newer, or
                              the last axis)
    ConvTranspose             ConvTranspose2d (symmetric pads, output_padding, group,
                              dilations)
    Resize                    Upsample: nearest (asymmetric + floor), nearest-exact
                              (half_pixel + round_prefer_ceil), bilinear (half_pixel,
                              pytorch_half_pixel or align_corners), by scales or by sizes
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..nn import (
    ELU,
    GELU,
    ConvTranspose2d,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    ReLU6,
    Sigmoid,
    Softmax,
    Tanh,
    Upsample,
)
from .onnx_common import interpolate_copies
from .onnx_fold import BATCH
from .onnx_operands import NotAChain, _short_float
from .onnx_padding import PaddingNodes

__all__ = ["LayerOps", "LAYER_OPS"]

LAYER_OPS = ("Sigmoid", "Tanh", "Clip", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish", "Gelu",
             "Softmax", "LogSoftmax", "ConvTranspose", "Resize")
"""The operators :class:`LayerOps` reads (beyond the chain walk's Conv, pooling ...)."""


class LayerOps(PaddingNodes):
    """Handlers ``(k, node, attrs)`` that append one layer for the current volume."""

    def finite(self, k: int, node: Any, name: str, value: Any) -> float:
        number = float(value)
        if not math.isfinite(number):
            raise self.node_fail(k, node, f"`{name}` must be a finite number",
                                 "export the model again", f"{name}={number}")
        return _short_float(number)

    def scalar_input(self, k: int, node: Any, i: int, role: str) -> float | None:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise self.node_fail(k, node, f"its {role} is computed in the graph at run time",
                                 "export with constant folding", f"input {name!r}")
        arr = np.asarray(self.array(k, node, name))
        if arr.size != 1 or arr.dtype.kind not in "fiu":
            raise self.node_fail(k, node, f"its {role} must be one number",
                                 "export the model again", f"{arr.dtype} of shape {arr.shape}")
        return float(arr.reshape(-1)[0])

    # ------------------------------------------------------------------ activations
    def activation(self, k: int, node: Any, a: dict[str, Any]) -> None:
        op = node.op_type
        if op == "Sigmoid":
            self.add(k, node, Sigmoid)
        elif op == "Tanh":
            self.add(k, node, Tanh)
        elif op == "HardSwish":
            self.add(k, node, Hardswish)
        elif op == "LeakyRelu":
            alpha = self.finite(k, node, "alpha", a.get("alpha", 0.01))
            self.add(k, node, lambda: LeakyReLU(alpha))
        elif op == "Elu":
            alpha = self.finite(k, node, "alpha", a.get("alpha", 1.0))
            self.add(k, node, lambda: ELU(alpha))
        elif op == "Gelu":
            approximate = a.get("approximate", "none")
            if approximate not in ("none", "tanh"):
                raise self.node_fail(k, node, f"unknown approximate {approximate!r}",
                                     "use 'none' or 'tanh'", f"approximate={approximate!r}")
            self.add(k, node, lambda: GELU(approximate))
        elif op == "HardSigmoid":
            alpha = float(a.get("alpha", 0.2))
            beta = float(a.get("beta", 0.5))
            if np.float32(alpha) != np.float32(1 / 6) or np.float32(beta) != np.float32(0.5):
                raise self.node_fail(k, node, "only HardSigmoid with alpha 1/6 and beta 1/2 "
                                     "(PyTorch's hardsigmoid) has a layer here",
                                     "export hardsigmoid from PyTorch or convscope",
                                     f"alpha={alpha}, beta={beta}")
            self.add(k, node, Hardsigmoid)
        elif op in ("Softmax", "LogSoftmax"):
            self.softmax(k, node, a)
        else:
            self.clip(k, node, a)

    def clip_bounds(self, k: int, node: Any, a: dict[str, Any]) -> tuple[float, float]:
        """Clip's (min, max), -inf and inf where one is not given."""
        if self.opset < 11:
            lo, hi = a.get("min"), a.get("max")
        else:
            lo, hi = self.scalar_input(k, node, 1, "min"), self.scalar_input(k, node, 2, "max")
        lo = -math.inf if lo is None else float(lo)
        hi = math.inf if hi is None else float(hi)
        if math.isnan(lo) or math.isnan(hi) or lo > hi or lo == math.inf or hi == -math.inf:
            raise self.node_fail(k, node, "Clip needs bounds min <= max (not NaN)",
                                 "export the model again", f"min={lo}, max={hi}")
        return lo, hi

    def clip(self, k: int, node: Any, a: dict[str, Any]) -> None:
        lo, hi = self.clip_bounds(k, node, a)
        if (lo, hi) == (0.0, 6.0):
            self.add(k, node, ReLU6)
        elif (lo, hi) == (0.0, math.inf):
            self.add(k, node, ReLU)
        elif math.isfinite(lo) and math.isfinite(hi):
            low, high = _short_float(lo), _short_float(hi)
            self.add(k, node, lambda: Hardtanh(low, high))
        else:  # one bound: no layer, but the graph walk has Tensor.clamp
            raise NotAChain(self.node_where(k, node), "Clip with one bound has no layer "
                            "(except min 0: ReLU)", f"min={lo}, max={hi}")

    def softmax(self, k: int, node: Any, a: dict[str, Any]) -> None:
        rank = len(self.shape) + 1
        axis = int(a.get("axis", -1 if self.opset >= 13 else 1))
        if not -rank <= axis < rank:
            raise self.node_fail(k, node, f"axis {axis} is outside the input's {rank} axes",
                                 "export the model again", f"axis={axis}")
        axis %= rank
        if self.opset < 13 and axis != rank - 1:
            raise self.node_fail(k, node, "before opset 13 Softmax works on all axes from "
                                 "`axis` on at once, which has a layer here only for the last "
                                 "axis", "export with opset 13 or newer", f"axis={axis}")
        kind = Softmax if node.op_type == "Softmax" else LogSoftmax
        self.add(k, node, lambda: kind(axis))

    # ------------------------------------------------------------------ ConvTranspose
    def conv_transpose(self, k: int, node: Any, a: dict[str, Any]) -> None:
        c = self.need_volume(k, node)[0]
        w = self.weight(k, node, 1, "weight", ndim=4)
        cin, cg, kh, kw = w.shape
        groups = int(a.get("group", 1))
        if groups < 1 or cin != c or c % groups:
            raise self.node_fail(k, node, f"its weight for {cin} input channels in {groups} "
                                 f"group(s) does not fit an input of depth {c}",
                                 "export the model again", f"weight shape {w.shape}, "
                                 f"group={groups}")
        if list(a.get("kernel_shape", [kh, kw])) != [kh, kw]:
            raise self.node_fail(k, node, "kernel_shape disagrees with the weight's shape",
                                 "export the model again",
                                 f"kernel_shape={a['kernel_shape']}, weight shape {w.shape}")
        if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
            raise self.node_fail(k, node, "output_shape and SAME auto_pad are not supported",
                                 "export with pads and output_padding (as PyTorch does)",
                                 f"attributes {sorted(a)}")
        stride = self.pair_attr(k, node, a, "strides", 1)
        dilation = self.pair_attr(k, node, a, "dilations", 1)
        out_pad = self.pair_attr(k, node, a, "output_padding", 0)
        pads = [0, 0, 0, 0] if a.get("auto_pad") == "VALID" else list(a.get("pads", [0] * 4))
        if len(pads) != 4 or min(pads) < 0 or pads[0] != pads[2] or pads[1] != pads[3]:
            raise self.node_fail(k, node, "its pads must be 4 non-negative values, the same on "
                                 "both sides of each axis (ConvTranspose2d's padding)",
                                 "export the model again", f"pads={pads}")
        cout = cg * groups
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.weight(k, node, 2, "bias", shape=(cout,))

        def make() -> ConvTranspose2d:
            layer = ConvTranspose2d(c, cout, (kh, kw), stride, (pads[0], pads[1]), out_pad,
                                    groups, bias is not None, dilation, seed=0)
            layer.weight.data = w
            if bias is not None:
                layer.bias.data = bias  # type: ignore[union-attr]
            return layer

        self.add(k, node, make)

    # ------------------------------------------------------------------ Resize
    def resize(self, k: int, node: Any, a: dict[str, Any]) -> None:
        c, h, w = self.need_volume(k, node)
        mode = a.get("mode", "nearest")
        coord = a.get("coordinate_transformation_mode", "half_pixel")
        nearest = a.get("nearest_mode", "round_prefer_floor")
        odd = {n: a[n] for n in ("antialias", "exclude_outside") if int(a.get(n, 0))}
        if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            odd["keep_aspect_ratio_policy"] = a["keep_aspect_ratio_policy"]
        if self.opset < 11 or odd:
            raise self.node_fail(k, node, "this Resize has no layer here",
                                 "export with opset 11 or newer, without antialias, "
                                 "exclude_outside or keep_aspect_ratio_policy",
                                 f"opset {self.opset}, {odd}")
        axes = [int(x) % 4 for x in a.get("axes", [0, 1, 2, 3])]
        scales = self.floats_input(k, node, 2)
        sizes = (self.ints(k, node, 3, "sizes") if len(node.input) > 3 and node.input[3]
                 else None) or None
        if (scales is None) == (sizes is None):
            raise self.node_fail(k, node, "Resize needs exactly one of scales and sizes",
                                 "export the model again", f"inputs {list(node.input)}")
        full: dict[int, Any] = {0: None, 1: None, 2: None, 3: None}
        given = scales if scales is not None else sizes
        if len(given) != len(axes) or sorted(axes) != sorted(set(axes)):
            raise self.node_fail(k, node, "its scales or sizes do not match its axes",
                                 "export the model again", f"axes={axes}, values={given}")
        full.update(zip(axes, given, strict=True))
        keep = (1.0, 1.0) if scales is not None else (self.batch, c)
        for axis, want in zip((0, 1), keep, strict=True):
            v = full[axis]
            if v is not None and v != want and not (axis == 0 and v == BATCH):
                raise self.node_fail(k, node, "it resizes the batch or channel axis",
                                     "resize height and width only", f"values={given}")
        torch_mode, corners = self.resize_mode(k, node, mode, coord, nearest)
        hw = (full[2], full[3])
        if None in hw:
            raise self.node_fail(k, node, "it does not give the height and width",
                                 "export the model again", f"axes={axes}")
        if scales is not None:
            s32 = [np.float32(v) for v in hw]
            if not all(np.isfinite(v) and v > 0 for v in s32):
                raise self.node_fail(k, node, "its scales must be finite and positive",
                                     "export the model again", f"scales={scales}")
            want = tuple(int(np.floor(np.float32(n) * s)) for n, s in zip((h, w), s32,
                                                                          strict=True))
            if interpolate_copies(torch_mode, corners, (h, w), want, s32):
                raise self.node_fail(k, node, f"scales {[float(v) for v in s32]} are not "
                                     f"output / input ({want[0]}/{h}, {want[1]}/{w}): ONNX "
                                     "interpolates there while interpolate copies cells",
                                     "export with sizes, or with scales equal to output / input",
                                     f"scales={scales}, input {h}x{w}")
            factor: Any = float(s32[0]) if s32[0] == s32[1] else (float(s32[0]), float(s32[1]))
            kw_: dict[str, Any] = {"scale_factor": factor}
        else:
            want = (int(hw[0]), int(hw[1]))
            kw_ = {"size": want}
        if coord == "pytorch_half_pixel" and min(want) == 1 and min(h, w) > 1:
            raise self.node_fail(k, node, "pytorch_half_pixel with an output of size 1 samples "
                                 "the first cell, which no interpolate mode does",
                                 "use half_pixel", f"output {want}")
        if min(want) < 1:
            raise self.node_fail(k, node, f"its output {want[0]}x{want[1]} is empty",
                                 "export the model again", f"input {h}x{w}")
        self.add(k, node, lambda: Upsample(**kw_, mode=torch_mode, align_corners=corners))
        if tuple(self.shape[1:]) != want:
            raise self.node_fail(k, node, f"ONNX computes an output of {want[0]}x{want[1]} but "
                                 f"interpolate {self.shape[1]}x{self.shape[2]} (float32 rounding "
                                 "of the scale)", "export with sizes instead of scales",
                                 f"scales={scales}")

    def resize_mode(self, k: int, node: Any, mode: str, coord: str,
                    nearest: str) -> tuple[str, bool | None]:
        if mode == "nearest" and coord == "asymmetric" and nearest == "floor":
            return "nearest", None
        if mode == "nearest" and coord == "half_pixel" and nearest == "round_prefer_ceil":
            return "nearest-exact", None
        if mode == "linear" and coord in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            return "bilinear", coord == "align_corners"
        raise self.node_fail(k, node, "this Resize mode has no interpolate mode here",
                             "use nearest (asymmetric, floor), nearest (half_pixel, "
                             "round_prefer_ceil) or linear (half_pixel, pytorch_half_pixel, "
                             "align_corners): what PyTorch exports",
                             f"mode={mode!r}, coordinate_transformation_mode={coord!r}, "
                             f"nearest_mode={nearest!r}")

    def floats_input(self, k: int, node: Any, i: int) -> list[float] | None:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise self.node_fail(k, node, "its scales are computed in the graph at run time",
                                 "export with a fixed input size and constant folding",
                                 f"input {name!r}")
        arr = np.asarray(self.array(k, node, name))
        if arr.size == 0:
            return None
        if arr.dtype.kind != "f" or arr.ndim != 1:
            raise self.node_fail(k, node, "its scales must be a 1-D float tensor",
                                 "export the model again", f"{arr.dtype} of shape {arr.shape}")
        return [float(v) for v in arr]

    def layer_op_new(self, k: int, node: Any, a: dict[str, Any]) -> bool:
        """Handle one of :data:`LAYER_OPS`; False when ``node`` is not one."""
        if node.op_type == "ConvTranspose":
            self.conv_transpose(k, node, a)
        elif node.op_type == "Resize":
            self.resize(k, node, a)
        elif node.op_type in LAYER_OPS:
            self.activation(k, node, a)
        else:
            return False
        return True
