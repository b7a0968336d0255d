"""Named augmentations for the training recipe (``cs.fit(..., augment="flip,crop")`` and
``convscope train --augment flip,crop``), built from the transforms.

=========  ===========================================================================
name       what happens to each training image, every epoch anew
=========  ===========================================================================
flip       mirrored left-right with probability 1/2 (``RandomHorizontalFlip()``)
crop       zero-padded by 1/8 of its shorter side (at least 1 pixel) and cropped back
           to its size at a random place (``RandomCrop(size, padding=...)``, the
           CIFAR-10 recipe: 4 pixels for 32x32)
jitter     brightness, contrast and saturation by up to 20 % and hue by up to 0.02 of
           a turn, in a random order (``ColorJitter(0.2, 0.2, 0.2, 0.02)``)
=========  ===========================================================================

The random numbers come from the generator given to :func:`augmenter`; the recipe seeds
one per epoch from ``(seed, epoch)``, as it seeds the batch order, so that a resumed run
draws exactly what an uninterrupted one draws.

>>> import numpy as np
>>> names = parse_augment("flip,crop")
>>> names
('flip', 'crop')
>>> batch = np.zeros((4, 3, 16, 16), np.float32)
>>> augmenter(names, (3, 16, 16), np.random.default_rng(0))(batch).shape
(4, 3, 16, 16)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, message
from .transforms import ColorJitter, Compose, RandomCrop, RandomHorizontalFlip

__all__ = ["AUGMENTATIONS", "parse_augment", "augmenter"]

AUGMENTATIONS = ("flip", "crop", "jitter")


def parse_augment(augment: Any, where: str = "fit") -> tuple[str, ...]:
    """``None``, ``"flip,crop"`` or ``["flip", "crop"]`` -> the tuple of names, checked."""
    if augment is None:
        return ()
    if isinstance(augment, str):
        names = [n.strip().lower() for n in augment.split(",") if n.strip()]
    elif isinstance(augment, Sequence) and all(isinstance(n, str) for n in augment):
        names = [n.strip().lower() for n in augment]
    else:
        raise ArgumentTypeError(message(where, "augment must be names such as 'flip,crop'",
                                        "pass augment='flip,crop' or augment=['flip', 'crop']",
                                        f"augment={augment!r:.60}"))
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ArgumentError(message(where, f"unknown augmentation {unknown[0]!r}",
                                    "use any of " + ", ".join(AUGMENTATIONS) + ", e.g. flip,crop",
                                    f"augment={augment!r}"))
    return tuple(dict.fromkeys(names))  # in the given order, each once


def augmenter(names: Sequence[str], image_shape: Sequence[int],
              generator: np.random.Generator) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function that augments a batch (N, C, H, W) image by image, or None for no names.

    The transforms are applied in the order of ``names``, drawing from ``generator``.
    """
    if not names:
        return None
    _, h, w = (int(v) for v in image_shape)
    steps: list[Any] = []
    for name in names:
        if name == "flip":
            steps.append(RandomHorizontalFlip(0.5, generator=generator))
        elif name == "crop":
            steps.append(RandomCrop((h, w), padding=max(1, round(min(h, w) / 8)),
                                    generator=generator))
        elif name == "jitter":
            steps.append(ColorJitter(0.2, 0.2, 0.2, 0.02, generator=generator))
    pipeline = Compose(steps)

    def apply(batch: np.ndarray) -> np.ndarray:
        out = np.empty(batch.shape, np.float32)
        for i, image in enumerate(batch):
            out[i] = pipeline(image)
        return out

    return apply
