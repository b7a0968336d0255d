"""Optimizers with PyTorch's update rules: ``SGD`` (momentum, Nesterov, weight decay),
``Adam``, ``AdamW``.

>>> import convscope as cs
>>> w = cs.nn.Parameter([1.0, -2.0])
>>> opt = cs.optim.SGD([w], lr=0.1)
>>> (w * w).sum().backward(); opt.step()
>>> w.numpy()
array([ 0.8, -1.6], dtype=float32)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, message
from .nn.module import Module, Parameter
from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class Optimizer:
    """Holds the parameters and per-parameter state; ``step()`` updates ``p.data`` in place."""

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        where = type(self).__name__
        if isinstance(params, (Module, Tensor)) or not isinstance(params, Iterable):
            raise ArgumentTypeError(
                message(
                    where,
                    "params must be an iterable of Parameters",
                    "pass model.parameters()",
                    f"params of type {type(params).__name__}",
                )
            )
        self.params = list(params)
        if not self.params:
            raise ArgumentError(
                message(
                    where,
                    "got an empty parameter list",
                    "pass model.parameters() of a model that has weights",
                )
            )
        bad = next((p for p in self.params if not isinstance(p, Tensor)), None)
        if bad is not None:
            raise ArgumentTypeError(
                message(
                    where,
                    "params must be Parameters (tensors with requires_grad=True)",
                    "pass model.parameters()",
                    f"an item of type {type(bad).__name__}",
                )
            )
        if not (_number(lr) and math.isfinite(lr) and lr >= 0):
            raise ArgumentError(
                message(where, "lr must be a non-negative number", "use lr=1e-3", f"lr={lr!r}")
            )
        self.lr = float(lr)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.steps += 1
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self._update(p, p.grad.data.astype(p.dtype, copy=False), state)

    def _update(self, p: Parameter, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """The optimizer's state as flat named arrays (for checkpoints)."""
        out = {"steps": np.array(self.steps, np.int64)}
        for i, state in enumerate(self.state):
            for k, v in state.items():
                out[f"{i}.{k}"] = v
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.steps = int(state["steps"])
        self.state = [{} for _ in self.params]
        for key, v in state.items():
            if key != "steps":
                i, name = key.split(".", 1)
                self.state[int(i)][name] = np.array(v, copy=True)


def _number(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check(
    where: str,
    name: str,
    value: object,
    low: float,
    high: float = math.inf,
    high_open: bool = False,
    example: str = "0.0",
) -> None:
    """A hyperparameter: a real number in ``[low, high]`` (``[low, high)`` with high_open)."""
    ok = _number(value) and low <= value <= high  # type: ignore[operator]
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
            message(
                where,
                f"{name} must be a number {bound}",
                f"use {name}={example}",
                f"{name}={value!r}",
            )
        )


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    ``g = grad + weight_decay * p``; with momentum ``b = momentum * b + (1 - dampening) * g``
    (``b = g`` on the first step); Nesterov uses ``g + momentum * b``; ``p -= lr * g``.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        _check("SGD", "momentum", momentum, 0.0, example="0.9")
        _check("SGD", "dampening", dampening, 0.0, 1.0)
        _check("SGD", "weight_decay", weight_decay, 0.0, example="1e-4")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ArgumentError(
                message(
                    "SGD",
                    "nesterov needs momentum > 0 and dampening = 0",
                    "use momentum=0.9",
                    f"momentum={momentum}, dampening={dampening}",
                )
            )
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def _update(self, p: Parameter, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient)."""

    decoupled = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        where = type(self).__name__
        if not (
            isinstance(betas, (tuple, list))
            and len(betas) == 2
            and all(_number(b) and 0 <= b < 1 for b in betas)
        ):
            raise ArgumentError(
                message(
                    where,
                    "betas must be two numbers in [0, 1)",
                    "use betas=(0.9, 0.999)",
                    f"betas={betas!r}",
                )
            )
        b1, b2 = betas
        _check(where, "eps", eps, 0.0, example="1e-8")
        _check(where, "weight_decay", weight_decay, 0.0, example="1e-2")
        self.betas, self.eps, self.weight_decay = (
            (float(b1), float(b2)),
            float(eps),
            float(weight_decay),
        )

    def _update(self, p: Parameter, g: np.ndarray, state: dict[str, Any]) -> None:
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p.data *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p.data
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] = np.array(0, np.int64)
        state["step"] = state["step"] + 1
        t = int(state["step"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step_size = self.lr / (1 - b1**t)
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + self.eps
        p.data -= (step_size * m / denom).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay``), as torch's AdamW."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
