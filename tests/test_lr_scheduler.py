"""Learning-rate schedules: closed forms, plateau behaviour, resume, errors (no torch needed).

PyTorch's own schedulers, step for step, are in test_lr_scheduler_torch.py.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import optim
from convscope.errors import ArgumentError, ArgumentTypeError
from convscope.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)
from errorcheck import check_error


def _opt(lr: float = 0.1, groups: int = 1, kind: str = "SGD", **kw) -> optim.Optimizer:
    params = [{"params": [cs.nn.Parameter([1.0])], "lr": lr * (i + 1)} for i in range(groups)]
    return getattr(optim, kind)(params, lr=lr, **kw)


def _run(opt: optim.Optimizer, sched: LRScheduler, steps: int) -> list[list[float]]:
    """The rates in force at each epoch: the first is the constructor's."""
    rates = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step()
        sched.step()
        rates.append(sched.get_last_lr())
    return rates


def _tick(opt: optim.Optimizer, sched: LRScheduler) -> None:
    opt.step()
    sched.step()


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


@given(step_size=st.integers(1, 7), gamma=st.floats(0.05, 1.0), lr=st.floats(1e-4, 1.0))
def test_steplr_is_lr_times_gamma_to_the_number_of_periods(step_size, gamma, lr):
    opt = _opt(lr)
    rates = _run(opt, StepLR(opt, step_size, gamma), 30)
    assert all(_close(r[0], lr * gamma ** (k // step_size)) for k, r in enumerate(rates))
    assert opt.param_groups[0]["lr"] == rates[-1][0]


@given(milestones=st.lists(st.integers(0, 30), max_size=6), gamma=st.floats(0.05, 1.0))
def test_multisteplr_counts_the_milestones_passed(milestones, gamma):
    opt = _opt(0.5, groups=2)
    rates = _run(opt, MultiStepLR(opt, milestones, gamma), 35)
    marks = sorted(milestones)
    for k, r in enumerate(rates):
        factor = gamma ** bisect_right(marks, k)  # a milestone 0 acts at construction
        assert _close(r[0], 0.5 * factor) and _close(r[1], 1.0 * factor)


@given(gamma=st.floats(0.5, 1.0))
def test_exponentiallr_is_lr_times_gamma_to_the_epoch(gamma):
    opt = _opt(0.3)
    rates = _run(opt, ExponentialLR(opt, gamma), 40)
    assert all(math.isclose(r[0], 0.3 * gamma**k, rel_tol=1e-12) for k, r in enumerate(rates))


@given(T_max=st.integers(1, 12), eta_min=st.sampled_from([0.0, 1e-3, 0.05]))
def test_cosine_annealing_follows_the_cosine_formula_past_t_max(T_max, eta_min):
    opt = _opt(0.1, groups=2)
    rates = _run(opt, CosineAnnealingLR(opt, T_max, eta_min), 3 * T_max)
    for k, r in enumerate(rates):
        for base, got in zip((0.1, 0.2), r, strict=True):
            want = eta_min + (base - eta_min) * (1 + math.cos(math.pi * k / T_max)) / 2
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (k, got, want)
    assert _close(rates[T_max][0], eta_min) or math.isclose(rates[T_max][0], eta_min,
                                                           abs_tol=1e-15)


def test_lambdalr_one_function_per_group():
    opt = _opt(1.0, groups=2)
    sched = LambdaLR(opt, [lambda e: 0.5**e, lambda e: 1.0 / (e + 1)])
    rates = _run(opt, sched, 4)
    assert rates == [[1.0 * 0.5**k, 2.0 / (k + 1)] for k in range(5)]


def test_a_rate_set_by_hand_carries_on_as_pytorchs_chained_schedules_do():
    opt = _opt(1.0)
    sched = ExponentialLR(opt, 0.5)
    _tick(opt, sched)
    opt.param_groups[0]["lr"] = 10.0
    _tick(opt, sched)
    assert sched.get_last_lr() == [5.0]


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_onecycle_rises_to_max_lr_then_falls_and_momentum_moves_the_other_way(three_phase,
                                                                             strategy):
    opt = _opt(0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=100, pct_start=0.25, div_factor=10,
                       final_div_factor=100, anneal_strategy=strategy, three_phase=three_phase)
    rates, moms = [sched.get_last_lr()[0]], [opt.param_groups[0]["momentum"]]
    for _ in range(99):
        _tick(opt, sched)
        rates.append(sched.get_last_lr()[0])
        moms.append(opt.param_groups[0]["momentum"])
    assert _close(rates[0], 0.1) and moms[0] == 0.95
    peak = int(np.argmax(rates))
    assert peak == 24 and _close(rates[peak], 1.0) and _close(moms[peak], 0.85)
    assert _close(rates[-1], 0.1 / 100)
    assert all(a <= b for a, b in zip(rates[:peak], rates[1 : peak + 1], strict=True))
    assert all(a >= b for a, b in zip(rates[peak:-1], rates[peak + 1 :], strict=True))
    if three_phase:  # back to the start at 2 * pct_start, then down to the minimum
        assert _close(rates[48], 0.1) and _close(moms[48], 0.95)
    if strategy == "linear" and not three_phase:
        assert _close(rates[12], 0.1 + (1.0 - 0.1) * 12 / 24)
    sched.step()  # step 100: allowed, as PyTorch
    check_error(sched.step, ArgumentError,
                r"^OneCycleLR\.step: the cycle has 100 steps, this is step 101")


def test_onecycle_cycles_adams_beta1_and_keeps_beta2():
    opt = _opt(0.1, kind="Adam", betas=(0.9, 0.99))
    sched = OneCycleLR(opt, max_lr=0.01, epochs=2, steps_per_epoch=5, base_momentum=0.8,
                       max_momentum=0.9)
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)
    _tick(opt, sched)  # half way up: beta1 half way down
    assert opt.param_groups[0]["betas"][1] == 0.99
    assert 0.8 < opt.param_groups[0]["betas"][0] < 0.9


def _plateau(values, **kw):
    opt = _opt(1.0)
    sched = ReduceLROnPlateau(opt, **kw)
    out = []
    for v in values:
        sched.step(v)
        out.append(sched.get_last_lr()[0])
    return out


def test_plateau_waits_patience_epochs_then_reduces():
    assert _plateau([5, 5, 5, 5, 5, 5], patience=2, factor=0.5) == [1, 1, 1, 0.5, 0.5, 0.5]


def test_plateau_counts_only_improvements_beyond_the_threshold():
    rel = _plateau([1.0, 0.99995, 0.9998], patience=0, threshold=1e-4)
    assert rel == [1.0, 0.1, 0.1]  # 0.99995 is within 1e-4 of the best: a bad epoch
    absolute = _plateau([1.0, 0.5, 0.45, 0.39], patience=0, threshold=0.1,
                        threshold_mode="abs")
    assert absolute == [1.0, 1.0, 0.1, 0.1]


def test_plateau_max_mode_cooldown_min_lr_and_eps():
    assert _plateau([1, 2, 2, 2, 2, 2], mode="max", patience=0, cooldown=2) == pytest.approx([
        1, 1, 0.1, 0.1, 0.1, 0.01], rel=1e-15)
    assert _plateau([1] * 6, patience=0, factor=0.5, min_lr=0.2) == [1, 0.5, 0.25, 0.2, 0.2, 0.2]
    assert _plateau([1] * 4, patience=0, factor=0.5, eps=0.6) == [1, 1, 1, 1]


def test_plateau_takes_tensors_and_arrays_as_the_metric():
    rates = _plateau([cs.tensor(1.0), np.float32(1.0), np.array([1.0])], patience=0)
    assert rates == pytest.approx([1, 0.1, 0.01], rel=1e-15)


SCHEDULES = {
    "StepLR": lambda o: StepLR(o, 3, 0.5),
    "MultiStepLR": lambda o: MultiStepLR(o, [2, 5, 5], 0.5),
    "ExponentialLR": lambda o: ExponentialLR(o, 0.9),
    "CosineAnnealingLR": lambda o: CosineAnnealingLR(o, 7, 0.01),
    "OneCycleLR": lambda o: OneCycleLR(o, 1.0, total_steps=20, three_phase=True),
    "LambdaLR": lambda o: LambdaLR(o, lambda e: 1 / (1 + e)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_resumed_schedule_continues_with_the_same_rates(name):
    opt = _opt(0.1, groups=2, momentum=0.9)
    sched = SCHEDULES[name](opt)
    _run(opt, sched, 6)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    straight = _run(opt, sched, 8)
    opt2 = _opt(0.7, groups=2, momentum=0.9)
    sched2 = SCHEDULES[name](opt2)  # built first, then loaded, as PyTorch advises
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert _run(opt2, sched2, 8) == straight
    assert opt2.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]


def test_plateau_state_round_trips():
    opt = _opt(1.0)
    sched = ReduceLROnPlateau(opt, patience=1)
    for v in [3, 2, 2]:
        sched.step(v)
    sched2 = ReduceLROnPlateau(_opt(1.0), patience=5)
    sched2.load_state_dict(sched.state_dict())
    assert (sched2.best, sched2.num_bad_epochs, sched2.patience) == (2, 1, 1)


def test_lambdalr_saves_the_state_of_callable_objects_only():
    class Warmup:
        def __init__(self):
            self.scale = 2.0

        def __call__(self, epoch):
            return self.scale * epoch

    fn = Warmup()
    opt = _opt(1.0, groups=2)
    sd = LambdaLR(opt, [fn, lambda e: 1.0]).state_dict()
    assert sd["lr_lambdas"] == [{"scale": 2.0}, None]
    other = Warmup()
    other.scale = 0.0
    LambdaLR(_opt(1.0, groups=2), [other, lambda e: 1.0]).load_state_dict(sd)
    assert other.scale == 2.0


def test_resuming_with_last_epoch_uses_initial_lr():
    opt = _opt(0.1)
    StepLR(opt, 2, 0.5)
    opt.param_groups[0]["lr"] = 0.05
    sched = StepLR(opt, 2, 0.5, last_epoch=3)  # its first step is epoch 4: a decay
    assert sched.base_lrs == [0.1] and sched.get_last_lr() == [0.025]


def test_step_with_an_epoch_warns_and_uses_the_closed_form():
    opt = _opt(1.0)
    sched = StepLR(opt, 2, 0.5)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(5)
    assert sched.get_last_lr() == [0.25] and sched.last_epoch == 5


class _Plain(optim.Optimizer):
    def __init__(self, params):
        super().__init__(params, {"lr": 0.1})


ERRORS = [
    ("StepLR of None", lambda: StepLR(None, 30), ArgumentTypeError,
     r"^StepLR: the first argument must be a convscope optimizer\. Fix: build one first and "
     r"pass it: opt = cs\.optim\.SGD\(model\.parameters\(\), lr=0\.1\); StepLR\(opt, \.\.\.\)\. "
     r"Received: NoneType None\.$"),
    ("StepLR of a list", lambda: StepLR([cs.nn.Parameter([1.0])], 30), ArgumentTypeError,
     r"Received: list \[Parameter"),
    ("CosineAnnealingLR of a model", lambda: CosineAnnealingLR(cs.nn.Linear(2, 2), 10),
     ArgumentTypeError, r"^CosineAnnealingLR: the first argument.*convscope\.nn\.\S+Linear"),
    ("OneCycleLR of a string", lambda: OneCycleLR("sgd", 1.0, 10), ArgumentTypeError,
     r"^OneCycleLR: the first argument"),
    ("ReduceLROnPlateau of an int", lambda: ReduceLROnPlateau(3), ArgumentTypeError,
     r"^ReduceLROnPlateau: the first argument.*Received: int 3"),
    ("LambdaLR of None", lambda: LambdaLR(None, lambda e: 1), ArgumentTypeError,
     r"^LambdaLR: the first argument"),
    ("MultiStepLR of None", lambda: MultiStepLR(None, [1]), ArgumentTypeError,
     r"^MultiStepLR: the first argument"),
    ("ExponentialLR of None", lambda: ExponentialLR(None, 0.9), ArgumentTypeError,
     r"^ExponentialLR: the first argument"),
    ("StepLR step_size 0", lambda: StepLR(_opt(), 0), ArgumentError,
     r"^StepLR: step_size must be an int >= 1\. Fix: use step_size=30\. Received: step_size=0"),
    ("StepLR gamma -1", lambda: StepLR(_opt(), 2, -1), ArgumentError, r"gamma=-1"),
    ("MultiStepLR milestones 5", lambda: MultiStepLR(_opt(), 5), ArgumentTypeError,
     r"milestones must be a list of epochs.*milestones=5"),
    ("MultiStepLR milestone 1.5", lambda: MultiStepLR(_opt(), [1.5]), ArgumentError,
     r"each milestone must be an int >= 0.*1\.5"),
    ("CosineAnnealingLR T_max 0", lambda: CosineAnnealingLR(_opt(), 0), ArgumentError,
     r"T_max must be a number > 0\.0.*T_max=0"),
    ("LambdaLR of a number", lambda: LambdaLR(_opt(), 0.5), ArgumentTypeError,
     r"lr_lambda must be a function of the epoch"),
    ("LambdaLR 1 of 2", lambda: LambdaLR(_opt(groups=2), [lambda e: 1]), ArgumentError,
     r"expected 2 lr_lambdas, one per group.*1 functions"),
    ("last_epoch without initial_lr", lambda: StepLR(_opt(), 2, last_epoch=4), ArgumentError,
     r"param_groups\[0\] has no 'initial_lr' to resume from.*last_epoch=4"),
    ("last_epoch -2", lambda: StepLR(_opt(), 2, last_epoch=-2), ArgumentError,
     r"last_epoch must be an int >= -1"),
    ("OneCycleLR without a length", lambda: OneCycleLR(_opt(), 1.0), ArgumentError,
     r"the length of the cycle is not given\. Fix: pass total_steps, or epochs and "
     r"steps_per_epoch"),
    ("OneCycleLR total_steps 0", lambda: OneCycleLR(_opt(), 1.0, 0), ArgumentError,
     r"total_steps must be a positive int.*total_steps=0"),
    ("OneCycleLR pct_start 1.5", lambda: OneCycleLR(_opt(), 1.0, 10, pct_start=1.5),
     ArgumentError, r"pct_start must be a number in \[0\.0, 1\.0\]"),
    ("OneCycleLR anneal 'exp'", lambda: OneCycleLR(_opt(), 1.0, 10, anneal_strategy="exp"),
     ArgumentError, r"anneal_strategy must be 'cos' or 'linear'"),
    ("OneCycleLR max_lr 3 for 2 groups", lambda: OneCycleLR(_opt(groups=2), [1, 2, 3], 10),
     ArgumentError, r"expected 2 values for max_lr, one per group"),
    ("OneCycleLR without momentum",
     lambda: OneCycleLR(_Plain([cs.nn.Parameter([1.0])]), 1.0, 10), ArgumentError,
     r"this optimizer has no momentum to cycle\. Fix: pass cycle_momentum=False"),
    ("ReduceLROnPlateau factor 1", lambda: ReduceLROnPlateau(_opt(), factor=1.0),
     ArgumentError, r"factor must be a number in \[0\.0, 1\.0\)"),
    ("ReduceLROnPlateau mode 'low'", lambda: ReduceLROnPlateau(_opt(), mode="low"),
     ArgumentError, r"mode must be 'min' or 'max'.*mode='low'"),
    ("ReduceLROnPlateau threshold_mode", lambda: ReduceLROnPlateau(_opt(), threshold_mode="x"),
     ArgumentError, r"threshold_mode must be 'rel' or 'abs'"),
    ("ReduceLROnPlateau patience -1", lambda: ReduceLROnPlateau(_opt(), patience=-1),
     ArgumentError, r"patience must be an int >= 0"),
    ("ReduceLROnPlateau min_lr 2 of 1", lambda: ReduceLROnPlateau(_opt(), min_lr=[0, 0]),
     ArgumentError, r"expected 1 min_lrs, one per group"),
    ("ReduceLROnPlateau step('x')", lambda: ReduceLROnPlateau(_opt()).step("x"),
     ArgumentTypeError, r"^ReduceLROnPlateau\.step: the metric must be one number"),
    ("ReduceLROnPlateau step()", lambda: ReduceLROnPlateau(_opt()).step(), ArgumentTypeError,
     r"the metric must be one number.*NoneType"),
    ("ReduceLROnPlateau step(tensor of 2)",
     lambda: ReduceLROnPlateau(_opt()).step(cs.tensor([1.0, 2.0])), ArgumentTypeError,
     r"the metric must be one number"),
    ("load_state_dict of a list", lambda: StepLR(_opt(), 2).load_state_dict([1]),
     ArgumentTypeError, r"^StepLR\.load_state_dict: expected a scheduler state_dict"),
]


@pytest.mark.parametrize("name, fn, cls, pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_arguments_are_refused_with_the_numbers(name, fn, cls, pattern):
    check_error(fn, cls, pattern)


@settings(max_examples=20, deadline=None)
@given(values=st.lists(st.sampled_from([1.0, 0.9, 0.5, 2.0]), min_size=1, max_size=30),
       patience=st.integers(0, 3), cooldown=st.integers(0, 2))
def test_plateau_never_goes_below_min_lr_and_only_lowers_the_rate(values, patience, cooldown):
    rates = _plateau(values, patience=patience, cooldown=cooldown, min_lr=0.01)
    assert all(r >= 0.01 for r in rates)
    assert all(a >= b for a, b in zip([1.0] + rates[:-1], rates, strict=True))
