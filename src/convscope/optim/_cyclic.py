"""``OneCycleLR``: the 1cycle policy (Smith & Topsoe), as PyTorch's, momentum cycling included."""

from __future__ import annotations

import math
import numbers
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError, message
from .lr_scheduler import LRScheduler, _check_optimizer, _real
from .optimizer import Optimizer

__all__ = ["OneCycleLR"]


def _per_group(where: str, name: str, optimizer: Optimizer, value: Any) -> list[float]:
    n = len(optimizer.param_groups)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ArgumentError(message(where, f"expected {n} values for {name}, one per group",
                                    f"pass one number, or a list of {n}",
                                    f"{name}={value!r}"))
    return [_real(where, name, v, 0.0) for v in values]


def _positive_int(where: str, name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ArgumentError(message(where, f"{name} must be a positive int",
                                    f"pass e.g. {name}=100", f"{name}={value!r}"))
    return int(value)


class OneCycleLR(LRScheduler):
    """The 1cycle schedule: warm up to ``max_lr``, then anneal far below the start; per batch.

    The rate starts at ``max_lr / div_factor``, rises to ``max_lr`` over the first
    ``pct_start`` of ``total_steps`` and falls to ``initial_lr / final_div_factor`` (with
    ``three_phase``: back to the start, then down to the minimum). With ``cycle_momentum``
    the momentum (SGD's ``momentum``, Adam's ``beta1``) moves the other way between
    ``max_momentum`` and ``base_momentum``.

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float or list of float
        Peak rate (one per group, or one for all).
    total_steps : int, optional
        Steps in the cycle; or give ``epochs`` and ``steps_per_epoch``.
    pct_start : float
        Fraction of the cycle spent rising.
    anneal_strategy : {'cos', 'linear'}
    cycle_momentum : bool
    base_momentum, max_momentum : float or list of float
    div_factor, final_div_factor : float
    three_phase : bool
    last_epoch : int
        The index of the last batch (-1 starts the cycle).

    Examples
    --------
    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=0.1, momentum=0.9)
    >>> sched = cs.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    >>> round(sched.get_last_lr()[0], 6), opt.param_groups[0]["momentum"]
    (0.04, 0.95)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        where = "OneCycleLR"
        _check_optimizer(optimizer, where)
        self.optimizer = optimizer
        if total_steps is not None:
            self.total_steps = _positive_int(where, "total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_positive_int(where, "epochs", epochs)
                                * _positive_int(where, "steps_per_epoch", steps_per_epoch))
        else:
            raise ArgumentError(message(where, "the length of the cycle is not given",
                                        "pass total_steps, or epochs and steps_per_epoch",
                                        f"total_steps={total_steps}, epochs={epochs}, "
                                        f"steps_per_epoch={steps_per_epoch}"))
        pct = _real(where, "pct_start", pct_start, 0.0, 1.0, example="0.3")
        if anneal_strategy not in ("cos", "linear"):
            raise ArgumentError(message(where, "anneal_strategy must be 'cos' or 'linear'",
                                        "use anneal_strategy='cos'",
                                        f"anneal_strategy={anneal_strategy!r}"))
        self._anneal_func_type = anneal_strategy
        _real(where, "div_factor", div_factor, 0.0, low_open=True, example="25.0")
        _real(where, "final_div_factor", final_div_factor, 0.0, low_open=True, example="1e4")
        n = self.total_steps
        up = float(pct * n) - 1
        if three_phase:
            self._schedule_phases = [
                _phase(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(float(2 * pct * n) - 2, "max_lr", "initial_lr", "base_momentum",
                       "max_momentum"),
                _phase(n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                _phase(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        max_lrs = _per_group(where, "max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for top, group in zip(max_lrs, optimizer.param_groups, strict=True):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if not isinstance(cycle_momentum, bool):
            raise ArgumentTypeError(message(where, "cycle_momentum must be True or False",
                                            "use cycle_momentum=True",
                                            f"cycle_momentum={cycle_momentum!r}"))
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ArgumentError(message(where, "this optimizer has no momentum to cycle",
                                            "pass cycle_momentum=False",
                                            type(optimizer).__name__))
            self.use_beta1 = "betas" in optimizer.defaults
            tops = _per_group(where, "max_momentum", optimizer, max_momentum)
            bases = _per_group(where, "base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for top, base, group in zip(tops, bases, optimizer.param_groups, strict=True):
                    if self.use_beta1:
                        group["betas"] = (top, *group["betas"][1:])
                    else:
                        group["momentum"] = top
                    group["max_momentum"] = top
                    group["base_momentum"] = base
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ArgumentError(message("OneCycleLR.step",
                                        f"the cycle has {self.total_steps} steps, this is step "
                                        f"{step}", "build the scheduler with more total_steps "
                                        "(epochs * steps_per_epoch), or stop stepping it",
                                        f"step {step}"))
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if step <= end or i == len(self._schedule_phases) - 1:
                    pct = (step - start) / (end - start) if end != start else 1.0
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]],
                                                group[phase["end_momentum"]], pct)
                    break
                start = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


def _phase(end_step: float, start_lr: str, end_lr: str, start_m: str, end_m: str) -> dict:
    return {"end_step": end_step, "start_lr": start_lr, "end_lr": end_lr,
            "start_momentum": start_m, "end_momentum": end_m}
