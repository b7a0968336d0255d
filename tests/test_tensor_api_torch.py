"""The Tensor surface and the top-level helpers (issue 12, part 1) against PyTorch itself.

Every method and function is called the same way on both libraries; values, dtypes, shapes
and (in float64) gradients must agree. Hypothesis draws shapes and dims, including dims that
do not exist: then both must refuse, convscope with its own error class. Runs only where
torch is installed; marked ``torch``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope.errors import ConvscopeError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
torch.set_num_threads(1)

SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple)
SEEDS = st.integers(0, 2**31 - 1)
REFUSALS = (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError)


def dtype_name(t) -> str:
    """``float32`` for a convscope dtype or ``torch.float32``."""
    return str(t.dtype).replace("torch.", "")


def same(got, want, rtol=1e-12, atol=1e-12) -> None:
    """Equal values, shape and dtype (a tensor, a number, or a tuple of them)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            same(g, w, rtol, atol)
        return
    if isinstance(want, torch.Tensor):
        assert isinstance(got, cs.Tensor), type(got)
        assert tuple(got.shape) == tuple(want.shape), (got.shape, want.shape)
        assert dtype_name(got) == dtype_name(want), (got.dtype, want.dtype)
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=rtol, atol=atol,
                                   equal_nan=True)
        return
    assert type(got) is type(want), (got, want)
    assert got == want or (got != got and want != want)


