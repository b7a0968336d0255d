"""``convscope features MODEL PATHS... --layer NODE --out FILE``: one row of a layer's output
per image (embeddings for search, clustering, a linear probe), streamed in path order.

The exit status is ``predict``'s: 0, 3 when some rows are errors, 2 for a mistake.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cmd_predict import PATHS_HELP, add_job_options, check_options, run_job_command

EPILOG = """\
examples:
  convscope features resnet18.safetensors photos/ --layer avgpool --out emb.parquet
  convscope features runs/mine photos/ --layer 9 --out emb.csv     # node 9 of `explain`
  convscope features resnet18 photos/ --layer layer4 --input 64x64x3 --out emb.parquet
  convscope features MODEL photos/ --layer avgpool --out emb.parquet --workers 2

"""
EPILOG += ("MODEL may be a zoo name (resnet18, mobilenet_v2, tiny_vgg, ...: seeded random "
           "weights). The columns are path, f0, f1, ... (the layer's output flattened, channels "
           "first), error.\n\n")
EPILOG += ("exit status: 0 all rows good; 3 completed, some rows are errors (their error column "
           "says why); 2 a mistake found before any work started.")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("features", help="one layer's output per image, to a file",
                              description="Run the model on every image up to one layer and "
                                          "write that layer's output, flattened, as one row "
                                          "per image (CSV or Parquet), in path order.",
                              epilog=EPILOG)
    p.add_argument("model", metavar="MODEL",
                   help="a model file, a run folder or a zoo name (e.g. resnet18)")
    p.add_argument("paths", metavar="PATHS", nargs="+", help=PATHS_HELP)
    p.add_argument("--layer", required=True, metavar="NODE",
                   help="a node number or module path as `convscope explain MODEL` shows "
                        "them (avgpool, layer4, 9)")
    add_job_options(p, out_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..batch import PathSource, Runner

    check_options(args, "features")
    runner = Runner(args.model, "features", layer=args.layer, input_shape=args.input,
                    where="features")
    return run_job_command(args, runner, PathSource(args.paths, "features"))
