"""Autograd: every op's gradient against float64 finite differences, and the graph's rules."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.functional as F
from convscope.errors import GradError, ShapeError
from gradcheck import check_gradients

rng = np.random.default_rng(1)


def r(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


# ----------------------------------------------------------------------------- elementwise
@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda a, b: a + b, [(2, 3), (3,)]),          # broadcasting reduces the gradient
        (lambda a, b: a - b, [(2, 1), (1, 4)]),
        (lambda a, b: a * b, [(2, 3), (2, 3)]),
        (lambda a, b: a / (b * b + 1.0), [(3,), (3,)]),
        (lambda a: a ** 3, [(4,)]),
        (lambda a, b: a @ b, [(2, 3), (3, 4)]),
        (lambda a: (a * a + 1.0).log(), [(3, 2)]),
        (lambda a: a.exp(), [(3, 2)]),
        (lambda a: (a * a + 1.0).sqrt(), [(5,)]),
        (lambda a: a.sum(axis=1), [(2, 3)]),
        (lambda a: a.mean(axis=(0, 2), keepdims=True), [(2, 3, 4)]),
        (lambda a: a.mean(), [(2, 3)]),
        (lambda a: a.reshape(3, 2).T, [(2, 3)]),
        (lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
        (lambda a: a[np.array([0, 0, 1]), 1:], [(2, 3)]),   # repeated index accumulates
        (lambda a: 2.0 - a * 3.0, [(3,)]),
        (lambda a: 1.0 / (a * a + 2.0), [(3,)]),
    ],
)
def test_elementwise_gradients_match_finite_differences(fn, shapes):
    assert check_gradients(fn, *[r(*s) for s in shapes]) > 0


def test_relu_gradient_is_zero_at_zero_as_in_pytorch():
    x = cs.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    F.relu(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


# ----------------------------------------------------------------------------- layers' ops
def _away_from_kinks(x: np.ndarray) -> np.ndarray:
    """Move values away from 0 so finite differences do not straddle relu's kink."""
    return np.where(np.abs(x) < 0.05, 0.3, x)


CONV_CASES = [
    # (x shape, w shape, kwargs)
    ((2, 3, 6, 5), (4, 3, 3, 3), dict(padding=1)),
    ((1, 4, 7, 7), (4, 2, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)), groups=2)),
    ((1, 2, 9, 8), (3, 2, 3, 3), dict(dilation=2, stride=2)),
    ((2, 3, 5, 5), (3, 1, 3, 3), dict(groups=3, padding="same")),
    ((1, 3, 4, 4), (2, 3, 4, 4), dict()),                       # kernel = input size
    ((1, 2, 5, 6), (2, 2, 1, 1), dict(stride=2)),               # 1x1
]


@pytest.mark.parametrize("xs, ws, kw", CONV_CASES)
def test_conv2d_gradients(xs, ws, kw):
    n = check_gradients(lambda x, w, b: F.conv2d(x, w, b, **kw), r(*xs), r(*ws), r(ws[0]))
    assert n == np.prod(xs) + np.prod(ws) + ws[0]


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_modes_gradients(mode):
    check_gradients(lambda x, w: F.conv2d(F.pad(x, ((1, 2), (2, 0)), mode), w), r(1, 2, 4, 5),
                    r(3, 2, 3, 3))


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
    dict(kernel_size=2, stride=2, ceil_mode=True),
])
def test_max_pool_gradients(kw):
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0  # distinct values: no ties
    check_gradients(lambda t: F.max_pool2d(t, **kw), x)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=2, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
])
def test_avg_pool_gradients(kw):
    check_gradients(lambda t: F.avg_pool2d(t, **kw), r(2, 2, 7, 6))


def test_linear_flatten_relu_chain_gradients():
    x = _away_from_kinks(r(3, 2, 2, 2))
    check_gradients(lambda t, w, b: F.relu(F.linear(F.flatten(t), w, b)), x, r(4, 8), r(4))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradients(reduction):
    target = np.array([0, 3, 1, 3])
    check_gradients(lambda z: F.cross_entropy(z, target, reduction=reduction), r(4, 5) * 3)


