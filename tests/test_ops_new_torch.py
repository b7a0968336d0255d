"""The operations and layers of graph networks (issue 11) against PyTorch, in float64.

Hypothesis draws options including impossible ones: PyTorch and convscope must then both
refuse (convscope with its own error class), and otherwise agree on values and on every
gradient. Runs only where torch is installed; marked ``torch``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import functional as F
from convscope.errors import ConvscopeError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
torch.set_num_threads(1)
TF = torch.nn.functional
SEEDS = st.integers(0, 2**31 - 1)


def both(fn_cs, fn_torch, *arrays):
    """Run both on float64 copies of ``arrays``; return ``(cs out, torch out, cs leaves,
    torch leaves)``, or None when both refused (a refusal by one only fails the test)."""
    cs_in = [cs.tensor(a, requires_grad=True) for a in arrays]
    th_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch's deprecation notes are not errors
            want = fn_torch(*th_in)
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
        with pytest.raises(ConvscopeError):
            fn_cs(*cs_in)
        return str(exc)
    return fn_cs(*cs_in), want, cs_in, th_in


def agree(result, seed, rtol=1e-10, atol=1e-10, grad_atol=None):
    """Values, then gradients for one random output gradient, equal within the tolerances."""
    if isinstance(result, str):
        return False
    got, want, cs_in, th_in = result
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=rtol, atol=atol,
                               equal_nan=True)
    gy = np.random.default_rng(seed).standard_normal(got.shape)
    got.backward(gy)
    want.backward(torch.tensor(gy))
    for i, (a, b) in enumerate(zip(cs_in, th_in, strict=True)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol,
                                   atol=grad_atol or atol, equal_nan=True, err_msg=f"input {i}")
    return True


# --------------------------------------------------------------------------- conv_transpose2d
@st.composite
def transpose_requests(draw):
    """Mostly valid requests; about a third break one rule (output_padding, padding,
    channels, groups, empty input)."""
    g = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    op = tuple(draw(st.integers(0, max(si, di))) for si, di in zip(s, d, strict=True))
    p = (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
    hw = (draw(st.integers(0, 5)), draw(st.integers(1, 5)))
    x_c = cin if draw(st.integers(0, 9)) else cin + 1
    groups = g if draw(st.integers(0, 9)) else g + 1
    return dict(x=(draw(st.integers(1, 2)), x_c) + hw, w=(cin, cout // g) + k,
                bias=draw(st.booleans()), stride=s, padding=p, output_padding=op,
                groups=groups, dilation=d)


@settings(max_examples=150, deadline=None)
@given(transpose_requests(), SEEDS)
def test_conv_transpose2d_matches_pytorch(req, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-9, 9, req["x"]), rng.uniform(-1, 1, req["w"])]
    if req["bias"]:
        arrays.append(rng.uniform(-1, 1, req["w"][1] * max(req["groups"], 1)))
    kw = {k: req[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}

    def run(lib):
        return lambda x, w, b=None: lib(x, w, b, **kw)

    agree(both(run(F.conv_transpose2d), run(TF.conv_transpose2d), *arrays), seed,
          grad_atol=1e-9)


# --------------------------------------------------------------------------- interpolate
@st.composite
def interpolate_requests(draw):
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "bilinear", "linear"]))
    dims = draw(st.sampled_from([1, 2, 2]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + tuple(
        draw(st.integers(1, 7)) for _ in range(dims))
    kind = draw(st.sampled_from(["size", "size", "scale", "scale", "scale", "both", "none"]))
    size = scale = None
    if kind in ("size", "both"):
        size = tuple(draw(st.integers(1, 12)) for _ in range(dims))
        size = size[0] if draw(st.booleans()) else size
    if kind in ("scale", "both"):
        scale = tuple(draw(st.sampled_from([0.1, 0.5, 0.7, 1.0, 1.25, 1.5, 2, 2.5, 3.0, 3.3]))
                      for _ in range(dims))
        scale = scale[0] if draw(st.booleans()) else scale
    corners = draw(st.sampled_from([None, None, False, True]))
    recompute = draw(st.sampled_from([None, None, False, True]))
    return shape, dict(size=size, scale_factor=scale, mode=mode, align_corners=corners,
                       recompute_scale_factor=recompute)


def _pytorch_1d_nearest_grad_is_off(shape, kw, out_shape):
    """PyTorch's 1-D 'nearest' forward maps cell ``i`` to ``floor(i / scale_factor)``, but its
    backward copies or halves when the output has the input's length or twice it (the 2-D
    kernel's shortcut), so there its gradient is not the derivative of its forward."""
    return (len(shape) == 3 and kw["mode"] == "nearest" and kw["scale_factor"] is not None
            and not kw["recompute_scale_factor"] and out_shape[-1] in (shape[-1], 2 * shape[-1]))


