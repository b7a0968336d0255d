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

from . import __version__
from .errors import ArgumentError, ArgumentTypeError, FileFormatError, message
from .interop import export_onnx as export_onnx
from .interop import load_onnx as load_onnx
from .nn import Module, Sequential
from .safetensors import load_file, read_metadata, save_file

__all__ = ["save", "load", "resolve_model_path", "export_onnx", "load_onnx", "FORMAT"]

FORMAT = "convscope-model-1"
MAX_SPEC_CHARS = 100_000
"""Longest model spec :func:`load` accepts from a file (a 20-layer spec is ~300 characters)."""
_RESERVED = ("format", "convscope_version", "spec", "input_shape", "classes")


def _path(path: object, where: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            message(
                where,
                "the path must be a str or a pathlib.Path",
                "pass e.g. 'model.safetensors'",
                f"path of type {type(path).__name__}",
            )
        )
    return os.fspath(path)  # type: ignore[return-value]


def _input_volume(model: Sequential, input_shape: Sequence[int] | None) -> tuple[int, int, int]:
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3:
        raise ArgumentError(
            message(
                "save",
                "the model's input volume is unknown",
                "pass input_shape=(C, H, W), or build the model with cs.parse",
                f"input_shape={shape!r}",
            )
        )
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def save(
    model: Sequential,
    path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
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

    if not isinstance(model, Module):
        raise ArgumentTypeError(
            message(
                "save",
                "expected a model (a Sequential of layers)",
                "pass the model built with cs.parse or nn.Sequential",
                f"model of type {type(model).__name__}",
            )
        )
    path = _path(path, "save")
    if classes is not None and (
        isinstance(classes, (str, bytes))
        or not isinstance(classes, Sequence)
        or not all(isinstance(c, str) for c in classes)
    ):
        raise ArgumentTypeError(
            message(
                "save",
                "classes must be a list of str, one per output",
                "pass e.g. classes=['cat', 'dog'] (str(c) for numbers)",
                f"classes={classes!r:.80}",
            )
        )
    shape = _input_volume(model, input_shape)
    spec = to_spec(model, shape)
    meta = {
        "format": FORMAT,
        "convscope_version": __version__,
        "spec": spec,
        "input_shape": json.dumps(list(shape)),
        "classes": json.dumps(
            list(classes) if classes is not None else list(getattr(model, "classes", None) or [])
        ),
    }
    if extra:
        clash = [k for k in extra if k in _RESERVED or not isinstance(k, str)]
        if clash:
            raise ArgumentError(
                message(
                    "save",
                    f"extra cannot set {clash!r}",
                    "use other names; " + ", ".join(_RESERVED) + " are written by save",
                    f"extra keys {list(extra)!r:.120}",
                )
            )
        try:
            meta.update(
                {
                    k: v if isinstance(v, str) else json.dumps(v, allow_nan=False)
                    for k, v in extra.items()
                }
            )
        except (TypeError, ValueError) as exc:
            raise ArgumentTypeError(
                message(
                    "save",
                    "extra values must be str or JSON numbers, lists and dicts",
                    "convert them, e.g. str(value)",
                    str(exc),
                )
            ) from None
    save_file(path, dict(model.state_arrays()), meta)
    return Path(path)


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """A model file, or a run folder that holds ``model.safetensors``."""
    p = Path(_path(path, "load"))
    if p.is_dir():
        candidate = p / "model.safetensors"
        if not candidate.is_file():
            raise FileFormatError(
                message(
                    "load",
                    f"the folder {p} holds no model.safetensors",
                    "pass a run folder written by `convscope train`, or the file itself",
                    str(p),
                )
            )
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
        raise FileFormatError(
            message(
                "load",
                f"{p} is a safetensors file but not a convscope model "
                "(no model spec in its header)",
                "for bare weights build the model with cs.parse(spec) and call "
                "model.load_state_dict("
                "cs.safetensors.load_file(path)[0])",
                f"metadata keys {sorted(meta)[:20]}",
            )
        )
    if len(meta["spec"]) > MAX_SPEC_CHARS:
        raise FileFormatError(
            message(
                "load",
                f"{p}: the model spec in its header has {len(meta['spec'])} characters, more "
                f"than the limit of {MAX_SPEC_CHARS}",
                "this is not a model convscope wrote; re-save it",
                f"spec starting {meta['spec'][:60]!r}",
            )
        )
    try:
        model = parse(meta["spec"], seed=0)
        classes = json.loads(meta.get("classes", "[]"))
        shape = json.loads(meta.get("input_shape", "null"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise FileFormatError(
            message("load", f"{p} has a damaged header", "re-save the model", str(exc)[:500])
        ) from None
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise FileFormatError(
            message(
                "load",
                f"{p}: class names must be a list of strings",
                "re-save the model",
                repr(classes)[:80],
            )
        )
    if shape is not None and (not isinstance(shape, list) or tuple(shape) != model.input_shape):
        raise FileFormatError(
            message(
                "load",
                f"{p}: the input volume in its header does not match its spec",
                "re-save the model",
                f"input_shape {shape!r:.80}, spec volume {model.input_shape}",
            )
        )
    tensors, _ = load_file(p)
    own = model.state_arrays()
    for name, arr in tensors.items():
        want = own.get(name)
        if want is not None and arr.dtype.kind != want.dtype.kind:
            raise FileFormatError(
                message(
                    "load",
                    f"{p}: tensor {name!r} has dtype {arr.dtype}, but the model holds "
                    f"{want.dtype} there",
                    "re-save the model (weights are float32)",
                    f"dtype {arr.dtype}, shape {arr.shape}",
                )
            )
    try:
        model.load_state_dict(tensors)
    except ValueError as exc:
        raise FileFormatError(
            message(
                "load", f"{p}: weights do not match its spec", "re-save the model", str(exc)[:500]
            )
        ) from None
    model.classes = classes
    model.source = str(p)
    model.metadata = meta
    return model.eval()

