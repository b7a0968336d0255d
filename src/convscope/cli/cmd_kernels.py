"""``convscope kernels MODEL [--layer N] [--out kernels.png]``: the kernels as pictures."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import LAYER_HELP, add_model_image, write_png

EPILOG = """\
examples:
  convscope kernels runs/shapes --layer 0 --out kernels.png
  convscope kernels "64x64x3 | conv(8, 5, padding=2)"        # random kernels
  convscope kernels mobilenet_v2 --layer features.2.conv.1.0  # depthwise: one per channel
  convscope kernels unet --layer up1.up                       # a transposed conv

One row per kernel, one tile per input channel (its depth slices), plus a colour view for
kernels of depth 3; a depthwise conv's kernels (depth 1) side by side, one per channel.
Blue < 0 < red, white = 0; the tiles of one kernel share its scale. At most 64 kernels
(256 depthwise) and 16 slices per kernel are drawn (the title says what was left out)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "kernels", help="the kernels of a conv layer as pictures",
        description="Draw the kernels of one conv layer: each kernel is as deep as the layer's "
                    "input, so it is drawn as one tile per input channel.", epilog=EPILOG)
    add_model_image(p, image=False)
    p.add_argument("--layer", metavar="N|PATH", help=LAYER_HELP + " (default: the first conv)")
    p.add_argument("--input", metavar="HxWxD",
                   help="the input volume, for a model that does not say it")
    p.add_argument("--out", default="kernels.png", metavar="PNG", help="default: kernels.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..spec import parse_volume
    from ..viz.layers import load_model
    from ..viz.pictures import kernel_grid

    model, note = load_model(args.model, args.seed)
    if note:
        print(f"note: {note}")
    shape = parse_volume(args.input) if args.input else None
    rgb = kernel_grid(model, args.layer, input_shape=shape)
    write_png(args.out, rgb, "each kernel as one tile per input channel")
    return 0