@settings(max_examples=300, deadline=None)
@given(interpolate_requests(), SEEDS)
def test_interpolate_matches_pytorch(req, seed):
    shape, kw = req
    x = np.random.default_rng(seed).standard_normal(shape)
    result = both(lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), x)
    if not isinstance(result, str) and _pytorch_1d_nearest_grad_is_off(shape, kw,
                                                                        result[0].shape):
        np.testing.assert_array_equal(result[0].numpy(), result[1].detach().numpy())
        return
    agree(result, seed, rtol=1e-12, atol=1e-12)


def test_pytorch_1d_nearest_gradient_disagrees_with_its_forward():
    """The case excluded above, pinned: convscope's gradient is its forward's (a finite
    difference check holds it in test_ops_new.py); PyTorch's is the identity here."""
    x = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64, requires_grad=True)
    y = TF.interpolate(x, scale_factor=1.25)
    assert y.tolist() == [[[1.0, 1.0]]]  # both outputs read cell 0
    y.backward(torch.ones_like(y))
    assert x.grad.tolist() == [[[1.0, 1.0]]]  # ... but cell 1 gets a gradient
    t = cs.tensor([[[1.0, 2.0]]], requires_grad=True)
    F.interpolate(t, scale_factor=1.25).backward(np.ones((1, 1, 2)))
    assert t.grad.numpy().tolist() == [[[2.0, 0.0]]]


def test_interpolate_float32_picks_pytorchs_source_cells():
    """float32 weights come from PyTorch's float32 formula (a fused multiply-add): the same
    weights, so values equal to a few units in the last place."""
    rng = np.random.default_rng(0)
    for hw, out in (((3, 17), (11, 62)), ((7, 5), (13, 4)), ((5, 7), (10, 14))):
        x = rng.standard_normal((1, 2) + hw).astype(np.float32)
        for mode, corners in (("bilinear", False), ("bilinear", True), ("nearest", None),
                              ("nearest-exact", None)):
            got = F.interpolate(x, size=out, mode=mode, align_corners=corners).numpy()
            want = TF.interpolate(torch.tensor(x), size=out, mode=mode,
                                  align_corners=corners).numpy()
            np.testing.assert_allclose(got, want, rtol=3e-7, atol=3e-7, err_msg=mode)


# --------------------------------------------------------------------------- adaptive pooling
@settings(max_examples=120, deadline=None)
@given(st.integers(3, 4), st.tuples(st.integers(1, 9), st.integers(1, 9)),
       st.tuples(st.sampled_from([None, 0, 1, 2, 3, 5, 7, 12, -1]),
                 st.sampled_from([None, 1, 2, 4, 6, 9])), SEEDS)
