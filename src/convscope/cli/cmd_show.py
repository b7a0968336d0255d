"""``convscope show MODEL IMAGE --layer N [--out maps.png]``: every feature map of a layer."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import LAYER_HELP, add_model_image, prepare, write_png

EPILOG = """\
examples:
  convscope show runs/shapes photo.jpg --layer 2 --out maps.png
  convscope show "64x64x3 | conv(8, 5, padding=2) | relu" photo.jpg --layer 0
  convscope show resnet18 photo.jpg --layer layer1.0.add      # a residual addition

Colours: blue < 0 < red, white = 0; each map on its own symmetric scale (its largest |value|
is written under it), or one scale for all with --shared-scale."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "show", help="every feature map of one layer, as one picture grid",
        description="Run IMAGE through MODEL and draw every feature map (depth slice) of the "
                    "output volume of one layer as a labelled grid.", epilog=EPILOG)
    add_model_image(p)
    p.add_argument("--layer", required=True, metavar="N|PATH", help=LAYER_HELP)
    p.add_argument("--out", default="maps.png", metavar="PNG", help="default: maps.png")
    p.add_argument("--max-maps", type=int, metavar="N",
                   help="draw only the first N maps (default: all)")
    p.add_argument("--shared-scale", action="store_true",
                   help="one colour scale for all maps (default: one per map)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ArgumentError, message
    from ..spec import format_volume
    from ..viz.layers import find_layer
    from ..viz.pictures import feature_map_grid, need_maps

    if args.max_maps is not None and args.max_maps < 1:
        raise ArgumentError(message("--max-maps", "draw at least one map", "pass --max-maps 16",
                                    f"--max-maps {args.max_maps}"))
    got = prepare(args)
    ref = find_layer(got.model, args.layer, got.image.shape)
    need_maps(ref)  # before anything is printed about it
    if ref.chain:
        print(f"layer {ref.index} ({ref.operation}): input "
              f"{format_volume(ref.input_shape)} -> output {format_volume(ref.output_shape)}")
    else:
        ins = " + ".join(format_volume(v) for v in ref.input_shapes)
        print(f"{ref.name} (node {ref.index}, {ref.operation}): input{'s' * (len(ref.sources) > 1)}"
              f" {ins}{ref.origin} -> output {format_volume(ref.output_shape)}")
    rgb = feature_map_grid(got.model, got.image, ref.index, shared_scale=args.shared_scale,
                           max_maps=args.max_maps)
    n = ref.output_shape[0]
    shown = n if args.max_maps is None else min(n, args.max_maps)
    write_png(args.out, rgb, f"{shown if shown == n else f'{shown} of {n}'} feature maps, "
                             "blue < 0 < red")
    return 0
