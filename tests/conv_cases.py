"""The one table of conv (and pooling) cases every kernel test uses, plus generated ones.

``CONV_CASES`` holds the edge cases named in STYLE.md; ``conv_configs()`` is a hypothesis
strategy producing valid configurations of small size. ``generated`` turns a check into a
test that fails unless hypothesis really ran it on enough examples, so that an empty or
filtered-away strategy can never pass silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope import shapes

Pair = tuple[int, int]


@dataclass(frozen=True)
class ConvCase:
    """One conv2d configuration: input ``(n, c, h, w)``, weight ``(o, c // groups, kh, kw)``."""

    name: str
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: Pair = (1, 1)
    padding: tuple[Pair, Pair] = ((0, 0), (0, 0))
    dilation: Pair = (1, 1)
    groups: int = 1

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.o, self.c // self.groups, self.kh, self.kw)

    @property
    def out_hw(self) -> Pair:
        (pt, pb), (pl, pr) = self.padding
        return (
            shapes.conv_out(self.h, self.kh, self.stride[0], pt + pb, self.dilation[0]),
            shapes.conv_out(self.w, self.kw, self.stride[1], pl + pr, self.dilation[1]),
        )

    @property
    def geometry(self) -> tuple:
        """``(stride, padding, dilation, groups)``, the kernels' trailing arguments."""
        return (self.stride, self.padding, self.dilation, self.groups)

    @property
    def k_forward(self) -> int:
        """Reduction length of one output value: C/groups * kh * kw."""
        return (self.c // self.groups) * self.kh * self.kw

    def arrays(self, rng: np.random.Generator, dtype=np.float64):
        """Random ``x``, ``w``, ``b`` and an output gradient ``gy``, drawn in ``dtype``."""
        x = rng.uniform(-1, 1, self.x_shape).astype(dtype)
        w = rng.uniform(-1, 1, self.w_shape).astype(dtype)
        b = rng.uniform(-1, 1, (self.o,)).astype(dtype)
        gy = rng.uniform(-1, 1, (self.n, self.o, *self.out_hw)).astype(dtype)
        return x, w, b, gy

    def __str__(self) -> str:
        return self.name


def _pad(top: int, bottom: int, left: int, right: int) -> tuple[Pair, Pair]:
    return ((top, bottom), (left, right))


CONV_CASES = [
    ConvCase("basic_3x3", 2, 3, 7, 7, 4, 3, 3),
    ConvCase("padding_1", 2, 3, 6, 6, 4, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("stride_2_dilation_2", 2, 2, 11, 9, 3, 3, 3, (2, 2), _pad(1, 1, 1, 1), (2, 2)),
    ConvCase("stride_dilation_mixed", 1, 2, 12, 10, 3, 3, 2, (2, 3), _pad(2, 0, 1, 2), (3, 2)),
    ConvCase("asymmetric_padding", 2, 2, 5, 6, 3, 3, 3, padding=_pad(0, 2, 1, 0)),
    ConvCase("same_even_kernel", 1, 2, 6, 5, 2, 4, 4, padding=_pad(1, 2, 1, 2)),
    ConvCase("same_dilated", 1, 2, 7, 7, 2, 3, 3, padding=_pad(2, 2, 2, 2), dilation=(2, 2)),
    ConvCase("padding_beyond_kernel", 1, 1, 3, 4, 2, 2, 2, padding=_pad(3, 3, 3, 3)),
    ConvCase("non_square_kernel", 2, 3, 7, 8, 2, 2, 4),
    ConvCase("depthwise", 2, 4, 6, 7, 4, 3, 3, padding=_pad(1, 1, 1, 1), groups=4),
    ConvCase("channel_multiplier", 1, 3, 6, 6, 6, 3, 3, groups=3),
    ConvCase("groups_2", 2, 4, 5, 6, 6, 3, 2, (1, 2), groups=2),
    ConvCase("one_by_one", 2, 5, 4, 6, 3, 1, 1),
    ConvCase("one_by_one_stride_2", 1, 3, 5, 7, 4, 1, 1, (2, 2)),
    ConvCase("kernel_is_input", 2, 3, 5, 4, 2, 5, 4),
    ConvCase("kernel_is_padded_input", 1, 2, 3, 3, 2, 5, 5, padding=_pad(1, 1, 1, 1)),
    ConvCase("stride_beyond_kernel", 1, 2, 10, 11, 2, 2, 2, (3, 4)),
    ConvCase("batch_1", 1, 3, 6, 6, 2, 3, 3),
    ConvCase("batch_0", 0, 3, 6, 6, 2, 3, 3, padding=_pad(1, 1, 1, 1)),
    ConvCase("odd_non_square", 3, 1, 9, 13, 2, 3, 5, (2, 1), _pad(1, 0, 2, 2)),
    ConvCase("slides_64x64x3_8@5x5_p2", 1, 3, 64, 64, 8, 5, 5, padding=_pad(2, 2, 2, 2)),
]


@st.composite
def conv_configs(
    draw, min_batch: int = 0, max_batch: int = 3, max_out: int = 4, min_groups: int = 1
) -> ConvCase:
    """Valid conv configurations of small size (every output is at least 1x1)."""
    groups = draw(st.integers(min_groups, 3))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    size = []
    for ki, si, di, (p0, p1) in zip(k, s, d, padding, strict=True):
        out = draw(st.integers(1, max_out))
        span = di * (ki - 1) + 1 + (out - 1) * si  # padded length that gives `out` outputs
        size.append(max(1, span - p0 - p1 + draw(st.integers(0, si - 1))))
    case = ConvCase(
        "generated",
        draw(st.integers(min_batch, max_batch)),
        groups * cg,
        size[0],
        size[1],
        groups * og,
        k[0],
        k[1],
        s,
        padding,
        d,
        groups,
    )
    assert min(case.out_hw) >= 1
    return case


@dataclass(frozen=True)
class PoolCase:
    """One pooling configuration; ``dilation`` applies to max pooling only."""

    name: str
    n: int
    c: int
    h: int
    w: int
    kernel: Pair
    stride: Pair
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    def out_hw(self, dilation: Pair | None = None) -> Pair:
        d = self.dilation if dilation is None else dilation
        return tuple(  # type: ignore[return-value]
            shapes.pool_out(n, k, s, p, di, self.ceil_mode)
            for n, k, s, p, di in zip(
                (self.h, self.w), self.kernel, self.stride, self.padding, d, strict=True
            )
        )

    def __str__(self) -> str:
        return self.name


POOL_CASES = [
    PoolCase("2x2_s2", 2, 3, 6, 8, (2, 2), (2, 2)),
    PoolCase("3x3_s2_p1", 1, 2, 7, 6, (3, 3), (2, 2), (1, 1)),
    PoolCase("ceil_overhang", 1, 2, 5, 7, (2, 3), (2, 2), ceil_mode=True),
    PoolCase("ceil_pad_drops_last", 1, 2, 5, 5, (2, 2), (2, 2), (1, 1), ceil_mode=True),
    PoolCase("ceil_pad_keeps_last", 2, 1, 6, 7, (3, 3), (2, 2), (1, 1), ceil_mode=True),
    PoolCase("dilated", 1, 2, 9, 8, (3, 2), (1, 2), (1, 1), (2, 3)),
    PoolCase("dilated_ceil", 1, 1, 8, 9, (2, 3), (3, 2), (1, 1), (2, 2), True),
    PoolCase("overlapping_s1", 1, 2, 5, 6, (3, 2), (1, 1)),
    PoolCase("kernel_is_input", 2, 2, 4, 5, (4, 5), (1, 1)),
    PoolCase("batch_0", 0, 2, 5, 5, (2, 2), (2, 2), ceil_mode=True),
]


@st.composite
def pool_configs(draw, min_batch: int = 0, max_batch: int = 3) -> PoolCase:
    """Valid pooling configurations: padding at most half the (dilated) window."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # Average pooling ignores dilation; keep padding legal for it too (p <= k // 2).
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    size = [
        max(1, di * (ki - 1) + 1 - 2 * pi + draw(st.integers(0, 6)))
        for ki, di, pi in zip(k, d, p, strict=True)
    ]
    return PoolCase(
        "generated",
        draw(st.integers(min_batch, max_batch)),
        draw(st.integers(1, 3)),
        size[0],
        size[1],
        k,
        s,
        p,
        d,
        draw(st.booleans()),  # type: ignore[arg-type]
    )


def generated(*strategies, examples: int = 30, minimum: int | None = None):
    """Make ``check(*drawn)`` a pytest test run by hypothesis on ``examples`` examples.

    The test fails if fewer than ``minimum`` (default: half of ``examples``) examples ran,
    so a strategy that filters everything away cannot pass vacuously.
    """
    minimum = examples // 2 if minimum is None else minimum

    def decorate(check):
        def test():
            ran = []

            @settings(max_examples=examples, deadline=None)
            @given(st.tuples(*strategies))
            def run(drawn):
                ran.append(drawn)
                check(*drawn)

            run()
            assert len(ran) >= minimum, f"hypothesis ran {len(ran)} examples, want {minimum}"

        test.__name__ = check.__name__
        test.__qualname__ = check.__qualname__
        test.__doc__ = check.__doc__
        test.__module__ = check.__module__
        return test

    return decorate


seeds = st.integers(0, 2**32 - 1)
