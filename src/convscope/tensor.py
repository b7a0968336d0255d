"""``Tensor``: a NumPy array plus reverse-mode automatic differentiation.

Every operation builds its output and, when an input requires grad, a graph node
(:class:`convscope.autograd._Node`) holding a small ``backward`` closure that maps the
output's gradient to its inputs' gradients. The node is not the tensor (as in PyTorch): it
keeps only what its closure needs (a ReLU its output, an add nothing), so a value nobody
holds any more is freed even while the graph that made it is alive. ``backward()`` sorts the
nodes topologically, calls the closures in reverse, adds each result into the input's node,
and frees the graph as it goes, so memory stays flat over a long training run.

>>> import convscope as cs
>>> x = cs.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad.numpy()
array([2., 4., 6.], dtype=float32)
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Callable, Sequence
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
from .errors import ArgumentTypeError, GradError, ShapeError, message
from .shapes import check_size
from .tracing import traced

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
           "inference_mode", "as_array"]

_FLOATS = (np.float32, np.float64)


def as_array(data: Any, where: str = "tensor", dtype: Any = None) -> np.ndarray:
    """Convert user data to a float32 (or float64) array, refusing what is not numeric.

    Tensors and float64 arrays keep their dtype unless ``dtype`` is given; everything else
    numeric (ints, float16, lists) becomes float32. Booleans, strings, objects, None and
    ragged lists are refused with an :class:`ArgumentTypeError`.
    """
    if isinstance(data, Tensor):
        arr = data.data
    elif data is None:
        raise ArgumentTypeError(
            message(
                where,
                "expected numbers, got None",
                "pass a numpy array or a list of numbers",
                "None",
            )
        )
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ArgumentTypeError(
                message(
                    where,
                    "data is not a rectangular array of numbers",
                    "pass a numpy array",
                    f"{type(data).__name__} ({exc})",
                )
            ) from None
    if arr.dtype.kind == "b":
        raise ArgumentTypeError(
            message(
                where,
                "expected numbers, got an array of booleans",
                "convert it explicitly if 0/1 values are meant: x.astype(np.float32)",
                f"dtype=bool, shape={arr.shape}",
            )
        )
    if arr.dtype.kind not in "iuf":
        raise ArgumentTypeError(
            message(
                where,
                f"expected numbers, got an array of dtype {arr.dtype}",
                "convert the data to a float array, e.g. np.asarray(x, dtype=np.float32)",
                f"dtype={arr.dtype}, shape={arr.shape}",
            )
        )
    if dtype is not None:
        try:
            target = np.dtype(dtype)
        except TypeError:
            target = np.dtype(object)  # refused just below
        if target.type not in _FLOATS:
            raise ArgumentTypeError(
                message(
                    where,
                    "dtype must be float32 or float64",
                    "pass dtype=np.float32",
                    f"dtype={dtype!r}",
                )
            )
    elif arr.dtype.type in _FLOATS and isinstance(data, (np.ndarray, np.generic, Tensor)):
        target = arr.dtype  # lists and Python floats become float32, as in torch.tensor
    else:
        target = np.dtype(np.float32)
    if arr.dtype != target:  # a converted copy: refuse it before allocating when too big
        check_size(
            arr.shape,
            where,
            itemsize=target.itemsize,
            what=f"the {target} copy",
            fix="pass less data at a time (a smaller batch or image)",
        )
    return arr.astype(target, copy=False)


class Tensor:
    """An n-dimensional float array that can record how it was computed.

    Parameters
    ----------
    data : array_like
        Numbers. Copied. float64 stays float64, everything else becomes float32.
    requires_grad : bool
        Record operations on this tensor so that ``backward`` can fill ``.grad``.

    Attributes
    ----------
    data : ndarray
        The values. ``np.asarray(t)`` and ``t.numpy()`` return it.
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
        """Wrap an array without copying or checking (internal)."""
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.grad, t._node = data, requires_grad, None, None
        return t

    # ----------------------------------------------------------------- array protocol
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._node is None or self._node.leaf is not None

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

    def __len__(self) -> int:
        return len(self.data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is None and not copy:
            return self.data
        return np.array(self.data, dtype=dtype, copy=True)

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (shared, not copied, as in PyTorch)."""
        return self.data

    def item(self) -> float:
        if self.size != 1:
            raise ShapeError(
                message(
                    "Tensor.item",
                    "only a one-element tensor has an item",
                    "index or reduce first",
                    f"shape {self.shape}",
                )
            )
        return float(self.data.reshape(()))

    def tolist(self) -> Any:
        return self.data.tolist()

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20)
        return f"tensor({body}, dtype={self.dtype}{grad})"

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
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """The same values, cut from the graph (shares memory)."""
        return Tensor._wrap(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def backward(self, gradient: Any = None) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires it.

        Parameters
        ----------
        gradient : array_like, optional
            d(loss)/d(self), the same shape as ``self``. Optional only for one-element outputs.
        """
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
            if self.size != 1:
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
            node.backward, node.parents = None, ()  # free the graph as we go

    # ----------------------------------------------------------------- elementwise ops
    @traced("add", key="Tensor.add")
    def __add__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        return make(self.data + o.data, (self, o), lambda g: (g, g), "add")

    __radd__ = __add__

    @traced("neg", key="Tensor.neg")
    def __neg__(self) -> Tensor:
        return make(-self.data, (self,), lambda g: (-g,), "neg")

    @traced("sub", key="Tensor.sub")
    def __sub__(self, other: Any) -> Tensor:
        return self + (-_lift(other, self))

    @traced("rsub", key="Tensor.rsub")
    def __rsub__(self, other: Any) -> Tensor:
        return _lift(other, self) + (-self)

    @traced("mul", key="Tensor.mul")
    def __mul__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        a, b = self.data, o.data
        return make(a * b, (self, o), lambda g: (g * b, g * a), "mul")

    __rmul__ = __mul__

    @traced("div", key="Tensor.div")
    def __truediv__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        a, b = self.data, o.data
        return make(a / b, (self, o), lambda g: (g / b, -g * a / (b * b)), "div")

    @traced("rdiv", key="Tensor.rdiv")
    def __rtruediv__(self, other: Any) -> Tensor:
        return _lift(other, self) / self

    @traced("pow", key="Tensor.pow")
    def __pow__(self, exponent: float) -> Tensor:
        if not isinstance(exponent, numbers.Real):
            raise ArgumentTypeError(
                message(
                    "Tensor.__pow__",
                    "the exponent must be a number",
                    "use t ** 2",
                    f"{type(exponent).__name__}",
                )
            )

        a = self.data
        return make(a**exponent, (self,), lambda g: (g * exponent * a ** (exponent - 1),), "pow")

    @traced("matmul", key="Tensor.matmul")
    def __matmul__(self, other: Any) -> Tensor:
        o = _lift(other, self)
        if self.ndim != 2 or o.ndim != 2 or self.shape[1] != o.shape[0]:
            raise ShapeError(
                message(
                    "matmul",
                    "expected (n, k) @ (k, m)",
                    "check the inner sizes",
                    f"{self.shape} @ {o.shape}",
                )
            )

        a, b = self.data, o.data
        return make(a @ b, (self, o), lambda g: (g @ b.T, a.T @ g), "matmul")

    @traced("exp", key="Tensor.exp")
    def exp(self) -> Tensor:
        out = np.exp(self.data)
        return make(out, (self,), lambda g: (g * out,), "exp")

    @traced("log", key="Tensor.log")
    def log(self) -> Tensor:
        a = self.data
        return make(np.log(a), (self,), lambda g: (g / a,), "log")

    @traced("sqrt", key="Tensor.sqrt")
    def sqrt(self) -> Tensor:
        out = np.sqrt(self.data)
        return make(out, (self,), lambda g: (g * 0.5 / out,), "sqrt")

    def relu(self) -> Tensor:
        from .functional import relu

        return relu(self)

    # ----------------------------------------------------------------- reductions and shape
    @traced("sum", key="Tensor.sum")
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        shape = self.shape

        def bw(g: np.ndarray) -> tuple[np.ndarray]:
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, shape),)

        return make(np.asarray(self.data.sum(axis=axis, keepdims=keepdims)), (self,), bw, "sum")

    @traced("mean", key="Tensor.mean")
    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        total = self.sum(axis, keepdims)
        return total * (total.size / self.size if self.size else float("nan"))

    @traced("reshape", key="Tensor.reshape")
    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in shape):
            raise ArgumentTypeError(
                message(
                    "reshape",
                    "the new shape must be ints",
                    "pass e.g. t.reshape(2, 3) or t.reshape((2, -1))",
                    f"shape {shape!r}",
                )
            )
        try:
            out = self.data.reshape(shape)
        except ValueError:
            raise ShapeError(
                message(
                    "reshape",
                    f"cannot reshape {self.size} values to {shape}",
                    "make the sizes multiply to the same total",
                    f"shape {self.shape} -> {shape}",
                )
            ) from None
        shape_in = self.shape
        return make(out, (self,), lambda g: (g.reshape(shape_in),), "reshape")

    @traced("transpose", key="Tensor.transpose")
    def transpose(self, *axes: int) -> Tensor:
        perm = axes or tuple(reversed(range(self.ndim)))
        inv = np.argsort(perm)
        return make(
            self.data.transpose(perm),
            (self,),
            lambda g: (g.transpose(inv),),
            "transpose",
        )

    @property
    def T(self) -> Tensor:
        return self.transpose()

    @traced("getitem", key="Tensor.getitem")
    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data

        shape, dtype = self.shape, self.dtype

        def bw(g: np.ndarray) -> tuple[np.ndarray]:
            full = np.zeros(shape, dtype=dtype)
            np.add.at(full, index, g)
            return (full,)

        return make(np.asarray(self.data[index]), (self,), bw, "index")

    # comparisons give plain boolean arrays (no gradient), as a convenience
    def __gt__(self, other: Any) -> np.ndarray:
        return self.data > np.asarray(other)

    def __lt__(self, other: Any) -> np.ndarray:
        return self.data < np.asarray(other)

    def argmax(self, axis: int | None = None) -> np.ndarray:
        return self.data.argmax(axis=axis)


def _lift(value: Any, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return Tensor._wrap(np.asarray(value, dtype=like.dtype))


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
        out._node = _Node(nodes, backward, op, data.shape, data.dtype)
    if not tracing.quiet():  # an operation no traced function or layer accounts for
        tracing.active().made(op, parents, out)  # type: ignore[union-attr]
    return out


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Create a tensor (a copy of ``data``), as ``torch.tensor`` does.

    >>> tensor([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
