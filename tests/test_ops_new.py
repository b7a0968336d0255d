"""The operations of graph networks (issue 11) without PyTorch: reference twins, finite
differences, float32 against float64, semantics and pinned errors.

- ``conv_transpose2d``: the fast conv kernels against the reference loops (values and the
  three gradients), and the adjoint identity ``<conv2d(y), x> == <y, conv_transpose2d(x)>``.
- ``interpolate`` and ``adaptive_avg_pool2d``: :mod:`kernels.resample` against its plain-loop
  twin :mod:`kernels.resample_reference` on generated shapes, both dtypes.
- Every op's gradient against float64 central differences (tests/gradcheck.py).
- float32 results against the float64 ones within the bounds of shared/notes/verification.md.

ONNX Runtime is the independent reference in ``test_ops_new_onnx.py``; PyTorch in
``test_ops_new_torch.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

import convscope as cs
from conv_cases import generated, seeds
from convscope import functional as F
from convscope.errors import ArgumentError, ArgumentTypeError, ShapeError
from convscope.kernels import fast, reference, resample, resample_reference
from convscope.kernels import transpose as KT
from errorcheck import check_error
from gradcheck import check_gradients
from tolerance import U32, assert_within_bound


# --------------------------------------------------------------------------- strategies
@st.composite
def transpose_cases(draw, max_hw: int = 5, op_below_stride: bool = False):
    """A valid conv_transpose2d request: (x shape, w shape, bias?, stride, padding,
    output_padding, groups, dilation). ``op_below_stride``: output_padding < stride even
    where dilation would allow more (ONNX Runtime refuses that)."""
    g = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    op = tuple(draw(st.integers(0, (si if op_below_stride else max(si, di)) - 1))
               for si, di in zip(s, d, strict=True))
    hw = (draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw)))
    # padding up to what still leaves an output of at least 1
    p = tuple(
        draw(st.integers(0, max(0, min(3, ((n - 1) * si + di * (ki - 1) + oi) // 2))))
        for n, si, di, ki, oi in zip(hw, s, d, k, op, strict=True)
    )
    n = draw(st.integers(1, 2))
    return (n, cin) + hw, (cin, cout // g) + k, draw(st.booleans()), s, p, op, g, d


@st.composite
def resample_cases(draw):
    """``(x shape, out size, mode, align_corners, scales)`` for the resample kernels."""
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear"]))
    dims = draw(st.sampled_from([1, 2]))
    in_size = tuple(draw(st.integers(1, 6)) for _ in range(dims))
    if draw(st.booleans()):
        out = tuple(draw(st.integers(1, 9)) for _ in range(dims))
        scales = None
    else:
        factor = draw(st.sampled_from([0.5, 0.75, 1.0, 1.3, 1.5, 2.0, 2.5, 3.0]))
        out = tuple(int(n * factor) for n in in_size)
        if min(out) < 1:
            factor, out = 1.0, in_size
        scales = (factor,) * dims
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + in_size, out, mode, draw(
        st.booleans()) and mode == "linear", scales


def _rng(seed):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- reference twins
@generated(transpose_cases(), seeds, examples=40)
def test_conv_transpose_fast_matches_reference(case, seed):
    xs, ws, has_b, s, p, op, g, d = case
    rng = _rng(seed)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[1] * g) if has_b else None
    args = (s, p, op, d, g)
    y_fast = KT.conv_transpose2d(x, w, b, *args, impl=fast)
    y_ref = KT.conv_transpose2d(x, w, b, *args, impl=reference)
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y_ref.shape)
    need = (True, True, has_b)
    for got, want in zip(KT.conv_transpose2d_grads(gy, x, w, need, *args, impl=fast),
                         KT.conv_transpose2d_grads(gy, x, w, need, *args, impl=reference),
                         strict=True):
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-11)


@generated(transpose_cases(), seeds, examples=30)
def test_conv_transpose_is_the_adjoint_of_conv2d(case, seed):
    """``<conv2d(y, w), x> == <y, conv_transpose2d(x, w)>`` for every y of the output's shape."""
    xs, ws, _, s, p, op, g, d = case
    rng = _rng(seed)
    x, w = cs.tensor(rng.standard_normal(xs)), cs.tensor(rng.standard_normal(ws))
    t = F.conv_transpose2d(x, w, None, s, p, op, g, d).numpy()
    y = rng.standard_normal(t.shape)
    conv = F.conv2d(cs.tensor(y), w, None, s, p, d, g).numpy()  # extra rows: output_padding >= s
    lhs = float((conv[:, :, : xs[2], : xs[3]] * x.numpy()).sum())
    assert lhs == pytest.approx(float((y * t).sum()), rel=1e-10, abs=1e-10)


