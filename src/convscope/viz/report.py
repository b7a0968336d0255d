"""One self-contained HTML page that shows a model at work on one image, readable offline.

Every picture is embedded (PNG and GIF as base64 data URIs): no file beside it, no network,
no script. The page holds the explanation table, then per node of the traced graph its
feature maps (and its kernels for a conv), the sliding-kernel animation of the first conv,
``why`` walk-throughs (the first conv; in a graph also the first residual add or
concatenation), a receptive field, saliency and Grad-CAM for a classifier, and the training
curves of a run folder.

A big model (more than :data:`BIG` nodes: ResNet, MobileNet) stays a readable page: each
node shows thumbnails of its first :data:`MAPS_SHOWN` feature maps and only the first
:data:`KERNELS_SHOWN` convs their kernels (a few of each); the page says so, and names the
commands that draw everything for one node.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..explain import explain
from ..spec import format_volume
from .animate import animate, gif_bytes
from .curves import read_metrics, training_curves
from .layers import Activations, LayerRef, Refs, activations, layer_refs, prepare
from .pictures import KERNEL_OPS, kernels_of, maps_picture
from .receptive import image_rgb, receptive_field
from .saliency import saliency_maps
from .why import why

__all__ = ["report", "png_uri", "BIG", "MAPS_SHOWN", "KERNELS_SHOWN"]

BIG = 30  # nodes; a bigger model gets the bounded page
MAPS_SHOWN = 16  # feature maps per node in a big model (thumbnails)
KERNELS_SHOWN = 12  # conv nodes whose kernels a big model's page draws (8 x 8 of each)

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       margin: 0 auto; max-width: 1180px; padding: 18px 24px 60px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 34px 0 8px; border-bottom: 2px solid #e4e4e4; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
pre { background: #f6f6f6; border: 1px solid #e2e2e2; padding: 10px 12px; overflow-x: auto;
      font: 12.5px/1.35 ui-monospace, Menlo, Consolas, monospace; }
img { max-width: 100%; height: auto; border: 1px solid #e6e6e6; image-rendering: pixelated; }
.note { background: #fff6db; border: 1px solid #f0d98a; padding: 8px 12px; }
.muted { color: #666; }  nav a { margin-right: 12px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee;
text-align: left; }
"""


def png_uri(rgb: np.ndarray, quick: bool = False) -> str:
    """A uint8 RGB picture as a ``data:image/png;base64,...`` URI (``quick``: light
    compression, for the many pictures of a big model)."""
    from PIL import Image

    buffer = io.BytesIO()
    options = {"compress_level": 6} if quick else {"optimize": True}
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(buffer, format="PNG", **options)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<p><img src="{uri}" alt="{html.escape(alt)}"></p>'


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _metrics_source(model: Any, given: Any) -> Path | None:
    for candidate in (given, getattr(model, "source", None)):
        if isinstance(candidate, (str, os.PathLike)):
            p = Path(candidate)
            folder = p if p.is_dir() else p.parent
            if (folder / "metrics.json").is_file():
                return folder
    return None


def _scores(logits: np.ndarray, classes: list[str]) -> str:
    """The model's output as a table: the best classes, their scores and probabilities."""
    p = np.exp(logits - logits.max())
    p /= p.sum()
    rows = "".join(f"<tr><td>{k}</td><td>{html.escape(classes[k]) if k < len(classes) else ''}"
                   f"</td><td>{logits[k]:.4f}</td><td>{p[k]:.3f}</td></tr>"
                   for k in np.argsort(-logits)[:10])
    return ("<table><tr><th>#</th><th>class</th><th>score (logit)</th><th>probability</th></tr>"
            f"{rows}</table>")


def _strongest(maps: np.ndarray) -> tuple[int, int, int]:
    """(0, row, column) of the largest |value| of map 0."""
    r, c = np.unravel_index(int(np.argmax(np.abs(maps[0]))), maps[0].shape)
    return 0, int(r), int(c)


def _node_parts(m: Any, ref: LayerRef, acts: Activations, note: str | None, last: bool,
                big: bool, kernels: bool) -> list[str]:
    """The pictures of one node: its maps (or its values), and its kernels for a conv."""
    out = acts.value(ref.name)
    anchor = html.escape(ref.index)
    name = f"Layer {anchor}" if ref.chain else f"Node {anchor}: {html.escape(ref.name)}"
    parts = [f'<h3 id="layer-{anchor}">{name}: {html.escape(ref.operation)} &rarr; '
             f"{format_volume(out.shape)}</h3>"]
    if ref.origin:
        parts.append(f'<p class="muted">Input{html.escape(ref.origin)}.</p>')
    if out.ndim == 3:
        pic = maps_picture(out, ref, note, max_maps=MAPS_SHOWN if big else None,
                           cell=40 if big else None)
        parts.append(_img(png_uri(pic, big), f"feature maps of {ref.short}"))
    elif last and out.size >= 2:
        parts.append(_scores(out, getattr(m, "classes", None) or []))
    else:
        parts.append(f'<p class="muted">{out.size} values, from {out.min():.4g} to '
                     f"{out.max():.4g}.</p>")
    if kernels:
        limits = {"max_kernels": 8, "max_slices": 8} if big else {}
        parts.append(_img(png_uri(kernels_of(m, ref, note, **limits), big),
                          f"kernels of {ref.short}"))
    return parts


