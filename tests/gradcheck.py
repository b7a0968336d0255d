"""Float64 central finite differences: the reference every analytic gradient is checked against."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import convscope as cs


def numeric_grads(
    f: Callable[..., float], arrays: Sequence[np.ndarray], eps: float = 1e-6
) -> list[np.ndarray]:
    """d f / d a for every array a, by central differences (arrays are perturbed in place)."""
    out = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            fp = f(*arrays)
            a[idx] = old - eps
            fm = f(*arrays)
            a[idx] = old
            g[idx] = (fp - fm) / (2 * eps)
        out.append(g)
    return out


def check_gradients(
    fn: Callable[..., cs.Tensor],
    *arrays: np.ndarray,
    seed: int = 0,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> int:
    """Compare autograd's vector-Jacobian product with finite differences, in float64.

    ``fn`` maps tensors to a tensor; the scalar checked is ``sum(fn(...) * R)`` for a fixed
    random ``R``, so every output contributes. Returns the number of values compared.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    probe = fn(*[cs.tensor(a) for a in arrays])
    r = np.random.default_rng(seed).standard_normal(probe.shape)

    def scalar(*arrs: np.ndarray) -> float:
        with cs.no_grad():
            return float((fn(*[cs.tensor(a) for a in arrs]).numpy() * r).sum())

    leaves = [cs.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    assert out.dtype == np.float64, f"{fn} lost float64: {out.dtype}"
    out.backward(r)
    numeric = numeric_grads(scalar, arrays)
    compared = 0
    for i, (leaf, num) in enumerate(zip(leaves, numeric, strict=True)):
        assert leaf.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(
            leaf.grad.numpy(), num, atol=atol, rtol=rtol, err_msg=f"gradient of input {i}"
        )
        compared += num.size
    return compared
