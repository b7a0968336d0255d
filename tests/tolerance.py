"""Error bounds for comparing floating-point kernels (see shared/notes/verification.md).

A sum of K products computed in floating point with unit roundoff u, in any order, differs
from the exact sum by at most ``gamma_K * sum(|a_i| * |b_i|)`` with
``gamma_K = K u / (1 - K u)``. For a convolution the second factor is the same convolution on
absolute values, ``|x| conv |w|``. Elementwise relative error is never used: cancellation
makes it large near zero in every correct implementation.
"""

from __future__ import annotations

import numpy as np

U32 = 2.0**-24
U64 = 2.0**-53


def gamma(k: int, u: float) -> float:
    """``gamma_k = k u / (1 - k u)``, the worst-case relative error of a length-k dot product."""
    assert k * u < 1
    return k * u / (1 - k * u)


def assert_within_bound(
    actual, expected, magnitude, k: int, u: float, factor: float = 1.0, what: str = "result"
) -> None:
    """Check ``|actual - expected| <= factor * gamma_k(u) * magnitude`` elementwise.

    Parameters
    ----------
    actual, expected : ndarrays of the same shape
        ``expected`` is the float64 reference (or another float32 implementation, then use
        ``factor=2``: both sides carry an error).
    magnitude : ndarray of the same shape
        The computation repeated on absolute values, e.g. ``|x| conv |w|`` (+ ``|b|``).
    k : int
        The reduction length (number of products summed per output, +1 for a bias).
    u : float
        Unit roundoff of the less precise side: ``U32`` or ``U64``.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    # The float64 reference carries its own (tiny) error; allow for it as well.
    allowed = (factor * gamma(k, u) + 2 * gamma(k, U64)) * np.asarray(magnitude, np.float64)
    err = np.abs(actual - expected)
    bad = ~(err <= allowed)  # NaN counts as bad
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - allowed, -np.inf)), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.size} values outside the error bound "
            f"(K={k}, u={u:.3g}); worst at {tuple(int(v) for v in i)}: "
            f"actual={actual[i]!r}, expected={expected[i]!r}, |err|={err[i]:.3g} > "
            f"allowed={allowed[i]:.3g}"
        )
