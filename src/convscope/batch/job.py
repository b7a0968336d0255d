"""One job: every image of a :class:`PathSource` through a :class:`Runner`, into chunks of rows.

The sorted paths are cut into chunks of ``chunk_size`` (chunk ``i`` holds paths ``i * chunk``
to ``(i + 1) * chunk - 1``); in one process the images are decoded a few threads ahead of the
model, with a Dask client each chunk is one task (:mod:`convscope.dask`). Either way a chunk's
rows are the same (its good images run in batches of ``batch_size`` counted inside the
chunk), and they go to a part file of the output (:class:`~convscope.batch.output.Parts`) or
to ``emit`` (printing). Memory stays flat whatever the number of images: the paths stream,
a bounded window of decoded images is ahead of the model, one chunk of rows is held.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import numpy as np

from ..errors import ArgumentError, message
from .output import Parts, check_out
from .paths import PathSource
from .runner import Rows, Runner, decoded

__all__ = ["run_job", "Summary", "Progress", "model_payload", "model_fingerprint", "chunks",
           "positive_int", "EXIT_SOME_ERRORS"]

EXIT_SOME_ERRORS = 3
"""Exit status of a job that completed with some error rows (0: no errors; 2: a mistake
found before any work)."""


@dataclasses.dataclass
class Summary:
    images: int
    errors: int
    seconds: float
    out: str | None
    resumed: int = 0  # rows already written by an earlier run

    @property
    def rate(self) -> float:
        return (self.images - self.resumed) / max(self.seconds, 1e-9)

    def line(self) -> str:
        what = f"wrote {self.out}: " if self.out else ""
        errors = f"{self.errors:,} of them errors" if self.errors else "no errors"
        earlier = f", {self.resumed:,} from the earlier run" if self.resumed else ""
        return (f"{what}{self.images:,} rows ({errors}{earlier}) in {self.seconds:.1f} s, "
                f"{self.rate:,.0f} images/s")


class Progress:
    """A progress bar (images/s, ETA) on a terminal; a plain line every ``every`` seconds
    elsewhere (logs)."""

    def __init__(self, stream: TextIO | None, total: int, done: int = 0,
                 every: float = 10.0) -> None:
        self.stream, self.total, self.done, self.every = stream, total, done, every
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.start = self.last = time.perf_counter()
        self.first = done
        self.errors = 0

    def update(self, n: int, errors: int) -> None:
        self.done += n
        self.errors += errors
        now = time.perf_counter()
        wait = min(self.every, 0.2) if self.tty else self.every
        if self.stream is None or (now - self.last < wait and self.done < self.total):
            return
        self.last = now
        rate = (self.done - self.first) / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = f"{eta:.0f} s" if math.isfinite(eta) else "?"
        errs = f", {self.errors:,} errors" if self.errors else ""
        if self.tty:
            width = 24
            fill = int(width * self.done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done:,}/"
                              f"{self.total:,} images  {rate:,.0f} images/s  ETA {eta_text}"
                              f"{errs}  ")
        else:
            self.stream.write(f"{self.done:,}/{self.total:,} images "
                              f"({100 * self.done / max(self.total, 1):.0f}%), {rate:,.0f} "
                              f"images/s, ETA {eta_text}{errs}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def chunks(source: PathSource, size: int) -> Iterator[tuple[int, list[str]]]:
    """``(i, paths)`` of each chunk, in order."""
    it = iter(source)
    for i in itertools.count():
        part = list(itertools.islice(it, size))
        if not part:
            return
        yield i, part


def _model_file(model_arg: Any) -> str | None:
    if isinstance(model_arg, (str, os.PathLike)) and os.path.exists(os.fspath(model_arg)):
        from ..io import resolve_model_path

        return str(resolve_model_path(model_arg))
    return None


def model_payload(runner: Runner, model_arg: Any) -> bytes:
    """The model file's bytes (what Dask workers load): the file itself when one was given,
    else the model saved by :func:`convscope.save`."""
    from ..io import save

    path = _model_file(model_arg)
    if path is not None:
        with open(path, "rb") as f:
            return f.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        save(runner.model, path, input_shape=runner.shape)
        with open(path, "rb") as f:
            return f.read()


def model_fingerprint(runner: Runner) -> str:
    """A hash of the model (its class, class names and weights) for the resume check."""
    digest = hashlib.sha256()
    digest.update(type(runner.model).__name__.encode())
    digest.update(repr(list(getattr(runner.model, "classes", None) or [])).encode())
    for name, array in sorted(runner.model.state_arrays().items()):
        digest.update(f"{name}{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).view(np.uint8).reshape(-1))
    return digest.hexdigest()


def positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(message(where, f"{name} must be a positive int",
                                    f"pass e.g. {name}=64", f"{name}={value!r}"))
    return value


def run_job(runner: Runner, source: PathSource, out: str | None = None, *,
            model_arg: Any = None, resume: bool = False, batch_size: int = 64,
            chunk_size: int = 1024, decode_threads: int = 2, client: Any = None,
            progress: TextIO | None = sys.stderr, emit: Callable[[Rows], None] | None = None,
            on_chunk: Callable[[int, Rows], None] | None = None) -> Summary:
    """Run ``runner`` over every image of ``source``; write ``out`` (.csv or .parquet) or
    hand each chunk's rows to ``emit``. See the module docstring; ``on_chunk(i, rows)`` is
    called after chunk ``i`` is safely written (tests use it to interrupt a job)."""
    where = runner.where
    batch_size = positive_int(batch_size, "batch_size", where)
    chunk_size = positive_int(chunk_size, "chunk_size", where)
    fmt = check_out(out, where) if out is not None else None
    count, fingerprint = source.scan()
    n_chunks = -(-count // chunk_size)
    parts = None
    model_arg = model_arg if model_arg is not None else runner.model
    if out is not None:
        manifest = {"model": model_fingerprint(runner), **runner.key,
                    "images": count, "paths": fingerprint, "chunk": chunk_size}
        parts = Parts(out, fmt, manifest, resume, where)  # type: ignore[arg-type]
    done = parts.done if parts is not None else {}
    resumed = sum(min(chunk_size, count - c * chunk_size) for c in done)
    bar = Progress(progress, count, resumed)
    start = time.perf_counter()
    errors = 0
    todo = ((i, ps) for i, ps in chunks(source, chunk_size) if i not in done)
    if client is not None:
        from ..dask import map_chunks

        payload = model_payload(runner, model_arg)
        results = map_chunks(client, runner, payload, todo, batch_size)
    else:
        results = _local(runner, todo, batch_size, decode_threads)
    try:
        for i, rows in results:
            if parts is not None:
                parts.write(i, rows)
            if emit is not None:
                emit(rows)
            errors += rows.error_count
            bar.update(len(rows), rows.error_count)
            if on_chunk is not None:
                on_chunk(i, rows)
    finally:
        bar.close()
        results.close()  # stops the decoding threads or cancels the cluster's tasks now
    if parts is not None:
        errors = parts.join(n_chunks)
    return Summary(count, errors, time.perf_counter() - start, out, resumed)


def _local(runner: Runner, todo: Iterator[tuple[int, list[str]]], batch_size: int,
           threads: int) -> Iterator[tuple[int, Rows]]:
    """Chunks' rows in one process: decoding runs ahead of the model across chunks."""
    sizes: deque[tuple[int, int]] = deque()

    def paths() -> Iterator[str]:
        for i, ps in todo:
            sizes.append((i, len(ps)))
            yield from ps

    items = decoded(paths(), runner.shape, threads, depth=max(2 * batch_size, 64))
    for first in items:
        i, n = sizes.popleft()
        chunk = itertools.chain([first], itertools.islice(items, n - 1))
        yield i, runner.rows(chunk, batch_size)