def both(fn, *arrays, grad=True):
    """``fn(lib, *tensors)`` on both libraries (float64 leaves that require grad); returns
    ``(ours, theirs, our leaves, their leaves)``, or None when both refused."""
    ours = [cs.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = fn(torch, *theirs)
    except REFUSALS:
        with pytest.raises(ConvscopeError):
            fn(cs, *ours)
        return None
    return fn(cs, *ours), want, ours, theirs


def agree(result, seed, rtol=1e-12, atol=1e-12) -> None:
    """Values, then the gradients of every leaf for one random output gradient."""
    if result is None:
        return
    got, want, ours, theirs = result
    same(got, want, rtol, atol)
    outs = [(g, w) for g, w in zip(got, want, strict=True)] if isinstance(want, tuple) \
        else [(got, want)]
    outs = [(g, w) for g, w in outs if isinstance(w, torch.Tensor) and w.requires_grad]
    if not outs:
        return
    rng = np.random.default_rng(seed)
    for g, w in outs[:1]:
        gy = rng.standard_normal(tuple(w.shape))
        g.backward(gy)
        w.backward(torch.tensor(gy))
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {i}")


def data(seed, shape, ties=False):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: ties for max/min, equal pairs for comparisons
        return rng.integers(-2, 3, shape).astype(np.float64)
    return rng.standard_normal(shape)


# --------------------------------------------------------------------------- factories
@pytest.mark.parametrize("make", [
    lambda m: m.zeros(2, 3), lambda m: m.zeros((2, 3)), lambda m: m.ones([4]),
    lambda m: m.zeros(2, dtype=m.int64), lambda m: m.ones(3, dtype=m.bool),
    lambda m: m.ones(2, 2, dtype=m.float64), lambda m: m.empty(0, 3).shape,
    lambda m: m.full((2, 3), 7), lambda m: m.full((2,), 1.5), lambda m: m.full((2,), True),
    lambda m: m.full((2,), 3, dtype=m.float32), lambda m: m.arange(5), lambda m: m.arange(2, 9, 3),
    lambda m: m.arange(0, 1, 0.1), lambda m: m.arange(5.0), lambda m: m.arange(10, 0, -3),
    lambda m: m.arange(0, 5, dtype=m.float64), lambda m: m.arange(-1.5, 2.2, 0.7),
    lambda m: m.linspace(0, 1, 5), lambda m: m.linspace(-3, 7.5, 11), lambda m: m.linspace(2, 3, 1),
    lambda m: m.linspace(0, 1, 0), lambda m: m.eye(3), lambda m: m.eye(2, 4, dtype=m.int64),
    lambda m: m.zeros_like(m.ones(2, 3, dtype=m.int64)), lambda m: m.ones_like(m.zeros(2)),
    lambda m: m.full_like(m.zeros(2, dtype=m.int64), 4),
    lambda m: m.zeros_like(m.zeros(2), dtype=m.float64),
    lambda m: m.tensor([1, 2]), lambda m: m.tensor([1.0, 2]), lambda m: m.tensor([True, False]),
    lambda m: m.tensor(3), lambda m: m.tensor(2.5), lambda m: m.tensor([[1, 2], [3, 4]]),
    lambda m: m.tensor([1.7, -2.7], dtype=m.int64), lambda m: m.tensor([0, 2], dtype=m.bool),
    lambda m: m.tensor(np.arange(3, dtype=np.int32)), lambda m: m.tensor(np.ones(2, np.uint8)),
    lambda m: m.tensor(np.ones(2)), lambda m: m.tensor(np.ones(2, np.float32)),
    lambda m: m.as_tensor([1, 2]), lambda m: m.as_tensor(np.ones(2), dtype=m.float32),
    lambda m: m.from_numpy(np.arange(4.0).reshape(2, 2)),
])
def test_factories_match_pytorch(make):
    same(make(cs), make(torch), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("make", [
    lambda m: m.zeros(-1), lambda m: m.zeros(2.5), lambda m: m.arange(0, 5, 0),
    lambda m: m.arange(5, 0, 1), lambda m: m.randint(5, 2, (3,)), lambda m: m.ones(2).to("cuda"),
    lambda m: m.tensor([1, 2], requires_grad=True), lambda m: m.tensor([[1, 2], [3]]),
    lambda m: m.from_numpy([1, 2]), lambda m: m.rand(2, dtype=m.int64),
])
def test_factories_refuse_what_pytorch_refuses(make):
    with pytest.raises((*REFUSALS, AssertionError)):  # no CUDA: an AssertionError
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make(torch)
    with pytest.raises(ConvscopeError):
        make(cs)


@pytest.mark.parametrize("name, args, kwargs", [
    ("rand", (2, 3), {}), ("randn", ((4,),), {}), ("rand", (2,), {"dtype": "float64"}),
    ("randint", (10, (3, 2)), {}), ("randint", (-5, 5, (50,)), {}), ("randperm", (6,), {}),
])
def test_random_factories_have_pytorchs_shapes_types_and_ranges(name, args, kwargs):
    if "dtype" in kwargs:
        kwargs = {"dtype": getattr(cs, kwargs["dtype"])}, {"dtype": getattr(torch,
                                                                            kwargs["dtype"])}
    else:
        kwargs = {}, {}
    ours, theirs = getattr(cs, name)(*args, **kwargs[0]), getattr(torch, name)(*args,
                                                                               **kwargs[1])
    assert ours.shape == tuple(theirs.shape) and dtype_name(ours) == dtype_name(theirs)
    if name == "rand":
        assert ((ours.numpy() >= 0) & (ours.numpy() < 1)).all()
    if name == "randint":
        lo, hi = (0, args[0]) if len(args) == 2 else args[:2]
        assert ours.numpy().min() >= lo and ours.numpy().max() < hi
    if name == "randperm":
        assert sorted(ours.tolist()) == list(range(args[0]))
    for like in ("rand_like", "randn_like"):
        x = cs.zeros(2, 3, dtype=cs.float64)
        assert getattr(cs, like)(x).shape == (2, 3) and getattr(cs, like)(x).dtype == cs.float64


# --------------------------------------------------------------------------- Python conversions
@pytest.mark.parametrize("value", [[2.5], [[-3.75]], 4.0, [7], [True], 0, [[-2]]])
def test_python_numbers_of_one_element_tensors(value):
    ours, theirs = cs.tensor(value), torch.tensor(value)
    for convert in (float, int, bool):
        same(convert(ours), convert(theirs))
    same(ours.item(), theirs.item())
    same(ours.tolist(), theirs.tolist())
    if theirs.dtype in (torch.int64, torch.bool):
        assert list(range(10))[ours] == list(range(10))[theirs]


@pytest.mark.parametrize("convert", [float, int, bool, len, iter, lambda t: t.item(),
                                     lambda t: [1, 2, 3][t], lambda t: f"{t:.2f}"])
@pytest.mark.parametrize("value", [[1.0, 2.0], [], 3.0, [1.5]])
def test_python_conversions_refuse_what_pytorch_refuses(convert, value):
    ours, theirs = cs.tensor(value), torch.tensor(value)
    try:
        want = convert(theirs)
    except REFUSALS:
        with pytest.raises(ConvscopeError):
            convert(ours)
        return
    got = convert(ours)
    if convert is iter:
        got, want = list(got), list(want)
        assert [t.tolist() for t in got] == [t.tolist() for t in want]
    elif not isinstance(want, torch.Tensor):
        same(got, want)


def test_a_loss_is_a_0d_array_for_numpy_and_python():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    ours = cs.functional.cross_entropy(cs.tensor(x), cs.tensor(labels))
    theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(labels))
    for convert in (np.asarray, np.array, float):
        np.testing.assert_allclose(convert(ours), theirs.detach().numpy(), rtol=1e-6)
    assert np.asarray(ours).shape == () and np.asarray(ours).dtype == np.float32
    assert isinstance(ours.data, np.ndarray) and isinstance(ours.item(), float)
    assert isinstance(cs.tensor([1, 2]).sum().item(), int)


# --------------------------------------------------------------------------- shapes
@settings(max_examples=60, deadline=None)
@given(SHAPES, SEEDS, st.integers(-5, 4))
def test_size_dim_numel_match(shape, seed, dim):
    x = data(seed, shape)
    ours, theirs = cs.tensor(x), torch.tensor(x)
    assert ours.size() == theirs.size() and ours.dim() == theirs.dim()
    assert ours.numel() == theirs.numel() and ours.ndim == theirs.ndim
    assert ours.size().numel() == theirs.size().numel()
    agree(both(lambda m, t: t.size(dim), x, grad=False), seed)


@settings(max_examples=80, deadline=None)
@given(SHAPES, SEEDS, st.data())
def test_views_and_reshapes_match_with_gradients(shape, seed, draw):
    x = data(seed, shape)
    n = int(np.prod(shape))
    split = draw.draw(st.sampled_from([(n,), (-1,), (1, n), (n, 1, -1), (-1, 2), (2, -1, 1),
                                       (n + 1,), (-1, -1), (0, -1)]))
    agree(both(lambda m, t: t.view(*split), x), seed)
    agree(both(lambda m, t: t.reshape(split), x), seed)
    agree(both(lambda m, t: t.view(t.size(0), -1) if t.dim() else t.view(1), x), seed)
    start, end = draw.draw(st.integers(-5, 4)), draw.draw(st.integers(-5, 4))
    agree(both(lambda m, t: t.flatten(start, end), x), seed)
    agree(both(lambda m, t: m.flatten(t, start), x), seed)
    agree(both(lambda m, t: t.flatten(), x), seed)


@settings(max_examples=80, deadline=None)
@given(SHAPES, SEEDS, st.data())
def test_dims_reordered_squeezed_and_expanded_match_with_gradients(shape, seed, draw):
    x = data(seed, shape)
    nd = len(shape)
    dims = st.integers(-nd - 2, nd + 1)
    perm = draw.draw(st.permutations(list(range(nd))))
    d0, d1 = draw.draw(dims), draw.draw(dims)
    agree(both(lambda m, t: t.permute(*perm), x), seed)
    agree(both(lambda m, t: t.permute(perm[::-1] + [0] if nd else [0]), x), seed)
    agree(both(lambda m, t: t.transpose(d0, d1), x), seed)
    agree(both(lambda m, t: m.transpose(t, d0, d1), x), seed)
    agree(both(lambda m, t: t.squeeze(), x), seed)
    agree(both(lambda m, t: t.squeeze(d0), x), seed)
    agree(both(lambda m, t: t.unsqueeze(d1), x), seed)
    agree(both(lambda m, t: m.unsqueeze(t, d0).squeeze(d0), x), seed)
    if nd == 2:
        agree(both(lambda m, t: t.t(), x), seed)
        agree(both(lambda m, t: t.T, x), seed)
    reps = draw.draw(st.lists(st.integers(0, 3), min_size=max(nd, 1) - 1, max_size=nd + 1))
    agree(both(lambda m, t: t.repeat(*reps), x), seed)
    sizes = draw.draw(st.lists(st.sampled_from([-1, 1, 2, 3]), min_size=nd, max_size=nd + 1))
    agree(both(lambda m, t: t.expand(*sizes) * 1, x), seed)
    agree(both(lambda m, t: t.contiguous() * 1 + t.clone(), x), seed)


def test_view_of_a_permuted_tensor_is_refused_as_pytorch():
    x = np.arange(24.0).reshape(2, 3, 4)
    agree(both(lambda m, t: t.permute(2, 0, 1).view(-1), x), 0)
    agree(both(lambda m, t: t.permute(2, 0, 1).reshape(-1), x), 0)
    agree(both(lambda m, t: t.permute(2, 0, 1).contiguous().view(4, 6), x), 0)
    agree(both(lambda m, t: t.transpose(0, 1).view(3, 2, 4), x), 0)


# --------------------------------------------------------------------------- indexing
@pytest.mark.parametrize("index", [
    0, -1, (1, 2), slice(1, None), (slice(None), 1), (Ellipsis, 0), (None, 0), [0, 0, 2],
    (slice(None, None, -1) if False else slice(0, 3, 2)), "mask", "int tensor", "0-d int",
    ([0, 1], [1, 2]), 5, (0, 0, 0), "float tensor",
])
def test_indexing_matches_with_gradients(index):
    x = np.arange(12.0).reshape(3, 4) - 5.5

    def pick(m, t):
        i = index
        if index == "mask":
            i = t > 0
        elif index == "int tensor":
            i = m.tensor([[2, 0], [2, 2]])
        elif index == "0-d int":
            i = m.tensor(1)
        elif index == "float tensor":
            i = m.tensor([1.0])
        return t[i]

    agree(both(pick, x), 3)


@pytest.mark.parametrize("index, value", [
    (0, 5.0), ((slice(None), 1), np.array([1.0, 2.0, 3.0])), ("mask", 0.0), ([0, 2], 9),
    ((1, 1), "tensor"), (7, 1.0), ((slice(None), 0), np.ones(2)),
])
def test_assignment_matches(index, value):
    def put(m, t):
        t = t.detach().clone()
        i = t > 0 if index == "mask" else index
        t[i] = m.tensor([4.5]) if isinstance(value, str) else (
            m.tensor(value) if isinstance(value, np.ndarray) else value)
        return t

    agree(both(put, np.arange(12.0).reshape(3, 4) - 5.5, grad=False), 0)


# --------------------------------------------------------------------------- reductions
@settings(max_examples=80, deadline=None)
@given(SHAPES, SEEDS, st.data(), st.booleans())
def test_reductions_match_with_gradients(shape, seed, draw, ties):
    x = data(seed, shape, ties)
    nd = len(shape)
    dim = draw.draw(st.integers(-nd - 1, nd))
    dims = tuple(draw.draw(st.lists(st.integers(-nd, max(nd - 1, 0)), max_size=3, unique=True)))
    keep = draw.draw(st.booleans())
    agree(both(lambda m, t: t.sum(), x), seed)
    agree(both(lambda m, t: t.sum(dim, keepdim=keep), x), seed)
    agree(both(lambda m, t: t.sum(dims, keep), x), seed)
    agree(both(lambda m, t: t.mean(), x), seed)
    agree(both(lambda m, t: t.mean(dim, keep), x), seed)
    agree(both(lambda m, t: m.mean(t, dims, keep), x), seed)
    agree(both(lambda m, t: t.var(dim, keepdim=keep), x), seed, rtol=1e-10, atol=1e-10)
    agree(both(lambda m, t: t.std(), x), seed, rtol=1e-10, atol=1e-10)
    agree(both(lambda m, t: t.std(dim, correction=0), x), seed, rtol=1e-10, atol=1e-10)
    agree(both(lambda m, t: t.var(False), x), seed, rtol=1e-10, atol=1e-10)
    agree(both(lambda m, t: t.max(), x), seed)
    agree(both(lambda m, t: t.min(), x), seed)
    agree(both(lambda m, t: m.max(t, dim, keep), x), seed)
    agree(both(lambda m, t: t.min(dim=dim, keepdim=keep), x), seed)
    agree(both(lambda m, t: t.argmax(), x, grad=False), seed)
    agree(both(lambda m, t: m.argmin(t, dim, keep), x, grad=False), seed)
    agree(both(lambda m, t: t.argmax(dim=dim, keepdim=keep), x, grad=False), seed)
    agree(both(lambda m, t: (t > 0).all(), x, grad=False), seed)
    agree(both(lambda m, t: (t > 0).any(dim) if nd else (t > 0).any(), x, grad=False), seed)
    agree(both(lambda m, t: m.maximum(t, t.clamp(min=0.2)), x), seed)
    agree(both(lambda m, t: t.max(t * 0), x), seed)


def test_max_over_a_dim_returns_the_named_pair_as_pytorch():
    x = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 7.0]])
    ours, theirs = cs.max(cs.tensor(x), 1), torch.max(torch.tensor(x), 1)
    same(ours.values, theirs.values)
    same(ours.indices, theirs.indices)
    values, indices = cs.tensor(x).max(dim=1)
    same((values, indices), tuple(theirs))


