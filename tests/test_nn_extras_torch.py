"""nn.init fans and gains, gradient clipping, losses and containers against PyTorch.

Runs only where torch is installed; marked ``torch``. Losses are compared in float64:
values and the gradients of every input that takes one, to 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import nn
from convscope.errors import ShapeError
from convscope.functional import loss as L
from convscope.nn import init

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
torch.set_num_threads(1)
TF = torch.nn.functional


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=5))
def test_fans_match_pytorch(shape):
    ours = nn.Parameter(np.zeros(shape))
    theirs = torch.zeros(shape)
    if len(shape) < 2:
        with pytest.raises(ValueError):
            torch.nn.init._calculate_fan_in_and_fan_out(theirs)
        with pytest.raises(ShapeError):
            init._calculate_fan_in_and_fan_out(ours)
        return
    assert init._calculate_fan_in_and_fan_out(ours) == (
        torch.nn.init._calculate_fan_in_and_fan_out(theirs))


@pytest.mark.parametrize("name, param", [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv_transpose2d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu", None),
])
def test_gains_match_pytorch(name, param):
    assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)


@pytest.mark.parametrize("fn, kw", [
    ("kaiming_uniform_", dict(a=math.sqrt(5))), ("kaiming_normal_", dict(mode="fan_out")),
    ("xavier_uniform_", dict(gain=2.0)), ("xavier_normal_", {}),
])
def test_init_spreads_match_pytorchs_on_big_weights(fn, kw):
    ours, theirs = nn.Parameter(np.zeros((256, 64, 3, 3))), torch.empty(256, 64, 3, 3)
    getattr(init, fn)(ours, **kw)
    getattr(torch.nn.init, fn)(theirs, generator=torch.Generator().manual_seed(0), **kw)
    a, b = ours.numpy(), theirs.numpy()
    assert abs(a.std() - b.std()) < 0.01 * b.std()
    if "uniform" in fn:
        assert abs(np.abs(a).max() - np.abs(b).max()) < 1e-3 * np.abs(b).max()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), norm_type=st.sampled_from([0.5, 1.0, 2.0, 3.0, math.inf]),
       max_norm=st.floats(0.1, 10.0), dtype=st.sampled_from([np.float32, np.float64]),
       scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_clip_grad_norm_matches_pytorch(seed, norm_type, max_norm, dtype, scale):
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in [(4, 3), (7,), (2, 2, 2)]]
    ours = [nn.Parameter(np.zeros(g.shape, dtype)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
              for g in grads]
    for p, q, g in zip(ours, theirs, grads, strict=True):
        p.grad, q.grad = cs.tensor(g.copy()), torch.from_numpy(g.copy())
    a = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    b = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert a.dtype == b.numpy().dtype
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tol)
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=tol, atol=tol)


def test_clip_grad_value_matches_pytorch():
    g = np.random.default_rng(0).standard_normal((5, 5)) * 3
    p, q = nn.Parameter(np.zeros((5, 5))), torch.nn.Parameter(torch.zeros(5, 5,
                                                                          dtype=torch.float64))
    p.grad, q.grad = cs.tensor(g), torch.tensor(g)
    nn.utils.clip_grad_value_([p], 0.7)
    torch.nn.utils.clip_grad_value_([q], 0.7)
    assert np.array_equal(p.grad.numpy(), q.grad.numpy())


# ----------------------------------------------------------------------------- losses
def _compare(ours_fn, torch_fn, arrays: list[np.ndarray], grads: list[bool]) -> None:
    """Value and gradients (of a random projection of the output) in float64."""
    ours = [cs.tensor(a, requires_grad=g) if a.dtype.kind == "f" else a
            for a, g in zip(arrays, grads, strict=True)]
    theirs = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads, strict=True)]
    yo, yt = ours_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    r = np.random.default_rng(1).standard_normal(yo.shape)
    yo.backward(r)
    yt.backward(torch.tensor(r))
    for o, t, g in zip(ours, theirs, grads, strict=True):
        if g:
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


@st.composite
def ce_case(draw):
    layout = draw(st.sampled_from(["rows", "pixels", "single"]))
    c = draw(st.integers(1, 5))
    n = draw(st.integers(0 if layout == "rows" else 1, 5))
    shape = {"rows": (n, c), "pixels": (n, c, 2, 3), "single": (c,)}[layout]
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    x = rng.standard_normal(shape) * 3
    soft = draw(st.booleans()) and layout != "single"
    kw = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])),
              label_smoothing=draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])))
    if draw(st.booleans()):
        kw["weight"] = rng.random(c) + 0.1
    if soft:
        target = rng.random(shape)
    else:
        label_shape = {"rows": (n,), "pixels": (n, 2, 3), "single": ()}[layout]
        target = rng.integers(0, c, label_shape)
        if draw(st.booleans()) and target.size:
            kw["ignore_index"] = int(target.reshape(-1)[0])
    return x, target, kw, soft


@settings(max_examples=80, deadline=None)
@given(case=ce_case())
def test_cross_entropy_matches_pytorch(case):
    x, target, kw, soft = case
    weight = kw.pop("weight", None)
    w_o = None if weight is None else weight
    w_t = None if weight is None else torch.tensor(weight)
    _compare(lambda a, t: L.cross_entropy(a, t, weight=w_o, **kw),
             lambda a, t: TF.cross_entropy(a, t, weight=w_t, **kw), [x, target], [True, soft])
    module = nn.CrossEntropyLoss(weight=w_o, **kw)
    tmodule = torch.nn.CrossEntropyLoss(weight=w_t, **kw)
    _compare(module, tmodule, [x, target], [True, False])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), reduction=st.sampled_from(["mean", "sum", "none"]),
       weighted=st.booleans(), pixels=st.booleans(), ignore=st.booleans())
def test_nll_loss_matches_pytorch(seed, reduction, weighted, pixels, ignore):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 3, 2) if pixels else (4, 3))
    t = rng.integers(0, 3, (4, 2) if pixels else (4,))
    kw = dict(reduction=reduction, ignore_index=int(t.reshape(-1)[0]) if ignore else -100)
    w = rng.random(3) + 0.1 if weighted else None
    _compare(lambda a, b: L.nll_loss(a, b, weight=w, **kw),
             lambda a, b: TF.nll_loss(a, b, weight=None if w is None else torch.tensor(w), **kw),
             [x, t], [True, False])
    _compare(nn.NLLLoss(weight=w, **kw),
             torch.nn.NLLLoss(weight=None if w is None else torch.tensor(w), **kw),
             [x, t], [True, False])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), reduction=st.sampled_from(["mean", "sum", "none"]),
       shape=st.sampled_from([(0,), (5,), (2, 3), (2, 3, 4)]))
def test_l1_mse_and_bce_with_logits_match_pytorch(seed, reduction, shape):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(shape) * 4, rng.random(shape)
    _compare(nn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction), [x, y],
             [True, True])
    _compare(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), [x, y],
             [True, True])
    last = shape[-1]
    w, pw = rng.random(shape) + 0.5, rng.random((last,)) + 0.5
    _compare(lambda a, t, ww, pp: L.binary_cross_entropy_with_logits(
                 a, t, weight=ww, pos_weight=pp, reduction=reduction),
             lambda a, t, ww, pp: TF.binary_cross_entropy_with_logits(
                 a, t, weight=ww, pos_weight=pp, reduction=reduction),
             [x, y, w, pw], [True, True, False, False])  # torch: none for the weights
    _compare(nn.BCEWithLogitsLoss(reduction=reduction),
             torch.nn.BCEWithLogitsLoss(reduction=reduction), [x, y], [True, False])


# ----------------------------------------------------------------------------- containers
def test_containers_state_dicts_match_pytorchs_and_load_its_weights():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(3, 4, seed=0), nn.ReLU(),
                                         nn.Linear(4, 4, seed=1)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(4, 2, seed=2)})

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.heads["cls"](x)

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                               torch.nn.Linear(4, 4)])
            self.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(4, 2)})

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.heads["cls"](x)

    ours, theirs = Ours(), Theirs()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
