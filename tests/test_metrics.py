"""convscope.metrics against scikit-learn's metrics (installed with the test extras)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import metrics
from convscope.errors import ArgumentError, ArgumentTypeError, ShapeError
from errorcheck import check_error

skm = pytest.importorskip("sklearn.metrics")


def _labels(draw_n: int, k: int, seed: int, skew: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, draw_n)
    wrong = rng.random(draw_n) < skew
    y_pred = np.where(wrong, rng.integers(0, k, draw_n), y_true)
    return y_true, y_pred


@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")  # sklearn's, k=1
@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200), st.integers(1, 8), st.integers(0, 2**31), st.floats(0.0, 1.0))
def test_numbers_equal_sklearns(n, k, seed, skew):
    y_true, y_pred = _labels(n, k, seed, skew)
    labels = list(range(k))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, num_classes=k),
                                  skm.confusion_matrix(y_true, y_pred, labels=labels))
    precision, recall = metrics.precision_recall(y_true, y_pred, num_classes=k)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                     average=None, zero_division=np.nan)
    np.testing.assert_allclose(precision, p, equal_nan=True)
    np.testing.assert_allclose(recall, r, equal_nan=True)
    np.testing.assert_allclose(metrics.f1_score(y_true, y_pred, num_classes=k), f,
                               equal_nan=True)


def _report_rows(text: str) -> dict[str, list[float]]:
    rows = {}
    for line in text.splitlines()[1:]:
        found = re.match(r"^(.*?)\s+(-|[\d.]+%)\s+(-|[\d.]+%)\s+(-|[\d.]+%)\s+(\d+)$", line)
        if found:
            rows[found.group(1).strip()] = [math.nan if v == "-" else float(v[:-1]) / 100
                                            for v in found.groups()[1:4]]
    return rows


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 150), st.integers(2, 6), st.integers(0, 2**31), st.floats(0.0, 1.0))
def test_report_rows_and_averages_equal_sklearns(n, k, seed, skew):
    y_true, y_pred = _labels(n, k, seed, skew)
    names = [f"class {i}" for i in range(k)]
    rows = _report_rows(metrics.classification_report(y_true, y_pred, classes=names))
    labels = list(range(k))
    p, r, f, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                           average=None, zero_division=np.nan)
    for i, name in enumerate(names):
        np.testing.assert_allclose(rows[name], [p[i], r[i], f[i]], atol=5.1e-4, equal_nan=True)
    for avg in ("macro", "weighted"):
        want = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg,
                                                   zero_division=np.nan)[:3]
        np.testing.assert_allclose(rows[f"{avg} avg"], want, atol=5.1e-4, equal_nan=True)


def test_inputs_scores_tensors_and_errors():
    logits = np.array([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]], np.float32)
    assert metrics.accuracy([1, 0, 0], logits) == pytest.approx(2 / 3)
    assert metrics.accuracy(cs.tensor([1.0, 0.0]), cs.tensor(logits[:2])) == 1.0
    assert math.isnan(metrics.accuracy([], []))
    assert metrics.confusion_matrix([0], [0], num_classes=3).shape == (3, 3)
    only = metrics.classification_report([0, 0], [0, 2], classes=["a", "b", "c"],
                                         only_present=True)
    assert "\nb " not in only and "\nc " in only
    check_error(lambda: metrics.accuracy([0, 1], [0]), ShapeError,
                r"one label per sample.*2 true labels, 1 predictions")
    check_error(lambda: metrics.accuracy([0.5], [0]), ArgumentTypeError, r"whole class indices")
    check_error(lambda: metrics.confusion_matrix([0, 3], [0, 0], num_classes=3), ArgumentError,
                r"a label is 3, beyond num_classes=3")
    check_error(lambda: metrics.confusion_matrix([-1], [0]), ArgumentError, r"negative class")
    check_error(lambda: metrics.accuracy(["a"], ["a"]), ArgumentTypeError,
                r"class indices of shape \(N,\)")
