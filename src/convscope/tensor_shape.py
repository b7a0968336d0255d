"""Sizes, views and indexing of a :class:`~convscope.Tensor`: PyTorch's shape vocabulary.

``size()``, ``dim()``, ``numel()``; ``view``/``reshape``/``flatten``; ``permute``,
``transpose`` (swap two dims), ``squeeze``/``unsqueeze``, ``expand``/``repeat``; indexing
with gradient (slices, ints, lists, boolean masks, integer tensors) and assignment into
tensors that are not part of a graph. A dim may be negative (counted from the end); one
that does not exist is refused with the range that does.

>>> import convscope as cs
>>> x = cs.zeros(2, 3, 4)
>>> x.size(), x.size(-1), x.view(2, -1).shape, x.permute(2, 0, 1).shape
(Size([2, 3, 4]), 4, (2, 12), (4, 2, 3))
>>> x.transpose(0, 2).shape, x.unsqueeze(1).shape, x[:, 0].shape
((4, 3, 2), (2, 1, 3, 4), (2, 4))
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import TYPE_CHECKING, Any

import numpy as np

from . import tensor as _t  # the class and `make` (this module is part of the class)
from .autograd import _unbroadcast, is_grad_enabled
from .errors import ArgumentError, ArgumentTypeError, GradError, IndexingError, ShapeError, message
from .tracing import traced

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["Size", "ShapeMethods"]


class Size(tuple):
    """The sizes of a tensor's axes (``torch.Size``): a tuple with :meth:`numel`.

    >>> import convscope as cs
    >>> s = cs.zeros(2, 3).size()
    >>> s == (2, 3), s.numel(), s[1:]
    (True, 6, Size([3]))
    """

    def numel(self) -> int:
        return math.prod(self)

    def __getitem__(self, index: Any) -> Any:
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __repr__(self) -> str:
        return f"Size({list(self)})"


def dim_index(dim: Any, ndim: int, where: str, shape: tuple[int, ...], name: str = "dim",
              extra: int = 0) -> int:
    """``dim`` checked and made non-negative; a 0-d tensor has dims -1 and 0 (PyTorch's rule).
    ``extra=1`` allows one past the end (``unsqueeze``)."""
    n = max(ndim, 1) + extra
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise ArgumentTypeError(
            message(where, f"`{name}` must be an int (an axis)", f"pass e.g. {name}=1",
                    f"{name}={dim!r:.40}")
        )
    if not -n <= dim < n:
        raise ArgumentError(
            message(where, f"dimension out of range: `{name}` must be in [{-n}, {n - 1}] for "
                    f"a {ndim}-D tensor", f"pass a dim between {-n} and {n - 1}",
                    f"{name}={dim}, shape {shape}")
        )
    return int(dim) % n


def dim_tuple(dim: Any, ndim: int, where: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """An int or a sequence of ints as sorted distinct non-negative dims."""
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = [dim_index(d, ndim, where, shape) for d in dims]
    if len(set(out)) != len(out):
        raise ArgumentError(
            message(where, "a dim appears twice", "name each dim once", f"dim={dim!r}")
        )
    return tuple(sorted(out))


def _sizes(args: tuple, where: str) -> tuple[int, ...]:
    """``f(2, 3)`` or ``f((2, 3))`` (or a Size, or a list) as a tuple of ints; ``f()`` is
    refused (``f(())`` is the empty shape)."""
    if not args:
        raise ArgumentTypeError(
            message(where, "the sizes are missing", f"pass e.g. t.{where}(2, -1)", "no sizes")
        )
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    try:
        if any(isinstance(n, bool) for n in args):
            raise TypeError
        return tuple(operator.index(n) for n in args)
    except TypeError:
        raise ArgumentTypeError(
            message(where, "sizes must be ints", f"pass e.g. t.{where}(2, -1)",
                    f"sizes {args!r:.60}")
        ) from None


def _infer(shape: tuple[int, ...], total: int, where: str, old: tuple[int, ...]) -> tuple:
    """Replace one -1 by what makes the sizes multiply to ``total``; refuse what cannot."""
    bad = message(where, f"shape {shape} is invalid for a tensor of {total} values",
                  "make the sizes multiply to the same total (one of them may be -1)",
                  f"shape {old} -> {shape}")
    if shape.count(-1) > 1 or any(n < -1 for n in shape):
        raise ShapeError(bad)
    if -1 in shape:
        rest = math.prod(n for n in shape if n != -1)
        if rest == 0 or total % rest:
            raise ShapeError(bad)
        shape = tuple(total // rest if n == -1 else n for n in shape)
    if math.prod(shape) != total:
        raise ShapeError(bad)
    return shape


def _index(index: Any) -> Any:
    """An index with every Tensor in it replaced by its array (NumPy does the rest)."""
    if isinstance(index, _t.Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, list) and any(isinstance(i, _t.Tensor) for i in index):
        return [_index(i) for i in index]
    return index


def _basic(index: Any) -> bool:
    """Whether NumPy reads ``index`` as basic indexing (a region, each cell at most once)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None or i is Ellipsis or isinstance(i, slice)
        or (isinstance(i, (numbers.Integral, np.ndarray)) and not isinstance(i, (bool, np.bool_))
            and np.ndim(i) == 0 and np.asarray(i).dtype.kind in "iu")
        for i in items
    )


