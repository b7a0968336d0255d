"""One recorded forward pass of any model: the representation every tool reads.

``cs.graph.trace(model, input_shape)`` runs the model once with a recorder listening
(:mod:`convscope.tracing`) and returns a :class:`Graph`: its nodes in the order they ran,
each with its operation, inputs, output shape and module path. ``explain``, the pictures,
ONNX export, model files and the fusion pass read it; a ``Sequential`` is the special case
of a chain. :class:`GraphModule` runs a graph as a model (a graph read from a file).
"""

from .fuse import compile as compile
from .fuse import fuse as fuse
from .ir import Graph as Graph
from .ir import Node as Node
from .ir import Source as Source
from .ir import TraceFailure as TraceFailure
from .module import GraphModule as GraphModule
from .module import from_json as from_json
from .module import to_json as to_json
from .trace import trace as trace

__all__ = ["Graph", "Node", "Source", "TraceFailure", "GraphModule", "trace", "to_json",
           "from_json", "fuse", "compile"]
