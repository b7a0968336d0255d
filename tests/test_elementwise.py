"""The compiled element-wise and batch norm loops against their NumPy twins.

The loops run only above a size threshold (``elementwise.SMALL``, ``MIN_PLANE``); the
tests lower the thresholds (:func:`forced`) so that small generated shapes, 1s and odd
sizes included, reach them. Element-wise ops must equal their twins bit for bit (NaN,
infinities and the sign of zero included); batch norm's statistics and gradient sums run
in float64 and agree with the float64 twin to ~1e-15; its apply passes are bit for bit.
Gradients against float64 finite differences; float32 batch norm within the float32
bound of the float64 computation; results independent of the thread count.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import functional as F
from convscope.kernels import elementwise as ew
from gradcheck import check_gradients
from tolerance import U32

DTYPES = st.sampled_from([np.float32, np.float64])
DIMS = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 7), st.integers(1, 9))
SEEDS = st.integers(0, 2**31 - 1)
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, -3.0, 3.0, 1.0, -1.0)


@contextlib.contextmanager
def forced(parallel: bool = False):
    """Route every array, however small, through the compiled loops (2 threads if
    ``parallel``, else the calling thread); NumPy's warnings about the NaN and infinities
    of the test data are off."""
    saved = ew.SMALL, ew.MIN_PLANE, ew.SERIAL
    ew.SMALL, ew.MIN_PLANE, ew.SERIAL = 0, 1, (0 if parallel else 1 << 62)
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        ew.SMALL, ew.MIN_PLANE, ew.SERIAL = saved


def draw(shape, dtype, seed, specials=SPECIALS, scale=4.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    if specials and x.size:
        at = rng.integers(0, x.size, size=min(x.size, 2 * len(specials)))
        x.flat[at] = rng.choice(np.array(specials), size=at.size)
    return x


def same_bits(got, want, what=""):
    """Equal values, NaN where NaN, and the same sign of zero."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    assert np.array_equal(got, want, equal_nan=True), what
    assert np.array_equal(np.signbit(got) | np.isnan(got), np.signbit(want) | np.isnan(want)), what


# --------------------------------------------------------------------------- element-wise
@settings(max_examples=40, deadline=None)
@given(DIMS, DTYPES, SEEDS, st.booleans())
def test_add_matches_numpy(dims, dtype, seed, parallel):
    a, b = draw(dims, dtype, seed), draw(dims, dtype, seed + 1)
    bias = draw((1, dims[1], 1, 1), dtype, seed + 2)
    with forced(parallel):
        same_bits(ew.add(a, b), a + b, "same shape")
        same_bits(ew.add(a, bias), a + bias, "bias (1, C, 1, 1)")
        same_bits(ew.add(bias[0], a), bias[0] + a, "bias (C, 1, 1) first")
        same_bits(ew.add_relu(a, b), ew.add_relu_reference(a, b), "add + relu")
        s = a + b
        same_bits(ew.add_relu_reference(a, b), np.where(s <= 0, dtype(0), s))


@settings(max_examples=30, deadline=None)
@given(DIMS, DTYPES, SEEDS, st.booleans(), st.sampled_from([(0.9, 0.0, 0.1), (0.5, 0.2, 3e-3)]))
def test_sgd_momentum_loop_matches_its_twin(dims, dtype, seed, parallel, hyper):
    # the fused update against the NumPy expression it replaces: the same bits in both
    # arrays it writes (specials included), and an optimizer step takes it
    momentum, dampening, lr = hyper
    p, g, buf = draw(dims, dtype, seed), draw(dims, dtype, seed + 1), draw(dims, dtype, seed + 2)
    want_p, want_buf = p.copy(), buf.copy()
    with np.errstate(all="ignore"):
        ew.sgd_momentum_reference(want_p, g, want_buf, dtype(momentum), dtype(1 - dampening),
                                  dtype(lr))
    with forced(parallel):
        ew.sgd_momentum(p, g, buf, momentum, 1 - dampening, lr)
    same_bits(buf, want_buf, "momentum buffer")
    same_bits(p, want_p, "parameter")