def _why_sections(m: Any, img: np.ndarray, refs: Refs, acts: Activations,
                  max_frames: int) -> list[tuple[str, str, list[str]]]:
    """The animation and walk-through of the first conv; in a graph also the first join."""
    sections = []
    convs = [r for r in refs if r.op == "conv2d" and r.layer is not None]
    if convs:
        first = convs[0]
        frames = animate(img, m, layer=first.index, max_frames=max_frames)
        gif = "data:image/gif;base64," + base64.b64encode(gif_bytes(frames)).decode("ascii")
        sections.append(("animation", f"The kernel sliding ({first.short}, kernel 0)", [
            "<p>The window moves over the padded input (hatched: padding); each position "
            "gives one value of the feature map on the right: the sum of the products of the "
            "kernel with the patch under it, plus the bias.</p>", _img(gif, "animation")]))
        at = _strongest(acts.value(first.name))
        w = why(m, img, first.index, at)
        sections.append(("why", f"Why is one value what it is ({first.short})", [
            f"<p>The strongest value of feature map 0: row {at[1]}, column {at[2]}.</p>",
            _pre(str(w)), _img(png_uri(w.picture()), "why walk-through")]))
    joins = [r for r in refs if r.op in ("add", "cat") and len(r.output_shape) == 3]
    if joins:
        join = joins[0]
        at = _strongest(acts.value(join.name))
        w = why(m, img, join.index, at)
        what = "a residual addition" if join.op == "add" else "a concatenation"
        sections.append(("join", f"Where branches meet: {what} ({join.short})", [
            f"<p>Its inputs come{html.escape(join.origin)}; the strongest value of its map 0: "
            f"row {at[1]}, column {at[2]}.</p>", _pre(str(w))]))
    return sections


def report(model: Any, image: Any, path: str | os.PathLike[str] | None = None,
           size: Any = None, seed: int = 0, max_frames: int = 40,
           title: str | None = None) -> str:
    """The HTML page (a string); written to ``path`` too when given.

    Parameters
    ----------
    model : Module, model file, run folder (its training curves are included), zoo name or
        spec
    image : (C, H, W) array or image file
    max_frames : frames of the embedded animation
    """
    prep = prepare(model, image, size=size, seed=seed)
    m, img = prep.model, prep.image
    refs = layer_refs(m, img.shape)
    acts = activations(m, img)
    big = len(refs) > BIG
    sections: list[tuple[str, str, list[str]]] = []  # (anchor, heading, html parts)
    name = title or (str(model) if isinstance(model, (str, os.PathLike)) else type(m).__name__)

    head = [f"<p>Input image: {format_volume(img.shape)} (height x width x depth).</p>",
            _img(png_uri(np.repeat(np.repeat(image_rgb(img), max(1, 192 // max(img.shape[1:])),
                                             0), max(1, 192 // max(img.shape[1:])), 1)),
                 "the input image")]
    if prep.note:
        head.insert(0, f'<p class="note">Note: {html.escape(prep.note)}. The pictures show '
                       "what random kernels do, not what a trained model learned.</p>")
    spec = getattr(m, "spec", None)
    if spec:
        head.insert(0, f"<p>Model spec: <code>{html.escape(spec)}</code></p>")
    sections.append(("model", "The model and the image", head))
    sections.append(("explain", "Layer by layer (convscope explain)",
                     [_pre(explain(m, input_shape=img.shape).render())]))

    runs = _metrics_source(m, model)
    if runs is not None:
        rows = read_metrics(runs)
        if rows:
            sections.append(("curves", "Training curves",
                             [_img(png_uri(training_curves(rows)), "training curves")]))
    sections += _why_sections(m, img, refs, acts, max_frames)

    convs = [r for r in refs if r.op in KERNEL_OPS]
    drawn = {r.name for r in (convs[:KERNELS_SHOWN] if big else convs)}
    layer_parts: list[str] = []
    if big:
        layer_parts.append(
            f'<p class="note">This model has {len(refs)} nodes, so the page stays readable: '
            f"each node shows thumbnails of its first {MAPS_SHOWN} feature maps, and the first "
            f"{min(KERNELS_SHOWN, len(convs))} of its {len(convs)} convs show up to 8 kernels "
            "of 8 slices. <code>convscope show MODEL IMAGE --layer N</code> draws every map of "
            "node N, <code>convscope kernels MODEL --layer N</code> every kernel.</p>")
    for ref in refs:
        layer_parts += _node_parts(m, ref, acts, prep.note, ref is refs[-1], big,
                                   ref.name in drawn)
    sections.append(("layers", "Every layer: feature maps and kernels", layer_parts))

    spatial = [r for r in refs if len(r.output_shape) == 3]
    if spatial:
        last = next((r for r in reversed(spatial) if r.rf is not None), spatial[-1])
        at = (0, last.output_shape[1] // 2, last.output_shape[2] // 2)
        rf = receptive_field(m, img, last.index, at)
        sections.append(("receptive", f"Receptive field ({last.short}, centre value)", [
            _pre(str(rf)), _img(png_uri(rf.picture()), "receptive field")]))

    out = refs[-1].output_shape
    if len(out) == 1 and out[0] >= 2 and convs:
        s = saliency_maps(m, img)
        sections.append(("saliency", "What the decision rests on: saliency and Grad-CAM", [
            _pre(str(s)), _img(png_uri(s.picture()), "saliency and Grad-CAM")]))
    nav = " ".join(f'<a href="#{a}">{html.escape(h.split(" (")[0])}</a>' for a, h, _ in sections)
    body = "\n".join(f'<h2 id="{a}">{html.escape(h)}</h2>\n' + "\n".join(parts)
                     for a, h, parts in sections)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>convscope report: {html.escape(name)}</title><style>{_CSS}</style></head>"
            f"<body><h1>convscope report</h1><p class=\"muted\">{html.escape(name)}</p>"
            f"<nav>{nav}</nav>\n{body}\n</body></html>\n")
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(page, encoding="utf-8")
    return page

