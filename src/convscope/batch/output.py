"""Rows to files, crash-safely: CSV always, Parquet where pyarrow is installed.

A job writing ``preds.csv`` keeps its work in the folder ``preds.csv.parts/`` until it ends:

- ``manifest.json``: what the rows depend on (the model file's hash, the task, the input
  volume, the path list's count and fingerprint, the chunk size);
- ``part-000012.e3.csv``: the rows of chunk 12 (paths ``12 * chunk`` to ``13 * chunk - 1`` in
  path order), 3 of them errors. Each part is written to a temporary file, flushed, fsynced
  and renamed, so a part is either complete or absent.

``--resume`` checks the manifest and skips the chunks whose part exists, so a killed run
loses at most the chunks in flight and never writes a row twice. When every part exists they
are joined, in chunk order, into the output file (temp + fsync + rename again) and the folder
is removed. CSV floats are written with 9 significant digits (float32 round-trips exactly);
an error row leaves the number columns empty (null in Parquet).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import ArgumentError, DataError, message
from .runner import Rows, columns

__all__ = ["Parts", "check_out", "write_rows", "format_row"]

FORMAT = "convscope-batch-1"
_PART = re.compile(r"^part-(\d{6,})\.e(\d+)\.(csv|parquet)$")


def check_out(out: str, where: str) -> str:
    """The output's format ("csv" or "parquet"), checked before any work starts."""
    ext = os.path.splitext(out)[1].lower()
    if os.path.isdir(out):
        raise ArgumentError(message(where, f"{out} is a folder", "give a file name such as "
                                    f"{os.path.join(out, 'preds.csv')}", f"--out {out}"))
    if ext not in (".csv", ".parquet"):
        raise ArgumentError(message(where, "the output must end .csv or .parquet",
                                    "pass e.g. --out preds.csv", f"--out {out}"))
    folder = os.path.dirname(out) or "."
    if not os.path.isdir(folder):
        raise ArgumentError(message(where, f"the folder to write into, {folder}, does not "
                                    "exist", "create it first", f"--out {out}"))
    if ext == ".parquet":
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ArgumentError(message(where, "writing Parquet needs pyarrow, which is not "
                                        "installed", "pip install pyarrow, or write .csv",
                                        f"--out {out}")) from None
    return ext[1:]


