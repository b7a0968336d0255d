"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ArgumentError, message
from ..tensor import Tensor
from .optimizer import Optimizer, _number, check_flag, check_number

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``.

    With ``g`` the gradient (``-g`` with ``maximize``) and ``t`` the step: L2 decay
    ``g += weight_decay * p`` (or, with ``decoupled_weight_decay``, ``p *= 1 - lr *
    weight_decay`` as AdamW); ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``
    (``amsgrad``: the running maximum of ``v``);
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    Parameters
    ----------
    params : iterable of Parameter or of dicts
        ``model.parameters()``, or parameter groups (see :class:`Optimizer`).
    lr : float
        Step size.
    betas : (float, float)
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float
        Added to the denominator.
    weight_decay : float
        L2 penalty (decoupled in AdamW).
    amsgrad : bool
        Use the maximum of past second moments (Reddi et al.).
    maximize : bool
        Climb the objective instead of descending it.
    decoupled_weight_decay : bool
        Decay the weights directly, as AdamW.

    Examples
    --------
    >>> import convscope as cs
    >>> w = cs.nn.Parameter([1.0, -2.0])
    >>> opt = cs.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.numpy().round(4)
    array([ 0.9, -1.9], dtype=float32)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if isinstance(betas, list):
            betas = tuple(betas)  # type: ignore[assignment]
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any], where: str, suffix: str = "") -> None:
        super()._check_group(group, where, suffix)
        where = type(self).__name__
        betas = group["betas"]
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
                    f"betas={betas!r}{suffix}",
                )
            )
        check_number(where, "eps", group["eps"], 0.0, example="1e-8", suffix=suffix)
        check_number(where, "weight_decay", group["weight_decay"], 0.0, example="1e-2",
                     suffix=suffix)
        for flag in ("amsgrad", "maximize", "decoupled_weight_decay"):
            check_flag(where, flag, group.get(flag, False), suffix)

    def _update(
        self, p: Tensor, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        lr, weight_decay = group["lr"], group["weight_decay"]
        b1, b2 = (float(b) for b in group["betas"])
        if group["maximize"]:
            g = -g
        if weight_decay:
            if group["decoupled_weight_decay"]:
                p.data *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p.data
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] = t = int(state.get("step", 0)) + 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step_size = lr / (1 - b1**t)
        if group["amsgrad"]:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None:
                vmax = state["max_exp_avg_sq"] = np.zeros_like(p.data)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + group["eps"]
        p.data -= (step_size * m / denom).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay``), as torch's AdamW.

    The same arguments as :class:`Adam` (``weight_decay`` defaults to 0.01); a loaded state
    keeps the decay decoupled, as PyTorch's AdamW does.

    Examples
    --------
    >>> import convscope as cs
    >>> w = cs.nn.Parameter([1.0])
    >>> opt = cs.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = cs.tensor([0.0]); opt.step()
    >>> w.numpy()
    array([0.95], dtype=float32)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def _fix_group(self, group: dict[str, Any]) -> None:
        group["decoupled_weight_decay"] = True
