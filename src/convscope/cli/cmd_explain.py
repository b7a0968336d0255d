"""``convscope explain SPEC [--input HxWxD] [--expect HxWxD]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import FileFormatError, message
from ..explain import explain
from ..spec import format_volume

EPILOG = """\
examples:
  convscope explain "64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)"
  convscope explain "conv(8, 5, padding=2) | relu | maxpool(2)" --input 128x128x3
  convscope explain "64x64x3 | conv(8, 5, padding=1)" --expect 64x64x8   # exit 1: 62x62x8
  convscope explain runs/digits/model.safetensors                         # a saved model
  convscope explain resnet18                        # a zoo model: resnet18, resnet34,
                                                    # mobilenet_v2, unet, lenet5, tiny_vgg
  convscope explain "32x32x3 | conv(16, 3, padding=1) | relu | residual(conv(16, 3, \
padding=1) | batchnorm | relu | conv(16, 3, padding=1) | batchnorm) | relu"

layers: conv(out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
        bias=true, padding_mode='zeros'), relu, maxpool(k, stride=none, padding=0),
        avgpool(k, ...), flatten, linear(out_features, bias=true), batchnorm, dropout(p=0.5),
        convt(out_channels, kernel_size, stride=1, padding=0, output_padding=0),
        upsample(scale_factor=2, mode='nearest'), globalavgpool, avgpool_to(size),
        relu6, leakyrelu(0.01), sigmoid, tanh, gelu, silu, hardswish, hardsigmoid, identity
branches: residual(<chain>) adds the input to the chain's output; residual(<chain>;
        <shortcut>) adds the shortcut's output instead; concat(<chain>; <chain>; ...) joins
        the branches' outputs along the depth (identity is a branch that keeps the input)

exit codes: 0 fine, 1 --expect is wrong, 2 the spec or the command line has a mistake."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help="explain a model layer by layer: volumes, kernels, sizes, cost",
        description="Explain a model in the slides' words, from shapes alone (nothing is "
                    "computed on data): one row per layer with its input and output volume "
                    "(H x W x D), its kernels, parameters, multiply-adds and receptive field, "
                    "then how the convolutions work with this model's numbers.",
        epilog=EPILOG)
    p.add_argument("spec", metavar="MODEL",
                   help='a model spec, e.g. "64x64x3 | conv(8, 5, padding=2) | relu", a '
                        "saved model file / run folder, or a zoo name (resnet18, ...)")
    p.add_argument("--input", metavar="HxWxD",
                   help="the input volume, e.g. 64x64x3 (replaces the one written in SPEC)")
    p.add_argument("--expect", metavar="HxWxD",
                   help="the output volume you expect: when it is wrong, say the real one and "
                        "which padding would give yours, and exit 1")
    p.set_defaults(func=run)


def _looks_like_file(text: str) -> bool:
    return bool(text.strip()) and (Path(text).exists() or text.endswith(".safetensors"))


def load_model(path: str) -> Any:
    """A saved model, through :func:`convscope.io.load` (imported only when needed)."""
    try:
        from .. import io
    except ImportError as exc:
        raise FileFormatError(message(
            "explain", f"{path} looks like a saved model, but this installation cannot load "
            f"models (convscope.io is unavailable: {exc})",
            "explain a spec string instead")) from None
    return io.load_model(path)


def run(args: argparse.Namespace) -> int:
    from .. import models

    if models.is_zoo_name(args.spec) and not Path(args.spec).exists():
        model: Any = models.get(args.spec, seed=0)
    else:
        model = load_model(args.spec) if _looks_like_file(args.spec) else args.spec
    result = explain(model, input_shape=args.input)
    print(result.render(include_error=False))
    if result.error:
        print(f"convscope: error: {result.error}", file=sys.stderr)
        return 2
    if args.expect:
        problem = result.check(args.expect)
        if problem:
            print(f"convscope: expect: {problem}", file=sys.stderr)
            return 1
        print(f"\n--expect {args.expect}: right, the output volume is "
              f"{format_volume(result.output_shape)}.")
    return 0
