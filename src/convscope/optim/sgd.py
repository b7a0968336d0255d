"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ArgumentError, message
from ..kernels import elementwise
from ..tensor import Tensor
from .optimizer import Optimizer, check_flag, check_number

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    With ``g`` the gradient (``-g`` with ``maximize``): ``g += weight_decay * p``; with
    momentum ``b = momentum * b + (1 - dampening) * g`` (``b = g`` on the first step) and
    ``g = b`` (Nesterov: ``g + momentum * b``); then ``p -= lr * g``.

    Parameters
    ----------
    params : iterable of Parameter or of dicts
        ``model.parameters()``, or parameter groups (see :class:`Optimizer`).
    lr, momentum, dampening, weight_decay : float
        Step size, momentum factor, dampening of the momentum, L2 penalty.
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
    maximize : bool
        Climb the objective instead of descending it.

    Examples
    --------
    >>> import convscope as cs
    >>> w = cs.nn.Parameter([1.0, -2.0])
    >>> opt = cs.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.numpy()
    array([ 0.8, -1.6], dtype=float32)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any], where: str, suffix: str = "") -> None:
        super()._check_group(group, where, suffix)
        where = "SGD"
        check_number(where, "momentum", group["momentum"], 0.0, example="0.9", suffix=suffix)
        check_number(where, "dampening", group["dampening"], 0.0, 1.0, suffix=suffix)
        check_number(where, "weight_decay", group["weight_decay"], 0.0, example="1e-4",
                     suffix=suffix)
        check_flag(where, "nesterov", group["nesterov"], suffix)
        check_flag(where, "maximize", group.get("maximize", False), suffix)
        momentum, dampening = group["momentum"], group["dampening"]
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ArgumentError(
                message(
                    where,
                    "nesterov needs momentum > 0 and dampening = 0",
                    "use momentum=0.9",
                    f"momentum={momentum}, dampening={dampening}{suffix}",
                )
            )

    def _update(
        self, p: Tensor, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if group["maximize"]:
            g = -g
        if weight_decay:
            g = g + weight_decay * p.data
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            elif not group["nesterov"] and buf.dtype == p.data.dtype == g.dtype:
                # the usual case in one compiled pass (same operations, same bits)
                elementwise.sgd_momentum(p.data, g, buf, momentum, 1 - group["dampening"],
                                         group["lr"])
                return
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g
