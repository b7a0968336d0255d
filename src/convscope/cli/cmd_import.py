"""``convscope import SOURCE OUT.safetensors``: an ONNX model, or foreign weights plus a spec."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, message


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import", help="turn an ONNX model, or PyTorch/Keras weights, into a convscope model",
        description="Read an ONNX model (a chain of layers becomes a Sequential, any other "
                    "graph of operators convscope has, such as a ResNet or MobileNetV2 "
                    "exported by PyTorch, a graph model with the module paths of its node "
                    "names), or a weights file (.safetensors, .npz, or .pt/.pth when PyTorch is "
                    "installed) for the architecture given by --spec, and save it as a "
                    "convscope model file. Nothing in the source is ever executed.",
        epilog="examples:\n"
               "  convscope import model.onnx model.safetensors\n"
               '  convscope import weights.pt --spec "8x8x1 | conv(16, 3, padding=1) | relu | '
               'maxpool(2) | flatten | linear(10)" model.safetensors\n'
               '  convscope import keras.npz --spec "28x28x1 | conv(8, 3) | relu | flatten | '
               'linear(10)" --layout keras model.safetensors')
    p.add_argument("source", metavar="SOURCE",
                   help="model.onnx, or weights.safetensors|.npz|.pt|.pth (with --spec)")
    p.add_argument("out", metavar="OUT.safetensors", help="the convscope model file to write")
    p.add_argument("--spec", metavar="SPEC",
                   help='the architecture of a weights file, e.g. "64x64x3 | conv(8, 5) | relu"')
    p.add_argument("--layout", choices=("auto", "torch", "keras"), default="auto",
                   help="names and shapes of the weights: PyTorch's or Keras's (kernels HWIO, "
                        "Dense (in, out)); default: guessed from the names")
    p.set_defaults(func=run)


def _is_onnx(path: Path) -> bool:
    if path.suffix.lower() == ".onnx":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(3)
    except OSError:
        return False
    return head[:1] == b"\x08" and head[2:3] in (b"\x12", b"\x1a", b"\x3a")


def run(args: argparse.Namespace) -> int:
    from ..interop import load_onnx, load_weights
    from ..io import save
    from ..spec import parse

    source = Path(args.source)
    if _is_onnx(source):
        if args.spec:
            raise ArgumentError(message("import", "an ONNX file describes its own architecture",
                                        "leave out --spec", f"--spec {args.spec!r}"))
        model = load_onnx(source)
    else:
        if not args.spec:
            raise ArgumentError(message("import", "a weights file needs the architecture",
                                        'pass --spec "HxWxD | layer | ..." (the model the '
                                        "weights were trained with)", str(source)))
        model = parse(args.spec, seed=0)
        load_weights(model, source, layout=args.layout)
        model.eval()
    path = save(model, args.out)
    count = sum(int(p.data.size) for p in model.parameters())
    what = getattr(model, "spec", None)
    if what is None:
        graph = getattr(model, "graph", None)
        what = f"a graph of {len(graph.nodes)} nodes" if graph is not None else \
            f"a chain of {len(list(model.children()))} layers"
    print(f"wrote {path} ({count} parameters): {what}")
    return 0