@pytest.mark.parametrize("fn", [
    lambda m: m.tensor([1, 2]).mean(), lambda m: m.zeros(0).max(), lambda m: m.zeros(2, 0).max(1),
    lambda m: m.zeros(0).argmax(), lambda m: m.tensor([1, 2]).std(),
    lambda m: m.zeros(2, 3).sum((0, 0)),
])
def test_reductions_refuse_what_pytorch_refuses(fn):
    with pytest.raises(REFUSALS):
        fn(torch)
    with pytest.raises(ConvscopeError):
        fn(cs)


# --------------------------------------------------------------------------- elementwise
ELEMENTWISE = [
    lambda m, t: t.exp(), lambda m, t: t.abs().log(), lambda m, t: t.abs().sqrt(),
    lambda m, t: m.abs(t), lambda m, t: t.clamp(-0.5, 0.7), lambda m, t: t.clamp(min=0.1),
    lambda m, t: m.clamp(t, max=-0.2), lambda m, t: t.clamp(0.5, -0.5), lambda m, t: t.sigmoid(),
    lambda m, t: m.tanh(t), lambda m, t: t.relu(), lambda m, t: t.softmax(-1),
    lambda m, t: m.log_softmax(t, 0), lambda m, t: t.pow(3), lambda m, t: t ** 2,
    lambda m, t: t.abs() ** 0.5, lambda m, t: 2 ** t, lambda m, t: m.pow(t, 2),
    lambda m, t: t.abs() ** t, lambda m, t: m.sqrt(t * t), lambda m, t: m.exp(t).log(),
    lambda m, t: m.sigmoid(t) * m.softmax(t, 0), lambda m, t: -t, lambda m, t: 1 - t,
    lambda m, t: 3 / (t + 10), lambda m, t: t.clip(-0.1, 0.1), lambda m, t: t.neg().mul(2).add(t),
    lambda m, t: t.sub(1).div(3), lambda m, t: m.where(t > 0, t, t * t),
    lambda m, t: m.where(t > 0, t, 0.0), lambda m, t: m.where(t < 0, 1.0, t),
]