@generated(resample_cases(), st.sampled_from([np.float32, np.float64]), seeds, examples=60)
def test_interpolate_fast_matches_reference(case, dtype, seed):
    xs, out, mode, corners, scales = case
    rng = _rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    got = resample.interpolate(x, out, mode, corners, scales)
    want = resample_reference.interpolate(x, out, mode, corners, scales)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    gy = rng.standard_normal(got.shape).astype(dtype)
    np.testing.assert_allclose(resample.interpolate_grad(gy, xs[2:], mode, corners, scales),
                               resample_reference.interpolate_grad(gy, xs[2:], mode, corners,
                                                                   scales), rtol=tol, atol=tol)


@generated(st.tuples(st.integers(1, 9), st.integers(1, 9)),
           st.tuples(st.integers(0, 10), st.integers(1, 10)), seeds, examples=40)
def test_adaptive_avg_pool_fast_matches_reference(hw, out, seed):
    rng = _rng(seed)
    x = rng.standard_normal((2, 3) + hw)
    y = resample.adaptive_avg_pool2d(x, out)
    np.testing.assert_allclose(y, resample_reference.adaptive_avg_pool2d(x, out), atol=1e-13)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(resample.adaptive_avg_pool2d_grad(gy, hw),
                               resample_reference.adaptive_avg_pool2d_grad(gy, hw), atol=1e-13)


def test_adaptive_windows_are_pytorchs():
    start, end = resample.adaptive_windows(5, 3)
    assert list(zip(start.tolist(), end.tolist(), strict=True)) == [(0, 2), (1, 4), (3, 5)]
    assert [cs.shapes.adaptive_window(i, 5, 3) for i in range(3)] == [(0, 2), (1, 4), (3, 5)]


def test_nearest_keeps_pytorchs_legacy_special_cases():
    # out == in copies and out == 2 * in halves, whatever the scale factor
    assert resample.nearest_index(3, 3, 1.2).tolist() == [0, 1, 2]
    assert resample.nearest_index(5, 10, 2.1).tolist() == [i // 2 for i in range(10)]
    assert [int(i / 2.1) for i in range(10)] == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4]  # not used
    assert resample.nearest_index(5, 11, 2.2).tolist() == [int(i / 2.2) for i in range(11)]
    assert resample.nearest_index(5, 10, 2.1, exact=True).tolist() == [
        int((i + 0.5) / 2.1) for i in range(10)]


# --------------------------------------------------------------------------- finite differences
def test_conv_transpose_gradients_match_finite_differences():
    rng = _rng(0)
    for kw in (dict(stride=2, padding=1, output_padding=1),
               dict(stride=(1, 2), dilation=(3, 1), output_padding=(2, 1), groups=2),
               dict(stride=3, padding=(0, 2))):
        cin = 4 if kw.get("groups") else 2
        x = rng.standard_normal((1, cin, 3, 2))
        w = rng.standard_normal((cin, 2, 2, 3))
        b = rng.standard_normal(2 * kw.get("groups", 1))
        check_gradients(lambda x, w, b, kw=kw: F.conv_transpose2d(x, w, b, **kw), x, w, b)
    check_gradients(lambda x, w: F.conv_transpose2d(x, w, stride=2), rng.standard_normal(
        (2, 3, 3)), rng.standard_normal((2, 1, 2, 2)))  # unbatched


