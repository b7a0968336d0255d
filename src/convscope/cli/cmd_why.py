"""``convscope why MODEL IMAGE --layer N --at C,ROW,COL [--out why.png]``."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import LAYER_HELP, add_model_image, prepare, write_png

EPILOG = """\
examples:
  convscope why runs/shapes photo.jpg --layer 0 --at 3,17,41
  convscope why "64x64x3 | conv(8, 5, padding=2)" photo.jpg --layer 0 --at 0,0,0 --out why.png
  convscope why runs/shapes photo.jpg --layer 6 --at 2          # a linear layer: output 2
  convscope why resnet18 photo.jpg --layer layer1.0.conv2 --at 3,20,17   # inside a block

For a conv: the patch under the kernel (padding marked *), the kernel, their products, the
sum per input channel, the bias and the value, checked against the forward pass. For a max
pool: which input won; average pool: the mean; ReLU: max(x, 0) of which input. A depthwise
conv reads one input channel; a transposed conv: which input values land on this output;
an add: its two operands; a concatenation: which input and channel the value comes from."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "why", help="why one output value is what it is: the dot product, taken apart",
        description="Take one output value of one layer apart, as the slides do: the kernel "
                    "times the patch under it, summed, plus the bias.", epilog=EPILOG)
    add_model_image(p)
    p.add_argument("--layer", required=True, metavar="N|PATH", help=LAYER_HELP)
    p.add_argument("--at", required=True, metavar="C,ROW,COL",
                   help="the output position: channel,row,column (0-based), or one index for "
                        "a flat output")
    p.add_argument("--out", metavar="PNG", help="also draw the walk-through as a picture")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.why import why

    got = prepare(args, announce=False)  # the walk-through says it itself
    w = why(got.model, got.image, args.layer, args.at)
    print(w)
    if args.out:
        write_png(args.out, w.picture(), "the walk-through")
    return 0
