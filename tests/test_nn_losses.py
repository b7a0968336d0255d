"""Losses with PyTorch's options: gradients by float64 finite differences, identities, errors.

The values and gradients against PyTorch itself are in test_nn_extras_torch.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import nn
from convscope.errors import ArgumentError, ArgumentTypeError, ShapeError
from convscope.functional import loss as L
from convscope.functional.dense import log_softmax
from errorcheck import check_error
from gradcheck import check_gradients

RNG = np.random.default_rng(0)


def r(*shape):
    return RNG.standard_normal(shape)


LABELS = np.array([0, 2, 1, 2])
PIXELS = np.array([[[0, 1], [2, 2]], [[1, -100], [0, 1]]])  # (2, 2, 2) with one ignored


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", [
    dict(weight=np.array([0.2, 1.0, 3.0])),
    dict(label_smoothing=0.2),
    dict(weight=np.array([0.5, 2.0, 1.0]), label_smoothing=0.1, ignore_index=2),
    dict(ignore_index=1),
])
def test_cross_entropy_gradients_by_finite_differences(reduction, kw):
    check_gradients(lambda z: L.cross_entropy(z, LABELS, reduction=reduction, **kw), r(4, 3) * 2)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_per_pixel_unbatched_and_soft_gradients(reduction):
    w = np.array([1.0, 0.5, 2.0])
    check_gradients(lambda z: L.cross_entropy(z, PIXELS, weight=w, reduction=reduction,
                                              label_smoothing=0.1), r(2, 3, 2, 2))
    check_gradients(lambda z: L.cross_entropy(z, np.array(1), reduction=reduction), r(3))
    check_gradients(lambda z, q: L.cross_entropy(z, q, weight=w, reduction=reduction,
                                                 label_smoothing=0.3), r(4, 3), np.abs(r(4, 3)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_l1_and_bce_gradients_by_finite_differences(reduction):
    w = np.array([0.3, 1.0, 2.0])
    check_gradients(lambda z: L.nll_loss(z, LABELS, weight=w, reduction=reduction), r(4, 3))
    check_gradients(lambda z: L.nll_loss(z, PIXELS, reduction=reduction), r(2, 3, 2, 2))
    x = r(3, 4)
    y = x + np.where(RNG.random((3, 4)) < 0.5, -1, 1) * (0.1 + RNG.random((3, 4)))  # off kinks
    check_gradients(lambda a, b: L.l1_loss(a, b, reduction=reduction), x, y)
    check_gradients(lambda a, t, wt, pw: L.binary_cross_entropy_with_logits(
        a, t, weight=wt, pos_weight=pw, reduction=reduction),
        r(3, 4) * 3, RNG.random((3, 4)), RNG.random((1, 4)) + 0.5, RNG.random(4) + 0.5)


def test_cross_entropy_identities():
    x = cs.tensor(r(6, 5))
    t = np.array([0, 4, 1, 1, 3, 2])
    plain = L.cross_entropy(x, t).item()
    assert math.isclose(L.nll_loss(log_softmax(x, 1), t).item(), plain, rel_tol=1e-12)
    assert math.isclose(L.cross_entropy(x, t, weight=np.ones(5)).item(), plain, rel_tol=1e-12)
    assert math.isclose(L.cross_entropy(x, np.eye(5)[t]).item(), plain, rel_tol=1e-12)
    # a class per pixel is the same loss as one row per pixel
    img = cs.tensor(r(2, 5, 3, 4))
    lab = RNG.integers(0, 5, (2, 3, 4))
    rows = cs.tensor(np.moveaxis(img.numpy(), 1, -1).reshape(-1, 5))
    assert math.isclose(L.cross_entropy(img, lab, label_smoothing=0.2).item(),
                        L.cross_entropy(rows, lab.reshape(-1), label_smoothing=0.2).item(),
                        rel_tol=1e-12)
    # ignored positions count for nothing, in the sum and in the mean's denominator
    keep = t != 3
    assert math.isclose(L.cross_entropy(x, t, ignore_index=3).item(),
                        L.cross_entropy(cs.tensor(x.numpy()[keep]), t[keep]).item(), rel_tol=1e-12)
    # label smoothing is the mix of the one-hot target and the uniform one
    soft = 0.9 * np.eye(5)[t] + 0.1 / 5
    assert math.isclose(L.cross_entropy(x, t, label_smoothing=0.1).item(),
                        L.cross_entropy(x, soft).item(), rel_tol=1e-12)


def test_weighted_mean_divides_by_the_weights_of_the_counted_targets():
    x = cs.tensor(r(4, 3))
    w = np.array([0.2, 1.0, 3.0])
    per = L.cross_entropy(x, LABELS, weight=w, reduction="none").numpy()
    assert math.isclose(L.cross_entropy(x, LABELS, weight=w).item(),
                        per.sum() / w[LABELS].sum(), rel_tol=1e-12)
    assert np.isnan(L.cross_entropy(x, np.full(4, -100)).item())  # nothing counted: NaN


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 6), c=st.integers(1, 5), seed=st.integers(0, 99),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_bce_with_logits_is_stable_and_matches_the_naive_formula(n, c, seed, reduction):
    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal((n, c)) * 5, rng.random((n, c))
    pw = rng.random(c) + 0.5
    sig = 1 / (1 + np.exp(-x))
    naive = -(pw * t * np.log(sig) + (1 - t) * np.log(1 - sig))
    got = L.binary_cross_entropy_with_logits(cs.tensor(x), t, pos_weight=pw,
                                             reduction=reduction).numpy()
    want = {"none": naive, "sum": naive.sum(), "mean": naive.mean() if naive.size else np.nan}
    np.testing.assert_allclose(got, want[reduction], rtol=1e-10, atol=1e-12)
    huge = L.binary_cross_entropy_with_logits(cs.tensor(np.array([800.0, -800.0])),
                                              np.array([0.0, 1.0]), reduction="none")
    assert np.allclose(huge.numpy(), 800.0)  # no overflow, no warning


def test_modules_hold_their_options_and_weights():
    ce = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0], label_smoothing=0.1, reduction="sum")
    assert list(ce.state_dict()) == ["weight"]
    assert repr(ce) == "CrossEntropyLoss(reduction='sum', label_smoothing=0.1)"
    x = cs.tensor(r(4, 3))
    assert ce(x, LABELS).item() == L.cross_entropy(x, LABELS, weight=np.array([1.0, 2, 3]),
                                                   reduction="sum", label_smoothing=0.1).item()
    assert repr(nn.NLLLoss()) == "NLLLoss()" and list(nn.NLLLoss().state_dict()) == []
    assert nn.MSELoss(reduction="sum")(cs.tensor([1.0, 2.0]), cs.tensor([0.0, 0.0])).item() == 5
    bce = nn.BCEWithLogitsLoss(pos_weight=[2.0, 1.0])
    assert list(bce.state_dict()) == ["pos_weight"]
    logits = cs.tensor(r(3, 2), requires_grad=True)
    bce(logits, np.ones((3, 2))).backward()
    assert logits.grad.shape == (3, 2)


def test_old_size_average_and_reduce_map_to_reduction_with_pytorchs_warning():
    with pytest.warns(UserWarning, match=r"reduction='sum'"):
        assert nn.L1Loss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning, match=r"reduction='none'"):
        assert L.nll_loss(r(4, 3), LABELS, reduce=False).shape == (4,)


LOSS_ERRORS = [
    ("reduction 'avg'", lambda: nn.CrossEntropyLoss(reduction="avg"), ArgumentError,
     r"^CrossEntropyLoss: unknown reduction 'avg'\. Fix: use 'mean', 'sum' or 'none'"),
    ("label_smoothing 2", lambda: nn.CrossEntropyLoss(label_smoothing=2), ArgumentError,
     r"label_smoothing must be a number in \[0, 1\].*label_smoothing=2"),
    ("F label_smoothing -0.1", lambda: L.cross_entropy(r(2, 3), [0, 1], label_smoothing=-0.1),
     ArgumentError, r"^cross_entropy: label_smoothing must be"),
    ("ignore_index 1.5", lambda: nn.NLLLoss(ignore_index=1.5), ArgumentTypeError,
     r"^NLLLoss: ignore_index must be an int.*ignore_index=1\.5"),
    ("weight 2-D", lambda: nn.CrossEntropyLoss(weight=np.ones((2, 2))), ShapeError,
     r"weight must be 1-D.*weight shape \(2, 2\)"),
    ("weight of 2 for 3 classes", lambda: L.cross_entropy(r(2, 3), [0, 1], weight=[1.0, 2.0]),
     ShapeError, r"weight must have one value per class \(3\).*weight shape \(2,\)"),
    ("label 5 of 3 with ignore_index", lambda: L.cross_entropy(r(2, 3), [5, -100]),
     ArgumentError, r"labels must be in \[0, 2\].*labels from 5 to 5"),
    ("pixels with the wrong target", lambda: L.cross_entropy(r(2, 3, 4), np.zeros((2, 5))),
     ShapeError, r"got 3-D with a target of shape \(2, 5\)\. Fix: .*target of shape \(2, 4\)"),
    ("nll label 3 of 3", lambda: L.nll_loss(r(2, 3), np.array([0, 3])), ArgumentError,
     r"^nll_loss: labels must be in \[0, 2\]"),
    ("nll scalar input", lambda: L.nll_loss(cs.tensor(1.0), np.array(0)), ShapeError,
     r"got a scalar"),
    ("nll float labels", lambda: L.nll_loss(r(2, 3), np.array([0.5, 1.0])), ArgumentTypeError,
     r"target must hold integer class indices"),
    ("l1 shapes", lambda: L.l1_loss(np.zeros(3), np.zeros(4)), ShapeError,
     r"^l1_loss: input and target must have the same shape.*input \(3,\), target \(4,\)"),
    ("bce shapes", lambda: L.binary_cross_entropy_with_logits(np.zeros(3), np.zeros((3, 1))),
     ShapeError, r"target must have the input's shape.*input \(3,\), target \(3, 1\)"),
    ("bce pos_weight (3,) for (2, 4)", lambda: L.binary_cross_entropy_with_logits(
        np.zeros((2, 4)), np.zeros((2, 4)), pos_weight=np.ones(3)), ShapeError,
     r"pos_weight does not broadcast against the input.*pos_weight shape \(3,\)"),
    ("bce weight (2, 2, 4)", lambda: L.binary_cross_entropy_with_logits(
        np.zeros((2, 4)), np.zeros((2, 4)), weight=np.ones((2, 2, 4))), ShapeError,
     r"weight does not broadcast"),
    ("bce reduction", lambda: nn.BCEWithLogitsLoss(reduction="max"), ArgumentError,
     r"unknown reduction 'max'"),
]


@pytest.mark.parametrize("name, fn, cls, pattern", LOSS_ERRORS, ids=[e[0] for e in LOSS_ERRORS])
def test_losses_refuse_bad_arguments(name, fn, cls, pattern):
    check_error(fn, cls, pattern)
