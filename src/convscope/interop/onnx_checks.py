"""The shape of an ONNX graph as a graph, checked before any node is read.

Every edge must come from somewhere (a node's output, an initializer or a graph input), no
name may be written twice, and the nodes must form a DAG. A graph whose nodes are listed out
of order is put in order (ONNX Runtime reads such files; the ONNX checker does not); a cycle
is refused with the nodes on it. Everything here is linear in the size of the graph and
never recursive, so a huge fan-out or a 100,000-node chain costs milliseconds.
"""

from __future__ import annotations

import heapq
from typing import Any

from ..errors import FileFormatError, message

__all__ = ["check_structure", "MAX_NODES"]

MAX_NODES = 100_000
"""Most nodes read from one graph (ResNet-152 as exported by PyTorch has ~500)."""


def _node(k: int, node: Any) -> str:
    return f"node {k} ({node.name or 'unnamed'!r}, {node.op_type})"


def check_structure(path: str, proto: Any) -> None:
    """Refuse dangling edges, names written twice and cycles; sort the nodes if they are
    out of order (in place)."""
    g = proto.graph
    where = f"ONNX file {path!r}"
    nodes = list(g.node)
    if len(nodes) > MAX_NODES:
        raise FileFormatError(message(where, f"the graph has {len(nodes)} nodes, more than the "
                                      f"{MAX_NODES} convscope reads", "export a smaller model",
                                      f"{len(nodes)} nodes"))
    _check_text(where, g, nodes)
    made: dict[str, int] = {}  # name -> index of the node that writes it, -1 for the rest
    for t in g.initializer:
        made[t.name] = -1
    for i in g.input:
        made[i.name] = -1
    for k, node in enumerate(nodes):
        for out in node.output:
            if not out:
                continue
            if out in made:
                other = "an initializer or graph input" if made[out] < 0 else \
                    _node(made[out], nodes[made[out]])
                raise FileFormatError(message(
                    f"{where}, {_node(k, node)}", f"it writes {out!r}, which {other} writes "
                    "too (every name is written once in ONNX)", "export the model again",
                    f"outputs {list(node.output)}"))
            made[out] = k
    for k, node in enumerate(nodes):
        for name in node.input:
            if name and name not in made:
                raise FileFormatError(message(
                    f"{where}, {_node(k, node)}", f"it reads {name!r}, which no node makes "
                    "and no initializer or graph input holds (a dangling edge)",
                    "the file may be truncated or edited; export it again",
                    f"inputs {list(node.input)}"))
    for out in g.output:
        if out.name not in made:
            raise FileFormatError(message(where, f"the graph output {out.name!r} is made by "
                                          "no node", "export the model again",
                                          f"outputs {[o.name for o in g.output]}"))
    order, left = _kahn(nodes, made)
    if left:
        raise FileFormatError(message(where, "the graph has a cycle: "
                                      + _cycle_text(nodes, made, left),
                                      "a model's graph must be acyclic; export it again",
                                      f"{len(nodes)} nodes"))
    if order != list(range(len(nodes))):
        sorted_nodes = [nodes[k] for k in order]
        copies = [type(n)() for n in sorted_nodes]
        for copy, n in zip(copies, sorted_nodes, strict=True):
            copy.CopyFrom(n)
        del g.node[:]
        g.node.extend(copies)


def _check_text(where: str, g: Any, nodes: list[Any]) -> None:
    """Every name must be text: protobuf hands over bytes for a string that is not UTF-8."""
    items = [("an initializer", t.name) for t in g.initializer]
    items += [("a graph input", v.name) for v in g.input]
    items += [("a graph output", v.name) for v in g.output]
    for k, node in enumerate(nodes):
        here = f"node {k}"
        items += [(here, node.name), (here, node.op_type), (here, node.domain)]
        items += [(here, n) for n in node.input] + [(here, n) for n in node.output]
    seen: set[str] = set()
    for owner, text in items:
        if not isinstance(text, str):
            raise FileFormatError(message(where, f"{owner} has a name that is not valid UTF-8 "
                                          "text", "the file is damaged; export it again",
                                          repr(text)[:80]))
    for t in g.initializer:
        if t.name in seen:
            raise FileFormatError(message(where, f"two initializers are named {t.name!r}",
                                          "export the model again", f"initializer {t.name!r}"))
        seen.add(t.name)


def _kahn(nodes: list[Any], made: dict[str, int]) -> tuple[list[int], set[int]]:
    """Kahn's order (the file's order wherever it is valid) and the nodes it cannot place:
    those on a cycle or fed by one."""
    needs = [0] * len(nodes)
    users: list[list[int]] = [[] for _ in nodes]
    for k, node in enumerate(nodes):
        producers = {made[n] for n in node.input if n and made.get(n, -1) >= 0}
        needs[k] = len(producers)
        for p in producers:
            users[p].append(k)
    ready = [k for k in range(len(nodes)) if needs[k] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for u in users[k]:
            needs[u] -= 1
            if needs[u] == 0:
                heapq.heappush(ready, u)
    return order, {k for k in range(len(nodes)) if needs[k] > 0}


def _cycle_text(nodes: list[Any], made: dict[str, int], left: set[int]) -> str:
    """One cycle, found by walking back from a left-over node: each has a producer that is
    left over too, so the walk must come back to a node it has seen."""
    seen: dict[int, int] = {}
    path: list[int] = []
    k = min(left)
    while k not in seen:
        seen[k] = len(path)
        path.append(k)
        k = next(made[n] for n in nodes[k].input if n and made.get(n, -1) in left)
    cycle = path[seen[k]:][::-1]  # in the direction the data flows
    first = cycle.index(min(cycle))
    cycle = cycle[first:] + cycle[:first]  # from the node listed first in the file
    names = [f"{nodes[i].name or 'unnamed'!r} ({nodes[i].op_type})" for i in cycle[:6]]
    if len(cycle) > 6:
        names.append(f"... ({len(cycle)} nodes in all)")
    return " -> ".join(names + [names[0]])