def test_sgd_takes_the_fused_update_and_keeps_torch_formula():
    # a parameter large enough for the compiled loop: two steps of SGD with momentum and
    # dampening equal the formula (torch.optim.SGD's) computed with NumPy in the same dtype
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(2)]
    w = cs.nn.Parameter(w0.copy())
    opt = cs.optim.SGD([w], lr=0.05, momentum=0.9, dampening=0.1)
    want, buf = w0.copy(), None
    for g in grads:
        w.grad = cs.tensor(g)
        opt.step()
        buf = g.copy() if buf is None else buf * np.float32(0.9) + np.float32(0.9) * g
        want = want - np.float32(0.05) * buf
        same_bits(w.numpy(), want, "parameter after a step")
    same_bits(opt.state[w]["momentum_buffer"], buf, "buffer")


def test_add_falls_back_to_numpy():
    a = np.ones((2, 3, 4, 5), np.float32)
    with forced():
        assert ew.add(a, np.ones((2, 3, 4, 5))).dtype == np.float64  # mixed: NumPy's rule
        same_bits(ew.add(a[:, :, ::2], a[:, :, 1::2]), a[:, :, ::2] + a[:, :, 1::2])
        same_bits(ew.add(a, np.float32(2)), a + np.float32(2))
        same_bits(ew.add(a, np.ones((5,), np.float32)), a + 1)  # (W,): NumPy broadcasting
        same_bits(ew.add(a.astype(np.int64), a.astype(np.int64)), 2 * a.astype(np.int64))


ACTIVATIONS = {
    # name: (forward, its twin, gradient, its twin, whether the gradient reads the output)
    "relu6": (lambda x: ew.hardtanh(x, 0.0, 6.0), lambda x: ew.hardtanh_reference(x, 0.0, 6.0),
              lambda g, x: ew.hardtanh_grad(g, x, 0.0, 6.0),
              lambda g, x: ew.hardtanh_grad_reference(g, x, 0.0, 6.0), False),
    "hardtanh_odd": (lambda x: ew.hardtanh(x, -0.1, 0.3),
                     lambda x: ew.hardtanh_reference(x, -0.1, 0.3),
                     lambda g, x: ew.hardtanh_grad(g, x, -0.1, 0.3),
                     lambda g, x: ew.hardtanh_grad_reference(g, x, -0.1, 0.3), False),
    "leaky": (lambda x: ew.leaky_relu(x, 0.01), lambda x: ew.leaky_relu_reference(x, 0.01),
              lambda g, x: ew.leaky_relu_grad(g, x, 0.01),
              lambda g, x: ew.leaky_relu_grad_reference(g, x, 0.01), False),
    "leaky_neg": (lambda x: ew.leaky_relu(x, -0.3), lambda x: ew.leaky_relu_reference(x, -0.3),
                  lambda g, x: ew.leaky_relu_grad(g, x, -0.3),
                  lambda g, x: ew.leaky_relu_grad_reference(g, x, -0.3), False),
    "hardswish": (ew.hardswish, ew.hardswish_reference, ew.hardswish_grad,
                  ew.hardswish_grad_reference, False),
    "hardsigmoid": (ew.hardsigmoid, ew.hardsigmoid_reference, ew.hardsigmoid_grad,
                    ew.hardsigmoid_grad_reference, False),
    "sigmoid": (ew.sigmoid, ew.sigmoid_reference, ew.sigmoid_grad, ew.sigmoid_grad_reference,
                True),
}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(ACTIVATIONS)), DIMS, DTYPES, SEEDS, st.booleans())
def test_activations_match_twins(name, dims, dtype, seed, parallel):
    fwd, fwd_ref, grad, grad_ref, reads_output = ACTIVATIONS[name]
    x = draw(dims, dtype, seed, specials=SPECIALS + (-0.1, 0.3))
    g = draw(dims, dtype, seed + 1, specials=(np.nan, np.inf, -0.0))
    with forced(parallel):
        y = fwd(x)
        same_bits(y, fwd_ref(x), f"{name} forward")
        kept = y if reads_output else x
        same_bits(grad(g, kept), np.asarray(grad_ref(g, kept), dtype=dtype), f"{name} grad")


