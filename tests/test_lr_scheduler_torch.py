"""Learning-rate schedules against PyTorch's: every rate (and cycled momentum), step for step.

Runs only where torch is installed; marked ``torch``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import optim
from convscope.errors import ArgumentTypeError
from convscope.optim import lr_scheduler as ours_sched
from errorcheck import check_error

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
tsched = torch.optim.lr_scheduler

STEPS = 50


def _optimizers(kind: str, lr: float, groups: int):
    kw = dict(momentum=0.9) if kind == "SGD" else dict(betas=(0.9, 0.99))
    ours = getattr(optim, kind)(
        [{"params": [cs.nn.Parameter([1.0])], "lr": lr * (i + 1)} for i in range(groups)],
        lr=lr, **kw)
    theirs = getattr(torch.optim, kind)(
        [{"params": [torch.nn.Parameter(torch.ones(1))], "lr": lr * (i + 1)}
         for i in range(groups)], lr=lr, **kw)
    return ours, theirs


def _momentum(opt) -> list[float]:
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _compare(name: str, kw: dict, kind: str = "SGD", groups: int = 2, metrics=None,
             steps: int = STEPS) -> int:
    ours_opt, torch_opt = _optimizers(kind, 0.1, groups)
    ours = getattr(ours_sched, name)(ours_opt, **kw)
    theirs = getattr(tsched, name)(torch_opt, **kw)
    compared = 0
    for step in range(steps + 1):
        a, b = ours.get_last_lr(), theirs.get_last_lr()
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"{name} step {step}")
        np.testing.assert_allclose(_momentum(ours_opt), _momentum(torch_opt), rtol=1e-12,
                                   atol=1e-12, err_msg=f"{name} momentum, step {step}")
        assert [g["lr"] for g in ours_opt.param_groups] == pytest.approx(
            [g["lr"] for g in torch_opt.param_groups], rel=1e-12, abs=1e-12)
        compared += len(a)
        if step == steps:
            break
        ours_opt.step()
        torch_opt.step()
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[step])
            theirs.step(metrics[step])
    return compared


@settings(max_examples=15, deadline=None)
@given(step_size=st.integers(1, 12), gamma=st.floats(0.1, 1.0))
def test_steplr(step_size, gamma):
    _compare("StepLR", dict(step_size=step_size, gamma=gamma))


@settings(max_examples=15, deadline=None)
@given(milestones=st.lists(st.integers(0, 60), max_size=6), gamma=st.floats(0.1, 1.0))
def test_multisteplr(milestones, gamma):
    _compare("MultiStepLR", dict(milestones=milestones, gamma=gamma))


@settings(max_examples=10, deadline=None)
@given(gamma=st.floats(0.8, 1.0))
def test_exponentiallr(gamma):
    _compare("ExponentialLR", dict(gamma=gamma))


@settings(max_examples=15, deadline=None)
@given(T_max=st.integers(1, 60), eta_min=st.sampled_from([0.0, 1e-4, 0.01]))
def test_cosine_annealing(T_max, eta_min):
    _compare("CosineAnnealingLR", dict(T_max=T_max, eta_min=eta_min))


def test_lambdalr():
    _compare("LambdaLR", dict(lr_lambda=lambda e: 0.95**e * (1 + e % 3)))
    _compare("LambdaLR", dict(lr_lambda=[lambda e: 1 / (e + 1), lambda e: min(1.0, e / 10)]))


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["SGD", "Adam"]), pct=st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.9]),
       strategy=st.sampled_from(["cos", "linear"]), three_phase=st.booleans(),
       div=st.sampled_from([25.0, 10.0]), final=st.sampled_from([1e4, 100.0]),
       cycle=st.booleans(), by_epochs=st.booleans())
def test_onecycle(kind, pct, strategy, three_phase, div, final, cycle, by_epochs):
    length = dict(epochs=5, steps_per_epoch=10) if by_epochs else dict(total_steps=STEPS)
    _compare("OneCycleLR", dict(max_lr=[1.0, 0.5], pct_start=pct, anneal_strategy=strategy,
                                three_phase=three_phase, div_factor=div, final_div_factor=final,
                                cycle_momentum=cycle, base_momentum=0.8, max_momentum=0.95,
                                **length), kind=kind)


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(["min", "max"]), factor=st.sampled_from([0.1, 0.5, 0.9]),
       patience=st.integers(0, 4), threshold=st.sampled_from([0.0, 1e-4, 0.05]),
       threshold_mode=st.sampled_from(["rel", "abs"]), cooldown=st.integers(0, 3),
       min_lr=st.sampled_from([0.0, 1e-3, [1e-2, 1e-3]]), eps=st.sampled_from([1e-8, 1e-2]),
       seed=st.integers(0, 1000))
def test_reduce_on_plateau(mode, factor, patience, threshold, threshold_mode, cooldown, min_lr,
                           eps, seed):
    rng = np.random.default_rng(seed)  # a noisy curve with plateaus and repeats
    metrics = np.round(np.cumsum(rng.choice([-0.1, 0.0, 0.0, 0.05], STEPS)) + 2.0, 3).tolist()
    _compare("ReduceLROnPlateau", dict(mode=mode, factor=factor, patience=patience,
                                       threshold=threshold, threshold_mode=threshold_mode,
                                       cooldown=cooldown, min_lr=min_lr, eps=eps),
             metrics=metrics)


@pytest.mark.parametrize("name, kw", [
    ("StepLR", dict(step_size=4, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=40, three_phase=True)),
    ("MultiStepLR", dict(milestones=[3, 7, 7], gamma=0.3)),
])
def test_pytorch_scheduler_and_optimizer_states_resume_here(name, kw):
    ours_opt, torch_opt = _optimizers("SGD", 0.1, 2)
    theirs = getattr(tsched, name)(torch_opt, **kw)
    for _ in range(12):
        torch_opt.step()
        theirs.step()
    ours = getattr(ours_sched, name)(ours_opt, **kw)
    ours_opt.load_state_dict(torch_opt.state_dict())
    ours.load_state_dict(theirs.state_dict())
    for step in range(20):
        ours_opt.step()
        torch_opt.step()
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12,
                                   atol=1e-15, err_msg=f"step {step}")
        np.testing.assert_allclose(_momentum(ours_opt), _momentum(torch_opt), rtol=1e-12)


def test_a_pytorch_optimizer_is_refused_with_its_full_name():
    torch_opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    check_error(lambda: ours_sched.StepLR(torch_opt, 10), ArgumentTypeError,
                r"^StepLR: the first argument must be a convscope optimizer\..*Received: "
                r"torch\.optim\.sgd\.SGD")
