"""Optimizers and learning-rate schedules with PyTorch's names, update rules and state_dicts.

``SGD`` (momentum, Nesterov, weight decay), ``Adam``, ``AdamW``; parameter groups
(``opt.param_groups[0]["lr"]``), ``state_dict()``/``load_state_dict()`` in PyTorch's format,
and :mod:`convscope.optim.lr_scheduler`.

>>> import convscope as cs
>>> w = cs.nn.Parameter([1.0, -2.0])
>>> opt = cs.optim.SGD([w], lr=0.1)
>>> (w * w).sum().backward(); opt.step()
>>> w.numpy()
array([ 0.8, -1.6], dtype=float32)
"""

from . import lr_scheduler as lr_scheduler
from .adam import Adam as Adam
from .adam import AdamW as AdamW
from .optimizer import Optimizer as Optimizer
from .sgd import SGD as SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
