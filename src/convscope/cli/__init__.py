"""The ``convscope`` command: a thin layer over the library.

Each subcommand lives in its own module ``cmd_<name>.py`` exposing ``register(subparsers)``;
adding one is a new module plus its name in :data:`COMMANDS`. A user mistake (any
:class:`~convscope.errors.ConvscopeError`, a missing file, a folder where a file belongs, a
permission problem) prints ``convscope: error: <message>`` on stderr and exits 2, never
with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from ..errors import ConvscopeError

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS = ["explain", "apply", "demo", "train", "predict", "evaluate", "export", "import"]
COMMANDS += ["show", "kernels", "animate", "why", "receptive", "saliency", "curves", "report"]
COMMANDS += ["features"]
COMMANDS += ["serve"]

DESCRIPTION = """\
convscope: convolutional neural networks you can read, trust, see and use.

Volumes are written H x W x D (height x width x depth), as in the slides: 64x64x3 is a \
64x64 colour image. Models are written in the spec language:
  "64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | flatten | linear(10)"
(quote it: | is special to the shell)."""

EPILOG = """\
examples:
  convscope demo                        the slides, live; pictures in demo-output/
  convscope explain "64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)"
  convscope explain "64x64x3 | conv(8, 5, padding=1)" --expect 64x64x8
  convscope apply photo.jpg --kernels sobel-x,sobel-y,laplacian --out maps/

Run `convscope COMMAND --help` for the details of one command."""


class UsageError(Exception):
    """A command line argparse refuses (reported as ``convscope: error:``, exit 2)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps examples as written; wraps long prose lines (those not starting with a space)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            if len(line) > width and not line[:1].isspace():
                lines.append(textwrap.fill(line, width, initial_indent=indent,
                                           subsequent_indent=indent))
            else:
                lines.append(indent + line)
        return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """argparse with convscope's error form: usage, then ``convscope: error: ...``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        command = self.prog.split(" ", 1)[1:]
        raise UsageError((f"{command[0]}: " if command else "") + message)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="convscope", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".cmd_{name}", __name__).register(sub)
    return parser


def _fail(text: str) -> int:
    print(f"convscope: error: {text}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail(str(exc))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ConvscopeError as exc:
        return _fail(str(exc))
    except IsADirectoryError as exc:
        return _fail(f"{exc.filename} is a folder; a file is needed here")
    except FileNotFoundError as exc:
        return _fail(f"no such file or folder: {exc.filename}")
    except PermissionError as exc:
        return _fail(f"permission denied: {exc.filename}")
    except KeyboardInterrupt:
        print("convscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `convscope explain ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except FileExistsError as exc:  # e.g. --out names a file where a folder is made
        return _fail(f"cannot create {exc.filename}: something of that name already exists "
                     "(a folder is needed there)")
    except NotADirectoryError as exc:
        return _fail(f"{exc.filename}: a part of this path is a file, not a folder")
    except OSError as exc:  # a full disk, a read-only file system, ...
        name = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{name}")