@pytest.mark.parametrize("fn", ELEMENTWISE)
@settings(max_examples=25, deadline=None)
@given(SHAPES.filter(lambda s: len(s) >= 1), SEEDS, st.booleans())
def test_elementwise_functions_match_with_gradients(fn, shape, seed, ties):
    agree(both(fn, data(seed, shape, ties)), seed, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn", [
    lambda m, t: t.exp(), lambda m, t: t.sqrt(), lambda m, t: t.abs(), lambda m, t: t.sigmoid(),
    lambda m, t: t.clamp(0, 1), lambda m, t: t.clamp(0.5, 1), lambda m, t: t.float(),
    lambda m, t: t.double(), lambda m, t: t.long(), lambda m, t: t.int(), lambda m, t: t.bool(),
    lambda m, t: t.to(m.float64), lambda m, t: t ** 2, lambda m, t: t ** 0.5, lambda m, t: t.tanh(),
    lambda m, t: t.log(), lambda m, t: m.where(t > 1, t, 0), lambda m, t: m.where(t > 1, t, 0.5),
    lambda m, t: t.type_as(m.zeros(1)), lambda m, t: t.flatten(), lambda m, t: m.cat([t, t]),
    lambda m, t: m.stack([t, t], 1),
])
def test_integer_tensors_keep_pytorchs_types(fn):
    x = np.array([[0, 3, -2], [1, 4, 2]])
    agree(both(fn, x, grad=False), 0, rtol=1e-6)  # float32 results: within a rounding
    agree(both(fn, x > 1, grad=False), 0, rtol=1e-6)


