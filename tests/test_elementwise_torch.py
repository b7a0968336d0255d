"""Batch norm and the activations on the compiled loops against PyTorch.

Float64: values, gradients (input, weight, bias) and running statistics after several
training steps, train and eval, generated shapes (thresholds lowered so small shapes reach
the loops) and one layer-sized shape with the real thresholds. Float32 within the float32
bound of PyTorch's float64 result. Inf and NaN in a channel as PyTorch. The activations'
gradients at the kinks and at NaN as PyTorch's vectorised kernels. Marked ``torch``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import functional as F
from test_elementwise import forced
from tolerance import U32

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
torch.set_num_threads(1)
TF = torch.nn.functional


def _layers(c, momentum, affine):
    ours = cs.nn.BatchNorm2d(c, momentum=momentum, affine=affine).double()
    theirs = torch.nn.BatchNorm2d(c, momentum=momentum, affine=affine).double()
    if affine:
        rng = np.random.default_rng(c)
        w, b = rng.uniform(-2, 2, c), rng.standard_normal(c)
        ours.weight.data[:], ours.bias.data[:] = w, b
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
            theirs.bias.copy_(torch.tensor(b))
    return ours, theirs


def _steps(ours, theirs, shape, seed, steps=3):
    rng = np.random.default_rng(seed)
    for step in range(steps):
        x = rng.standard_normal(shape) * (1 + step) + 3 * step - 1
        xc, xt = cs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yc, yt = ours(xc), theirs(xt)
        np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
        gy = rng.standard_normal(shape)
        yc.backward(gy)
        yt.backward(torch.tensor(gy))
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-9)
    if ours.affine:
        for name in ("weight", "bias"):
            np.testing.assert_allclose(getattr(ours, name).grad.numpy(),
                                       getattr(theirs, name).grad.numpy(), rtol=1e-9, atol=1e-8,
                                       err_msg=name)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name).numpy(),
                                   rtol=1e-12, atol=1e-12, err_msg=name)


@settings(max_examples=25, deadline=None)
@given(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.integers(1, 7)),
       st.sampled_from([0.1, 0.5]), st.booleans(), st.booleans(), st.integers(0, 2**31 - 1))
def test_batch_norm_steps_match_pytorch(shape, momentum, affine, parallel, seed):
    if shape[0] * shape[2] * shape[3] < 2:
        shape = (2,) + shape[1:]
    ours, theirs = _layers(shape[1], momentum, affine)
    with forced(parallel):
        _steps(ours, theirs, shape, seed)
        ours.eval()
        theirs.eval()
        _steps(ours, theirs, shape, seed + 1, steps=2)


def test_batch_norm_layer_sized_matches_pytorch():
    """No lowered thresholds: 4 x 16 x 24 x 24 takes the loops (2 threads)."""
    ours, theirs = _layers(16, 0.1, True)
    _steps(ours, theirs, (4, 16, 24, 24), 1)
    ours.eval()
    theirs.eval()
    _steps(ours, theirs, (4, 16, 24, 24), 2, steps=1)


def test_batch_norm_float32_within_bound_of_pytorch_float64():
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((4, 16, 24, 24)) * 3 + 5).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    ours = cs.nn.BatchNorm2d(16)
    theirs = torch.nn.BatchNorm2d(16).double()
    xc = cs.tensor(x, requires_grad=True)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    yc, yt = ours(xc), theirs(xt)
    yc.backward(gy)
    yt.backward(torch.tensor(gy.astype(np.float64)))
    # |error| <= c u (|x| + |mean|) / std for the output; the gradients as in test_elementwise
    std = x.astype(np.float64).std(axis=(0, 2, 3)).reshape(1, -1, 1, 1)
    mag = (np.abs(x) + np.abs(x.mean(axis=(0, 2, 3))).reshape(1, -1, 1, 1)) / std
    assert (np.abs(yc.numpy() - yt.detach().numpy()) <= 8 * U32 * (mag + 1)).all()
    gx_scale = np.abs(xt.grad.numpy()).max()
    assert np.abs(xc.grad.numpy() - xt.grad.numpy()).max() <= 1e-5 * (gx_scale + 1)
    for name in ("weight", "bias"):
        got, want = getattr(ours, name).grad.numpy(), getattr(theirs, name).grad.numpy()
        assert np.abs(got - want).max() <= 1e-5 * np.abs(gy).sum(axis=(0, 2, 3)).max(), name
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-6)


def test_batch_norm_inf_and_nan_as_pytorch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 32, 32))
    x[1, 2, 3, 4] = np.inf
    x[0, 5, 0, 0] = np.nan
    ours, theirs = _layers(8, 0.1, True)
    yc, yt = ours(cs.tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10,
                               equal_nan=True)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name).numpy(),
                                   rtol=1e-12, equal_nan=True, err_msg=name)


# --------------------------------------------------------------------------- activations
KINKS = np.array([-3.0, 0.0, 3.0, 6.0, -1.0, 1.0, np.nan, -np.inf, np.inf, -0.0, 2.5, -2.5])
ACTIVATIONS = [
    ("relu6", F.relu6, TF.relu6),
    ("hardtanh", lambda t: F.hardtanh(t, -1.0, 1.0), lambda t: TF.hardtanh(t, -1.0, 1.0)),
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.2), lambda t: TF.leaky_relu(t, 0.2)),
    ("hardswish", F.hardswish, TF.hardswish),
    ("hardsigmoid", F.hardsigmoid, TF.hardsigmoid),
    ("sigmoid", F.sigmoid, torch.sigmoid),
]


@pytest.mark.parametrize("name, ours, theirs", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_on_the_loops_match_pytorch(name, ours, theirs, dtype):
    """Kinks, NaN and infinities at the start of a layer-sized array (PyTorch's vectorised
    part), random values after them."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-8, 8, 2 * 16 * 32 * 32)
    x[: KINKS.size] = KINKS
    x = x.reshape(2, 16, 32, 32).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    xc, xt = cs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    with np.errstate(all="ignore"):
        yc, yt = ours(xc), theirs(xt)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=rtol, atol=rtol,
                               equal_nan=True)
    yc.backward(gy)
    yt.backward(torch.tensor(gy))
    if name == "hardsigmoid":  # PyTorch's gradient multiplies by 1/6 rounded to float32
        rtol = max(rtol, 1e-7)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=rtol,
                               equal_nan=True, err_msg=name)
