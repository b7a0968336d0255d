"""Model files: a safetensors file holding the weights and, in its metadata, the model spec.

A saved model is self-describing: ``cs.load(path)`` rebuilds the architecture from the spec in
the header (parsed safely, see :mod:`convscope.spec`), then loads and checks every tensor.
Nothing is ever unpickled.

>>> import tempfile, os, convscope as cs
>>> model = cs.parse("8x8x1 | conv(4, 3, padding=1) | relu | flatten | linear(10)")
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> _ = cs.save(model, path, classes=[str(i) for i in range(10)])
>>> cs.load(path).classes[:3]
['0', '1', '2']
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import ArgumentError, FileFormatError, message
from .interop import export_onnx as export_onnx
from .interop import load_onnx as load_onnx
from .nn import Sequential
from .safetensors import load_file, read_metadata, save_file

__all__ = ["save", "load", "resolve_model_path", "export_onnx", "load_onnx", "FORMAT"]

FORMAT = "convscope-model-1"


def _input_volume(model: Sequential, input_shape: Sequence[int] | None) -> tuple[int, int, int]:
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3:
        raise ArgumentError(message("save", "the model's input volume is unknown",
                                    "pass input_shape=(C, H, W), or build the model with cs.parse",
                                    f"input_shape={shape!r}"))
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def save(model: Sequential, path: str | os.PathLike[str], classes: Sequence[str] | None = None,
         input_shape: Sequence[int] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` (crash-safe: a complete old or new file, never half of one).

    Parameters
    ----------
    model : Sequential
        A model made of convscope layers (as built by :func:`convscope.parse`).
    classes : sequence of str, optional
        Class names, one per output, kept with the weights for ``convscope predict``.
    input_shape : (C, H, W), optional
        Defaults to ``model.input_shape``.
    """
    from .spec import to_spec

    shape = _input_volume(model, input_shape)
    spec = to_spec(model, shape)
    meta = {
        "format": FORMAT,
        "convscope_version": __version__,
        "spec": spec,
        "input_shape": json.dumps(list(shape)),
        "classes": json.dumps(list(classes) if classes is not None
                              else list(getattr(model, "classes", None) or [])),
    }
    if extra:
        meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    save_file(path, dict(model.state_dict()), meta)
    return Path(path)


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """A model file, or a run folder that holds ``model.safetensors``."""
    p = Path(path)
    if p.is_dir():
        candidate = p / "model.safetensors"
        if not candidate.is_file():
            raise FileFormatError(message("load", f"the folder {p} holds no model.safetensors",
                                          "pass a run folder written by `convscope train`, or the file itself",
                                          str(p)))
        return candidate
    if not p.exists():
        raise FileFormatError(message("load", f"no such file: {p}", "check the path", str(p)))
    return p


def load(path: str | os.PathLike[str]) -> Sequential:
    """Rebuild a model saved by :func:`save` (a file, or a run folder with ``model.safetensors``).

    The returned model has ``.classes`` (list of str), ``.input_shape`` and ``.spec``; it is in
    eval mode.
    """
    from .spec import parse

    p = resolve_model_path(path)
    meta = read_metadata(p)
    if meta.get("format") != FORMAT or "spec" not in meta:
        raise FileFormatError(message(
            "load", f"{p} is a safetensors file but not a convscope model (no model spec in its header)",
            "for bare weights build the model with cs.parse(spec) and call model.load_state_dict("
            "cs.safetensors.load_file(path)[0])", f"metadata keys {sorted(meta)}"))
    try:
        model = parse(meta["spec"], seed=0)
        classes = json.loads(meta.get("classes", "[]"))
        shape = json.loads(meta.get("input_shape", "null"))
    except (ValueError, TypeError) as exc:
        raise FileFormatError(message("load", f"{p} has a damaged header", "re-save the model",
                                      str(exc))) from None
    tensors, _ = load_file(p)
    try:
        model.load_state_dict(tensors)
    except ValueError as exc:
        raise FileFormatError(message("load", f"{p}: weights do not match its spec", "re-save the model",
                                      str(exc))) from None
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise FileFormatError(message("load", f"{p}: class names must be a list of strings",
                                      "re-save the model", repr(classes)[:80]))
    model.classes = classes
    model.input_shape = tuple(shape) if shape else model.input_shape
    model.source = str(p)
    model.metadata = meta
    return model.eval()


def state_arrays(model: Sequential) -> dict[str, np.ndarray]:
    return dict(model.state_dict())