@pytest.mark.parametrize("kw", [
    dict(scale_factor=2), dict(size=(5, 3)), dict(size=4, mode="nearest-exact"),
    dict(scale_factor=1.7, mode="bilinear"), dict(size=(2, 7), mode="bilinear",
                                                  align_corners=True),
    dict(scale_factor=(0.6, 2.5), mode="bilinear", recompute_scale_factor=True),
], ids=str)
def test_interpolate_gradients_match_finite_differences(kw):
    x = _rng(1).standard_normal((1, 2, 3, 4))
    check_gradients(lambda x: F.interpolate(x, **kw), x)


def test_interpolate_1d_gradients_match_finite_differences():
    x = _rng(2).standard_normal((2, 2, 5))
    check_gradients(lambda x: F.interpolate(x, size=8, mode="linear"), x)
    check_gradients(lambda x: F.interpolate(x, scale_factor=0.5), x)
    check_gradients(lambda x: F.interpolate(x[..., :2], scale_factor=1.25), x)  # 2 -> 2


def test_adaptive_avg_pool_gradients_match_finite_differences():
    x = _rng(3).standard_normal((2, 2, 5, 7))
    for out in (1, (2, 3), (None, 4), (7, 9)):
        check_gradients(lambda x, out=out: F.adaptive_avg_pool2d(x, out), x)


ACTIVATIONS = [
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2)), ("relu6", F.relu6),
    ("hardtanh", lambda x: F.hardtanh(x, -2.0, 1.5)), ("sigmoid", F.sigmoid),
    ("tanh", F.tanh), ("gelu", F.gelu), ("gelu_tanh", lambda x: F.gelu(x, "tanh")),
    ("silu", F.silu), ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid),
    ("elu", lambda x: F.elu(x, 0.7)), ("softmax", lambda x: F.softmax(x, 1)),
    ("log_softmax", lambda x: F.log_softmax(x, 0)), ("softmax_none", lambda x: F.softmax(x, None)),
]


@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_gradients_match_finite_differences(name, fn):
    x = _rng(4).uniform(-7, 7, (2, 3, 2, 2))  # both sides of every kink (none within 1e-6)
    check_gradients(fn, x)


def test_join_gradients_match_finite_differences():
    rng = _rng(5)
    a, b, c = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((1, 4, 3, 3)), \
        rng.standard_normal((1, 1, 3, 3))
    check_gradients(lambda a, b, c: cs.cat([a, b, c], dim=1), a, b, c)
    check_gradients(lambda a, b: cs.cat((a, a * b[:, :2]), dim=-1), a, b)
    check_gradients(lambda a, c: cs.stack([a[0], c[0].reshape(1, 3, 3) * 2], dim=2), a[:, :1], c)
    check_gradients(lambda a, c: cs.add(a, c, alpha=-2.5), a, c)  # broadcast over channels
    check_gradients(lambda a: cs.flatten(a, 1, 2), a)


def test_dropout2d_gradient_matches_finite_differences():
    x = _rng(6).standard_normal((2, 5, 2, 3))
    check_gradients(lambda x: F.dropout2d(x, 0.4, generator=7), x)


# --------------------------------------------------------------------------- float32
@generated(transpose_cases(max_hw=6), seeds, examples=25)
def test_conv_transpose_float32_within_the_error_bound(case, seed):
    xs, ws, has_b, s, p, op, g, d = case
    rng = _rng(seed)
    # float32 values, so that the float64 reference computes from the same inputs
    x = rng.uniform(-9, 9, xs).astype(np.float32).astype(np.float64)
    w = rng.uniform(-1, 1, ws).astype(np.float32).astype(np.float64)
    b = rng.uniform(-1, 1, ws[1] * g).astype(np.float32).astype(np.float64) if has_b else None
    args = (s, p, op, g, d)
    t64 = [None if v is None else cs.tensor(v) for v in (x, w, b)]
    want = F.conv_transpose2d(*t64, *args).numpy()
    got = F.conv_transpose2d(*(None if v is None else v.astype(np.float32) for v in (x, w, b)),
                             *args).numpy()
    mag = F.conv_transpose2d(*(None if v is None else cs.tensor(np.abs(v)) for v in (x, w, b)),
                             *args)
    k = xs[1] // g * ws[2] * ws[3] + 1
    assert got.dtype == np.float32
    assert_within_bound(got, want, mag.numpy(), k, U32, what="conv_transpose2d float32")


