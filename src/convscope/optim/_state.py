"""The optimizer's state, and its saved forms: PyTorch's nested dict, flat arrays, convscope 0.1.

``state_dict()`` is PyTorch's nested layout. Files hold flat named arrays
(:meth:`Optimizer.state_arrays`): ``state.<index>.<name>`` and ``param_groups.<g>.<key>``
(numbers as float64, flags as bool, tuples as 1-D arrays, ``params`` as int64). Checkpoints
written before parameter groups existed hold ``steps`` and ``<index>.<name>``; they load too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor

__all__ = ["ParamState"]


class ParamState(MutableMapping):
    """The optimizer's per-parameter state: a dict per parameter, keyed by the parameter itself.

    Keys compare by identity (as ``torch.optim``'s ``defaultdict`` does through ``id``), and
    reading a parameter that has no state yet gives a new empty dict.
    """

    def __init__(self) -> None:
        self._items: dict[int, tuple[Tensor, dict[str, Any]]] = {}

    def __getitem__(self, param: Tensor) -> dict[str, Any]:
        item = self._items.get(id(param))
        if item is None:
            item = self._items[id(param)] = (param, {})
        return item[1]

    def __setitem__(self, param: Tensor, value: dict[str, Any]) -> None:
        self._items[id(param)] = (param, value)

    def __delitem__(self, param: Tensor) -> None:
        del self._items[id(param)]

    def __contains__(self, param: object) -> bool:
        return id(param) in self._items

    def get(self, param: Tensor, default: Any = None) -> Any:
        item = self._items.get(id(param))
        return default if item is None else item[1]

    def __iter__(self) -> Iterator[Tensor]:
        return (p for p, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ParamState({len(self)} parameters)"


def is_number(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def int_like(key: Any) -> int | None:
    """A state key as a parameter index (JSON turns PyTorch's int keys into strings)."""
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def as_numpy(value: Any) -> np.ndarray:
    """A Tensor, a torch tensor (anything with ``.detach().cpu().numpy()``) or array_like."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def export_value(key: str, value: Any) -> Any:
    """A state value for ``state_dict()``: arrays as Tensor copies, steps as 0-d float64."""
    if key == "step":
        return Tensor(np.array(float(value), np.float64))
    if isinstance(value, np.ndarray):
        return Tensor._wrap(value.copy())
    return value


def import_value(key: str, value: Any, param: Tensor, where: str, index: Any) -> Any:
    """One saved state value, checked against its parameter: steps become ints, arrays copies
    in the parameter's dtype (as PyTorch casts them)."""
    arr = as_numpy(value)
    if arr.dtype.kind not in "iuf":
        raise ArgumentTypeError(
            message(where, f"state {key!r} of parameter {index} is not numeric",
                    "pass what opt.state_dict() returned", f"dtype {arr.dtype}")
        )
    if key == "step":
        step = float(arr.reshape(-1)[0]) if arr.size == 1 else math.nan
        if not (math.isfinite(step) and step >= 0 and step == int(step)):
            raise ArgumentError(
                message(where, f"the step count of parameter {index} must be a whole number >= 0",
                        "pass what opt.state_dict() returned", f"step={arr.tolist()!r}")
            )
        return int(step)
    if arr.ndim and arr.shape != param.shape:
        raise ShapeError(
            message(where, f"state {key!r} of parameter {index} does not fit its parameter",
                    "load the state of an optimizer over the same model",
                    f"state shape {arr.shape}, parameter shape {param.shape}")
        )
    dtype = param.dtype if arr.dtype.kind == "f" else arr.dtype
    return np.array(arr, dtype=dtype, copy=True)


def hyper_value(value: Any) -> Any:
    """A saved hyperparameter as a plain Python value (0-d tensors to numbers, lists to tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(hyper_value(v) for v in value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (Tensor, np.ndarray, np.generic)) or (
        hasattr(value, "detach") and hasattr(value, "numpy")
    ):
        arr = as_numpy(value)
        if arr.size == 1 and arr.dtype.kind == "b":
            return bool(arr.reshape(-1)[0])
        if arr.size == 1 and arr.dtype.kind in "iuf":
            return float(arr.reshape(-1)[0])
    return value


def to_arrays(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A nested state_dict as flat named arrays (what ``Optimizer.state_arrays`` returns)."""
    out: dict[str, np.ndarray] = {}
    for i, s in state_dict["state"].items():
        for k, v in s.items():
            arr = np.asarray(v.data if isinstance(v, Tensor) else v)
            out[f"state.{i}.{k}"] = arr.astype(np.int64) if k == "step" else arr
    for g, group in enumerate(state_dict["param_groups"]):
        for k, v in group.items():
            if k == "params":
                out[f"param_groups.{g}.params"] = np.asarray(v, np.int64)
            elif isinstance(v, (bool, np.bool_)):
                out[f"param_groups.{g}.{k}"] = np.asarray(v, np.bool_)
            elif is_number(v) or (isinstance(v, tuple) and all(map(is_number, v))):
                out[f"param_groups.{g}.{k}"] = np.asarray(v, np.float64)
    return out


def from_arrays(
    arrays: Mapping[str, Any], groups: list[dict[str, Any]], defaults: dict[str, Any],
    where: str,
) -> dict[str, Any]:
    """Flat arrays back into the nested form; each value takes the type that the optimizer's
    own group holds under that name (a flag, a tuple, a number)."""
    state: dict[int, dict[str, Any]] = {}
    saved: dict[int, dict[str, Any]] = {}
    for key, value in arrays.items():
        kind, _, rest = str(key).partition(".")
        index, _, name = rest.partition(".")
        if kind not in ("state", "param_groups") or not index.isdigit() or not name:
            raise ArgumentError(
                message(where, f"unexpected key {key!r} in a flat optimizer state",
                        "pass what opt.state_arrays() returned", str(key))
            )
        table = state if kind == "state" else saved
        table.setdefault(int(index), {})[name] = value
    out_groups = []
    for g in sorted(saved):
        own = groups[g] if g < len(groups) else defaults
        group: dict[str, Any] = {}
        for name, value in saved[g].items():
            arr = np.asarray(value)
            like = own.get(name)
            if name == "params":
                group[name] = [int(i) for i in arr.reshape(-1)]
            elif isinstance(like, bool) or arr.dtype == np.bool_:
                group[name] = bool(arr)
            elif isinstance(like, tuple) or arr.ndim == 1:
                group[name] = tuple(float(x) for x in arr)
            else:
                group[name] = float(arr)
        out_groups.append(group)
    return {"state": state, "param_groups": out_groups}


def from_legacy(flat: Mapping[str, Any], groups: list[dict[str, Any]], where: str
                ) -> dict[str, Any]:
    """The flat ``{"steps", "<index>.<name>"}`` form of convscope 0.1 checkpoints."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        if key == "steps":
            continue
        index, _, name = str(key).partition(".")
        if not index.isdigit() or not name:
            raise ArgumentError(
                message(where, f"unexpected key {key!r} in an optimizer state",
                        "pass what opt.state_dict() returned", str(key))
            )
        state.setdefault(int(index), {})[name] = value
    out_groups, start = [], 0
    for group in groups:
        saved = {k: v for k, v in group.items() if k != "params"}
        saved["params"] = list(range(start, start + len(group["params"])))
        start += len(group["params"])
        out_groups.append(saved)
    return {"state": state, "param_groups": out_groups}
