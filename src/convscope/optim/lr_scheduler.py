"""Learning-rate schedules, as ``torch.optim.lr_scheduler``: the same rates, step for step.

A scheduler changes ``optimizer.param_groups[i]["lr"]``; call ``scheduler.step()`` after
``optimizer.step()``, once per epoch (or per batch for :class:`OneCycleLR`). The rates are
computed by PyTorch's own recurrences (a step multiplies the current rate), so they agree
with PyTorch's to the last bits, and a rate set by hand between steps carries on.

>>> import convscope as cs
>>> from convscope.optim.lr_scheduler import StepLR
>>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=0.1)
>>> sched = StepLR(opt, step_size=2, gamma=0.5)
>>> rates = []
>>> for epoch in range(5):
...     opt.step(); rates.append(sched.get_last_lr()[0]); sched.step()
>>> rates
[0.1, 0.1, 0.05, 0.05, 0.025]
"""

from __future__ import annotations

import copy
import math
import numbers
import types
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError, message
from .optimizer import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau"]

_EPOCH_WARNING = ("passing an epoch to step() is deprecated (as in PyTorch); call step() "
                  "without arguments")


def _check_optimizer(optimizer: Any, where: str) -> None:
    if not isinstance(optimizer, Optimizer):
        kind = type(optimizer)
        name = kind.__name__ if kind.__module__ == "builtins" else (
            f"{kind.__module__}.{kind.__qualname__}")
        raise ArgumentTypeError(
            message(where, "the first argument must be a convscope optimizer",
                    f"build one first and pass it: opt = cs.optim.SGD(model.parameters(), "
                    f"lr=0.1); {where}(opt, ...)", f"{name} {optimizer!r:.60}")
        )


def _real(where: str, name: str, value: Any, low: float = -math.inf, high: float = math.inf,
          low_open: bool = False, high_open: bool = False, example: str = "0.1") -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = f"{'(' if low_open else '['}{low}, " if low > -math.inf else ""
        bound = f"in {lo}{high}{')' if high_open else ']'}" if high < math.inf else (
            f"{'>' if low_open else '>='} {low}")
        raise ArgumentError(message(where, f"{name} must be a number {bound}",
                                    f"use {name}={example}", f"{name}={value!r}"))
    return value


def _count(where: str, name: str, value: Any, low: int = 0, example: str = "10") -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ArgumentError(message(where, f"{name} must be an int >= {low}",
                                    f"use {name}={example}", f"{name}={value!r}"))
    return int(value)