@pytest.mark.parametrize("name,fn", ACTIVATIONS + [
    ("interpolate", lambda x: F.interpolate(x, scale_factor=2.5, mode="bilinear")),
    ("interpolate_nearest", lambda x: F.interpolate(x, size=(5, 3))),
    ("adaptive", lambda x: F.adaptive_avg_pool2d(x, (1, 2))),
], ids=[a[0] for a in ACTIVATIONS] + ["interpolate", "interpolate_nearest", "adaptive"])
def test_float32_results_within_tolerance(name, fn):
    """The simple rule of verification.md for inputs of order 1: rtol 1e-4, atol 1e-5 * max."""
    x = _rng(8).uniform(-5, 5, (2, 3, 4, 4))
    want, got = fn(cs.tensor(x)).numpy(), fn(x.astype(np.float32)).numpy()
    assert want.dtype == np.float64
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1, np.abs(want).max()))


# --------------------------------------------------------------------------- semantics
def test_cat_stack_add_flatten_values():
    a, b = np.arange(6.0).reshape(1, 2, 3), np.ones((1, 1, 3))  # float32 inside convscope
    np.testing.assert_array_equal(cs.cat([a, b], 1).numpy(), np.concatenate([a, b], 1))
    np.testing.assert_array_equal(cs.stack([a, a], -1).numpy(), np.stack([a, a], -1))
    np.testing.assert_array_equal(cs.add(a, 2, alpha=3).numpy(), a + 6)  # alpha scales other
    np.testing.assert_array_equal(cs.add(a, b, alpha=3).numpy(), a + 3 * b)
    assert cs.flatten(np.ones((2, 3, 4))).shape == (24,)  # torch.flatten: start_dim=0
    assert F.flatten(np.ones((2, 3, 4))).shape == (2, 12)  # functional.flatten keeps 1
    assert cs.flatten(cs.tensor(3.0)).shape == (1,)
    assert cs.cat([a], 0).dtype == np.float32  # a plain array is float32 (decisions.md)
    assert cs.cat([cs.tensor(a), b.astype(np.float32)], 1).dtype == np.float64


def test_dropout2d_drops_whole_channels_and_scales():
    x = np.ones((4, 50, 3, 3), np.float32)
    y = F.dropout2d(x, 0.3, generator=1).numpy()
    per_map = y.reshape(4, 50, 9)
    assert np.all(per_map.min(axis=2) == per_map.max(axis=2))  # whole maps
    assert set(np.unique(per_map).tolist()) <= {0.0, np.float32(1 / 0.7)}
    assert 0.1 < (per_map[:, :, 0] == 0).mean() < 0.5
    np.testing.assert_array_equal(F.dropout2d(x, 0.3, generator=1).numpy(), y)  # same seed
    np.testing.assert_array_equal(F.dropout2d(x, 0.3, training=False).numpy(), x)
    assert not F.dropout2d(x, 1.0, generator=0).numpy().any()
    assert F.dropout2d(x[0], 0.5, generator=0).shape == (50, 3, 3)  # unbatched (C, H, W)


def test_softmax_and_log_softmax_agree_and_sum_to_one():
    x = cs.tensor(_rng(9).standard_normal((2, 5, 3, 3)) * 30)
    s = F.softmax(x, dim=1).numpy()
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(s), F.log_softmax(x, dim=1).numpy(), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(F.softmax(x, None).numpy(), s)  # 4-D: implicit dim 1
    assert F.softmax(cs.tensor(2.0), 0).item() == 1.0


