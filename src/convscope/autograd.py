"""The graph engine under :class:`~convscope.Tensor`: grad mode, nodes, their order.

A :class:`_Node` is one recorded operation: the nodes of its inputs, a ``backward``
closure that maps the output's gradient to one gradient per input, and the gradient
collected for its output during ``Tensor.backward()``. Nodes are not tensors (as in
PyTorch): a node keeps only what its closure captured, so a value nobody holds any more
is freed even while the graph that made it is alive.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["no_grad", "enable_grad", "is_grad_enabled"]

_GRAD_ENABLED = True


def is_grad_enabled() -> bool:
    """Whether operations currently record the graph for ``backward``."""
    return _GRAD_ENABLED


@contextlib.contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
    global _GRAD_ENABLED
    before, _GRAD_ENABLED = _GRAD_ENABLED, enabled
    try:
        yield
    finally:
        _GRAD_ENABLED = before


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager in which no graph is recorded (inference, optimizer steps)."""
    return _grad_mode(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager that turns graph recording back on inside ``no_grad``."""
    return _grad_mode(True)


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
