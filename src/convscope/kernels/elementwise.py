"""Element-wise operations and batch normalisation on raw arrays: compiled loops and twins.

Each function here takes NumPy arrays and returns one, as NumPy would; from ``SMALL``
values, with float32/float64 C-contiguous operands of one dtype, the work runs in one
compiled pass (:mod:`._jit.elementwise`; on both cores from ``SERIAL`` values); anything
else runs the function's ``*_reference`` twin, the plain NumPy expression that is the
executable spec and the fallback. A NumPy expression such as ``np.minimum(np.maximum(x,
0), 6)`` makes one full-size array per step on one thread; the loop reads each input once
and writes the result once.

Equality with the twins:

- element-wise ops: bit for bit (the loops compute the twin's expression operation by
  operation in the same dtype), except :func:`sigmoid`, whose ``exp`` is NumPy's either
  way and only ``1 / (1 + e)`` is compiled: also bit for bit;
- batch norm: the per-channel sums are float64 (as PyTorch's CPU kernel accumulates), per
  plane then planes in image order, so the statistics agree with the twin's float64
  NumPy ones to ~1e-15 relative; the passes that apply them (:func:`batch_norm_normalize`,
  :func:`batch_norm_grad_input`, :func:`scale_channels`) are bit for bit.

Threads: from ``SERIAL`` values (1M, as the ReLU loops) the loops split over the cores. A
second thread halves a pass on a quiet machine (2M float32 values: 235 -> 120 us), but a
parallel region ends only when every thread has arrived: with other processes runnable on
both cores (load 2-3 on this 2-core machine) one region inside a training step took 6-8 ms
whatever its size (a scheduler slice for the helper thread), so the batch norm work of a
ResNet-18 step measured 250 ms on the loops against 140 ms on one thread with NumPy; on the
quiet machine 17-20 ms against 81-106. Below 1M values the gain (~30 us) is not worth that
risk; above, a pass takes long enough to pay for it.

Results never depend on thread timing: tasks write outputs of their own and every sum runs
in a fixed order (a resumed training run stays bit-identical). Numba is imported on the
first large call, never by ``import convscope``.

>>> import numpy as np
>>> hardtanh(np.array([-2.0, 0.5, 9.0], np.float32), 0.0, 6.0)
array([0. , 0.5, 6. ], dtype=float32)
"""

from __future__ import annotations

import numpy as np

RUN = 8192  # values per task of the flat loops (must match ``_jit.elementwise.RUN``)
SMALL = 1 << 15  # values; below this the NumPy twin runs (a compiled call costs ~4 us)
SERIAL = 1 << 20  # values; below this the loops run on the calling thread alone (see below)
MIN_PLANE = 4  # values; smaller planes go to NumPy (a call per plane costs more than it)

_QUIET = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")
_LOOPS = None


def _jit():
    global _LOOPS
    if _LOOPS is None:
        from ._heap import keep_heap
        from ._jit import elementwise

        keep_heap()  # once per process (see :mod:`._heap`)
        _LOOPS = elementwise
    return _LOOPS


