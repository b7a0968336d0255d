"""``convscope serve MODEL [IMAGE] [--port 8765] [--host 127.0.0.1] [--no-open]``."""

from __future__ import annotations

import argparse
import re
import socket
import sys
import threading
from typing import Any

from ..errors import ArgumentError, ConvscopeError, message
from .viz_common import MODEL_HELP

EPILOG = """\
examples:
  convscope serve runs/mine                        a run folder (or a model file)
  convscope serve resnet18 photo.jpg --port 8765   a zoo model (random weights) and your image
  convscope serve "64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2)"

The page: the model's graph in order with thumbnails of every node's feature maps; click \
a node for its maps, kernels and shapes; click a value for the dot product taken apart, \
with a slider that moves the kernel over the input; drop an image on the page to see it \
all again. Ctrl-C stops the server. It answers only to the address it prints (127.0.0.1 \
by default); the HTTP interface is in the README."""

_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*|[A-Za-z0-9.-]+)$")


class ServeError(ConvscopeError, ValueError):
    """A server that cannot start: the port is taken, the address is not this machine's."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="the interactive explainer: your model and image in the browser",
        description="Serve a page that shows every node of MODEL for IMAGE: feature maps, "
                    "kernels, shapes, and any value taken apart (the slides, live).",
        epilog=EPILOG)
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("image", metavar="IMAGE", nargs="?",
                   help="a PNG, JPEG, BMP, GIF, TIFF or WebP file (default: the demo's "
                        "picture); another can be dropped on the page")
    p.add_argument("--port", type=int, default=8765, help="the port (default 8765; 0: any "
                   "free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only). "
                        "Another address lets other machines in: it needs to be given "
                        "explicitly and prints a warning")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests addressed to NAME (a name this machine has on "
                        "your network), with --host")
    p.add_argument("--no-open", action="store_true", help="do not open a browser")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights of a spec "
                   "or a zoo name")
    p.set_defaults(func=run)


def check_address(host: str, port: int) -> None:
    """Refuse a port outside 0..65535 and a host that is no address or name."""
    if not 0 <= port <= 65535:
        raise ArgumentError(message("--port", f"{port} is not a port number",
                                    "pass a number from 1 to 65535 (0: any free port)",
                                    f"--port {port}"))
    if not host or not _HOST.match(host):
        raise ArgumentError(message("--host", f"{host!r} is not an address or a host name",
                                    "pass 127.0.0.1 (this machine only), or an address of "
                                    "this machine such as 0.0.0.0", f"--host {host!r}"))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a clear error when that is impossible."""
    name = host.strip("[]")
    try:
        infos = socket.getaddrinfo(name or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(message("--host", f"{host!r} cannot be resolved to an address of this "
                                 f"machine ({exc.strerror})", "pass 127.0.0.1, or an address "
                                 "of this machine", f"--host {host!r}")) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise ServeError(message("--port", f"port {port} on {host} is in use (another "
                                     "convscope serve, or another server)",
                                     f"pass another port, e.g. --port {port + 1} (or --port 0 "
                                     "for any free one), or stop the other server",
                                     f"--port {port}")) from None
        raise ServeError(message("--host", f"cannot listen on {host}:{port}: {exc.strerror}",
                                 "pass 127.0.0.1, or an address this machine has",
                                 f"--host {host}")) from None
    sock.set_inheritable(False)
    return sock


def host_warning(host: str) -> str | None:
    """What to tell the user when the server can be reached from other machines."""
    from ..serve.guard import is_loopback

    if is_loopback(host):
        return None
    return (f"warning: --host {host}: other machines that can reach this one may open the "
            "page, see your model and images, and upload images; serve on 127.0.0.1 (the "
            "default) unless you mean it")


def run(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise ServeError(message("serve", "the web server packages (starlette, uvicorn) are "
                                 "not installed", "pip install 'convscope[serve]'")) from None
    from ..serve.app import create_app
    from ..serve.guard import host_for_url
    from ..serve.state import State

    check_address(args.host, args.port)
    state = State(args.model, args.image, seed=args.seed)  # model and image mistakes: here
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    url = f"http://{host_for_url(args.host)}:{port}/"
    warning = host_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    if state.note:
        print(f"note: {state.note}")
    print(f"convscope serve: {state.title} ({len(state.refs)} nodes, image "
          f"{state.image_name}) at {url}")
    print("Ctrl-C stops the server.", flush=True)
    app = create_app(state, args.host, port, allow_hosts=tuple(args.allow_host))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            server_header=False)
    server = uvicorn.Server(config)
    if not args.no_open:
        threading.Timer(0.5, _open, (url,)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("convscope serve: stopped")
    return 0


def _open(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url)
    except Exception:  # noqa: BLE001  (no browser: the URL is printed)
        pass
