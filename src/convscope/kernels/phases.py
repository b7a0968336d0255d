"""Strided convolution on the stride-1 direct loops, by phases.

With stride ``s``, output ``(r, q)`` reads padded input rows ``s*r + u``. Writing the kernel
row ``u = s*i + a`` (``a`` the *phase*, ``0 <= a < s``) that is row ``r + i`` of the phase
image ``x_a[r'] = x_pad[s*r' + a]``. So a strided convolution is a stride-1 convolution of
the phase images, stacked as channels, with the kernel's entries of each phase as a smaller
kernel (``ceil(k / s)`` wide, zeros where a phase has fewer entries)::

    conv_s(x, w) = conv_1(split(x), scatter(w))

Both maps are linear and move values only, so the gradients are the stride-1 gradients
mapped back by their adjoints: ``grad_x = merge(grad_input_1(gy, scatter(w)))`` and
``grad_w = gather(grad_weight_1(gy, split(x)))``. Phases without a kernel entry (a 1 x 1
kernel with stride 2 reads phase 0 only) are left out. The zero entries cost work (16
products for 9 with a 3 x 3 kernel, stride 2) and would carry a NaN or inf of the input
into sums where it does not belong, so non-finite inputs go to the exact NumPy path
(:mod:`.gemm`). Dilation 1 only; groups are kept (each group's phases stay together).
"""

from __future__ import annotations

import numpy as np

from . import direct


def supports(stride, dilation, w, groups):
    """Whether :func:`conv2d` and its gradients here apply (else use :mod:`.gemm`)."""
    return tuple(dilation) == (1, 1) and not direct.is_depthwise(w, groups)


