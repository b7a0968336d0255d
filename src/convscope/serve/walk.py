"""One value taken apart, for the current image, without running the model again.

:func:`convscope.viz.why.why` (``cs.explain_value``) runs the forward pass up to the node
for each value: about half a second for ResNet-18 at 224x224, too slow for a slider that
moves the kernel. The server keeps every node's output for the current image, so it hands
them to :func:`convscope.viz.why.take_apart`: the same walk-through, the same check against
the forward pass, in milliseconds. The tests hold the two to the same text and numbers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..viz.layers import LayerRef

if TYPE_CHECKING:
    from .state import State

__all__ = ["take_apart", "WHY_OPS", "WHAT"]

# the module (convscope.viz re-exports the function `why` under the module's name)
_why = importlib.import_module("convscope.viz.why")
WHY_OPS: tuple[str, ...] = _why.WHY_OPS
WHAT = ("a layer with a walk-through (conv, transposed conv, pool, activation, batch norm, "
        "add, cat, dropout, flatten, linear, interpolate, softmax)")


def take_apart(state: State, ref: LayerRef, pos: tuple[int, ...]) -> Any:
    """Output ``pos`` (already checked) of node ``ref`` for the state's image: a
    :class:`~convscope.viz.why.Why`, as ``cs.explain_value`` gives it."""
    return _why.take_apart(ref, state.acts, pos, note=state.note)
