"""``Optimizer``: parameter groups, per-parameter state, and PyTorch's ``state_dict`` format.

An optimizer holds ``param_groups``, a list of dicts, each with its ``"params"`` and its own
hyperparameters (``"lr"``, ``"momentum"``, ...), and ``state``, a mapping from each
parameter to what its update rule keeps (momentum buffers, moment estimates, step counts).
``state_dict()`` gives both in PyTorch's layout, parameters replaced by their index::

    {"state": {0: {"momentum_buffer": Tensor}, ...},
     "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1, 2]}]}

so a saved state loads into a fresh optimizer over the same parameters, and PyTorch's own
optimizer state_dicts load here (and ours into PyTorch) where the update rules match.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor
from ._state import (
    ParamState,
    export_value,
    from_arrays,
    from_legacy,
    hyper_value,
    import_value,
    int_like,
    is_number,
    to_arrays,
)

__all__ = ["Optimizer"]

# PyTorch's switches between implementations of the same rule (a loop per tensor, fused
# kernels, CUDA graphs, differentiable steps): they do not change the numbers, so a state
# loaded from PyTorch drops them.
_IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")


_number = is_number


def check_number(
    where: str,
    name: str,
    value: object,
    low: float,
    high: float = math.inf,
    high_open: bool = False,
    example: str = "0.0",
    suffix: str = "",
) -> None:
    """A hyperparameter: a finite real number in ``[low, high]`` (``[low, high)`` if high_open)."""
    ok = _number(value) and math.isfinite(value) and low <= value <= high  # type: ignore[arg-type,operator]
    ok = ok and not (high_open and value == high)
    if not ok:
        bound = (
            f"in [{low}, {high})"
            if high_open
            else f">= {low}"
            if high == math.inf
            else f"in [{low}, {high}]"
        )
        raise ArgumentError(
            message(where, f"{name} must be a number {bound}", f"use {name}={example}",
                    f"{name}={value!r}{suffix}")
        )


def check_flag(where: str, name: str, value: object, suffix: str = "") -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(
            message(where, f"{name} must be True or False", f"use {name}=False",
                    f"{name}={value!r}{suffix}")
        )


class Optimizer:
    """Base class of the optimizers: parameter groups, state, ``step``, ``state_dict``.

    Parameters
    ----------
    params : iterable of Parameter, of (name, Parameter) pairs, or of dicts
        The tensors to optimise (``model.parameters()``), or parameter groups: dicts with a
        ``"params"`` entry and any hyperparameters that differ from the defaults for them.
    defaults : dict
        The hyperparameters of a group that does not set them.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group, readable and writable (``opt.param_groups[0]["lr"] = 0.01``).
    state : ParamState
        What the update rule keeps per parameter (``opt.state[p]["momentum_buffer"]``),
        as NumPy arrays and ints.

    Examples
    --------
    >>> import convscope as cs
    >>> model = cs.nn.Linear(3, 2, seed=0)
    >>> opt = cs.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}],
    ...                    lr=0.1, momentum=0.9)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.5]
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        where = type(self).__name__
        if isinstance(params, (Tensor, Mapping)) or not isinstance(params, Iterable) or (
            _is_module(params)
        ):
            raise ArgumentTypeError(
                message(
                    where,
                    "params must be an iterable of Parameters",
                    "pass model.parameters()",
                    f"params of type {type(params).__name__}",
                )
            )
        if isinstance(params, (set, frozenset)):
            raise ArgumentTypeError(_unordered(where))
        self.defaults = dict(defaults)
        self._check_group(self.defaults, where)
        self.state = ParamState()
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ArgumentError(
                message(
                    where,
                    "got an empty parameter list",
                    "pass model.parameters() of a model that has weights",
                )
            )
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. when unfreezing layers).

        Missing hyperparameters take the optimizer's defaults.

        >>> import convscope as cs
        >>> a, b = cs.nn.Parameter([1.0]), cs.nn.Parameter([2.0])
        >>> opt = cs.optim.SGD([a], lr=0.1)
        >>> opt.add_param_group({"params": [b], "lr": 0.01})
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
        """
        where = f"{type(self).__name__}.add_param_group"
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise ArgumentTypeError(
                message(
                    where,
                    "a parameter group must be a dict with a 'params' entry",
                    "pass {'params': model.parameters(), 'lr': 0.01}",
                    f"{type(param_group).__name__}"
                    + (f" with keys {sorted(map(str, param_group))}"
                       if isinstance(param_group, Mapping) else ""),
                )
            )
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise ArgumentTypeError(_unordered(where))
        elif not isinstance(params, Iterable) or _is_module(params):
            raise ArgumentTypeError(
                message(where, "'params' must be an iterable of Parameters",
                        "pass model.parameters()", f"params of type {type(params).__name__}")
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple) and len(p) == 2]
        if names:
            if len(names) != len(params):
                raise ArgumentError(
                    message(where, "either every parameter comes with a name or none does",
                            "pass model.named_parameters() or model.parameters()",
                            f"{len(names)} named of {len(params)}")
                )
            params = [p[1] for p in params]
            group["param_names"] = names
        for p in params:
            if not isinstance(p, Tensor):
                raise ArgumentTypeError(
                    message(
                        type(self).__name__,
                        "params must be Parameters (tensors with requires_grad=True)",
                        "pass model.parameters()",
                        f"an item of type {type(p).__name__}",
                    )
                )
            if not p.is_leaf:
                raise ArgumentError(
                    message(where, "cannot optimise a computed tensor (not a leaf)",
                            "pass the Parameters themselves, e.g. model.parameters()",
                            f"a result of {p._op}")
                )
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        self._check_group(group, where, f" in parameter group {len(self.param_groups)}")
        seen: set[int] = set()
        for p in params:
            if id(p) in seen:
                raise ArgumentError(
                    message(where, "a parameter appears twice in one group",
                            "list each parameter once (model.parameters() does)",
                            f"a parameter of shape {p.shape}")
                )
            seen.add(id(p))
        held = {id(p) for g in self.param_groups for p in g["params"]}
        if held & seen:
            raise ArgumentError(
                message(where, "some parameters appear in more than one parameter group",
                        "put each parameter in one group only",
                        f"{len(held & seen)} shared parameters")
            )
        self.param_groups.append(group)

    def _check_group(self, group: Mapping[str, Any], where: str, suffix: str = "") -> None:
        """Refuse impossible hyperparameters (subclasses add their own)."""
        lr = group.get("lr")
        if not (_number(lr) and math.isfinite(lr) and lr >= 0):  # type: ignore[arg-type,operator]
            raise ArgumentError(
                message(where.split(".")[0], "lr must be a non-negative number", "use lr=1e-3",
                        f"lr={lr!r}{suffix}")
            )

    @property
    def params(self) -> list[Tensor]:
        """Every parameter of every group, in order."""
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def lr(self) -> float:
        """The first group's learning rate; setting it sets every group's (a convscope shortcut)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        Optimizer._check_group(self, {"lr": value}, type(self).__name__)
        for group in self.param_groups:
            group["lr"] = value

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``p.grad = None`` (or zeros, with ``set_to_none=False``)."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            elif p.grad.data.flags.writeable:
                p.grad.data[...] = 0
            else:
                p.grad = Tensor._wrap(np.zeros_like(p.grad.data))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss, if given.

        ``closure`` (as in PyTorch) re-evaluates the model and returns the loss; it runs
        with gradients on, before the update.
        """
        loss = None
        if closure is not None:
            if not callable(closure):
                raise ArgumentTypeError(
                    message(f"{type(self).__name__}.step", "closure must be a function",
                            "call opt.step() without arguments, or pass a function that "
                            "returns the loss", f"closure of type {type(closure).__name__}")
                )
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.shape != p.shape:
                    raise ShapeError(
                        message(f"{type(self).__name__}.step",
                                "a gradient does not have its parameter's shape",
                                "assign p.grad a tensor of p's shape",
                                f"parameter {p.shape}, gradient {p.grad.shape}")
                    )
                self._update(p, p.grad.data.astype(p.dtype, copy=False), self.state[p], group)
        return loss

    def _update(
        self, p: Tensor, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The state in PyTorch's format: ``{"state": {index: {...}}, "param_groups": [...]}``.

        Arrays are copies, as Tensors (so later steps do not change a saved state); step
        counts are 0-d float64 Tensors, as PyTorch's are 0-d tensors.

        >>> import convscope as cs
        >>> w = cs.nn.Parameter([1.0, 2.0])
        >>> opt = cs.optim.Adam([w], lr=0.1)
        >>> (w * w).sum().backward(); opt.step()
        >>> sd = opt.state_dict()
        >>> sorted(sd["state"][0]), sd["param_groups"][0]["params"]
        (['exp_avg', 'exp_avg_sq', 'step'], [0])
        """
        index = {id(p): i for i, p in enumerate(self.params)}
        groups = []
        for group in self.param_groups:
            packed = {k: (list(v) if isinstance(v, list) else v)
                      for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, s in self.state._items.values():
            if id(p) in index and s:
                state[index[id(p)]] = {k: export_value(k, v) for k, v in s.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`state_dict` as flat named NumPy arrays, for files (``state.0.exp_avg``,
        ``param_groups.0.lr``); :meth:`load_state_dict` takes it back."""
        return to_arrays(self.state_dict())

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (or :meth:`state_arrays`).

        Also takes ``torch.optim``'s state_dicts (torch tensors) of the same optimizer over
        parameters of the same shapes. The state is checked whole before anything changes.
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise ArgumentTypeError(
                message(where, "expected an optimizer state_dict (a dict)",
                        "pass opt.state_dict()", type(state_dict).__name__)
            )
        if "state" in state_dict and "param_groups" in state_dict:
            nested = state_dict
        elif any(str(k).startswith(("state.", "param_groups.")) for k in state_dict):
            nested = from_arrays(state_dict, self.param_groups, self.defaults, where)
        elif "steps" in state_dict:  # checkpoints of convscope 0.1 (before parameter groups)
            nested = from_legacy(state_dict, self.param_groups, where)
        else:
            raise ArgumentError(
                message(where, "this is not an optimizer state_dict",
                        "pass what opt.state_dict() returned (a model's state_dict goes to "
                        "model.load_state_dict)", f"keys {sorted(map(str, state_dict))[:6]}")
            )
        saved_groups = nested["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
            isinstance(g, Mapping) and "params" in g for g in saved_groups
        ):
            raise ArgumentTypeError(
                message(where, "'param_groups' must be a list of dicts with 'params'",
                        "pass what opt.state_dict() returned", type(saved_groups).__name__)
            )
        if len(saved_groups) != len(self.param_groups):
            raise ArgumentError(
                message(where, "the saved state has a different number of parameter groups",
                        "build the optimizer with the same groups as the saved one",
                        f"{len(saved_groups)} saved, {len(self.param_groups)} here")
            )
        sizes = [len(g["params"]) for g in saved_groups]
        own = [len(g["params"]) for g in self.param_groups]
        if sizes != own:
            raise ArgumentError(
                message(where, "a saved parameter group has a different number of parameters",
                        "load into an optimizer over the same parameters as the saved one",
                        f"group sizes {sizes} saved, {own} here")
            )
        id_map = {int(i): p for g, og in zip(saved_groups, self.param_groups, strict=True)
                  for i, p in zip(g["params"], og["params"], strict=True)}
        state = ParamState()
        for key, values in dict(nested["state"]).items():
            if int_like(key) not in id_map or not isinstance(values, Mapping):
                raise ArgumentError(
                    message(where, f"state entry {key!r} belongs to no saved parameter",
                            "pass what opt.state_dict() returned",
                            f"parameter indices {sorted(id_map)}")
                )
            p = id_map[int_like(key)]
            state[p] = {k: import_value(k, v, p, where, key) for k, v in values.items()
                        if v is not None}
        groups = []
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            new = dict(group)
            for k, v in saved.items():
                if k not in ("params", "param_names") and k not in _IMPLEMENTATION_FLAGS:
                    new[k] = hyper_value(v)
            if "param_names" in saved:
                new["param_names"] = list(saved["param_names"])
            self._fix_group(new)
            self._check_group(new, where, f" in parameter group {len(groups)}")
            groups.append(new)
        for group, new in zip(self.param_groups, groups, strict=True):
            group.clear()
            group.update(new)
        self.state = state

    def _fix_group(self, group: dict[str, Any]) -> None:
        """Hook: make a loaded group consistent with this class (AdamW keeps its decay)."""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _is_module(obj: object) -> bool:
    from ..nn.module import Module

    return isinstance(obj, Module)


def _unordered(where: str) -> str:
    return message(where, "parameters must come in a fixed order, and a set has none",
                   "pass a list, or model.parameters()", "a set")