def _lookup(data: np.ndarray, index: Any, where: str) -> Any:
    try:
        return data[index]
    except IndexError as exc:
        raise IndexingError(
            message(where, str(exc).rstrip("."), "index within the sizes of the tensor, with "
                    "ints, slices, int or bool tensors", f"shape {data.shape}")
        ) from None
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            message(where, f"this is not a valid index ({exc})".rstrip("."),
                    "index with ints, slices, lists of ints, int tensors or a bool mask",
                    f"index {index!r:.80}")
        ) from None


def check_inplace(t: Tensor, where: str, value: Any = None) -> None:
    """Refuse an in-place change that would make the recorded gradients wrong (as PyTorch
    refuses it for a leaf that requires grad), or that writes into read-only values."""
    if is_grad_enabled():
        if t.requires_grad and t.is_leaf:
            raise GradError(
                message(where, "a leaf tensor that requires grad cannot be changed in place "
                        "while gradients are recorded", "do it inside `with cs.no_grad():` "
                        "(as an optimizer step or an initialisation does), or compute a new "
                        "tensor (t = t + x)", f"shape {t.shape}, requires_grad=True")
            )
        if t.requires_grad or (isinstance(value, _t.Tensor) and value.requires_grad):
            raise GradError(
                message(where, "in-place changes of tensors in a recorded graph are not "
                        "supported", "compute a new tensor instead (y = y + x, cs.where, "
                        "cs.cat), or detach() first", f"a result of {t._op or 'a leaf'}")
            )
    if not t.data.flags.writeable:
        raise ArgumentError(
            message(where, "this tensor's values are read-only (an expand() result, or a "
                    "read-only NumPy array)", "write into a copy: t = t.clone()",
                    f"shape {t.shape}")
        )