def test_activation_conventions_at_kinks_and_nan():
    """PyTorch's gradients at the kinks and at NaN (module docstring of functional.activation),
    on the compiled path."""
    x = np.array([-3.0, 0.0, 3.0, 6.0, np.nan, -np.inf, np.inf, 2.0], np.float32)
    g = np.ones_like(x)
    with forced():
        np.testing.assert_array_equal(ew.hardtanh_grad(g, x, 0.0, 6.0), [0, 0, 1, 0, 0, 0, 0, 1])
        np.testing.assert_array_equal(ew.hardswish_grad(g, x)[:4], [0, 0.5, 1, 1])
        assert np.isnan(ew.hardswish_grad(g, x)[4])
        np.testing.assert_array_equal(ew.hardsigmoid_grad(g, x)[[0, 1, 2, 4]],
                                      np.float32([0, 1 / 6, 0, 0]))
        np.testing.assert_array_equal(ew.leaky_relu_grad(g, x, 0.1)[[1, 4]],
                                      np.float32([0.1, 0.1]))
        y = ew.hardtanh(x, 0.0, 6.0)
        assert np.isnan(y[4]) and y[5] == 0 and y[6] == 6


def test_large_arrays_take_the_loops_and_agree():
    """No lowered thresholds: the sizes of real layers, 2 threads."""
    x = draw((2, 16, 40, 40), np.float32, 0)
    g = draw(x.shape, np.float32, 1)
    with np.errstate(all="ignore"):  # the data's NaN and infinities
        for name, (fwd, fwd_ref, grad, grad_ref, reads_output) in ACTIVATIONS.items():
            y = fwd(x)
            same_bits(y, fwd_ref(x), name)
            kept = y if reads_output else x
            same_bits(grad(g, kept), np.asarray(grad_ref(g, kept), dtype=x.dtype), name)
        same_bits(ew.add(x, g), x + g)
        same_bits(ew.add_relu(x, g), ew.add_relu_reference(x, g))


@pytest.mark.parametrize("name", ["hardswish", "hardsigmoid", "sigmoid", "leaky_relu", "relu6"])
def test_activation_gradients_finite_differences(name):
    rng = np.random.default_rng(3)
    x = rng.uniform(-5, 7, (2, 3, 4, 5))
    kinks = np.array([-3.0, 0.0, 3.0, 6.0])
    x[np.abs(x[..., None] - kinks).min(axis=-1) < 1e-3] += 0.01  # no finite step across a kink
    fn = {"hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "sigmoid": F.sigmoid,
          "leaky_relu": lambda t: F.leaky_relu(t, 0.2), "relu6": F.relu6}[name]
    with forced():
        check_gradients(fn, x)


# --------------------------------------------------------------------------- batch norm
def stats_close(got, want, x):
    mean, var = got
    mean_ref, var_ref = want
    scale = np.abs(x.astype(np.float64)).max(axis=(0, 2, 3)) if x.size else 1
    np.testing.assert_allclose(mean, mean_ref, rtol=0, atol=1e-13 * np.max(scale), equal_nan=True)
    np.testing.assert_allclose(var, var_ref, rtol=1e-12, atol=1e-13 * np.max(scale) ** 2,
                               equal_nan=True)