class _Phases:
    """The geometry of one strided convolution split into phases."""

    def __init__(self, input_hw, kernel, stride, padding, out_hw):
        self.kernel, self.stride, self.padding, self.out_hw = kernel, stride, padding, out_hw
        # kernel rows of each phase, the sub-kernel size, the phase images' size
        self.phases = [range(min(s, k)) for s, k in zip(stride, kernel, strict=True)]
        self.sub = [-(-k // s) for s, k in zip(stride, kernel, strict=True)]
        self.phase_hw = [o + k2 - 1 for o, k2 in zip(out_hw, self.sub, strict=True)]
        self.input_hw = input_hw

    def _span(self, axis, a):
        """Phase ``a`` along ``axis``: its first phase row holding input, how many do, and
        the first input row they hold (phase row ``r`` is padded-input row ``s*r + a``)."""
        s, pad, n = self.stride[axis], self.padding[axis][0], self.input_hw[axis]
        first = max(0, -(-(pad - a) // s))  # the first r with s*r + a >= pad
        last = min(self.phase_hw[axis] - 1, (pad + n - 1 - a) // s)
        return first, max(0, last - first + 1), s * first + a - pad

    def _pieces(self):
        """For each phase: its number and where its cells from the input lie, as slices of
        the phase image and of the input (the rest of a phase image is padding: zeros)."""
        (sh, sw), i = self.stride, 0
        for a in self.phases[0]:
            r0, nr, h0 = self._span(0, a)
            for b in self.phases[1]:
                c0, nc, w0 = self._span(1, b)
                if nr and nc:
                    phase = (slice(r0, r0 + nr), slice(c0, c0 + nc))
                    source = (slice(h0, h0 + sh * (nr - 1) + 1, sh),
                              slice(w0, w0 + sw * (nc - 1) + 1, sw))
                    yield i, phase, source
                i += 1

    def split(self, x, groups):
        """(N, C, H, W) -> (N, G * P * C/G, H2, W2): the phase images as channels, ordered
        (group, phase, channel in group); cells from the padding are zeros."""
        n, c, h, w = x.shape
        p = len(self.phases[0]) * len(self.phases[1])
        out = np.zeros((n, groups, p, c // groups, *self.phase_hw), x.dtype)
        xg = x.reshape(n, groups, c // groups, h, w)
        for i, (rows, cols), (xrows, xcols) in self._pieces():
            out[:, :, i, :, rows, cols] = xg[:, :, :, xrows, xcols]
        return out.reshape(n, groups * p * (c // groups), *self.phase_hw)

    def scatter(self, w, groups):
        """(O, C/G, kh, kw) -> (O, P * C/G, kh2, kw2): each phase's kernel entries."""
        o, cg = w.shape[:2]
        (sh, sw), (k2h, k2w) = self.stride, self.sub
        parts = []
        for a in self.phases[0]:
            for b in self.phases[1]:
                sub = np.zeros((o, cg, k2h, k2w), w.dtype)
                taps = w[:, :, a::sh, b::sw]
                sub[:, :, : taps.shape[2], : taps.shape[3]] = taps
                parts.append(sub)
        return np.concatenate(parts, axis=1)

    def gather(self, gw2, cg):
        """The adjoint of :meth:`scatter`: (O, P * C/G, kh2, kw2) -> (O, C/G, kh, kw)."""
        o = gw2.shape[0]
        (sh, sw), (kh, kw) = self.stride, self.kernel
        gw = np.empty((o, cg, kh, kw), gw2.dtype)
        i = 0
        for a in self.phases[0]:
            for b in self.phases[1]:
                taps = gw[:, :, a::sh, b::sw]
                taps[...] = gw2[:, i * cg : (i + 1) * cg, : taps.shape[2], : taps.shape[3]]
                i += 1
        return gw

    def merge(self, gx2, groups, c):
        """The adjoint of :meth:`split`: (N, G * P * C/G, H2, W2) -> (N, C, H, W)."""
        n = gx2.shape[0]
        h, w = self.input_hw
        p = len(self.phases[0]) * len(self.phases[1])
        parts = gx2.reshape(n, groups, p, c // groups, *self.phase_hw)
        gx = np.zeros((n, groups, c // groups, h, w), gx2.dtype)  # each cell in one phase
        for i, (rows, cols), (xrows, xcols) in self._pieces():
            gx[:, :, :, xrows, xcols] = parts[:, :, i, :, rows, cols]
        return gx.reshape(n, c, h, w)


def _geometry(x_hw, w, stride, padding, out_hw):
    return _Phases(tuple(x_hw), tuple(w.shape[2:]), tuple(stride), padding, tuple(out_hw))


def conv2d(x, w, b, stride, padding, groups, out_hw):
    """Strided convolution (dilation 1) by phases; None when ``x`` is not all finite."""
    if not np.isfinite(x).all():
        return None
    geo = _geometry(x.shape[2:], w, stride, padding, out_hw)
    x2 = geo.split(x, groups)
    w2 = geo.scatter(w.astype(x.dtype, copy=False), groups)
    return direct.conv2d(x2, w2, b, ((0, 0), (0, 0)), (1, 1), groups)


def conv2d_grad_input(gy, w, input_hw, stride, padding, groups):
    """Input gradient of :func:`conv2d`: the stride-1 one, merged back from the phases."""
    geo = _geometry(input_hw, w, stride, padding, gy.shape[2:])
    w2 = geo.scatter(w.astype(gy.dtype, copy=False), groups)
    gx2 = direct.conv2d_grad_input(gy, w2, tuple(geo.phase_hw), ((0, 0), (0, 0)), (1, 1), groups)
    return geo.merge(gx2, groups, w.shape[1] * groups)


def conv2d_grad_weight(gy, x, kernel_hw, stride, padding, groups):
    """Weight gradient of :func:`conv2d`, gathered from the phases; None for non-finite x."""
    w_like = np.empty((gy.shape[1], x.shape[1] // groups, *kernel_hw), gy.dtype)
    geo = _geometry(x.shape[2:], w_like, stride, padding, gy.shape[2:])
    x2 = geo.split(x.astype(gy.dtype, copy=False), groups)
    gw2 = direct.conv2d_grad_weight(gy, x2, tuple(geo.sub), ((0, 0), (0, 0)), (1, 1), groups)
    return None if gw2 is None else geo.gather(gw2, x.shape[1] // groups)
