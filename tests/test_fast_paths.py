"""Every algorithm of the fast kernels, each forced explicitly, against the reference.

:func:`convscope.kernels.fast.choose` picks one algorithm per shape, so the generic kernel
tests only see the paths today's heuristic happens to take. Here each path (``algo=``) is
run on shapes that reach its edge handling: widths that are not a multiple of the vector
block, channel counts that leave 1, 2 or 3 channels after the blocks of 4, stride,
dilation, groups, asymmetric padding, padding wider than the kernel, N = 0 and N = 1.
One test runs the compiled loops as plain Python (``NUMBA_DISABLE_JIT=1``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from conv_cases import ConvCase, conv_configs, generated, seeds
from convscope.kernels import fast, loops
from convscope.kernels import reference as ref
from tolerance import U32, U64, assert_within_bound


def _pad(top, bottom, left, right):
    return ((top, bottom), (left, right))


# Stride-1 cases (both algorithms); channel counts chosen for the 4-channel blocking.
STRIDE_1 = [
    ConvCase("og1_w5", 2, 1, 6, 5, 1, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("og2_w17", 1, 3, 5, 17, 2, 3, 3),
    ConvCase("og3_padded_to_4", 2, 2, 7, 9, 3, 2, 3, padding=_pad(0, 1, 2, 0)),
    ConvCase("og5_block_and_rest", 1, 3, 6, 33, 5, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("og8_two_blocks_w70", 2, 4, 4, 70, 8, 1, 5, padding=_pad(0, 0, 2, 2)),
    ConvCase("og7_dilated", 1, 3, 9, 11, 7, 3, 3, padding=_pad(2, 2, 2, 2), dilation=(2, 2)),
    ConvCase("groups_3_og2", 2, 6, 5, 6, 6, 3, 2, groups=3),
    ConvCase("depthwise_5", 2, 5, 7, 19, 5, 3, 3, padding=_pad(1, 1, 1, 1), groups=5),
    ConvCase("multiplier_og6", 1, 2, 5, 5, 12, 3, 3, padding=_pad(1, 0, 0, 1), groups=2),
    ConvCase("asymmetric_wide_pad", 1, 2, 3, 4, 4, 2, 2, padding=_pad(3, 0, 1, 3)),
    ConvCase("padding_beyond_kernel", 2, 1, 3, 3, 5, 2, 2, padding=_pad(3, 2, 4, 3)),
    ConvCase("kernel_is_input", 1, 3, 4, 5, 4, 4, 5),
    ConvCase("one_by_one", 3, 5, 3, 7, 6, 1, 1),
    ConvCase("batch_0", 0, 3, 6, 6, 5, 3, 3, padding=_pad(1, 1, 1, 1)),
    # depthwise loops: rows of 4 vectors + a tail, one overlapping vector, narrower than a
    # vector (value by value), H or W = 1, the kernel as large as the input, asymmetric
    # padding with dilation, 3 x 3 weight-gradient blocks past the kernel, padding wider
    # than the kernel, an empty batch
    ConvCase("dw_w70", 2, 3, 5, 70, 3, 3, 3, padding=_pad(1, 1, 1, 1), groups=3),
    ConvCase("dw_w20", 1, 2, 4, 20, 2, 3, 3, padding=_pad(1, 1, 1, 1), groups=2),
    ConvCase("dw_w7", 2, 2, 6, 7, 2, 3, 3, padding=_pad(1, 1, 1, 1), groups=2),
    ConvCase("dw_h1", 2, 3, 1, 33, 3, 1, 3, padding=_pad(0, 0, 1, 1), groups=3),
    ConvCase("dw_w1", 1, 2, 9, 1, 2, 3, 1, padding=_pad(1, 1, 0, 0), groups=2),
    ConvCase("dw_kernel_is_input", 2, 2, 4, 5, 2, 4, 5, groups=2),
    ConvCase("dw_asym_dilated", 2, 2, 9, 37, 2, 3, 2, padding=_pad(2, 0, 3, 1),
             dilation=(2, 3), groups=2),
    ConvCase("dw_5x5_w19", 1, 3, 8, 19, 3, 5, 5, padding=_pad(2, 2, 2, 2), groups=3),
    ConvCase("dw_pad_beyond_kernel", 2, 2, 3, 4, 2, 2, 2, padding=_pad(3, 2, 4, 3), groups=2),
    ConvCase("dw_batch_0", 0, 3, 6, 17, 3, 3, 3, padding=_pad(1, 1, 1, 1), groups=3),
    # the 3 x 3 loop on aligned rows: an odd number of output rows, a column tail after
    # the blocks of 2 vectors (and one narrower than a vector), no padding
    ConvCase("dw3_odd_rows_tail", 2, 3, 7, 45, 3, 3, 3, padding=_pad(1, 1, 1, 1), groups=3),
    ConvCase("dw3_tail_narrow", 1, 2, 4, 73, 2, 3, 3, padding=_pad(0, 1, 2, 0), groups=2),
    ConvCase("dw3_no_pad", 2, 2, 5, 40, 2, 3, 3, groups=2),
]
# Strided cases: the gemm algorithm, and the phases one where the dilation is 1.
STRIDED = [
    ConvCase("stride_2_dilation_2", 2, 2, 11, 9, 3, 3, 3, (2, 2), _pad(1, 1, 1, 1), (2, 2)),
    ConvCase("stride_mixed_groups", 1, 4, 9, 10, 6, 3, 2, (1, 2), _pad(0, 1, 1, 0), groups=2),
    # phases: a 3x3 kernel (4 phases of 2x2, 2x1, 1x2, 1x1 entries), odd sizes, a 1x1
    # kernel (phase 0 only), stride 3 with a 5x5 kernel, asymmetric padding, many channels
    ConvCase("s2_k3_p1_odd", 3, 3, 13, 11, 5, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
    ConvCase("s2_k1", 2, 6, 10, 9, 7, 1, 1, (2, 2)),
    ConvCase("s3_k5_asym", 2, 2, 17, 16, 4, 5, 5, (3, 3), _pad(2, 1, 0, 2)),
    ConvCase("s2_k4_groups", 2, 6, 12, 14, 6, 4, 4, (2, 2), _pad(1, 1, 1, 1), groups=3),
    ConvCase("s2_many_channels", 2, 24, 9, 9, 20, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
    ConvCase("s2_batch_0", 0, 3, 8, 8, 4, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
]
# The blocked matrix product (panel): ResNet's narrow planes (7 wide: runs shorter than a
# vector), stride 2 with 3x3, 1x1 and 7x7 kernels, positions crossing images, a channel
# count that is not a multiple of 4, many kernel entries (several panels along K)
PANEL = [
    ConvCase("p_s2_7wide", 3, 5, 14, 14, 6, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
    ConvCase("p_s1_narrow_many_k", 2, 20, 5, 7, 9, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("p_1x1_s2_wide", 2, 6, 9, 70, 5, 1, 1, (2, 2)),
    ConvCase("p_7x7_s2_p3", 2, 3, 23, 40, 4, 7, 7, (2, 2), _pad(3, 3, 3, 3)),
    ConvCase("p_s2_dilated_groups", 2, 4, 17, 37, 8, 3, 3, (2, 1), _pad(2, 1, 0, 2), (2, 2),
             groups=2),
    ConvCase("p_2x2_planes", 5, 12, 2, 2, 13, 3, 3, padding=_pad(1, 1, 1, 1)),
]
# Depthwise with strides: column stride 2 (the buffer split into even and odd columns),
# odd sizes and odd left padding, rows narrower than a vector, dilation, a 5 x 5 kernel,
# row stride only (the input gradient goes to gemm), column stride 2 with row stride 1
DEPTHWISE_STRIDED = [
    ConvCase("dw_s2_k3_p1", 2, 3, 13, 37, 3, 3, 3, (2, 2), _pad(1, 1, 1, 1), groups=3),
    ConvCase("dw_s2_w70_odd_left", 1, 2, 6, 70, 2, 3, 3, (2, 2), _pad(0, 1, 1, 0), groups=2),
    ConvCase("dw_s2_narrow", 2, 2, 9, 9, 2, 3, 3, (2, 2), _pad(1, 1, 1, 1), groups=2),
    ConvCase("dw_s2_5x5_dil", 1, 3, 17, 41, 3, 5, 5, (2, 2), _pad(4, 2, 3, 4), (2, 2),
             groups=3),
    ConvCase("dw_s2_wide_pad", 2, 2, 4, 5, 2, 2, 3, (2, 2), _pad(3, 2, 4, 5), groups=2),
    ConvCase("dw_s21", 1, 2, 9, 20, 2, 3, 3, (2, 1), _pad(1, 1, 1, 1), groups=2),
    ConvCase("dw_s12", 2, 2, 7, 35, 2, 3, 2, (1, 2), _pad(1, 0, 1, 1), groups=2),
    ConvCase("dw_s2_batch_0", 0, 2, 7, 9, 2, 3, 3, (2, 2), _pad(1, 1, 1, 1), groups=2),
]
DEPTHWISE = [c for c in STRIDE_1 if c.groups == c.c == c.o] + DEPTHWISE_STRIDED
PHASES = [c for c in STRIDED if c.dilation == (1, 1) and not (c.groups == c.c == c.o)]
PATHS = ([("direct", c) for c in STRIDE_1] + [("gemm", c) for c in STRIDE_1 + STRIDED]
         + [("phases", c) for c in PHASES]
         + [("panel", c) for c in STRIDE_1 + STRIDED + PANEL]
         + [("depthwise", c) for c in DEPTHWISE] + [("gemm", c) for c in DEPTHWISE_STRIDED])


def _abs64(a):
    return np.abs(a.astype(np.float64))


def _all(case, x, w, b, gy, algo):
    geo = case.geometry
    return (
        fast.conv2d(x, w, b, *geo, algo=algo),
        fast.conv2d_grad_input(gy, w, (case.h, case.w), *geo, algo=algo),
        fast.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo, algo=algo),
    )


def _reference(case, x, w, b, gy):
    geo = case.geometry
    return (
        ref.conv2d(x, w, b, *geo),
        ref.conv2d_grad_input(gy, w, (case.h, case.w), *geo),
        ref.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo),
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("algo", "case"), PATHS, ids=[f"{a}-{c}" for a, c in PATHS])
def test_each_algorithm_matches_reference(algo, case, dtype):
    x, w, b, gy = case.arrays(np.random.default_rng(1), dtype)
    got = _all(case, x, w, b, gy, algo)
    want = _reference(case, *(v.astype(np.float64) for v in (x, w, b, gy)))
    magnitude = _reference(case, *(_abs64(v) for v in (x, w, b, gy)))
    oh, ow = case.out_hw
    lengths = (case.k_forward + 1, case.o // case.groups * case.kh * case.kw,
               max(1, case.n * oh * ow))
    u, factor = (U64, 2.0) if dtype == np.float64 else (U32, 1.0)
    names = ("y", "grad_input", "grad_weight")
    for name, g, e, m, k in zip(names, got, want, magnitude, lengths, strict=True):
        assert g.dtype == dtype and g.shape == e.shape, (name, g.dtype, g.shape, e.shape)
        assert g.flags.c_contiguous, name
        assert_within_bound(g, e, m, k, u, factor, what=f"{algo} {case} {name}")


@pytest.mark.parametrize(("op", "stride", "dilation", "groups", "x_shape", "w_shape", "want"), [
    # one kernel per channel: its own loops where they take the stride, else gemm
    ("forward", (1, 1), (2, 2), 4, (1, 4, 8, 8), (4, 1, 3, 3), "depthwise"),
    ("forward", (2, 2), (1, 1), 4, (1, 4, 8, 8), (4, 1, 3, 3), "depthwise"),
    ("grad_input", (2, 1), (1, 1), 4, (1, 4, 8, 8), (4, 1, 3, 3), "gemm"),
    # 3x3 stride 1 with many channels where tiles fill: Winograd, not for grad_weight
    ("forward", (1, 1), (1, 1), 1, (8, 64, 56, 56), (64, 64, 3, 3), "winograd"),
    ("grad_input", (1, 1), (1, 1), 1, (8, 256, 14, 14), (256, 256, 3, 3), "winograd"),
    ("grad_weight", (1, 1), (1, 1), 1, (8, 64, 56, 56), (64, 64, 3, 3), "direct"),
    ("forward", (1, 1), (2, 2), 1, (8, 64, 56, 56), (64, 64, 3, 3), "direct"),
    # small planes with many channels, and 1x1 kernels: the blocked product
    ("forward", (1, 1), (1, 1), 1, (8, 512, 7, 7), (512, 512, 3, 3), "panel"),
    ("forward", (1, 1), (1, 1), 1, (32, 64, 16, 16), (64, 64, 3, 3), "panel"),  # tiles half used
    ("grad_weight", (1, 1), (1, 1), 1, (8, 256, 14, 14), (256, 256, 3, 3), "panel"),
    ("forward", (1, 1), (1, 1), 1, (8, 24, 56, 56), (144, 24, 1, 1), "panel"),
    ("grad_input", (1, 1), (1, 1), 1, (8, 144, 56, 56), (24, 144, 1, 1), "direct"),
    # few channels: the direct loop
    ("forward", (1, 1), (1, 1), 1, (64, 3, 64, 64), (10, 3, 3, 3), "direct"),
    ("grad_weight", (1, 1), (1, 1), 1, (64, 10, 62, 62), (10, 10, 3, 3), "direct"),
    # strides: the blocked product; a stem's weight gradient by phases; stride + dilation
    ("forward", (2, 2), (1, 1), 1, (8, 64, 56, 56), (128, 64, 3, 3), "panel"),
    ("grad_weight", (2, 2), (1, 1), 1, (8, 3, 224, 224), (64, 3, 7, 7), "phases"),
    ("grad_weight", (2, 2), (2, 1), 1, (8, 3, 224, 224), (64, 3, 7, 7), "panel"),
])
def test_choose(op, stride, dilation, groups, x_shape, w_shape, want):
    assert fast.choose(op, stride, dilation, groups, x_shape, w_shape) == want


def test_direct_refuses_a_stride_and_unknown_algorithms():
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match="stride"):
        fast.conv2d(x, w, None, (2, 2), _pad(0, 0, 0, 0), (1, 1), 1, algo="direct")
    with pytest.raises(ValueError, match="dilation"):
        fast.conv2d(x, w, None, (2, 2), _pad(0, 0, 0, 0), (2, 1), 1, algo="phases")
    with pytest.raises(ValueError, match="unknown"):
        fast.conv2d(x, w, None, (1, 1), _pad(0, 0, 0, 0), (1, 1), 1, algo="fft")
    with pytest.raises(ValueError, match="one kernel per channel"):
        fast.conv2d(x, np.ones((2, 1, 3, 3)), None, (1, 1), _pad(0, 0, 0, 0), (1, 1), 1,
                    algo="depthwise")


def test_direct_weight_gradient_with_nan_input_matches_reference():
    """The direct loop also touches cells outside each kernel entry's window; a NaN there
    must not reach gradients that the reference keeps finite."""
    case = STRIDE_1[3]
    x, w, b, gy = case.arrays(np.random.default_rng(2), np.float64)
    x[0, 1, 0, 0] = np.nan
    geo = case.geometry
    got = fast.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo, algo="direct")
    want = ref.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(want).any() and not np.isnan(want).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_depthwise_weight_gradient_with_nan_or_inf_input_matches_reference(bad, dtype):
    """The depthwise loop multiplies only each kernel entry's window (no finiteness check)."""
    for case in (ConvCase("dw_nan", 2, 3, 6, 37, 3, 3, 3, padding=_pad(0, 1, 0, 2), groups=3),
                 ConvCase("dw_nan_dil", 1, 3, 9, 21, 3, 2, 4, padding=_pad(1, 0, 2, 0),
                          dilation=(2, 2), groups=3)):
        x, w, b, gy = case.arrays(np.random.default_rng(4), dtype)
        x[0, 1, 0, 0] = bad
        x[-1, 2, -1, -1] = bad
        geo = case.geometry
        got = fast.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo, algo="direct")
        want = ref.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        assert not np.isfinite(want).all() and np.isfinite(want).any()
        fine = np.isfinite(want)
        np.testing.assert_allclose(got[fine], want[fine], rtol=1e-4, atol=1e-4)


