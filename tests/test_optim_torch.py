"""Optimizers against PyTorch: update rules with every option, and state_dicts both ways.

Runs only where torch is installed; marked ``torch``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import optim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
torch.set_num_threads(1)

SHAPES = [(4, 3), (3,), (2, 4)]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, maximize=True, betas=(0.8, 0.9))),
    ("Adam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
]


def _pair(seed: int, groups: bool, name: str, kw: dict):
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s) for s in SHAPES]
    ours = [cs.nn.Parameter(w) for w in w0]
    for p, w in zip(ours, w0, strict=True):
        p.data = w.copy()  # float64, as the reference
    theirs = [torch.nn.Parameter(torch.tensor(w)) for w in w0]

    def grouped(ps):
        return [{"params": ps[:1]}, {"params": ps[1:], "lr": kw["lr"] / 2}] if groups else ps

    return (ours, getattr(optim, name)(grouped(ours), **kw),
            theirs, getattr(torch.optim, name)(grouped(theirs), **kw))


def _steps(ours, oc, theirs, ot, rng, n):
    for _ in range(n):
        for p, q in zip(ours, theirs, strict=True):
            g = rng.standard_normal(p.shape)
            p.grad, q.grad = cs.tensor(g), torch.tensor(g)
        oc.step()
        ot.step()


def _close(ours, theirs, what):
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=what)


def _to_torch(value):
    return torch.tensor(value.numpy()) if isinstance(value, cs.Tensor) else value


@settings(max_examples=20, deadline=None)
@given(config=st.sampled_from(CONFIGS), groups=st.booleans(), seed=st.integers(0, 99))
def test_every_option_follows_pytorch_update_rules(config, groups, seed):
    name, kw = config
    ours, oc, theirs, ot = _pair(seed, groups, name, kw)
    _steps(ours, oc, theirs, ot, np.random.default_rng(seed + 1), 6)
    _close(ours, theirs, f"{name} {kw}")


@pytest.mark.parametrize("name, kw", CONFIGS)
def test_pytorch_state_dict_loads_here_and_ours_loads_in_pytorch(name, kw):
    rng = np.random.default_rng(3)
    ours, oc, theirs, ot = _pair(0, True, name, kw)
    _steps(ours, oc, theirs, ot, rng, 3)

    # torch -> convscope: a fresh optimizer continues as torch's does
    ours2, oc2, _, _ = _pair(5, True, name, kw)
    for p, q in zip(ours2, theirs, strict=True):
        p.data = q.detach().numpy().copy()
    oc2.load_state_dict(ot.state_dict())
    # convscope -> torch: our state, as torch tensors, in a fresh torch optimizer
    _, _, theirs2, ot2 = _pair(6, True, name, kw)
    with torch.no_grad():
        for p, q in zip(ours, theirs2, strict=True):
            q.copy_(torch.tensor(p.numpy()))
    sd = oc.state_dict()
    ot2.load_state_dict({"state": {i: {k: _to_torch(v) for k, v in s.items()}
                                   for i, s in sd["state"].items()},
                         "param_groups": sd["param_groups"]})

    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    _steps(ours2, oc2, theirs, ot, rng_a, 4)
    _steps(ours, oc, theirs2, ot2, rng_b, 4)
    _close(ours2, theirs, f"{name}: torch state loaded here")
    _close(ours, theirs2, f"{name}: our state loaded in torch")
