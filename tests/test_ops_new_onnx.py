"""The new operations against ONNX Runtime, an independent implementation, in float32.

One-node ONNX graphs (as tests/test_onnx_reference.py builds them): ConvTranspose, Resize
(nearest: ``asymmetric`` + ``floor``; nearest-exact: ``half_pixel`` + ``round_prefer_ceil``;
bilinear: ``half_pixel`` or ``align_corners``), GlobalAveragePool and AveragePool (adaptive
pooling with whole windows), the activations (Sigmoid, Tanh, LeakyRelu, HardSigmoid,
HardSwish, Clip for relu6 and hardtanh, Gelu of opset 20, Elu, Softmax, LogSoftmax), Concat
and Add. Sums are held to twice the float32 error bound of tests/tolerance.py; elementwise
functions to a few units in the last place (ONNX Runtime's own float32 approximations).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

import convscope as cs
from conv_cases import generated, seeds
from convscope import functional as F
from test_ops_new import transpose_cases
from tolerance import U32, assert_within_bound

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper = onnx.helper
F32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64


def run(op, inputs, consts=None, opset=19, **attrs):
    """Run one ONNX node on float32 ``inputs`` (name -> array); ``consts`` become
    initializers (name -> array, int64 or float32); returns the one output."""
    consts = consts or {}
    node = helper.make_node(op, list(inputs) + list(consts), ["y"], **attrs)
    inits = [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    graph = helper.make_graph(
        [node], op.lower(),
        [helper.make_tensor_value_info(k, F32, v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", F32, [None] * 4)], initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def assert_close_elementwise(got, want, x, what=""):
    """``|got - want| <= 4e-6 |want| + 2e-7 (1 + |x|)``: a few float32 units in the last
    place, and an absolute part for the tails where ONNX Runtime's float32 approximations
    (its Sigmoid, for one) are accurate in absolute terms only and where ``1 + tanh`` or
    ``1 + erf`` cancel."""
    err = np.abs(got.astype(np.float64) - want)
    allowed = 4e-6 * np.abs(want) + 2e-7 * (1 + np.abs(x))
    bad = ~(err <= allowed)
    assert not bad.any(), (what, x[bad][:5], got[bad][:5], want[bad][:5])


def _x(seed, shape, low=-3.0, high=3.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


# --------------------------------------------------------------------------- ConvTranspose
@generated(transpose_cases(max_hw=6, op_below_stride=True), seeds, examples=40)
def test_conv_transpose_matches_onnxruntime(case, seed):
    """(ONNX Runtime 1.32 refuses output_padding >= stride, which PyTorch and convscope
    allow when it is below the dilation; those are compared with PyTorch only.)"""
    xs, ws, has_b, s, p, op, g, d = case
    rng = np.random.default_rng(seed)
    x = rng.uniform(-9, 9, xs).astype(np.float32)
    w = rng.uniform(-1, 1, ws).astype(np.float32)
    b = rng.uniform(-1, 1, ws[1] * g).astype(np.float32)
    want = run("ConvTranspose", {"x": x, "w": w, "b": b}, kernel_shape=list(ws[2:]),
               strides=list(s), pads=[p[0], p[1], p[0], p[1]], output_padding=list(op),
               dilations=list(d), group=g)
    got = F.conv_transpose2d(x, w, b, s, p, op, g, d).numpy()
    mag = F.conv_transpose2d(*(cs.tensor(np.abs(v).astype(np.float64)) for v in (x, w, b)),
                             s, p, op, g, d).numpy()
    k = xs[1] // g * ws[2] * ws[3] + 1
    assert_within_bound(got, want, mag, k, U32, 2.0, what=f"ConvTranspose {case}")


# --------------------------------------------------------------------------- Resize
RESIZE = {  # mode -> ONNX attributes
    "nearest": dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor"),
    "nearest-exact": dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                          nearest_mode="round_prefer_ceil"),
    "bilinear": dict(mode="linear", coordinate_transformation_mode="half_pixel"),
    "bilinear-corners": dict(mode="linear", coordinate_transformation_mode="align_corners"),
}


@generated(st.sampled_from(sorted(RESIZE)), st.tuples(st.integers(1, 9), st.integers(1, 9)),
           st.tuples(st.integers(1, 17), st.integers(1, 17)), seeds, examples=80)
def test_interpolate_matches_onnx_resize(mode, hw, out, seed):
    x = _x(seed, (2, 3) + hw)
    sizes = np.array((2, 3) + out, np.int64)
    empty = np.zeros(0, np.float32)
    want = run("Resize", {"x": x}, {"roi": empty, "scales": empty, "sizes": sizes},
               **RESIZE[mode])
    kw = dict(mode="bilinear", align_corners=mode == "bilinear-corners") if "bilinear" in mode \
        else dict(mode=mode)
    got = F.interpolate(x, size=out, **kw).numpy()
    if mode.startswith("nearest"):  # the same source cells, so the same values
        np.testing.assert_array_equal(got, want, err_msg=f"{mode} {hw} -> {out}")
    else:
        # the two sides round the source coordinate and its weights differently: an error
        # of a few u * max(hw) in a weight moves the result by that times |x1 - x0|, which
        # the interpolated |x| does not bound where the weight is near 0 or 1 (found: 3.4e-7
        # against 2.5e-7 at a value of -0.0144 between larger neighbours); the plane's
        # largest |x| does
        mag = np.broadcast_to(np.abs(x).max(axis=(2, 3), keepdims=True), got.shape)
        assert_within_bound(got, want, mag, 4, U32, 8.0 * max(hw), what=f"{mode} {hw}->{out}")


# --------------------------------------------------------------------------- pooling
@generated(st.tuples(st.integers(1, 9), st.integers(1, 9)), seeds, examples=20)
def test_global_adaptive_pool_matches_global_average_pool(hw, seed):
    x = _x(seed, (2, 5) + hw)
    want = run("GlobalAveragePool", {"x": x})
    got = F.adaptive_avg_pool2d(x, 1).numpy()
    assert_within_bound(got, want, np.abs(x).mean(axis=(2, 3), keepdims=True),
                        hw[0] * hw[1] + 1, U32, 2.0, what="GlobalAveragePool")


@generated(st.tuples(st.integers(1, 4), st.integers(1, 4)),
           st.tuples(st.integers(1, 3), st.integers(1, 3)), seeds, examples=20)
def test_adaptive_pool_with_whole_windows_matches_average_pool(out, k, seed):
    x = _x(seed, (1, 3, out[0] * k[0], out[1] * k[1]))
    want = run("AveragePool", {"x": x}, kernel_shape=list(k), strides=list(k))
    got = F.adaptive_avg_pool2d(x, out).numpy()
    mag = F.adaptive_avg_pool2d(np.abs(x), out).numpy()
    assert_within_bound(got, want, mag, k[0] * k[1] + 1, U32, 2.0, what="AveragePool")


# --------------------------------------------------------------------------- elementwise
ELEMENTWISE = [  # (name, convscope function, ONNX op, attributes, constant inputs, opset)
    ("sigmoid", F.sigmoid, "Sigmoid", {}, {}, 19),
    ("tanh", F.tanh, "Tanh", {}, {}, 19),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), "LeakyRelu", {"alpha": 0.2}, {}, 19),
    ("hardsigmoid", F.hardsigmoid, "HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, {}, 19),
    ("hardswish", F.hardswish, "HardSwish", {}, {}, 19),
    ("relu6", F.relu6, "Clip", {}, {"lo": np.float32(0), "hi": np.float32(6)}, 19),
    ("hardtanh", lambda x: F.hardtanh(x, -2.0, 1.5), "Clip", {},
     {"lo": np.float32(-2), "hi": np.float32(1.5)}, 19),
    ("gelu", F.gelu, "Gelu", {}, {}, 20),
    ("gelu_tanh", lambda x: F.gelu(x, "tanh"), "Gelu", {"approximate": "tanh"}, {}, 20),
    ("elu", lambda x: F.elu(x, 0.7), "Elu", {"alpha": 0.7}, {}, 19),
    ("softmax", lambda x: F.softmax(x, 1), "Softmax", {"axis": 1}, {}, 19),
    ("log_softmax", lambda x: F.log_softmax(x, -1), "LogSoftmax", {"axis": -1}, {}, 19),
]


@pytest.mark.parametrize("name,fn,op,attrs,consts,opset", ELEMENTWISE,
                         ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_matches_onnxruntime(name, fn, op, attrs, consts, opset):
    x = _x(0, (2, 4, 5, 6), -6.0, 6.0)
    x[0, 0, 0, :6] = [-3.0, 3.0, 0.0, 6.0, -6.0, 1.5]  # the kinks themselves
    want = run(op, {"x": x}, consts, opset, **attrs)
    got = fn(x).numpy()
    assert got.dtype == np.float32
    assert_close_elementwise(got, want, x, name)


def test_silu_matches_x_times_onnx_sigmoid():
    x = _x(1, (2, 3, 4, 4), -8.0, 8.0)
    want = x * run("Sigmoid", {"x": x})
    assert_close_elementwise(F.silu(x).numpy(), want, x, "silu")


# --------------------------------------------------------------------------- joins
def test_cat_and_add_match_onnxruntime():
    a, b = _x(2, (1, 4, 3, 5)), _x(3, (1, 2, 3, 5))
    np.testing.assert_array_equal(cs.cat([a, b], 1).numpy(),
                                  run("Concat", {"a": a, "b": b}, axis=1))
    c = _x(4, (1, 4, 1, 5))
    np.testing.assert_array_equal(cs.add(a, c).numpy(), run("Add", {"a": a, "c": c}))