@settings(max_examples=50, deadline=None)
@given(DIMS, DTYPES, SEEDS, st.booleans(), st.sampled_from([0.0, 3.0, -1e4]))
def test_batch_norm_kernels_match_twins(dims, dtype, seed, parallel, offset):
    x = draw(dims, dtype, seed, specials=()) + dtype(offset)
    g = draw(dims, dtype, seed + 1, specials=())
    c = dims[1]
    rng = np.random.default_rng(seed)
    vec = [rng.standard_normal(c).astype(dtype) for _ in range(4)]
    mean64 = rng.standard_normal(c) + offset
    with forced(parallel):
        stats_close(ew.batch_norm_stats(x), ew.batch_norm_stats_reference(x), x)
        same_bits(ew.batch_norm_normalize(x, *vec[:3]), ew.batch_norm_normalize_reference(
            x, *vec[:3]))
        same_bits(ew.scale_channels(g, vec[0]), ew.scale_channels_reference(g, vec[0]))
        same_bits(ew.batch_norm_grad_input(g, x, *vec),
                  ew.batch_norm_grad_input_reference(g, x, *vec))
        sums = ew.batch_norm_grad_sums(g, x, mean64)
        want = ew.batch_norm_grad_sums_reference(g, x, mean64)
    size = np.abs(g.astype(np.float64)) * (np.abs(x.astype(np.float64)) + np.abs(offset) + 3)
    for got, ref in zip(sums, want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * size.sum() + 1e-300)


