"""Weights written by PyTorch or Keras, loaded into a model built from a spec.

Three file formats are read, none of them by unpickling: ``.safetensors``, ``.npz`` and
``.pt`` / ``.pth`` (the last only when PyTorch is installed). The reading is
:mod:`.weight_files` (:func:`read_weights`, re-exported here); this module turns what was read
into a model's state_dict.

Two layouts are understood:

``torch``
    PyTorch's names and shapes. A ``torch.nn.Sequential`` has the same names as the convscope
    model (``0.weight``, ``3.running_mean`` ...), so they load one to one. Other names (a
    model class with ``self.conv1``...) are matched layer by layer in the order the file keeps
    (``.npz`` and ``.pt`` keep it; safetensors files do not, so there the names must match).
``keras``
    Keras's names (``conv2d/kernel:0``, ``dense_1/bias:0``, ``batch_normalization/gamma:0``
    ... with or without a model prefix and ``:0``) and shapes: conv kernels are
    (kH, kW, in, out) and become (out, in, kH, kW); depthwise kernels (kH, kW, in, mult);
    Dense kernels are (in, out) and become (out, in). The Dense layer right after a Flatten
    of a volume gets its rows reordered: Keras flattens channels-last volumes in (H, W, C)
    order, convscope in (C, H, W) order. Keras layers are matched to convscope's by kind, in
    order (conv to Conv2d, Dense to Linear, BatchNormalization to BatchNorm2d).

Every tensor is checked; a mismatch names the tensor, the layer, and the expected and
received shapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..nn import BatchNorm2d, Conv2d, Dropout, Flatten, Identity, Linear, Module, ReLU, Sequential
from .weight_files import MAX_WEIGHT_BYTES, _to_numpy, read_weights

__all__ = ["load_weights", "read_weights", "convert_state", "LAYOUTS", "MAX_WEIGHT_BYTES"]

LAYOUTS = ("auto", "torch", "keras")

_KERAS_LEAVES = {"kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean",
                 "moving_variance"}
_KERAS_ONLY = _KERAS_LEAVES - {"bias"}
_TORCH_OPTIONAL = {"num_batches_tracked"}


# --------------------------------------------------------------------------- layouts
def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _keras_parts(name: str) -> tuple[str, str]:
    base = name[:-2] if name.endswith(":0") else name
    prefix, _, leaf = base.rpartition("/")
    return prefix, leaf


def _guess_layout(state: Mapping[str, Any]) -> str:
    for name in state:
        prefix, leaf = _keras_parts(name)
        if name.endswith(":0") or leaf in _KERAS_ONLY or (prefix and leaf == "bias"):
            return "keras"
    return "torch"


def _layers_with_state(model: Module) -> list[tuple[str, Module]]:
    out = []
    for name, mod in model.named_modules():
        if mod._parameters or mod._buffers:
            out.append((name, mod))
    return out


def _label(name: str, mod: Module) -> str:
    return f"layer {name} ({getattr(mod, 'label', type(mod).__name__)})"


def _fit(src: str, ours: str, arr: np.ndarray, target: np.ndarray, layer: str,
         shown: Sequence[int] | None = None, layout: str = "") -> np.ndarray:
    """Check ``arr`` against ``target``'s shape; return it in ``target``'s dtype."""
    want = tuple(shown) if shown is not None else target.shape
    if arr.shape != want:
        raise ShapeError(message(
            f"load_weights {layer}", f"tensor {src!r} (for {ours!r}) has the wrong shape",
            "load weights saved from the same architecture (check the spec's layer sizes "
            "and input volume)" + (f"; shapes in {layout} layout" if layout else ""),
            f"expected {want}, received {arr.shape}"))
    if target.dtype.kind == "f" and arr.dtype.kind not in "f":
        raise ShapeError(message(f"load_weights {layer}", f"tensor {src!r} holds {arr.dtype} "
                                 "values where floats belong", "save float weights",
                                 f"dtype {arr.dtype}"))
    return arr


def _torch_state(model: Module, state: Mapping[str, np.ndarray], ordered: bool
                 ) -> dict[str, np.ndarray]:
    own = model.state_arrays()
    names = list(state)
    if names and all(n.startswith("module.") for n in names):  # saved from DataParallel
        state = {n[len("module."):]: v for n, v in state.items()}
        names = list(state)
    if all(k in state or k.rsplit(".", 1)[-1] in _TORCH_OPTIONAL for k in own):
        extra = [n for n in names if n not in own]
        if extra:
            raise ShapeError(message("load_weights", "the file holds tensors this model has no "
                                     "place for", "load weights saved from the same "
                                     "architecture", f"unexpected {extra[:8]}"))
        out = {}
        for key, target in own.items():
            if key in state:
                mod_name = key.rsplit(".", 1)[0]
                out[key] = _fit(key, key, state[key], target, f"layer {mod_name}")
        return out
    if not ordered:
        missing = [k for k in own if k not in state][:6]
        raise ShapeError(message(
            "load_weights", "the tensor names do not match this model's, and a safetensors file "
            "keeps no order to match them by", "rename the tensors to the model's names "
            f"({', '.join(list(own)[:4])} ...) or save the weights as .npz or .pt",
            f"missing {missing}, file has {names[:6]}"))
    groups: dict[str, dict[str, str]] = {}
    for n in names:
        prefix, _, leaf = n.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = n
    mods = _layers_with_state(model)
    if len(groups) != len(mods):
        raise ShapeError(message(
            "load_weights", f"the file's tensors belong to {len(groups)} layers but the model "
            f"has {len(mods)} layers with weights", "load weights saved from the same "
            "architecture", f"file layers {list(groups)[:8]}, model layers "
            f"{[n for n, _ in mods][:8]}"))
    out = {}
    for (prefix, leaves), (mod_name, mod) in zip(groups.items(), mods, strict=True):
        need = set(mod._parameters) | set(mod._buffers)
        have = set(leaves)
        if have - need or (need - have) - _TORCH_OPTIONAL:
            raise ShapeError(message(
                f"load_weights {_label(mod_name, mod)}", f"the file's layer {prefix!r} holds "
                f"{sorted(have)} but this layer needs {sorted(need)}", "check the order of "
                "the layers", f"file layer {prefix!r}"))
        for leaf, src in leaves.items():
            ours = f"{mod_name}.{leaf}"
            out[ours] = _fit(src, ours, state[src], own[ours], _label(mod_name, mod))
    return out


def _flatten_sources(model: Module, input_shape: Sequence[int] | None) -> dict[int, tuple]:
    """For each Linear (by id) fed by a Flatten of a volume, that volume (C, H, W)."""
    from ..spec import output_shape

    layers = list(model) if isinstance(model, Sequential) else [model]
    shape = tuple(input_shape) if input_shape is not None else None
    out: dict[int, tuple] = {}
    flat_from = None
    for layer in layers:
        if isinstance(layer, Linear):
            if flat_from is not None:
                out[id(layer)] = flat_from
            flat_from = None
        elif isinstance(layer, Flatten):
            flat_from = shape if shape is not None and len(shape) == 3 else (
                "unknown" if shape is None else None)
        elif not isinstance(layer, (ReLU, Dropout, Identity)):
            flat_from = None
        if shape is not None:
            shape = output_shape(layer, shape)
    return out


def _keras_state(model: Module, state: Mapping[str, np.ndarray], ordered: bool,
                 input_shape: Sequence[int] | None) -> dict[str, np.ndarray]:
    groups: dict[str, dict[str, str]] = {}
    for n in state:
        prefix, leaf = _keras_parts(n)
        if leaf not in _KERAS_LEAVES:
            raise ShapeError(message("load_weights (keras layout)", f"tensor {n!r} is not a "
                                     "Keras weight convscope knows", "keep kernel, bias, "
                                     "depthwise_kernel, gamma, beta, moving_mean and "
                                     "moving_variance only", f"name {n!r}"))
        groups.setdefault(prefix, {})[leaf] = n
    order = list(groups) if ordered else sorted(groups, key=_natural)
    queues: dict[str, list[str]] = {"conv": [], "dense": [], "bn": []}
    for prefix in order:
        leaves = groups[prefix]
        if "depthwise_kernel" in leaves or ("kernel" in leaves
                                            and np.ndim(state[leaves["kernel"]]) == 4):
            queues["conv"].append(prefix)
        elif "kernel" in leaves:
            queues["dense"].append(prefix)
        elif leaves.keys() & {"gamma", "beta", "moving_mean", "moving_variance"}:
            queues["bn"].append(prefix)
        else:
            raise ShapeError(message("load_weights (keras layout)", f"Keras layer {prefix!r} "
                                     "has a bias but no kernel", "save every weight of the layer",
                                     f"tensors {sorted(leaves.values())}"))
    own = model.state_arrays()
    mods = _layers_with_state(model)
    kinds = {Conv2d: "conv", Linear: "dense", BatchNorm2d: "bn"}
    wanted = {k: [n for n, m in mods if kinds.get(type(m)) == k] for k in queues}
    if any(len(wanted[k]) != len(queues[k]) for k in queues):
        raise ShapeError(message(
            "load_weights (keras layout)", "the Keras layers do not match the model's layers",
            "load weights from a Keras model with the same layers",
            "file: " + ", ".join(f"{len(queues[k])} {k}" for k in queues)
            + "; model: " + ", ".join(f"{len(wanted[k])} {k}" for k in queues)))
    flat = _flatten_sources(model, input_shape)
    out: dict[str, np.ndarray] = {}
    taken = {k: iter(queues[k]) for k in queues}
    for mod_name, mod in mods:
        kind = kinds.get(type(mod))
        if kind is None:
            raise ArgumentError(message("load_weights (keras layout)", f"{type(mod).__name__} "
                                        "has no Keras counterpart here", "use layout='torch'"))
        prefix = next(taken[kind])
        leaves = groups[prefix]
        where = _label(mod_name, mod)

        def put(leaf: str, ours: str, arr: np.ndarray, _where: str = where,
                _leaves: dict[str, str] = leaves) -> None:
            out[ours] = _fit(_leaves.get(leaf, leaf), ours, arr, own[ours], _where)

        if isinstance(mod, Conv2d):
            o, cg, kh, kw = mod.weight.shape
            if "depthwise_kernel" in leaves:
                src = leaves["depthwise_kernel"]
                arr = np.asarray(state[src])
                cin = mod.in_channels
                if mod.groups != cin or cg != 1:
                    raise ShapeError(message(f"load_weights {where}", f"{src!r} is a depthwise "
                                             "kernel but this Conv2d is not depthwise",
                                             f"build it with groups={cin}", f"groups={mod.groups}"))
                _fit(src, f"{mod_name}.weight", arr, own[f"{mod_name}.weight"], where,
                     (kh, kw, cin, o // cin), "Keras (kH, kW, in, multiplier)")
                put("depthwise_kernel", f"{mod_name}.weight",
                    arr.transpose(2, 3, 0, 1).reshape(o, 1, kh, kw))
            else:
                src = leaves["kernel"]
                arr = np.asarray(state[src])
                _fit(src, f"{mod_name}.weight", arr, own[f"{mod_name}.weight"], where,
                     (kh, kw, cg, o), "Keras (kH, kW, in, out)")
                put("kernel", f"{mod_name}.weight", arr.transpose(3, 2, 0, 1))
        elif isinstance(mod, Linear):
            src = leaves["kernel"]
            arr = np.asarray(state[src])
            _fit(src, f"{mod_name}.weight", arr, own[f"{mod_name}.weight"], where,
                 (mod.in_features, mod.out_features), "Keras (in, out)")
            vol = flat.get(id(mod))
            if vol == "unknown":
                raise ArgumentError(message(f"load_weights {where}", "the Dense kernel after a "
                                            "Flatten must be reordered from Keras's (H, W, C) "
                                            "to convscope's (C, H, W), which needs the input "
                                            "volume", "pass input_shape=(C, H, W) or build the "
                                            "model with cs.parse from a spec with HxWxD"))
            if vol is not None:
                c, h, w = vol
                arr = arr.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
            put("kernel", f"{mod_name}.weight", arr.T)
        else:  # BatchNorm2d
            c = mod.num_features
            defaults = {"gamma": np.ones(c, np.float32), "beta": np.zeros(c, np.float32)}
            for leaf, ours in (("gamma", "weight"), ("beta", "bias"),
                               ("moving_mean", "running_mean"),
                               ("moving_variance", "running_var")):
                key = f"{mod_name}.{ours}"
                if key not in own:
                    continue
                if leaf in leaves:
                    put(leaf, key, np.asarray(state[leaves[leaf]]))
                elif leaf in defaults:
                    out[key] = defaults[leaf]
                else:
                    raise ShapeError(message(f"load_weights {where}", f"Keras layer {prefix!r} "
                                             f"has no {leaf}", "save all four BatchNormalization "
                                             "weights", f"tensors {sorted(leaves.values())}"))
        if "bias" in leaves:
            if f"{mod_name}.bias" not in own:
                raise ShapeError(message(f"load_weights {where}", f"Keras layer {prefix!r} has a "
                                         "bias but this layer has none", "build it with bias=true",
                                         f"tensor {leaves['bias']!r}"))
            put("bias", f"{mod_name}.bias", np.asarray(state[leaves["bias"]]))
        elif isinstance(mod, (Conv2d, Linear)) and mod.bias is not None:
            raise ShapeError(message(f"load_weights {where}", f"Keras layer {prefix!r} has no bias "
                                     "but this layer has one", "build it with bias=false",
                                     f"tensors {sorted(leaves.values())}"))
    return out


def convert_state(model: Module, state: Mapping[str, Any], layout: str = "auto",
                  input_shape: Sequence[int] | None = None, ordered: bool = True
                  ) -> dict[str, np.ndarray]:
    """Turn foreign weights into ``model``'s state_dict names, shapes and layout (checked).

    Parameters
    ----------
    model : Module
        The model to fill, usually ``cs.parse(spec)``.
    state : mapping of str -> array
        NumPy arrays or torch tensors (a PyTorch ``state_dict()`` works as is).
    layout : {'auto', 'torch', 'keras'}
        'auto' picks Keras when names look like Keras's (``.../kernel``, ``:0``, ``gamma``).
    input_shape : (C, H, W), optional
        Defaults to ``model.input_shape``; needed for Keras's Dense-after-Flatten reorder.
    ordered : bool
        Whether ``state``'s order is the order it was written in (it is for a state_dict).

    Returns
    -------
    dict of str -> ndarray
        For ``model.load_state_dict`` (``num_batches_tracked`` may be absent).
    """
    if layout not in LAYOUTS:
        raise ArgumentError(message("load_weights", f"unknown layout {layout!r}",
                                    "use 'auto', 'torch' or 'keras'", f"layout={layout!r}"))
    if not isinstance(state, Mapping):
        raise ArgumentTypeError(message("load_weights", "state must map names to arrays",
                                        "pass a dict such as torch_model.state_dict()",
                                        f"type {type(state).__name__}"))
    arrays = {str(k): _to_numpy(str(k), v, "<state>") for k, v in state.items()}
    if layout == "auto":
        layout = _guess_layout(arrays)
    if layout == "torch":
        return _torch_state(model, arrays, ordered)
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    return _keras_state(model, arrays, ordered, shape)


def load_weights(model: Module, path: str | os.PathLike[str], layout: str = "auto",
                 input_shape: Sequence[int] | None = None,
                 max_bytes: int = MAX_WEIGHT_BYTES) -> Module:
    """Fill ``model`` with the weights in a ``.safetensors``, ``.npz`` or ``.pt`` file.

    Parameters
    ----------
    model : Module
        Usually ``cs.parse(spec)``; changed in place.
    path : str or PathLike
        The weights file. ``.pt``/``.pth`` need PyTorch and are read with
        ``torch.load(weights_only=True)``; ``.npz`` with ``allow_pickle=False``.
    layout : {'auto', 'torch', 'keras'}
        Names and shapes as PyTorch or Keras write them (see the module docstring).
    input_shape : (C, H, W), optional
        Defaults to ``model.input_shape``.
    max_bytes : int, default 2 GiB
        Larger files (or .npz archives unpacking to more) are refused before reading.

    Returns
    -------
    Module
        ``model``, with every parameter and buffer replaced.

    Raises
    ------
    FileFormatError
        The file is missing, damaged, too large, pickled, or needs PyTorch that is missing.
    ShapeError
        A tensor has the wrong shape (the message names it, with the expected and received
        shapes), or the file's tensors do not match the model's layers.

    Examples
    --------
    >>> import os, tempfile, numpy as np, convscope as cs
    >>> from convscope.interop import load_weights
    >>> model = cs.parse("4x4x1 | conv(2, 3) | flatten | linear(3)")
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, **{k: v + 1 for k, v in model.state_dict().items()})
    >>> float(load_weights(cs.parse(model.spec), path)[0].bias.numpy()[0]) == float(
    ...     model[0].bias.numpy()[0] + 1)
    True
    """
    if layout not in LAYOUTS:
        raise ArgumentError(message("load_weights", f"unknown layout {layout!r}",
                                    "use 'auto', 'torch' or 'keras'", f"layout={layout!r}"))
    tensors, ordered = read_weights(path, max_bytes)
    converted = convert_state(model, tensors, layout, input_shape, ordered)
    own = model.state_arrays()
    for key, value in own.items():  # counters a file may leave out keep their value
        converted.setdefault(key, value)
    model.load_state_dict(converted)
    return model
