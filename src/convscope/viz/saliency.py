"""Which pixels a classifier's decision rests on: gradient x input, and Grad-CAM.

- :func:`saliency` (gradient x input): d(class score)/d(pixel) times the pixel, summed over
  the colour channels. Red pixels push the score up, blue ones down.
- :func:`grad_cam` (Selvaraju et al., 2017): the feature maps A_k of a node (default: the
  last conv, taken after the elementwise nodes that follow it: its batch norm, ReLU and a
  residual add, as Grad-CAM takes ResNet's ``layer4``), weighted by the mean gradient of the
  class score over each map, summed, rectified, scaled to [0, 1] and resized to the image.
  Coarse (the node's resolution) but about *where* the evidence is. The gradient at an inner
  node of any model comes from running the traced graph again from that node's values
  (:func:`convscope.viz.nodes.replay`).

The class score is the logit (the model's output before softmax).

>>> import numpy as np
>>> spec = "12x12x1 | conv(4, 3, padding=1) | relu | flatten | linear(3)"
>>> s = saliency_maps(spec, np.random.default_rng(0).random((1, 12, 12)))
>>> s.grad_x_input.shape, s.cam.shape, 0.0 <= float(s.cam.min()) <= float(s.cam.max()) <= 1.0
((12, 12), (12, 12), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentError, ShapeError, message
from ..nn import Module
from ..spec import format_volume
from ..tensor import Tensor, enable_grad
from .colors import diverging, symmetric_limit
from .grid import grid
from .layers import LayerRef, Refs, activations, find_layer, layer_refs, prepare
from .nodes import inspect_mode, replay
from .receptive import heat, image_rgb
from .receptive_paths import JOIN_OPS, POINTWISE_OPS

__all__ = ["saliency", "grad_cam", "saliency_maps", "Saliency", "saliency_picture"]


@dataclass
class Saliency:
    """Gradient x input (H, W) and Grad-CAM (H, W, in [0, 1]) for one class of one image."""

    image: np.ndarray
    grad_x_input: np.ndarray
    cam: np.ndarray
    cam_layer: str
    target: int
    classes: list[str]
    probabilities: np.ndarray
    note: str | None = None
    cam_where: str = ""  # "layer 3", or "layer4.1.relu#2 (node 65)" in a graph

    def __post_init__(self) -> None:
        self.cam_where = self.cam_where or f"layer {self.cam_layer}"

    def name(self, k: int) -> str:
        return self.classes[k] if k < len(self.classes) else f"class {k}"

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    def __str__(self) -> str:
        p, t = self.predicted, self.target
        top = np.argsort(-self.probabilities)[:5]
        lines = [f"predicted: {self.name(p)} (p = {self.probabilities[p]:.3f})",
                 f"explaining: {self.name(t)} (p = {self.probabilities[t]:.3f})",
                 "top classes: " + ", ".join(f"{self.name(k)} {self.probabilities[k]:.3f}"
                                            for k in top),
                 f"gradient x input: from {self.grad_x_input.min():.3g} to "
                 f"{self.grad_x_input.max():.3g} (sum {self.grad_x_input.sum():.3g})",
                 f"Grad-CAM on {self.cam_where}: " + (
                     f"strongest at row {_peak(self.cam)[0]}, column {_peak(self.cam)[1]}"
                     if self.cam.max() > 0 else "zero everywhere (no feature map there "
                     "raises this class's score)")]
        if self.note:
            lines.insert(0, f"note: {self.note}")
        return "\n".join(lines)

    def picture(self) -> np.ndarray:
        return saliency_picture(self)


def _peak(m: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(r), int(c)


def _classifier(refs: Refs) -> None:
    out = refs.graph.shape_of(refs.graph.outputs[0])[1:]
    if len(out) != 1 or out[0] < 2:
        raise ShapeError(message("saliency", f"needs a classifier (one score per class), but "
                                 f"the model's output is {format_volume(out)}",
                                 "use a model that ends with linear(number of classes)",
                                 f"output {out}"))


def _target(target: Any, n: int, classes: list[str]) -> int | None:
    if target is None:
        return None
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target in classes:
            return classes.index(target)
        raise ArgumentError(message("--target", f"there is no class {target!r}",
                                    f"use one of: {', '.join(classes) or f'0..{n - 1}'}",
                                    f"target={target!r}"))
    k = int(target)
    if not 0 <= k < n:
        raise ArgumentError(message("--target", f"class {k} is out of range",
                                    f"use 0..{n - 1}", f"target={target!r}"))
    return k


def _has_maps(ref: LayerRef) -> bool:
    return len(ref.output_shape) == 3


def _cam_layer(model: Module, refs: Refs, shape: tuple[int, ...],
               layer: int | str | None) -> LayerRef:
    if layer is not None:
        return find_layer(model, layer, shape, where="--cam-layer", kinds=_has_maps,
                          refs=refs, what="a layer with feature maps (a conv layer, before "
                                          "flatten)")
    convs = [r for r in refs if r.op == "conv2d"]
    if not convs:
        raise ArgumentError(message("grad_cam", "the model has no conv layer",
                                    "Grad-CAM needs feature maps; use saliency() alone"))
    ref = convs[-1]
    while True:  # through what follows it elementwise: batch norm, activation, residual add
        users = refs.graph.users(ref.name)
        nxt = refs[users[0].index] if len(users) == 1 else None
        if nxt is None or nxt.output_shape != ref.output_shape or \
                nxt.op not in POINTWISE_OPS | JOIN_OPS:
            return ref
        ref = nxt


def saliency_maps(model: Any, image: Any, target: Any = None, layer: int | str | None = None,
                  size: Any = None, seed: int = 0) -> Saliency:
    """Gradient x input and Grad-CAM for class ``target`` (default: the predicted class).

    ``target`` is a class index or name; ``layer`` the Grad-CAM node, by number or module
    path (default: the last conv, after the elementwise nodes that follow it).
    """
    prep = prepare(model, image, size=size, seed=seed)
    m, img = prep.model, prep.image
    refs = layer_refs(m, img.shape)
    _classifier(refs)
    classes = [str(c) for c in (getattr(m, "classes", None) or [])]
    cam_ref = _cam_layer(m, refs, img.shape, layer)
    acts = activations(m, img)
    graph = acts.graph
    with inspect_mode(m), enable_grad():
        x = Tensor(img[None], requires_grad=True)
        logits = m(x)
        probs = F.softmax(logits.detach(), dim=1).data[0].astype(np.float64)
        k = _target(target, logits.shape[1], classes)
        k = int(np.argmax(probs)) if k is None else k
        logits[0, k].backward()
        assert x.grad is not None
        gxi = (x.grad.data[0] * img).sum(axis=0).astype(np.float64)
        a = Tensor(graph.values[cam_ref.name], requires_grad=True)  # type: ignore[index]
        replay(graph, {cam_ref.name: a}, graph.outputs[0])[0, k].backward()
        assert a.grad is not None
        cam = _cam(a.data[0].astype(np.float64), a.grad.data[0].astype(np.float64),
                   img.shape[1:])
    return Saliency(image=img, grad_x_input=gxi, cam=cam, cam_layer=cam_ref.index, target=k,
                    classes=classes, probabilities=probs, note=prep.note,
                    cam_where=cam_ref.short)


def _cam(acts: np.ndarray, grads: np.ndarray, hw: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    weights = grads.mean(axis=(1, 2))
    cam = np.maximum((weights[:, None, None] * acts).sum(axis=0), 0.0)
    big = np.asarray(Image.fromarray(cam.astype(np.float32), mode="F").resize(
        (hw[1], hw[0]), Image.Resampling.BILINEAR), np.float64)
    big = np.maximum(big, 0.0)
    top = float(big.max())
    return big / top if top > 0 else np.zeros_like(big)


def saliency(model: Any, image: Any, target: Any = None, size: Any = None,
             seed: int = 0) -> np.ndarray:
    """Gradient x input (H, W) for class ``target`` (default: the predicted one)."""
    return saliency_maps(model, image, target, size=size, seed=seed).grad_x_input


def grad_cam(model: Any, image: Any, target: Any = None, layer: int | str | None = None,
             size: Any = None, seed: int = 0) -> np.ndarray:
    """Grad-CAM (H, W) in [0, 1] for class ``target`` on ``layer`` (default: the last conv)."""
    return saliency_maps(model, image, target, layer, size=size, seed=seed).cam


def _overlay(base: np.ndarray, colours: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = np.clip(alpha, 0, 1)[..., None]
    return np.rint(base * (1 - a) + colours * a).astype(np.uint8)


def saliency_picture(s: Saliency) -> np.ndarray:
    """Three panels: the image; gradient x input over a grey copy (red: pushes the class
    score up, blue: down); Grad-CAM over it (hot = where the evidence is)."""
    rgb = image_rgb(s.image).astype(np.float64)
    grey = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2) * 0.7 + 255 * 0.3
    limit = symmetric_limit(s.grad_x_input) or 1.0
    gxi = _overlay(grey, diverging(s.grad_x_input, limit).astype(np.float64),
                   np.abs(s.grad_x_input) / limit * 1.2)
    cam = _overlay(grey, heat(s.cam, 1.0).astype(np.float64), 0.8 * s.cam)
    h, w = rgb.shape[:2]
    zoom = max(1, 256 // max(h, w))
    pics = [np.repeat(np.repeat(p.astype(np.uint8), zoom, 0), zoom, 1) for p in (rgb, gxi, cam)]
    p, t = s.predicted, s.target
    where = s.cam_where.split(" (node ")[0]  # the caption is short: the module path
    title = (f"predicted {s.name(p)!r} (p = {s.probabilities[p]:.2f})"
             + ("" if p == t else f"; explaining {s.name(t)!r} (p = {s.probabilities[t]:.2f})")
             + (f" [{s.note}]" if s.note else ""))
    return grid(pics, [f"input {format_volume(s.image.shape)}",
                       f"gradient x input (red: for {s.name(t)!r}, blue: against)",
                       f"Grad-CAM, {where} (hot: evidence)" if s.cam.max() > 0
                       else f"Grad-CAM, {where}: zero everywhere"],
                title=title, legend=False, cols=3)
