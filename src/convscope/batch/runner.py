"""A model ready to run over a stream of images: class probabilities or one layer's features.

:class:`Runner` checks everything it can before the first image is read (the model runs on
its input volume, its output is one score per class, the layer exists and can be reached,
``top`` fits), then turns a stream of decoded images into :class:`Rows`, one per image, in
the order given. Images are prepared by :func:`convscope.data.load_image` (the numbers of
``convscope predict``); an image that cannot be read becomes a row whose ``error`` holds the
message the command line would print for it, and never stops the stream.

A layer's features are the numbers the model's own forward pass makes there, the pass
stopped at that node: for a chain (``nn.Sequential``) its first layers up to that one; for
any other model the traced graph cut after the node, fused as the model's inference is
(:mod:`convscope.graph.fuse`, for the zoo and compiled models). A model with an operation
the graph cannot run again is stopped by a forward hook on the layer (its ``k``-th call for
a node named ``name#k``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ImageError, ShapeError, message

__all__ = ["Runner", "Rows", "resolve_model", "decode", "decoded", "MAX_FEATURES"]

MAX_FEATURES = 65_536
"""Most values per image ``features`` writes (a 16x16x256 volume); a larger layer is refused:
one column per value, and a chunk of rows is held in memory."""

Item = tuple[str, "np.ndarray | None", "str | None"]  # path, image or None, error or None


@dataclasses.dataclass
class Rows:
    """Output rows in path order: ``values`` is (n, K) probabilities or (n, D) features
    (float32, NaN on error rows); ``labels`` (predict) the top-K class names per row."""

    kind: str
    paths: list[str]
    errors: list[str | None]
    values: np.ndarray
    labels: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def error_count(self) -> int:
        return sum(e is not None for e in self.errors)

    def columns(self) -> list[str]:
        return columns(self.kind, self.values.shape[1])


def columns(kind: str, width: int) -> list[str]:
    """The output columns: ``path, class, probability, class_2, probability_2, ..., error``
    or ``path, f0, f1, ..., error``."""
    if kind == "predict":
        cols = ["path", "class", "probability"]
        for k in range(2, width + 1):
            cols += [f"class_{k}", f"probability_{k}"]
        return [*cols, "error"]
    return ["path", *(f"f{i}" for i in range(width)), "error"]


def resolve_model(model: Any, where: str) -> Any:
    """A Module as given; a zoo name (seeded random weights); or a model file / run folder."""
    from ..nn import Module

    if isinstance(model, Module):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ArgumentTypeError(message(where, "the model must be a convscope model, a model "
                                        "file, a run folder or a zoo name",
                                        "pass e.g. 'runs/mine' or 'resnet18'",
                                        type(model).__name__))
    from .. import models
    from ..io import load_model

    text = os.fspath(model)
    if models.is_zoo_name(text) and not os.path.exists(text):
        return models.get(text, seed=0)
    return load_model(text)


def decode(path: str, shape: tuple[int, int, int]) -> Item:
    """One image prepared for the model, or the message saying why it cannot be."""
    from ..data.images import load_image

    c, h, w = shape
    try:
        return path, load_image(path, size=(h, w), channels=c), None
    except ImageError as exc:
        return path, None, str(exc)
    except OSError as exc:  # e.g. a folder on the way that cannot be entered
        return path, None, message(f"image {path!r}", f"the file cannot be read "
                                   f"({exc.strerror or exc})", "check its permissions")


def decoded(paths: Iterable[str], shape: tuple[int, int, int], threads: int = 2,
            depth: int = 256) -> Iterator[Item]:
    """:func:`decode` over ``paths``, in order, ``threads`` at a time (Pillow releases the
    GIL while it decodes and resizes), never more than ``depth`` images ahead."""
    if threads <= 0:
        for p in paths:
            yield decode(p, shape)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="convscope-decode")
    window: deque = deque()
    try:
        for p in paths:
            window.append(pool.submit(decode, p, shape))
            if len(window) >= depth:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Stop(Exception):
    """Raised by the feature hook to end the forward pass at the chosen layer."""

    def __init__(self, value: Any) -> None:
        super().__init__("stop")
        self.value = value


class Runner:
    """A model checked and ready for batches (see the module docstring).

    Parameters
    ----------
    model : Module, model file, run folder or zoo name
    task : {"predict", "features"}
    top : int
        Classes per row (predict).
    layer : int or str
        The node whose output is the feature vector (features): a number or a module path
        as ``convscope explain`` prints them (``"avgpool"``, ``"layer4"``, ``66``).
    input_shape : (C, H, W) or "HxWxD", optional
        The volume images are resized to; defaults to the model's own.
    """

    def __init__(self, model: Any, task: str = "predict", *, top: int = 1, layer: Any = None,
                 input_shape: Any = None, where: str | None = None) -> None:
        from ..graph import trace
        from ..spec import as_volume, format_volume

        where = where or task
        if task not in ("predict", "features"):
            raise ArgumentError(message(where, f"unknown task {task!r}",
                                        "use 'predict' or 'features'"))
        self.model = resolve_model(model, where).eval()
        self.task, self.top, self.where = task, top, where
        self.lock: Any = contextlib.nullcontext()  # Dask workers may share one model
        shape = input_shape if input_shape is not None else getattr(self.model, "input_shape",
                                                                     None)
        if shape is None:
            raise ShapeError(message(where, "the model does not say its input volume",
                                     "pass input_shape=(C, H, W) (--input HxWxD)"))
        self.shape = as_volume(shape, "--input")
        if self.shape[0] not in (1, 3):
            raise ShapeError(message(where, f"the model reads {self.shape[0]} channels, but "
                                     "images give 1 (grayscale) or 3 (RGB)",
                                     "use a model whose input volume has depth 1 or 3",
                                     f"input volume {format_volume(self.shape)}"))
        graph = trace(self.model, self.shape)
        if graph.failure is not None:
            raise ShapeError(message(where, f"the model does not run on a "
                                     f"{format_volume(self.shape)} input volume",
                                     "give --input the volume the model was built for (see "
                                     "`convscope explain MODEL`)", str(graph.failure.error)))
        self.graph = graph
        if task == "predict":
            self._check_predict(graph)
        else:
            self._setup_features(graph, layer)

    # ------------------------------------------------------------------ checks
    def _check_predict(self, graph: Any) -> None:
        out = graph.shape_of(graph.outputs[0]) if len(graph.outputs) == 1 else None
        if out is None or len(out) != 2:
            raise ShapeError(message(self.where, "the model's output is not one score per "
                                     "class", "use `convscope features` for other models",
                                     f"output shape {out}"))
        k = out[1]
        names = list(getattr(self.model, "classes", None) or [])
        if names and len(names) != k:
            raise ShapeError(message(self.where, f"the model has {len(names)} class names but "
                                     f"{k} outputs", "re-save the model with one name per "
                                     "output", f"classes {names[:5]}"))
        self.class_names = names or [str(i) for i in range(k)]
        if isinstance(self.top, bool) or not isinstance(self.top, (int, np.integer)) \
                or not 1 <= self.top <= k:
            raise ArgumentError(message(self.where, f"top must be from 1 to the number of "
                                        f"classes, {k}", f"pass --top {min(3, k)}",
                                        f"top={self.top!r}"))
        self.width = int(self.top)

    def _setup_features(self, graph: Any, layer: Any) -> None:
        from ..graph.fuse import fuse
        from ..nn import Sequential

        if layer is None:
            raise ArgumentError(message(self.where, "features need a layer",
                                        "pass --layer with a node number or module path from "
                                        "`convscope explain MODEL`, e.g. --layer avgpool"))
        node = graph.find(layer, "--layer")
        self.node = node
        self.width = math.prod(node.shape[1:])
        if self.width > MAX_FEATURES:
            raise ArgumentError(message(self.where, f"layer {node.label} gives "
                                        f"{self.width} values per image, more than "
                                        f"{MAX_FEATURES}", "pick a later, smaller layer (a "
                                        "pooling layer such as avgpool)", f"shape {node.shape}"))
        self.call = int(node.name.rsplit("#", 1)[1]) if "#" in node.name else 1
        self.prefix = self.plan = None
        if isinstance(self.model, Sequential) and node.kind == "module" and \
                node.path.isdigit() and self.call == 1:
            self.prefix = self.model[: int(node.path) + 1]  # a chain: its first layers
            return
        sub = dataclasses.replace(graph, nodes=graph.nodes[: node.index + 1],
                                  outputs=(node.name,), output_tuple=False, values=None)
        if not any(n.kind == "opaque" for n in sub.nodes):
            fused = getattr(self.model, "fused_inference", False)
            self.plan = fuse(sub) if fused else sub  # the numbers the model's own pass makes
            return
        if node.kind != "module" or not self._hook_fires():
            raise ArgumentError(message(self.where, f"{node.label} cannot be reached: the "
                                        "model computes something convscope cannot run on "
                                        "its own before it", "pick a layer (a module) node"))

    def _hook_fires(self) -> bool:
        """Whether a forward hook on the node's layer sees its output."""
        from ..tensor import no_grad

        try:
            with no_grad():
                self._hooked(np.zeros((1, *self.shape), np.float32))
        except ShapeError:
            return False
        return True

    # ------------------------------------------------------------------ running
    @property
    def key(self) -> dict[str, Any]:
        """What decides the rows besides the images and the weights (for resume checks)."""
        return {"task": self.task, "top": self.width if self.task == "predict" else None,
                "layer": self.node.name if self.task == "features" else None,
                "input": list(self.shape), "columns": self.width}

    def columns(self) -> list[str]:
        return columns(self.task, self.width)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(n, K) probabilities or (n, D) features of a batch (n, C, H, W), float32."""
        from .. import functional as F
        from ..graph.module import run_graph
        from ..tensor import no_grad

        with self.lock, no_grad():
            if self.task == "predict":
                return F.softmax(self.model(batch), dim=1).numpy()
            if self.prefix is not None:
                out = self.prefix(batch)
            elif self.plan is not None:
                out = run_graph(self.plan, self.model, (batch,))
            else:
                out = self._hooked(batch)
        return np.ascontiguousarray(out.numpy().reshape(len(batch), -1), dtype=np.float32)

    def _hooked(self, batch: np.ndarray) -> Any:
        calls = 0

        def hook(module: Any, args: Any, output: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == self.call:
                raise _Stop(output)

        with self.node.module.register_forward_hook(hook):
            try:
                self.model(batch)
            except _Stop as stop:
                return stop.value
        raise ShapeError(message(self.where, f"layer {self.node.label} did not run",
                                 "pick another layer"))

    def rows(self, items: Iterable[Item], batch_size: int = 64) -> Rows:
        """Rows for ``items`` (from :func:`decoded`), in their order; the good images run in
        batches of ``batch_size``, an item with an error becomes an error row."""
        paths: list[str] = []
        errors: list[str | None] = []
        done: list[tuple[list[int], np.ndarray]] = []
        index: list[int] = []
        images: list[np.ndarray] = []
        for path, image, error in items:
            if error is None:
                index.append(len(paths))
                images.append(image)
            paths.append(path)
            errors.append(error)
            if len(images) == batch_size:
                done.append((index, self.forward(np.stack(images))))
                index, images = [], []
        if images:
            done.append((index, self.forward(np.stack(images))))
        out = np.full((len(paths), self.width), np.nan, np.float32)
        order = np.zeros((len(paths), self.width), np.int64)
        for idx, values in done:
            if self.task == "predict":
                top = np.argsort(-values, axis=1, kind="stable")[:, : self.width]
                order[idx] = top
                out[idx] = np.take_along_axis(values, top, axis=1)
            else:
                out[idx] = values
        labels = None
        if self.task == "predict":
            labels = [[] if e is not None else [self.class_names[j] for j in row]
                      for e, row in zip(errors, order.tolist(), strict=True)]
        return Rows(self.task, paths, errors, out, labels)
