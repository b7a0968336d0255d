"""A :class:`~convscope.viz.why.Why` as text: the CLI's output (the picture is
:mod:`convscope.viz.why_draw`)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

from ..spec import format_volume

if TYPE_CHECKING:
    from .why import Why

__all__ = ["render", "span", "conv_notes", "pool_parts", "strongest", "decimals", "signed"]

_WIDTH = 100
_GRID_CHANNELS = 4  # input channels shown as number grids (the rest: their sums)
_GRID_KERNEL = 7  # kernels wider than this: sums only
_PAD_MEANING = {
    "zeros": "zero padding (the value 0)",
    "reflect": "reflect padding (a mirror copy of an inside value)",
    "replicate": "replicate padding (a copy of the nearest edge value)",
    "circular": "circular padding (a copy from the opposite side)",
}


def span(values: np.ndarray) -> str:
    v = [int(x) for x in values]
    if len(v) == 1:
        return str(v[0])
    step = v[1] - v[0]
    if all(b - a == step for a, b in zip(v, v[1:], strict=False)):
        return f"{v[0]}..{v[-1]}" + (f" every {step}" if step != 1 else "")
    return ", ".join(map(str, v))


def _where(w: Why) -> str:
    return f"rows {span(w.rows)}, columns {span(w.cols)}"


def signed(v: float) -> str:
    """``+0.0459``; a tiny value in powers of ten (``-3.40e-05``), a huge one shortened."""
    if v and abs(v) < 5e-4:  # tiny (an untrained deep layer): keep its digits visible
        return f"{v:+.2e}"
    return f"{v:+.4f}" if abs(v) < 1e4 else f"{v:+.4g}"


def decimals(m: float) -> int:
    """Decimals that show about two significant digits of values up to ``m`` (3 at least
    below 10)."""
    if 0 < m < 0.01:
        return min(7, 1 - int(np.floor(np.log10(m))))
    return 3 if m < 10 else 2 if m < 100 else 1


def _block(values: np.ndarray, pad: np.ndarray | None, mark: np.ndarray | None = None) -> list[str]:
    """A grid of numbers; padding cells end with '*', a marked cell is in brackets."""
    d = decimals(float(np.max(np.abs(values[np.isfinite(values)]), initial=0.0)))
    texts = [["-inf" if np.isneginf(v) else f"{v + 0.0:.{d}f}" for v in row] for row in values]
    width = max(len(t) for row in texts for t in row)
    lines = []
    for i, row in enumerate(texts):
        parts = []
        for j, t in enumerate(row):
            cell = t.rjust(width)
            if mark is not None and mark[i, j]:
                cell = f"[{cell}]"
            else:
                cell = f" {cell}" + ("*" if pad is not None and pad[i, j] else " ")
            parts.append(cell)
        lines.append("".join(parts).rstrip())
    return lines


def _side_by_side(blocks: list[tuple[str, list[str]]], indent: str = "    ") -> list[str]:
    """Titled blocks next to each other, as many per line as fit in the text width."""
    out: list[str] = []
    row: list[tuple[str, list[str]]] = []
    for block in blocks + [("", [])]:
        widths = [max([len(t)] + [len(s) for s in b]) for t, b in row + [block]]
        if block[1] and len(indent) + sum(widths) + 4 * len(row) <= _WIDTH:
            row.append(block)
            continue
        widths = widths[:-1]
        for i in range(len(row[0][1]) + 1):
            parts = [(t if i == 0 else b[i - 1]).ljust(w)
                     for (t, b), w in zip(row, widths, strict=True)]
            out.append((indent + "    ".join(parts)).rstrip())
        row = [block]
    return out


def _header(w: Why) -> list[str]:
    lines = [f"{w.where}: {w.operation}",
             f"input {format_volume(w.input_shape)}{w.origin} -> output "
             f"{format_volume(w.output_shape)}"]
    if w.note:
        lines.append(f"note: {w.note}")
    return lines + [""]


def conv_notes(w: Why) -> list[str]:
    """What groups, stride and dilation do to this window (nothing for a plain conv)."""
    d = w.details
    groups, stride, dilation = d.get("groups", 1), d.get("stride", (1, 1)), \
        d.get("dilation", (1, 1))
    o = w.at[0]
    notes = []
    if groups > 1 and len(w.channels) == 1:
        notes.append(f"depthwise (groups = {groups}): each kernel has depth 1; output channel "
                     f"{o} reads input channel {w.channels[0]} only")
    elif groups > 1:
        notes.append(f"groups = {groups}: output channel {o} is in group "
                     f"{w.channels[0] // len(w.channels)}, which reads input channels "
                     f"{w.channels[0]}..{w.channels[-1]} only")
    if w.kind == "conv" and (stride != (1, 1) or dilation != (1, 1)):
        (pt, _), (pl, _) = d["pad"]
        apart = (f"; dilation {_pair(dilation)}: its cells are {dilation[0]} rows and "
                 f"{dilation[1]} columns apart" if dilation != (1, 1) else "")
        notes.append(f"stride {_pair(stride)}: the window of output row {w.at[1]} starts at "
                     f"input row {w.at[1]} x {stride[0]} - {pt} = {int(w.rows[0])} (column "
                     f"{w.at[2]}: {w.at[2]} x {stride[1]} - {pl} = {int(w.cols[0])}){apart}")
    return notes


def _pair(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def _conv(w: Why) -> list[str]:
    assert w.kernel is not None and w.products is not None and w.channel_sums is not None
    d, kh, kw = w.kernel.shape
    o, r, c = w.at
    lines = textwrap.wrap(f"output channel {o}, row {r}, column {c} = kernel {o} ({kh}x{kw}x{d}) "
                          f"times the {kh}x{kw}x{d} input patch at {_where(w)}, summed, plus the "
                          "bias:", _WIDTH)
    lines += [f"  {note}" for note in conv_notes(w)]
    if w.padding.any():
        lines.append(f"  * = {_PAD_MEANING[w.padding_mode]}: {int(w.padding.sum())} of the "
                     f"{kh * kw} window cells are padding")
    lines.append("")
    lines += _grids(w, ("patch (input values)", f"kernel {o}, slice {{i}}", "products"))
    return lines + _total(w)


def strongest(w: Why, limit: int) -> list[int]:
    """Which input channels (indices into ``w.channels``) to draw: all of them when there
    are at most ``limit``, else the ``limit`` with the largest |sum|, in channel order."""
    assert w.channel_sums is not None
    d = len(w.channel_sums)
    if d <= limit:
        return list(range(d))
    top = np.argsort(-np.abs(w.channel_sums), kind="stable")[:limit]
    return sorted(int(i) for i in top)


def _grids(w: Why, titles: tuple[str, str, str]) -> list[str]:
    """Per input channel: the values, the kernel slice and the products as number grids
    (all channels, or the few with the largest sums), then the sum per channel of all."""
    assert w.kernel is not None and w.products is not None and w.channel_sums is not None
    d, kh, kw = w.kernel.shape
    lines = []
    grids = max(kh, kw) <= _GRID_KERNEL
    shown = strongest(w, _GRID_CHANNELS) if grids else []
    counts = int((~w.padding).sum()) if w.kind == "transposed conv" else kh * kw
    if len(shown) < d and shown:
        lines.append(f"  the {len(shown)} input channels with the largest sums (of {d}):")
    for i in shown:
        ch = w.channels[i]
        lines.append(f"  input channel {ch}:")
        lines += _side_by_side([(titles[0], _block(w.patch[i], w.padding)),
                                (titles[1].format(i=i, ch=ch), _block(w.kernel[i], None)),
                                (titles[2], _block(w.products[i], w.padding))])
        lines.append(f"    sum of {counts} product{'s' * (counts != 1)} = "
                     f"{signed(w.channel_sums[i])}")
    if len(shown) < d:
        what = "" if not grids else "every input channel (grids above for some): "
        lines.append(f"  {what}sum of the {counts} product{'s' * (counts != 1)} per input "
                     "channel:")
        items = [f"ch {ch}: {signed(s)}" for ch, s in zip(w.channels, w.channel_sums,
                                                       strict=True)]
        width = max(len(item) for item in items)
        per = max(1, (_WIDTH - 1) // (width + 3))
        for k in range(0, len(items), per):
            lines.append(("    " + "   ".join(i.ljust(width) for i in items[k:k + per])).rstrip())
    return lines + [""]


def _total(w: Why) -> list[str]:
    """The sum of the products, the bias and the value, checked against the forward pass."""
    assert w.kernel is not None and w.channel_sums is not None
    d, kh, kw = w.kernel.shape
    n = d * int((~w.padding).sum()) if w.kind == "transposed conv" else d * kh * kw
    lines = []
    sums = w.channel_sums
    total = float(sums.sum())
    terms = " ".join(f"{'+' if s >= 0 else '-'} {abs(s):.4f}" for s in sums).lstrip("+ ")
    lines.append(f"  sum of {n} products = " + (f"{terms} = " if 1 < d <= 6 else "")
                 + f"{total:.6g}")
    lines.append(f"  + bias {w.bias:.6g}")
    lines.append(f"  = {w.value:.6g}   (the forward pass gave {w.forward_value:.6g}; "
                 f"difference {abs(w.value - w.forward_value):.1e})")
    return lines


def _transposed(w: Why) -> list[str]:
    assert w.kernel is not None
    d, kh, kw = w.kernel.shape
    o, r, c = w.at
    dd = w.details
    (sh, sw), (dh, _), (ph, _) = dd["stride"], dd["dilation"], dd["pad"]
    lines = textwrap.wrap(
        f"output channel {o}, row {r}, column {c} of a transposed conv: every input value x "
        f"adds x times its {kh}x{kw} kernel slice to a window of the output; the windows of "
        f"neighbouring input values start {sh} rows ({sw} columns) apart. Kernel row a of "
        f"input row i lands on output row i x "
        f"{sh} - {ph} + a x {dh}, so row {r} gets kernel row a from input row ({r} + {ph} - a x "
        f"{dh}) / {sh} when that is a whole number inside the input; columns likewise.", _WIDTH)
    lines += [f"  {note}" for note in conv_notes(w)]
    lines.append("  input row per kernel row: " + _landings(w.rows) + "; input column per "
                 "kernel column: " + _landings(w.cols))
    lines.append(f"  * = no input value lands on this kernel entry ({dd['lands']} of the "
                 f"{kh * kw} entries carry one)")
    lines.append("")
    lines += _grids(w, ("input value landing", f"kernel entries [{{ch}}, {o}]", "products"))
    return lines + _total(w)


def _landings(idx: np.ndarray) -> str:
    return ", ".join(f"{a}: {'-' if i < 0 else int(i)}" for a, i in enumerate(idx))


def pool_parts(w: Why) -> tuple[list[str], list[str]]:
    """(the sentence before the window's numbers, the result after them)."""
    ch, r, c = w.at
    kh, kw = w.padding.shape
    patch = w.patch[0]
    adaptive = (" (adaptive: rows floor(i*H/H_out) .. ceil((i+1)*H/H_out) - 1)"
                if w.kind == "adaptive average pool" else "")
    before = textwrap.wrap(f"output channel {ch}, row {r}, column {c} = the "
                           f"{'largest value' if w.kind == 'max pool' else 'mean'} of the "
                           f"{kh}x{kw} window of input channel {ch} at {_where(w)}{adaptive}:",
                           _WIDTH)
    if w.padding.any():
        before.append("  * = padding" + (" (-inf: it never wins)" if w.kind == "max pool" else
                                         " (0)"))
    if w.kind == "max pool":
        assert w.winner is not None
        ties = w.details.get("ties", 1)
        after = [f"  the winner [in brackets] is input channel {w.winner[0]}, row "
                 f"{w.winner[1]}, column {w.winner[2]}: {w.value:.6g}"
                 + (f" ({ties} cells tie; the pool records the first, as PyTorch does)"
                    if ties > 1 else "")]
    else:
        real = ~w.padding
        after = [f"  sum of the {int(real.sum())} input values {patch[real].sum():.6g} / "
                 f"{w.divisor} cells = {w.value:.6g}"]
        if w.divisor != int(real.sum()):
            after.append("  (count_include_pad: the padding cells count in the divisor)")
    return before, after + [f"  the forward pass gave {w.forward_value:.6g}"]


def _pool(w: Why) -> list[str]:
    before, after = pool_parts(w)
    mark = None
    if w.kind == "max pool":
        mark = np.zeros_like(w.padding)
        mark[w.details["window"]] = True
    return before + _block(w.patch[0], w.padding, mark) + after


def _at(w: Why) -> str:
    if len(w.at) == 1:
        return f"value {w.at[0]}"
    return ", ".join(f"{n} {v}" for n, v in zip(("channel", "row", "column"), w.at, strict=False))


def _point(w: Why) -> list[str]:
    x = float(w.patch.reshape(-1)[0])
    at = _at(w)
    if w.kind == "relu":
        body = (f"ReLU at {at}: max(x, 0) of the input value x = {x:.6g} at the same place "
                f"-> {w.value:.6g}" + ("  (negative: set to 0)" if x < 0 else "  (kept)"))
    elif w.kind == "dropout":
        body = f"dropout at {at} in eval mode passes its input: {x:.6g}"
    elif w.kind == "flatten":
        src = w.details["source"]
        where = (f"input channel {src[0]}, row {src[1]}, column {src[2]} (order: channel, then "
                 "row, then column)" if len(src) == 3 else f"input value {src}")
        body = f"flatten: value {w.at[-1] if len(w.at) == 1 else w.at} is {where}: {x:.6g}"
    elif w.kind == "batch norm":
        dd = w.details
        body = (f"batch norm at {at}: (x - mean) / sqrt(var + eps) * gamma + beta = "
                f"({x:.4g} - {dd['mean']:.4g}) / sqrt({dd['var']:.4g} + {dd['eps']:g}) * "
                f"{dd['gamma']:.4g} + {w.bias:.4g} = {w.value:.6g}"
                + ("" if dd.get("statistics", "running") == "running" else
                   " (mean and var of this input: no running statistics)"))
    else:
        body = (f"{w.kind} at {at}: {w.details['formula']}, with x = {x:.6g} the input value at "
                f"the same place -> {w.value:.6g}")
    return [body, f"the forward pass gave {w.forward_value:.6g}"]


def _binary(w: Why) -> list[str]:
    (na, a), (nb, b) = w.operands
    sign, alpha = w.details["sign"], w.details["alpha"]
    scaled = f"{alpha:g} x " if alpha != 1 else ""
    what = {"+": "the sum", "-": "the difference", "*": "the product", "/": "the quotient"}[sign]
    return [f"{w.kind} at {_at(w)}: {what} of its two inputs' values at the same place:",
            f"  {na}: {a:+.6g}", f"  {sign} {scaled}{nb}: {b:+.6g}",
            f"  = {w.value:.6g}   (the forward pass gave {w.forward_value:.6g})"]


def _cat(w: Why) -> list[str]:
    dd = w.details
    axis = ("channel", "row", "column")[dd["axis"]] if len(w.at) == 3 else f"axis {dd['axis']}"
    (name, v), = w.operands
    spans, start = [], 0
    for k, size in enumerate(dd["sizes"]):
        spans.append(f"{axis}s {start}..{start + size - 1} from input {k}")
        start += size
    local = ", ".join(f"{n} {v}" for n, v in zip(("channel", "row", "column"), dd["local"],
                                                  strict=False))
    return [f"cat along the {axis}s: " + "; ".join(spans) + ".",
            f"{_at(w)} lies in input {dd['part']} ({name}): its {local} = {v:.6g}",
            f"the forward pass gave {w.forward_value:.6g}"]


def _interpolate(w: Why) -> list[str]:
    assert w.kernel is not None and w.products is not None
    ch, r, c = w.at
    mode = w.details["mode"]
    rows, cols = ", ".join(map(str, w.rows)), ", ".join(map(str, w.cols))
    lines = [f"output channel {ch}, row {r}, column {c} ({mode}) reads input channel {ch} at "
             f"rows {rows}, columns {cols}:"]
    for i, row in enumerate(w.rows):
        for j, col in enumerate(w.cols):
            lines.append(f"  x[{row}, {col}] = {w.patch[0, i, j]:+.5f} x weight "
                         f"{w.kernel[0, i, j]:.4f} = {w.products[0, i, j]:+.5f}")
    lines.append(f"  = {w.value:.6g}   (the forward pass gave {w.forward_value:.6g})")
    return lines


def _softmax(w: Why) -> list[str]:
    dd = w.details
    x = float(w.patch.reshape(-1)[0])
    rule = ("exp(x - max) / sum of exp(x_j - max)" if w.kind == "softmax" else
            "x - max - log(sum of exp(x_j - max))")
    return [f"{w.kind} at {_at(w)} over the {dd['count']} values along axis {dd['axis']}: "
            f"{rule}, with x = {x:.6g}, max = {dd['top']:.6g}, sum = {dd['sum']:.6g} "
            f"-> {w.value:.6g}", f"the forward pass gave {w.forward_value:.6g}"]


def _linear(w: Why) -> list[str]:
    assert w.products is not None and w.kernel is not None
    prods = w.products.reshape(-1)
    xs, ws = w.patch.reshape(-1), w.kernel.reshape(-1)
    top = np.argsort(-np.abs(prods), kind="stable")[:8]
    lines = [f"output {w.at[-1]} = the {prods.size} inputs times row {w.at[-1]} of the weights, "
             "summed, plus the bias. The largest products:"]
    for i in top:
        lines.append(f"  input {i:>6}: {xs[i]:+.4f} x {ws[i]:+.4f} = {prods[i]:+.5f}")
    lines.append(f"  sum of {prods.size} products = {prods.sum():.6g}")
    lines.append(f"  + bias {w.bias:.6g}")
    lines.append(f"  = {w.value:.6g}   (the forward pass gave {w.forward_value:.6g})")
    return lines


def render(w: Why) -> str:
    """The walk-through as text (<= 100 columns)."""
    body = {"conv": _conv, "transposed conv": _transposed, "max pool": _pool,
            "average pool": _pool, "adaptive average pool": _pool, "linear": _linear,
            "add": _binary, "sub": _binary, "mul": _binary, "div": _binary, "cat": _cat,
            "interpolate": _interpolate, "softmax": _softmax,
            "log softmax": _softmax}.get(w.kind, _point)(w)
    lines = []
    for line in _header(w) + body:
        lead = " " * (len(line) - len(line.lstrip()))
        lines += textwrap.wrap(line, _WIDTH, subsequent_indent=lead + "  ",
                               drop_whitespace=True) if len(line) > _WIDTH else [line]
    return "\n".join(lines)
