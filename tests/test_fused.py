"""The fused ``conv + ReLU`` (kernels, functional, ``nn.Sequential``) against the unfused ops.

The fused op must give the values of ``relu(conv2d(...))`` bit for bit, gradients within
the float32 error bound of the float64 reference chain rule, on every path of the fast
kernels (the compiled loops that apply the ReLU's rule as they read the gradient, and the
fallbacks: stride, depthwise, many channels, non-finite inputs, one image), and
``nn.Sequential`` must use it only for an exact ``Conv2d`` then ``ReLU``, keeping the
conv's own output out of memory.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import convscope as cs
import convscope.functional as F
from conv_cases import ConvCase, conv_configs, generated
from convscope import nn
from convscope.errors import ShapeError
from convscope.kernels import direct, fast
from convscope.kernels import reference as ref
from gradcheck import check_gradients
from tolerance import U32, U64, assert_within_bound


def _pad(top, bottom, left, right):
    return ((top, bottom), (left, right))


CASES = [
    # few channels, several images: the weight-gradient loop split over images (masked)
    ConvCase("tiny_vgg_like", 5, 3, 20, 21, 10, 3, 3),
    ConvCase("same_5x5", 4, 8, 17, 16, 16, 5, 5, padding=_pad(2, 2, 2, 2)),
    ConvCase("og3_asym", 3, 2, 9, 35, 3, 3, 2, padding=_pad(0, 1, 2, 0)),
    ConvCase("dilated_groups", 3, 6, 11, 12, 6, 3, 3, padding=_pad(2, 2, 2, 2),
             dilation=(2, 2), groups=3),
    ConvCase("padding_beyond_kernel", 2, 1, 3, 3, 5, 2, 2, padding=_pad(3, 2, 4, 3)),
    # fallbacks: one image, depthwise, stride (gemm), an empty batch
    ConvCase("one_image", 1, 3, 12, 12, 4, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("depthwise", 2, 5, 9, 19, 5, 3, 3, padding=_pad(1, 1, 1, 1), groups=5),
    ConvCase("stride_2", 3, 2, 11, 9, 3, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
    ConvCase("batch_0", 0, 3, 6, 6, 5, 3, 3, padding=_pad(1, 1, 1, 1)),
]
NEEDS = [(True, True, True), (False, True, True), (True, False, False), (False, False, True),
         (True, True, False)]


def _check_case(case, dtype, need=(True, True, True), seed=0, nonfinite=False):
    x, w, b, gy = case.arrays(np.random.default_rng(seed), dtype)
    if nonfinite and x.size:
        x.flat[0], x.flat[-1] = np.nan, np.inf
    geo = case.geometry
    y = fast.conv2d_relu(x, w, b, *geo)
    # the same values as the two unfused fast ops, bit for bit (NaN where they have NaN)
    np.testing.assert_array_equal(y, fast.relu(fast.conv2d(x, w, b, *geo)))
    assert y.dtype == dtype and y.flags.c_contiguous
    x64, w64, gy64 = (v.astype(np.float64) for v in (x, w, gy))
    got = fast.conv2d_relu_grads(gy, y, x, w, need, *geo)
    want = ref.conv2d_relu_grads(gy64, y.astype(np.float64), x64, w64, need, *geo)
    mask = ~(y <= 0)  # the ReLU's rule: NaN passes the gradient
    magnitude = ref.conv2d_relu_grads(np.abs(gy64) * mask, mask.astype(np.float64),
                                      np.abs(x64), np.abs(w64), need, *geo)
    oh, ow = case.out_hw
    lengths = (case.o // case.groups * case.kh * case.kw, max(1, case.n * oh * ow),
               max(1, case.n * oh * ow))
    u, factor = (U64, 2.0) if dtype == np.float64 else (U32, 1.0)
    for name, wanted, g, e, m, k in zip(("grad_input", "grad_weight", "grad_bias"), need, got,
                                        want, magnitude, lengths, strict=True):
        if not wanted:
            assert g is None, name
            continue
        assert g.dtype == dtype and g.shape == e.shape, (name, g.dtype, g.shape, e.shape)
        if nonfinite:  # NaN where the reference has NaN, the rest within the bound
            np.testing.assert_array_equal(np.isnan(g), np.isnan(e), err_msg=name)
            finite = np.isfinite(e)
            g, e, m = g[finite], e[finite], m[finite]
        assert_within_bound(g, e, m, k, u, factor, what=f"{case} {name} need={need}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_fused_kernels_match_the_reference_chain_rule(case, dtype):
    _check_case(case, dtype)


@pytest.mark.parametrize("need", NEEDS, ids=str)
def test_fused_kernels_compute_only_what_is_needed(need):
    _check_case(CASES[0], np.float32, need)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[7]], ids=str)
def test_fused_kernels_with_nan_and_inf_inputs(case):
    with np.errstate(invalid="ignore"):  # inf * 0 in the references' products
        _check_case(case, np.float32, nonfinite=True)


def test_fused_kernels_on_the_channel_block_split(monkeypatch):
    # no room for per-image partial sums: the weight gradient takes the other split
    monkeypatch.setattr(direct, "IMAGE_PARTIALS_BYTES", 0)
    _check_case(CASES[0], np.float32)
    _check_case(CASES[1], np.float64)


def test_fused_kernels_above_the_compiled_pack_threshold(monkeypatch):
    # packing the gradient as a compiled loop (mask applied there) and as NumPy
    for threshold in (0, 1 << 40):
        monkeypatch.setattr(direct, "PACK_COMPILED", threshold)
        _check_case(CASES[1], np.float32, seed=3)


@generated(conv_configs(min_batch=0, max_batch=4), examples=40)
def test_fused_kernels_on_generated_configurations(case):
    _check_case(case, np.float32, seed=case.n)


def test_the_relu_rule_at_zero_and_for_nan_is_pytorchs():
    # conv outputs of exactly 0 and -0: ReLU gives +0 and no gradient; NaN passes both
    x = np.zeros((2, 1, 4, 20), np.float32)
    x[0, 0, 0, :3] = np.nan, -1.0, 1.0
    w = np.ones((1, 1, 1, 1), np.float32)
    geo = ((1, 1), _pad(0, 0, 0, 0), (1, 1), 1)
    y = fast.conv2d_relu(x, w, None, *geo)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 0 and y[0, 0, 0, 2] == 1
    assert not np.signbit(y[~np.isnan(y)]).any()  # no -0
    gx, gw, gb = fast.conv2d_relu_grads(np.ones_like(y), y, x, w, (True, False, True), *geo)
    assert gx[0, 0, 0, :3].tolist() == [1.0, 0.0, 1.0] and gx[1].sum() == 0


@pytest.mark.parametrize("algo, groups, stride", [
    ("panel", 1, (1, 1)), ("panel", 1, (2, 2)), ("depthwise", 6, (1, 1)),
    ("depthwise", 6, (2, 2)), ("direct", 1, (1, 1)), ("winograd", 1, (1, 1)),
    ("gemm", 2, (2, 1)),
])
@pytest.mark.parametrize("finite", [True, False])
def test_relu6_clamp_in_the_convs_write_equals_relu_then_minimum(algo, groups, stride,
                                                                   finite):
    # the fused ReLU6 (hi=6) of every path: the unfused relu(conv) clamped to 6 afterwards,
    # bit for bit; NaN kept, +inf -> 6, no -0 (the depthwise and blocked-product loops clamp
    # in their write, the others after)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 6, 19, 37)) * 4).astype(np.float32)
    x[0, :, 2, 3] = 0.0
    if not finite:
        x[1, 0, 5, 5], x[2, 1, 7, 30] = np.nan, np.inf
    cg = 1 if algo == "depthwise" else 6 // groups
    w = rng.standard_normal((6, cg, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    geo = (stride, _pad(1, 1, 1, 1), (1, 1), 6 if algo == "depthwise" else groups)
    got = fast.conv2d_relu(x, w, b, *geo, algo=algo, hi=6.0)
    want = fast.conv2d_relu(x, w, b, *geo, algo=algo)
    np.minimum(want, 6.0, out=want)
    np.testing.assert_array_equal(got, want)
    assert (got[~np.isnan(got)] > 5.9).any() and (got == 0).any()
    assert not np.signbit(got[~np.isnan(got)]).any()
    assert np.isnan(got).any() != finite


# --------------------------------------------------------------------------- functional


def test_conv2d_relu_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    compared = check_gradients(lambda a, k, c: F.conv2d_relu(a, k, c, padding=1), x, w, b)
    assert compared == x.size + w.size + b.size


def test_conv2d_relu_refuses_bad_arguments_by_its_own_name():
    with pytest.raises(ShapeError, match=r"^conv2d_relu: weight must be 4-D.*Fix:"):
        F.conv2d_relu(np.zeros((1, 3, 8, 8)), np.zeros((3, 3)))
    with pytest.raises(ShapeError, match=r"conv2d_relu: .*Fix:"):
        F.conv2d_relu(np.zeros((1, 3, 8, 8)), np.zeros((4, 2, 3, 3)))


# --------------------------------------------------------------------------- Sequential


def _model(relu=nn.ReLU):
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, seed=1), relu(),
        nn.Conv2d(6, 6, 3, padding=1, padding_mode="reflect", seed=2), relu(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3, seed=3), relu(), nn.Flatten(), nn.Linear(5 * 3 * 3, 3, seed=4),
    )


def _ops(t):
    """The ops of the graph behind ``t``."""
    seen, stack, ops = set(), [t._node], []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        ops.append(node.op)
        stack.extend(node.parents)
    return ops


def _grads(model, x, fused):
    model.zero_grad() if hasattr(model, "zero_grad") else None
    for p in model.parameters():
        p.grad = None
    xt = cs.tensor(x, requires_grad=True)
    if fused:
        y = model(xt)
    else:
        y = xt
        for layer in model:  # one by one: no fusion
            y = layer(y)
    ops = _ops(y)
    y.backward(np.ones(y.shape, y.dtype))
    return y.numpy(), [xt.grad.numpy()] + [p.grad.numpy() for p in model.parameters()], ops


def _tiny_vgg():  # pairs feeding a zero-padded conv and a pool: masks taken by the consumers
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, seed=1), nn.ReLU(), nn.Conv2d(6, 6, 3, seed=2), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(6, 5, 3, padding=1, seed=3), nn.ReLU(),
        nn.Conv2d(5, 5, 3, seed=4), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Flatten(),
        nn.Linear(5, 3, seed=5),
    )


@pytest.mark.parametrize("make_model", [_model, _tiny_vgg], ids=["reflect", "tiny_vgg"])
def test_sequential_fuses_conv_relu_with_the_same_values_and_gradients(make_model):
    model = make_model()
    x = np.random.default_rng(0).standard_normal((4, 3, 10, 10)).astype(np.float32)
    y1, g1, ops1 = _grads(model, x, fused=True)
    y0, g0, ops0 = _grads(model, x, fused=False)
    pairs = 3 if make_model is _model else 4
    assert sum(op.startswith("conv2d+relu") for op in ops1) == pairs and "relu" not in ops1
    assert ops0.count("relu") == pairs and "conv2d+relu" not in ops0
    # a pair then a 2 x 2 max pool runs as one pass (zero padding only)
    assert ops1.count("conv2d+relu+max_pool2d") == (0 if make_model is _model else 1)
    np.testing.assert_array_equal(y1, y0)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sequential_fusion_on_the_compiled_loops(monkeypatch):
    # every pooling/ReLU loop compiled, whatever the size (small arrays use NumPy)
    from convscope.kernels import loops

    monkeypatch.setattr(loops, "SMALL", 0)
    monkeypatch.setattr(direct, "PACK_COMPILED", 0)
    model = _tiny_vgg()
    x = np.random.default_rng(3).standard_normal((6, 3, 10, 10)).astype(np.float32)
    y1, g1, _ = _grads(model, x, fused=True)
    y0, g0, _ = _grads(model, x, fused=False)
    np.testing.assert_array_equal(y1, y0)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sequential_fuses_only_an_exact_conv2d_then_relu():
    class MyReLU(nn.ReLU):
        pass

    model = _model(MyReLU)
    x = np.random.default_rng(1).standard_normal((2, 3, 10, 10)).astype(np.float32)
    assert "conv2d+relu" not in _ops(model(cs.tensor(x, requires_grad=True)))
    tail = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 2, 3, seed=0))  # conv last: nothing to fuse
    assert _ops(tail(cs.tensor(x, requires_grad=True)))[0] == "conv2d"


def test_sequential_error_in_a_fused_pair_names_the_conv_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, seed=0), nn.ReLU(), nn.Conv2d(5, 2, 3, seed=0),
                          nn.ReLU())
    with pytest.raises(ShapeError, match=r"^layer 2, Conv2d.*comes from layer 1 \(ReLU\)"):
        model(np.zeros((1, 3, 8, 8), np.float32))


def _peak(model, x, fused, hold=False):
    """tracemalloc's peak over forward + backward; ``hold``: the caller keeps every layer's
    output (unfused), as a graph whose nodes were the tensors did."""
    held = []
    tracemalloc.start()
    try:
        if hold:
            y = cs.tensor(x, requires_grad=True)
            for layer in model:
                y = layer(y)
                held.append(y)
            y.backward(np.ones(y.shape, y.dtype))
        else:
            _grads(model, x, fused)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_conv_outputs_are_not_kept_alive_fused_or_not():
    # 3 conv outputs of 64 x 8 x 32 x 32 float32 (2 MiB each): the ReLUs' backward needs
    # only their own outputs, so neither the fused op nor the graph keeps the conv's
    model = nn.Sequential(*[m for i in range(3) for m in
                            (nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1, seed=i), nn.ReLU())])
    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)
    _grads(model, x, True), _grads(model, x, False)  # load (or compile) the kernels first
    conv_out = 64 * 8 * 32 * 32 * 4
    fused, unfused = _peak(model, x, True), _peak(model, x, False)
    held = _peak(model, x, False, hold=True)
    assert held - unfused >= 2.5 * conv_out, (unfused, held)
    assert fused <= unfused + conv_out // 4, (fused, unfused)


def test_fused_kernels_with_nan_input_on_the_channel_block_split(monkeypatch):
    # the non-finite input is found by the compiled pack (not the per-image loop)
    monkeypatch.setattr(direct, "IMAGE_PARTIALS_BYTES", 0)
    monkeypatch.setattr(direct, "PACK_COMPILED", 0)
    with np.errstate(invalid="ignore"):
        _check_case(CASES[1], np.float32, nonfinite=True)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[6], CASES[7]], ids=str)
def test_unfused_gradients_with_the_bias_from_the_weight_loop(case, monkeypatch):
    # conv2d_grads (the plain conv's backward): the bias gradient summed by the loops
    for image_bytes in (direct.IMAGE_PARTIALS_BYTES, 0):
        monkeypatch.setattr(direct, "IMAGE_PARTIALS_BYTES", image_bytes)
        x, w, b, gy = case.arrays(np.random.default_rng(7), np.float32)
        need = (True, True, True)
        got = fast.conv2d_grads(gy, x, w, need, *case.geometry)
        want = ref.conv2d_grads(*(v.astype(np.float64) for v in (gy, x, w)), need,
                                *case.geometry)
        for g, e in zip(got, want, strict=True):
            assert g.dtype == np.float32
            np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(e).max()))


def test_max_pool_without_gradient_skips_the_indices(monkeypatch):
    from convscope import kernels

    calls = []
    real = kernels.max_pool2d
    monkeypatch.setattr(kernels, "max_pool2d", lambda *a: calls.append(a[-1]) or real(*a))
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32)
    with cs.no_grad():
        y0 = F.max_pool2d(cs.tensor(x, requires_grad=True), 3, 2, 1)
    y1 = F.max_pool2d(cs.tensor(x), 3, 2, 1)
    y2 = F.max_pool2d(cs.tensor(x, requires_grad=True), 3, 2, 1)
    y3, idx = F.max_pool2d(cs.tensor(x), 3, 2, 1, return_indices=True)
    assert calls == [False, False, True, True]
    for y in (y1, y2, y3):
        np.testing.assert_array_equal(y0.numpy(), y.numpy())
    assert idx.dtype == np.int64  # as PyTorch's


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[6], CASES[7]], ids=str)
def test_input_gradient_through_the_inputs_relu(case, dtype):
    # conv2d_grads(input_mask=True): the input was a ReLU's output; gx goes on through it
    x, w, b, gy = case.arrays(np.random.default_rng(11), dtype)
    x = fast.relu(x)  # a ReLU's output: zeros where the rule cuts
    need = (True, True, False)
    got = fast.conv2d_grads(gy, x, w, need, *case.geometry, input_mask=True)
    want = ref.conv2d_grads(*(v.astype(np.float64) for v in (gy, x, w)), need, *case.geometry,
                            input_mask=True)
    plain = fast.conv2d_grads(gy, x, w, need, *case.geometry)
    np.testing.assert_array_equal(got[0], fast.relu_grad(plain[0], x))  # the same sums
    np.testing.assert_array_equal(got[1], plain[1])
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for g, e in zip(got[:2], want[:2], strict=True):
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol * max(1.0, np.abs(e).max()))


@pytest.mark.parametrize("big", [False, True], ids=["numpy", "compiled"])
def test_max_pool_gradient_through_the_inputs_relu(big):
    # the winner's value is the window's maximum: the ReLU's rule reads the pool output
    rng = np.random.default_rng(2)
    shape = (4, 8, 80, 80) if big else (2, 3, 7, 6)
    x = fast.relu(rng.standard_normal(shape).astype(np.float32))
    x[0, 0, :3, :3] = 0.0  # a window of zeros: nothing credited
    x[0, 1, 0, 0] = np.nan  # NaN passes the gradient, as in the ReLU
    args = ((3, 3), (2, 2), (1, 1), (1, 1), False)
    y, idx = fast.max_pool2d(x, *args)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    got = fast.max_pool2d_grad(gy, idx, shape[2:], y)
    want = fast.relu_grad(fast.max_pool2d_grad(gy, idx, shape[2:]), x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ref.max_pool2d_grad(gy, idx, shape[2:], y), want, rtol=1e-6,
                               atol=1e-6)
    assert got[0, 0, 0, 0] == 0 and got[0, 1, 0, 0] == gy[0, 1, 0, 0]


POOL_CASES = [
    # conv output 64x64 (vector path), 27x29 (odd: a row and a column without a window),
    # 20x20 (pooled rows of 10: value by value), float64 lanes of 8, one image, no image
    ConvCase("pool_wide", 3, 3, 66, 66, 10, 3, 3),
    ConvCase("pool_odd", 2, 4, 29, 31, 5, 3, 3),
    ConvCase("pool_narrow", 2, 2, 20, 20, 6, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("pool_5x5", 2, 8, 40, 38, 8, 5, 5, padding=_pad(2, 2, 2, 2)),
    ConvCase("pool_one_image", 1, 3, 34, 34, 4, 3, 3),
    ConvCase("pool_batch_0", 0, 3, 10, 10, 4, 3, 3),
    # fallbacks: depthwise, stride 2
    ConvCase("pool_depthwise", 2, 4, 12, 12, 4, 3, 3, padding=_pad(1, 1, 1, 1), groups=4),
    ConvCase("pool_stride_2", 2, 3, 21, 21, 4, 3, 3, (2, 2), _pad(1, 1, 1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_conv_relu_maxpool_in_one_pass_matches_the_three_ops(case, dtype):
    rng = np.random.default_rng(5)
    x, w, b, _ = case.arrays(rng, dtype)
    x, w, b = (np.round(4 * v) for v in (x, w, b))  # whole numbers: exact sums, many ties
    if x.size:
        x.flat[7] = np.nan  # NaN wins its windows, as in the unfused ops
    geo = case.geometry
    py, winners = fast.conv2d_relu_maxpool(x, w, b, *geo)
    y = fast.relu(fast.conv2d(x, w, b, *geo))
    py0, winners0 = ref.max_pool2d(y, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert py.dtype == dtype and py.shape == py0.shape
    np.testing.assert_array_equal(py, py0)
    np.testing.assert_array_equal(winners, winners0)


def test_sequential_pool_fusion_keeps_the_pools_own_error():
    # a conv output of 1x1 has no 2x2 window: no fusion, the pool's error as unfused
    model = nn.Sequential(nn.Conv2d(3, 4, 3, seed=0), nn.ReLU(), nn.MaxPool2d(2))
    with pytest.raises(ShapeError, match=r"^layer 2, MaxPool2d.*comes from layer 1 \(ReLU\)"):
        model(np.zeros((1, 3, 3, 3), np.float32))


def test_sequential_pool_fusion_on_a_single_volume_and_in_eval():
    model = _tiny_vgg()[:10].eval()  # up to the last pool (Flatten needs a batch axis)
    x = np.random.default_rng(4).standard_normal((3, 10, 10)).astype(np.float32)  # unbatched
    y = model(x)
    z = x
    for layer in model:
        z = layer(z)
    np.testing.assert_array_equal(y.numpy(), z.numpy())