def test_depthwise_results_do_not_depend_on_the_task_split(monkeypatch):
    from convscope.kernels import depthwise

    case = ConvCase("dw_split", 3, 5, 7, 45, 5, 3, 3, padding=_pad(1, 1, 1, 1), groups=5)
    x, w, b, gy = case.arrays(np.random.default_rng(6), np.float32)
    results = []
    for tasks in (1, 4, 1000):
        monkeypatch.setattr(depthwise, "DEPTHWISE_TASKS", tasks)
        results.append(_all(case, x, w, b, gy, "direct"))
    for other in results[1:]:
        for a, b_ in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b_)


def test_direct_results_are_bitwise_repeatable():
    case = ConvCase("repeat", 3, 6, 9, 37, 9, 3, 3, padding=_pad(1, 1, 1, 1))
    x, w, b, gy = case.arrays(np.random.default_rng(3), np.float32)
    first = _all(case, x, w, b, gy, "direct")
    for _ in range(3):
        for a, c in zip(first, _all(case, x, w, b, gy, "direct"), strict=True):
            np.testing.assert_array_equal(a, c)


# (n, c, h, w, kernel, stride, padding, dilation, ceil_mode): overlap, ceil overhang,
# dilation stepping over a 1-pixel input (windows with no cell: index -1)
POOLS = [
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1), (1, 1), False),
    (1, 2, 5, 7, (2, 3), (2, 2), (0, 1), (1, 1), True),
    (1, 2, 9, 8, (3, 2), (1, 2), (1, 1), (2, 3), False),
    (1, 1, 1, 1, (2, 2), (1, 1), (1, 1), (2, 2), True),
    (0, 2, 4, 4, (2, 2), (2, 2), (0, 0), (1, 1), False),
    # wide rows: the vectorised interior columns, edge columns on both sides
    (2, 3, 13, 37, (3, 3), (2, 2), (1, 1), (1, 1), False),
    (1, 2, 12, 41, (2, 2), (2, 2), (0, 0), (1, 1), True),
    (1, 2, 11, 30, (3, 2), (1, 3), (1, 1), (2, 2), True),
    (1, 1, 6, 25, (2, 4), (3, 1), (1, 2), (1, 1), False),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POOLS, ids=str)
