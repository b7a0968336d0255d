"""``convscope predict MODEL IMAGE...``: class and probability per image."""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """\
examples:
  convscope predict runs/digits some_digit.png
  convscope predict runs/mine/model.safetensors photo1.jpg photo2.png --top 3"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("predict", help="classify images with a trained model",
                              description="Print the most likely classes of each image with "
                                          "their probabilities.", epilog=EPILOG)
    p.add_argument("model", metavar="MODEL", help="a model file or a run folder")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--top", type=int, default=1, help="how many classes to show per image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data import load_image
    from ..io import load_model as load
    from ..train import predict_proba

    model = load(args.model)
    c, h, w = model.input_shape
    batch = np.stack([load_image(path, size=(h, w), channels=c) for path in args.images])
    probs = predict_proba(model, batch)
    names = model.classes or [str(i) for i in range(probs.shape[1])]
    width = max(len(p) for p in args.images)
    for path, row in zip(args.images, probs, strict=True):
        order = np.argsort(-row, kind="stable")[: max(1, args.top)]
        ranked = ", ".join(f"{names[i]} {row[i] * 100:.1f}%" for i in order)
        print(f"{path:<{width}}  {ranked}")
    return 0