def _run(name, tasks, values, *args, block=None):
    """Call the loop ``name`` on ``args``: its serial form below ``SERIAL`` values, else the
    parallel one with dynamic chunks of tasks. A plane loop's first argument, ``block``
    planes per task, is 0 (the first plane) for its serial form.

    Dynamic chunks as :func:`.direct._run`: on a shared machine a static split makes the
    caller wait for a descheduled helper thread. No choice here changes a result.
    """
    loops = _jit()
    lead = () if block is None else (block,)
    if values < SERIAL:
        getattr(loops, name + "_serial")(*(0 for _ in lead), *args)
        return
    import numba

    previous = numba.set_parallel_chunksize(max(1, min(64, tasks // 64)))
    try:
        getattr(loops, name)(*lead, *args)
    finally:
        numba.set_parallel_chunksize(previous)


def _threads():
    import numba

    return numba.get_num_threads()


def _plane_run(name, planes, values, *args):
    """Run a plane loop: tasks of whole planes of ``planes`` (N * C, H * W), about ``RUN``
    values each."""
    block = max(1, RUN // max(1, planes.shape[1]))
    _run(name, -(-planes.shape[0] // block), values, *args, block=block)


def _fits(*arrays) -> bool:
    """Whether the compiled loops apply: one float dtype, C-contiguous, at least SMALL values."""
    first = arrays[0]
    return (
        first.dtype.type in (np.float32, np.float64)
        and first.size >= SMALL
        and all(a.dtype == first.dtype and a.flags.c_contiguous for a in arrays)
    )


def _flat(name, out_like, *args):
    """Run a flat loop over ``out_like``'s values; the arrays in ``args`` are flattened."""
    y = np.empty_like(out_like)
    flat = [a.reshape(-1) if isinstance(a, np.ndarray) else a for a in args]
    _run(name, -(-y.size // RUN), y.size, *flat, y.reshape(-1))
    return y


def _planes(x):
    """``(N * C, H * W)`` view of an (N, C, H, W) array, or None if the plane loops do not
    apply (not 4-D, planes under ``MIN_PLANE`` values, or :func:`_fits` fails)."""
    if x.ndim != 4 or x.shape[2] * x.shape[3] < MIN_PLANE or not _fits(x):
        return None
    n, c, h, w = x.shape
    return x.reshape(n * c, h * w)


def _like(value, x):
    return x.dtype.type(value)


# --------------------------------------------------------------------------- SGD
def sgd_momentum_reference(p, g, buf, momentum, d1, lr):
    """SGD with momentum on arrays, in place: ``buf = buf * momentum + d1 * g``, then ``p -=
    lr * buf`` (``d1 = 1 - dampening``), with the scalars in the arrays' dtype."""
    buf *= momentum
    buf += d1 * g
    p -= lr * buf


def sgd_momentum(p, g, buf, momentum, d1, lr):
    """:func:`sgd_momentum_reference` in one pass over the three arrays (bit for bit: the
    same operations in the same dtype); the twin's NumPy expression makes two temporaries
    and five passes (a ResNet-18 step's update: 12 -> ~4 ms)."""
    if not (_fits(p, g, buf) and p.shape == g.shape == buf.shape):
        sgd_momentum_reference(p, g, buf, _like(momentum, p), _like(d1, p), _like(lr, p))
        return
    _run("sgd_momentum", -(-p.size // RUN), p.size, p.reshape(-1), g.reshape(-1),
         buf.reshape(-1), _like(momentum, p), _like(d1, p), _like(lr, p))


# --------------------------------------------------------------------------- add
def add_reference(a, b):
    """``a + b`` with NumPy's broadcasting."""
    return a + b


def _channel_vector(b, shape):
    """``b``'s (C,) values if ``b`` broadcasts over an (N, C, H, W) ``shape`` per channel
    only ((1, C, 1, 1) or (C, 1, 1)), else None."""
    if len(shape) == 4 and b.shape in ((1, shape[1], 1, 1), (shape[1], 1, 1)):
        return b.reshape(shape[1])
    return None


def add(a, b):
    """``a + b`` as NumPy computes it (bit for bit); one compiled pass for large arrays.

    Compiled: two arrays of one shape, or an (N, C, H, W) array and a per-channel
    (1, C, 1, 1) or (C, 1, 1) one (a bias) in either order, from ``SERIAL`` values and
    with two threads or more (an addition is one NumPy pass already: only the second core
    pays, measured 163 -> 88 us on 1M float32 values, while on one thread NumPy's loop is
    ~10 % faster than ours). Everything else is NumPy's.
    """
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return add_reference(a, b)
    if max(a.size, b.size) < SERIAL or _threads() < 2:
        return add_reference(a, b)
    if a.shape == b.shape:
        if _fits(a, b):
            return _flat("add", a, a, b)
        return add_reference(a, b)
    big, vec = (a, b) if a.size >= b.size else (b, a)
    channel = _channel_vector(vec, big.shape)
    planes = _planes(big)
    if channel is None or planes is None or channel.dtype != big.dtype:
        return add_reference(a, b)
    y = np.empty_like(big)
    _plane_run("add_channel", planes, big.size, planes, np.ascontiguousarray(channel),
               y.reshape(planes.shape))
    return y


def add_relu_reference(a, b):
    """``relu(a + b)``: 0 where ``a + b <= 0``, NaN kept (as :func:`.reference.relu`)."""
    s = a + b
    return np.where(s <= 0, s.dtype.type(0), s)


def add_relu(a, b):
    """``relu(a + b)`` in one pass (ResNet's ``relu(out + identity)``), same-shape operands.

    Its gradient is :func:`convscope.kernels.fast.relu_grad` ``(g, y)`` for both inputs:
    0 where the output is <= 0 (PyTorch's rule at 0).
    """
    if a.shape == b.shape and _fits(a, b):
        return _flat("add_relu", a, a, b, _like(0, a))
    return add_relu_reference(a, b)


# --------------------------------------------------------------------------- activations
def hardtanh_reference(x, lo, hi):
    """``x`` clipped to ``[lo, hi]`` (NaN kept)."""
    return np.minimum(np.maximum(x, lo), hi)


def hardtanh(x, lo, hi):
    """:func:`hardtanh_reference` (ReLU6 is ``lo, hi = 0, 6``)."""
    if _fits(x):
        return _flat("hardtanh", x, x, _like(lo, x), _like(hi, x))
    return hardtanh_reference(x, lo, hi)


def hardtanh_grad_reference(g, x, lo, hi):
    """``g`` strictly inside ``(lo, hi)``, 0 elsewhere and at NaN (PyTorch's rule)."""
    return np.where((x > lo) & (x < hi), g, 0)


def hardtanh_grad(g, x, lo, hi):
    if _fits(g, x):
        return _flat("hardtanh_grad", x, g, x, _like(lo, x), _like(hi, x), _like(0, x))
    return hardtanh_grad_reference(g, x, lo, hi)


def leaky_relu_reference(x, a):
    """``x`` where ``x > 0``, else ``a * x`` (NaN kept)."""
    return np.where(x > 0, x, x * a)


def leaky_relu(x, a):
    if _fits(x):
        return _flat("leaky_relu", x, x, _like(a, x))
    return leaky_relu_reference(x, a)


def leaky_relu_grad_reference(g, x, a):
    """``g`` where ``x > 0``, else ``a * g`` (at 0 and at NaN: the slope)."""
    return np.where(x > 0, g, g * a)


def leaky_relu_grad(g, x, a):
    if _fits(g, x):
        return _flat("leaky_relu_grad", x, g, x, _like(a, x))
    return leaky_relu_grad_reference(g, x, a)


def hardswish_reference(x):
    """``x * min(max(x + 3, 0), 6) / 6``."""
    return x * np.minimum(np.maximum(x + 3, 0), 6) / 6


def hardswish(x):
    if _fits(x):
        return _flat("hardswish", x, x, _like(3, x), _like(0, x), _like(6, x))
    return hardswish_reference(x)


def hardswish_grad_reference(g, x):
    """0 where ``x <= -3``, ``g`` where ``x >= 3``, else ``g * (x / 3 + 0.5)`` (NaN at NaN)."""
    return np.where(x <= -3, 0, np.where(x >= 3, g, g * (x / 3 + 0.5)))


def hardswish_grad(g, x):
    if _fits(g, x):
        return _flat("hardswish_grad", x, g, x, _like(3, x), _like(0.5, x), _like(0, x))
    return hardswish_grad_reference(g, x)


def hardsigmoid_reference(x):
    """``min(max(x + 3, 0), 6) / 6``."""
    return np.minimum(np.maximum(x + 3, 0), 6) / 6


def hardsigmoid(x):
    if _fits(x):
        return _flat("hardsigmoid", x, x, _like(3, x), _like(0, x), _like(6, x))
    return hardsigmoid_reference(x)


def hardsigmoid_grad_reference(g, x):
    """``g / 6`` strictly inside ``(-3, 3)``, 0 elsewhere and at NaN."""
    return np.where((x > -3) & (x < 3), g / 6, 0)


def hardsigmoid_grad(g, x):
    if _fits(g, x):
        return _flat("hardsigmoid_grad", x, g, x, _like(3, x), _like(6, x), _like(0, x))
    return hardsigmoid_grad_reference(g, x)


def sigmoid_reference(x):
    """``1 / (1 + exp(-x))``."""
    with np.errstate(**_QUIET):
        return 1 / (1 + np.exp(-x))


def sigmoid(x):
    """:func:`sigmoid_reference`: NumPy's vectorised ``exp`` (a compiled loop would call the
    C library's scalar one, several times slower), then ``1 / (1 + e)`` in place, in one
    compiled pass instead of two."""
    if not _fits(x):
        return sigmoid_reference(x)
    e = np.negative(x)
    with np.errstate(**_QUIET):
        np.exp(e, out=e)
    _run("sigmoid_tail", -(-e.size // RUN), e.size, e.reshape(-1), _like(1, x), e.reshape(-1))
    return e


def sigmoid_grad_reference(g, y):
    """``g * (1 - y) * y`` from the output ``y``."""
    return g * (1 - y) * y


def sigmoid_grad(g, y):
    if _fits(g, y):
        return _flat("sigmoid_grad", y, g, y, _like(1, y))
    return sigmoid_grad_reference(g, y)


# --------------------------------------------------------------------------- batch norm
_AXES = (0, 2, 3)


def _per_channel(v, like):
    return np.asarray(v, dtype=like.dtype).reshape(1, -1, 1, 1)


def batch_norm_stats_reference(x):
    """``(mean, var)`` per channel of (N, C, H, W) ``x``, biased variance, in float64
    (two passes: the mean, then the mean square deviation from it)."""
    x64 = x.astype(np.float64)
    with np.errstate(**_QUIET):
        mean = x64.mean(axis=_AXES)
        var = np.square(x64 - mean.reshape(1, -1, 1, 1)).mean(axis=_AXES)
    return mean, var


def batch_norm_stats(x):
    """:func:`batch_norm_stats_reference` in one pass over float32 ``x`` (two for float64).

    Each plane's sums of ``d = x - k`` and ``d * d`` run in float64 with ``k`` the plane's
    first value (a shift inside the data: the variance of the shifted sums cancels only
    when the mean is ~1e4 standard deviations from ``k``, far past float32's precision);
    the planes merge exactly (Chan et al.'s pairwise rule). float64 data takes a second
    pass around the mean, so its variance is the two-pass one. A channel whose statistics
    are not finite (an inf or NaN in the data) is redone by the twin, so inf and NaN come
    out as PyTorch's (mean inf, variance NaN for an inf).
    """
    planes = _planes(x)
    if planes is None:
        return batch_norm_stats_reference(x)
    n, c, h, w = x.shape
    m = h * w
    shift = planes[:, 0].astype(np.float64)
    s1, s2 = np.empty(n * c), np.empty(n * c)
    _plane_run("plane_sums", planes, x.size, planes, shift, s1, s2)
    with np.errstate(**_QUIET):
        plane_mean = (shift + s1 / m).reshape(n, c)
        plane_m2 = np.maximum(s2 - s1 * s1 / m, 0.0).reshape(n, c)
        mean = plane_mean.mean(axis=0)
        var = (plane_m2.sum(axis=0) + m * np.square(plane_mean - mean).sum(axis=0)) / (n * m)
        if x.dtype == np.float64:
            _plane_run("plane_sums", planes, x.size, planes, np.tile(mean, n), s1, s2)
            t1, t2 = s1.reshape(n, c).sum(axis=0), s2.reshape(n, c).sum(axis=0)
            var = np.maximum(t2 - t1 * t1 / (n * m), 0.0) / (n * m)
    bad = ~(np.isfinite(mean) & np.isfinite(var))
    if bad.any():
        mean_ref, var_ref = batch_norm_stats_reference(x[:, bad])
        mean[bad], var[bad] = mean_ref, var_ref
    return mean, var


def batch_norm_normalize_reference(x, mean, scale, bias):
    """``(x - mean) * scale + bias`` per channel; the (C,) vectors in ``x``'s dtype."""
    return (x - _per_channel(mean, x)) * _per_channel(scale, x) + _per_channel(bias, x)


def batch_norm_normalize(x, mean, scale, bias):
    """:func:`batch_norm_normalize_reference` in one pass (bit for bit).

    Batch norm's forward, training and eval alike, with the affine weight and bias folded
    in: ``scale = weight / sqrt(var + eps)``. The mean is subtracted before scaling
    (PyTorch computes ``x * scale + (bias - mean * scale)``): the same bandwidth, and no
    rounding error of order ``|mean| * scale`` when the mean is far from 0.
    """
    planes = _planes(x)
    if planes is None:
        return batch_norm_normalize_reference(x, mean, scale, bias)
    y = np.empty_like(x)
    vec = [np.ascontiguousarray(v, dtype=x.dtype) for v in (mean, scale, bias)]
    _plane_run("normalize", planes, x.size, planes, *vec, y.reshape(planes.shape))
    return y


def scale_channels_reference(x, scale):
    """``x * scale`` per channel (batch norm's input gradient in eval mode)."""
    return x * _per_channel(scale, x)


def scale_channels(x, scale):
    planes = _planes(x)
    if planes is None:
        return scale_channels_reference(x, scale)
    y = np.empty_like(x)
    _plane_run("scale_channels", planes, x.size, planes,
               np.ascontiguousarray(scale, dtype=x.dtype), y.reshape(planes.shape))
    return y


def batch_norm_grad_sums_reference(g, x, mean):
    """``(sum(g), sum(g * (x - mean)))`` per channel, in float64."""
    g64 = g.astype(np.float64)
    with np.errstate(**_QUIET):
        centred = x.astype(np.float64) - np.reshape(mean, (1, -1, 1, 1))
        return g64.sum(axis=_AXES), (g64 * centred).sum(axis=_AXES)


def batch_norm_grad_sums(g, x, mean):
    """:func:`batch_norm_grad_sums_reference` in one pass over ``g`` and ``x``.

    ``mean`` (C,) float64. The weight gradient is ``sum(g * (x - mean)) * invstd``, the
    bias gradient ``sum(g)``; the input gradient in training needs both.
    """
    planes = _planes(x)
    if planes is None or g.shape != x.shape or not _fits(g, x):
        return batch_norm_grad_sums_reference(g, x, mean)
    n, c = x.shape[:2]
    sg, sgd = np.empty(n * c), np.empty(n * c)
    _plane_run("plane_grad_sums", planes, 2 * x.size, g.reshape(planes.shape), planes,
               np.ascontiguousarray(mean, dtype=np.float64), sg, sgd)
    return sg.reshape(n, c).sum(axis=0), sgd.reshape(n, c).sum(axis=0)


def batch_norm_grad_input_reference(g, x, mean, k, gmean, a):
    """``(g - gmean - (x - mean) * k) * a`` per channel; the (C,) vectors in ``x``'s dtype.

    Training mode's input gradient with ``a = weight * invstd``, ``gmean = sum(g) / M``,
    ``k = sum(g * (x - mean)) * invstd**2 / M`` (M values per channel): PyTorch's form of
    ``a * (g - mean(g) - xhat * mean(g * xhat))``.
    """
    p = [_per_channel(v, x) for v in (mean, k, gmean, a)]
    return (g - p[2] - (x - p[0]) * p[1]) * p[3]


def batch_norm_grad_input(g, x, mean, k, gmean, a):
    """:func:`batch_norm_grad_input_reference` in one pass (bit for bit)."""
    planes = _planes(x)
    if planes is None or g.shape != x.shape or not _fits(g, x):
        return batch_norm_grad_input_reference(g, x, mean, k, gmean, a)
    gx = np.empty_like(x)
    vec = [np.ascontiguousarray(v, dtype=x.dtype) for v in (mean, k, gmean, a)]
    _plane_run("batch_norm_grad", planes, 2 * x.size, g.reshape(planes.shape), planes,
               *vec, gx.reshape(planes.shape))
    return gx
