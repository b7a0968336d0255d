"""What ONNX export and import share: the optional ``onnx`` import, the opsets, padding
indices, the ceil-mode plan of a pooling, crash-safe writing and PyTorch's node names.

PyTorch's exporter names a node after the module that made it: the module at
``layer1.0.conv1`` writes ``/layer1/layer1.0/conv1/Conv``, with one scope per module and a
child of a ``Sequential`` (a number) written after its parent's scope (``layer1.0``).
:func:`scope_of` writes a module path that way and :func:`path_of` reads it back, so a model
exported by convscope or by ``torch.onnx.export`` comes back with its module paths.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import shapes
from ..errors import FileFormatError, message

__all__ = ["MIN_OPSET", "WRAP_OPSET", "require_onnx", "pad_indices", "pool_ceil_plan",
           "write_atomic", "scope_of", "path_of", "interpolate_copies"]

MIN_OPSET = 13
"""Oldest opset written: Flatten, Gemm, Pad with a pads input, MaxPool dilations and ceil_mode."""
WRAP_OPSET = 19
"""First opset whose Pad has mode 'wrap' (circular padding)."""


def require_onnx(where: str) -> Any:
    """Import the optional ``onnx`` package, or say how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError(message(where, "ONNX support needs the `onnx` package, which is not "
                                  "installed",
                                  "pip install 'convscope[onnx]' (or pip install onnx)",
                                  "import onnx failed")) from None
    return onnx


def pad_indices(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """Indices into an axis of ``size`` that pad it by ``before``/``after`` in ``mode``.

    ``x.take(pad_indices(...), axis)`` pads exactly as ``Conv2d(padding_mode=mode)``:

    >>> pad_indices(4, 2, 1, "circular").tolist(), pad_indices(4, 2, 1, "reflect").tolist()
    ([2, 3, 0, 1, 2, 3, 0], [2, 1, 0, 1, 2, 3, 2])
    >>> pad_indices(4, 2, 1, "replicate").tolist()
    [0, 0, 0, 1, 2, 3, 3]
    """
    i = np.arange(-before, size + after, dtype=np.int64)
    if mode == "circular":
        return i % size
    if mode == "reflect":
        i = np.abs(i)
        return np.where(i >= size, 2 * (size - 1) - i, i)
    return np.clip(i, 0, size - 1)


def pool_ceil_plan(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                   pad: Sequence[int], dilation: Sequence[int]) -> tuple[int, list[int]] | None:
    """How to write a ``ceil_mode=True`` pooling in ONNX terms: ``(ceil_mode, extra_end_pads)``.

    ONNX computes a ceil-mode size as ``ceil(span / stride) + 1``, without PyTorch's rule that
    drops a last window starting in the right padding. Where the rule drops a window, the
    result equals floor mode; where it does not, ONNX's ceil mode agrees. Only when the two
    axes need different flags is one of them given extra end padding (``extra_end_pads``
    nonzero), which only a pooling that ignores padding may use. ``None``: no plan fits
    ONNX Runtime's limit (padding smaller than the kernel).
    """
    floor_ok, ceil_ok, extra = [], [], []
    for n, k, s, p, d in zip(sizes, kernel, stride, pad, dilation, strict=True):
        want = shapes.pool_out(n, k, s, p, d, ceil_mode=True)
        span = n + 2 * p - d * (k - 1) - 1
        floor_ok.append(want == span // s + 1)
        ceil_ok.append(want == -(-span // s) + 1)
        extra.append(max(0, (want - 1) * s + d * (k - 1) + 1 - (n + 2 * p)))
    if all(ceil_ok):
        return 1, [0, 0]
    if all(floor_ok):
        return 0, [0, 0]
    extra = [0 if ok else e for ok, e in zip(floor_ok, extra, strict=True)]
    if any(p + e >= k for p, e, k in zip(pad, extra, kernel, strict=True)):
        return None
    return 0, extra


def write_atomic(path: Path, data: bytes, where: str) -> None:
    """Write ``data`` to ``path`` crash-safely: a temp file, fsync, rename, folder fsync."""
    folder = str(path.parent) or "."
    if path.is_dir():
        raise FileFormatError(message(f"{where}({str(path)!r})", "the path is a directory",
                                      "give a file name such as model.onnx", str(path)))
    if not os.path.isdir(folder):
        raise FileFormatError(message(f"{where}({str(path)!r})",
                                      "the folder to write into does not exist",
                                      "create it first or choose another path", folder))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        try:
            dfd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
    except OSError as exc:
        raise FileFormatError(message(f"{where}({str(path)!r})",
                                      f"could not write the file ({exc.strerror or exc})",
                                      "free disk space or check permissions; any previous file "
                                      "at this path is unchanged", f"errno {exc.errno}")) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def interpolate_copies(mode: str, corners: bool | None, sizes: Any, outs: Any,
                       scales: Any) -> bool:
    """Whether interpolate copies cells where ONNX's Resize, given ``scales`` that are not
    ``out / in``, would compute them: PyTorch's nearest copies an output of the input's size
    or twice it (``i``, ``i // 2``), bilinear an output of the input's size, whatever the
    scale."""
    for n, o, s in zip(sizes, outs, scales, strict=True):
        if float(s) * n == o:
            continue
        if (mode == "nearest" and o in (n, 2 * n)) or (mode == "bilinear" and not corners
                                                        and o == n):
            return True
    return False


# --------------------------------------------------------------------------- node names
def scope_of(path: str) -> str:
    """A module path as PyTorch's exporter scopes it; ``#k`` (the k-th call) becomes ``_k-1``.

    >>> scope_of("layer1.0.conv1"), scope_of("features.1.conv.0.2"), scope_of("relu#2")
    ('/layer1/layer1.0/conv1', '/features/features.1/conv/conv.0/conv.0.2', '/relu_1')
    >>> scope_of("")
    ''
    """
    base, _, call = path.partition("#")
    comps: list[str] = []
    for part in [p for p in base.split(".") if p]:
        comps.append(f"{comps[-1]}.{part}" if part.isdigit() and comps else part)
    if call.isdigit() and comps:
        comps[-1] += f"_{int(call) - 1}"
    return "".join(f"/{c}" for c in comps)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
MAX_DEPTH = 32
"""Deepest module path read from a node name (deeper names are not module paths)."""


def path_of(node_name: str) -> str | None:
    """The module path in a PyTorch-style node name, or None when the name is not one.

    ``"/layer1/layer1.0/conv1/Conv"`` -> ``"layer1.0.conv1"``; ``"/Flatten"`` -> ``""`` (the
    model itself); ``"my_node"`` -> None. Every part must be a plain identifier or a number.

    >>> path_of("/features/features.1/conv/conv.0/conv.0.2/Clip"), path_of("/Flatten")
    ('features.1.conv.0.2', '')
    >>> path_of("conv1") is None, path_of("/a/../Conv") is None
    (True, True)
    """
    if not isinstance(node_name, str) or not node_name.startswith("/") or len(node_name) > 4096:
        return None
    comps = node_name[1:].split("/")[:-1]
    if len(comps) > MAX_DEPTH:
        return None
    parts: list[str] = []
    prev = ""
    for comp in comps:
        if prev and comp.startswith(prev + "."):
            new = comp[len(prev) + 1:].split(".")
        else:
            new = comp.split(".")
        if not new or not all(_NAME.fullmatch(p) for p in new):
            return None
        parts += new
        prev = comp
    if len(parts) > MAX_DEPTH:
        return None
    return ".".join(parts)
