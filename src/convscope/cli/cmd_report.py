"""``convscope report MODEL IMAGE [--out report.html]``: everything, one offline page."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import add_model_image, prepare

EPILOG = """\
examples:
  convscope report runs/shapes photo.jpg --out report.html
  convscope report "64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2)" photo.jpg
  convscope report resnet18 photo.jpg --size 64      # a big model: thumbnails per node

One HTML file with every picture embedded (no other files, no network): the explanation
table, each layer's feature maps and kernels, the sliding-kernel animation, a why
walk-through, a receptive field, saliency and Grad-CAM for a classifier, and the training
curves of a run folder."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="one self-contained HTML page with all the pictures, every layer",
        description="Write one self-contained HTML page that shows MODEL at work on IMAGE.",
        epilog=EPILOG)
    add_model_image(p)
    p.add_argument("--frames", type=int, default=40, metavar="N",
                   help="frames of the embedded animation (default 40)")
    p.add_argument("--out", default="report.html", metavar="HTML",
                   help="default: report.html")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..viz.report import report

    got = prepare(args)
    page = report(got.model, got.image, args.out, max_frames=args.frames,
                  title=str(args.model))
    print(f"wrote {Path(args.out)} ({len(page) / 1024:.0f} kB, self-contained: open it in a "
          "browser, no network needed)")
    return 0
