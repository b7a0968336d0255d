"""Safe weights files: a reader and writer of the safetensors format, written from scratch.

A safetensors file is three parts, and nothing in it is ever executed::

    8 bytes      N, the header length, unsigned little-endian
    N bytes      a JSON object, padded with spaces to a multiple of 8 bytes:
                 {"__metadata__": {"k": "v"},
                  "conv1.weight": {"dtype": "F32", "shape": [8, 3, 5, 5],
                                   "data_offsets": [0, 2400]}, ...}
    the rest     the tensors' bytes, little-endian, C order, back to back

``load_file`` trusts nothing: before it reads a single tensor byte it checks that the
header is a JSON object of known dtypes and non-negative shapes, that every tensor's byte
count equals ``prod(shape) * itemsize`` (Python ints: no overflow), and that the offsets
tile the data region exactly, with no gap, no overlap and no trailing bytes. Pickle files,
zip archives (``.npz``, PyTorch ``.pt``) and ONNX models are recognised and refused with a
message that says what they are.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
>>> save_file(path, {"w": np.ones((2, 3), np.float32)}, {"arch": "tiny"})
>>> tensors, meta = load_file(path)
>>> tensors["w"].shape, meta
((2, 3), {'arch': 'tiny'})
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
import tempfile
from collections.abc import Mapping

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, FileFormatError, message

__all__ = ["save_file", "load_file", "read_metadata", "DTYPES", "MAX_HEADER"]

MAX_HEADER = 100_000_000
"""Largest header accepted by default, in bytes (the limit the safetensors project uses)."""

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}
"""safetensors dtype name -> little-endian NumPy dtype."""

_NAME_OF = {dt.str.replace(">", "<").replace("|", "<"): n for n, dt in DTYPES.items()}
# Names other tools write that NumPy cannot hold; refused with a pointed message.
_FOREIGN = {"BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"}
_MAX_RANK = 64  # NumPy's limit on dimensions
_AGAIN = "the file is corrupt or not safetensors; save the weights again"


def _name_of(dtype: np.dtype) -> str | None:
    return _NAME_OF.get(dtype.newbyteorder("<").str.replace("|", "<"))


# --------------------------------------------------------------------------- writing


def _refuse(cls: type[Exception], what: str, fix: str, received: str) -> Exception:
    return cls(message("save_file", what, fix, received))


def _check_tensors(tensors: object) -> dict[str, np.ndarray]:
    if not isinstance(tensors, Mapping):
        what, fix = "tensors must be a dict of name -> numpy array", "pass {'w': array}"
        raise _refuse(ArgumentTypeError, what, fix, f"type {type(tensors).__name__}")
    out: dict[str, np.ndarray] = {}
    for name in sorted(tensors, key=lambda k: (not isinstance(k, str), str(k))):
        if not isinstance(name, str):
            what, fix = "tensor names must be strings", "use names such as 'conv1.weight'"
            raise _refuse(ArgumentTypeError, what, fix, f"name {name!r} of type {type(name)}")
        if name == "__metadata__":
            what = "'__metadata__' is reserved for the metadata and cannot name a tensor"
            raise _refuse(ArgumentError, what, "rename the tensor", "name '__metadata__'")
        array = np.asarray(tensors[name])
        if _name_of(array.dtype) is None:
            what = f"tensor {name!r} has dtype {array.dtype}, which safetensors cannot hold here"
            fix = "convert it, e.g. array.astype(np.float32); supported: " + ", ".join(DTYPES)
            raise _refuse(ArgumentTypeError, what, fix, f"dtype {array.dtype}")
        out[name] = array
    return out


def _check_metadata(metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        what, fix = "metadata must be a dict of str -> str", "encode values as text (json.dumps)"
        raise _refuse(ArgumentTypeError, what, fix, f"metadata={metadata!r:.200}")
    return dict(metadata)


def _encode(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, array in tensors.items():
        nbytes = array.size * array.dtype.itemsize
        header[name] = {
            "dtype": _name_of(array.dtype),
            "shape": list(array.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def save_file(
    path: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` to a safetensors file, atomically.

    The bytes go to a temporary file in the same folder, which is flushed, synced to disk
    and then renamed over ``path``; the folder is synced last. A crash or a full disk at
    any moment leaves either the previous file or the new one, never a mix, and no
    temporary file behind.

    Parameters
    ----------
    path : str or PathLike
        File to write (conventionally ``*.safetensors``). Its folder must exist.
    tensors : dict of str -> ndarray of any shape
        dtypes bool, uint8/16/32/64, int8/16/32/64, float16/32/64. Stored little-endian
        in C order under sorted names.
    metadata : dict of str -> str, optional
        Free text stored in the header under ``__metadata__``.

    Raises
    ------
    ArgumentTypeError
        A name that is not a string, an unsupported dtype, metadata that is not str->str.
    FileFormatError
        The file cannot be written (missing folder, a directory in the way, disk full).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> save_file(path, {"fc.bias": np.zeros(10, np.float32)})
    """
    arrays = _check_tensors(tensors)
    meta = _check_metadata(metadata)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    where = f"save_file({path!r})"
    if os.path.isdir(path):
        fix = "give a file name inside it, e.g. 'model.safetensors'"
        raise FileFormatError(message(where, "the path is a directory", fix, f"path {path!r}"))
    if not os.path.isdir(folder):
        what, fix = "the folder to write into does not exist", "create it first (os.makedirs)"
        raise FileFormatError(message(where, what, fix, f"folder {folder!r}"))
    head = _encode(arrays, meta)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
        )
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for array in arrays.values():
                little = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
                f.write(little.reshape(-1).view(np.uint8))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_folder(folder)
    except OSError as exc:
        what = f"could not write the file ({exc.strerror or exc})"
        fix = "free disk space or check permissions; any previous file at this path is unchanged"
        raise FileFormatError(message(where, what, fix, f"errno {exc.errno}")) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reading