def test_activations_pass_nan_and_inf_without_warnings():
    x = np.array([np.nan, np.inf, -np.inf, 1e4, -1e4], np.float32)
    for name, fn in ACTIVATIONS[:11]:
        y = fn(x).numpy()
        assert np.isnan(y[0]), name
    assert F.sigmoid(x).numpy()[1:].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_empty_batches_give_empty_results_and_gradients():
    x0 = cs.tensor(np.zeros((0, 4, 5, 5)), requires_grad=True)
    w = cs.tensor(np.ones((4, 3, 3, 3)))
    for fn, shape in [
        (lambda x: F.conv_transpose2d(x, w, stride=2), (0, 3, 11, 11)),
        (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), (0, 4, 10, 10)),
        (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (0, 4, 2, 3)),
        (lambda x: F.softmax(x, 0), (0, 4, 5, 5)), (F.gelu, (0, 4, 5, 5)),
        (lambda x: F.dropout2d(x, 0.5, generator=0), (0, 4, 5, 5)),
        (lambda x: cs.cat([x, x], 1), (0, 8, 5, 5)),
    ]:
        y = fn(x0)
        assert y.shape == shape
        y.backward(np.zeros(shape))
        assert x0.grad.shape == x0.shape


def test_interpolate_examples_by_hand():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    bil = F.interpolate(x, scale_factor=2, mode="bilinear").numpy()[0, 0]
    np.testing.assert_allclose(bil[0], [1.0, 1.25, 1.75, 2.0])  # (i + 0.5) / 2 - 0.5, clamped
    corners = F.interpolate(x, size=3, mode="bilinear", align_corners=True).numpy()[0, 0]
    np.testing.assert_allclose(corners, [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]])
    assert F.interpolate(np.ones((1, 1, 5)), scale_factor=2).shape == (1, 1, 10)  # (N, C, W)
    assert F.adaptive_avg_pool2d(np.ones((3, 4, 5)), (2, None)).shape == (3, 2, 5)  # (C, H, W)


# --------------------------------------------------------------------------- errors
X4, X3 = np.zeros((1, 4, 5, 5)), np.zeros((4, 5, 5))
W = np.zeros((4, 3, 3, 3))

