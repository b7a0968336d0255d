"""Generated image folders for the batch tests: tiny good images and every kind of bad file."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import convscope as cs

SPEC = "16x16x3 | conv(4, 3) | relu | maxpool(2) | flatten | linear(3)"
CLASSES = ["cat", "dog", "emu"]


def model_file(path: Path, spec: str = SPEC, classes: list[str] | None = None) -> Path:
    cs.save(cs.parse(spec, seed=0), path, classes=CLASSES if classes is None else classes)
    return path


def tiny(path: Path, seed: int, side: int = 16, mode: str = "RGB") -> Path:
    """A random ``side`` x ``side`` picture (any Pillow mode), written by Pillow."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((side, side, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def claiming_png(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


def bad_files(root: Path) -> list[Path]:
    """Corrupt, truncated, bomb-sized and unreadable files under ``root``; their paths."""
    root.mkdir(parents=True, exist_ok=True)
    bad = [root / "corrupt.png", root / "truncated.png", root / "bomb.png",
           root / "broken-link.jpg", root / "pipe.png"]
    bad[0].write_text("this is not an image\n")
    full = tiny(root / "full.tmp.png", 99).read_bytes()
    bad[1].write_bytes(full[: len(full) // 2])
    (root / "full.tmp.png").unlink()
    claiming_png(bad[2], 20_000, 20_000)
    os.symlink(root / "no-such-target.png", bad[3])
    os.mkfifo(bad[4])
    if os.geteuid() != 0:  # root reads anything: a locked file is only unreadable to others
        locked = tiny(root / "locked.png", 98)
        locked.chmod(0)
        bad.append(locked)
    return bad


def folder(root: Path, n: int, seed: int = 0, per_folder: int = 10) -> list[Path]:
    """``n`` good images in subfolders of ``per_folder``, in several modes and sizes."""
    modes = ["RGB", "L", "RGBA", "P"]
    out = []
    for i in range(n):
        sub = root / f"s{i // per_folder:03d}"
        ext = ".png" if i % 5 else ".PNG"
        side = 16 if i % 3 else 20  # some need resizing
        out.append(tiny(sub / f"img{i:05d}{ext}", seed * 100_000 + i, side, modes[i % 4]))
    return out


def many(root: Path, n: int, per_folder: int = 500) -> None:
    """``n`` small images fast: one encoded PNG written ``n`` times (for memory tests)."""
    tiny(root / "seed.tmp.png", 0)
    data = (root / "seed.tmp.png").read_bytes()
    (root / "seed.tmp.png").unlink()
    for i in range(n):
        sub = root / f"d{i // per_folder:04d}"
        if i % per_folder == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:07d}.png").write_bytes(data)
