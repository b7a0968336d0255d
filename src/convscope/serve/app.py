"""The ASGI application: the page, its static files and the HTTP interface.

=====================================  ===================================================
``GET /``                              the page
``GET /static/<file>``                 its scripts and styles (only files of the package's
                                       static folder, listed when the app is made)
``GET /api/model``                     the graph: nodes with index, name, op, volumes, inputs
``GET /api/maps?layer=L``              a node's maps as a labelled PNG grid; ``&format=json``
                                       their values; ``&channel=C`` one map; ``&view=atlas``
                                       all maps at one pixel per value, ``&view=thumbs`` the
                                       first few, small (``layer=input``: the image)
``GET /api/why?layer=L&channel=C&row=R&col=X``  one value taken apart (``&index=I`` for a flat
                                       output), with the recomputed ``value`` and the
                                       forward pass's ``forward``
``GET /api/kernels?layer=L``           a conv's kernels as a PNG
``GET /api/slide?layer=L``             how a conv's or pool's window slides (the slider)
``GET /api/classes``                   the best classes and their probabilities
``GET /api/image``                     the current image as a PNG
``POST /api/image[?name=photo.jpg]``   the body (an image file) becomes the current image
=====================================  ===================================================

A layer is a node number as ``convscope explain`` prints it or a module path. A mistake gets
a 4xx and ``{"error": "..."}`` with the message the command line would print.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ArgumentError, ConvscopeError, message
from ..viz.layers import check_at, find_layer
from ..viz.pictures import KERNEL_OPS, kernels_of, maps_picture
from ..viz.why import WhyMismatchError
from . import pictures
from .guard import Guard, host_for_url, served_names
from .payloads import classes_json, maps_json, model_json, slide_json, why_json
from .state import MAX_UPLOAD_BYTES, State
from .walk import WHAT, WHY_OPS, take_apart

__all__ = ["create_app", "static_files", "STATIC", "Refusal"]

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
NO_STORE = {"cache-control": "no-store"}


class Refusal(Exception):
    """A request refused with an HTTP status other than 400 (413: too large)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def static_files(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every servable file under ``root``, by its relative path, read once.

    Only regular files with a known type whose resolved path lies inside the resolved
    ``root`` (a containment test on resolved paths, not a string prefix); symbolic links
    and hidden files are left out. A request is looked up in this table: no path from a
    request ever reaches the file system.
    """
    base = Path(root).resolve()
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(base, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and not os.path.islink(os.path.join(folder, d))]
        for name in names:
            path = Path(folder, name)
            if name.startswith(".") or path.is_symlink() or path.suffix not in TYPES:
                continue
            real = path.resolve()
            if real.is_relative_to(base) and real.is_file():
                found[real.relative_to(base).as_posix()] = real.read_bytes()
    return found


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status, headers=NO_STORE)


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers=NO_STORE)


def _json(content: Any) -> JSONResponse:
    return JSONResponse(content, headers=NO_STORE)


Handler = Callable[[Request], Response]


def _answer(fn: Handler, threaded: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that runs ``fn`` (in a worker thread) and turns mistakes into 4xx JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            return await run_in_threadpool(fn, request) if threaded else await fn(request)
        except Refusal as exc:
            return _error(exc.status, str(exc))
        except WhyMismatchError as exc:  # a bug of ours, said plainly
            return _error(500, str(exc))
        except ConvscopeError as exc:
            return _error(400, str(exc))
        except Exception as exc:  # noqa: BLE001  (answered, and printed for the log)
            traceback.print_exc(file=sys.stderr)
            return _error(500, f"internal error in convscope serve: {type(exc).__name__}: {exc}"
                               ". This is a bug: please report it with the model and image")

    return endpoint


def _int(request: Request, name: str, where: str) -> int | None:
    """Query parameter ``name`` as an int, None when absent."""
    text = request.query_params.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise ArgumentError(message(where, f"{name} must be a whole number",
                                    f"pass e.g. {name}=0", f"{name}={text!r}")) from None


def _choice(request: Request, name: str, allowed: tuple[str, ...], where: str) -> str:
    value = request.query_params.get(name, allowed[0])
    if value not in allowed:
        raise ArgumentError(message(where, f"{name} must be one of {', '.join(allowed)}",
                                    f"pass {name}={allowed[0]}", f"{name}={value!r}"))
    return value


def create_app(state: State, host: str = "127.0.0.1", port: int = 8765,
               static_dir: str | os.PathLike[str] | None = None,
               max_upload: int = MAX_UPLOAD_BYTES, allow_hosts: tuple[str, ...] = ()) -> Any:
    """The app serving ``state`` as ``http://host:port/`` (the address the ``Host`` header
    must name). ``static_dir`` replaces the package's static folder (tests)."""
    files = static_files(static_dir or STATIC)
    url = f"http://{host_for_url(host)}:{port}/"

    def static(request: Request) -> Response:
        name = request.path_params.get("path", "index.html")
        data = files.get(name)
        if data is None:
            return _error(404, f"not found: /static/{name} (the page's files are "
                               f"{', '.join(sorted(files))})")
        return Response(data, media_type=TYPES[Path(name).suffix], headers={
            "cache-control": "no-cache"})

    def model(request: Request) -> Response:
        with state.lock:
            return _json(model_json(state))

    def maps(request: Request) -> Response:
        where = "/api/maps"
        fmt = _choice(request, "format", ("png", "json"), where)
        view = _choice(request, "view", ("grid", "atlas", "thumbs"), where)
        channel = _int(request, "channel", where)
        layer = request.query_params.get("layer")
        with state.lock:
            ref = None
            if layer == "input" and layer not in {r.name for r in state.refs}:
                values = state.image
            else:
                ref = state.find(layer, where)
                values = state.values(ref.name)
            if channel is not None:
                what = f"{ref.label} output" if ref else "the image"
                if values.ndim != 3:
                    raise ArgumentError(message(where, f"{what} is {values.size} flat values, "
                                                "not maps", "leave out channel"))
                check_at((channel, 0, 0), values.shape, what, where)
            if fmt == "json":
                if ref is None:
                    return _json({"layer": "input", "shape": list(values.shape),
                                  "maps" if channel is None else "values":
                                      (values if channel is None else values[channel]).tolist()})
                return _json(maps_json(state, ref, channel))
            key = ("maps", layer, view, channel)
            if channel is not None:
                return _png(state.cached_png(key, lambda: pictures.one_map(values[channel])))
            if view == "atlas" or (ref is None and view == "grid"):
                return _png(state.cached_png(key, lambda: pictures.atlas(values)))
            if view == "thumbs":
                return _png(state.cached_png(key, lambda: pictures.thumbnails(values)))
            if values.ndim != 3:
                raise ArgumentError(message(where, f"{ref.label} outputs {values.size} flat "
                                            "values, not maps", "ask for format=json or "
                                            "view=atlas"))
            return _png(state.cached_png(key, lambda: pictures.png_bytes(
                maps_picture(values, ref, state.note, max_maps=256))))

    def why(request: Request) -> Response:
        where = "/api/why"
        with state.lock:
            layer = request.query_params.get("layer")
            if layer is None or not layer.strip():
                state.find(layer, where)  # the message names the nodes
            ref = find_layer(state.model, layer.strip(), state.image.shape, where=where,
                             kinds=WHY_OPS, what=WHAT, refs=state.refs)
            shape = ref.output_shape
            names = ("channel", "row", "col") if len(shape) == 3 else ("index",)
            got = {n: _int(request, n, where) for n in ("channel", "row", "col", "index")}
            if len(shape) != 3 and got["index"] is None:
                got["index"] = got["channel"]
            pos = tuple(got[n] for n in names)
            if any(v is None for v in pos):
                ranges = [f"{n}=0..{s - 1}" for n, s in zip(names, shape, strict=True)]
                said = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 \
                    else names[0]
                raise ArgumentError(message(where, f"{said} {'are' if len(names) > 1 else 'is'}"
                                            f" needed: {ref.label} outputs "
                                            f"{shape_words(shape)}",
                                            f"pass {', '.join(ranges)}"))
            pos = check_at(pos, shape, f"{ref.label} output", where)
            return _json(why_json(take_apart(state, ref, pos), ref))

    def kernels(request: Request) -> Response:
        with state.lock:
            layer = request.query_params.get("layer")
            if layer is None or not layer.strip():
                state.find(layer, "/api/kernels")
            ref = find_layer(state.model, layer.strip(), state.image.shape, where="/api/kernels",
                             kinds=lambda r: r.op in KERNEL_OPS,
                             what="a conv layer (only conv layers have kernels)",
                             refs=state.refs)
            return _png(state.cached_png(("kernels", ref.name), lambda: pictures.png_bytes(
                kernels_of(state.model, ref, state.note))))

    def slide(request: Request) -> Response:
        with state.lock:
            ref = state.find(request.query_params.get("layer"), "/api/slide")
            return _json(slide_json(state, ref))

    def classes(request: Request) -> Response:
        with state.lock:
            return _json(classes_json(state))

    def image(request: Request) -> Response:
        with state.lock:
            return _png(state.cached_png(("image",), lambda: pictures.image_png(state.image)))

    async def upload(request: Request) -> Response:
        limit = max_upload
        length = request.headers.get("content-length")
        too_big = (f"POST /api/image: the file is larger than the limit of {limit:,} bytes. Fix:"
                   " send a smaller image (shrink it, or save it as JPEG)")
        if length is not None:
            if not length.strip().isdigit():
                raise ArgumentError(message("POST /api/image", "the Content-Length header is "
                                            "not a number", "send the file as the body",
                                            f"Content-Length: {length!r}"))
            if int(length) > limit:
                raise Refusal(413, too_big + f". Received: {int(length):,} bytes.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Refusal(413, too_big + ".")
        name = request.query_params.get("name") or request.headers.get("x-filename")
        await run_in_threadpool(_set, bytes(body), name)
        return _json({"image": state.image_name, "version": state.version,
                      "volume": list(state.image.shape)})

    def _set(data: bytes, name: str | None) -> None:
        with state.lock:
            state.set_image_bytes(data, name)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        text = "method not allowed" if status == 405 else "not found"
        return _error(status, f"{text}: {request.method} {request.url.path} (see {url} and the "
                              "HTTP interface in the README)")

    routes = [
        Route("/", _answer(static), methods=["GET"]),
        Route("/static/{path:path}", _answer(static), methods=["GET"]),
        Route("/api/model", _answer(model), methods=["GET"]),
        Route("/api/maps", _answer(maps), methods=["GET"]),
        Route("/api/why", _answer(why), methods=["GET"]),
        Route("/api/kernels", _answer(kernels), methods=["GET"]),
        Route("/api/slide", _answer(slide), methods=["GET"]),
        Route("/api/classes", _answer(classes), methods=["GET"]),
        Route("/api/image", _answer(image), methods=["GET"]),
        Route("/api/image", _answer(upload, threaded=False), methods=["POST"]),
    ]
    hosts = served_names(host, port, allow_hosts)
    return Starlette(routes=routes, middleware=[Middleware(Guard, hosts=hosts, url=url)],
                     exception_handlers={404: not_found, 405: not_found})


def shape_words(shape: tuple[int, ...]) -> str:
    from ..spec import format_volume

    return format_volume(shape) if len(shape) == 3 else f"{shape[0]} values"
