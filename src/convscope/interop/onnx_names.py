"""Module paths for the layers of an imported ONNX graph.

A layer's path comes, in this order of preference, from the node's name when PyTorch's
exporter (or convscope's) wrote it (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``),
from the name of its weight (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``), or from its
operator under the module the node sits in (``/layer1/layer1.0/Relu`` -> ``layer1.0.relu``).
PyTorch writes the second call of one module as ``relu_1``: when the first call's layer has
the same class and arguments and either no parameters or the very same initializers (tied
weights), both nodes share it, as in the model that was exported (node names
``layer1.0.relu`` and ``layer1.0.relu#2``).

A path is only used when it is safe: every part a plain identifier or number, no part that
is an attribute of a model (``forward``, ``training`` ...), no layer inside another layer,
at most :data:`~.onnx_common.MAX_DEPTH` parts; otherwise a suffix (``_1``) or the next
choice is taken, so any file gets valid, unique paths.
"""

from __future__ import annotations

import re
from typing import Any

from ..graph import GraphModule
from .onnx_common import MAX_DEPTH, path_of

__all__ = ["PathNamer"]

_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[0-9]+")
_RESERVED = {"graph", "input_shape", "training", "spec", "source", "zoo", "classes"} | {
    n for n in dir(GraphModule) if not n.startswith("__")}
_CALL = re.compile(r"(.*)_([0-9]+)$")


def _safe(path: str) -> bool:
    parts = path.split(".")
    return 0 < len(parts) <= MAX_DEPTH and len(path) <= 512 and all(
        _PART.fullmatch(p) and p not in _RESERVED for p in parts)


def _config(layer: Any) -> Any:
    return (type(layer), repr(sorted(layer.get_config().items())))


class PathNamer:
    """Gives each imported layer a module path and each node a unique name."""

    def __init__(self, nodes: Any, reserved: set[str]) -> None:
        self.scopes = [path_of(n.name) for n in nodes]
        self.layers: dict[str, Any] = {}  # path -> layer
        self.weights: dict[str, tuple[str, ...]] = {}  # path -> the initializers it holds
        self.inside: set[str] = set()  # proper prefixes of layer paths (containers)
        for scope in self.scopes:  # a module that holds other nodes holds no layer itself
            parts = scope.split(".") if scope else []
            self.inside.update(".".join(parts[:i]) for i in range(1, len(parts)))
        self.names: set[str] = set(reserved)  # node and source names
        self.calls: dict[str, int] = {}
        self.suffix: dict[str, int] = {}  # base path -> the next number to try

    def _free(self, path: str) -> bool:
        if not _safe(path) or path in self.layers or path in self.inside or path in self.names:
            return False
        parts = path.split(".")
        return not any(".".join(parts[:i]) in self.layers for i in range(1, len(parts)))

    def _claim(self, path: str, layer: Any) -> str:
        self.layers[path] = layer
        self.names.add(path)
        parts = path.split(".")
        self.inside.update(".".join(parts[:i]) for i in range(1, len(parts)))
        return path

    def _unique_name(self, base: str) -> str:
        k = self.calls.get(base, 1)
        name = base
        while name in self.names:
            k += 1
            name = f"{base}#{k}"
        self.calls[base] = k
        self.names.add(name)
        return name

    def place(self, k: int, node: Any, layer: Any, weights: tuple[str, ...]
              ) -> tuple[str, str, Any]:
        """``(module path, node name, layer)`` for ``layer`` made from node ``k`` with the
        initializers ``weights``: the layer is an earlier one when this node is a second
        call of it."""
        scope = self.scopes[k]
        op = node.op_type.lower()
        reuse = _CALL.fullmatch(scope) if scope else None
        if reuse and reuse.group(1) in self.layers:
            base = reuse.group(1)
            plain = not list(layer.parameters()) and not list(layer.buffers())
            tied = bool(weights) and self.weights.get(base) == weights
            if (plain or tied) and _config(self.layers[base]) == _config(layer):
                return base, self._unique_name(base), self.layers[base]
        weight = weights[0] if weights else None
        choices = []
        if scope:
            choices.append(scope)
        if weight and "." in weight:
            choices.append(weight.rsplit(".", 1)[0])
        if scope:
            choices.append(f"{scope}.{op}")
        choices.append(op if _safe(op) else "layer")
        for path in choices:
            if self._free(path):
                self.weights[path] = weights
                return self._claim(path, layer), path, layer
        base = next(p for p in choices if _safe(p))  # the most telling name, numbered
        n = self.suffix.get(base, 1)
        while True:  # ends: each number is tried once per base, and names are finite
            for candidate in (f"{base}_{n}", f"{base.replace('.', '_')}_{n}", f"layer_{n}"):
                if self._free(candidate):
                    self.suffix[base] = n + 1
                    self.weights[candidate] = weights
                    return self._claim(candidate, layer), candidate, layer
            n += 1

    def function_name(self, k: int, op: str) -> tuple[str, str]:
        """``(module path it sits in, node name)`` for a function node (``layer1.0.add``)."""
        scope = self.scopes[k] or ""
        if scope and not _safe(scope):
            scope = ""
        return scope, self._unique_name(f"{scope}.{op}" if scope else op)