def test_log_softmax_and_softmax_gradients():
    check_gradients(lambda z: F.log_softmax(z, dim=1), r(3, 4))
    check_gradients(lambda z: F.softmax(z, dim=0), r(3, 4))


def test_mse_loss_gradient():
    check_gradients(lambda a, b: F.mse_loss(a, b), r(3, 4), r(3, 4))


def test_batch_norm_training_gradients():
    rm, rv = np.zeros(3), np.ones(3)
    check_gradients(lambda x, g, b: F.batch_norm(x, rm.copy(), rv.copy(), g, b, training=True),
                    r(4, 3, 2, 3), r(3), r(3))


def test_batch_norm_eval_gradients():
    rm, rv = r(3), np.abs(r(3)) + 0.5
    check_gradients(lambda x, g, b: F.batch_norm(x, rm, rv, g, b, training=False),
                    r(2, 3, 2, 2), r(3), r(3))


# ----------------------------------------------------------------------------- graph rules
def test_gradients_accumulate_across_backward_calls():
    w = cs.tensor([1.0, 2.0], requires_grad=True)
    (w * 3.0).sum().backward()
    (w * 3.0).sum().backward()
    assert w.grad.tolist() == [6.0, 6.0]


def test_backward_twice_through_the_same_graph_is_refused():
    w = cs.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    y.backward()
    with pytest.raises(GradError, match="already freed"):
        y.backward()


def test_non_scalar_backward_needs_a_gradient():
    w = cs.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradError, match="non-scalar output needs an explicit gradient"):
        (w * 2.0).backward()
    with pytest.raises(ShapeError, match=r"gradient must have the output's shape.*\(2,\)"):
        (w * 2.0).backward(np.ones(3))


def test_no_grad_records_nothing_and_detach_cuts():
    w = cs.tensor([1.0], requires_grad=True)
    with cs.no_grad():
        y = w * 2.0
    assert not y.requires_grad
    assert not (w.detach() * 2.0).requires_grad
    with cs.no_grad(), cs.enable_grad():
        assert (w * 2.0).requires_grad


def test_graph_is_freed_after_backward():
    x = cs.tensor(np.ones((2, 3)), requires_grad=True)
    hidden = x * 2.0
    ref = weakref.ref(hidden)
    loss = (hidden * hidden).sum()
    del hidden
    loss.backward()
    gc.collect()
    assert ref() is None, "an intermediate tensor outlived backward(): the graph was kept"
    assert loss._node.parents == () and loss._node.backward is None


@pytest.mark.parametrize("op", ["relu", "add", "exp", "max_pool2d", "pad", "sum"])
def test_values_the_backward_does_not_need_are_freed_before_it(op):
    # the graph keeps nodes, not tensors: an intermediate nobody holds is freed at once
    # (a view, as reshape's output, shares its input's memory and keeps it, as in PyTorch)
    x = cs.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), requires_grad=True)
    hidden = x * 2.0
    values = weakref.ref(hidden.data)
    out = {"relu": lambda h: F.relu(h), "add": lambda h: h + 1.0,
           "exp": lambda h: h.exp(), "max_pool2d": lambda h: F.max_pool2d(h, 2),
           "pad": lambda h: F.pad(h, 1, "reflect"), "sum": lambda h: h.sum()}[op](hidden)
    del hidden
    assert values() is None, f"{op} kept its input's values alive"
    (out * out).sum().backward()
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all()


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = cs.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0]


def test_shared_subexpression_gets_both_contributions():
    x = cs.tensor([3.0], requires_grad=True)
    a = x * x
    (a + a * x).sum().backward()       # d/dx (x^2 + x^3) = 2x + 3x^2
    assert x.grad.tolist() == [2 * 3 + 3 * 9]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.data())
def test_broadcast_gradient_reduces_to_each_input_shape(shape, data):
    small = tuple(data.draw(st.sampled_from([1, n])) for n in shape)
    a = cs.tensor(np.ones(shape), requires_grad=True)
    b = cs.tensor(np.ones(small), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == tuple(shape) and b.grad.shape == small
    np.testing.assert_array_equal(b.grad.numpy(), np.full(small, np.prod(shape) / np.prod(small)))
