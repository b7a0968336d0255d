"""``Tensor``: a NumPy array plus reverse-mode automatic differentiation.

Every operation builds its output and, when an input requires grad, a graph node
(:class:`convscope.autograd._Node`) holding a small ``backward`` closure that maps the
output's gradient to its inputs' gradients. The node is not the tensor (as in PyTorch): it
keeps only what its closure needs (a ReLU its output, an add nothing), so a value nobody
holds any more is freed even while the graph that made it is alive. ``backward()`` sorts the
nodes topologically, calls the closures in reverse, adds each result into the input's node,
and frees the graph as it goes, so memory stays flat over a long training run.

The class is assembled from three files along the seams of PyTorch's API: this one (the
array, conversions to Python and NumPy, types and devices, autograd), ``tensor_shape``
(sizes, views, indexing) and ``tensor_math`` (arithmetic, elementwise functions,
reductions, comparisons, in-place updates).

>>> import convscope as cs
>>> x = cs.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad.numpy()
array([2., 4., 6.], dtype=float32)
>>> float(y), y.item(), y.dim(), x.size(0)
(14.0, 14.0, 0, 3)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import tracing
from .autograd import (
    _Node,
    _topological_order,
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .device import CPU, as_device, device, is_device
from .dtypes import data_array, float_array, to_dtype
from .errors import ArgumentTypeError, GradError, ShapeError, message
from .shapes import check_size
from .tensor_math import MathMethods
from .tensor_shape import ShapeMethods
from .tracing import traced

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
           "inference_mode", "as_array", "make"]

_QUIET = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")


class Tensor(ShapeMethods, MathMethods):
    """An n-dimensional array that can record how it was computed.

    Parameters
    ----------
    data : array_like
        Numbers. Copied. float64 stays float64, everything else becomes float32 (as
        ``torch.Tensor(...)``); :func:`convscope.tensor` keeps integer and boolean types.
    requires_grad : bool
        Record operations on this tensor so that ``backward`` can fill ``.grad``.

    Attributes
    ----------
    data : ndarray
        The values. ``np.asarray(t)`` and ``t.numpy()`` return it (unlike PyTorch, where
        ``t.data`` is a tensor).
    grad : Tensor or None
        Accumulated gradient after ``backward`` (leaf tensors only, as in PyTorch).
    """

    __array_priority__ = 100  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        arr = as_array(data, "Tensor", dtype)
        check_size(
            arr.shape,
            "Tensor",
            itemsize=arr.dtype.itemsize,
            what="the tensor",
            fix="pass less data at a time (a smaller batch or image)",
        )
        self.data: np.ndarray = np.array(arr, copy=True)
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._node: _Node | None = None  # how it was computed; a leaf's once it joins a graph

    @classmethod
    def _wrap(cls, data: np.ndarray, requires_grad: bool = False) -> Tensor:
        """Wrap an array without copying or checking (internal). A NumPy scalar (what
        ``arr.sum()`` returns) becomes a 0-d array: ``.data`` is always an ndarray."""
        if type(data) is not np.ndarray:
            data = np.asarray(data)
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.grad, t._node = data, requires_grad, None, None
        return t

    # ----------------------------------------------------------------- what it is
    @property
    def shape(self) -> tuple[int, ...]:
        """The sizes of the axes, a plain tuple (``size()`` gives a :class:`Size`)."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> device:
        """Always the CPU."""
        return CPU

    is_cuda = False

    def is_floating_point(self) -> bool:
        return self.data.dtype.kind == "f"

    @property
    def is_leaf(self) -> bool:
        return self._node is None or self._node.leaf is not None

    @property
    def grad_fn(self) -> _Node | None:
        """The graph node that computed this tensor, or None for a leaf (as PyTorch)."""
        node = self._node
        return None if node is None or node.leaf is not None else node

    @property
    def _op(self) -> str:
        """The operation that computed this tensor ("" for a leaf)."""
        return "" if self.is_leaf or self._node is None else self._node.op

    def _graph_node(self) -> _Node | None:
        """This tensor's node for a new graph edge (a leaf gets one on first use)."""
        if not self.requires_grad:
            return None
        if self._node is None:
            self._node = _Node((), None, "", self.shape, self.dtype, weakref.ref(self))
        return self._node

    # ----------------------------------------------------------------- Python and NumPy
    def __len__(self) -> int:
        if not self.data.ndim:
            raise ArgumentTypeError(message("len", "len() of a 0-d tensor",
                                            "use t.numel() or t.item()", "shape ()"))
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors along the first axis (with gradient when recording)."""
        if not self.data.ndim:
            raise ArgumentTypeError(message("iter", "iteration over a 0-d tensor",
                                            "use t.item()", "shape ()"))
        if self.requires_grad and is_grad_enabled():
            return (self[i] for i in range(len(self.data)))
        return (Tensor._wrap(row) for row in self.data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        # NumPy's protocol: copy=None copies only if needed (np.asarray(t, dtype=t's own
        # dtype) copied every call: a 44 MB copy of ResNet-18's weights each inference pass)
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        if dtype is None or np.dtype(dtype) == self.data.dtype:
            return self.data
        if copy is False:
            raise ValueError(f"a Tensor of {self.data.dtype} cannot be viewed as {np.dtype(dtype)} "
                             "without a copy; use copy=None or copy=True")
        return self.data.astype(dtype)

    def __dlpack__(self, **kwargs: Any) -> Any:
        """DLPack export (how ``torch.tensor(t)`` and ``torch.from_dlpack(t)`` read it)."""
        arr = self.data if self.data.flags.writeable else self.data.copy()
        return arr.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.data.__dlpack_device__()

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (shared, not copied, as in PyTorch)."""
        return self.data

    def _one(self, where: str) -> np.ndarray:
        if self.data.size != 1:
            raise ShapeError(
                message(
                    where,
                    f"only a one-element tensor converts to a Python number; this one has "
                    f"{self.data.size} elements",
                    "index or reduce first (t[0], t.sum(), t.mean())",
                    f"shape {self.shape}",
                )
            )
        return self.data.reshape(())

    def item(self) -> Any:
        """The one value as a Python number (int for integer tensors, bool for boolean)."""
        return self._one("Tensor.item").item()

    def __float__(self) -> float:
        return float(self._one("float"))

    def __int__(self) -> int:
        return int(self._one("int").item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ShapeError(
                message(
                    "bool",
                    f"the truth value of a tensor with {self.data.size} elements is ambiguous",
                    "use t.any() or t.all(), or compare one element",
                    f"shape {self.shape}",
                )
            )
        return bool(self.data.reshape(()))

    def __index__(self) -> int:
        if self.data.dtype.kind not in "biu" or self.data.size != 1:
            raise ArgumentTypeError(
                message(
                    "index",
                    "only an integer tensor of one element can be used as an index",
                    "convert with int(t), or index with t.long()",
                    f"dtype={self.dtype}, shape {self.shape}",
                )
            )
        return int(self.data.reshape(()))

    def __format__(self, spec: str) -> str:
        if self.data.ndim == 0:
            return format(self.data.item(), spec)
        if spec:
            raise ArgumentTypeError(
                message("format", "only a 0-d tensor takes a number format",
                        "format t.item(), or reduce first", f"format {spec!r}, shape "
                        f"{self.shape}")
            )
        return repr(self)

    def tolist(self) -> Any:
        return self.data.tolist()

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20,
                               prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{grad})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Tensor:
        """A copy of a leaf tensor (values, ``requires_grad``, ``.grad``), as PyTorch."""
        if not self.is_leaf:
            raise GradError(
                message("deepcopy", "only tensors created by the user (graph leaves) can be "
                        "deep-copied", "copy t.detach() instead", f"a result of {self._op}")
            )
        import copy

        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = None if key == "_node" else copy.deepcopy(value, memo)
        return new

    # ----------------------------------------------------------------- types and devices
    def to(self, *args: Any, dtype: Any = None, device: Any = None, non_blocking: bool = False,
           copy: bool = False) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(other_tensor)``: this tensor in that type (self
        when nothing changes, as PyTorch). Only the CPU exists: ``to("cpu")`` is a no-op and
        any other device is refused.

        >>> import convscope as cs
        >>> cs.tensor([1.5, 2.5]).to(cs.int64).tolist(), cs.tensor([1]).to("cpu").dtype
        ([1, 2], dtype('int64'))
        """
        target = None
        for arg in args:
            if isinstance(arg, Tensor):
                target = arg.dtype
            elif is_device(arg):
                as_device(arg, "Tensor.to")
            else:
                target = to_dtype(arg, "Tensor.to")
        if device is not None:
            as_device(device, "Tensor.to")
        if dtype is not None:
            target = to_dtype(dtype, "Tensor.to")
        if target is None or target == self.dtype:
            return self.clone() if copy else self
        return self._cast(target.name)

    @traced("to", key="Tensor.to")
    def _cast(self, dtype: str) -> Tensor:
        """This tensor converted to ``dtype`` (a name): the one traced node of every cast."""
        target, source = np.dtype(dtype), self.data.dtype
        with np.errstate(**_QUIET):  # NaN to int: as PyTorch, no warning
            out = self.data.astype(target)
        if target.kind != "f" or source.kind != "f":
            return Tensor._wrap(out)  # no gradient through integer types
        return make(out, (self,), lambda g: (g.astype(source),), "to")

    def _as(self, dtype: np.dtype) -> Tensor:
        return self if self.data.dtype == dtype else self._cast(dtype.name)

    def float(self) -> Tensor:
        """As float32 (self if it already is)."""
        return self._as(np.dtype(np.float32))

    def double(self) -> Tensor:
        """As float64 (self if it already is)."""
        return self._as(np.dtype(np.float64))

    def long(self) -> Tensor:
        """As int64, truncating toward zero."""
        return self._as(np.dtype(np.int64))

    def int(self) -> Tensor:
        """As int32, truncating toward zero (``int(t)`` is the Python number)."""
        return self._as(np.dtype(np.int32))

    def bool(self) -> Tensor:
        """As bool: nonzero is True (``bool(t)`` is the Python truth value)."""
        return self._as(np.dtype(np.bool_))

    def type_as(self, other: Tensor) -> Tensor:
        return self._as(other.dtype)

    def cpu(self) -> Tensor:
        """Itself: tensors live on the CPU."""
        return self

    def cuda(self, device: Any = None, non_blocking: bool = False) -> Tensor:
        """Refused: convscope has no GPU (``cs.cuda.is_available()`` is False)."""
        as_device("cuda" if device is None else device, "Tensor.cuda")
        return self

    # ----------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Start (or stop) recording operations on this leaf tensor; returns ``self``."""
        if not self.is_leaf and not requires_grad:
            raise GradError(
                message(
                    "requires_grad_",
                    "only leaf tensors can stop requiring grad",
                    "use .detach()",
                    f"a result of {self._op}",
                )
            )
        if requires_grad and self.data.dtype.kind != "f":
            raise ArgumentTypeError(
                message("requires_grad_", "only floating-point tensors can require gradients",
                        "convert first: t.float().requires_grad_()", f"dtype={self.dtype}")
            )
        self.requires_grad = requires_grad
        return self

    @traced("detach", key="Tensor.detach")
    def detach(self) -> Tensor:
        """The same values, cut from the graph (shares memory)."""
        return Tensor._wrap(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def backward(self, gradient: Any = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires it.

        Parameters
        ----------
        gradient : array_like, optional
            d(loss)/d(self), the same shape as ``self``. Optional only for one-element outputs.
        retain_graph : bool
            Keep the graph so that ``backward`` can run through it again (gradients add up
            in the leaves' ``.grad``, as in PyTorch). By default it is freed as it is used.
        create_graph : bool
            Not supported (no gradients of gradients): refused when True.
        """
        if create_graph:
            raise GradError(
                message("backward", "gradients of gradients (create_graph=True) are not "
                        "supported", "compute higher derivatives with finite differences",
                        "create_graph=True")
            )
        if not self.requires_grad:
            raise GradError(
                message(
                    "backward",
                    "this tensor does not require grad, so there is nothing to differentiate",
                    "create the inputs or parameters with requires_grad=True",
                    f"shape {self.shape}",
                )
            )
        if gradient is None:
            if self.data.size != 1:
                raise GradError(
                    message(
                        "backward",
                        "a non-scalar output needs an explicit gradient",
                        "call y.backward(gradient) with an array of y's shape, "
                        "or reduce y first (y.sum())",
                        f"output shape {self.shape}",
                    )
                )
            g = np.ones(self.shape, dtype=self.dtype)
        else:
            g = as_array(gradient, "backward", self.dtype)
            if g.shape != self.shape:
                raise ShapeError(
                    message(
                        "backward",
                        "gradient must have the output's shape",
                        f"pass an array of shape {self.shape}",
                        f"gradient shape {g.shape}",
                    )
                )
        root = self._graph_node()
        assert root is not None
        order = _topological_order(root)
        root.grad = g
        with np.errstate(**_QUIET):  # inf * 0 in a gradient is NaN, as PyTorch, without warnings
            self._run_backward(order, retain_graph)

    @staticmethod
    def _run_backward(order: list[_Node], retain_graph: bool) -> None:
        while order:  # popped, not iterated: a node done is no longer held here, so what
            node = order.pop()  # its closure kept is freed as soon as nothing needs it
            g, node.grad = node.grad, None
            if node.leaf is not None:
                leaf = node.leaf()
                if g is not None and leaf is not None:
                    leaf.grad = Tensor._wrap(g.copy() if leaf.grad is None else leaf.grad.data + g)
                continue
            if node.backward is None:
                raise GradError(
                    message(
                        "backward",
                        "the graph was already freed by an earlier backward() call",
                        "run the forward pass again before calling backward() a second time",
                        f"a result of {node.op}",
                    )
                )
            if g is not None:
                grads = node.backward(g)
                for parent, grad in zip(node.parents, grads, strict=True):
                    if parent is not None and grad is not None:
                        parent.accumulate(grad)
            if not retain_graph:
                node.backward, node.parents = None, ()  # free the graph as we go


def as_array(data: Any, where: str = "tensor", dtype: Any = None) -> np.ndarray:
    """User data (a Tensor too) as a float32 or float64 array: see :func:`dtypes.float_array`."""
    return float_array(data.data if isinstance(data, Tensor) else data, where, dtype)


def make(
    data: np.ndarray,
    parents: tuple[Tensor, ...],
    backward: Callable[[np.ndarray], tuple],
    op: str,
) -> Tensor:
    """Wrap an op's result and, when grad is on and an input needs it, record its node.

    ``backward(g)`` returns one gradient per parent (None where there is none). It must
    capture the arrays it needs, never the tensors: a captured tensor would keep its
    values alive as long as the graph.
    """
    needs = is_grad_enabled() and any(p.requires_grad for p in parents)
    out = Tensor._wrap(data, needs)
    if needs:
        nodes = tuple(p._graph_node() for p in parents)
        out._node = _Node(nodes, backward, op, out.data.shape, out.data.dtype)
    if not tracing.quiet():  # an operation no traced function or layer accounts for
        tracing.active().made(op, parents, out)  # type: ignore[union-attr]
    return out


def tensor(data: Any, *, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """A tensor holding a copy of ``data``, with ``torch.tensor``'s types.

    Python floats become float32, ints int64, bools bool; NumPy arrays and tensors keep
    their type (float16 becomes float32). ``dtype`` converts; only floating-point tensors
    can require grad.

    >>> import convscope as cs
    >>> cs.tensor([[1, 2], [3, 4]]).shape, cs.tensor([0.5]).dtype, cs.tensor(3).dtype
    ((2, 2), dtype('float32'), dtype('int64'))
    """
    if device is not None:
        as_device(device, "tensor")
    arr = data_array(data.data if isinstance(data, Tensor) else data, "tensor", dtype)
    check_size(arr.shape, "tensor", itemsize=arr.dtype.itemsize, what="the tensor",
               fix="pass less data at a time (a smaller batch or image)")
    out = Tensor._wrap(np.array(arr, copy=True))
    return out.requires_grad_() if requires_grad else out
