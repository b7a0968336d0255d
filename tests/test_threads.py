"""Grad mode per thread, as PyTorch (issue 12, part 7).

Measured before grad mode became thread-local: with one thread training and another running
inference under ``cs.no_grad()``, the training thread's backward raised ``GradError`` in 109
of 200 iterations; two threads in ``no_grad`` at once left recording switched off for the
whole process in 5 of 5 runs. These tests hold the fixed behaviour, and that two threads
each training their own model give the single-threaded results bit for bit.
"""

from __future__ import annotations

import threading

import numpy as np

import convscope as cs
from convscope import nn

_RNG = np.random.default_rng(0)
X = _RNG.standard_normal((16, 3, 8, 8)).astype(np.float32)
Y = _RNG.integers(0, 4, 16)


def _model(seed: int = 0) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, seed=seed), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 4, seed=seed + 1),
    )


def _train(model: nn.Module, steps: int, check: list | None = None) -> list[float]:
    """SGD with momentum on the fixed batch; every step's loss (and, if ``check`` is given,
    whether every parameter got a gradient)."""
    opt = cs.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(steps):
        rows = slice(4 * (step % 4), 4 * (step % 4) + 4)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(X[rows]), Y[rows])
        loss.backward()
        if check is not None:
            check.append(all(p.grad is not None for p in model.parameters()))
        opt.step()
        losses.append(loss.item())
    return losses


def _run(*targets) -> list[BaseException]:
    """Start every target in its own thread, wait for all; the exceptions they raised."""
    errors: list[BaseException] = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001  (reported by the test)
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guard(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    return errors


def test_inference_under_no_grad_in_one_thread_never_breaks_training_in_another():
    trained, server = _model(0), _model(5)
    got_grads: list[bool] = []
    done = threading.Event()
    inferences = [0]

    def train():
        try:
            _train(trained, 200, got_grads)
        finally:
            done.set()

    def infer():
        while not done.is_set():
            with cs.no_grad():
                out = server(X[:2])
                assert not out.requires_grad
            inferences[0] += 1

    errors = _run(train, infer)
    assert errors == []
    assert len(got_grads) == 200 and all(got_grads)
    assert inferences[0] > 0 and cs.is_grad_enabled()


def test_two_threads_in_no_grad_at_once_leave_grad_mode_on():
    inside = threading.Barrier(2, timeout=60)
    leave = threading.Barrier(2, timeout=60)
    seen: list[tuple[bool, bool]] = []

    def worker():
        with cs.no_grad():
            inside.wait()              # both threads are inside no_grad now
            before = cs.is_grad_enabled()
            leave.wait()
        seen.append((before, cs.is_grad_enabled()))

    for _ in range(5):
        assert _run(worker, worker) == []
    assert seen == [(False, True)] * 10
    assert cs.is_grad_enabled()
    losses = _train(_model(), 3)  # training after them records gradients as usual
    assert len(losses) == 3


def test_grad_mode_set_in_one_thread_is_that_threads_alone():
    switched = threading.Event()
    checked = threading.Event()
    modes: dict[str, bool] = {}

    def switcher():
        cs.set_grad_enabled(False)   # switched off for good, in this thread only
        switched.set()
        checked.wait(60)
        modes["switcher"] = cs.is_grad_enabled()
        with cs.enable_grad():
            modes["switcher enable_grad"] = cs.is_grad_enabled()

    def other():
        switched.wait(60)
        modes["other"] = cs.is_grad_enabled()
        checked.set()

    assert _run(switcher, other) == []
    assert modes == {"switcher": False, "switcher enable_grad": True, "other": True}
    assert cs.is_grad_enabled()


def test_two_threads_training_their_own_models_match_one_thread_bit_for_bit():
    alone = _model(0)
    losses_alone = _train(alone, 30)
    models = [_model(0), _model(0)]
    losses: list[list[float]] = [[], []]

    def trainer(k):
        return lambda: losses[k].extend(_train(models[k], 30))

    assert _run(trainer(0), trainer(1)) == []
    assert losses[0] == losses_alone and losses[1] == losses_alone
    for model in models:
        for (name, p), q in zip(model.named_parameters(), alone.parameters(), strict=True):
            np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
