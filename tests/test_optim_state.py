"""Optimizers: parameter groups, and state_dicts that resume a run bit for bit (no torch needed).

The comparisons with PyTorch's own optimizers and state_dicts are in test_optim_torch.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.functional as F
from convscope import optim
from convscope.errors import ArgumentError, ArgumentTypeError, ShapeError
from convscope.safetensors import load_file, save_file
from errorcheck import check_error

RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 5)).astype(np.float32)
Y = RNG.integers(0, 3, 16)


def _model(seed: int = 0) -> list[cs.nn.Parameter]:
    """A two-layer perceptron as bare parameters: w1 (8, 5), b1 (8,), w2 (3, 8), b2 (3,)."""
    rng = np.random.default_rng(seed)
    shapes = [(8, 5), (8,), (3, 8), (3,)]
    return [cs.nn.Parameter(rng.standard_normal(s).astype(np.float32) * 0.5) for s in shapes]


def _loss(params: list[cs.nn.Parameter], step: int) -> cs.Tensor:
    w1, b1, w2, b2 = params
    rows = slice((step * 4) % 16, (step * 4) % 16 + 4)
    h = F.relu(F.linear(X[rows], w1, b1))
    return F.cross_entropy(F.linear(h, w2, b2), Y[rows])


def _train(params: list, opt: optim.Optimizer, steps: range) -> None:
    for step in steps:
        opt.zero_grad()
        _loss(params, step).backward()
        opt.step()


def _groups(params: list, split: bool) -> list:
    if not split:
        return params
    return [{"params": params[:2]}, {"params": params[2:], "lr": 0.03}]


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.2, maximize=False)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=1e-2)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), decoupled_weight_decay=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.05)),
]


def _snapshot(params: list) -> list[np.ndarray]:
    return [p.numpy().copy() for p in params]


@settings(max_examples=30, deadline=None)
@given(config=st.sampled_from(CONFIGS), split=st.booleans(), first=st.integers(0, 4),
       then=st.integers(1, 4), form=st.sampled_from(["nested", "arrays", "file"]))
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(config, split, first, then, form,
                                                              tmp_path_factory):
    name, kw = config
    straight = _model()
    opt = getattr(optim, name)(_groups(straight, split), **kw)
    _train(straight, opt, range(first))
    saved_weights = _snapshot(straight)
    if form == "nested":
        saved = opt.state_dict()
    else:
        saved = opt.state_arrays()
        if form == "file":
            path = tmp_path_factory.mktemp("ckpt") / "optim.safetensors"
            save_file(path, saved, {})
            saved, _ = load_file(path)
    _train(straight, opt, range(first, first + then))

    resumed = _model(seed=1)  # other initial weights, replaced by the saved ones
    for p, w in zip(resumed, saved_weights, strict=True):
        p.data[...] = w
    opt2 = getattr(optim, name)(_groups(resumed, split), **kw)
    opt2.load_state_dict(saved)
    _train(resumed, opt2, range(first, first + then))
    for a, b in zip(straight, resumed, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_state_dict_has_pytorch_layout_and_copies():
    params = _model()
    opt = optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.01)
    _train(params, opt, range(2))
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.01, 0.5]
    s0 = sd["state"][0]
    assert isinstance(s0["exp_avg"], cs.Tensor) and s0["exp_avg"].shape == (8, 5)
    assert float(s0["step"].numpy()) == 2.0
    before = s0["exp_avg"].numpy().copy()
    _train(params, opt, range(2, 3))  # later steps leave a saved state alone
    assert np.array_equal(s0["exp_avg"].numpy(), before)
    sd["param_groups"][0]["lr"] = 9.0
    assert opt.param_groups[0]["lr"] == 0.01


def test_sgd_without_momentum_keeps_no_state_as_pytorch():
    params = _model()
    opt = optim.SGD(params, lr=0.1)
    _train(params, opt, range(2))
    assert opt.state_dict()["state"] == {}


def test_checkpoint_of_convscope_0_1_still_loads():
    """The flat form of earlier checkpoints: ``steps`` and ``<index>.<name>``."""
    params = _model()
    opt = optim.Adam(params, lr=0.01)
    _train(params, opt, range(3))
    legacy = {"steps": np.array(3, np.int64)}
    for i, p in enumerate(params):
        for k, v in opt.state[p].items():
            legacy[f"{i}.{k}"] = np.array(v, np.int64) if k == "step" else v.copy()
    weights = _snapshot(params)
    _train(params, opt, range(3, 5))
    resumed = _model(1)
    for p, w in zip(resumed, weights, strict=True):
        p.data[...] = w
    opt2 = optim.Adam(resumed, lr=0.01)
    opt2.load_state_dict(legacy)
    _train(resumed, opt2, range(3, 5))
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(params, resumed, strict=True))


def test_load_restores_hyperparameters_and_adamw_keeps_its_decay():
    params = _model()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    opt.param_groups[0]["lr"] = 0.02
    fresh = optim.SGD(_model(), lr=0.1, momentum=0.9)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["lr"] == 0.02
    adam = optim.Adam(_model(), lr=0.01, weight_decay=0.1)
    adamw = optim.AdamW(_model(), lr=0.01, weight_decay=0.1)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True


def test_param_groups_are_read_and_written_at_each_step():
    w = cs.nn.Parameter([1.0])
    b = cs.nn.Parameter([1.0])
    opt = optim.SGD([{"params": [w]}, {"params": b, "lr": 0.5}], lr=0.1)
    for p in (w, b):
        p.grad = cs.tensor([1.0])
    opt.step()
    assert w.numpy()[0] == np.float32(0.9) and b.numpy()[0] == np.float32(0.5)
    opt.param_groups[0]["lr"] = 0.25
    opt.step()
    assert w.numpy()[0] == np.float32(0.65)
    opt.lr = 0.0  # convscope's shortcut: every group
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]


def test_add_param_group_fills_defaults_and_named_parameters_work():
    params = _model()
    opt = optim.SGD(params[:2], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": params[2:], "momentum": 0.5})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.5
    named = optim.Adam([("w1", params[0]), ("b1", params[1])])
    assert named.param_groups[0]["param_names"] == ["w1", "b1"]
    assert named.state_dict()["param_groups"][0]["param_names"] == ["w1", "b1"]


def test_zero_grad_to_none_or_to_zeros_in_place():
    params = _model()
    opt = optim.SGD(params, lr=0.1)
    _loss(params, 0).backward()
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and not grad.numpy().any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_with_a_closure_returns_its_loss():
    params = _model()
    opt = optim.SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = _loss(params, 0)
        loss.backward()
        return loss

    before = _snapshot(params)
    loss = opt.step(closure)
    assert isinstance(loss, cs.Tensor)
    assert not np.array_equal(before[0], params[0].numpy())


def test_state_is_keyed_by_the_parameter():
    params = _model()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    _train(params, opt, range(1))
    assert params[0] in opt.state and len(opt.state) == 4
    assert opt.state[params[0]]["momentum_buffer"].shape == (8, 5)
    assert "Parameter Group 0" in repr(opt) and "momentum: 0.9" in repr(opt)


def test_a_failed_load_changes_nothing():
    params = _model()
    opt = optim.Adam(params, lr=0.01)
    _train(params, opt, range(2))
    good = opt.state_dict()
    bad = opt.state_dict()
    bad["state"][3]["exp_avg"] = np.zeros((7,), np.float32)
    with pytest.raises(ShapeError):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert np.array_equal(after["state"][0]["exp_avg"].numpy(), good["state"][0]["exp_avg"].numpy())


def _sd(**changes):
    opt = optim.Adam(_model(), lr=0.01)
    _train(opt.params, opt, range(1))
    sd = opt.state_dict()
    for key, value in changes.items():
        if key == "groups":
            sd["param_groups"] = value(sd["param_groups"])
        elif key == "state":
            value(sd["state"])
    return sd


def _load(sd):
    return lambda: optim.Adam(_model(), lr=0.01).load_state_dict(sd)


ERRORS = [
    ("group dict without params", lambda: optim.SGD([{"lr": 0.1}]), ArgumentTypeError,
     r"^SGD\.add_param_group: a parameter group must be a dict with a 'params' entry.*keys "
     r"\['lr'\]"),
    ("a set of parameters", lambda: optim.SGD(set(_model())), ArgumentTypeError,
     r"parameters must come in a fixed order, and a set has none\. Fix: pass a list"),
    ("the same parameter twice", lambda: optim.SGD([_model()[0]] * 2, lr=0.1), ArgumentError,
     r"a parameter appears twice in one group.*shape \(8, 5\)"),
    ("a parameter in two groups",
     lambda: (lambda p: optim.SGD([{"params": p[:2]}, {"params": p[1:]}]))(_model()),
     ArgumentError, r"some parameters appear in more than one parameter group.*1 shared"),
    ("a computed tensor", lambda: optim.SGD([_model()[0] * 2]), ArgumentError,
     r"cannot optimise a computed tensor \(not a leaf\).*a result of mul"),
    ("group lr -1", lambda: optim.SGD([{"params": _model(), "lr": -1}], lr=0.1), ArgumentError,
     r"^SGD: lr must be a non-negative number\. Fix: use lr=1e-3\. Received: lr=-1 in "
     r"parameter group 0\.$"),
    ("group momentum 'a'", lambda: optim.SGD([{"params": _model(), "momentum": "a"}]),
     ArgumentError, r"momentum must be a number >= 0\.0.*momentum='a' in parameter group 0"),
    ("nesterov 1", lambda: optim.SGD(_model(), momentum=0.9, nesterov=1), ArgumentTypeError,
     r"nesterov must be True or False.*nesterov=1"),
    ("amsgrad 'yes'", lambda: optim.Adam(_model(), amsgrad="yes"), ArgumentTypeError,
     r"^Adam: amsgrad must be True or False"),
    ("lr property 'fast'", lambda: setattr(optim.SGD(_model()), "lr", "fast"), ArgumentError,
     r"lr='fast'"),
    ("closure not callable", lambda: optim.SGD(_model()).step(3), ArgumentTypeError,
     r"^SGD\.step: closure must be a function.*closure of type int"),
    ("gradient of the wrong shape",
     lambda: (lambda p: (setattr(p[1], "grad", cs.tensor(np.zeros(3))),
                         optim.SGD(p).step()))(_model()),
     ShapeError, r"a gradient does not have its parameter's shape.*parameter \(8,\), "
     r"gradient \(3,\)"),
    ("load a list", _load([1, 2]), ArgumentTypeError,
     r"^Adam\.load_state_dict: expected an optimizer state_dict \(a dict\).*list"),
    ("load a model's state_dict", _load({"0.weight": np.zeros(3)}), ArgumentError,
     r"this is not an optimizer state_dict.*model\.load_state_dict"),
    ("load two groups into one", _load(_sd(groups=lambda g: g + g)), ArgumentError,
     r"a different number of parameter groups.*2 saved, 1 here"),
    ("load a group of 3 into 4",
     _load(_sd(groups=lambda g: [{**g[0], "params": [0, 1, 2]}])), ArgumentError,
     r"a different number of parameters.*\[3\] saved, \[4\] here"),
    ("load state of parameter 9", _load(_sd(state=lambda s: s.update({9: {}}))),
     ArgumentError, r"state entry 9 belongs to no saved parameter.*\[0, 1, 2, 3\]"),
    ("load a wrong shape", _load(_sd(state=lambda s: s[0].update(exp_avg=np.zeros((5, 8))))),
     ShapeError, r"state 'exp_avg' of parameter 0 does not fit.*\(5, 8\), parameter shape "
     r"\(8, 5\)"),
    ("load step 1.5", _load(_sd(state=lambda s: s[0].update(step=1.5))), ArgumentError,
     r"the step count of parameter 0 must be a whole number >= 0.*step=1\.5"),
    ("load string state", _load(_sd(state=lambda s: s[0].update(exp_avg="x"))),
     ArgumentTypeError, r"state 'exp_avg' of parameter 0 is not numeric"),
    ("load betas (2, 0)", _load(_sd(groups=lambda g: [{**g[0], "betas": (2.0, 0.0)}])),
     ArgumentError, r"^Adam: betas must be two numbers in \[0, 1\).*in parameter group 0"),
    ("load flat junk", _load({"state.x.exp_avg": np.zeros(3)}), ArgumentError,
     r"unexpected key 'state\.x\.exp_avg' in a flat optimizer state"),
]


@pytest.mark.parametrize("name, fn, cls, pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_arguments_are_refused_with_the_numbers(name, fn, cls, pattern):
    check_error(fn, cls, pattern)
