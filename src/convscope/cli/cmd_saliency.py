"""``convscope saliency MODEL IMAGE [--target CLASS] [--out sal.png]``."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import LAYER_HELP, add_model_image, prepare, write_png

EPILOG = """\
examples:
  convscope saliency runs/shapes photo.jpg --out sal.png
  convscope saliency runs/shapes photo.jpg --target star --out why-star.png
  convscope saliency resnet18 photo.jpg --cam-layer layer3.1.relu#2

Gradient x input: red pixels push the class score up, blue ones down. Grad-CAM: where in
the image the last conv layer's evidence for the class is (hot colours)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "saliency", help="which pixels a classifier's decision rests on (gradient x input, "
                         "Grad-CAM)",
        description="For a classifier: the prediction, and two maps of the evidence for a "
                    "class, drawn over the image.", epilog=EPILOG)
    add_model_image(p)
    p.add_argument("--target", metavar="CLASS",
                   help="the class to explain, by name or index (default: the predicted one)")
    p.add_argument("--cam-layer", metavar="N|PATH",
                   help="the Grad-CAM layer: " + LAYER_HELP + " (default: the last conv, "
                        "after its batch norm, ReLU and residual add)")
    p.add_argument("--out", default="saliency.png", metavar="PNG",
                   help="default: saliency.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.saliency import saliency_maps

    got = prepare(args, announce=False)
    s = saliency_maps(got.model, got.image, args.target, args.cam_layer)
    print(s)
    write_png(args.out, s.picture(), "the image, gradient x input, Grad-CAM")
    return 0
