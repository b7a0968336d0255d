"""``Tensor``: a NumPy array plus reverse-mode automatic differentiation.

micrograd's design at tensor level: every operation builds its output and attaches a small
``_backward`` closure that *accumulates* the output's gradient into its inputs. ``backward()``
sorts the graph topologically and calls the closures in reverse, then frees the graph, so
memory stays flat over a long training run.

>>> import convscope as cs
>>> x = cs.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad.numpy()
array([2., 4., 6.], dtype=float32)
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ArgumentTypeError, GradError, ShapeError, message
from .shapes import check_size

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "as_array"]

_GRAD_ENABLED = True


def is_grad_enabled() -> bool:
    """Whether operations currently record the graph for ``backward``."""
    return _GRAD_ENABLED


@contextlib.contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
    global _GRAD_ENABLED
    before, _GRAD_ENABLED = _GRAD_ENABLED, enabled
    try:
        yield
    finally:
        _GRAD_ENABLED = before


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager in which no graph is recorded (inference, optimizer steps)."""
    return _grad_mode(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager that turns graph recording back on inside ``no_grad``."""
    return _grad_mode(True)


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


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


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
        self._backward: Callable[[np.ndarray], None] | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._op = ""
        self._gbuf: np.ndarray | None = None

    @classmethod
    def _wrap(cls, data: np.ndarray, requires_grad: bool = False) -> Tensor:
        """Wrap an array without copying or checking (internal)."""
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.grad = data, requires_grad, None
        t._backward, t._parents, t._op, t._gbuf = None, (), "", None
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
        return not self._op

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

    def _accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` into this tensor's gradient buffer (never in place: no aliasing)."""
        if not self.requires_grad:
            return
        grad = _unbroadcast(np.asarray(grad, dtype=self.dtype), self.shape)
        self._gbuf = grad if self._gbuf is None else self._gbuf + grad

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
        order = self._topological_order()
        self._gbuf = g
        while order:  # popped, not iterated: a node done is no longer held here, so its
            node = order.pop()  # activations are freed as soon as no closure needs them
            g, node._gbuf = node._gbuf, None
            if node.is_leaf:
                if g is not None:
                    node.grad = Tensor._wrap(g.copy() if node.grad is None else node.grad.data + g)
                continue
            if node._backward is None:
                raise GradError(
                    message(
                        "backward",
                        "the graph was already freed by an earlier backward() call",
                        "run the forward pass again before calling backward() a second time",
                        f"a result of {node._op}",
                    )
                )
            if g is not None:
                node._backward(g)
            node._backward, node._parents = None, ()  # free the graph as we go

    def _topological_order(self) -> list[Tensor]:
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:  # iterative DFS: deep graphs must not hit the recursion limit
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in seen)
        return order

    # ----------------------------------------------------------------- elementwise ops
    def __add__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        def bw(g: np.ndarray) -> None:
            self._accumulate(g)
            o._accumulate(g)

        return make(self.data + o.data, (self, o), bw, "add")

    __radd__ = __add__

    def __neg__(self) -> Tensor:
        return make(-self.data, (self,), lambda g: self._accumulate(-g), "neg")

    def __sub__(self, other: Any) -> Tensor:
        return self + (-_lift(other, self))

    def __rsub__(self, other: Any) -> Tensor:
        return _lift(other, self) + (-self)

    def __mul__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        def bw(g: np.ndarray) -> None:
            self._accumulate(g * o.data)
            o._accumulate(g * self.data)

        return make(self.data * o.data, (self, o), bw, "mul")

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        def bw(g: np.ndarray) -> None:
            self._accumulate(g / o.data)
            o._accumulate(-g * self.data / (o.data * o.data))

        return make(self.data / o.data, (self, o), bw, "div")

    def __rtruediv__(self, other: Any) -> Tensor:
        return _lift(other, self) / self

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

        def bw(g: np.ndarray) -> None:
            self._accumulate(g * exponent * self.data ** (exponent - 1))

        return make(self.data**exponent, (self,), bw, "pow")

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

        def bw(g: np.ndarray) -> None:
            self._accumulate(g @ o.data.T)
            o._accumulate(self.data.T @ g)

        return make(self.data @ o.data, (self, o), bw, "matmul")

    def exp(self) -> Tensor:
        out = np.exp(self.data)
        return make(out, (self,), lambda g: self._accumulate(g * out), "exp")

    def log(self) -> Tensor:
        return make(np.log(self.data), (self,), lambda g: self._accumulate(g / self.data), "log")

    def sqrt(self) -> Tensor:
        out = np.sqrt(self.data)
        return make(out, (self,), lambda g: self._accumulate(g * 0.5 / out), "sqrt")

    def relu(self) -> Tensor:
        from .functional import relu

        return relu(self)

    # ----------------------------------------------------------------- reductions and shape
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        def bw(g: np.ndarray) -> None:
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            self._accumulate(np.broadcast_to(g, self.shape))

        return make(np.asarray(self.data.sum(axis=axis, keepdims=keepdims)), (self,), bw, "sum")

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        total = self.sum(axis, keepdims)
        return total * (total.size / self.size if self.size else float("nan"))

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
        return make(out, (self,), lambda g: self._accumulate(g.reshape(self.shape)), "reshape")

    def transpose(self, *axes: int) -> Tensor:
        perm = axes or tuple(reversed(range(self.ndim)))
        inv = np.argsort(perm)
        return make(
            self.data.transpose(perm),
            (self,),
            lambda g: self._accumulate(g.transpose(inv)),
            "transpose",
        )

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data

        def bw(g: np.ndarray) -> None:
            full = np.zeros(self.shape, dtype=self.dtype)
            np.add.at(full, index, g)
            self._accumulate(full)

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
    data: np.ndarray, parents: tuple[Tensor, ...], backward: Callable[[np.ndarray], None], op: str
) -> Tensor:
    """Wrap an op's result and, when grad is on and an input needs it, attach the backward."""
    needs = _GRAD_ENABLED and any(p.requires_grad for p in parents)
    out = Tensor._wrap(data, needs)
    if needs:
        out._parents, out._backward, out._op = parents, backward, op
    return out


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Create a tensor (a copy of ``data``), as ``torch.tensor`` does.

    >>> tensor([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
