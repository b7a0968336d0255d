"""What the picture commands (show, kernels, animate, why, receptive, saliency, report)
share: the MODEL and IMAGE arguments, loading them together, writing a picture."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

MODEL_HELP = ('a saved model file, a run folder, a zoo model (resnet18, resnet34, mobilenet_v2, '
              'unet, lenet5, tiny_vgg) or a model spec such as "64x64x3 | conv(8, 5, '
              'padding=2) | relu" (quote it; a zoo model or a spec gets random weights from '
              '--seed)')
LAYER_HELP = ("a node number or a module path from `convscope explain MODEL` (e.g. 3 or "
              "layer2.0.conv1)")
MAX_SIDE = 256  # an image file larger than this is shrunk when the model does not fix its size


def add_model_image(p: argparse.ArgumentParser, image: bool = True) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    if image:
        p.add_argument("image", metavar="IMAGE", help="a PNG, JPEG, BMP, GIF, TIFF or WebP file")
        p.add_argument("--size", type=int, metavar="N",
                       help=f"resize the image to N x N (default: the model's input size; for "
                            f"a spec without one, the image's own size, shrunk to at most "
                            f"{MAX_SIDE} pixels)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random weights of a zoo model or a spec")


def prepare(args: argparse.Namespace, announce: bool = True) -> Any:
    """The model and the image, fitted to each other; prints the untrained note."""
    from ..viz.layers import prepare as prep

    got = prep(args.model, args.image, size=args.size, seed=args.seed, max_side=MAX_SIDE)
    if got.note and announce:
        print(f"note: {got.note}")
    return got


def write_png(path: str, rgb: Any, what: str) -> Path:
    from ..viz.image import save_png

    out = save_png(path, rgb)
    print(f"wrote {out} ({rgb.shape[1]}x{rgb.shape[0]} pixels): {what}")
    return out