# --------------------------------------------------------------------------- arithmetic types
OPERANDS = {
    "f32": lambda m: m.tensor([1.5, -2.0, 3.0]), "f64": lambda m: m.tensor([0.5, 2, 4],
                                                                       dtype=m.float64),
    "i64": lambda m: m.tensor([3, -2, 5]), "i32": lambda m: m.tensor([1, 2, 3], dtype=m.int32),
    "u8": lambda m: m.tensor([1, 2, 0], dtype=m.uint8), "bool": lambda m: m.tensor([True, False,
                                                                                 True]),
    "int": lambda m: 2, "float": lambda m: 0.5, "true": lambda m: True,
}
OPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b,
    "**": lambda a, b: a ** b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "&": lambda a, b: a & b,
    "|": lambda a, b: a | b, "max": lambda a, b: a.max(b) if hasattr(a, "max") else b.min(a),
}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("left", ["f32", "f64", "i64", "i32", "u8", "bool"])
@pytest.mark.parametrize("right", list(OPERANDS))
def test_arithmetic_result_types_and_values_match(op, left, right):
    fn = OPS[op]
    if op == "max" and right in ("int", "float", "true"):
        return  # torch.max(tensor, number) is not an overload
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = fn(OPERANDS[left](torch), OPERANDS[right](torch))
    except REFUSALS:
        with pytest.raises(ConvscopeError):
            fn(OPERANDS[left](cs), OPERANDS[right](cs))
        return
    got = fn(OPERANDS[left](cs), OPERANDS[right](cs))
    if (left, right) in (("f64", "f32"), ("f32", "f64")):
        return  # both float64 here by decision (docs/decisions.md); PyTorch agrees, see below
    same(got, want, rtol=1e-6, atol=1e-6)


