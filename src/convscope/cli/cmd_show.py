"""``convscope show MODEL IMAGE --layer N [--out maps.png]``: every feature map of a layer."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import LAYER_HELP, add_model_image, prepare, write_png

EPILOG = """\
examples:
  convscope show runs/shapes photo.jpg --layer 2 --out maps.png
  convscope show "64x64x3 | conv(8, 5, padding=2) | relu" photo.jpg --layer 0

Colours: blue < 0 < red, white = 0; each map on its own symmetric scale (its largest |value|
is written under it), or one scale for all with --shared-scale."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "show", help="every feature map of one layer, as one picture grid",
        description="Run IMAGE through MODEL and draw every feature map (depth slice) of the "
                    "output volume of one layer as a labelled grid.", epilog=EPILOG)
    add_model_image(p)
    p.add_argument("--layer", required=True, metavar="N", help=LAYER_HELP)
    p.add_argument("--out", default="maps.png", metavar="PNG", help="default: maps.png")
    p.add_argument("--shared-scale", action="store_true",
                   help="one colour scale for all maps (default: one per map)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..spec import format_volume
    from ..viz.layers import find_layer
    from ..viz.pictures import feature_map_grid

    got = prepare(args)
    ref = find_layer(got.model, args.layer, got.image.shape)
    print(f"layer {ref.index} ({ref.operation}): input "
          f"{format_volume(ref.input_shape)} -> output {format_volume(ref.output_shape)}")
    rgb = feature_map_grid(got.model, got.image, args.layer, shared_scale=args.shared_scale)
    write_png(args.out, rgb, f"{ref.output_shape[0]} feature maps, blue < 0 < red")
    return 0