def test_adaptive_avg_pool2d_matches_pytorch(rank, hw, out, seed):
    """(An empty height or width is refused by both, except that PyTorch's global-pool
    shortcut returns NaN for output 1x1; convscope refuses it always.)"""
    shape = ((2,) if rank == 4 else ()) + (3,) + hw
    x = np.random.default_rng(seed).standard_normal(shape)
    out = out[0] if out[0] == out[1] else out
    result = both(lambda t: F.adaptive_avg_pool2d(t, out),
                  lambda t: TF.adaptive_avg_pool2d(t, out), x)
    if not isinstance(result, str) and 0 in result[0].shape:  # PyTorch's backward refuses
        np.testing.assert_array_equal(result[0].numpy(), result[1].detach().numpy())
        return
    agree(result, seed, rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------- activations
ACTIVATIONS = [  # (name, convscope, PyTorch, gradient rtol)
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.2), lambda t: TF.leaky_relu(t, 0.2), 0),
    ("leaky_relu_neg", lambda t: F.leaky_relu(t, -0.5), lambda t: TF.leaky_relu(t, -0.5), 0),
    ("relu6", F.relu6, TF.relu6, 0),
    ("hardtanh", lambda t: F.hardtanh(t, -2.0, 1.5), lambda t: TF.hardtanh(t, -2.0, 1.5), 0),
    ("sigmoid", F.sigmoid, torch.sigmoid, 0), ("tanh", F.tanh, torch.tanh, 0),
    ("gelu", F.gelu, TF.gelu, 0),
    ("gelu_tanh", lambda t: F.gelu(t, "tanh"), lambda t: TF.gelu(t, approximate="tanh"), 0),
    ("silu", F.silu, TF.silu, 0), ("hardswish", F.hardswish, TF.hardswish, 0),
    # PyTorch's CPU kernel multiplies by 1/6 rounded to float32 even in float64 (3e-8 off);
    # convscope's gradient is exactly 1/6
    ("hardsigmoid", F.hardsigmoid, TF.hardsigmoid, 1e-7),
    ("elu", lambda t: F.elu(t, 0.7), lambda t: TF.elu(t, 0.7), 0),
]
SPECIAL = [-6.0, -3.0, -2.0, -1.0, 0.0, 1.0, 1.5, 3.0, 6.0, np.nan, np.inf, -np.inf, 40.0, -40.0,
           -800.0, 800.0]


@pytest.mark.parametrize("name,fn,ref,grad_rtol", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_pytorch_at_kinks_and_specials(name, fn, ref, grad_rtol):
    rng = np.random.default_rng(0)
    x = np.concatenate([SPECIAL, rng.uniform(-8, 8, 192)]).reshape(2, 2, 4, -1)
    result = both(fn, ref, x)
    got, want, cs_in, th_in = result
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-14,
                               equal_nan=True)
    got.backward(np.ones(got.shape))
    want.sum().backward()
    np.testing.assert_allclose(cs_in[0].grad.numpy(), th_in[0].grad.numpy(),
                               rtol=grad_rtol or 1e-12, atol=1e-14, equal_nan=True)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["leaky_relu", "hardtanh", "elu", "gelu"]),
       st.floats(-3, 3, allow_nan=False), st.floats(-3, 3, allow_nan=False),
       st.sampled_from(["none", "tanh", "fast"]), SEEDS)
def test_activation_options_match_pytorch(name, a, b, approximate, seed):
    """Generated options, the impossible ones included (min_val > max_val, an unknown
    approximation): both refuse those."""
    x = np.random.default_rng(seed).uniform(-5, 5, (2, 3, 4))
    calls = {
        "leaky_relu": (lambda t: F.leaky_relu(t, a), lambda t: TF.leaky_relu(t, a)),
        "hardtanh": (lambda t: F.hardtanh(t, a, b), lambda t: TF.hardtanh(t, a, b)),
        "elu": (lambda t: F.elu(t, abs(a)), lambda t: TF.elu(t, abs(a))),
        "gelu": (lambda t: F.gelu(t, approximate), lambda t: TF.gelu(t, approximate=approximate)),
    }
    agree(both(*calls[name], x), seed, rtol=1e-12, atol=1e-13)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4), st.integers(-6, 5), st.sampled_from(["softmax", "log_softmax"]), SEEDS)