def test_mixed_float_widths_and_reflected_operators():
    a64, a32 = np.array([0.5, 2.0]), np.array([1.5, -1.0], np.float32)
    same(cs.tensor(a64) * cs.tensor(a32), torch.tensor(a64) * torch.tensor(a32))
    for fn in (lambda t: 1 - t, lambda t: 2 / t, lambda t: 2 ** t, lambda t: 3 * t,
               lambda t: 1 + t):
        same(fn(cs.tensor(a32)), fn(torch.tensor(a32)), rtol=1e-6)
        same(fn(cs.tensor([1, 2])), fn(torch.tensor([1, 2])), rtol=1e-6)


def test_counting_correct_predictions_as_in_the_tutorial():
    logits = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 10, 8)
    counts = []
    for m in (cs, torch):
        outputs, target = m.tensor(logits), m.tensor(labels)
        _, predicted = m.max(outputs, 1)
        _, predicted2 = outputs.max(1)
        correct = (predicted == target).sum().item()
        assert (predicted2 == target).sum().item() == correct
        counts.append((correct, type(correct), target.size(0), predicted.dtype == m.long))
    assert counts[0] == counts[1]


# --------------------------------------------------------------------------- in place
@pytest.mark.parametrize("fn", [
    lambda m, t: t.add_(1.5), lambda m, t: t.mul_(m.tensor([2.0, 3.0, 4.0])),
    lambda m, t: t.zero_(),
    lambda m, t: t.fill_(2.5), lambda m, t: t.copy_(m.tensor([[7, 8, 9]])), lambda m, t: t.sub_(1),
    lambda m, t: t.div_(4), lambda m, t: t.add_(m.ones(3), alpha=2), lambda m, t: t.clamp_(0, 1),
    lambda m, t: t.long().add_(0.5), lambda m, t: t.mul_(m.ones(5)),
])
def test_in_place_updates_match(fn):
    x = np.arange(6.0).reshape(2, 3) - 2

    def run(m, t):
        t = t.detach().clone()
        out = fn(m, t)
        return out, t

    agree(both(run, x, grad=False), 0)