ERRORS = [
    ("output_padding >= stride", lambda: F.conv_transpose2d(X4, W, stride=2, output_padding=2),
     ArgumentError, r"^conv_transpose2d: output_padding must be smaller than stride or dilation "
     r"on each axis\. Fix: use output_padding <= 1 here.*Received: output_padding=\(2, 2\), "
     r"stride=\(2, 2\), dilation=\(1, 1\)\.$"),
    ("transpose channels", lambda: F.conv_transpose2d(X4[:, :3], W), ShapeError,
     r"input depth 3 does not match the weight's in_channels 4.*Fix: pass an input volume "
     r"with 4 channels"),
    ("transpose output too small", lambda: F.conv_transpose2d(X4, W, padding=4), ShapeError,
     r"the output would be -1x-1: padding \(4, 4\).*Fix: use less padding"),
    ("transpose groups", lambda: F.conv_transpose2d(X4, W, groups=3), ArgumentError,
     r"`groups` must divide the weight's first axis \(in_channels = 4\)"),
    ("transpose same", lambda: F.conv_transpose2d(X4, W, padding="same"), ArgumentTypeError,
     r"must be an int or a pair of ints \('same' and 'valid' exist for conv2d only\)"),
    ("transpose bias", lambda: F.conv_transpose2d(X4, W, np.zeros(4)), ShapeError,
     r"bias must have one value per output channel \(3\).*Received: bias shape \(4,\)"),
    ("size and scale", lambda: F.interpolate(X4, size=3, scale_factor=2), ArgumentError,
     r"^interpolate: give exactly one of `size` and `scale_factor`\. Fix: .*Received: size=3, "
     r"scale_factor=2\.$"),
    ("bilinear 3-D", lambda: F.interpolate(X3, scale_factor=2, mode="bilinear"), ShapeError,
     r"^interpolate: mode 'bilinear' needs a 4-D input, got 3-D\. Fix: add a batch axis with "
     r"x\[None\] \(a 3-D input is read as \(N, C, W\), as in PyTorch\)"),
    ("align_corners nearest", lambda: F.interpolate(X4, scale_factor=2, align_corners=True),
     ArgumentError, r"align_corners applies to the linear modes only, not to 'nearest'\. Fix: "),
    ("unknown mode", lambda: F.interpolate(X4, scale_factor=2, mode="bicubic"), ArgumentError,
     r"unsupported mode 'bicubic'\. Fix: use one of 'nearest', 'nearest-exact', 'linear'"),
    ("zero output", lambda: F.interpolate(X4, scale_factor=0.1), ShapeError,
     r"sizes must be at least 1, got input \(5, 5\) and output \(0, 0\)"),
    ("negative scale", lambda: F.interpolate(X4, scale_factor=-2), ArgumentError,
     r"`scale_factor` must be a finite number > 0"),
    ("size entries", lambda: F.interpolate(X4, size=(2, 3, 4)), ShapeError,
     r"`size` has 3 entries for an input with 2 spatial axes \(5, 5\)"),
    ("recompute with size", lambda: F.interpolate(X4, size=3, recompute_scale_factor=True),
     ArgumentError, r"recompute_scale_factor has no meaning with an explicit `size`"),
    ("adaptive size type", lambda: F.adaptive_avg_pool2d(X4, 2.5), ArgumentTypeError,
     r"`output_size` must be an int or a pair of ints.*Received: output_size=2\.5\."),
    ("adaptive negative", lambda: F.adaptive_avg_pool2d(X4, (-1, 2)), ArgumentError,
     r"`output_size` must be >= 0"),
    ("cat shapes", lambda: cs.cat([np.zeros((1, 64, 56, 56)), np.zeros((1, 32, 28, 28))], 1),
     ShapeError, r"^cat: tensors must match except along dim 1; tensor 0 is \(1, 64, 56, 56\), "
     r"tensor 1 is \(1, 32, 28, 28\)\. Fix: resize the volumes to the same height and width"),
    ("cat dim", lambda: cs.cat([X4, X4], 4), ArgumentError,
     r"`dim` must be in \[-4, 3\] for a 4-D input.*Received: dim=4"),
    ("cat ranks", lambda: cs.cat([X4, X3]), ShapeError,
     r"same number of axes.*tensor 0 is \(1, 4, 5, 5\), tensor 1 is \(4, 5, 5\)"),
    ("cat empty", lambda: cs.cat([]), ArgumentError, r"expected at least one tensor"),
    ("cat not a list", lambda: cs.cat(X4), ArgumentTypeError, r"expected a list or tuple"),
    ("stack shapes", lambda: cs.stack([X4, X4[:, :2]]), ShapeError,
     r"tensor 0 is \(1, 4, 5, 5\), tensor 1 is \(1, 2, 5, 5\)"),
    ("add volumes", lambda: cs.add(np.zeros((1, 64, 56, 56)), np.zeros((1, 64, 28, 28))),
     ShapeError, r"^add: volumes 56x56x64 and 28x28x64 cannot be added.*1x1 conv.*Received: "
     r"shapes \(1, 64, 56, 56\) and \(1, 64, 28, 28\)\.$"),
    ("flatten order", lambda: cs.flatten(X4, 2, 1), ArgumentError,
     r"start_dim must not come after end_dim"),
    ("hardtanh bounds", lambda: F.hardtanh(X4, 2.0, 1.0), ArgumentError,
     r"min_val must not be greater than max_val.*min_val=2\.0, max_val=1\.0"),
    ("leaky slope", lambda: F.leaky_relu(X4, "a"), ArgumentTypeError,
     r"`negative_slope` must be a number"),
    ("gelu approximate", lambda: F.gelu(X4, "fast"), ArgumentError,
     r"`approximate` must be 'none' or 'tanh'"),
    ("softmax dim", lambda: F.softmax(X4, 4), ArgumentError, r"`dim` must be in \[-4, 3\]"),
    ("dropout2d p", lambda: F.dropout2d(X4, 1.5), ArgumentError, r"p must be a probability"),
    ("dropout2d rank", lambda: F.dropout2d(np.zeros((2, 3)), 0.5), ShapeError,
     r"expected a 4-D input \(N, C, H, W\) or a 3-D volume \(C, H, W\), got 2-D"),
]


@pytest.mark.parametrize("fn,cls,pattern", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_say_what_with_numbers_and_a_fix(fn, cls, pattern):
    check_error(fn, cls, pattern)