def test_batch_norm_stats_need_no_shift_luck():
    """A plane's shift is its first value: an outlier there, or a mean far from zero, must
    not cost the variance its precision (float32 and float64 data)."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((4, 3, 9, 11)) + 1e5).astype(dtype)
        x[:, :, 0, 0] = dtype(-1e7)  # every plane's shift far from its mean
        x[1, 2, 0, 0] = dtype(3e6)
        with forced():
            mean, var = ew.batch_norm_stats(x)
        mean_ref, var_ref = ew.batch_norm_stats_reference(x)
        np.testing.assert_allclose(mean, mean_ref, rtol=0, atol=1e-15 * 1e7)  # of max |x|
        np.testing.assert_allclose(var, var_ref, rtol=1e-9 if dtype == np.float32 else 1e-12)


def test_batch_norm_nonfinite_channels_as_pytorch():
    x = draw((2, 4, 5, 6), np.float32, 2, specials=())
    x[1, 1, 2, 3] = np.inf
    x[0, 2, 0, 0] = np.nan
    x[0, 3, 1, 1], x[1, 3, 4, 5] = np.inf, -np.inf
    with forced():
        mean, var = ew.batch_norm_stats(x)
    assert np.isfinite(mean[0]) and np.isfinite(var[0])
    assert mean[1] == np.inf and np.isnan(var[1])
    assert np.isnan(mean[2]) and np.isnan(var[2]) and np.isnan(mean[3])
    with forced():
        y = F.batch_norm(cs.tensor(x), None, None, training=True).numpy()
    assert np.isfinite(y[:, 0]).all() and np.isnan(y[:, 1:]).all()


def test_threads_do_not_change_any_bit():
    """Sums per plane, planes added in image order: 1 thread and 2 threads agree exactly."""
    x = draw((3, 5, 17, 23), np.float32, 7, specials=())
    g = draw(x.shape, np.float32, 8, specials=())
    mean = np.linspace(-1, 1, 5)
    results = []
    for parallel in (False, True, True):
        with forced(parallel):
            results.append((*ew.batch_norm_stats(x), *ew.batch_norm_grad_sums(g, x, mean)))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert np.array_equal(a, b)


def _bn_fn(training, affine=True):
    def fn(x, w, b):
        rm, rv = np.linspace(-0.5, 0.5, x.shape[1]), np.linspace(0.5, 2.0, x.shape[1])
        return F.batch_norm(x, rm, rv, w if affine else None, b if affine else None, training)

    return fn


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("parallel", [False, True])
def test_batch_norm_gradients_finite_differences(training, parallel):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 3, 4)) * 2 + 1
    w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    with forced(parallel):
        check_gradients(_bn_fn(training), x, w, b)
        check_gradients(lambda t: _bn_fn(training, affine=False)(t, None, None), x)


def test_batch_norm_float32_within_bound_of_float64():
    rng = np.random.default_rng(12)
    x64 = rng.standard_normal((4, 6, 9, 13)) * 3 + 20
    g64 = rng.standard_normal(x64.shape)
    w64, b64 = rng.uniform(-2, 2, 6), rng.standard_normal(6)
    x32, g32 = x64.astype(np.float32), g64.astype(np.float32)
    w32, b32 = w64.astype(np.float32), b64.astype(np.float32)
    x64, g64, w64, b64 = (a.astype(np.float64) for a in (x32, g32, w32, b32))  # same inputs
    out = {}
    for tag, arrays in (("32", (x32, w32, b32, g32)), ("64", (x64, w64, b64, g64))):
        leaves = [cs.tensor(a, requires_grad=True) for a in arrays[:3]]
        with forced(parallel=True):
            y = F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], training=True)
            y.backward(arrays[3])
        out[tag] = (y.numpy(), *(t.grad.numpy() for t in leaves))
    mean, var = ew.batch_norm_stats_reference(x64)
    invstd = 1 / np.sqrt(var + 1e-5)
    col = lambda v: v.reshape(1, -1, 1, 1)  # noqa: E731
    scale = np.abs(w64 * invstd)
    bound_y = 8 * U32 * ((np.abs(x64) + col(np.abs(mean))) * col(scale) + col(np.abs(b64)))
    assert (np.abs(out["32"][0] - out["64"][0]) <= bound_y).all()
    m = x64.size // 6
    k = np.abs((g64 * (x64 - col(mean))).sum(axis=(0, 2, 3))) * invstd**2 / m
    gmean = np.abs(g64.sum(axis=(0, 2, 3))) / m
    bound_gx = 8 * U32 * (np.abs(g64) + col(gmean) + (np.abs(x64) + col(np.abs(mean))) * col(k))
    assert (np.abs(out["32"][1] - out["64"][1]) <= bound_gx * col(scale)).all()
    xhat_abs = np.abs(x64 - col(mean)) * col(invstd)
    bound_w = 8 * U32 * (np.abs(g64) * xhat_abs).sum(axis=(0, 2, 3))
    assert (np.abs(out["32"][2] - out["64"][2]) <= bound_w).all()
    assert (np.abs(out["32"][3] - out["64"][3]) <= 8 * U32 * np.abs(g64).sum(axis=(0, 2, 3))).all()


def test_batch_norm_is_one_node_with_its_affine_inside():
    x = cs.tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)), requires_grad=True)
    bn = cs.nn.BatchNorm2d(3).double()
    y = bn(x)
    assert y._node.op == "batch_norm" and len(y._node.parents) == 3
    y.sum().backward()
    assert bn.weight.grad is not None and bn.bias.grad is not None and x.grad is not None
    bare = F.batch_norm(x, None, None, training=True)
    assert bare._node.op == "batch_norm" and len(bare._node.parents) == 1


def test_running_statistics_update_as_pytorch_formula():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 2, 5, 5)) * 2 + 1).astype(np.float32)
    rm, rv = np.full(2, 0.5, np.float32), np.full(2, 2.0, np.float32)
    with forced(parallel=True):
        F.batch_norm(cs.tensor(x), rm, rv, training=True, momentum=0.25)
    mean, var = ew.batch_norm_stats_reference(x)
    n = x.size // 2
    np.testing.assert_allclose(rm, 0.75 * 0.5 + 0.25 * mean, rtol=1e-6)
    np.testing.assert_allclose(rv, 0.75 * 2.0 + 0.25 * var * n / (n - 1), rtol=1e-6)
    assert rm.dtype == np.float32 and rv.dtype == np.float32


def test_tensor_add_uses_the_kernel_and_keeps_gradients():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((2, 8, 256, 256)).astype(np.float32)  # SERIAL: 2 threads
    b = rng.standard_normal(a.shape).astype(np.float32)
    bias = rng.standard_normal((1, 8, 1, 1)).astype(np.float32)
    ta, tb = cs.tensor(a, requires_grad=True), cs.tensor(bias, requires_grad=True)
    same_bits((ta + cs.tensor(b)).numpy(), a + b)
    y = ta + tb
    same_bits(y.numpy(), a + bias)
    y.backward(np.ones_like(a))
    assert tb.grad.shape == (1, 8, 1, 1)
    np.testing.assert_allclose(tb.grad.numpy().ravel(), np.full(8, 2 * 256 * 256))


def test_compiled_bodies_as_plain_python():
    """The loop bodies under ``NUMBA_DISABLE_JIT=1`` (coverage of the compiled code)."""
    script = textwrap.dedent(
        """
        import numpy as np
        from numba import config
        assert config.DISABLE_JIT
        from convscope.kernels import elementwise as ew
        ew.SMALL, ew.MIN_PLANE, ew.SERIAL = 0, 1, 0
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            x = (rng.standard_normal((2, 3, 2, 5)) * 4).astype(dtype)
            x.flat[[0, 7, 9]] = [np.nan, -3.0, 6.0]
            g = rng.standard_normal(x.shape).astype(dtype)
            v = [rng.standard_normal(3).astype(dtype) for _ in range(4)]
            pairs = [
                (ew.add(x, g), x + g),
                (ew.add(x, v[0].reshape(1, 3, 1, 1)), x + v[0][:, None, None]),
                (ew.add_relu(x, g), ew.add_relu_reference(x, g)),
                (ew.hardtanh(x, 0.0, 6.0), ew.hardtanh_reference(x, 0.0, 6.0)),
                (ew.hardtanh_grad(g, x, 0.0, 6.0), ew.hardtanh_grad_reference(g, x, 0.0, 6.0)),
                (ew.leaky_relu(x, 0.1), ew.leaky_relu_reference(x, 0.1)),
                (ew.leaky_relu_grad(g, x, 0.1), ew.leaky_relu_grad_reference(g, x, 0.1)),
                (ew.hardswish(x), ew.hardswish_reference(x)),
                (ew.hardswish_grad(g, x), ew.hardswish_grad_reference(g, x)),
                (ew.hardsigmoid(x), ew.hardsigmoid_reference(x)),
                (ew.hardsigmoid_grad(g, x), ew.hardsigmoid_grad_reference(g, x)),
                (ew.sigmoid(x), ew.sigmoid_reference(x)),
                (ew.sigmoid_grad(g, x), ew.sigmoid_grad_reference(g, x)),
                (ew.batch_norm_normalize(x, *v[:3]), ew.batch_norm_normalize_reference(x, *v[:3])),
                (ew.scale_channels(x, v[0]), ew.scale_channels_reference(x, v[0])),
                (ew.batch_norm_grad_input(g, x, *v), ew.batch_norm_grad_input_reference(g, x, *v)),
            ]
            for got, want in pairs:
                assert np.array_equal(got, want, equal_nan=True)
            x = np.nan_to_num(x)
            for got, want in zip((*ew.batch_norm_stats(x), *ew.batch_norm_grad_sums(g, x, v[0])),
                                 (*ew.batch_norm_stats_reference(x),
                                  *ew.batch_norm_grad_sums_reference(g, x, v[0]))):
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(root / "src"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


def test_import_convscope_does_not_load_numba():
    out = subprocess.run([sys.executable, "-c", "import sys, convscope; "
                          "import convscope.kernels.elementwise; print('numba' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
