"""Padding operators in an ONNX graph, kept for the Conv that follows them.

Pad, and Gather or Slice + Concat that pick rows and columns the way a padding mode does
(PyTorch exports reflect, replicate and circular padding so), make no layer of their own:
:class:`PaddingNodes` works out the rows and columns they add and the mode, and keeps them
as ``pending`` until :class:`~.onnx_graph.GraphChain` reaches the Conv that takes them as its
``padding``/``padding_mode``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .onnx_common import pad_indices
from .onnx_fold import FoldError, slice_positions
from .onnx_operands import NodeReader

__all__ = ["PaddingNodes"]

_PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


class PaddingNodes(NodeReader):
    """The padding operators of the walk: Pad, Gather, and Slice + Concat."""

    def pad(self, k: int, node: Any, a: dict[str, Any]) -> None:
        self.need_volume(k, node)
        mode = a.get("mode", "constant")
        if self.opset < 11:
            pads, value = list(a.get("pads", [])), float(a.get("value", 0.0))
            axes = None
        else:
            pads = self.ints(k, node, 1, "pads") or []
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                value = float(self.array(k, node, node.input[2]).reshape(-1)[0])
            axes = self.ints(k, node, 3, "axes")
        if mode not in _PAD_MODES or (mode == "constant" and value != 0.0):
            raise self.node_fail(k, node, f"padding mode {mode!r} with value {value} is not "
                                 "supported", "pad with zeros, reflect, edge or wrap",
                                 f"mode={mode!r}, value={value}")
        axes = [self.axis(k, node, x, 4) for x in axes] if axes is not None else [0, 1, 2, 3]
        if len(pads) != 2 * len(axes) or (pads and min(pads) < 0):
            raise self.node_fail(k, node, "pads must hold a non-negative begin and end per axis",
                                 "export the model again", f"pads={pads}, axes={axes}")
        full = dict.fromkeys(range(4), (0, 0))
        for j, axis in enumerate(axes):
            full[axis] = (pads[j], pads[j + len(axes)])
        if full[0] != (0, 0) or full[1] != (0, 0):
            raise self.node_fail(k, node, "it pads the batch or channel axis",
                                 "pad only height and width", f"pads={pads}")
        self.start_pad(k, node, _PAD_MODES[mode], full[2], full[3])

    def gather(self, k: int, node: Any, a: dict[str, Any]) -> None:
        self.need_volume(k, node)
        self.pad_by_indices(k, node, self.axis(k, node, a.get("axis", 0), 4),
                            self.ints(k, node, 1, "indices"))

    def pad_by_indices(self, k: int, node: Any, axis: int, idx: list[int] | None) -> None:
        """Gather, or Slice + Concat, that picks rows/columns the way a padding mode does."""
        if axis in (2, 3) and idx is not None:
            n = self.shape[axis - 1]
            for mode in ("circular", "reflect", "replicate"):
                for before in range(len(idx) - n + 1):
                    after = len(idx) - n - before
                    if pad_indices(n, before, after, mode).tolist() == idx:
                        pads = ((before, after), (0, 0)) if axis == 2 else ((0, 0), (before, after))
                        self.start_pad(k, node, mode, *pads, axis=axis)
                        return
        raise self.node_fail(k, node, f"{node.op_type} is supported only as padding (picking "
                             "rows or columns the way a padding mode does) before a Conv",
                             "export the padding with Pad", f"axis={axis}")

    def side_slice(self, k: int, node: Any, a: dict[str, Any], cur: str) -> None:
        """A Slice of the chain's tensor, kept aside for the Concat that pads with it."""
        self.need_volume(k, node)
        consts = [None] + [self.array(k, node, n) if n else None for n in node.input[1:]]
        axes = _ints_or(consts, 3, None)
        starts, ends = _ints_or(consts, 1, []), _ints_or(consts, 2, [])
        steps = _ints_or(consts, 4, [1] * len(starts))
        if self.opset < 10 or len(starts) != 1 or axes is None or len(axes) != 1 \
                or not -4 <= axes[0] < 4 or axes[0] % 4 not in (2, 3):
            raise self.node_fail(k, node, "a Slice of the layers' data is supported only along "
                                 "one of the height or width axes, as part of padding",
                                 "export the padding with Pad", f"axes={axes}")
        axis = axes[0] % 4
        try:
            at = slice_positions(self.shape[axis - 1], starts[0], ends[0], steps[0])
        except FoldError as exc:
            raise self.node_fail(k, node, str(exc), "export the model again") from None
        self.side[node.output[0]] = (cur, axis, at)

    def concat_pad(self, k: int, node: Any, a: dict[str, Any], cur: str) -> None:
        """Concat of the chain's tensor with Slices of it: padding (circular, in PyTorch)."""
        self.need_volume(k, node)
        axis = self.axis(k, node, a.get("axis", 0), 4)
        parts = []
        for name in node.input:
            if name == cur:
                parts.append(np.arange(self.shape[axis - 1], dtype=np.int64))
            elif name in self.side and self.side[name][:2] == (cur, axis):
                parts.append(self.side[name][2])
            else:
                raise self.node_fail(k, node, "a Concat of the layers' data is supported only "
                                     "as padding (the tensor with Slices of itself)",
                                     "export the padding with Pad", f"inputs {list(node.input)}")
        self.pad_by_indices(k, node, axis, np.concatenate(parts).tolist())

    def start_pad(self, k: int, node: Any, mode: str, rows: tuple[int, int],
                  cols: tuple[int, int], axis: int | None = None) -> None:
        if self.pending is not None:
            prev = self.pending
            free = prev.get("axis") is not None and axis is not None and prev["axis"] != axis
            if not free or (prev["mode"] != mode and any(rows + cols)
                            and any(prev["pads"][0] + prev["pads"][1])):
                raise self.node_fail(k, node, "two padding nodes in a row are not supported",
                                     "pad once before each Conv", f"mode {mode!r} after "
                                     f"{prev['mode']!r}")
            (pt, pb), (pl, pr) = prev["pads"]
            if not any(prev["pads"][0] + prev["pads"][1]):
                prev["mode"] = mode
            prev["pads"] = ((pt + rows[0], pb + rows[1]), (pl + cols[0], pr + cols[1]))
            prev["axis"] = None
            return
        self.pending = {"mode": mode, "pads": (rows, cols), "axis": axis}


def _ints_or(values: list[Any], i: int, default: Any) -> Any:
    if i < len(values) and values[i] is not None:
        return [int(v) for v in np.asarray(values[i]).reshape(-1)]
    return default