def _write_atomic(path: str, fill: Callable[[str], None]) -> None:
    """``fill(tmp)`` writes a temporary file beside ``path``; fsync it, rename, fsync folder."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        fill(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# --------------------------------------------------------------------------- CSV
def _field(text: str) -> str:
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_lines(rows: Rows) -> Iterator[str]:
    width = rows.values.shape[1]
    floats = ",".join(["%.9g"] * width)
    empty = "," * (width * (2 if rows.kind == "predict" else 1) - 1)
    for i, (path, error) in enumerate(zip(rows.paths, rows.errors, strict=True)):
        if error is not None:
            yield f"{_field(path)},{empty},{_field(error)}\n"
        elif rows.kind == "predict":
            pairs = [f"{_field(name)},{v:.9g}" for name, v in
                     zip(rows.labels[i], rows.values[i].tolist(), strict=True)]  # type: ignore[index]
            yield f"{_field(path)},{','.join(pairs)},\n"
        else:
            yield f"{_field(path)},{floats % tuple(rows.values[i].tolist())},\n"


def _write_csv(rows: Rows, path: str) -> None:
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(",".join(rows.columns()) + "\n")
        f.writelines(_csv_lines(rows))


# --------------------------------------------------------------------------- Parquet
def _schema(kind: str, width: int) -> Any:
    import pyarrow as pa

    fields = []
    for name in columns(kind, width):
        text = name in ("path", "error") or name.startswith("class")
        fields.append(pa.field(name, pa.string() if text else pa.float32(), nullable=True))
    return pa.schema(fields)


def _table(rows: Rows) -> Any:
    import pyarrow as pa

    bad = np.array([e is not None for e in rows.errors], dtype=bool)
    width = rows.values.shape[1]
    arrays: list[Any] = [pa.array(rows.paths, pa.string())]
    for k in range(width):
        values = pa.array(rows.values[:, k], pa.float32(), mask=bad)
        if rows.kind == "predict":
            names = [None if e is not None else lab[k]
                     for e, lab in zip(rows.errors, rows.labels, strict=True)]  # type: ignore[arg-type]
            arrays += [pa.array(names, pa.string()), values]
        else:
            arrays.append(values)
    arrays.append(pa.array(rows.errors, pa.string()))
    return pa.Table.from_arrays(arrays, schema=_schema(rows.kind, width))


def _write_parquet(rows: Rows, path: str) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_table(rows), path)


def write_rows(rows: Rows, path: str, fmt: str) -> None:
    """Write one chunk of rows as a complete file (atomically)."""
    _write_atomic(path, lambda tmp: (_write_csv if fmt == "csv" else _write_parquet)(rows, tmp))


# --------------------------------------------------------------------------- the parts
class Parts:
    """The parts folder of one output file (see the module docstring)."""

    def __init__(self, out: str, fmt: str, manifest: dict[str, Any], resume: bool,
                 where: str) -> None:
        self.out, self.fmt, self.where = out, fmt, where
        self.folder = out + ".parts"
        self.manifest = {"format": FORMAT, **manifest}
        self.done: dict[int, int] = {}  # chunk -> error rows
        self.resumed = False
        if os.path.isdir(self.folder):
            if not resume:
                raise DataError(message(where, f"an earlier run left {self.folder}",
                                        "add --resume to continue it, or delete that folder "
                                        "to start again", self.folder))
            self._adopt()
        else:
            os.mkdir(self.folder)
            write_json(os.path.join(self.folder, "manifest.json"), self.manifest)

    def _adopt(self) -> None:
        path = os.path.join(self.folder, "manifest.json")
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if old != self.manifest:
            diff = [k for k in self.manifest if not isinstance(old, dict)
                    or old.get(k) != self.manifest[k]]
            raise DataError(message(self.where, f"{self.folder} was written for other "
                                    "inputs or settings, so it cannot be resumed",
                                    "run again with the same model, images and options, or "
                                    "delete that folder to start again",
                                    f"differs in {', '.join(diff) or 'manifest.json'}"))
        for name in os.listdir(self.folder):
            found = _PART.match(name)
            if found and found.group(3) == self.fmt:
                self.done[int(found.group(1))] = int(found.group(2))
            elif name.endswith(".tmp"):  # a write the kill interrupted
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.folder, name))
        self.resumed = True

    def _name(self, chunk: int, errors: int) -> str:
        return os.path.join(self.folder, f"part-{chunk:06d}.e{errors}.{self.fmt}")

    def write(self, chunk: int, rows: Rows) -> None:
        write_rows(rows, self._name(chunk, rows.error_count), self.fmt)
        self.done[chunk] = rows.error_count

    def join(self, chunks: int) -> int:
        """Join parts 0..chunks-1 into the output file, remove the folder; error rows."""
        missing = [c for c in range(chunks) if c not in self.done]
        if missing:
            raise DataError(message(self.where, f"{len(missing)} chunks are missing from "
                                    f"{self.folder}", "run again with --resume",
                                    f"first missing chunk {missing[0]}"))
        names = [self._name(c, self.done[c]) for c in range(chunks)]
        _write_atomic(self.out, lambda tmp: (_join_csv if self.fmt == "csv" else
                                             _join_parquet)(names, tmp))
        shutil.rmtree(self.folder, ignore_errors=True)
        return sum(self.done[c] for c in range(chunks))


def _join_csv(names: list[str], tmp: str) -> None:
    with open(tmp, "wb") as out:
        for k, name in enumerate(names):
            with open(name, "rb") as f:
                header = f.readline()
                if k == 0:
                    out.write(header)
                shutil.copyfileobj(f, out, 1 << 20)


def _join_parquet(names: list[str], tmp: str) -> None:
    import pyarrow.parquet as pq

    writer = None
    try:
        for name in names:
            table = pq.read_table(name)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def write_json(path: str, data: dict[str, Any]) -> None:
    def fill(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)

    _write_atomic(path, fill)


def format_row(rows: Rows, i: int) -> str:
    """One row as ``convscope predict`` prints it: ``cat 91.2%, dog 5.1%`` or the error."""
    if rows.errors[i] is not None:
        return f"error: {rows.errors[i]}"
    if rows.kind == "predict":
        return ", ".join(f"{name} {v * 100:.1f}%" for name, v in
                         zip(rows.labels[i], rows.values[i].tolist(), strict=True))  # type: ignore[index]
    values = rows.values[i]
    return f"{len(values)} features: " + " ".join(f"{v:.4g}" for v in values[:8].tolist()) + \
        (" ..." if len(values) > 8 else "")
