"""``convscope predict MODEL PATHS...``: class and probability per image, for a few images or
millions (streamed to a CSV or Parquet file, on one machine or a Dask cluster).

Exit status: 0 when every image gave a row of results; 3 when the job completed but some
rows are errors (an image that cannot be read: its row says why); 2 for a mistake found
before any work (a missing folder, an empty one, a model that does not fit, an unreachable
scheduler). With a few image files and no ``--out``, a bad image is such a mistake (exit 2),
as it always was.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
examples:
  convscope predict runs/digits some_digit.png
  convscope predict runs/mine/model.safetensors photo1.jpg photo2.png --top 3
  convscope predict runs/mine photos/ --out preds.csv          # a folder, recursively
  convscope predict runs/mine 'photos/**/*.jpg' --out preds.parquet --top 3
  convscope predict runs/mine list.txt --out preds.csv --workers 2     # a local Dask cluster
  convscope predict runs/mine photos/ --out preds.csv --scheduler tcp://host:8786
  convscope predict runs/mine photos/ --out preds.csv --resume  # after an interruption

"""
EPILOG += ("exit status: 0 all rows good; 3 completed, some rows are errors (their error column "
           "says why); 2 a mistake found before any work started.")

PATHS_HELP = ("images: a folder (searched recursively), a glob pattern (quote it), a .txt file "
              "listing paths (relative to its folder), or image files")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("predict", help="classify images with a trained model",
                              description="The most likely classes of each image with their "
                                          "probabilities: printed, or one row per image "
                                          "written to a CSV or Parquet file in path order.",
                              epilog=EPILOG)
    p.add_argument("model", metavar="MODEL", help="a model file or a run folder")
    p.add_argument("paths", metavar="PATHS", nargs="+", help=PATHS_HELP)
    p.add_argument("--top", type=int, default=1, help="how many classes per image (default 1)")
    add_job_options(p)
    p.set_defaults(func=run)


def add_job_options(p: argparse.ArgumentParser, out_required: bool = False) -> None:
    """The options ``predict`` and ``features`` share."""
    p.add_argument("--out", metavar="FILE", required=out_required,
                   help="write the rows to FILE (.csv, or .parquet with pyarrow) in chunks "
                        "that survive a crash" + ("" if out_required else
                                                  " (default: print them)"))
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="run on a local Dask cluster of N processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster (e.g. tcp://host:8786)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="images per model call (default 64)")
    p.add_argument("--chunk-size", type=int, default=1024, metavar="N",
                   help="rows per output chunk and per Dask task (default 1024)")
    p.add_argument("--input", metavar="HxWxD", default=None,
                   help="resize images to this volume (default: the model's input volume)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run that wrote --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def check_options(args: argparse.Namespace, where: str) -> None:
    from ..errors import ArgumentError, message

    for name in ("batch_size", "chunk_size", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ArgumentError(message(where, f"{flag} must be a positive int",
                                        f"pass e.g. {flag} {2 if name == 'workers' else 64}",
                                        f"{flag} {value}"))
    if args.out is None:
        needs = "--resume" if args.resume else "--workers" if args.workers else \
            "--scheduler" if args.scheduler else None
        if needs:
            raise ArgumentError(message(where, f"{needs} needs --out",
                                        "add --out preds.csv (or .parquet)", needs))


def run_job_command(args: argparse.Namespace, runner: Any, source: Any) -> int:
    """Run the job of ``predict`` or ``features`` to ``args.out``; the exit status."""
    from ..batch import EXIT_SOME_ERRORS, run_job
    from ..batch.output import check_out

    check_out(args.out, runner.where)
    client = cluster = None
    if args.workers or args.scheduler:
        from ..dask import connect

        client, cluster = connect(args.scheduler, args.workers, runner.where)
    try:
        summary = run_job(runner, source, args.out, model_arg=args.model, resume=args.resume,
                          batch_size=args.batch_size, chunk_size=args.chunk_size,
                          client=client, progress=None if args.quiet else sys.stderr)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(summary.line())
    return EXIT_SOME_ERRORS if summary.errors else 0


def run(args: argparse.Namespace) -> int:
    from ..batch import PathSource, Runner

    check_options(args, "predict")
    runner = Runner(args.model, "predict", top=args.top, input_shape=args.input,
                    where="predict")
    source = PathSource(args.paths, "predict")
    if args.out is not None:
        return run_job_command(args, runner, source)
    return _print(args, runner, source)


def _print(args: argparse.Namespace, runner: Any, source: Any) -> int:
    """Rows printed: a few image files as before (in the order given; a bad one is an error,
    exit 2), anything bigger as a stream in path order (a bad image is a row, exit 3)."""
    from ..batch import EXIT_SOME_ERRORS, run_job
    from ..batch.output import format_row
    from ..batch.runner import decoded
    from ..errors import ImageError

    if source.only_files:
        rows = runner.rows(decoded(args.paths, runner.shape), args.batch_size)
        bad = next((e for e in rows.errors if e is not None), None)
        if bad is not None:
            raise ImageError(bad)
        width = max(len(p) for p in rows.paths)
        for i, path in enumerate(rows.paths):
            print(f"{path:<{width}}  {format_row(rows, i)}")
        return 0

    def emit(rows: Any) -> None:
        for i, path in enumerate(rows.paths):
            print(f"{path}  {format_row(rows, i)}")
        sys.stdout.flush()

    summary = run_job(runner, source, None, batch_size=args.batch_size,
                      chunk_size=args.chunk_size, progress=None, emit=emit)
    if not args.quiet:
        print(summary.line(), file=sys.stderr)
    return EXIT_SOME_ERRORS if summary.errors else 0