def test_in_place_on_a_leaf_that_requires_grad_is_refused_unless_no_grad():
    for fn in (lambda t: t.add_(1), lambda t: t.zero_(), lambda t: t.__setitem__(0, 1.0)):
        with pytest.raises(RuntimeError):
            fn(torch.zeros(3, requires_grad=True))
        with pytest.raises(ConvscopeError, match="leaf tensor that requires grad"):
            fn(cs.zeros(3, requires_grad=True))
        for m in (cs, torch):
            w = m.zeros(3, requires_grad=True)
            with m.no_grad():
                fn(w)
            assert w.requires_grad and w.tolist()[0] in (0.0, 1.0)


def test_manual_sgd_step_in_place_as_pytorch():
    results = []
    for m in (cs, torch):
        w = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
        for _ in range(3):
            loss = (w * w).sum()
            loss.backward()
            with m.no_grad():
                w -= 0.1 * w.grad
            w.grad = None
        results.append(w.detach().numpy().copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


# --------------------------------------------------------------------------- top level
def test_top_level_helpers_match():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    for fn in (lambda m: m.allclose(m.tensor(a), m.tensor(a + 1e-9)),
               lambda m: m.allclose(m.tensor(a), m.tensor(a + 1e-3)),
               lambda m: m.equal(m.tensor(a), m.tensor(a)),
               lambda m: m.equal(m.tensor(a), m.tensor(a[:1])),
               lambda m: m.is_tensor(m.tensor(a)), lambda m: m.is_tensor(a),
               lambda m: m.numel(m.tensor(a)), lambda m: m.is_floating_point(m.tensor([1])),
               lambda m: m.cuda.is_available(), lambda m: m.cuda.device_count(),
               lambda m: str(m.device("cpu")), lambda m: m.tensor(a).device == m.device("cpu"),
               lambda m: m.tensor(a).to("cpu").dtype == m.float64,
               lambda m: m.tensor(a).cpu().is_cuda, lambda m: m.tensor(a).size(-1)):
        assert fn(cs) == fn(torch)
    same(cs.isclose(cs.tensor(a), cs.tensor(a * 1.1)), torch.isclose(torch.tensor(a),
                                                                    torch.tensor(a * 1.1)))
    same(cs.where(cs.tensor(a) > 2), torch.where(torch.tensor(a) > 2))
    same(cs.matmul(cs.tensor(a), cs.tensor(a)), torch.matmul(torch.tensor(a), torch.tensor(a)))
    for name in ("float32", "float64", "int64", "long", "int32", "int", "uint8", "bool",
                 "float", "double", "int16", "short", "int8"):
        assert np.dtype(getattr(cs, name)).name == dtype_name(torch.zeros(1, dtype=getattr(
            torch, name)))


def test_our_tensors_read_as_pytorch_tensors():
    x = cs.randn(2, 3, dtype=cs.float64).expand(2, 2, 3)
    for convert in (torch.tensor, torch.as_tensor, torch.from_dlpack):
        np.testing.assert_array_equal(convert(x).numpy(), x.numpy())
    assert torch.tensor(cs.tensor(3.5)).item() == 3.5
    assert torch.tensor(cs.tensor([True])).dtype == torch.bool
