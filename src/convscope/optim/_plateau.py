"""``ReduceLROnPlateau``: lower the rate when a watched number stops improving, as PyTorch's."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, message
from ..tensor import Tensor
from .lr_scheduler import _EPOCH_WARNING, LRScheduler, _check_optimizer, _count, _real
from .optimizer import Optimizer

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rate by ``factor`` after more than ``patience`` epochs without improvement.

    ``step(metric)`` once per epoch with the watched number (a validation loss, say). In
    ``mode='min'`` a value improves on the best so far when it is below ``best * (1 -
    threshold)`` (``threshold_mode='rel'``) or ``best - threshold`` (``'abs'``); ``'max'``
    mirrors it. After a reduction, ``cooldown`` epochs pass before bad epochs count again.
    A rate never goes below ``min_lr``, and a change smaller than ``eps`` is skipped.

    Parameters
    ----------
    optimizer : Optimizer
    mode : {'min', 'max'}
    factor : float
        In [0, 1).
    patience, cooldown : int
    threshold : float
    threshold_mode : {'rel', 'abs'}
    min_lr : float or list of float
    eps : float

    Examples
    --------
    >>> import convscope as cs
    >>> opt = cs.optim.SGD([cs.nn.Parameter([1.0])], lr=1.0)
    >>> sched = cs.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> for loss in [1.0, 1.0, 1.0, 0.5]:
    ...     sched.step(loss)
    >>> sched.get_last_lr()
    [0.5]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0,
        eps: float = 1e-8,
    ) -> None:
        where = "ReduceLROnPlateau"
        _check_optimizer(optimizer, where)
        self.factor = _real(where, "factor", factor, 0.0, 1.0, high_open=True)
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ArgumentError(message(where, f"expected {n} min_lrs, one per group",
                                            "pass one number, or one per parameter group",
                                            f"min_lr={min_lr!r}"))
            self.default_min_lr = None
            self.min_lrs = [_real(where, "min_lr", m, 0.0, example="0") for m in min_lr]
        else:
            self.default_min_lr = _real(where, "min_lr", min_lr, 0.0, example="0")
            self.min_lrs = [min_lr] * n
        self.patience = _count(where, "patience", patience)
        self.cooldown = _count(where, "cooldown", cooldown, 0, "0")
        self.eps = _real(where, "eps", eps, 0.0, example="1e-8")
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]
        self._init_is_better(mode, threshold, threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        where = "ReduceLROnPlateau"
        if mode not in ("min", "max"):
            raise ArgumentError(message(where, "mode must be 'min' or 'max'",
                                        "use mode='min' for a loss, 'max' for an accuracy",
                                        f"mode={mode!r}"))
        if threshold_mode not in ("rel", "abs"):
            raise ArgumentError(message(where, "threshold_mode must be 'rel' or 'abs'",
                                        "use threshold_mode='rel'",
                                        f"threshold_mode={threshold_mode!r}"))
        self.threshold = _real(where, "threshold", threshold, 0.0, example="1e-4")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode, self.threshold_mode = mode, threshold_mode

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether ``a`` improves on ``best`` by more than the threshold."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metrics: Any = None, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's value of the watched number; lower the rate after a plateau."""
        current = _metric(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise ArgumentError(message("ReduceLROnPlateau",
                                            f"the optimizer now has {len(groups)} parameter "
                                            f"groups, but {len(self.min_lrs)} min_lrs were given",
                                            "set scheduler.min_lrs to one value per group",
                                            f"min_lrs={self.min_lrs}"))
            self.min_lrs = [self.default_min_lr] * len(groups)
        for i, group in enumerate(groups):
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                group["lr"] = new

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)


def _metric(value: Any) -> float:
    """The watched number: a Python number, or a one-element tensor or array."""
    if isinstance(value, (Tensor, np.ndarray)):
        arr = value.data if isinstance(value, Tensor) else value
        if arr.size == 1 and arr.dtype.kind in "iuf":
            return float(arr.reshape(-1)[0])
    elif not isinstance(value, (bool, str, bytes)) and value is not None:
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise ArgumentTypeError(message("ReduceLROnPlateau.step", "the metric must be one number",
                                    "pass e.g. scheduler.step(val_loss) with a float or a "
                                    "one-element tensor", f"{type(value).__name__} {value!r:.60}"))
