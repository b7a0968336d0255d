"""``convscope animate IMAGE SPEC [--out slide.gif]``: the sliding-kernel animation."""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """\
examples:
  convscope animate photo.jpg "conv(1, 5, padding=2)" --out slide.gif
  convscope animate photo.jpg "conv(1, 3, stride=2, padding=1, padding_mode='reflect')"
  convscope animate photo.jpg "conv(1, 3, dilation=2)" --size 24 --frames 80
  convscope animate photo.jpg runs/shapes --layer 3 --channel 5     # a trained model

The image is shrunk to at most 64 pixels a side (--size to choose). A big map has thousands
of positions: the first third of the frames show the kernel step by step, the rest jump
every k-th position (the map still fills in every value), and the last frame shows the
whole map, which is the layer's own output."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "animate", help="a GIF of the kernel sliding over the image, the map filling in",
        description="Animate one kernel of a conv layer sliding over the (padded) input: "
                    "the window, the products summed at each position, the feature map "
                    "filling in value by value.", epilog=EPILOG)
    p.add_argument("image", metavar="IMAGE", help="a PNG, JPEG, BMP, GIF, TIFF or WebP file")
    p.add_argument("model", metavar="SPEC", nargs="?", default="conv(1, 5, padding=2)",
                   help='a conv spec such as "conv(1, 5, padding=2)" (default), a model spec, '
                        "a saved model file or a run folder")
    p.add_argument("--layer", metavar="N", help="which conv layer (default: the first)")
    p.add_argument("--channel", type=int, default=0, metavar="K",
                   help="which kernel (output channel) to animate (default 0)")
    p.add_argument("--frames", type=int, default=60, metavar="N",
                   help="at most N frames (default 60; about 15-30 kB a frame)")
    p.add_argument("--ms", type=int, default=140, help="milliseconds per frame (default 140)")
    p.add_argument("--size", type=int, metavar="N", help="resize the image to N x N first")
    p.add_argument("--grey", action="store_true", help="read the image as one grey channel")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights of a spec")
    p.add_argument("--out", default="slide.gif", metavar="GIF", help="default: slide.gif")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.animate import animate, save_gif
    from ..viz.layers import prepare

    got = prepare(args.model, args.image, size=args.size, seed=args.seed,
                  channels=1 if args.grey else None, max_side=64)
    if got.note:
        print(f"note: {got.note}")
    frames = animate(got.image, got.model, layer=args.layer, channel=args.channel,
                     max_frames=args.frames)
    path = save_gif(frames, args.out, ms=args.ms)
    print(f"{len(frames) - 1} positions shown of {frames[-1].map.size}; "
          f"{frames[-2].text.splitlines()[-1].split('(', 1)[-1].rstrip(')')}")
    print(f"wrote {path} ({len(frames)} frames, {frames[0].rgb.shape[1]}x"
          f"{frames[0].rgb.shape[0]} pixels, {path.stat().st_size / 1024:.0f} kB)")
    return 0
