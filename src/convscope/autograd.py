"""The graph engine under :class:`~convscope.Tensor`: grad mode, nodes, their order.

A :class:`_Node` is one recorded operation: the nodes of its inputs, a ``backward``
closure that maps the output's gradient to one gradient per input, and the gradient
collected for its output during ``Tensor.backward()``. Nodes are not tensors (as in
PyTorch): a node keeps only what its closure captured, so a value nobody holds any more
is freed even while the graph that made it is alive.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled", "inference_mode"]


class _GradMode(threading.local):
    """Grad mode per thread, as in PyTorch: ``no_grad`` in one thread (say, inference
    beside a training loop) never switches recording off in another. A new thread starts
    with recording on."""

    enabled = True

    def __init__(self) -> None:
        self.saved: list[bool] = []  # the modes to restore, innermost last


_MODE = _GradMode()


def is_grad_enabled() -> bool:
    """Whether operations in this thread currently record the graph for ``backward``."""
    return _MODE.enabled


class _GradModeContext:
    """Sets grad mode for a ``with`` block (and, as a decorator, for a function's calls)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)

    def __enter__(self) -> None:
        _MODE.saved.append(_MODE.enabled)  # per thread: one object may serve many threads
        _MODE.enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        _MODE.enabled = _MODE.saved.pop()

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: object, **kwargs: object) -> object:
            with _GradModeContext(self.enabled):
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """No graph is recorded in this thread inside ``with no_grad():`` (inference, optimizer
    steps); also a decorator, ``@cs.no_grad()`` or ``@cs.no_grad``."""

    def __new__(cls, fn: Callable | None = None) -> Any:
        ctx = super().__new__(cls)
        ctx.__init__()
        return ctx(fn) if callable(fn) else ctx

    def __init__(self, fn: Callable | None = None) -> None:
        super().__init__(False)


class enable_grad(_GradModeContext):
    """Turns graph recording back on inside ``no_grad`` (this thread only)."""

    def __new__(cls, fn: Callable | None = None) -> Any:
        ctx = super().__new__(cls)
        ctx.__init__()
        return ctx(fn) if callable(fn) else ctx

    def __init__(self, fn: Callable | None = None) -> None:
        super().__init__(True)


inference_mode = no_grad


def set_grad_enabled(mode: bool) -> _SetGradEnabled:
    """Switch recording on or off in this thread: at once, and back when used in ``with``.

    As in PyTorch, ``set_grad_enabled(False)`` called on its own switches recording off
    until switched on again; ``with set_grad_enabled(False):`` restores it on exit.
    """
    before = _MODE.enabled
    _MODE.enabled = bool(mode)
    return _SetGradEnabled(before)


class _SetGradEnabled:
    def __init__(self, before: bool) -> None:
        self._before = before

    def __enter__(self) -> None:
        pass  # already set by set_grad_enabled()

    def __exit__(self, *exc: object) -> None:
        _MODE.enabled = self._before


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class _Node:
    """One operation of the graph: how to send its output's gradient to its inputs.

    ``parents`` are the inputs' nodes (None for an input that needs no gradient), in the
    order of the tuple ``backward(g)`` returns; ``grad`` collects the output's gradient
    during ``backward()``. A leaf's node has ``leaf``, a weak reference to its tensor,
    whose ``.grad`` it fills; it keeps no data of its own.
    """

    __slots__ = ("parents", "backward", "op", "grad", "shape", "dtype", "leaf")

    def __init__(
        self,
        parents: tuple[_Node | None, ...],
        backward: Callable[[np.ndarray], tuple] | None,
        op: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        leaf: weakref.ref[Tensor] | None = None,
    ) -> None:
        self.parents, self.backward, self.op = parents, backward, op
        self.shape, self.dtype, self.leaf = shape, dtype, leaf
        self.grad: np.ndarray | None = None

    def accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` into this node's gradient (never in place: no aliasing)."""
        grad = _unbroadcast(np.asarray(grad, dtype=self.dtype), self.shape)
        self.grad = grad if self.grad is None else self.grad + grad


def _topological_order(root: _Node) -> list[_Node]:
    order: list[_Node] = []
    seen: set[int] = set()
    stack: list[tuple[_Node, bool]] = [(root, False)]
    while stack:  # iterative DFS: deep graphs must not hit the recursion limit
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node.parents if p is not None and id(p) not in seen)
    return order
