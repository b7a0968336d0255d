"""``convscope demo [--out demo-output] [--image PATH]``."""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """\
examples:
  convscope demo                          # built-in picture, pictures in demo-output/
  convscope demo --out /tmp/slides
  convscope demo --image cat.jpg          # your picture, resized to 64x64"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="the convolution slides, live, with pictures",
        description="The slides, live: a 64x64x3 input, a first layer of 8 kernels of 5x5x3 "
                    "(edges, blur, colour detectors) giving 64x64x8, a second layer of 16 "
                    "kernels of 5x5x8 giving 64x64x16. Prints the explanation with the real "
                    "numbers (and catches the deck's padding slip), writes the input, the "
                    "kernels and both layers' feature maps as PNG pictures.",
        epilog=EPILOG)
    p.add_argument("--out", default="demo-output", metavar="FOLDER",
                   help="where the pictures go (default: demo-output)")
    p.add_argument("--image", metavar="PATH",
                   help="use your own picture (resized to 64x64) instead of the built-in one")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run as demo

    image = None
    if args.image:
        from ..data import load_image

        image = load_image(args.image, size=64, channels=3)
    demo(args.out, image=image)
    return 0
