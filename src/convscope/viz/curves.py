"""Training curves: loss and accuracy per epoch, training vs validation, as one PNG.

``convscope.train.fit`` calls :func:`training_curves` after each run (``curves.png`` in the
run folder); ``convscope curves RUN_FOLDER`` redraws them from ``metrics.json``.

>>> rows = [{"epoch": 1, "train_loss": 1.2, "train_accuracy": 0.6, "val_loss": 1.0,
...          "val_accuracy": 0.7}, {"epoch": 2, "train_loss": 0.8, "train_accuracy": 0.8,
...          "val_loss": 0.9, "val_accuracy": 0.75}]
>>> training_curves(rows).shape
(360, 1000, 3)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, FileFormatError, message
from .draw import INK, PALE, canvas
from .grid import font
from .image import save_png

__all__ = ["training_curves", "read_metrics"]

TRAIN, VAL = (33, 102, 172), (214, 96, 77)  # blue, red: as the diverging map's ends
_PANEL_W, _PANEL_H = 500, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 40, 52


def read_metrics(source: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-epoch rows of a run folder (its ``metrics.json``) or of a metrics file."""
    p = Path(source)
    if p.is_dir():
        p = p / "metrics.json"
    if not p.is_file():
        raise FileFormatError(message("curves", f"no metrics file at {p}",
                                      "pass a run folder written by `convscope train` (it holds "
                                      "metrics.json) or the metrics.json file", str(source)))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FileFormatError(message("curves", f"{p} is not valid JSON",
                                      "re-run the training, or fix the file", str(exc))) from None
    rows = data.get("epochs") if isinstance(data, Mapping) else data
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise FileFormatError(message("curves", f"{p} has no list of epochs",
                                      'expected {"epochs": [{"epoch": 1, "train_loss": ...}]}',
                                      type(rows).__name__))
    return [dict(r) for r in rows]


def _values(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    out = []
    for r in rows:
        v = r.get(key)
        try:
            out.append(float(v) if v is not None else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.array(out, np.float64)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _panel(title: str, epochs: np.ndarray, series: list[tuple[str, np.ndarray, tuple[int, ...]]],
           percent: bool) -> np.ndarray:
    img, draw = canvas(_PANEL_W, _PANEL_H)
    draw.text((_LEFT, 10), title, fill=INK, font=font(15))
    finite = np.concatenate([v[np.isfinite(v)] for _, v, _ in series] + [np.zeros(0)])
    if percent:
        lo, hi = (min(float(finite.min()) - 0.02, 0.9) if finite.size else 0.0), 1.0
        lo = max(0.0, math.floor(lo * 10) / 10)
    else:
        lo = 0.0 if finite.size == 0 or finite.min() >= 0 else float(finite.min())
        hi = float(finite.max()) * 1.08 if finite.size and finite.max() > 0 else 1.0
    x0, x1 = _LEFT, _PANEL_W - _RIGHT
    y0, y1 = _TOP, _PANEL_H - _BOTTOM
    e_lo, e_hi = float(epochs.min()), float(epochs.max())
    span = (e_hi - e_lo) or 1.0

    def px(e: float, v: float) -> tuple[float, float]:
        x = x0 + (e - e_lo) / span * (x1 - x0) if e_hi > e_lo else (x0 + x1) / 2
        return x, y1 - (v - lo) / (hi - lo) * (y1 - y0)

    small = font(11)
    for t in _ticks(lo, hi):
        _, y = px(e_lo, t)
        draw.line((x0, y, x1, y), fill=(232, 232, 232))
        label = f"{t * 100:.0f}%" if percent else f"{t:.3g}"
        draw.text((x0 - 6 - draw.textlength(label, font=small), y - 7), label, fill=PALE,
                  font=small)
    for t in _ticks(e_lo, e_hi, min(8, max(1, int(span)))) if e_hi > e_lo else [e_lo]:
        if abs(t - round(t)) > 1e-9:
            continue
        x, _ = px(t, lo)
        draw.line((x, y1, x, y1 + 4), fill=PALE)
        label = str(int(round(t)))
        draw.text((x - draw.textlength(label, font=small) / 2, y1 + 6), label, fill=PALE,
                  font=small)
    draw.rectangle((x0, y0, x1, y1), outline=(150, 150, 150))
    draw.text(((x0 + x1) / 2 - 16, y1 + 24), "epoch", fill=PALE, font=small)
    lx = x1
    for name, v, colour in reversed(series):  # the legend, right-aligned: train, then val
        pts = [px(e, val) for e, val in zip(epochs, v, strict=True) if math.isfinite(val)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for x, y in pts:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        last = next((val for val in v[::-1] if math.isfinite(val)), None)
        text = name + (" (none)" if last is None else
                       f" {last * 100:.1f}%" if percent else f" {last:.3g}")
        lx -= int(draw.textlength(text, font=small)) + 26
        draw.line((lx, 22, lx + 18, 22), fill=colour, width=3)
        draw.text((lx + 22, 15), text, fill=INK if pts else PALE, font=small)
        lx -= 14
    return np.asarray(img).copy()


def training_curves(rows: Sequence[Mapping[str, Any]] | str | os.PathLike[str],
                    path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Loss and accuracy per epoch, train vs validation, side by side (uint8 RGB).

    Parameters
    ----------
    rows : per-epoch dicts (epoch, train_loss, train_accuracy, val_loss, val_accuracy), as
        ``History.epochs``; or a run folder / ``metrics.json`` path
    path : write the picture there as a PNG too

    Missing or NaN values (a run without a validation split) are left out of the lines.
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = read_metrics(rows)
    rows = list(rows)
    if not rows:
        raise DataError(message("curves", "there are no epochs to draw",
                                "train for at least one epoch", "0 rows"))
    epochs = _values(rows, "epoch")
    if not np.isfinite(epochs).all():
        epochs = np.arange(1, len(rows) + 1, dtype=np.float64)
    loss = _panel("loss (cross-entropy)", epochs, [
        ("train", _values(rows, "train_loss"), TRAIN), ("val", _values(rows, "val_loss"), VAL)],
        percent=False)
    acc = _panel("accuracy", epochs, [
        ("train", _values(rows, "train_accuracy"), TRAIN),
        ("val", _values(rows, "val_accuracy"), VAL)], percent=True)
    picture = np.concatenate([loss, acc], axis=1)
    if path is not None:
        save_png(path, picture)
    return picture
