"""Classification metrics: accuracy, the confusion matrix, precision and recall per class.

The numbers are scikit-learn's (``accuracy_score``, ``confusion_matrix``,
``precision_recall_fscore_support``), computed from integer class labels; where a ratio is
0/0 (no image predicted as a class: its precision; no image of a class: its recall) the
value is NaN, not 0, as scikit-learn's ``zero_division=np.nan``: "undefined" and "always
wrong" are different things to a reader.

>>> from convscope import metrics
>>> y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
>>> metrics.accuracy(y_true, y_pred)
0.6
>>> metrics.confusion_matrix(y_true, y_pred)
array([[1, 1, 0],
       [0, 2, 0],
       [1, 0, 0]])
>>> precision, recall = metrics.precision_recall(y_true, y_pred)
>>> precision.round(3).tolist(), recall.round(3).tolist()
([0.5, 0.667, nan], [0.5, 1.0, 0.0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, ShapeError, message
from .tensor import Tensor

__all__ = ["accuracy", "confusion_matrix", "precision_recall", "f1_score",
           "classification_report"]


def _labels(values: Any, name: str, where: str) -> np.ndarray:
    """Class labels as int64 (N,); for predictions, scores (N, C) mean their argmax."""
    arr = np.asarray(values.numpy() if isinstance(values, Tensor) else values)
    if arr.dtype.kind not in "iuf" or arr.ndim not in (1, 2):
        raise ArgumentTypeError(message(where, f"{name} must be class indices of shape (N,)" + (
            " or scores of shape (N, classes)" if name == "y_pred" else ""),
            "pass an int array such as np.array([2, 0, 1])",
            f"{name} of dtype {arr.dtype} and shape {arr.shape}"))
    if arr.ndim == 2:
        if name != "y_pred":
            raise ShapeError(message(where, f"{name} must be 1-D class indices",
                                     "pass one label per sample", f"shape {arr.shape}"))
        return arr.argmax(axis=1).astype(np.int64) if arr.shape[1] else np.zeros(0, np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ArgumentTypeError(message(where, f"{name} must hold whole class indices",
                                            "pass integer labels",
                                            f"{name} with non-integer values"))
    if arr.size and arr.min() < 0:
        raise ArgumentError(message(where, f"{name} holds a negative class index",
                                    "class indices start at 0", f"min {arr.min()}"))
    return arr.astype(np.int64)


def _pair(y_true: Any, y_pred: Any, num_classes: int | None,
          where: str) -> tuple[np.ndarray, np.ndarray, int]:
    t = _labels(y_true, "y_true", where)
    p = _labels(y_pred, "y_pred", where)
    if t.shape != p.shape:
        raise ShapeError(message(where, "y_true and y_pred must have one label per sample each",
                                 "pass arrays of the same length",
                                 f"{len(t)} true labels, {len(p)} predictions"))
    seen = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if num_classes is None:
        return t, p, seen
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or (
            num_classes < 1):
        raise ArgumentError(message(where, "num_classes must be a positive int",
                                    "pass e.g. num_classes=10", f"num_classes={num_classes!r}"))
    if seen > num_classes:
        raise ArgumentError(message(where, f"a label is {seen - 1}, beyond num_classes="
                                    f"{num_classes}", "pass the right num_classes",
                                    f"largest label {seen - 1}"))
    return t, p, int(num_classes)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """The fraction of samples whose prediction equals the true label (NaN if none).

    ``y_pred`` may be class indices (N,) or scores / logits (N, classes), whose argmax
    along the classes is the prediction.

    >>> import numpy as np
    >>> accuracy([1, 0], np.array([[0.2, 0.8], [0.9, 0.1]]))
    1.0
    """
    t, p, _ = _pair(y_true, y_pred, None, "accuracy")
    return float((t == p).mean()) if len(t) else math.nan


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]``: samples of true class ``i`` predicted as ``j`` (int64 (K, K)).

    ``num_classes`` defaults to the largest label seen plus one.
    """
    t, p, k = _pair(y_true, y_pred, num_classes, "confusion_matrix")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def precision_recall(y_true: Any, y_pred: Any,
                     num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per class: precision ``TP / (TP + FP)`` and recall ``TP / (TP + FN)``.

    Returns two float64 arrays of shape (K,); NaN where the ratio is 0/0.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    return _ratio(tp, cm.sum(axis=0)), _ratio(tp, cm.sum(axis=1))


def f1_score(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Per class: ``2 TP / (2 TP + FP + FN)`` (NaN for a class that never occurs)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    return _ratio(2 * tp, cm.sum(axis=0) + cm.sum(axis=1))


def _nan_average(values: np.ndarray, weights: np.ndarray) -> float:
    """scikit-learn's rule: undefined (NaN) values are left out; if the weights left are
    all zero, the plain mean of the values left."""
    ok = ~np.isnan(values)
    if not ok.any():
        return math.nan
    if weights[ok].sum() == 0:
        return float(values[ok].mean())
    return float(np.average(values[ok], weights=weights[ok]))


def _percent(v: float) -> str:
    return "-" if math.isnan(v) else f"{v * 100:.1f}%"


def classification_report(y_true: Any, y_pred: Any, classes: Sequence[str] | None = None,
                          only_present: bool = False) -> str:
    """A table a person can read: precision, recall, F1 and support per class, then the
    accuracy and the macro and weighted (by support) averages, undefined values left out
    of them as scikit-learn's ``zero_division=np.nan`` does.

    Parameters
    ----------
    classes : sequence of str, optional
        Class names, indexed by label; their number fixes ``num_classes``.
    only_present : bool
        List only the classes that occur as a true label or a prediction.

    Examples
    --------
    >>> print(classification_report([0, 0, 1], [0, 1, 1], classes=["cat", "dog"]))
    class        precision  recall      f1  support
    cat             100.0%   50.0%   66.7%        2
    dog              50.0%  100.0%   66.7%        1
    <BLANKLINE>
    accuracy                         66.7%        3
    macro avg        75.0%   75.0%   66.7%        3
    weighted avg     83.3%   66.7%   66.7%        3
    """
    names = None if classes is None else [str(c) for c in classes]
    k = None if names is None else len(names)
    cm = confusion_matrix(y_true, y_pred, k)
    k = cm.shape[0]
    names = names or [str(i) for i in range(k)]
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision, recall = _ratio(tp, cm.sum(axis=0)), _ratio(tp, support)
    f1 = _ratio(2 * tp, cm.sum(axis=0) + support)
    rows = [i for i in range(k) if not only_present or support[i] or cm[:, i].sum()]
    total = int(support.sum())
    width = max([len(names[i]) for i in rows] + [len("weighted avg"), len("class")])
    head = f"{'class':<{width}} precision  recall      f1  support"

    def line(label: str, p: float, r: float, f: float, n: int) -> str:
        return f"{label:<{width}} {_percent(p):>9} {_percent(r):>7} {_percent(f):>7} {n:>8}"

    out = [head] + [line(names[i], precision[i], recall[i], f1[i], int(support[i]))
                    for i in rows]
    acc = float(tp.sum() / total) if total else math.nan
    out += ["", f"{'accuracy':<{width}} {'':>9} {'':>7} {_percent(acc):>7} {total:>8}"]
    for label, weights in (("macro avg", np.ones(k)), ("weighted avg", support.astype(float))):
        out.append(line(label, *(_nan_average(v, weights) for v in (precision, recall, f1)),
                        total))
    return "\n".join(out)
