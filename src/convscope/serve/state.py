"""What one ``convscope serve`` holds: the model, the current image, and what was computed.

A :class:`State` loads the model once (a run folder, a model file, a zoo name or a spec:
:func:`convscope.viz.layers.prepare`), fits an image to it and runs the forward pass once per
image, keeping every node's output (:func:`convscope.viz.layers.activations`). The routes read
those values; the pictures made from them are cached per image, so a big model answers each
node's maps on demand without running again. A new image replaces all of it at once, or
nothing when the image is refused.

One lock serialises the computing: the kernels are not meant to be entered by two threads at
once, and a local explainer has one user.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ArgumentError, ConvscopeError, ImageError, SpecError, message
from ..nn import Module
from ..viz.layers import LayerRef, activations, find_layer, layer_refs
from ..viz.layers import load_model as viz_load_model
from ..viz.layers import prepare as viz_prepare

__all__ = ["State", "MAX_SIDE", "MAX_UPLOAD_BYTES", "default_picture"]

MAX_SIDE = 256  # an image whose size the model does not fix is shrunk to this longer side
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a POST /api/image body larger than this is refused
_PNG_CACHE = 600  # pictures kept per image (thumbnails, atlases, single maps)


def default_picture(shape: tuple[int, ...] | None) -> np.ndarray:
    """The demo's picture (shapes on a gradient) fitted to a model's input volume (C, H, W):
    grey for one channel, RGB for three, the RGB channels repeated for any other depth."""
    from ..demo import default_image

    c, h, w = shape if shape is not None and len(shape) == 3 else (3, 64, 64)
    rgb = default_image(max(h, w))[:, :h, :w]
    if c == 1:
        return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None].astype(np.float32)
    return np.ascontiguousarray(rgb[[k % 3 for k in range(c)]])


def safe_name(name: str | None) -> str:
    """A file name for an upload: its last part, letters, digits and ``._- `` only."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")[:80]
    return base or "upload"


class State:
    """The model being explained and the current image (see the module docstring).

    Parameters
    ----------
    model : a Module, a model file or run folder, a zoo name or a model spec (a spec or zoo
        name gets random weights from ``seed``)
    image : an image file or a (C, H, W) array; None: the demo's picture
    """

    def __init__(self, model: Any, image: Any = None, seed: int = 0,
                 max_side: int = MAX_SIDE, title: str | None = None) -> None:
        self.lock = threading.RLock()
        self.source = model
        self.seed = seed
        self.max_side = max_side
        self.title = title or (os.fspath(model) if isinstance(model, (str, os.PathLike))
                               else type(model).__name__)
        self.version = 0
        self.image_name = "the demo picture"
        self._pngs: OrderedDict[tuple, bytes] = OrderedDict()
        # A spec without its input volume ("conv(1, 5, padding=2)") is built for each image;
        # any other model is loaded once.
        self.rebuild = False
        built = model
        if not isinstance(model, Module):
            try:
                built, _ = viz_load_model(model, seed)
            except SpecError:
                if not isinstance(model, str):
                    raise
                self.rebuild = True  # (a broken spec fails again below, with its message)
        if image is None:
            shape = None if self.rebuild else getattr(built, "input_shape", None)
            image, name = default_picture(shape), "the demo picture"
        else:
            name = _shown_name(image)
        self._load(model if self.rebuild else built, image, name)

    # ------------------------------------------------------------------ the image
    def _load(self, model: Any, image: Any, name: str) -> None:
        """Prepare ``model`` with ``image``, run it, and only then replace the current state."""
        prep = viz_prepare(model, image, seed=self.seed, max_side=self.max_side)
        built = prep.model
        built.eval()  # an explainer shows inference: batch norm's running statistics
        from ..explain import explain

        explanation = explain(built, input_shape=prep.image.shape)
        refs = layer_refs(built, prep.image.shape)
        acts = activations(built, prep.image)
        self.model, self.image, self.note = built, prep.image, prep.note
        self.explanation, self.refs, self.acts = explanation, refs, acts
        self.image_name = name
        self.version += 1
        self._pngs.clear()

    def set_image(self, image: Any, name: str | None = None) -> None:
        """Make ``image`` (a file or a (C, H, W) array) the current image; every value is
        computed again. A refused image leaves the state as it was."""
        with self.lock:
            base = self.source if self.rebuild else self.model
            self._load(base, image, name or _shown_name(image))

    def set_image_bytes(self, data: bytes, name: str | None = None) -> None:
        """An uploaded file's bytes as the new image, read through the image limits
        (:func:`convscope.data.load_image`: the claimed size is checked before decoding).
        Error messages name the file as uploaded, not the temporary copy."""
        if not data:
            raise ImageError(message("POST /api/image", "the request body is empty",
                                     "send the image file itself as the body"))
        shown = safe_name(name)
        folder = tempfile.mkdtemp(prefix="convscope-upload-")
        try:
            path = os.path.join(folder, shown)
            with open(path, "wb") as f:
                f.write(data)
            try:
                self.set_image(path, shown)
            except ConvscopeError as exc:
                text = str(exc).replace(folder + os.sep, "")
                raise type(exc)(text) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ lookups
    def find(self, layer: Any, where: str = "layer") -> LayerRef:
        """Node ``layer`` (a number as explain prints it, or a module path)."""
        if layer is None or str(layer).strip() == "":
            raise ArgumentError(message(where, "the layer is missing", "pass layer=N (a node "
                                        "number) or layer=PATH (a module path)",
                                        f"the model has {len(self.refs)} nodes, 0 to "
                                        f"{len(self.refs) - 1}"))
        return find_layer(self.model, str(layer), self.image.shape, where=where, refs=self.refs)

    def values(self, name: str) -> np.ndarray:
        """The output of node (or source) ``name`` for the current image."""
        return np.asarray(self.acts.value(name))

    def cached_png(self, key: tuple, make: Callable[[], bytes]) -> bytes:
        """A picture for the current image, made once (at most ``_PNG_CACHE`` kept)."""
        key = (self.version, *key)
        with self.lock:
            if key in self._pngs:
                self._pngs.move_to_end(key)
                return self._pngs[key]
            data = make()
            self._pngs[key] = data
            while len(self._pngs) > _PNG_CACHE:
                self._pngs.popitem(last=False)
            return data

    @property
    def classes(self) -> list[str] | None:
        return list(getattr(self.model, "classes", None) or []) or None


def _shown_name(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.path.basename(os.fspath(image)) or os.fspath(image)
    return "an array"