def _bad(path: str, what: str, fix: str, received: str | None = None) -> FileFormatError:
    return FileFormatError(message(f"safetensors file {path!r}", what, fix, received))


def _sniff(head: bytes) -> str | None:
    """Name a file type that is not safetensors, from its first bytes, or None."""
    never = "; it can hold pickled code and is never opened"
    if head.startswith(b"PK"):
        return "a zip archive (NumPy .npz, PyTorch .pt/.pth or similar), not safetensors" + never
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (e.g. torch.save or pickle.dump output), not safetensors" + never
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file, not safetensors"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (e.g. Keras .h5), not safetensors"
    if head[:1] == b"\x08" and 1 <= head[1] <= 30 and head[2:3] in (b"\x12", b"\x1a", b"\x3a"):
        return "an ONNX model, not safetensors; load it with convscope's ONNX import"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON text file without the 8-byte length prefix, not safetensors"
    return None


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class _Duplicate(Exception):
    pass


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def _nat(v: object) -> bool:
    """A JSON integer >= 0 (bools are not integers here)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _open_regular(path: str):  # noqa: ANN202 (returns a binary file object)
    try:
        info = os.stat(path)
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        what = "the file does not exist" if missing else f"the file cannot be read ({exc})"
        raise _bad(path, what, "check the path, the working folder and permissions") from None
    if stat.S_ISDIR(info.st_mode):
        fix = "give the path of a .safetensors file inside it"
        raise _bad(path, "the path is a directory, not a file", fix)
    not_regular = _bad(path, "the path is not a regular file", "give a .safetensors file")
    if not stat.S_ISREG(info.st_mode):
        raise not_regular
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)  # non-blocking: a pipe swapped in after stat cannot hang us
    except OSError as exc:
        raise _bad(path, f"the file cannot be opened ({exc})", "check permissions") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between stat and open
        os.close(fd)
        raise not_regular
    return os.fdopen(fd, "rb")


def _parse(f, path: str, max_header: int) -> tuple[dict, dict[str, str], int, int]:  # noqa: ANN001
    """Validate the header. Returns (entries, metadata, data_start, data_length)."""
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        short = "is too short to hold the 8-byte header length" if size else "is empty"
        raise _bad(
            path, f"the file {short}", "the file is truncated; save it again", f"{size} bytes"
        )
    head = f.read(16)
    (n,) = struct.unpack("<Q", head[:8])
    if not (2 <= n <= min(max_header, size - 8) and head[8:9] == b"{"):
        kind = _sniff(head)
        if kind is not None:
            what, fix = f"this is {kind}", "convert the weights to safetensors first"
        elif n > max_header:
            what = f"the header claims {n} bytes, more than the limit of {max_header}"
            fix = "this is not safetensors, or pass a larger max_header if you trust it"
        elif n > size - 8:
            what = f"the header claims {n} bytes but only {size - 8} follow the length field"
            fix = "the file is truncated or is not safetensors; save it again"
        else:
            what, fix = "the header does not start with a JSON object", _AGAIN
        raise _bad(path, what, fix, f"file size {size}, first bytes {head[:16]!r}")
    f.seek(8)
    raw = f.read(n)
    try:
        text = raw.decode("utf-8")
        header = json.loads(text, object_pairs_hook=_unique, parse_constant=_reject_constant)
    except _Duplicate as exc:
        raise _bad(path, f"the header names {exc.args[0]!r} twice", _AGAIN) from None
    except UnicodeDecodeError as exc:
        raise _bad(path, "the header is not UTF-8 text", _AGAIN, str(exc)) from None
    except (ValueError, RecursionError) as exc:  # also int digits limit, deep nesting
        raise _bad(path, "the header is not valid JSON", _AGAIN, f"{exc}"[:200]) from None
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object", _AGAIN)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        what = "__metadata__ must map strings to strings"
        raise _bad(path, what, _AGAIN, f"__metadata__={metadata!r:.200}")
    entries = {name: _check_entry(path, name, info) for name, info in header.items()}
    data_len, cursor, previous = size - 8 - n, 0, None
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: kv[1][2:]):
        if begin != cursor:
            gap = "a gap" if begin > cursor else "an overlap"
            after = f"after {previous!r}" if previous is not None else "at the start"
            what = f"tensor {name!r} begins at byte {begin}, leaving {gap} {after} "
            what += f"(expected {cursor}); offsets must tile the data exactly"
            raise _bad(path, what, _AGAIN, f"data_offsets=[{begin}, {end}]")
        cursor, previous = end, name
    if cursor != data_len:
        what = f"the tensors need {cursor} data bytes but the file holds {data_len}"
        if cursor < data_len:
            what = f"{data_len - cursor} trailing bytes follow the last tensor"
        raise _bad(path, what, "the file is truncated or corrupt; save it again", f"size {size}")
    return entries, metadata, 8 + n, data_len


def _check_entry(path: str, name: str, info: object) -> tuple[np.dtype, tuple, int, int]:
    """One header entry -> (dtype, shape, begin, end), or a FileFormatError."""
    where = f"tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        what = f"{where} must be an object with exactly dtype, shape and data_offsets"
        raise _bad(path, what, _AGAIN, f"{info!r:.200}")
    kind, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if kind in _FOREIGN:
        fix = "convert it to F32 before saving (e.g. tensor.float() in PyTorch)"
        raise _bad(path, f"{where} has dtype {kind}, which NumPy cannot hold", fix, f"dtype {kind}")
    if not isinstance(kind, str) or kind not in DTYPES:
        fix = "use one of " + ", ".join(DTYPES)
        raise _bad(path, f"{where} has an unknown dtype", fix, f"dtype {kind!r:.50}")
    if not isinstance(shape, list) or len(shape) > _MAX_RANK or not all(_nat(d) for d in shape):
        what = f"{where} must have a shape of at most {_MAX_RANK} non-negative integers"
        raise _bad(path, what, _AGAIN, f"shape {shape!r:.200}")
    ok = isinstance(offsets, list) and len(offsets) == 2 and all(_nat(o) for o in offsets)
    if not ok or offsets[0] > offsets[1]:
        what = f"{where} must have data_offsets [begin, end] with 0 <= begin <= end"
        raise _bad(path, what, _AGAIN, f"data_offsets {offsets!r:.200}")
    begin, end = offsets
    dtype = DTYPES[kind]
    need = math.prod(shape) * dtype.itemsize  # Python ints: cannot wrap around
    if end - begin != need:
        what = f"{where} of shape {tuple(shape)} and dtype {kind} needs {need} bytes, "
        what += f"but its offsets span {end - begin}"
        raise _bad(path, what, _AGAIN, f"data_offsets {offsets}")
    return dtype, tuple(shape), begin, end


def load_file(
    path: str | os.PathLike[str],
    max_header: int = MAX_HEADER,
    max_bytes: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file, checking everything before using anything.

    Parameters
    ----------
    path : str or PathLike
        The file. Never memory-mapped; the data region is read with one read call.
    max_header : int, default 100 MB
        Largest header accepted, in bytes.
    max_bytes : int, optional
        Largest data region accepted, in bytes; refuse bigger files before reading them.

    Returns
    -------
    tensors : dict of str -> ndarray
        Fresh, writable, native-endian arrays in sorted name order, shapes as stored.
    metadata : dict of str -> str
        The ``__metadata__`` entry, or ``{}``.

    Raises
    ------
    FileFormatError
        The file is missing, a directory, empty, truncated, corrupt, or another format
        (pickle, zip/.npz/.pt, ONNX); the message names the file and what is wrong.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save_file(path, {"b": np.arange(3, dtype=np.int64)})
    >>> load_file(path)[0]["b"]
    array([0, 1, 2])
    """
    path = os.fspath(path)
    with _open_regular(path) as f:
        entries, metadata, start, data_len = _parse(f, path, max_header)
        if max_bytes is not None and data_len > max_bytes:
            raise _bad(
                path,
                f"the tensors hold {data_len} bytes, more than max_bytes={max_bytes}",
                "pass a larger max_bytes if you trust this file",
                f"{data_len} bytes",
            )
        f.seek(start)
        data = f.read(data_len + 1)  # one byte more: detects a file that grew meanwhile
    if len(data) != data_len:
        raise _bad(path, "the file changed size while being read", "read it again")
    view = memoryview(data)
    tensors: dict[str, np.ndarray] = {}
    for name in sorted(entries):
        dtype, shape, begin, end = entries[name]
        if dtype == np.bool_ and end > begin and np.frombuffer(view[begin:end], np.uint8).max() > 1:
            raise _bad(path, f"BOOL tensor {name!r} holds bytes other than 0 and 1", "save again")
        flat = np.frombuffer(view[begin:end], dtype=dtype) if end > begin else np.empty(0, dtype)
        tensors[name] = flat.reshape(shape).astype(dtype.newbyteorder("="), copy=True)
    return tensors, metadata


def read_metadata(path: str | os.PathLike[str], max_header: int = MAX_HEADER) -> dict[str, str]:
    """Return only the ``__metadata__`` of a safetensors file, reading just its header.

    The whole header is validated as in :func:`load_file`; tensor bytes are not read.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save_file(path, {"w": np.zeros(1, np.float32)}, {"epoch": "3"})
    >>> read_metadata(path)
    {'epoch': '3'}
    """
    path = os.fspath(path)
    with _open_regular(path) as f:
        return _parse(f, path, max_header)[1]
