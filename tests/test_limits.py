"""What is not an error, and the limits: PyTorch's semantics for odd but valid input.

Int arrays are converted, NaN propagates as in PyTorch, empty batches give empty results.
Requests whose result would not fit in memory are refused before anything is allocated
(tracemalloc), and hypothesis throws random conv configurations at ``conv2d``: invalid ones
must raise a convscope error (never IndexError or a NumPy error), valid ones must compute,
with an independent oracle that is itself checked against PyTorch.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import functional as F
from convscope import nn, shapes
from convscope.errors import ConvscopeError, ShapeError, SpecError
from errorcheck import check_error

X = np.zeros((2, 3, 8, 8), np.float32)  # two 8x8x3 images
W = np.zeros((4, 3, 3, 3), np.float32)  # 4 kernels of 3x3x3
LOGITS = np.zeros((2, 3), np.float32)


def _model() -> nn.Sequential:
    return cs.parse("8x8x3 | conv(4, 3) | relu | flatten | linear(5)", seed=0)


def _huge() -> np.ndarray:
    """A (100000, 3, 1000, 1000) float32 volume that costs 4 bytes: a broadcast view."""
    return np.broadcast_to(np.float32(0), (100_000, 3, 1000, 1000))


# ----------------------------------------------------------------------------- not errors
def test_linear_after_flatten_says_both_numbers_and_where_they_came_from():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, seed=0), nn.ReLU(), nn.Flatten(), nn.Linear(100, 10))
    err = check_error(lambda: model(X), ShapeError, r"^layer 3, ")
    assert str(err) == (
        "layer 3, Linear(100 -> 10): expects 100 input features, got 144; its input (2, 144) "
        "comes from layer 2 (Flatten), which flattened 6x6x4 volumes (H x W x D): 6*6*4 = 144. "
        "Fix: make the previous layer produce 100 values per example (after flatten: "
        "H x W x D), or build this layer with in_features=144. Received: input shape (2, 144).")


def test_int_arrays_are_accepted_and_converted():
    rng = np.random.default_rng(0)
    xi = rng.integers(-5, 6, (2, 3, 8, 8))
    wi = rng.integers(-2, 3, (4, 3, 3, 3)).astype(np.int16)
    y = F.conv2d(xi, wi, padding=1)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), F.conv2d(xi.astype(np.float32),
                                                      wi.astype(np.float32), padding=1).numpy())
    assert cs.Tensor([1, 2]).dtype == np.float32 and cs.tensor([1.5]).dtype == np.float32
    assert cs.tensor([1, 2]).dtype == np.int64  # cs.tensor infers PyTorch's types
    assert cs.tensor(np.array([1.5])).dtype == np.float64  # float64 arrays keep their dtype
    u8 = rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
    model = _model()
    np.testing.assert_array_equal(model(u8).numpy(), model(u8.astype(np.float32)).numpy())
    pooled = F.max_pool2d(u8, 2)
    assert pooled.dtype == np.float32 and pooled.numpy().max() == u8.max()
    assert F.linear(np.arange(4), np.ones((2, 4), np.int64)).numpy().tolist() == [6.0, 6.0]
    assert F.cross_entropy(LOGITS, np.array([0.0, 2.0])).item() == pytest.approx(np.log(3))


def _nan_cases() -> dict[str, tuple[Callable, np.ndarray]]:
    """Op -> (function of x, x with NaN at chosen places); compared with PyTorch below."""
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4) / 7
    x[0, 0, 1, 1] = np.nan  # not the first element of its pooling window
    x[0, 1, 3, 2] = np.nan
    w = np.random.default_rng(1).standard_normal((3, 2, 2, 2)).astype(np.float32)
    logits = np.array([[1.0, np.nan, 0.0], [0.5, 0.25, 2.0]], np.float32)
    return {
        "conv2d": (lambda t, m: m.conv2d(t, w if m is F else _t(w)), x),
        "max_pool2d": (lambda t, m: m.max_pool2d(t, 2), x),
        "max_pool2d_overlap": (lambda t, m: m.max_pool2d(t, 3, 1, 1), x),
        "avg_pool2d": (lambda t, m: m.avg_pool2d(t, 2), x),
        "relu": (lambda t, m: m.relu(t), x),
        "linear": (lambda t, m: m.linear(t, w.reshape(3, 8)[:, :4] if m is F else
                                         _t(w.reshape(3, 8)[:, :4])), x),
        "softmax": (lambda t, m: m.softmax(t, dim=1), logits),
        "log_softmax": (lambda t, m: m.log_softmax(t, dim=1), logits),
        "cross_entropy_none": (lambda t, m: m.cross_entropy(t, _labels(m), reduction="none"),
                               logits),
        "cross_entropy_mean": (lambda t, m: m.cross_entropy(t, _labels(m)), logits),
        "mse_loss": (lambda t, m: m.mse_loss(t, t * 0 if m is F else t.detach() * 0,
                                             reduction="none"), logits),
    }


def _t(a: np.ndarray):  # noqa: ANN202
    import torch

    return torch.from_numpy(np.array(a))


def _labels(m):  # noqa: ANN001, ANN202
    labels = np.array([0, 2])
    return labels if m is F else _t(labels)


# Where NaN must appear, pinned by hand (PyTorch agrees where installed, below).
NAN_EXPECTED = {
    "max_pool2d": [[[[True, False], [False, False]], [[False, False], [False, True]]]],
    "avg_pool2d": [[[[True, False], [False, False]], [[False, False], [False, True]]]],
    "softmax": [[True, True, True], [False, False, False]],
    "cross_entropy_none": [True, False],
    "cross_entropy_mean": True,
}


def test_nan_propagates_like_pytorch():
    for name, (fn, x) in _nan_cases().items():
        got = np.isnan(fn(x, F).numpy())
        assert got.any(), f"{name}: the NaN vanished"
        if name in NAN_EXPECTED:
            np.testing.assert_array_equal(got, NAN_EXPECTED[name], err_msg=name)
        if name == "relu":  # relu(NaN) is NaN, as in PyTorch (not 0, as max(x, 0) might give)
            np.testing.assert_array_equal(got, np.isnan(x))
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    for name, (fn, x) in _nan_cases().items():
        ours = np.isnan(fn(x, F).numpy())
        ref = np.isnan(fn(_t(x), tf).numpy())
        np.testing.assert_array_equal(ours, ref, err_msg=f"{name}: NaN places differ from torch")


def test_empty_batches_give_empty_results_as_pytorch():
    x0 = np.zeros((0, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    assert F.conv2d(x0, w, padding=1).shape == (0, 4, 8, 8)
    assert F.conv2d(x0, w, stride=2).shape == (0, 4, 3, 3)
    assert F.max_pool2d(x0, 2).shape == (0, 3, 4, 4)
    assert F.avg_pool2d(x0, 3, 1, 1).shape == (0, 3, 8, 8)
    assert F.relu(x0).shape == (0, 3, 8, 8)
    assert F.flatten(x0).shape == (0, 192)
    assert F.linear(np.zeros((0, 192)), np.ones((5, 192))).shape == (0, 5)
    assert F.softmax(np.zeros((0, 5))).shape == (0, 5)
    assert F.batch_norm(x0, np.zeros(3), np.ones(3)).shape == (0, 3, 8, 8)
    model = _model()
    assert model(x0).shape == (0, 5)
    empty_labels = np.zeros(0, np.int64)
    assert F.cross_entropy(np.zeros((0, 5)), empty_labels, reduction="sum").item() == 0.0
    assert F.cross_entropy(np.zeros((0, 5)), empty_labels, reduction="none").shape == (0,)
    assert np.isnan(F.cross_entropy(np.zeros((0, 5)), empty_labels).item())  # mean of nothing
    assert np.isnan(F.mse_loss(np.zeros(0), np.zeros(0)).item())
    loss = F.cross_entropy(model(x0), empty_labels, reduction="sum")
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and not p.grad.numpy().any(), name
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    assert tuple(tf.conv2d(_t(x0), _t(w), stride=2).shape) == (0, 4, 3, 3)
    assert tuple(tf.max_pool2d(_t(x0), 2).shape) == (0, 3, 4, 4)
    assert torch.isnan(tf.cross_entropy(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)))
    assert tf.cross_entropy(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long),
                            reduction="sum").item() == 0.0


# ----------------------------------------------------------------------------- memory
def _peak(fn: Callable[[], object], cls: type[Exception], pattern: str) -> int:
    tracemalloc.start()
    try:
        check_error(fn, cls, pattern)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("fn", "cls", "pattern"), [
    (lambda: F.conv2d(_huge(), W), ShapeError,
     r"^conv2d: the contiguous copy of `input` would need 1117\.6 GiB, above the 8 GiB limit.*"
     r"\(100000, 3, 1000, 1000\)"),
    (lambda: nn.Conv2d(3, 4, 3)(_huge()), ShapeError,
     r"^Conv2d\(3 -> 4, 3x3\): the contiguous copy"),
    (lambda: F.max_pool2d(_huge(), 2), ShapeError, r"^max_pool2d: .*1117\.6 GiB"),
    (lambda: F.conv2d(np.broadcast_to(0.0, (100_000, 3, 1000, 1000)), W), ShapeError,
     r"^conv2d: the float32 copy would need 1117\.6 GiB"),
    (lambda: cs.tensor(_huge()), ShapeError, r"^tensor: the tensor would need 1117\.6 GiB"),
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8), np.float32),
                      np.broadcast_to(np.float32(0), (10**9, 3, 3, 3))), ShapeError,
     r"the contiguous copy of `weight` would need 100\.6 GiB"),
    (lambda: nn.Linear(300_000_000, 1000), ShapeError,
     r"^Linear: the weight would need 1117\.6 GiB"),
    (lambda: cs.parse("100000x100000x3 | conv(8, 3) | flatten | linear(10)"), SpecError,
     r"impossible with input 79996800032 flat values: Linear: the weight would need 2980\.1 GiB"),
], ids=["conv2d", "Conv2d", "max_pool2d", "float64-view", "tensor", "weight", "Linear", "parse"])
def test_huge_requests_are_refused_before_allocating(fn, cls, pattern):
    assert _peak(fn, cls, pattern) < 2_000_000


def test_explain_breaks_at_the_layer_that_would_not_fit_without_allocating():
    tracemalloc.start()
    try:
        e = cs.explain("100000x100000x3 | conv(8, 3) | flatten | linear(10)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert e.output_shape is None and [r["index"] for r in e.rows] == ["0", "1", "2"]
    assert "the weight would need 2980.1 GiB" in e.error


# Made once, outside the traced region: only what the ops allocate is measured.
INPUTS = {"conv": np.zeros((1, 1, 32, 32), np.float32), "kernels": np.zeros((2000, 1, 1, 1),
                                                                            np.float32),
          "pool": np.zeros((1, 1, 600, 600), np.float32),
          "avg": np.zeros((1, 1, 999, 1000), np.float32),
          "rows": np.zeros((100, 4), np.float32), "matrix": np.zeros((100_000, 4), np.float32)}


@pytest.mark.parametrize(("op", "pattern"), [
    (lambda: F.conv2d(INPUTS["conv"], INPUTS["kernels"]),
     r"^conv2d: the result would need 7\.8 MiB, above the 3\.8 MiB limit\. Fix: use a smaller "
     r"batch or input, or a larger stride\. Received: shape \(1, 2000, 32, 32\), 4 bytes per "
     r"value\.$"),
    (lambda: F.max_pool2d(INPUTS["pool"], 1),  # + int64 indices
     r"^max_pool2d: the result would need 4\.1 MiB.*shape \(1, 1, 600, 600\), 12 bytes per value"),
    (lambda: F.avg_pool2d(INPUTS["avg"], 2, 1, 1),
     r"^avg_pool2d: the result would need 3\.8 MiB.*shape \(1, 1, 1000, 1001\), 4 bytes"),
    (lambda: F.linear(INPUTS["rows"], INPUTS["matrix"]),
     r"^linear: the result would need 38\.1 MiB.*shape \(100, 100000\)"),
], ids=["conv2d", "max_pool2d", "avg_pool2d", "linear"])
def test_each_op_checks_its_result_size(monkeypatch, op, pattern):
    """With a 4 MB limit, results of ~4-40 MB are refused and nothing near that is allocated."""
    monkeypatch.setattr(shapes, "MAX_RESULT_BYTES", 4_000_000)
    assert _peak(op, ShapeError, pattern) < 1_000_000


# ----------------------------------------------------------------------------- generated
def _valid(x: tuple, w: tuple, stride: tuple, pad: tuple, dil: tuple, groups: int) -> bool:
    """An oracle written from the definition, independent of convscope.shapes."""
    n, c, h, wd = x
    o, cg, kh, kw = w
    if min(stride) < 1 or min(dil) < 1 or min(pad) < 0 or groups < 1:
        return False
    if c % groups or o % groups or cg * groups != c:
        return False
    span_h = h + 2 * pad[0] - (dil[0] * (kh - 1) + 1)
    span_w = wd + 2 * pad[1] - (dil[1] * (kw - 1) + 1)
    return span_h >= 0 and span_w >= 0


@st.composite
def conv_requests(draw):  # noqa: ANN001, ANN201
    g = draw(st.integers(-1, 3))
    c = draw(st.integers(1, 4)) * max(g, 1) + draw(st.sampled_from([0, 0, 0, 1]))
    o = draw(st.integers(1, 3)) * max(g, 1) + draw(st.sampled_from([0, 0, 0, 1]))
    cg = c // max(g, 1) + draw(st.sampled_from([0, 0, 0, 1, -1]))
    x = (draw(st.integers(0, 2)), c, draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    w = (o, max(cg, 0), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    small = st.integers(-1, 3)
    return (x, w, (draw(small), draw(small)), (draw(small), draw(small)),
            (draw(small), draw(small)), g)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_requests())
def test_random_conv_requests_are_refused_or_computed(request):
    x_shape, w_shape, stride, pad, dil, groups = request
    valid = _valid(x_shape, w_shape, stride, pad, dil, groups)
    x = np.ones(x_shape, np.float32)
    w = np.ones(w_shape, np.float32)
    try:
        y = F.conv2d(x, w, None, stride, pad, dil, groups)
    except ConvscopeError as exc:
        assert not valid, f"a valid request was refused: {exc}"
        assert isinstance(exc, (ValueError, TypeError)) and "Fix: " in str(exc)
        return
    assert valid, f"an invalid request was computed: {request}"
    oh = (x_shape[2] + 2 * pad[0] - dil[0] * (w_shape[2] - 1) - 1) // stride[0] + 1
    ow = (x_shape[3] + 2 * pad[1] - dil[1] * (w_shape[3] - 1) - 1) // stride[1] + 1
    assert y.shape == (x_shape[0], w_shape[0], oh, ow)
    # every output value sums the ones its kernel covers inside the image: an integer in range
    assert np.all((y.numpy() >= 0) & (y.numpy() <= np.prod(w_shape[1:])))


def test_the_oracle_agrees_with_pytorch_on_generated_requests():
    """The oracle above is itself checked against PyTorch's own accept/refuse decision."""
    torch = pytest.importorskip("torch")
    checked = 0

    @settings(max_examples=300, deadline=None, database=None)
    @given(conv_requests())
    def agree(request):  # noqa: ANN001, ANN202
        nonlocal checked
        x_shape, w_shape, stride, pad, dil, groups = request
        if x_shape[0] == 0:
            return  # PyTorch skips most checks on an empty batch; ours follow the shapes
        try:
            torch.nn.functional.conv2d(torch.ones(x_shape), torch.ones(w_shape), None, stride,
                                       pad, dil, groups)
            theirs = True
        except (RuntimeError, ValueError, TypeError):
            theirs = False
        assert _valid(*request) == theirs, request
        checked += 1

    agree()
    assert checked >= 150