class LRScheduler:
    """Base class: keeps ``base_lrs`` and ``last_epoch`` and sets the groups' ``lr`` each step.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose learning rates this scheduler sets.
    last_epoch : int
        -1 starts the schedule (each group's ``initial_lr`` is set to its ``lr``); a value
        >= 0 resumes it (the groups must then hold ``initial_lr``, as a loaded optimizer
        state does).

    Notes
    -----
    Subclasses implement ``get_lr()``: the rates of the step being taken, with
    ``last_epoch`` already advanced. Unlike PyTorch, no warning is given when
    ``scheduler.step()`` comes before ``optimizer.step()``.
    """

    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        where = type(self).__name__
        _check_optimizer(optimizer, where)
        self.optimizer = optimizer
        last_epoch = _count(where, "last_epoch", last_epoch, -1, "-1")
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ArgumentError(
                        message(where, f"param_groups[{i}] has no 'initial_lr' to resume from",
                                "load the optimizer's saved state first, or start with "
                                "last_epoch=-1", f"last_epoch={last_epoch}")
                    )
        self.base_lrs: list[float] = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The rates for the current ``last_epoch`` (called by :meth:`step`)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The rates set by the last :meth:`step` (one per parameter group)."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or batch) and set every group's ``lr``.

        ``epoch`` (deprecated, as in PyTorch) jumps to that epoch by the closed form.
        """
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=2)
            self.last_epoch = _count(type(self).__name__, "epoch", epoch, 0)
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (save the optimizer's state beside it)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (also PyTorch's, for the same scheduler)."""
        if not isinstance(state_dict, Mapping):
            raise ArgumentTypeError(
                message(f"{type(self).__name__}.load_state_dict",
                        "expected a scheduler state_dict (a dict)",
                        "pass scheduler.state_dict()", type(state_dict).__name__)
            )
        self.__dict__.update({k: copy.deepcopy(v) for k, v in state_dict.items()
                              if k != "optimizer"})


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(epoch)``, one function per group or one for all.

    Examples
    --------
    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=1.0)
    >>> sched = cs.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1 / (epoch + 1))
    >>> sched.step(); sched.get_last_lr()
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "LambdaLR")
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        fns = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(fns) != n:
            raise ArgumentError(message("LambdaLR", f"expected {n} lr_lambdas, one per group",
                                        "pass one function, or one per parameter group",
                                        f"{len(fns)} functions"))
        bad = next((f for f in fns if not callable(f)), None)
        if bad is not None or not fns:
            raise ArgumentTypeError(message("LambdaLR", "lr_lambda must be a function of the epoch",
                                            "pass e.g. lambda epoch: 0.95 ** epoch", repr(bad)))
        self.lr_lambdas: list[Callable[[int], float]] = fns
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs,
                                                               strict=True)]

    def state_dict(self) -> dict[str, Any]:
        """As the base class; functions are not saved, callable objects' ``__dict__`` is."""
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items()
               if k not in ("optimizer", "lr_lambdas")}
        out["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else dict(fn.__dict__)
                             for fn in self.lr_lambdas]
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        state = dict(state_dict)
        lambdas = state.pop("lr_lambdas", None) or []
        super().load_state_dict(state)
        for fn, saved in zip(self.lr_lambdas, lambdas, strict=False):
            if saved is not None:
                fn.__dict__.update(saved)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs: ``lr * gamma ** (epoch //
    step_size)``.

    Examples
    --------
    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=1.0)
    >>> sched = cs.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    >>> sched.step(); sched.step(); opt.param_groups[0]["lr"]
    0.25
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "StepLR")
        self.step_size = _count("StepLR", "step_size", step_size, 1, "30")
        self.gamma = _real("StepLR", "gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone epoch.

    Examples
    --------
    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=1.0)
    >>> sched = cs.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 3], gamma=0.1)
    >>> for _ in range(3):
    ...     sched.step()
    >>> round(sched.get_last_lr()[0], 12)
    0.01
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "MultiStepLR")
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise ArgumentTypeError(message("MultiStepLR", "milestones must be a list of epochs",
                                            "pass e.g. milestones=[30, 80]",
                                            f"milestones={milestones!r}"))
        milestones = list(milestones)
        for m in milestones:
            _count("MultiStepLR", "each milestone", m, 0, "30")
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = _real("MultiStepLR", "gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        marks = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(marks, self.last_epoch)
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch: ``lr * gamma ** epoch``.

    Examples
    --------
    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=1.0)
    >>> sched = cs.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    >>> sched.step(); sched.get_last_lr()
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "ExponentialLR")
        self.gamma = _real("ExponentialLR", "gamma", gamma, 0.0, example="0.95")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial rate to ``eta_min`` over ``T_max`` epochs.

    ``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``, computed
    by PyTorch's recurrence (which also continues past ``T_max``, back up, as PyTorch's does).

    Examples
    --------
    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=1.0)
    >>> sched = cs.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
    >>> sched.step(); round(sched.get_last_lr()[0], 12)
    0.5
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "CosineAnnealingLR")
        self.T_max = _real("CosineAnnealingLR", "T_max", T_max, 0.0, low_open=True,
                           example="100")
        self.eta_min = _real("CosineAnnealingLR", "eta_min", eta_min, 0.0, example="0.0")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups, t, T, lo = self.optimizer.param_groups, self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and t > 0:
            return [lo + (base - lo) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2
                    for base, g in zip(self.base_lrs, groups, strict=True)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (g["lr"] - lo) + lo for g in groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


from ._cyclic import OneCycleLR as OneCycleLR  # noqa: E402  (they build on LRScheduler)
from ._plateau import ReduceLROnPlateau as ReduceLROnPlateau  # noqa: E402
