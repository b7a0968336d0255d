"""Placeholder: the graph tracer's hooks (being written; see convscope.graph)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

OPS: dict[str, Callable[..., Any]] = {}


def traced(op: str) -> Callable[[F], F]:
    """Mark a public operation as one node of a traced graph (see the module docstring)."""

    def mark(fn: F) -> F:
        OPS[op] = fn
        return fn

    return mark