def test_max_pool_loops_match_reference(case, dtype):
    n, c, h, w, *args = case
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, (n, c, h, w)).astype(dtype)  # ties
    if x.size > 3:
        x.flat[[0, 3]] = np.nan, -np.inf
    y_ref, idx_ref = ref.max_pool2d(x, *args)
    kernel, stride, padding, dilation, _ = args
    y, idx = loops.max_pool2d(x, kernel, stride, padding, dilation, y_ref.shape[2:])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    y_only, none = loops.max_pool2d(x, kernel, stride, padding, dilation, y_ref.shape[2:],
                                    indices=False)  # a forward without gradient
    np.testing.assert_array_equal(y_only, y_ref)
    assert none is None
    gy = rng.uniform(-1, 1, y.shape).astype(dtype)
    gx = loops.max_pool2d_grad(gy, idx, (h, w))
    np.testing.assert_allclose(gx, ref.max_pool2d_grad(gy, idx_ref, (h, w)), rtol=1e-6)
    assert gx.dtype == dtype and y.dtype == dtype
    assert idx.dtype == np.int32  # planes under 2**31 cells


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), [
    ((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 3), (2, 2), (1, 1), (1, 1)),
    ((3, 3), (1, 1), (1, 1), (1, 1)), ((2, 3), (2, 2), (1, 1), (2, 1)),
    ((3, 2), (3, 3), (1, 0), (1, 1)),
])
def test_max_pool_vector_columns_with_ties_nan_and_inf(kernel, stride, padding, dilation, dtype):
    # rows wide enough for several vectors of output columns (stride 1 and 2), and NaN,
    # -inf and ties inside the windows they cover
    rng = np.random.default_rng(8)
    x = rng.integers(-3, 4, (2, 3, 11, 75)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    x[0, 1, 4:7, 10:30] = -np.inf  # windows of -inf only: the first cell wins
    args = (kernel, stride, padding, dilation, False)
    y_ref, idx_ref = ref.max_pool2d(x, *args)
    y, idx = loops.max_pool2d(x, kernel, stride, padding, dilation, y_ref.shape[2:])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    y_only, none = loops.max_pool2d(x, kernel, stride, padding, dilation, y_ref.shape[2:],
                                    indices=False)  # a forward without gradient
    np.testing.assert_array_equal(y_only, y_ref)
    assert none is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), [
    ((2, 3, 11, 75), (2, 2), (2, 2), (0, 0), False),  # vector columns, stride 2
    ((1, 2, 9, 70), (3, 3), (2, 2), (1, 1), True),  # padding, ceil-mode overhang
    ((1, 2, 8, 50), (3, 2), (1, 1), (1, 1), False),  # stride 1
    ((1, 1, 7, 40), (2, 3), (3, 3), (1, 0), True),  # stride 3: scalar windows only
    ((2, 2, 5, 6), (3, 3), (2, 2), (1, 1), False),  # narrow: edges only
])
def test_avg_pool_loops_match_reference(shape, kernel, stride, padding, ceil_mode,
                                        count_include_pad, dtype):
    rng = np.random.default_rng(10)
    x = rng.integers(-4, 5, shape).astype(dtype)  # sums exact: only the division rounds
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    y_ref = ref.avg_pool2d(x, *args)
    (oh, ow), divisor = fast._avg_setup(shape[2:], *args[:3], ceil_mode, count_include_pad)
    y = loops.avg_pool2d(x, kernel, stride, padding, divisor)
    assert y.dtype == dtype and y.shape == y_ref.shape == (*shape[:2], oh, ow)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6)
    gy = rng.uniform(-1, 1, y.shape).astype(dtype)
    gx = loops.avg_pool2d_grad(gy, shape[2:], kernel, stride, padding, divisor)
    assert gx.dtype == dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, ref.avg_pool2d_grad(gy, shape[2:], *args), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("shape", "padding"), [
    ((2, 3, 5, 37), _pad(1, 2, 3, 0)),  # rows: a vector and a tail
    ((1, 2, 4, 7), _pad(0, 0, 0, 0)),  # rows shorter than a vector
    ((2, 1, 3, 16), _pad(2, 2, 2, 2)),  # exactly one vector
])
def test_compiled_pack_matches_numpy_pack(monkeypatch, shape, padding, dtype):
    from convscope.kernels import direct

    x = np.random.default_rng(11).uniform(-1, 1, shape).astype(dtype)
    geo = direct._Flat(shape[2:], padding, (3, 2), (1, 1), dtype)
    want = geo.pack(x, padding[0][0], padding[1][0])  # small: NumPy
    monkeypatch.setattr(direct, "PACK_COMPILED", 0)
    got = geo.pack(x, padding[0][0], padding[1][0])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_panel_tasks_pack_or_share_the_whole_im2col_matrix(monkeypatch, dtype):
    # few positions: the channels split over tasks that share one packed im2col matrix;
    # else (or when that matrix would be too large) each task packs its own panels
    from convscope.kernels import panel

    case = ConvCase("split", 3, 9, 11, 13, 10, 3, 3, (2, 1), _pad(1, 1, 0, 2))
    x, w, b, gy = case.arrays(np.random.default_rng(15), dtype)
    want = _reference(case, *(v.astype(np.float64) for v in (x, w, b, gy)))
    for tasks, prepack in ((1, 1 << 30), (64, 1 << 30), (64, 0)):
        monkeypatch.setattr(panel, "TASKS", tasks)
        monkeypatch.setattr(panel, "PREPACK_BYTES", prepack)
        monkeypatch.setattr(panel, "PANEL_ROWS", 16)  # several panels along K
        for got, ref_value in zip(_all(case, x, w, b, gy, "panel"), want, strict=True):
            np.testing.assert_allclose(got, ref_value, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [
    ConvCase("s2_dil_groups", 4, 6, 9, 7, 4, 3, 3, (2, 2), _pad(1, 2, 0, 1), (2, 1), groups=2),
    ConvCase("s1_2x2", 5, 7, 2, 2, 9, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("s3_k1", 3, 5, 7, 8, 6, 1, 1, (3, 3)),
], ids=lambda c: c.name)
def test_panel_table_packing_and_batch_wide_input_gradient_agree(monkeypatch, case):
    # narrow output rows packed through the table of cells or by runs; the strided input
    # gradient on tiny planes as one batch-wide product + col2im or per image: the same
    # bits either way (the sums run in the same order), and the reference's values
    from convscope.kernels import panel

    x, w, b, gy = case.arrays(np.random.default_rng(21), np.float64)
    want = _reference(case, x, w, b, gy)
    results = []
    for table, batch_cols, rows in ((0, 0, 64), (100, 100, 64), (100, 100, 8)):
        monkeypatch.setattr(panel, "TABLE_BELOW", table)
        monkeypatch.setattr(panel, "BATCH_COLS_BELOW", batch_cols)
        monkeypatch.setattr(panel, "WGRAD_ROWS", rows)  # several weight-gradient tasks
        got = _all(case, x, w, b, gy, "panel")
        for g, ref_value in zip(got, want, strict=True):
            np.testing.assert_allclose(g, ref_value, rtol=1e-10, atol=1e-12)
        results.append(got)
    np.testing.assert_array_equal(results[0][0], results[1][0])  # forward: packing only
    np.testing.assert_array_equal(results[0][2], results[1][2])


@pytest.mark.parametrize("shape, o, groups", [
    ((3, 16, 16, 17), 24, 1),  # 272 positions: one whole panel + a ragged block of 16
    ((2, 12, 7, 7), 9, 3),  # groups; 49 positions, all in the ragged block
    ((2, 70, 6, 11), 5, 1),  # several panels along K (64 rows each), 5 channels of 8
])
@pytest.mark.parametrize("finite", [True, False])
def test_pointwise_product_reads_the_planes_in_place(monkeypatch, shape, o, groups, finite):
    # 1 x 1 convolutions, stride 1, no padding: the product read from the input planes
    # (no packing) against the reference, and the packed path's bits (same sums, same
    # order), with the fused ReLU and ReLU6 clamp
    from convscope.kernels import panel

    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(np.float32) * 4
    if not finite:
        x[0, 1, 2, 3], x[-1, -1, -1, -1] = np.nan, -np.inf
    w = rng.standard_normal((o, shape[1] // groups, 1, 1)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    geo = ((1, 1), ((0, 0), (0, 0)), (1, 1), groups)
    want = ref.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), *geo)
    results = []
    for positions in (1, 1 << 30):  # in place, then packed
        monkeypatch.setattr(panel, "POINTWISE_POSITIONS", positions)
        y = panel.conv2d(x, w, b, *geo)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)
        results.append((y, panel.conv2d(x, w, b, *geo, relu=True, hi=6.0)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    relu6 = np.minimum(np.where(np.isnan(want) | (want > 0), want, 0), 6)
    np.testing.assert_allclose(results[0][1], relu6, rtol=1e-5, atol=1e-4)


# Tiny planes (ResNet's 4 x 4 and 2 x 2 at training sizes, `_jit/tiny.py`): the images as
# the vector lanes, kernel entries on the padding skipped. A 2 x 2 plane with padding 1,
# a 4 x 4 one with output channels not a multiple of 8, a batch that does not fill its
# last block of images (27 of 32), stride 2 onto 4 x 4, a strided 1 x 1, dilation with
# asymmetric padding, no padding at all, and enough input channels for the weight
# gradient's blocks of channels (a ragged one too)
TINY = [
    ConvCase("t_2x2_p1", 32, 40, 2, 2, 24, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("t_4x4_o13", 32, 64, 4, 4, 13, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("t_s2_n27", 27, 70, 8, 8, 9, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
    ConvCase("t_1x1_s2", 30, 17, 7, 7, 20, 1, 1, (2, 2)),
    ConvCase("t_dil_asym", 24, 5, 4, 4, 7, 3, 2, padding=_pad(2, 1, 0, 1), dilation=(2, 1)),
    ConvCase("t_no_pad", 32, 100, 3, 3, 30, 3, 3),
]


def _tiny_calls(monkeypatch):
    """Count the calls of the tiny-plane product and weight gradient."""
    from convscope.kernels import panel

    calls = {"forward": 0, "grad_weight": 0}
    forward, grad_weight = panel._tiny_forward, panel._tiny_grad_weight

    def count_forward(*args, **kwargs):
        calls["forward"] += 1
        return forward(*args, **kwargs)

    def count_grad_weight(*args, **kwargs):
        calls["grad_weight"] += 1
        return grad_weight(*args, **kwargs)

    monkeypatch.setattr(panel, "_tiny_forward", count_forward)
    monkeypatch.setattr(panel, "_tiny_grad_weight", count_grad_weight)
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", TINY, ids=lambda c: c.name)
def test_tiny_planes_skip_the_padding_and_match_reference(monkeypatch, case, dtype):
    # the tiny-plane loops against the reference (within the bound of each sum's length)
    # and against the blocked product over the im2col matrix (TINY_POSITIONS = 0), with
    # the fused ReLU and ReLU6 clamp; the loops really ran (forward and input gradient,
    # and the weight gradient where there are channels enough to fill its lanes;
    # strided, the input gradient's product W^T @ GY over the batch)
    from convscope.kernels import panel

    x, w, b, gy = case.arrays(np.random.default_rng(4), dtype)
    want = _reference(case, *(v.astype(np.float64) for v in (x, w, b, gy)))
    magnitude = _reference(case, *(_abs64(v) for v in (x, w, b, gy)))
    oh, ow = case.out_hw
    lengths = (case.k_forward + 1, case.o * case.kh * case.kw, case.n * oh * ow)
    u, factor = (U64, 2.0) if dtype == np.float64 else (U32, 1.0)
    calls = _tiny_calls(monkeypatch)
    got = _all(case, x, w, b, gy, "panel")
    lanes = 64 // np.dtype(dtype).itemsize
    assert calls["forward"] == 2, calls  # strided: the batch-wide W^T @ GY on tiny planes
    assert calls["grad_weight"] == (case.c >= 0.75 * -(-case.c // (4 * lanes)) * 4 * lanes)
    for name, g, e, m, k in zip(("y", "grad_input", "grad_weight"), got, want, magnitude,
                                lengths, strict=True):
        assert g.dtype == dtype and g.shape == e.shape and g.flags.c_contiguous, name
        assert_within_bound(g, e, m, k, u, factor, what=f"tiny {case} {name}")
    geo = case.geometry
    fused = panel.conv2d(x, w, b, *geo, relu=True, hi=1.5)
    np.testing.assert_array_equal(fused, np.minimum(np.maximum(got[0], 0), dtype(1.5)))
    gw, gb = panel.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo, bias=True)
    np.testing.assert_array_equal(gw, got[2])
    np.testing.assert_allclose(gb, gy.astype(np.float64).sum((0, 2, 3)), rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(panel, "TINY_POSITIONS", 0)  # the im2col product: close, not equal
    for g, h in zip(got, _all(case, x, w, b, gy, "panel"), strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-4 if dtype == np.float32 else 1e-12,
                                   atol=1e-4 if dtype == np.float32 else 1e-12)


@st.composite
def _tiny_configs(draw):
    case = draw(conv_configs(min_batch=12, max_batch=40, max_out=4))
    return dataclasses.replace(case, groups=1, c=draw(st.sampled_from([2, 7, 24, 29, 32, 40])),
                               o=draw(st.integers(1, 19)))


@generated(_tiny_configs(), seeds, examples=25)
def test_tiny_planes_generated_configurations(case, seed):
    # any stride, padding, dilation and kernel size on planes of up to 4 x 4 outputs, with
    # batches and channel counts around the vector blocks (float64: 16 images, 32
    # channels): the same values as the reference, whichever path each product takes
    x, w, b, gy = case.arrays(np.random.default_rng(seed), np.float64)
    for g, e in zip(_all(case, x, w, b, gy, "panel"), _reference(case, x, w, b, gy),
                    strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)


# The strided input gradient by phases of the input (16 channels a group and up): a 3 x 3
# kernel (phases of 4, 2, 2 and 1 entries), a 1 x 1 kernel (three phases of zeros), rows
# and columns no output reaches (a larger input: transposed convolutions' output padding),
# stride 3, a kernel smaller than the stride, asymmetric padding and strides, groups,
# odd widths (the zipped write-out's tail), planes wider than a vector's lanes
PHASE_GI = [
    ConvCase("pg_s2_k3", 3, 20, 13, 11, 24, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
    ConvCase("pg_s2_k1", 2, 17, 10, 9, 21, 1, 1, (2, 2)),
    ConvCase("pg_unreached", 2, 16, 12, 15, 9, 2, 2, (2, 2)),
    ConvCase("pg_s3_k5_asym", 2, 18, 17, 16, 7, 5, 5, (3, 3), _pad(2, 1, 0, 2)),
    ConvCase("pg_s3_k2", 2, 16, 11, 13, 5, 2, 2, (3, 3), _pad(1, 0, 0, 1)),
    ConvCase("pg_s21_groups", 2, 34, 9, 10, 6, 3, 2, (2, 1), _pad(1, 1, 0, 1), groups=2),
    ConvCase("pg_s12_wide", 1, 16, 5, 70, 8, 3, 3, (1, 2), _pad(1, 1, 1, 1)),
    ConvCase("pg_s2_w33", 4, 20, 7, 33, 12, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
]


def _calls(monkeypatch, name):
    """Record the first argument's shape of each call of ``kernels.panel.<name>`` (a spy
    that still runs it): which path a product took."""
    from convscope.kernels import panel

    calls = []
    real = getattr(panel, name)

    def count(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(panel, name, count)
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", PHASE_GI, ids=lambda c: c.name)
def test_phase_input_gradient_matches_reference(monkeypatch, case, dtype):
    # against the reference within the bound of each sum's length, the loop really ran,
    # every cell written (gx starts as garbage: np.empty), the same bits on 1 and 2
    # threads (tasks handed out on demand), and close to the scatter path it replaces
    import numba

    from convscope.kernels import panel

    x, w, b, gy = case.arrays(np.random.default_rng(5), dtype)
    geo = case.geometry
    want = ref.conv2d_grad_input(gy.astype(np.float64), w.astype(np.float64),
                                 (case.h, case.w), *geo)
    magnitude = ref.conv2d_grad_input(_abs64(gy), _abs64(w), (case.h, case.w), *geo)
    u, factor = (U64, 2.0) if dtype == np.float64 else (U32, 1.0)
    calls = _calls(monkeypatch, "_phase_grad_input")
    monkeypatch.setattr(panel, "PHASE_POSITIONS", 0)  # small planes too
    monkeypatch.setattr(panel, "PHASE_FILL", 0)
    got = panel.conv2d_grad_input(gy, w, (case.h, case.w), *geo)
    assert calls and got.dtype == dtype and got.shape == want.shape
    assert_within_bound(got, want, magnitude, case.o * case.kh * case.kw, u, factor,
                        what=f"phase {case}")
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        np.testing.assert_array_equal(
            panel.conv2d_grad_input(gy, w, (case.h, case.w), *geo), got)
    finally:
        numba.set_num_threads(threads)
    monkeypatch.setattr(panel, "PHASE_CHANNELS", 1 << 30)  # the scatter: close, not equal
    np.testing.assert_allclose(panel.conv2d_grad_input(gy, w, (case.h, case.w), *geo), got,
                               rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


@st.composite
def _phase_configs(draw):
    case = draw(conv_configs(min_batch=1, max_batch=3, max_out=6))
    stride = (draw(st.integers(1, 3)), draw(st.integers(2, 3)))
    case = dataclasses.replace(case, stride=stride, dilation=(1, 1),
                               c=case.groups * draw(st.sampled_from([16, 17, 20])))
    extra = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))  # cells no output reaches
    return dataclasses.replace(case, h=case.h + extra[0], w=case.w + extra[1])


@generated(_phase_configs(), seeds, examples=25)
def test_phase_input_gradient_generated_configurations(case, seed):
    # any stride (2 or 3 along one axis at least), kernel, padding and groups, inputs with
    # rows or columns no output reads: the same values as the reference
    from convscope.kernels import panel

    _, w, _, gy = case.arrays(np.random.default_rng(seed), np.float64)
    rows, fill = panel.PHASE_POSITIONS, panel.PHASE_FILL
    try:
        panel.PHASE_POSITIONS, panel.PHASE_FILL = 0, 0  # every plane takes the phases
        got = panel.conv2d_grad_input(gy, w, (case.h, case.w), *case.geometry)
    finally:
        panel.PHASE_POSITIONS, panel.PHASE_FILL = rows, fill
    want = ref.conv2d_grad_input(gy, w, (case.h, case.w), *case.geometry)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# The forward product with the output channels as the lanes, the input copied channels
# last by each task (16 input channels and up, output channels in blocks of 4 vectors):
# 3 x 3 stride 1 and 2, a 1 x 1 kernel with stride 2 (every other row and column kept,
# odd sizes), a 5 x 5 kernel with asymmetric strides, padding and dilation, channel counts
# past a vector (the last block of channels overlapping), two blocks of output channels,
# positions not a multiple of 4 (the last block repeating a position), rows narrower than
# a vector (transposed copies storing part of a tile), several images a task
NHWC = [
    ConvCase("nh_s1_k3", 2, 16, 9, 11, 64, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("nh_s2_k3_c20", 3, 20, 13, 11, 64, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
    ConvCase("nh_s2_k1_odd", 2, 144, 15, 13, 64, 1, 1, (2, 2)),
    ConvCase("nh_k5_asym", 2, 17, 12, 19, 64, 5, 5, (2, 1), _pad(2, 1, 0, 3), (1, 2)),
    ConvCase("nh_o128_c33", 1, 33, 7, 37, 128, 3, 3, padding=_pad(0, 2, 1, 1)),
    ConvCase("nh_small_planes", 5, 16, 4, 3, 64, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("nh_k2_no_pad", 1, 48, 6, 30, 64, 2, 2),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", NHWC, ids=lambda c: c.name)
def test_channels_last_forward_matches_reference(monkeypatch, case, dtype):
    # against the reference within the bound of each sum's length (the bias last), with
    # the fused ReLU and ReLU6; the loop really ran, every cell written (y starts as
    # np.empty), the same bits on 1 and 2 threads and for any task size, close to the
    # packed product it replaces
    import numba

    from convscope.kernels import panel

    x, w, b, _ = case.arrays(np.random.default_rng(6), dtype)
    geo = case.geometry
    want = ref.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), *geo)
    magnitude = ref.conv2d(_abs64(x), _abs64(w), _abs64(b), *geo)
    u, factor = (U64, 2.0) if dtype == np.float64 else (U32, 1.0)
    calls = _calls(monkeypatch, "_nhwc_forward")
    monkeypatch.setattr(panel, "NHWC_POSITIONS", 8)  # several tasks on these small cases
    got = panel.conv2d(x, w, b, *geo)
    assert calls and got.dtype == dtype and got.shape == want.shape
    assert_within_bound(got, want, magnitude, case.k_forward + 1, u, factor,
                        what=f"channels last {case}")
    np.testing.assert_array_equal(panel.conv2d(x, w, b, *geo, relu=True), np.maximum(got, 0))
    np.testing.assert_array_equal(panel.conv2d(x, w, b, *geo, relu=True, hi=0.5),
                                  np.clip(got, 0, 0.5))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        np.testing.assert_array_equal(panel.conv2d(x, w, b, *geo), got)
    finally:
        numba.set_num_threads(threads)
    monkeypatch.setattr(panel, "NHWC_POSITIONS", 1)  # a row a task, one image a task
    np.testing.assert_array_equal(panel.conv2d(x, w, b, *geo), got)
    n_calls = len(calls)
    monkeypatch.setattr(panel, "NHWC", False)  # the packed product: close, not equal
    np.testing.assert_allclose(panel.conv2d(x, w, b, *geo), got,
                               rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
    assert len(calls) == n_calls


def test_channels_last_forward_needs_its_conditions(monkeypatch):
    # groups, too few input channels or kernel entries, output channels not in blocks of
    # 4 vectors, too few positions: the packed product, and still the reference's values
    from convscope.kernels import panel

    calls = _calls(monkeypatch, "_nhwc_forward")
    monkeypatch.setattr(panel, "NHWC_POSITIONS", 8)
    for case in [ConvCase("groups", 1, 32, 6, 6, 64, 3, 3, groups=2),
                 ConvCase("c15", 1, 15, 6, 6, 64, 3, 3),
                 ConvCase("k1_c64", 1, 64, 6, 6, 64, 1, 1, (2, 2)),
                 ConvCase("o48", 1, 16, 6, 6, 48, 3, 3),
                 ConvCase("p4", 1, 16, 4, 4, 64, 3, 3)]:
        x, w, b, _ = case.arrays(np.random.default_rng(7), np.float32)
        np.testing.assert_allclose(panel.conv2d(x, w, b, *case.geometry),
                                   ref.conv2d(x, w, b, *case.geometry), rtol=1e-4, atol=1e-4)
    assert calls == []


# The 1 x 1 weight gradient as GY @ Xs (Xs the cells read, channels last; gy in place):
# stride 2 over odd sizes, stride 1, output channels past a block of tasks, input channels
# in several blocks of 4 vectors
POINTWISE_WGRAD = [
    ConvCase("pw_s2_odd", 2, 64, 15, 13, 12, 1, 1, (2, 2)),
    ConvCase("pw_s1", 3, 128, 9, 10, 8, 1, 1),
    ConvCase("pw_o132", 1, 64, 16, 16, 132, 1, 1, (2, 2)),
    ConvCase("pw_c192", 2, 192, 17, 18, 20, 1, 1, (2, 2)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POINTWISE_WGRAD, ids=lambda c: c.name)
def test_pointwise_weight_gradient_matches_reference(monkeypatch, case, dtype):
    # against the reference within the bound of the sum over images and positions, the
    # bias gradient too; the loop really ran; the same bits on 1 and 2 threads and for any
    # task split; close to the transposed-gy path it replaces
    import numba

    from convscope.kernels import panel

    x, _, _, gy = case.arrays(np.random.default_rng(8), dtype)
    geo = case.geometry
    want = ref.conv2d_grad_weight(gy.astype(np.float64), x.astype(np.float64), (1, 1), *geo)
    magnitude = ref.conv2d_grad_weight(_abs64(gy), _abs64(x), (1, 1), *geo)
    u, factor = (U64, 2.0) if dtype == np.float64 else (U32, 1.0)
    calls = _calls(monkeypatch, "_pointwise_grad_weight")
    monkeypatch.setattr(panel, "POINTWISE_WGRAD_POSITIONS", 1)
    monkeypatch.setattr(panel, "POINTWISE_WGRAD_OUT", 4)
    gw, gb = panel.conv2d_grad_weight(gy, x, (1, 1), *geo, bias=True)
    assert calls and gw.dtype == dtype and gw.shape == want.shape
    assert_within_bound(gw, want, magnitude, gy.size // case.o, u, factor,
                        what=f"pointwise weight gradient {case}")
    np.testing.assert_allclose(gb, gy.astype(np.float64).sum(axis=(0, 2, 3)),
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        np.testing.assert_array_equal(panel.conv2d_grad_weight(gy, x, (1, 1), *geo), gw)
    finally:
        numba.set_num_threads(threads)
    monkeypatch.setattr(panel, "POINTWISE_WGRAD_TASKS", 1)  # one task per channel block
    np.testing.assert_array_equal(panel.conv2d_grad_weight(gy, x, (1, 1), *geo), gw)
    n_calls = len(calls)
    monkeypatch.setattr(panel, "POINTWISE_WGRAD", False)
    np.testing.assert_allclose(panel.conv2d_grad_weight(gy, x, (1, 1), *geo), gw,
                               rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
    assert len(calls) == n_calls
    for other in (ConvCase("pad", 1, 64, 6, 6, 8, 1, 1, padding=_pad(1, 0, 0, 0)),
                  ConvCase("s3", 1, 64, 6, 6, 8, 1, 1, (3, 3)),
                  ConvCase("c48", 1, 48, 6, 6, 8, 1, 1, (2, 2)),
                  ConvCase("k3", 1, 64, 6, 6, 8, 3, 3, (2, 2))):
        xo, _, _, go = other.arrays(np.random.default_rng(9), np.float32)
        kernel = (other.kh, other.kw)
        np.testing.assert_allclose(panel.conv2d_grad_weight(go, xo, kernel, *other.geometry),
                                   ref.conv2d_grad_weight(go, xo, kernel, *other.geometry),
                                   rtol=1e-4, atol=1e-4)
    assert len(calls) == n_calls  # none of those took it


@st.composite
def _nhwc_configs(draw):
    case = draw(conv_configs(min_batch=1, max_batch=3, max_out=7))
    return dataclasses.replace(case, groups=1, c=draw(st.sampled_from([16, 17, 20, 40])),
                               o=draw(st.sampled_from([32, 64, 96])))


@generated(_nhwc_configs(), seeds, examples=25)
def test_channels_last_forward_generated_configurations(case, seed):
    # any stride, kernel, padding and dilation, several tasks of rows or of whole images:
    # the same values as the reference (float64: blocks of 32 output channels)
    from convscope.kernels import panel

    x, w, b, _ = case.arrays(np.random.default_rng(seed), np.float64)
    positions, entries = panel.NHWC_POSITIONS, panel.NHWC_ENTRIES
    try:
        panel.NHWC_POSITIONS, panel.NHWC_ENTRIES = 1 + seed % 16, 1  # 1 x 1 kernels too
        got = panel.conv2d(x, w, b, *case.geometry)
    finally:
        panel.NHWC_POSITIONS, panel.NHWC_ENTRIES = positions, entries
    np.testing.assert_allclose(got, ref.conv2d(x, w, b, *case.geometry), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("case", [
    ConvCase("pad_dil_groups", 3, 6, 12, 17, 4, 3, 3, padding=_pad(2, 1, 2, 0), dilation=(2, 1),
             groups=2),
    ConvCase("many_positions", 4, 5, 16, 16, 7, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("wide_5x5", 2, 3, 9, 40, 5, 5, 5, padding=_pad(2, 2, 2, 2)),
], ids=lambda c: c.name)
@pytest.mark.parametrize("prepack", [0, 1 << 30])
def test_padding_first_packs_plain_runs_with_the_same_bits(monkeypatch, case, prepack):
    # stride 1: the input padded once and every run a plain copy, against runs cut at the
    # padding: the same packed values, so the same bits (forward, both gradients), and the
    # reference's values; panels per task and the shared matrix both
    from convscope.kernels import panel

    x, w, b, gy = case.arrays(np.random.default_rng(33), np.float32)
    want = _reference(case, *(v.astype(np.float64) for v in (x, w, b, gy)))
    monkeypatch.setattr(panel, "PREPACK_BYTES", prepack)
    results = []
    for pad_first in (False, True):
        monkeypatch.setattr(panel, "PAD_FIRST", pad_first)
        got = _all(case, x, w, b, gy, "panel")
        for g, ref_value in zip(got, want, strict=True):
            np.testing.assert_allclose(g, ref_value, rtol=1e-4, atol=1e-4)
        results.append(got)
    for a, c in zip(*results, strict=True):
        np.testing.assert_array_equal(a, c)


def test_direct_forward_with_one_row_per_task_and_each_weight_gradient_split(monkeypatch):
    # several tasks per image in the forward loop; the weight gradient split over images
    # and split over channel blocks give the reference's values
    case = ConvCase("tall", 3, 5, 23, 19, 6, 3, 3, padding=_pad(2, 1, 1, 2))
    x, w, b, gy = case.arrays(np.random.default_rng(9), np.float64)
    want = _reference(case, x, w, b, gy)
    from convscope.kernels import direct

    for row_bytes, image_bytes in ((1, 0), (64 << 10, 1 << 30)):
        monkeypatch.setattr(direct, "ROW_BUFFER_BYTES", row_bytes)
        monkeypatch.setattr(direct, "IMAGE_PARTIALS_BYTES", image_bytes)
        for got, ref_value in zip(_all(case, x, w, b, gy, "direct"), want, strict=True):
            np.testing.assert_allclose(got, ref_value, rtol=1e-10, atol=1e-12)


def test_relu_loops_match_reference_above_the_numpy_threshold():
    x = np.random.default_rng(5).uniform(-1, 1, loops.SMALL + 7).astype(np.float32)
    x[:3] = np.nan, 0.0, -0.0
    gy = np.ones_like(x)
    np.testing.assert_array_equal(loops.relu(x), ref.relu(x[:100].copy()).tolist()
                                  + np.where(x[100:] <= 0, 0, x[100:]).tolist())
    np.testing.assert_array_equal(loops.relu_grad(gy, x), np.where(x <= 0, 0, gy))


_AS_PYTHON = textwrap.dedent("""
    import numpy as np
    from numba.core import config
    assert config.DISABLE_JIT
    from convscope.kernels import fast, reference as ref
    rng = np.random.default_rng(0)
    # (n, c, h, w, o, kh, kw, padding, dilation, groups): blocks of 4 + rest, depthwise
    for n, c, h, w, o, kh, kw, pad, dil, g in [
        (1, 2, 4, 5, 5, 3, 2, ((1, 0), (0, 2)), (1, 1), 1),
        (2, 3, 3, 4, 3, 2, 2, ((1, 1), (1, 1)), (1, 2), 3),
    ]:
        for dtype in (np.float64, np.float32):
            x = rng.uniform(-1, 1, (n, c, h, w)).astype(dtype)
            wt = rng.uniform(-1, 1, (o, c // g, kh, kw)).astype(dtype)
            b = rng.uniform(-1, 1, o).astype(dtype)
            geo = ((1, 1), pad, dil, g)
            y = fast.conv2d(x, wt, b, *geo, algo="direct")
            gy = rng.uniform(-1, 1, y.shape).astype(dtype)
            pairs = [
                (y, ref.conv2d(x, wt, b, *geo)),
                (fast.conv2d_grad_input(gy, wt, (h, w), *geo, algo="direct"),
                 ref.conv2d_grad_input(gy, wt, (h, w), *geo)),
                (fast.conv2d_grad_weight(gy, x, (kh, kw), *geo, algo="direct"),
                 ref.conv2d_grad_weight(gy, x, (kh, kw), *geo)),
            ]
            yr = fast.conv2d_relu(x, wt, b, *geo, algo="direct")
            need = (True, True, True)
            pairs += list(zip((yr,) + fast.conv2d_relu_grads(gy, yr, x, wt, need, *geo),
                              (ref.conv2d_relu(x, wt, b, *geo),)
                              + ref.conv2d_relu_grads(gy, yr, x, wt, need, *geo)))
            for got, want in pairs:
                assert got.dtype == dtype
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the blocked matrix product: stride 2 with groups (panels packed by each task, and
    # the whole im2col matrix packed once), narrow rows (runs shorter than a vector)
    from convscope.kernels import panel
    for prepack in (0, 1 << 30):
        panel.PREPACK_BYTES = prepack
        for dtype in (np.float64, np.float32):
            x = rng.uniform(-1, 1, (2, 4, 5, 7)).astype(dtype)
            wt = rng.uniform(-1, 1, (6, 2, 3, 3)).astype(dtype)
            b = rng.uniform(-1, 1, 6).astype(dtype)
            geo = ((2, 2), ((1, 1), (0, 2)), (1, 1), 2)
            y = fast.conv2d(x, wt, b, *geo, algo="panel")
            gy = rng.uniform(-1, 1, y.shape).astype(dtype)
            pairs = [
                (y, ref.conv2d(x, wt, b, *geo)),
                (fast.conv2d_grad_input(gy, wt, (5, 7), *geo, algo="panel"),
                 ref.conv2d_grad_input(gy, wt, (5, 7), *geo)),
                (fast.conv2d_grad_weight(gy, x, (3, 3), *geo, algo="panel"),
                 ref.conv2d_grad_weight(gy, x, (3, 3), *geo)),
            ]
            for got, want in pairs:
                assert got.dtype == dtype
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the forward product with the channels as the lanes: 3 x 3 stride 2 over channels past
    # a vector, and a 1 x 1 kernel with stride 2 (every other row and column)
    panel.NHWC_POSITIONS = 4
    for dtype in (np.float64, np.float32):
        lanes = 64 // np.dtype(dtype).itemsize
        for kernel, stride, pad in (((3, 3), (2, 2), ((1, 1), (1, 1))),
                                    ((1, 1), (2, 2), ((0, 0), (0, 0)))):
            x = rng.uniform(-1, 1, (2, 17 * (1 + 8 * (kernel == (1, 1))), 5, 2 * lanes + 3)
                            ).astype(dtype)
            wt = rng.uniform(-1, 1, (4 * lanes, x.shape[1], *kernel)).astype(dtype)
            b = rng.uniform(-1, 1, 4 * lanes).astype(dtype)
            geo = (stride, pad, (1, 1), 1)
            np.testing.assert_allclose(panel.conv2d(x, wt, b, *geo, relu=True),
                                       np.maximum(ref.conv2d(x, wt, b, *geo), 0), rtol=1e-4,
                                       atol=1e-4)
    # the 1 x 1 weight gradient as GY @ Xs (every other row and column, channels last)
    panel.POINTWISE_WGRAD_POSITIONS, panel.POINTWISE_WGRAD_OUT = 1, 4
    for dtype in (np.float64, np.float32):
        lanes = 64 // np.dtype(dtype).itemsize
        x = rng.uniform(-1, 1, (2, 4 * lanes, 5, 7)).astype(dtype)
        gy = rng.uniform(-1, 1, (2, 8, 3, 4)).astype(dtype)
        geo = ((2, 2), ((0, 0), (0, 0)), (1, 1), 1)
        np.testing.assert_allclose(panel.conv2d_grad_weight(gy, x, (1, 1), *geo),
                                   ref.conv2d_grad_weight(gy, x, (1, 1), *geo), rtol=1e-4,
                                   atol=1e-4)
    # the strided input gradient by phases (gy padded, its weights transposed by tiles,
    # the zipped write-out), and a weight gradient whose transpose has whole tiles
    panel.PHASE_POSITIONS, panel.PHASE_FILL = 0, 0
    for dtype in (np.float64, np.float32):
        lanes = 64 // np.dtype(dtype).itemsize
        wt = rng.uniform(-1, 1, (lanes + 3, 16, 3, 3)).astype(dtype)
        geo = ((2, 2), ((1, 1), (1, 1)), (1, 1), 1)
        gy = rng.uniform(-1, 1, (2, lanes + 3, 4, lanes + 2)).astype(dtype)
        hw = (8, 2 * lanes + 4)
        np.testing.assert_allclose(panel.conv2d_grad_input(gy, wt, hw, *geo),
                                   ref.conv2d_grad_input(gy, wt, hw, *geo), rtol=1e-4, atol=1e-5)
        x = rng.uniform(-1, 1, (2, 16, *hw)).astype(dtype)
        np.testing.assert_allclose(panel.conv2d_grad_weight(gy, x, (3, 3), *geo),
                                   ref.conv2d_grad_weight(gy, x, (3, 3), *geo), rtol=1e-4,
                                   atol=1e-5)
    # Winograd F(2x2, 3x3): an odd output (a last tile half outside), forward with ReLU,
    # the input gradient through a ReLU's rule
    for dtype in (np.float64, np.float32):
        x = rng.uniform(-1, 1, (1, 2, 5, 6)).astype(dtype)
        wt = rng.uniform(-1, 1, (3, 2, 3, 3)).astype(dtype)
        b = rng.uniform(-1, 1, 3).astype(dtype)
        geo = ((1, 1), ((1, 0), (1, 1)), (1, 1), 1)
        y = fast.conv2d_relu(x, wt, b, *geo, algo="winograd")
        gy = rng.uniform(-1, 1, y.shape).astype(dtype)
        xr = np.maximum(x, 0)
        gx = fast.conv2d_grads(gy, xr, wt, (True, False, False), *geo, algo="winograd",
                               input_mask=True)[0]
        np.testing.assert_allclose(y, ref.conv2d_relu(x, wt, b, *geo), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            gx, ref.relu_grad(ref.conv2d_grad_input(gy, wt, (5, 6), *geo), xr), rtol=1e-4,
            atol=1e-5)
    # depthwise with column stride 2 (even/odd column planes, the interleaving gradient),
    # and 3 x 3 stride 1 on rows of two vectors and more (aligned rows, a column tail)
    for dtype, stride, w_in in [(t, s, n) for t in (np.float64, np.float32)
                                for s, n in (((2, 2), 19), ((1, 1), 35))]:
        x = rng.uniform(-1, 1, (1, 2, 3, w_in)).astype(dtype)
        wt = rng.uniform(-1, 1, (2, 1, 3, 3)).astype(dtype)
        geo = (stride, ((1, 1), (1, 0)), (1, 1), 2)
        y = fast.conv2d(x, wt, None, *geo, algo="depthwise")
        gy = rng.uniform(-1, 1, y.shape).astype(dtype)
        for got, want in [
            (y, ref.conv2d(x, wt, None, *geo)),
            (fast.conv2d_grad_input(gy, wt, (3, w_in), *geo, algo="depthwise"),
             ref.conv2d_grad_input(gy, wt, (3, w_in), *geo)),
            (fast.conv2d_grad_weight(gy, x, (3, 3), *geo, algo="depthwise"),
             ref.conv2d_grad_weight(gy, x, (3, 3), *geo)),
        ]:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    from convscope.kernels import loops
    x = rng.integers(-2, 3, (2, 2, 5, 6)).astype(np.float32)
    y_ref, idx_ref = ref.max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), False)
    y, idx = loops.max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), y_ref.shape[2:])
    assert (y == y_ref).all() and (idx == idx_ref).all()
    gx = loops.max_pool2d_grad(y, idx, (5, 6))
    assert np.allclose(gx, ref.max_pool2d_grad(y, idx, (5, 6)))
    div = fast._avg_setup((5, 6), (3, 2), (2, 1), (1, 1), False, True)[1]
    y = loops.avg_pool2d(x, (3, 2), (2, 1), (1, 1), div)
    assert np.allclose(y, ref.avg_pool2d(x, (3, 2), (2, 1), (1, 1), False, True))
    gx = loops.avg_pool2d_grad(y, (5, 6), (3, 2), (2, 1), (1, 1), div)
    assert np.allclose(gx, ref.avg_pool2d_grad(y, (5, 6), (3, 2), (2, 1), (1, 1), False, True))
    loops.SMALL = 0
    assert (loops.relu(x) == ref.relu(x)).all()
    assert (loops.relu_grad(x, x) == ref.relu_grad(x, x)).all()
    x = rng.integers(-2, 3, (1, 2, 34, 37)).astype(np.float32)
    win = ((2, 2), (2, 2), (0, 0), (1, 1))
    y, idx = ref.max_pool2d(x, *win, False)
    gx = loops.max_pool2d_grad(y, idx, (34, 37), y, win)
    assert (gx == ref.max_pool2d_grad(y, idx, (34, 37), y)).all()
    print("ok")
""")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 37, 50), (2, 5, 3), (1, 64, 8)])
def test_tiles_transposed_on_one_or_two_threads(shape, dtype):
    # the tile transposer (whole tiles of a vector's lanes squared, edges value by value)
    # under tasks handed out on demand: every task run once, on 1 or 2 threads
    import numba

    from convscope.kernels import panel

    a = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    for threads in (1, 2):
        out = np.full((shape[0], shape[2], shape[1]), np.nan, dtype)
        panel._jit().transpose_planes(a, out, min(threads, numba.get_num_threads()))
        np.testing.assert_array_equal(out, a.transpose(0, 2, 1))


@pytest.mark.parametrize(("n_tasks", "threads"), [(1, 2), (7, 2), (8, 2), (10, 3), (5, 1)])
def test_tasks_dealt_in_strands_each_once(n_tasks, threads):
    # compiled and as plain Python: every task exactly once, the k-th number taken in
    # strand k % threads (neighbouring tasks n_tasks / threads apart), then -1 for good
    from convscope.kernels._jit.tasks import next_task, take

    for deal in (next_task, next_task.py_func):
        counter = np.zeros(1, np.int64)
        got = [deal(counter, n_tasks, threads) for _ in range(n_tasks + 2)]
        assert sorted(got[:n_tasks]) == list(range(n_tasks)) and got[n_tasks:] == [-1, -1]
        size = -(-n_tasks // threads)
        firsts = [k * size for k in range(threads) if k * size < n_tasks]
        assert got[:len(firsts)] == firsts
    counter = np.zeros(1, np.int64)
    assert [take(counter) for _ in range(3)] == [0, 1, 2] and counter[0] == 3


def test_compiled_loops_run_as_plain_python():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _AS_PYTHON], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_keep_heap_runs_once_and_can_be_turned_off(monkeypatch):
    from convscope.kernels import _heap

    monkeypatch.setattr(_heap, "_done", False)
    monkeypatch.setenv("CONVSCOPE_KEEP_HEAP", "0")
    assert _heap.keep_heap() is False  # turned off
    monkeypatch.setattr(_heap, "_done", False)
    monkeypatch.delenv("CONVSCOPE_KEEP_HEAP")
    first = _heap.keep_heap()
    assert _heap.keep_heap() is False  # once per process
    import platform

    assert first == (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 2, 40, 40), (2, 3, 41, 37), (1, 2, 34, 70)])
def test_max_pool_2x2_gradient_loop_matches_reference(shape, dtype):
    # 2 x 2 windows, stride 2: each cell written once; odd last rows/columns get zeros;
    # with the pool's output as a ReLU mask and without
    rng = np.random.default_rng(12)
    x = rng.integers(-3, 4, shape).astype(dtype)  # ties: the first maximum wins
    x.flat[[5, 77]] = np.nan
    windows = ((2, 2), (2, 2), (0, 0), (1, 1))
    y, idx = ref.max_pool2d(x, *windows, False)
    gy = rng.standard_normal(y.shape).astype(dtype)
    for mask in (None, y):
        got = loops.max_pool2d_grad(gy, idx, shape[2:], mask, windows)
        np.testing.assert_array_equal(got, ref.max_pool2d_grad(gy, idx, shape[2:], mask))
        assert got.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), [
    ((3, 3), (2, 2), (1, 1), (1, 1)), ((2, 2), (2, 2), (1, 1), (1, 1)),
    ((3, 3), (1, 2), (1, 1), (2, 1)), ((4, 3), (2, 1), (2, 1), (1, 1)),
])
def test_padded_max_pool_in_a_minus_inf_buffer_with_ceil_mode(kernel, stride, padding,
                                                               dilation, dtype):
    # padded pooling takes the -inf buffer loop (rows of a vector or more); ceil mode adds
    # windows hanging past the padding; edges of -inf: the first real cell must win
    rng = np.random.default_rng(13)
    x = rng.integers(-3, 4, (3, 2, 13, 70)).astype(dtype)
    x[0, 0, :, :5] = -np.inf
    x[1, 1, :3, :] = -np.inf
    x[rng.random(x.shape) < 0.03] = np.nan
    for ceil in (False, True):
        args = (kernel, stride, padding, dilation, ceil)
        y_ref, idx_ref = ref.max_pool2d(x, *args)
        y, idx = loops.max_pool2d(x, kernel, stride, padding, dilation, y_ref.shape[2:])
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("case", PHASES[:3], ids=str)
def test_phases_with_nan_and_inf_input_take_the_exact_path(case):
    # the phase kernels' zero entries would multiply a NaN/inf into sums that do not
    # contain it: such inputs go to the gemm path and give the reference's values
    x, w, b, gy = case.arrays(np.random.default_rng(14), np.float64)
    x.flat[[0, 9]] = np.nan, np.inf
    geo = case.geometry
    with np.errstate(invalid="ignore"):
        pairs = [
            (fast.conv2d(x, w, b, *geo, algo="phases"), ref.conv2d(x, w, b, *geo)),
            (fast.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo, algo="phases"),
             ref.conv2d_grad_weight(gy, x, (case.kh, case.kw), *geo)),
        ]
    for got, want in pairs:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("n", "k", "m"), [(8, 512, 1000), (5, 700, 900), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_paths_agree_with_numpy(n, k, m, dtype):
    """Small products by einsum, larger ones on the compiled loops (not BLAS's threads)."""
    rng = np.random.default_rng(n * k)
    a = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal((k, m)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    got = fast.matmul(a, b)
    assert got.dtype == dtype and got.shape == (n, m)
    bound = 2 * k * np.finfo(dtype).eps * (np.abs(a) @ np.abs(b))
    assert (np.abs(got - want) <= bound).all()
    np.testing.assert_allclose(fast.matmul(a.T.copy().T, b[:, ::1]), got, rtol=1e-6 if
                               dtype == np.float32 else 1e-13)


def test_compiled_code_is_dropped_when_any_loop_file_changes(tmp_path):
    # Numba keys a cached function on its own file only; a change to a helper it inlines
    # from another file must still drop the cached machine code (else the old code runs)
    from convscope.kernels._jit import MARK, refresh_cache

    (tmp_path / "loops.py").write_text("def f(): return helper()\n")
    (tmp_path / "rows.py").write_text("def helper(): return 1\n")
    cache = tmp_path / "__pycache__"
    assert refresh_cache(tmp_path)  # first time: no mark yet
    for name in ("loops.f-1.py311.nbi", "loops.f-1.py311.1.nbc", "rows.cpython-311.pyc"):
        (cache / name).write_bytes(b"x")
    assert not refresh_cache(tmp_path)  # nothing changed: the cache stays
    assert (cache / "loops.f-1.py311.nbi").exists()
    (tmp_path / "rows.py").write_text("def helper(): return 2\n")  # only the helper's file
    assert refresh_cache(tmp_path)
    assert sorted(p.name for p in cache.iterdir()) == [MARK, "rows.cpython-311.pyc"]
    assert not refresh_cache(tmp_path)


def test_shared_im2col_rows_do_not_spill_into_another_tasks_rows():
    # pack_all's tasks write disjoint row ranges of one matrix concurrently; a row's last
    # run is written by whole vectors, so a row must have room for that spill (else it
    # lands in the next task's first row, a race: seen with a task run alone)
    from numba import njit

    from convscope.kernels import panel
    from convscope.kernels._jit.panel import _pack_cols, _segments

    @njit
    def one_task(x, geo, stride, k0, k1, out):
        n_img, n_ch, h, w = x.shape
        segs = np.empty((n_img * geo[8] + 2, 5), np.int64)
        p_total = n_img * geo[8] * geo[9]
        m = _segments(geo, n_ch, h, w, p_total, 0, stride, segs)
        _pack_cols(x.ravel(), 0, h, w, geo, segs, m, p_total, k0, k1, stride, out, k0 * stride)

    x = np.random.default_rng(3).random((8, 8, 8, 8), dtype=np.float32)  # 8-wide rows
    geo = panel._geo((3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), (8, 8))
    positions = 8 * 8 * 8
    for stride, spills in ((positions, True), (panel._row_stride(positions, x.dtype), False)):
        out = np.full(72 * stride + 16, np.nan, np.float32)
        one_task(x, geo, stride, 0, 64, out)  # the first task's 64 rows of 72
        assert np.isnan(out[64 * stride :]).all() != spills
        assert not np.isnan(out[: 64 * stride]).any()
