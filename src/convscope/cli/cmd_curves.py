"""``convscope curves RUN_FOLDER [--out curves.png]``: loss and accuracy per epoch."""

from __future__ import annotations

import argparse
from typing import Any

from .viz_common import write_png

EPILOG = """\
examples:
  convscope curves runs/shapes                    # writes curves.png
  convscope curves runs/shapes/metrics.json --out /tmp/curves.png"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "curves", help="training curves (loss, accuracy; train vs validation) of a run",
        description="Draw the loss and the accuracy per epoch, training and validation, from "
                    "a run folder's metrics.json.", epilog=EPILOG)
    p.add_argument("run", metavar="RUN_FOLDER", help="a run folder, or its metrics.json")
    p.add_argument("--out", default="curves.png", metavar="PNG", help="default: curves.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.curves import read_metrics, training_curves

    rows = read_metrics(args.run)
    rgb = training_curves(rows)
    for r in rows:
        print(f"epoch {r.get('epoch')}: " + ", ".join(
            f"{k} {float(r[k]):.4f}" for k in ("train_loss", "train_accuracy", "val_loss",
                                              "val_accuracy") if r.get(k) is not None))
    write_png(args.out, rgb, f"{len(rows)} epochs, train (blue) vs validation (red)")
    return 0
