"""``convscope export MODEL OUT.onnx [--opset N]``: a saved model as an ONNX graph.

Any model convscope saves exports: a chain of layers, a zoo model, a graph model (residual
adds, concatenations); the ONNX file keeps the module paths as node names and the
``state_dict`` names as initializer names.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="write a saved model as an ONNX file (for ONNX Runtime, Netron ...)",
        description="Write a model saved by convscope (a .safetensors model file, or a run "
                    "folder holding model.safetensors; chains, zoo models and graph models "
                    "alike) as an ONNX graph with a dynamic batch size, in eval mode. The file "
                    "passes the ONNX checker; it needs the onnx package "
                    "(pip install 'convscope[onnx]').",
        epilog="examples:\n"
               "  convscope export runs/digits/ digits.onnx\n"
               "  convscope export model.safetensors model.onnx --opset 19")
    p.add_argument("model", metavar="MODEL", help="a model file or a run folder")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write (replaced safely)")
    p.add_argument("--opset", type=int, default=17, metavar="N",
                   help="ONNX opset, 13 or newer (default 17); circular padding is written as "
                        "Pad(mode='wrap') from 19, as Gather nodes below")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..interop import export_onnx
    from ..io import load_model as load

    model = load(args.model)
    path = export_onnx(model, args.out, opset=args.opset)
    count = sum(int(p.data.size) for p in model.parameters())
    what = getattr(model, "spec", None) or type(model).__name__
    print(f"wrote {path} (opset {args.opset}, {count} parameters): {what}")
    return 0
