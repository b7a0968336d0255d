"""Interop: ONNX export and import, and weights written by PyTorch or Keras.

Three doors in and out of convscope, all of them data only (nothing read is ever executed):

- :func:`export_onnx` writes any model (chains, ResNets, U-Nets: its traced graph) as an
  ONNX graph that ONNX Runtime, Netron or any other ONNX tool can read, with a dynamic batch
  dimension, PyTorch's node names and ``state_dict`` names for the weights;
- :func:`load_onnx` rebuilds a convscope model from an ONNX graph made of the operators that
  convscope has layers and operations for (a chain becomes a ``Sequential``, any other DAG a
  ``GraphModule`` with the module paths of its node names), whether convscope or
  ``torch.onnx.export`` wrote it;
- :func:`load_weights` fills a model built from a spec with weights from a ``.safetensors``,
  ``.npz`` or PyTorch ``.pt`` file, in PyTorch's layout or in Keras's (kernels HWIO, Dense
  kernels (in, out), channels-last flattening), converting and checking every tensor.

The ``onnx`` package is needed only by the ONNX functions (``pip install convscope[onnx]``)
and is imported when they are called.
"""

from __future__ import annotations

from .onnx_export import export_onnx as export_onnx
from .onnx_import import load_onnx as load_onnx
from .weights import convert_state as convert_state
from .weights import load_weights as load_weights
from .weights import read_weights as read_weights

__all__ = ["export_onnx", "load_onnx", "load_weights", "convert_state", "read_weights"]
