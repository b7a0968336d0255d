"""The confusion matrix as a picture: counts in cells, recall per row, precision per column.

Rows are the true classes, columns the predicted ones (scikit-learn's convention). A cell's
colour is its share of its row: blue on the diagonal (correct), red off it (mistakes),
white for none, so the mistakes a model makes stand out at a glance. ``convscope evaluate``
writes it.

>>> import numpy as np
>>> rgb = confusion_picture(np.array([[5, 1], [0, 4]]), ["cat", "dog"])
>>> rgb.dtype, rgb.shape[2]
(dtype('uint8'), 3)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError, message
from .colors import diverging
from .draw import INK, PALE, canvas
from .grid import font
from .image import save_png

__all__ = ["confusion_picture"]

ZERO = (190, 190, 190)  # a zero count: present but quiet


def _cell_size(k: int) -> int:
    return 58 if k <= 8 else 44 if k <= 15 else 30 if k <= 30 else 18


def _percent(num: float, den: float, digits: int = 0) -> str:
    return "-" if den == 0 else f"{100 * num / den:.{digits}f}%"


def _vertical_text(text: str, size: int, colour: tuple[int, int, int]):  # noqa: ANN202
    """``text`` drawn on its own transparent strip, turned 90 degrees (reads upwards)."""
    from PIL import Image, ImageDraw

    fnt = font(size)
    width = int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=fnt)) + 4
    strip = Image.new("RGBA", (width, size + 6), (255, 255, 255, 0))
    ImageDraw.Draw(strip).text((2, 1), text, fill=colour + (255,), font=fnt)
    return strip.rotate(90, expand=True)


def confusion_picture(matrix: np.ndarray, classes: Sequence[str], title: str = "",
                      path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Draw a confusion matrix (uint8 RGB); write it as a PNG too when ``path`` is given.

    Parameters
    ----------
    matrix : ndarray of shape (K, K), int
        ``matrix[i, j]``: samples of true class ``i`` predicted as class ``j``.
    classes : sequence of K str
    title : str
        A line above the matrix (e.g. the accuracy).
    """
    cm = np.asarray(matrix)
    k = len(classes)
    if cm.ndim != 2 or cm.shape != (k, k) or cm.dtype.kind not in "iu":
        raise ShapeError(message("confusion_picture", "matrix must be integer counts of shape "
                                 "(K, K), one row and column per class",
                                 "pass metrics.confusion_matrix(...) and its class names",
                                 f"shape {cm.shape}, dtype {cm.dtype}, {k} classes"))
    cell = _cell_size(k)
    label_size = 13 if cell >= 30 else 10
    count_size = 16 if cell >= 44 else 12 if cell >= 30 else 9
    lab, small, big = font(label_size), font(11), font(15)
    _, measure = canvas(1, 1)
    names = [str(c) for c in classes]
    name_w = int(max(measure.textlength(n, font=lab) for n in names)) if names else 0
    left = max(name_w, int(measure.textlength("true class", font=small))) + 24
    top_labels = name_w + 12 if name_w > cell - 6 else label_size + 12
    top = 34 + 18 + top_labels
    grid = cell * k
    right_w = 10 + int(measure.textlength(f"{int(cm.sum())} images, recall 100%", font=small)) + 12
    caption = (f"{int(cm.sum())} images, accuracy {_percent(np.trace(cm), cm.sum(), 1)}; cell "
               "colour: share of the row (blue correct, red mistaken)")
    width = max(left + grid + right_w, int(measure.textlength(caption, font=small)) + 24,
                int(measure.textlength(title, font=big)) + 24)
    upright = cell >= 30  # else the precision values are written upwards, as the names
    precision_h = 22 if upright else int(measure.textlength("100%", font=font(10))) + 14
    height = top + grid + precision_h + 34
    img, draw = canvas(width, height)
    draw.text((12, 8), title or "confusion matrix", fill=INK, font=big)
    draw.text((left, 34), "predicted class", fill=PALE, font=small)
    draw.text((12, top - 16), "true class", fill=PALE, font=small)

    rows = cm.sum(axis=1)
    cols = cm.sum(axis=0)
    share = np.divide(cm, rows[:, None], out=np.zeros(cm.shape), where=rows[:, None] > 0)
    signed = np.where(np.eye(k, dtype=bool), -share, share)  # blue right, red wrong
    colours = diverging(signed, 1.0)
    for i in range(k):
        y = top + i * cell
        draw.text((left - 8 - draw.textlength(names[i], font=lab), y + (cell - label_size) / 2),
                  names[i], fill=INK, font=lab)
        for j in range(k):
            x = left + j * cell
            rgb = tuple(int(v) for v in colours[i, j])
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=rgb, outline=(225, 225, 225))
            if cell >= 18 and (cm[i, j] or cell >= 30):
                text = str(int(cm[i, j]))
                fnt = font(count_size if len(text) * count_size * 0.6 < cell - 4 else 9)
                dark = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 140
                draw.text((x + (cell - draw.textlength(text, font=fnt)) / 2,
                           y + (cell - fnt.size) / 2 - 1), text,
                          fill=(255, 255, 255) if dark else (INK if cm[i, j] else ZERO),
                          font=fnt)
        draw.text((left + grid + 10, y + (cell - 11) / 2),
                  f"{int(rows[i])} images, recall {_percent(cm[i, i], rows[i])}",
                  fill=INK if rows[i] else PALE, font=small)
    for j in range(k):
        x = left + j * cell
        if top_labels > label_size + 12:  # names too wide: written upwards
            strip = _vertical_text(names[j], label_size, INK)
            img.paste(strip, (int(x + (cell - strip.width) / 2), top - 6 - strip.height), strip)
        else:
            draw.text((x + (cell - draw.textlength(names[j], font=lab)) / 2, top - label_size - 8),
                      names[j], fill=INK, font=lab)
    draw.text((12, top + grid + 8), "precision", fill=PALE, font=small)
    for j in range(k):
        text = _percent(cm[j, j], cols[j])
        colour = INK if cols[j] else PALE
        if upright:
            x = left + j * cell + (cell - draw.textlength(text, font=small)) / 2
            draw.text((x, top + grid + 8), text, fill=colour, font=small)
        else:
            strip = _vertical_text(text, 10, colour)
            img.paste(strip, (int(left + j * cell + (cell - strip.width) / 2), top + grid + 6),
                      strip)
    draw.text((12, top + grid + precision_h + 12), caption, fill=PALE, font=small)
    picture = np.asarray(img).copy()
    if path is not None:
        save_png(path, picture)
    return picture
