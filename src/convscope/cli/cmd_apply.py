"""``convscope apply IMAGE --kernels sobel-x,... [--spec ...] [--padding ...] [--out ...]``."""

from __future__ import annotations

import argparse
from typing import Any

from .. import filters

DEFAULT_KERNELS = "sobel-x,sobel-y,laplacian,gaussian"


def _epilog() -> str:
    known = "\n".join(f"  {name:<10} {filters.describe(name)}" for name in filters.names())
    return f"""\
examples:
  convscope apply photo.jpg                       # the default kernels, maps in maps/
  convscope apply photo.jpg --kernels sobel-x,red,blue --out maps/
  convscope apply photo.jpg --kernels sobel-x,sobel-y --spec "relu | maxpool(2)"
  convscope apply photo.jpg --spec "conv(8, 3) | relu" --size 128   # random kernels

kernels (each as deep as the image; grey-level filters act on the mean of the channels):
{known}

Colours: blue negative, white zero, red positive, each map scaled to its own largest value."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "apply", help="slide named kernels (sobel, blur...) over an image; save the maps",
        description="Slide a bank of classic kernels over a real image with one convolution "
                    "(optionally followed by more layers, --spec), write every feature map as "
                    "a PNG and one labelled grid, and explain the operation with the real "
                    "sizes.",
        epilog=_epilog())
    p.add_argument("image", metavar="IMAGE", help="a PNG, JPEG, BMP, GIF, TIFF or WebP file")
    p.add_argument("--kernels", metavar="LIST",
                   help=f"comma-separated kernel names (default without --spec: "
                        f"{DEFAULT_KERNELS})")
    p.add_argument("--spec", metavar="SPEC",
                   help='layers after the kernels, e.g. "relu | maxpool(2)"; without --kernels '
                        "the whole model (weights from --seed)")
    p.add_argument("--padding", default="same", metavar="same|valid|N",
                   help="padding of the kernels: same (keep the size, default), valid (none) "
                        "or a number")
    p.add_argument("--size", type=int, metavar="N",
                   help="resize the image to N x N first (default: keep its size)")
    p.add_argument("--grey", action="store_true",
                   help="read the image as one grey channel (depth 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights in --spec")
    p.add_argument("--out", default="maps", metavar="FOLDER",
                   help="where the PNGs go (default: maps)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import load_image
    from ..demo import feature_maps, write_maps
    from ..explain import explain
    from ..spec import format_volume

    image = load_image(args.image, size=args.size, channels=1 if args.grey else 3)
    kernels = args.kernels if args.kernels is not None else (
        None if args.spec else DEFAULT_KERNELS)
    model, maps, labels = feature_maps(image, kernels, args.spec, args.padding, args.seed)
    print(f"Image {args.image}: {format_volume(image.shape)} (height x width x depth)")
    if kernels:
        print("Kernels:")
        for name in labels if maps.shape[0] == len(labels) and not labels[0].startswith(
                "map ") else [n.strip() for n in kernels.split(",")]:
            print(f"  {name:<10} {filters.describe(name)}")
    print()
    print(explain(model))
    print()
    paths = write_maps(maps, labels, args.out,
                       title=f"{args.image}: {len(maps)} feature maps, "
                             f"{format_volume(maps.shape)}")
    shown = paths[:-1] if len(paths) <= 33 else paths[:8]
    print(f"Feature maps ({len(maps)}, diverging colours: blue < 0 < red, one pixel per value):")
    for path in shown:
        print(f"  {path}")
    if len(shown) < len(paths) - 1:
        print(f"  ... and {len(paths) - 1 - len(shown)} more in {args.out}")
    print(f"Grid: {paths[-1]}")
    return 0