def test_softmax_matches_pytorch(rank, dim, name, seed):
    shape = tuple(np.random.default_rng(seed).integers(1, 4, rank))
    x = np.random.default_rng(seed).standard_normal(shape) * 10
    fn = getattr(F, name)
    agree(both(lambda t: fn(t, dim), lambda t: getattr(torch, name)(t, dim), x), seed,
          rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- joins
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
                min_size=1, max_size=4), st.integers(-4, 3), st.booleans(), SEEDS)
def test_cat_and_stack_match_pytorch(shapes, dim, stack, seed):
    rng = np.random.default_rng(seed)
    if rng.random() < 0.5:  # mostly joinable: all alike but along dim
        base = list(shapes[0])
        shapes = [tuple(base[:dim % 3] + [s[dim % 3]] + base[dim % 3 + 1:]) for s in shapes]
    arrays = [rng.standard_normal(s) for s in shapes]
    op = "stack" if stack else "cat"
    agree(both(lambda *t: getattr(cs, op)(list(t), dim),
               lambda *t: getattr(torch, op)(list(t), dim), *arrays), seed)


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(1, 3),
       st.integers(1, 3)), st.sampled_from([1, -2.5, 0]), SEEDS)
def test_add_broadcasts_as_pytorch(a_shape, b_shape, alpha, seed):
    rng = np.random.default_rng(seed)
    agree(both(lambda a, b: cs.add(a, b, alpha=alpha), lambda a, b: torch.add(a, b, alpha=alpha),
               rng.standard_normal(a_shape), rng.standard_normal((2,) + b_shape)), seed)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4), st.integers(-5, 4), st.integers(-5, 4), SEEDS)
def test_flatten_matches_pytorch(rank, start, end, seed):
    x = np.random.default_rng(seed).standard_normal(tuple(range(2, 2 + rank)))
    agree(both(lambda t: cs.flatten(t, start, end), lambda t: torch.flatten(t, start, end), x),
          seed)
    x = np.random.default_rng(seed).standard_normal((2, 3, 4))
    agree(both(lambda t: cs.flatten(t), lambda t: torch.flatten(t), x), seed)  # start_dim 0


def test_dropout2d_behaves_as_pytorch():
    x = np.ones((8, 64, 2, 2))
    for p in (0.0, 0.3, 1.0):
        y = F.dropout2d(cs.tensor(x), p, generator=0).numpy()
        t = TF.dropout2d(torch.tensor(x), p).numpy()
        for out in (y, t):  # whole maps, scaled survivors
            maps = out.reshape(8, 64, 4)
            assert (maps.min(axis=2) == maps.max(axis=2)).all()
            assert set(np.unique(maps).tolist()) <= {0.0, 1 / (1 - p) if p < 1 else 0.0}
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            TF.dropout2d(torch.tensor(x), bad)
        with pytest.raises(ConvscopeError):
            F.dropout2d(x, bad)
    np.testing.assert_array_equal(F.dropout2d(x, 0.5, training=False).numpy(),
                                  TF.dropout2d(torch.tensor(x), 0.5, training=False).numpy())


