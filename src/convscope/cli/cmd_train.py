"""``convscope train --data DATA --model SPEC --out RUN [--epochs N] [--resume]``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
examples:
  convscope train --data digits --epochs 15 --seed 0 --out runs/digits \\
      --model "8x8x1 | conv(16, 3, padding=1) | relu | maxpool(2) | conv(32, 3, padding=1) \\
               | relu | maxpool(2) | flatten | linear(10)"
  convscope train --data shapes --epochs 20 --out runs/shapes \\
      --model "64x64x3 | conv(10, 3) | relu | conv(10, 3) | relu | maxpool(2) \\
               | conv(10, 3) | relu | conv(10, 3) | relu | maxpool(2) | flatten | linear(10)"
  convscope train --data path/to/folder --model "..." --out runs/mine --resume
  convscope train --data shapes --model "..." --out runs/aug --augment flip,crop

DATA is 'digits' (8x8x1, needs scikit-learn), 'shapes' (generated 64x64x3, 10 classes) or a \
folder with one subfolder of images per class. Images are resized to the model's input volume. \
The data is split 80/10/10 into train/validation/test, fixed by --seed.

The run folder gets model.safetensors, checkpoint.safetensors (after every epoch), \
metrics.json (per epoch, and test_accuracy) and curves.png. Training is deterministic for a \
given seed and thread count, with or without an interruption and --resume."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a CNN on built-in data or a folder of images",
                              description="Train a classifier with cross-entropy and Adam, "
                                          "with a progress bar and a validation pass per epoch.",
                              epilog=EPILOG)
    p.add_argument("--data", required=True, help="digits, shapes, or a folder of class folders")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="a model spec starting with its input volume, e.g. '64x64x3 | "
                        "conv(...)', or a zoo name: resnet18, resnet34, mobilenet_v2, lenet5, "
                        "tiny_vgg (fresh weights; one output per class of the data)")
    p.add_argument("--input", metavar="HxWxD", default=None,
                   help="the input volume images are resized to (default: the spec's, or the "
                        "zoo model's: 224x224x3 for resnet18)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to write")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3,
                   help="Adam learning rate after a one-epoch linear warm-up (default 2e-3)")
    p.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN/checkpoint.safetensors (the last complete epoch)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--augment", metavar="LIST", default=None,
                   help="random changes to the training images, new each epoch: flip, crop, "
                        "jitter, comma-separated (e.g. --augment flip,crop)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import data as data_mod
    from .. import models
    from ..spec import parse
    from ..train import fit

    if models.is_zoo_name(args.model):
        model, ds = _zoo_model(args, data_mod)
        c, h, w = model.input_shape
    else:
        model = parse(args.model, seed=args.seed, input_shape=args.input)
        c, h, w = model.input_shape
        ds = data_mod.load_dataset(args.data, size=(h, w), channels=c, seed=args.seed)
    if ds.images.shape[1:] != (c, h, w):
        from ..errors import DataError, message
        raise DataError(message("train", f"the data is {ds.images.shape[2]}x{ds.images.shape[3]}"
                                f"x{ds.images.shape[1]} but the model expects {h}x{w}x{c}",
                                f"start the spec with {ds.images.shape[2]}x{ds.images.shape[3]}"
                                f"x{ds.images.shape[1]}", args.model))
    print(f"training on {args.data}: {len(ds)} images, {len(ds.classes)} classes "
          f"({', '.join(ds.classes[:10])}{', ...' if len(ds.classes) > 10 else ''})", flush=True)
    history = fit(model, ds, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  optimizer=args.optimizer, seed=args.seed, out=args.out, resume=args.resume,
                  progress=None if args.quiet else sys.stderr, augment=args.augment)
    acc = history.test_accuracy
    print(f"test accuracy {acc * 100:.1f}% on the held-out split" if acc is not None else
          "no test split (too few images)")
    print(f"wrote {args.out}/model.safetensors, metrics.json, curves.png "
          f"({history.seconds:.1f}s)")
    return 0


def _zoo_model(args: argparse.Namespace, data_mod: Any) -> tuple[Any, Any]:
    """A zoo model with one output per class of the data, at the requested input volume."""
    from .. import models
    from ..errors import ArgumentError, message
    from ..spec import as_volume

    name = models._key(args.model)
    if name == "unet":
        raise ArgumentError(message("train", "unet is a segmentation model (one map per "
                                    "class), and `convscope train` trains classifiers",
                                    "train it in Python with a per-pixel loss, or pick "
                                    "resnet18, mobilenet_v2, lenet5 or tiny_vgg",
                                    f"--model {args.model}"))
    default = models.get(name, seed=0).input_shape
    c, h, w = as_volume(args.input, "--input") if args.input else default
    ds = data_mod.load_dataset(args.data, size=(h, w), channels=c, seed=args.seed)
    kwargs: dict[str, Any] = {"num_classes": len(ds.classes), "seed": args.seed}
    if name in ("lenet5", "tiny_vgg"):
        kwargs["input_shape"] = (c, h, w)
    else:
        kwargs["in_channels"] = c
    model = models.get(name, **kwargs)
    model.input_shape = (c, h, w)
    return model, ds
