"""Reading a weights file into NumPy arrays, without unpickling anything.

Three file formats are read (the loading into a model is :mod:`.weights`):

- ``.safetensors``, by convscope's own reader (:func:`convscope.safetensors.load_file`);
- ``.npz``, by ``np.load(allow_pickle=False)`` after the archive's table of contents has been
  checked (every member a ``.npy``, their total size under a limit), and every member read
  and checked, so a pickled object array is refused, not skipped;
- ``.pt`` / ``.pth``, only through ``torch.load(weights_only=True)`` and only when PyTorch is
  installed (it is never a dependency of convscope).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, message

__all__ = ["read_weights", "MAX_WEIGHT_BYTES"]

MAX_WEIGHT_BYTES = 2 * 2**30
"""Largest weights file (or total of an .npz's members) read by default."""


def _bad(path: str, what: str, fix: str, received: str | None = None) -> FileFormatError:
    return FileFormatError(message(f"weights file {path!r}", what, fix, received))


def _is_torch(value: Any) -> bool:
    """A torch tensor, recognised without importing torch."""
    return type(value).__module__.partition(".")[0] == "torch"


def _to_numpy(name: str, value: Any, path: str) -> np.ndarray:
    if _is_torch(value):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()  # exact: every bfloat16 is a float32
        value = value.numpy()
    if not isinstance(value, np.ndarray):
        raise _bad(path, f"entry {name!r} is not a tensor", "keep only tensors in the file "
                   "(a state_dict)", f"type {type(value).__name__}")
    if value.dtype.kind not in "biuf":
        raise _bad(path, f"tensor {name!r} has dtype {value.dtype}, not numbers",
                   "save numeric arrays only", f"dtype {value.dtype}")
    return value


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".safetensors", ".npz"):
        return suffix[1:]
    if suffix in (".pt", ".pth", ".bin", ".ckpt"):
        return "torch"
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except _ZIP_ERRORS:
            return "npz"  # the .npz reader says what is wrong with it
        return "torch" if any(n.endswith("data.pkl") for n in names) else "npz"
    if head[:1] == b"\x80":
        return "torch"
    return "safetensors"


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError,
               RuntimeError, NotImplementedError)  # damaged, encrypted, unknown compression


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype]:
    """Shape and dtype from a member's .npy header, read before NumPy allocates anything."""
    fmt = np.lib.format
    with zf.open(info) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version} is not read here")
    return shape, dtype


def _read_npz(path: str, max_bytes: int) -> dict[str, np.ndarray]:
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                name = info.filename
                if not name.endswith(".npy") or name.startswith("/") or ".." in name.split("/"):
                    raise _bad(path, f"member {name!r} is not a .npy array",
                               "an .npz holds only arrays; save it with np.savez",
                               f"member {name!r}")
                total += info.file_size
                if total > max_bytes:
                    raise _bad(path, f"the arrays would take more than the limit of {max_bytes} "
                               "bytes once unpacked", "pass a larger max_bytes if you trust "
                               "this file", f"{len(infos)} members")
                shape, dtype = _npy_header(zf, info)
                if dtype.hasobject:
                    raise _bad(path, f"member {name[:-4]!r} holds pickled Python objects, "
                               "which are "
                               "never loaded (they can run code)",
                               "save plain numeric arrays with np.savez", f"dtype {dtype}")
                need = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
                if need > info.file_size:
                    raise _bad(path, f"member {name!r} claims {need} bytes of data but holds "
                               f"at most {info.file_size}", "the archive is damaged; save it "
                               "again", f"shape {shape}, dtype {dtype}")
        out: dict[str, np.ndarray] = {}
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                out[key] = _to_numpy(key, npz[key], path)
    except FileFormatError:
        raise
    except _ZIP_ERRORS as exc:
        raise _bad(path, "the file is not a readable .npz archive (damaged, truncated or "
                   "encrypted)", "save it again with np.savez",
                   f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return out


def _read_torch(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise _bad(path, "reading a PyTorch .pt/.pth file needs PyTorch, which is not installed",
                   "pip install torch, or convert the file elsewhere: "
                   "safetensors.torch.save_file(state_dict, 'w.safetensors') or "
                   "np.savez('w.npz', **{k: v.numpy() for k, v in state_dict.items()})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; all mean "not loadable"
        raise _bad(path, "PyTorch could not read it as weights only (weights_only=True refuses "
                   "anything but tensors and plain containers)",
                   "save only the state_dict: torch.save(model.state_dict(), path)",
                   f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if isinstance(obj, Mapping) and not all(_is_torch(v) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise _bad(path, "the file holds no state_dict (a mapping of names to tensors)",
                   "save it with torch.save(model.state_dict(), path)",
                   f"type {type(obj).__name__}")
    return {str(k): _to_numpy(str(k), v, path) for k, v in obj.items()}


def read_weights(path: str | os.PathLike[str], max_bytes: int = MAX_WEIGHT_BYTES
                 ) -> tuple[dict[str, np.ndarray], bool]:
    """Read every tensor of a ``.safetensors``, ``.npz`` or ``.pt``/``.pth`` file.

    Returns
    -------
    tensors : dict of str -> ndarray
        In the file's order where it has one.
    ordered : bool
        Whether that order is the one the file was written in (False for safetensors).
    """
    p = Path(path)
    s = str(path)
    if not p.exists():
        raise _bad(s, "the file does not exist", "check the path")
    if not p.is_file():
        raise _bad(s, "the path is not a regular file", "give the path of a weights file")
    if p.suffix.lower() == ".onnx":
        raise _bad(s, "this is an ONNX model, not a weights file",
                   "import it with convscope.interop.load_onnx (convscope import model.onnx ...)")
    if p.suffix.lower() in (".h5", ".hdf5", ".keras"):
        raise _bad(s, "Keras .h5/.keras files are not read",
                   "save the weights as .npz from Keras: np.savez('w.npz', "
                   "**{w.path: w.numpy() for w in model.weights})")
    size = p.stat().st_size
    if size > max_bytes:
        raise _bad(s, f"the file holds {size} bytes, more than the limit of {max_bytes}",
                   "pass a larger max_bytes if you trust this file", f"{size} bytes")
    kind = _kind(p)
    if kind == "safetensors":
        from ..safetensors import load_file

        tensors, _ = load_file(p, max_bytes=max_bytes)
        return tensors, False
    if kind == "npz":
        return _read_npz(s, max_bytes), True
    return _read_torch(s), True