# --------------------------------------------------------------------------- layers
LAYER_PAIRS = [  # (convscope layer, PyTorch layer, input shape)
    (lambda: cs.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
     lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
     (2, 4, 5, 6)),
    (lambda: cs.nn.ConvTranspose2d(3, 2, (2, 3), dilation=(3, 1), output_padding=(2, 0),
                                   bias=False),
     lambda: torch.nn.ConvTranspose2d(3, 2, (2, 3), dilation=(3, 1), output_padding=(2, 0),
                                      bias=False), (3, 4, 4)),
    (lambda: cs.nn.AdaptiveAvgPool2d((3, None)), lambda: torch.nn.AdaptiveAvgPool2d((3, None)),
     (2, 3, 7, 5)),
    (lambda: cs.nn.Upsample(scale_factor=2.5, mode="bilinear"),
     lambda: torch.nn.Upsample(scale_factor=2.5, mode="bilinear"), (1, 2, 3, 5)),
    (lambda: cs.nn.Upsample(size=(4, 9)), lambda: torch.nn.Upsample(size=(4, 9)), (1, 2, 3, 5)),
    (lambda: cs.nn.Softmax(), lambda: torch.nn.Softmax(), (2, 3, 4, 4)),
    (lambda: cs.nn.Softmax(), lambda: torch.nn.Softmax(), (3, 4, 4)),
    (lambda: cs.nn.LogSoftmax(), lambda: torch.nn.LogSoftmax(), (5, 7)),
    (lambda: cs.nn.LeakyReLU(0.3), lambda: torch.nn.LeakyReLU(0.3), (2, 3, 4)),
    (lambda: cs.nn.ReLU6(), lambda: torch.nn.ReLU6(), (2, 3, 4)),
    (lambda: cs.nn.Hardtanh(-0.5, 2.0), lambda: torch.nn.Hardtanh(-0.5, 2.0), (2, 3, 4)),
    (lambda: cs.nn.Sigmoid(), lambda: torch.nn.Sigmoid(), (2, 3, 4)),
    (lambda: cs.nn.Tanh(), lambda: torch.nn.Tanh(), (2, 3, 4)),
    (lambda: cs.nn.GELU("tanh"), lambda: torch.nn.GELU("tanh"), (2, 3, 4)),
    (lambda: cs.nn.SiLU(), lambda: torch.nn.SiLU(), (2, 3, 4)),
    (lambda: cs.nn.Hardswish(), lambda: torch.nn.Hardswish(), (2, 3, 4)),
    (lambda: cs.nn.Hardsigmoid(), lambda: torch.nn.Hardsigmoid(), (2, 3, 4)),
    (lambda: cs.nn.ELU(0.5), lambda: torch.nn.ELU(0.5), (2, 3, 4)),
    (lambda: cs.nn.Dropout2d(0.5).eval(), lambda: torch.nn.Dropout2d(0.5).eval(), (2, 3, 4, 4)),
]


@pytest.mark.parametrize("make_cs,make_torch,shape", LAYER_PAIRS,
                         ids=[f"{i}" for i in range(len(LAYER_PAIRS))])
def test_layers_match_pytorch_with_its_weights(make_cs, make_torch, shape):
    ours, theirs = make_cs().double(), make_torch().double()
    ours.load_state_dict(theirs.state_dict())  # the same names and shapes
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours).split("(")[0] == repr(theirs).split("(")[0]
    x = np.random.default_rng(1).standard_normal(shape)
    rtol = 1e-7 if isinstance(ours, cs.nn.Hardsigmoid) else 1e-11  # PyTorch's float32 1/6
    agree(both(ours, theirs, x), 1, rtol=rtol, atol=1e-11)


def test_conv_transpose_output_size_and_init_as_pytorch():
    ours = cs.nn.ConvTranspose2d(3, 4, 3, stride=3, padding=1, seed=0).double()
    theirs = torch.nn.ConvTranspose2d(3, 4, 3, stride=3, padding=1).double()
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 4))
    for size in ((10, 10), (11, 12), (1, 4, 12, 10)):
        want = theirs(torch.tensor(x), output_size=size).detach().numpy()
        np.testing.assert_allclose(ours(cs.tensor(x), output_size=size).numpy(), want,
                                   rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        theirs(torch.tensor(x), output_size=(13, 10))
    with pytest.raises(ConvscopeError):
        ours(cs.tensor(x), output_size=(13, 10))
    # the same initial distribution: uniform in +-1/sqrt(out_channels/groups * kH * kW)
    torch.manual_seed(0)
    big_t = torch.nn.ConvTranspose2d(64, 32, 3).weight.detach().numpy()
    big_c = cs.nn.ConvTranspose2d(64, 32, 3, seed=0).weight.numpy()
    assert abs(np.abs(big_t).max() - np.abs(big_c).max()) < 1e-3
    assert abs(big_t.std() - big_c.std()) < 2e-3
