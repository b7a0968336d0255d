"""The hooks through which one forward pass is recorded as a graph (:mod:`convscope.graph`).

Three kinds of calls report to the recorder while :func:`convscope.graph.trace` runs a
model, and cost one thread-local lookup otherwise:

- ``Module.__call__`` of a *leaf* layer (a class with an ``op`` name whose ``forward`` is
  not overridden: ``Conv2d``, ``ReLU``, ...) becomes one node; what the layer does inside
  is not recorded. Any other module (``Sequential``, a user's ``nn.Module``) is traced
  *through*: its ``forward`` runs and the calls inside it are recorded, under its path.
- A function marked ``@traced("cat")`` (the public operations of ``convscope.functional``
  and the operators of ``Tensor``) called outside a leaf becomes one node: its tensor
  arguments (a Tensor, or a list/tuple of them) are the node's inputs, every other argument
  an attribute, so the call can be replayed from the graph and written to a file.
- Any other operation that builds a tensor (``tensor.make``) outside both becomes an
  *opaque* node: shown and computed, but it cannot be saved or exported.

>>> from convscope.tracing import traced, OPS
>>> @traced("double_it", key="doc.double_it")
... def double_it(x):
...     return x * 2
>>> OPS["doc.double_it"] is double_it.__wrapped__
True
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["traced", "OPS", "active", "recording", "Recorder"]

F = TypeVar("F", bound=Callable[..., Any])

OPS: dict[str, Callable[..., Any]] = {}
"""Every traced operation by key: what a saved graph's function nodes call on replay."""
OP_NAMES: dict[str, str] = {}
"""The op name (shown in tables) of every key in :data:`OPS`."""


class Recorder(Protocol):
    """What :mod:`convscope.graph` implements to receive the calls."""

    def call_module(self, module: Any, args: tuple, kwargs: dict) -> Any: ...

    def call_function(self, op: str, key: str, fn: Callable, args: tuple, kwargs: dict) -> Any: ...

    def made(self, op: str, parents: tuple, out: Any) -> None: ...


class _State(threading.local):
    recorder: Recorder | None = None
    depth = 0  # > 0 inside a leaf module or a recorded function: nested calls are its own


_STATE = _State()


def active() -> Recorder | None:
    """The recorder of the trace running in this thread, or None (the usual case)."""
    return _STATE.recorder


def quiet() -> bool:
    """Whether a call now belongs to an enclosing node (or nothing is being traced)."""
    return _STATE.recorder is None or _STATE.depth > 0


class recording:
    """``with recording(rec):`` routes this thread's calls to ``rec`` (one trace at a time)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def __enter__(self) -> Recorder:
        if _STATE.recorder is not None:
            from .errors import GradError, message

            raise GradError(message("trace", "a trace is already running in this thread",
                                    "trace one model at a time"))
        _STATE.recorder, _STATE.depth = self.recorder, 0
        return self.recorder

    def __exit__(self, *exc: object) -> None:
        _STATE.recorder, _STATE.depth = None, 0


class inside:
    """``with inside():`` the calls made here belong to the node being recorded."""

    def __enter__(self) -> None:
        _STATE.depth += 1

    def __exit__(self, *exc: object) -> None:
        _STATE.depth -= 1


def traced(op: str, key: str | None = None) -> Callable[[F], F]:
    """Mark a public operation as one node of a traced graph (see the module docstring).

    ``op`` is the name tables show ("add"); ``key`` (default ``op``) names the function in
    :data:`OPS`, unique, so that a saved graph can call it again.
    """
    key = key or op

    def mark(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            rec = _STATE.recorder
            if rec is None or _STATE.depth:
                return fn(*args, **kwargs)
            return rec.call_function(op, key, fn, args, kwargs)

        old = OPS.get(key)
        if old is not None and old.__qualname__ != fn.__qualname__:
            raise RuntimeError(f"traced: {old.__qualname__} and {fn.__qualname__} share the "
                               f"key {key!r}")
        OPS[key], OP_NAMES[key] = fn, op
        return wrapper  # type: ignore[return-value]

    return mark