class ShapeMethods:
    """Sizes, views and indexing (part of :class:`~convscope.Tensor`)."""

    __slots__ = ()

    # ----------------------------------------------------------------- sizes
    def size(self: Tensor, dim: int | None = None) -> Any:
        """The sizes (a :class:`Size`), or the size of one ``dim``."""
        if dim is None:
            return Size(self.data.shape)
        d = dim_index(dim, self.data.ndim, "size", self.shape)
        if not self.data.ndim:
            raise ArgumentError(message("size", "a 0-d tensor has no dims", "use t.size()",
                                        f"dim={dim}, shape ()"))
        return self.data.shape[d]

    def dim(self: Tensor) -> int:
        """The number of axes (``ndim``)."""
        return self.data.ndim

    ndimension = dim

    def numel(self: Tensor) -> int:
        """The number of values."""
        return self.data.size

    nelement = numel

    # ----------------------------------------------------------------- new shapes
    @traced("reshape", key="Tensor.reshape")
    def reshape(self: Tensor, *shape: Any) -> Tensor:
        """The values with new sizes (one may be -1); a view when possible, else a copy."""
        sizes = _infer(_sizes(shape, "reshape"), self.data.size, "reshape", self.shape)
        shape_in = self.shape
        return _t.make(self.data.reshape(sizes), (self,), lambda g: (g.reshape(shape_in),),
                       "reshape")

    @traced("view", key="Tensor.view")
    def view(self: Tensor, *shape: Any) -> Tensor:
        """The same values with new sizes (one may be -1), sharing memory, as PyTorch: a
        tensor whose layout does not allow it (after ``transpose``/``permute``) is refused;
        ``reshape`` copies instead."""
        sizes = _infer(_sizes(shape, "view"), self.data.size, "view", self.shape)
        try:
            out = self.data.reshape(sizes, copy=False)
        except ValueError:
            raise ShapeError(
                message("view", "this tensor's memory layout (after a transpose or permute) "
                        "cannot be viewed with the new sizes", "use .reshape(...), or "
                        ".contiguous().view(...)", f"shape {self.shape} -> {sizes}")
            ) from None
        shape_in = self.shape
        return _t.make(out, (self,), lambda g: (g.reshape(shape_in),), "view")

    def view_as(self: Tensor, other: Tensor) -> Tensor:
        return self.view(other.shape)

    def reshape_as(self: Tensor, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge dims ``start_dim..end_dim`` into one (all of them by default, as PyTorch)."""
        from .functional.join import flatten

        return flatten(self, start_dim, end_dim)

    @traced("permute", key="Tensor.permute")
    def permute(self: Tensor, *dims: Any) -> Tensor:
        """The dims reordered: ``x.permute(0, 2, 3, 1)`` turns NCHW into NHWC (a view)."""
        order = _sizes(dims, "permute")
        n = self.data.ndim
        if len(order) != n or sorted(d % max(n, 1) for d in order if -n <= d < n) != \
                list(range(n)):
            raise ArgumentError(
                message("permute", f"dims must name each of the {n} dims once",
                        f"pass a reordering of {tuple(range(n))}", f"dims={order}, shape "
                        f"{self.shape}")
            )
        perm = tuple(d % n for d in order)
        inv = tuple(np.argsort(perm))
        return _t.make(self.data.transpose(perm), (self,), lambda g: (g.transpose(inv),),
                       "permute")

    @traced("transpose", key="Tensor.transpose")
    def transpose(self: Tensor, dim0: int | None = None, dim1: int | None = None,
                  *more: int) -> Tensor:
        """``dim0`` and ``dim1`` swapped (PyTorch's meaning; ``permute`` reorders all dims,
        ``.T`` reverses them)."""
        if dim0 is None or dim1 is None or more:
            got = ", ".join(str(d) for d in (dim0, dim1, *more) if d is not None)
            raise ArgumentTypeError(
                message("transpose", "transpose(dim0, dim1) swaps two dims and takes exactly "
                        "two", "pass two dims (x.transpose(0, 1)); reorder all dims with "
                        "x.permute(...) or reverse them with x.T", f"transpose({got})")
            )
        n = self.data.ndim
        a, b = (dim_index(d, n, "transpose", self.shape) for d in (dim0, dim1))
        if n < 2:
            return _t.make(self.data, (self,), lambda g: (g,), "transpose")
        perm = list(range(n))
        perm[a], perm[b] = b, a
        return _t.make(self.data.transpose(perm), (self,), lambda g: (g.transpose(perm),),
                       "transpose")

    def t(self: Tensor) -> Tensor:
        """A matrix transposed (a 0-d or 1-D tensor as is)."""
        if self.data.ndim > 2:
            raise ShapeError(
                message("t", "t() expects a tensor with at most 2 dims",
                        "use transpose(dim0, dim1) or permute", f"shape {self.shape}")
            )
        return self.transpose(0, 1) if self.data.ndim == 2 else self

    @property
    def T(self: Tensor) -> Tensor:
        """The dims in reverse order."""
        if self.data.ndim < 2:
            return self
        return self.permute(*reversed(range(self.data.ndim)))

    @traced("squeeze", key="Tensor.squeeze")
    def squeeze(self: Tensor, dim: Any = None) -> Tensor:
        """Drop dims of size 1: all of them, or those of ``dim`` (an int or a tuple) that
        have size 1 (others are left as they are, as PyTorch)."""
        shape_in = self.shape
        if dim is None:
            drop = tuple(i for i, n in enumerate(shape_in) if n == 1)
        else:
            drop = tuple(d for d in dim_tuple(dim, self.data.ndim, "squeeze", shape_in)
                         if self.data.ndim and shape_in[d] == 1)
        out = self.data.reshape(tuple(n for i, n in enumerate(shape_in) if i not in drop))
        return _t.make(out, (self,), lambda g: (g.reshape(shape_in),), "squeeze")

    @traced("unsqueeze", key="Tensor.unsqueeze")
    def unsqueeze(self: Tensor, dim: int) -> Tensor:
        """A new dim of size 1 at ``dim`` (in ``[-ndim-1, ndim]``)."""
        d = dim_index(dim, self.data.ndim, "unsqueeze", self.shape, extra=1) \
            if self.data.ndim else dim_index(dim, 0, "unsqueeze", self.shape)
        shape_in = self.shape
        out = self.data.reshape(shape_in[:d] + (1,) + shape_in[d:])
        return _t.make(out, (self,), lambda g: (g.reshape(shape_in),), "unsqueeze")

    @traced("expand", key="Tensor.expand")
    def expand(self: Tensor, *sizes: Any) -> Tensor:
        """Dims of size 1 stretched to ``sizes`` without copying (-1 keeps a size; new
        leading dims may be added). The result is read-only, as PyTorch's may not be
        written either."""
        target = _sizes(sizes, "expand")
        n, shape_in = self.data.ndim, self.shape
        lead = len(target) - n
        ok = lead >= 0 and all(t >= 0 for t in target[:lead])
        full = list(target[:lead])
        for i, size in enumerate(shape_in):
            want = target[lead + i] if ok else size
            want = size if want == -1 else want
            ok = ok and (want == size or size == 1) and want >= 0
            full.append(want)
        if not ok:
            raise ShapeError(
                message("expand", "only dims of size 1 can be expanded, and new dims go first",
                        "match every size that is not 1 (or pass -1 to keep it)",
                        f"shape {shape_in} -> {target}")
            )
        out = np.broadcast_to(self.data, tuple(full))
        return _t.make(out, (self,), lambda g: (_unbroadcast(g, shape_in),), "expand")

    def expand_as(self: Tensor, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    @traced("repeat", key="Tensor.repeat")
    def repeat(self: Tensor, *sizes: Any) -> Tensor:
        """The tensor tiled ``sizes[i]`` times along each dim (``np.tile``; a copy)."""
        reps = _sizes(sizes, "repeat")
        n = self.data.ndim
        if len(reps) < n or any(r < 0 for r in reps):
            raise ArgumentError(
                message("repeat", f"give one count >= 0 per dim (at least {n})",
                        f"pass {n} counts, e.g. repeat{(1,) * n}", f"sizes {reps}")
            )
        shape_in = (1,) * (len(reps) - n) + self.shape
        out = np.tile(self.data.reshape(shape_in), reps)

        self_shape = self.shape

        def backward(g: np.ndarray) -> tuple:
            pairs = tuple(v for r, s in zip(reps, shape_in, strict=True) for v in (r, s))
            summed = g.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2)))
            return (summed.reshape(self_shape),)

        return _t.make(out, (self,), backward, "repeat")

    @traced("contiguous", key="Tensor.contiguous")
    def contiguous(self: Tensor) -> Tensor:
        """Itself when its values are laid out in order in memory, else a copy that is."""
        if self.data.flags.c_contiguous:
            return self
        return _t.make(np.ascontiguousarray(self.data), (self,), lambda g: (g,), "contiguous")

    def is_contiguous(self: Tensor) -> bool:
        return bool(self.data.flags.c_contiguous)

    @traced("clone", key="Tensor.clone")
    def clone(self: Tensor) -> Tensor:
        """A copy of the values; the gradient flows back to this tensor (as PyTorch)."""
        return _t.make(self.data.copy(), (self,), lambda g: (g,), "clone")

    # ----------------------------------------------------------------- indexing
    @traced("getitem", key="Tensor.getitem")
    def __getitem__(self: Tensor, index: Any) -> Tensor:
        idx = _index(index)
        out = _lookup(self.data, idx, "index")
        shape, dtype, basic = self.shape, self.dtype, _basic(idx)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            full = np.zeros(shape, dtype=dtype)
            if basic:  # a region: each cell once
                full[idx] = g
            else:  # lists and masks may pick a cell twice: add every pick
                np.add.at(full, idx, g)
            return (full,)

        return _t.make(out, (self,), backward, "index")

    def __setitem__(self: Tensor, index: Any, value: Any) -> None:
        """Write values in place (refused on a tensor whose gradient is being recorded)."""
        check_inplace(self, "Tensor.__setitem__", value)
        idx = _index(index)
        src = value.data if isinstance(value, _t.Tensor) else value
        try:
            try:
                self.data[idx] = src
            except ValueError:  # PyTorch also drops leading dims of size 1: t[0, 0] = [[5]]
                region = np.ndim(self.data[idx])
                src = np.asarray(src)
                while src.ndim > region and src.shape[0] == 1:
                    src = src[0]
                self.data[idx] = src
        except IndexError:
            _lookup(self.data, idx, "Tensor.__setitem__")  # says what is wrong with the index
            raise
        except (ValueError, TypeError) as exc:
            raise ShapeError(
                message("Tensor.__setitem__", "the values do not fit the indexed region",
                        "pass one number, or values of the region's shape",
                        f"region {np.shape(self.data[idx])}, values {np.shape(src)} ({exc})")
            ) from None
