"""Weight initialisation, as ``torch.nn.init``: fill a Parameter in place and return it.

Random fills draw from ``generator`` (a :class:`convscope.Generator`) when given, else from
the default generator that :func:`convscope.manual_seed` seeds. The fans of a weight of
shape ``(out, in, k1, k2, ...)`` are ``fan_in = in * k1 * k2 ...`` and
``fan_out = out * k1 * k2 ...``, as PyTorch computes them.

>>> import convscope as cs
>>> w = cs.nn.Parameter(cs.tensor([[0.0, 0.0, 0.0]] * 2))
>>> _ = cs.manual_seed(0)
>>> cs.nn.init.kaiming_uniform_(w, nonlinearity="relu") is w
True
>>> bool((abs(w.numpy()) <= (6 / 3) ** 0.5).all())     # bound sqrt(6 / fan_in)
True
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..random import numpy_rng
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d")


def _target(tensor: Any, where: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise ArgumentTypeError(message(where, "expected a Tensor or Parameter to fill in place",
                                        "pass e.g. layer.weight",
                                        f"{type(tensor).__name__} {tensor!r:.40}"))
    return tensor


def _real(value: Any, name: str, where: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(value):
        raise ArgumentTypeError(message(where, f"{name} must be a number",
                                        f"pass e.g. {name}=1.0", f"{name}={value!r}"))
    return float(value)


def _fill(tensor: Tensor, values: Any) -> Tensor:
    """Write ``values`` into ``tensor`` in place (cast to its dtype); returns it."""
    if tensor.data.flags.writeable:
        tensor.data[...] = values
    else:  # a read-only view: the tensor gets an array of its own
        tensor.data = np.array(np.broadcast_to(values, tensor.shape), dtype=tensor.dtype)
    return tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activations' variance after ``nonlinearity``, as PyTorch's table.

    1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2))
    for leaky_relu (``param`` the slope, 0.01 by default), 3/4 for selu.

    >>> calculate_gain("relu") == 2 ** 0.5
    True
    """
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if not isinstance(slope, numbers.Real) or isinstance(slope, bool):
            raise ArgumentError(message("calculate_gain", "the negative slope must be a number",
                                        "pass e.g. param=0.01", f"param={param!r}"))
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ArgumentError(message("calculate_gain", f"unsupported nonlinearity {nonlinearity!r}",
                                "use one of 'linear', 'conv2d', 'sigmoid', 'tanh', 'relu', "
                                "'leaky_relu', 'selu'", f"nonlinearity={nonlinearity!r}"))


def _calculate_fan_in_and_fan_out(tensor: Tensor, where: str = "init") -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``, as PyTorch's."""
    if tensor.ndim < 2:
        raise ShapeError(message(where, "fan in and fan out need a tensor of at least 2 "
                                        "dimensions (out, in, ...)",
                                 "use this on weights (a bias is usually zeros_ or uniform_)",
                                 f"shape {tensor.shape}"))
    field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * field, tensor.shape[0] * field


