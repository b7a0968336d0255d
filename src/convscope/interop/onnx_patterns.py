"""Activations that exporters write as small formulas, found so they import as one layer.

PyTorch (and convscope below the opsets that have the operator) write

- GELU as ``Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)``,
- SiLU as ``Mul(x, Sigmoid(x))``,
- Hardswish below opset 14 as ``Mul(x, HardSigmoid(x))``.

:func:`find_fused` finds these shapes by their edges alone (each inner value used once, by
the next node of the formula); the graph walk checks the constants when it reaches the last
node and makes the layer, or reads the nodes one by one if they are not what they seem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fused", "find_fused"]


@dataclass
class Fused:
    """One formula: its layer, its nodes (the last one makes the output), its input, and
    the constants it must hold (value name, number)."""

    layer: str
    members: list[int]
    x: str
    constants: list[tuple[str, float]] = field(default_factory=list)


def find_fused(nodes: Any, graph_outputs: set[str]) -> dict[int, Fused]:
    """The formulas in ``nodes``, by the index of their last node."""
    producer: dict[str, int] = {}
    users: dict[str, list[int]] = {}
    for k, node in enumerate(nodes):
        for out in node.output:
            producer[out] = k
        for name in node.input:
            users.setdefault(name, []).append(k)

    def only_user(name: str) -> int | None:
        us = users.get(name, [])
        return us[0] if len(us) == 1 and name not in graph_outputs else None

    def other(node: Any, name: str) -> str | None:
        """The other input of a two-input node that reads ``name``."""
        ins = list(node.input)
        if len(ins) != 2 or name not in ins:
            return None
        return ins[1] if ins[0] == name else ins[0]

    found: dict[int, Fused] = {}
    taken: set[int] = set()
    for k, node in enumerate(nodes):
        if node.domain not in ("", "ai.onnx") or k in taken:
            continue
        fused = None
        if node.op_type in ("Sigmoid", "HardSigmoid") and len(node.input) == 1:
            x, y = node.input[0], node.output[0]
            m = only_user(y)
            if m is not None and nodes[m].op_type == "Mul" and other(nodes[m], y) == x:
                layer = "SiLU" if node.op_type == "Sigmoid" else "Hardswish"
                fused = Fused(layer, [k, m], x)
        elif node.op_type == "Erf" and len(node.input) == 1:
            fused = _gelu(nodes, k, producer, only_user, other)
        if fused is not None and not taken.intersection(fused.members):
            taken.update(fused.members)
            found[fused.members[-1]] = fused
    return found


def _gelu(nodes: Any, k: int, producer: dict[str, int], only_user: Any,
          other: Any) -> Fused | None:
    erf = nodes[k]
    d = producer.get(erf.input[0])
    if d is None or nodes[d].op_type != "Div" or len(nodes[d].input) != 2 \
            or only_user(nodes[d].output[0]) != k:
        return None
    x, sqrt2 = nodes[d].input
    a = only_user(erf.output[0])
    if a is None or nodes[a].op_type != "Add":
        return None
    one = other(nodes[a], erf.output[0])
    m1 = only_user(nodes[a].output[0])
    if one is None or m1 is None or nodes[m1].op_type != "Mul" \
            or other(nodes[m1], nodes[a].output[0]) != x:
        return None
    m2 = only_user(nodes[m1].output[0])
    half = other(nodes[m2], nodes[m1].output[0]) if m2 is not None else None
    if m2 is None or nodes[m2].op_type != "Mul" or half is None:
        return None
    return Fused("GELU", [d, k, a, m1, m2], x,
                 [(sqrt2, math.sqrt(2.0)), (one, 1.0), (half, 0.5)])
