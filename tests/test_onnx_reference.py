"""The fast kernels against ONNX Runtime, an independent implementation, in float32.

Each test builds a one-node ONNX graph (Conv, MaxPool, AveragePool, Relu), runs it with
ONNX Runtime on one CPU thread and compares it to :mod:`convscope.kernels.fast`. Both sides
round in float32, so sums are compared with twice the float32 error bound
(tests/tolerance.py); a maximum is exact and its index must match.

ONNX pads are ``[top, left, bottom, right]``. ORT rejects nothing we need here, but an
empty batch is not tried (N >= 1 throughout).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import strategies as st

from conv_cases import CONV_CASES, POOL_CASES, conv_configs, generated, pool_configs, seeds
from convscope.kernels import fast
from tolerance import U32, assert_within_bound

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper = onnx.helper

OPSET = 19
F32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64


def run_node(op, inputs, outputs, **attrs):
    """Run one ONNX node on named float32 inputs; ``outputs`` is ``[(name, elem_type)]``."""
    node = helper.make_node(op, list(inputs), [name for name, _ in outputs], **attrs)
    graph = helper.make_graph(
        [node],
        op.lower(),
        [helper.make_tensor_value_info(k, F32, v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(name, t, [None] * 4) for name, t in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9  # understood by every ORT release that has opset 19
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, inputs)


# --------------------------------------------------------------------------- conv


def check_conv(case, seed):
    x, w, b, _ = case.arrays(np.random.default_rng(seed), np.float32)
    (pt, pb), (pl, pr) = case.padding
    (want,) = run_node(
        "Conv",
        {"x": x, "w": w, "b": b},
        [("y", F32)],
        kernel_shape=[case.kh, case.kw],
        strides=list(case.stride),
        pads=[pt, pl, pb, pr],
        dilations=list(case.dilation),
        group=case.groups,
    )
    got = fast.conv2d(x, w, b, *case.geometry)
    assert got.dtype == np.float32 and got.shape == want.shape
    mag = fast.conv2d(
        *(np.abs(v.astype(np.float64)) for v in (x, w)),
        np.abs(b.astype(np.float64)),
        *case.geometry,
    )
    assert_within_bound(got, want, mag, case.k_forward + 1, U32, 2.0, what=f"Conv {case}")


@pytest.mark.parametrize("case", [c for c in CONV_CASES if c.n > 0], ids=str)
def test_conv_matches_onnxruntime(case):
    check_conv(case, 10)


@generated(conv_configs(min_batch=1), seeds, examples=60)
def test_conv_matches_onnxruntime_generated(case, seed):
    check_conv(case, seed)


# --------------------------------------------------------------------------- pooling


def _pool_attrs(case):
    ph, pw = case.padding
    return dict(
        kernel_shape=list(case.kernel),
        strides=list(case.stride),
        pads=[ph, pw, ph, pw],
        ceil_mode=int(case.ceil_mode),
    )


def check_max_pool(case, seed):
    x = np.random.default_rng(seed).standard_normal(case.x_shape).astype(np.float32)
    want, want_idx = run_node(
        "MaxPool",
        {"x": x},
        [("y", F32), ("idx", I64)],
        dilations=list(case.dilation),
        **_pool_attrs(case),
    )
    got, idx = fast.max_pool2d(
        x, case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode
    )
    assert got.shape == want.shape, f"MaxPool {case}: {got.shape} != {want.shape}"
    # A window with no input cell (dilation stepping over a tiny input, e.g. H=1, k=2,
    # d=2, p=1): we give -inf and index -1 as PyTorch's value; ORT 1.32 gives -FLT_MAX and
    # a meaningless negative index. Pin ORT's value there and compare everything else.
    empty = idx < 0
    np.testing.assert_array_equal(want[empty], np.finfo(np.float32).min)
    np.testing.assert_array_equal(got[empty], -np.inf)
    np.testing.assert_array_equal(got[~empty], want[~empty])
    # ORT's indices count over the whole NCHW tensor; ours within one (H, W) plane.
    n, c = case.n, case.c
    plane = (np.arange(n * c) * case.h * case.w).reshape(n, c, 1, 1)
    np.testing.assert_array_equal((idx + plane)[~empty], want_idx[~empty])


def check_avg_pool(case, seed, count_include_pad):
    x = np.random.default_rng(seed).uniform(-1, 1, case.x_shape).astype(np.float32)
    (want,) = run_node(
        "AveragePool",
        {"x": x},
        [("y", F32)],
        count_include_pad=int(count_include_pad),
        **_pool_attrs(case),
    )
    args = (case.kernel, case.stride, case.padding, case.ceil_mode, count_include_pad)
    got = fast.avg_pool2d(x, *args)
    assert got.shape == want.shape, f"AveragePool {case}: {got.shape} != {want.shape}"
    mag = fast.avg_pool2d(np.abs(x.astype(np.float64)), *args)
    k = math.prod(case.kernel) + 1
    assert_within_bound(got, want, mag, k, U32, 2.0, what=f"AveragePool {case}")


@pytest.mark.parametrize("case", [c for c in POOL_CASES if c.n > 0], ids=str)
def test_max_pool_matches_onnxruntime(case):
    check_max_pool(case, 11)


@generated(pool_configs(min_batch=1), seeds, examples=60)
def test_max_pool_matches_onnxruntime_generated(case, seed):
    check_max_pool(case, seed)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", [c for c in POOL_CASES if c.n > 0], ids=str)
def test_avg_pool_matches_onnxruntime(case, count_include_pad):
    check_avg_pool(case, 12, count_include_pad)


@generated(pool_configs(min_batch=1), seeds, st.booleans(), examples=60)
def test_avg_pool_matches_onnxruntime_generated(case, seed, count_include_pad):
    check_avg_pool(case, seed, count_include_pad)


# --------------------------------------------------------------------------- relu


def test_relu_matches_onnxruntime():
    x = np.random.default_rng(13).standard_normal((2, 3, 5, 4)).astype(np.float32)
    x[0, 0, 0, :3] = [0.0, -0.0, np.nan]
    (want,) = run_node("Relu", {"x": x}, [("y", F32)])
    np.testing.assert_array_equal(fast.relu(x), want)


def test_ceil_mode_drops_a_last_window_that_starts_in_the_padding():
    # H=5, k=2, s=2, p=1: ceil((5 + 2 - 2) / 2) + 1 = 4 windows, but the 4th starts at
    # padded index 6 (the right padding), so PyTorch keeps 3. ORT 1.32 agrees.
    case = next(c for c in POOL_CASES if c.name == "ceil_pad_drops_last")
    assert case.out_hw() == (3, 3)
    x = np.random.default_rng(14).standard_normal(case.x_shape).astype(np.float32)
    y, _ = run_node("MaxPool", {"x": x}, [("y", F32), ("idx", I64)], **_pool_attrs(case))
    (z,) = run_node("AveragePool", {"x": x}, [("y", F32)], count_include_pad=1, **_pool_attrs(case))
    assert y.shape == z.shape == (1, 2, 3, 3)