def _fan(tensor: Tensor, mode: str, where: str) -> int:
    if not isinstance(mode, str) or mode.lower() not in ("fan_in", "fan_out"):
        raise ArgumentError(message(where, "mode must be 'fan_in' or 'fan_out'",
                                    "use mode='fan_in' (keeps the forward pass's variance)",
                                    f"mode={mode!r}"))
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, where)
    return fan_in if mode.lower() == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with values drawn uniformly from ``[a, b)``."""
    t = _target(tensor, "uniform_")
    lo, hi = _real(a, "a", "uniform_"), _real(b, "b", "uniform_")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ArgumentError(message("uniform_", "the range [a, b) must be finite with a <= b",
                                    "use e.g. a=-0.1, b=0.1", f"a={a!r}, b={b!r}"))
    return _fill(t, numpy_rng(generator, "generator").uniform(lo, hi, t.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with values drawn from the normal distribution N(mean, std^2)."""
    t = _target(tensor, "normal_")
    m, s = _real(mean, "mean", "normal_"), _real(std, "std", "normal_")
    if not (math.isfinite(m) and math.isfinite(s) and s >= 0):
        raise ArgumentError(message("normal_", "std must be a finite number >= 0 (and the mean "
                                    "finite)", "use e.g. std=0.02", f"mean={mean!r}, std={std!r}"))
    return _fill(t, numpy_rng(generator, "generator").normal(m, s, t.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: Any = None) -> Tensor:
    """Fill with N(mean, std^2) restricted to ``[a, b]`` (exactly: by rejection sampling).

    ``a`` and ``b`` are values, not numbers of standard deviations (as in PyTorch). The
    draws are exact even far in a tail, where PyTorch warns that its method is not.
    """
    t = _target(tensor, "trunc_normal_")
    m, s = _real(mean, "mean", "trunc_normal_"), _real(std, "std", "trunc_normal_")
    lo, hi = _real(a, "a", "trunc_normal_"), _real(b, "b", "trunc_normal_")
    if not (math.isfinite(m) and math.isfinite(s) and s > 0 and lo <= hi):
        raise ArgumentError(message("trunc_normal_", "need a finite mean, std > 0 and a <= b",
                                    "use e.g. std=0.02, a=-0.04, b=0.04",
                                    f"mean={mean!r}, std={std!r}, a={a!r}, b={b!r}"))
    rng = numpy_rng(generator, "generator")
    z = _standard_truncated(rng, (lo - m) / s, (hi - m) / s, t.numel())
    return _fill(t, np.clip(m + s * z, lo, hi).reshape(t.shape))


def _standard_truncated(rng: np.random.Generator, alpha: float, beta: float, n: int
                        ) -> np.ndarray:
    """``n`` draws of N(0, 1) restricted to ``[alpha, beta]``, by rejection.

    An interval that holds 0 is sampled from the normal itself (wide) or a uniform (narrow);
    one in a tail (mirrored to the right) by Robert's (1995) proposals: a shifted exponential
    with the optimal rate, or a uniform when the interval is short.
    """
    if alpha == beta:
        return np.full(n, alpha)
    flip = beta <= 0
    if flip:
        alpha, beta = -beta, -alpha
    if alpha < 0:  # the interval holds 0
        wide = beta - alpha >= math.sqrt(2 * math.pi)

        def propose(k: int) -> np.ndarray:
            if wide:
                z = rng.standard_normal(k)
                return z[(z >= alpha) & (z <= beta)]
            z = rng.uniform(alpha, beta, k)
            return z[rng.random(k) <= np.exp(-0.5 * z * z)]
    else:
        root = math.sqrt(alpha * alpha + 4)
        rate = (alpha + root) / 2
        exponential = beta > alpha + 2 * math.sqrt(math.e) / (alpha + root) * math.exp(
            (alpha * alpha - alpha * root) / 4)

        def propose(k: int) -> np.ndarray:
            if exponential:
                z = alpha + rng.exponential(1 / rate, k)
                keep = (z <= beta) & (rng.random(k) <= np.exp(-0.5 * (z - rate) ** 2))
                return z[keep]
            z = rng.uniform(alpha, beta, k)
            return z[rng.random(k) <= np.exp(0.5 * (alpha * alpha - z * z))]

    out, have, rate_seen = [], 0, 0.5
    while have < n:
        k = int((n - have) / max(rate_seen, 0.01) * 1.2) + 16
        got = propose(k)
        rate_seen = max(len(got) / k, 1e-3)
        out.append(got[: n - have])
        have += len(out[-1])
    z = np.concatenate(out) if out else np.zeros(0)
    return -z if flip else z


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    >>> import convscope as cs
    >>> constant_(cs.nn.Parameter([0.0, 0.0]), 0.5).numpy()
    array([0.5, 0.5], dtype=float32)
    """
    t = _target(tensor, "constant_")
    return _fill(t, _real(val, "val", "constant_"))


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return _fill(_target(tensor, "ones_"), 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    return _fill(_target(tensor, "zeros_"), 0.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot uniform: ``U(-r, r)`` with ``r = gain * sqrt(6 / (fan_in + fan_out))``."""
    t = _target(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t, "xavier_uniform_")
    if t.numel() == 0:
        return t
    std = _real(gain, "gain", "xavier_uniform_") * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return _fill(t, numpy_rng(generator, "generator").uniform(-bound, bound, t.shape))


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot normal: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    t = _target(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t, "xavier_normal_")
    if t.numel() == 0:
        return t
    std = _real(gain, "gain", "xavier_normal_") * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(t, numpy_rng(generator, "generator").normal(0.0, std, t.shape))


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str, where: str) -> float | None:
    fan = _fan(t, mode, where)
    if t.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: Any = None) -> Tensor:
    """He uniform: ``U(-bound, bound)``, ``bound = gain * sqrt(3 / fan)``.

    ``a`` is the negative slope of a leaky ReLU after the layer (for ``'leaky_relu'``);
    PyTorch's default layer initialisation is ``kaiming_uniform_(w, a=sqrt(5))``, which
    gives ``bound = 1 / sqrt(fan_in)``.
    """
    t = _target(tensor, "kaiming_uniform_")
    std = _kaiming_std(t, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return t
    bound = math.sqrt(3.0) * std
    return _fill(t, numpy_rng(generator, "generator").uniform(-bound, bound, t.shape))


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: Any = None) -> Tensor:
    """He normal: ``N(0, std^2)``, ``std = gain / sqrt(fan)``.

    >>> import convscope as cs
    >>> w = cs.nn.Parameter(cs.tensor([[0.0] * 4] * 3))
    >>> g = cs.Generator().manual_seed(0)
    >>> kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g).shape
    (3, 4)
    """
    t = _target(tensor, "kaiming_normal_")
    std = _kaiming_std(t, a, mode, nonlinearity, "kaiming_normal_")
    if std is None:
        return t
    return _fill(t, numpy_rng(generator, "generator").normal(0.0, std, t.shape))
