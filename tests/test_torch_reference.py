"""PyTorch as an independent reference: forward values, gradients and optimizer steps.

Runs only where torch is installed (``pip install torch==2.13.0``); marked ``torch``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.functional as F

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
torch.set_num_threads(1)

RAN: list[str] = []


def _both(x: np.ndarray):
    return cs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


@st.composite
def conv_case(draw):
    g = draw(st.sampled_from([1, 1, 2, 3]))
    cin = g * draw(st.integers(1, 3))
    cout = g * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(dh * (kh - 1) + 1 - min(2 * ph, dh * (kh - 1)), 9))
    w = draw(st.integers(dw * (kw - 1) + 1 - min(2 * pw, dw * (kw - 1)), 9))
    n = draw(st.integers(1, 3))
    return dict(n=n, cin=cin, cout=cout, h=h, w=w, k=(kh, kw), stride=(sh, sw),
                padding=(ph, pw), dilation=(dh, dw), groups=g, bias=draw(st.booleans()))


@settings(max_examples=120, deadline=None)
@given(conv_case(), st.integers(0, 2**31 - 1))
def test_conv2d_forward_and_backward_match_pytorch_float64(c, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-9, 9, (c["n"], c["cin"], c["h"], c["w"]))
    w = rng.uniform(-1, 1, (c["cout"], c["cin"] // c["groups"]) + c["k"])
    b = rng.uniform(-1, 1, c["cout"]) if c["bias"] else None
    kw = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    xc, xt = _both(x)
    wc, wt = _both(w)
    bc, bt = _both(b) if b is not None else (None, None)
    yc = F.conv2d(xc, wc, bc, **kw)
    yt = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(yc.shape)
    yc.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wc.grad.numpy(), wt.grad.numpy(), rtol=1e-10, atol=1e-9)
    if b is not None:
        np.testing.assert_allclose(bc.grad.numpy(), bt.grad.numpy(), rtol=1e-10, atol=1e-9)
    RAN.append("conv2d")


@settings(max_examples=60, deadline=None)
@given(conv_case(), st.integers(0, 2**31 - 1))
def test_fused_conv_relu_matches_pytorch_float64(c, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-9, 9, (c["n"], c["cin"], c["h"], c["w"]))
    w = rng.uniform(-1, 1, (c["cout"], c["cin"] // c["groups"]) + c["k"])
    b = rng.uniform(-1, 1, c["cout"]) if c["bias"] else None
    kw = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    (xc, xt), (wc, wt) = _both(x), _both(w)
    bc, bt = _both(b) if b is not None else (None, None)
    yc = F.conv2d_relu(xc, wc, bc, **kw)
    yt = torch.relu(torch.nn.functional.conv2d(xt, wt, bt, **kw))
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(yc.shape)
    yc.backward(gy)
    yt.backward(torch.tensor(gy))
    for ours, theirs in [(xc, xt), (wc, wt)] + ([(bc, bt)] if b is not None else []):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-9)
    RAN.append("conv2d_relu")


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 1),
       st.integers(1, 2), st.booleans(), st.booleans(), st.integers(0, 2**31 - 1))
def test_pools_match_pytorch(k, s, extra, p, d, ceil, include_pad, seed):
    p = min(p, k // 2)
    rng = np.random.default_rng(seed)
    h = d * (k - 1) + 1 + extra
    x = rng.permutation(2 * 3 * h * (h + 1)).reshape(2, 3, h, h + 1) / 7.0  # no ties
    xc, xt = _both(x)
    yc = F.max_pool2d(xc, k, s, p, dilation=d, ceil_mode=ceil)
    yt = torch.nn.functional.max_pool2d(xt, k, s, p, dilation=d, ceil_mode=ceil)
    np.testing.assert_array_equal(yc.numpy(), yt.detach().numpy())
    gy = rng.standard_normal(yc.shape)
    yc.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), atol=1e-12)
    xc, xt = _both(x)
    hh = k + extra
    xc, xt = _both(x[:, :, :hh, :hh + 1])
    yc = F.avg_pool2d(xc, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    yt = torch.nn.functional.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(yc.shape)
    yc.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), atol=1e-12)
    RAN.append("pool")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_padding_modes_match_pytorch(mode):
    rng = np.random.default_rng(0)
    ours = cs.nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode, seed=0).double()
    theirs = torch.nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode).double()
    theirs.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((2, 3, 5, 6))
    xc, xt = _both(x)
    yc, yt = ours(xc), theirs(xt)
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(yc.shape)
    yc.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), atol=1e-11)


def test_batchnorm_dropout_linear_cross_entropy_match_pytorch():
    rng = np.random.default_rng(0)
    bn = cs.nn.BatchNorm2d(3).double()
    tbn = torch.nn.BatchNorm2d(3).double()
    x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
    for _ in range(2):
        xc, xt = _both(x)
        yc, yt = bn(xc), tbn(xt)
        np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), atol=1e-10)
        gy = rng.standard_normal(yc.shape)
        yc.backward(gy)
        yt.backward(torch.tensor(gy))
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), atol=1e-10)
    for name, buf in bn.state_dict().items():
        np.testing.assert_allclose(buf, tbn.state_dict()[name].numpy(), atol=1e-12, err_msg=name)
    bn.eval()
    tbn.eval()
    np.testing.assert_allclose(bn(cs.tensor(x)).numpy(), tbn(torch.tensor(x)).detach().numpy(),
                               atol=1e-10)

    z = rng.standard_normal((6, 5)) * 4
    t = rng.integers(0, 5, 6)
    zc, zt = _both(z)
    lc = F.cross_entropy(zc, t)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(t))
    assert abs(lc.item() - lt.item()) < 1e-12
    lc.backward()
    lt.backward()
    np.testing.assert_allclose(zc.grad.numpy(), zt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("name, kw", [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.9))),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
])
def test_optimizers_follow_pytorch_update_rules(name, kw):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    wc = cs.nn.Parameter(w0)
    wc.data = w0.copy()
    wt = torch.nn.Parameter(torch.tensor(w0))
    oc = getattr(cs.optim, name)([wc], **kw)
    ot = getattr(torch.optim, name)([wt], **kw)
    for step in range(6):
        g = rng.standard_normal(5)
        wc.grad = cs.tensor(g)
        wt.grad = torch.tensor(g)
        oc.step()
        ot.step()
        np.testing.assert_allclose(wc.numpy(), wt.detach().numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=f"step {step}")


def test_float32_model_matches_pytorch_within_the_error_bound():
    model = cs.parse("64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | conv(16, 5, padding=2)"
                     " | relu | avgpool(2) | flatten | linear(10)", seed=0)
    layers = [torch.nn.Conv2d(3, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
              torch.nn.Conv2d(8, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
              torch.nn.Flatten(), torch.nn.Linear(4096, 10)]
    tmodel = torch.nn.Sequential(*layers)
    tmodel.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    y = model(x).numpy()
    yt = tmodel(torch.tensor(x)).detach().numpy()
    assert np.abs(y - yt).max() <= 1e-4 * max(1.0, np.abs(yt).max())


def test_the_generated_cases_actually_ran():
    assert RAN.count("conv2d") >= 100 and RAN.count("pool") >= 60, RAN[:3]
    assert RAN.count("conv2d_relu") >= 50, RAN[:3]
