"""``convscope receptive MODEL IMAGE --layer N --at C,ROW,COL [--out rf.png]``."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import LAYER_HELP, add_model_image, prepare, write_png

EPILOG = """\
examples:
  convscope receptive runs/shapes photo.jpg --layer 4 --at 0,5,5 --out rf.png
  convscope receptive "64x64x3 | conv(8, 3) | maxpool(2) | conv(8, 3, dilation=2)" photo.jpg \\
      --layer 2 --at 0,10,10

  convscope receptive resnet18 photo.jpg --layer layer2.0.add --at 0,10,10

The field is exact: worked out node by node through the model's graph (both branches of a
residual add) from the kernels, strides, dilations and padding (reflect padding reads
mirrored pixels; dilation leaves holes); --method gradient finds it by autograd instead,
and the tests hold the two equal. The picture also shows how much each pixel matters for
this image (the gradient of the real model)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "receptive", help="which input pixels one output value depends on",
        description="The receptive field of one output value: the exact input pixels it "
                    "depends on, drawn on the image, with its size.", epilog=EPILOG)
    add_model_image(p)
    p.add_argument("--layer", required=True, metavar="N|PATH", help=LAYER_HELP)
    p.add_argument("--at", required=True, metavar="C,ROW,COL",
                   help="the output position: channel,row,column (0-based)")
    p.add_argument("--method", choices=["analytic", "gradient"], default="analytic",
                   help="index arithmetic through the graph (default) or autograd through a "
                        "probe run of it")
    p.add_argument("--out", metavar="PNG", help="draw the field on the image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.receptive import receptive_field

    got = prepare(args, announce=False)
    rf = receptive_field(got.model, got.image, args.layer, args.at, method=args.method,
                         gradient=bool(args.out))
    print(rf)
    if args.out:
        write_png(args.out, rf.picture(), "the field bright, the rest dimmed; its gradient")
    return 0
