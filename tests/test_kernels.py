"""Fast kernels against the reference kernels, finite differences and metamorphic identities.

float64 fast vs float64 reference must agree to the float64 error bound; float32 fast vs
float64 reference to the float32 bound (tests/tolerance.py). Gradients are checked against
central finite differences of the reference forward (float64, tiny shapes) and through the
adjoint identity ``<conv(x), gy> == <x, grad_input(gy)> == <w, grad_weight(gy, x)>``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import strategies as st

import convscope.kernels as kernels
from conv_cases import (
    CONV_CASES,
    POOL_CASES,
    conv_configs,
    generated,
    pool_configs,
    seeds,
)
from convscope.kernels import fast
from convscope.kernels import reference as ref
from tolerance import U32, U64, assert_within_bound, gamma

dtypes = st.sampled_from([np.float32, np.float64])


def _abs64(v):
    return None if v is None else np.abs(v.astype(np.float64))


def _fd_grad(loss, v, eps=1e-6):
    """Central finite differences of ``loss()`` with respect to every element of ``v``."""
    g = np.zeros_like(v)
    for i in np.ndindex(v.shape):
        old = v[i]
        v[i] = old + eps
        hi = loss()
        v[i] = old - eps
        lo = loss()
        v[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g


def test_generated_fails_when_too_few_examples_ran():
    with pytest.raises(AssertionError, match="ran 5 examples, want 6"):
        generated(st.integers(), examples=5, minimum=6)(lambda _: None)()


def test_package_exports_fast_kernels():
    assert kernels.conv2d is fast.conv2d and kernels.max_pool2d is fast.max_pool2d
    assert set(fast.__all__) == set(ref.__all__)


# --------------------------------------------------------------------------- conv


def _conv_all(impl, case, x, w, b, gy):
    """Forward, grad-input and grad-weight of one case with one implementation."""
    y = impl.conv2d(x, w, b, *case.geometry)
    gx = impl.conv2d_grad_input(gy, w, (case.h, case.w), *case.geometry)
    gw = impl.conv2d_grad_weight(gy, x, (case.kh, case.kw), *case.geometry)
    return y, gx, gw


def _conv_lengths(case):
    """Reduction lengths K: forward (+1 for the bias), grad-input, grad-weight."""
    oh, ow = case.out_hw
    return (case.k_forward + 1, case.o // case.groups * case.kh * case.kw, max(1, case.n * oh * ow))


def check_conv_against_reference(case, seed, dtype):
    x, w, b, gy = case.arrays(np.random.default_rng(seed), dtype)
    got = _conv_all(fast, case, x, w, b, gy)
    want = _conv_all(ref, case, *(v.astype(np.float64) for v in (x, w, b, gy)))
    magnitude = _conv_all(fast, case, *(_abs64(v) for v in (x, w, b, gy)))
    u, factor = (U64, 2.0) if dtype == np.float64 else (U32, 1.0)
    expected_shapes = ((case.n, case.o, *case.out_hw), case.x_shape, case.w_shape)
    names = ("y", "grad_input", "grad_weight")
    for name, g, e, m, k, shape in zip(
        names, got, want, magnitude, _conv_lengths(case), expected_shapes, strict=True
    ):
        assert g.dtype == dtype and g.shape == shape, (name, g.dtype, g.shape)
        assert_within_bound(g, e, m, k, u, factor, what=f"{case} {name} {np.dtype(dtype)}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_fast_matches_reference(case, dtype):
    check_conv_against_reference(case, 0, dtype)


@generated(conv_configs(), seeds, dtypes, examples=80)
def test_conv_fast_matches_reference_generated(case, seed, dtype):
    check_conv_against_reference(case, seed, dtype)


def check_conv_grads_by_finite_differences(case, seed):
    x, w, b, gy = case.arrays(np.random.default_rng(seed))

    def loss():
        return float(np.sum(ref.conv2d(x, w, b, *case.geometry) * gy))

    gx_fd, gw_fd = _fd_grad(loss, x), _fd_grad(loss, w)
    for impl in (fast, ref):
        _, gx, gw = _conv_all(impl, case, x, w, b, gy)
        np.testing.assert_allclose(gx, gx_fd, rtol=1e-6, atol=1e-7, err_msg=f"{impl.__name__}")
        np.testing.assert_allclose(gw, gw_fd, rtol=1e-6, atol=1e-7, err_msg=f"{impl.__name__}")


def _fd_cost(case):
    oh, ow = case.out_hw
    return (math.prod(case.x_shape) + math.prod(case.w_shape)) * case.n * case.o * oh * ow


@pytest.mark.parametrize("case", [c for c in CONV_CASES if 0 < _fd_cost(c) <= 60_000], ids=str)
def test_conv_grads_match_finite_differences(case):
    check_conv_grads_by_finite_differences(case, 1)


@generated(conv_configs(min_batch=1, max_batch=1, max_out=2), seeds, examples=15)
def test_conv_grads_match_finite_differences_generated(case, seed):
    check_conv_grads_by_finite_differences(case, seed)


def check_conv_adjoint(case, seed):
    x, w, _, gy = case.arrays(np.random.default_rng(seed))
    hw, khw = (case.h, case.w), (case.kh, case.kw)
    inner = np.sum(fast.conv2d(x, w, None, *case.geometry) * gy)
    via_x = np.sum(x * fast.conv2d_grad_input(gy, w, hw, *case.geometry))
    via_w = np.sum(w * fast.conv2d_grad_weight(gy, x, khw, *case.geometry))
    scale = np.sum(fast.conv2d(_abs64(x), _abs64(w), None, *case.geometry) * np.abs(gy))
    allowed = 4 * gamma(max(1, gy.size) * case.k_forward, U64) * scale
    assert abs(inner - via_x) <= allowed and abs(inner - via_w) <= allowed, (inner, via_x, via_w)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_adjoint_identities(case):
    check_conv_adjoint(case, 2)


@generated(conv_configs(max_out=12), seeds, examples=40)
def test_conv_adjoint_identities_generated(case, seed):
    check_conv_adjoint(case, seed)


@pytest.mark.parametrize("impl", [fast, ref], ids=["fast", "reference"])
@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize(("k", "d"), [(1, 1), (3, 1), (3, 2), (5, 3)])
def test_delta_kernel_returns_input(impl, k, d, depthwise):
    c = 3
    x = np.random.default_rng(3).standard_normal((2, c, 7, 6))
    w = np.zeros((c, 1 if depthwise else c, k, k))
    for ch in range(c):
        w[ch, 0 if depthwise else ch, k // 2, k // 2] = 1.0
    p = d * (k // 2)
    geometry = ((1, 1), ((p, p), (p, p)), (d, d), c if depthwise else 1)
    np.testing.assert_array_equal(impl.conv2d(x, w, None, *geometry), x)
    np.testing.assert_array_equal(impl.conv2d_grad_input(x, w, (7, 6), *geometry), x)


def check_grouped_is_concatenation(case, seed, impl):
    x, w, b, gy = case.arrays(np.random.default_rng(seed))
    g, cg, og = case.groups, case.c // case.groups, case.o // case.groups
    stride, padding, dilation, _ = case.geometry
    got = _conv_all(impl, case, x, w, b, gy)
    parts = []
    for i in range(g):
        xi, wi = x[:, i * cg : (i + 1) * cg], w[i * og : (i + 1) * og]
        bi, gyi = b[i * og : (i + 1) * og], gy[:, i * og : (i + 1) * og]
        parts.append(
            (
                impl.conv2d(xi, wi, bi, stride, padding, dilation, 1),
                impl.conv2d_grad_input(gyi, wi, (case.h, case.w), stride, padding, dilation, 1),
                impl.conv2d_grad_weight(gyi, xi, (case.kh, case.kw), stride, padding, dilation, 1),
            )
        )
    magnitude = _conv_all(fast, case, *(_abs64(v) for v in (x, w, b, gy)))
    for j, axis in enumerate((1, 1, 0)):
        joined = np.concatenate([p[j] for p in parts], axis=axis)
        assert_within_bound(got[j], joined, magnitude[j], _conv_lengths(case)[j], U64, 2.0)


@pytest.mark.parametrize("impl", [fast, ref], ids=["fast", "reference"])
@pytest.mark.parametrize("case", [c for c in CONV_CASES if c.groups > 1], ids=str)
def test_grouped_conv_is_concatenation_of_per_group_convs(case, impl):
    check_grouped_is_concatenation(case, 4, impl)


@generated(conv_configs(min_groups=2), seeds, examples=20)
def test_grouped_conv_is_concatenation_generated(case, seed):
    check_grouped_is_concatenation(case, seed, fast)


@generated(conv_configs(), seeds, examples=20)
def test_conv_is_linear_in_x_and_in_w(case, seed):
    rng = np.random.default_rng(seed)
    (x1, w1, _, _), (x2, w2, _, _) = case.arrays(rng), case.arrays(rng)
    a, c = rng.uniform(-2, 2, 2)
    geo, k = case.geometry, case.k_forward + 2
    conv = fast.conv2d
    mag = _abs64(a * x1) + _abs64(c * x2)
    lhs, rhs = (
        conv(a * x1 + c * x2, w1, None, *geo),
        a * conv(x1, w1, None, *geo) + c * conv(x2, w1, None, *geo),
    )
    assert_within_bound(lhs, rhs, conv(mag, _abs64(w1), None, *geo), k, U64, 4.0, what="in x")
    mag = _abs64(a * w1) + _abs64(c * w2)
    lhs, rhs = (
        conv(x1, a * w1 + c * w2, None, *geo),
        a * conv(x1, w1, None, *geo) + c * conv(x1, w2, None, *geo),
    )
    assert_within_bound(lhs, rhs, conv(_abs64(x1), mag, None, *geo), k, U64, 4.0, what="in w")


def test_conv_nan_reaches_exactly_the_outputs_that_see_it():
    case = CONV_CASES[2]  # stride 2, dilation 2, padding 1
    x, w, b, _ = case.arrays(np.random.default_rng(5))
    x[1, 0, 3, 3] = np.nan  # padded (4, 4): even, so under some windows
    y_fast, y_ref = fast.conv2d(x, w, b, *case.geometry), ref.conv2d(x, w, b, *case.geometry)
    assert np.isnan(y_ref).any() and not np.isnan(y_ref).all()
    np.testing.assert_array_equal(np.isnan(y_fast), np.isnan(y_ref))


# --------------------------------------------------------------------------- pooling


def _pool_input(case, rng, dtype, ties):
    """Integer values (many ties) or distinct, well separated values (for finite differences)."""
    if ties:
        return rng.integers(-2, 3, case.x_shape).astype(dtype)
    x = rng.permutation(math.prod(case.x_shape)).reshape(case.x_shape) * 0.01
    return (x - x.mean()).astype(dtype) if x.size else x.astype(dtype)


def _max_args(case):
    return (case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode)


def _avg_args(case, count_include_pad):
    return (case.kernel, case.stride, case.padding, case.ceil_mode, count_include_pad)


def check_max_pool(case, seed, dtype):
    rng = np.random.default_rng(seed)
    x = _pool_input(case, rng, dtype, ties=True)
    y, idx = fast.max_pool2d(x, *_max_args(case))
    y0, idx0 = ref.max_pool2d(x.astype(np.float64), *_max_args(case))
    assert y.shape == idx.shape == (case.n, case.c, *case.out_hw())
    assert y.dtype == dtype and idx.dtype == np.int32  # planes under 2**31 cells
    np.testing.assert_array_equal(y, y0)  # a maximum is exact
    np.testing.assert_array_equal(idx, idx0)  # first maximum wins on ties
    gy = rng.uniform(-1, 1, y.shape).astype(dtype)
    hw = (case.h, case.w)
    gx = fast.max_pool2d_grad(gy, idx, hw)
    assert gx.dtype == dtype and gx.shape == x.shape
    mag = fast.max_pool2d_grad(_abs64(gy), idx, hw)
    k = math.prod(case.kernel)  # a cell can win at most this many windows
    assert_within_bound(
        gx,
        ref.max_pool2d_grad(gy.astype(np.float64), idx0, hw),
        mag,
        k,
        U32 if dtype == np.float32 else U64,
        2.0,
        what="max_pool2d_grad",
    )
    yw = np.where(idx >= 0, y, 0)  # a window with no input cell (-inf, index -1) adds nothing
    assert_within_bound(
        np.sum(x * gx),
        np.sum(yw * gy),
        np.sum(np.abs(yw * gy)),
        max(1, y.size),
        U32 if dtype == np.float32 else U64,
        4.0,
        what="adjoint",
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_fast_matches_reference(case, dtype):
    check_max_pool(case, 0, dtype)


@generated(pool_configs(), seeds, dtypes, examples=80)
def test_max_pool_fast_matches_reference_generated(case, seed, dtype):
    check_max_pool(case, seed, dtype)


def check_avg_pool(case, seed, dtype, count_include_pad):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, case.x_shape).astype(dtype)
    args = _avg_args(case, count_include_pad)
    hw, k, u = (case.h, case.w), math.prod(case.kernel) + 1, U32 if dtype == np.float32 else U64
    y = fast.avg_pool2d(x, *args)
    assert y.dtype == dtype and y.shape == (case.n, case.c, *case.out_hw((1, 1)))
    mag = fast.avg_pool2d(_abs64(x), *args)
    assert_within_bound(y, ref.avg_pool2d(x.astype(np.float64), *args), mag, k, u, 2.0)
    gy = rng.uniform(-1, 1, y.shape).astype(dtype)
    gx = fast.avg_pool2d_grad(gy, hw, *args)
    assert gx.dtype == dtype and gx.shape == x.shape
    mag = fast.avg_pool2d_grad(_abs64(gy), hw, *args)
    assert_within_bound(gx, ref.avg_pool2d_grad(gy.astype(np.float64), hw, *args), mag, k, u, 2.0)
    total = max(1, y.size) * k
    assert_within_bound(np.sum(x * gx), np.sum(y * gy), np.sum(_abs64(x) * mag), total, u, 4.0)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool_fast_matches_reference(case, dtype, count_include_pad):
    check_avg_pool(case, 0, dtype, count_include_pad)


@generated(pool_configs(), seeds, dtypes, st.booleans(), examples=80)
def test_avg_pool_fast_matches_reference_generated(case, seed, dtype, count_include_pad):
    check_avg_pool(case, seed, dtype, count_include_pad)


@pytest.mark.parametrize("case", [c for c in POOL_CASES if c.n > 0], ids=str)
def test_pool_grads_match_finite_differences(case):
    rng = np.random.default_rng(6)
    x = _pool_input(case, rng, np.float64, ties=False)  # no ties: max is differentiable
    gy = rng.uniform(-1, 1, (case.n, case.c, *case.out_hw()))
    loss = lambda: float(np.sum(ref.max_pool2d(x, *_max_args(case))[0] * gy))  # noqa: E731
    _, idx = fast.max_pool2d(x, *_max_args(case))
    gx = fast.max_pool2d_grad(gy, idx, (case.h, case.w))
    np.testing.assert_allclose(gx, _fd_grad(loss, x), rtol=1e-6, atol=1e-7)
    gy = rng.uniform(-1, 1, (case.n, case.c, *case.out_hw((1, 1))))
    for cip in (True, False):
        args = _avg_args(case, cip)
        loss = lambda args=args: float(np.sum(ref.avg_pool2d(x, *args) * gy))  # noqa: E731
        gx = fast.avg_pool2d_grad(gy, (case.h, case.w), *args)
        np.testing.assert_allclose(gx, _fd_grad(loss, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", [fast, ref], ids=["fast", "reference"])
def test_max_pool_special_values(impl):
    # Constant input: every window ties, the first real cell (row-major) wins.
    y, idx = impl.max_pool2d(np.zeros((1, 1, 4, 4)), (2, 2), (1, 1), (1, 1), (1, 1), False)
    first_real = [[max(r - 1, 0) * 4 + max(c - 1, 0) for c in range(5)] for r in range(5)]
    np.testing.assert_array_equal(idx[0, 0], first_real)
    # All -inf: padding never wins, the first real cell does.
    y, idx = impl.max_pool2d(np.full((1, 1, 3, 3), -np.inf), (3, 3), (2, 2), (1, 1), (1, 1), False)
    np.testing.assert_array_equal(y, -np.inf)
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [3, 4]])
    # NaN wins over everything, and the last NaN of the window is the one recorded.
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    y, idx = impl.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 4
    np.testing.assert_array_equal(y[0, 0, 1], [13, 15])
    # Dilation steps over a 1-pixel input (cells -1 and 1): no winner, no gradient.
    y, idx = impl.max_pool2d(np.ones((1, 1, 1, 1)), (2, 1), (1, 1), (1, 0), (2, 1), False)
    assert y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == -1
    np.testing.assert_array_equal(impl.max_pool2d_grad(np.ones((1, 1, 1, 1)), idx, (1, 1)), 0)


@pytest.mark.parametrize("impl", [fast, ref], ids=["fast", "reference"])
def test_avg_pool_divisors_by_hand(impl):
    ones = np.ones((1, 1, 3, 3))
    # 2x2 windows, stride 2, padding 1: each corner window holds 1 real cell of 4.
    y = impl.avg_pool2d(ones, (2, 2), (2, 2), (1, 1), False, True)
    np.testing.assert_array_equal(y[0, 0], [[0.25, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(impl.avg_pool2d(ones, (2, 2), (2, 2), (1, 1), False, False), 1)
    # Ceil mode: the overhanging last window never counts its overhang.
    y = impl.avg_pool2d(np.ones((1, 1, 5, 5)), (2, 2), (2, 2), (0, 0), True, True)
    assert y.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(y, 1)


# --------------------------------------------------------------------------- relu, padding


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_values_and_gradient(dtype):
    x = np.array([-2, -0.0, 0.0, 1e-30, 3, np.nan, -np.inf, np.inf], dtype=dtype)
    gy = np.arange(1, 9, dtype=dtype)
    for impl in (fast, ref):
        y, gx = impl.relu(x), impl.relu_grad(gy, x)
        assert y.dtype == gx.dtype == dtype
        np.testing.assert_array_equal(y, np.array([0, 0, 0, 1e-30, 3, np.nan, 0, np.inf], dtype))
        np.testing.assert_array_equal(gx, [0, 0, 0, 4, 5, 6, 0, 8])  # 0 at x == 0, as PyTorch
    x = np.random.default_rng(7).standard_normal((2, 3, 4, 5)).astype(dtype)
    np.testing.assert_array_equal(fast.relu(x), ref.relu(x))
    np.testing.assert_array_equal(fast.relu_grad(x, x), ref.relu_grad(x, x))


@pytest.mark.parametrize("impl", [fast, ref], ids=["fast", "reference"])
def test_pad2d_by_hand(impl):
    x = np.arange(3.0).reshape(1, 1, 1, 3)
    want = {
        "zeros": [0, 0, 0, 1, 2, 0, 0],
        "reflect": [2, 1, 0, 1, 2, 1, 0],
        "replicate": [0, 0, 0, 1, 2, 2, 2],
        "circular": [1, 2, 0, 1, 2, 0, 1],
    }
    for mode, row in want.items():
        np.testing.assert_array_equal(impl.pad2d(x, ((0, 0), (2, 2)), mode)[0, 0, 0], row)


@st.composite
def pad_configs(draw):
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    hw = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    # PyTorch's limits: reflect needs pad < size, circular pad <= size.
    limit = [{"reflect": n - 1, "circular": n}.get(mode, 4) for n in hw]
    pads = [draw(st.integers(0, limit[i // 2])) for i in range(4)]
    shape = (draw(st.integers(0, 2)), draw(st.integers(1, 2)), *hw)
    return mode, shape, ((pads[0], pads[1]), (pads[2], pads[3]))


@generated(pad_configs(), seeds, dtypes, examples=60)
def test_pad2d_matches_reference_and_grad_is_adjoint(config, seed, dtype):
    mode, shape, padding = config
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, shape).astype(dtype)
    xp = fast.pad2d(x, padding, mode)
    assert xp.dtype == dtype
    np.testing.assert_array_equal(xp, ref.pad2d(x, padding, mode))
    g = rng.uniform(-1, 1, xp.shape).astype(dtype)
    gx = fast.pad2d_grad(g, padding, mode)
    assert gx.dtype == dtype and gx.shape == x.shape
    u = U32 if dtype == np.float32 else U64
    k = max(1, g.size)
    mag = ref.pad2d_grad(np.abs(g.astype(np.float64)), padding, mode)
    assert_within_bound(gx, ref.pad2d_grad(g.astype(np.float64), padding, mode), mag, k, u, 2.0)
    assert_within_bound(np.sum(x * gx), np.sum(xp * g), np.sum(np.abs(xp * g)), k, u, 4.0)
