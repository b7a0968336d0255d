"""Hostile image files through ``load_image``, beyond what ``test_data.py`` covers.

``test_data.py`` holds the common modes, the PNG bomb and a truncated PNG. Here: bombs in
every allowed format (GIF, BMP, TIFF besides PNG) refused before decoding, a configurable
limit, a folder holding a bomb, truncation of every format, lying extensions, formats
outside the allowed list (EPS would run Ghostscript), and the colour conversions checked
against Pillow's own ``convert('RGB')`` and against 16-bit PNG files written by hand.
"""

from __future__ import annotations

import os
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import convscope as cs
from convscope.data import ImageFolder, images, load_image
from convscope.errors import ImageError


class Payload:
    """Unpickling this creates ``marker``: the proof that a loader ran code from a file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.mkdir, (self.marker,))


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.safetensors"
    cs.save(cs.parse("8x8x3 | conv(2, 3) | flatten | linear(2)", seed=1), path)
    return path


# ----------------------------------------------------------------------------- images
def _claiming_png(path: Path, width: int, height: int) -> Path:
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


def _claiming_gif(path: Path, side: int) -> Path:
    Image.new("L", (1, 1)).save(path, format="GIF")
    raw = bytearray(path.read_bytes())
    raw[6:10] = struct.pack("<HH", side, side)  # logical screen
    at = raw.index(b",")  # image descriptor
    raw[at + 5:at + 9] = struct.pack("<HH", side, side)
    path.write_bytes(bytes(raw))
    return path


def _claiming_bmp(path: Path, side: int) -> Path:
    Image.new("RGB", (1, 1)).save(path, format="BMP")
    raw = bytearray(path.read_bytes())
    raw[18:26] = struct.pack("<ii", side, side)
    path.write_bytes(bytes(raw))
    return path


def _claiming_tiff(path: Path, side: int) -> Path:
    Image.new("L", (1, 1)).save(path, format="TIFF")
    raw = bytearray(path.read_bytes())
    (count,) = struct.unpack("<H", raw[8:10])
    for i in range(count):  # ImageWidth (256) and ImageLength (257) entries
        at = 10 + 12 * i
        tag, kind = struct.unpack("<HH", raw[at:at + 4])
        if tag in (256, 257):
            fmt = "<H" if kind == 3 else "<I"
            raw[at + 8:at + 8 + struct.calcsize(fmt)] = struct.pack(fmt, side)
    path.write_bytes(bytes(raw))
    return path


BOMB_MAKERS = {"png": lambda p, s: _claiming_png(p, s, s), "gif": _claiming_gif,
               "bmp": _claiming_bmp, "tif": _claiming_tiff}


@pytest.mark.parametrize("fmt", sorted(BOMB_MAKERS))
@pytest.mark.parametrize("side", [7_000, 20_000])
def test_image_bombs_in_every_format_are_refused_before_decoding(tmp_path, monkeypatch, fmt,
                                                                 side):
    path = BOMB_MAKERS[fmt](tmp_path / f"bomb.{fmt}", side)
    assert path.stat().st_size < 500

    def no_decoding(self):  # noqa: ANN001, ANN202
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=rf"bomb\.{fmt}'.*claims .*pixels.*not decoded"):
            load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_the_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    cs.data.save_image(path, np.zeros((3, 64, 64)))
    monkeypatch.setattr(images, "DEFAULT_MAX_PIXELS", 64 * 64 - 1)
    with pytest.raises(ImageError, match=r"claims 64x64 = 4096 pixels, more than max_pixels=4095"):
        load_image(path)
    assert load_image(path, max_pixels=4096).shape == (3, 64, 64)


def test_a_folder_holding_a_bomb_names_it_before_decoding_anything(tmp_path, monkeypatch):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        cs.data.save_image(tmp_path / cls / "ok.png", np.zeros((3, 8, 8)))
    _claiming_png(tmp_path / "b" / "zz_bomb.png", 30_000, 30_000)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageError, match=r"zz_bomb\.png'.*claims 900000000 pixels"):
        ImageFolder(tmp_path)


def _saved(tmp: Path, name: str, img: Image.Image, **kw) -> Path:
    img.save(tmp / name, **kw)
    return tmp / name


NOISE = np.random.default_rng(3).integers(0, 256, (24, 20, 3), dtype=np.uint8)


@pytest.mark.parametrize(("name", "fmt"), [("a.jpg", "JPEG"), ("a.gif", "GIF"), ("a.bmp", "BMP"),
                                           ("a.tif", "TIFF"), ("a.webp", "WEBP")])
def test_truncated_images_of_every_format_are_refused(tmp_path, name, fmt):
    if fmt not in Image.SAVE:
        pytest.skip(f"this Pillow cannot write {fmt}")
    path = _saved(tmp_path, name, Image.fromarray(NOISE), format=fmt)
    raw = path.read_bytes()
    for keep in (len(raw) // 2, len(raw) - 40, 30):
        path.write_bytes(raw[:keep])
        with pytest.raises(ImageError, match=rf"{name}'"):
            load_image(path)


def test_lying_extensions(tmp_path, good):
    jpeg_named_png = _saved(tmp_path, "photo.png", Image.fromarray(NOISE), format="JPEG")
    assert load_image(jpeg_named_png).shape == (3, 24, 20)  # content decides: a JPEG
    png_named_bmp = _saved(tmp_path, "photo.bmp", Image.fromarray(NOISE), format="PNG")
    np.testing.assert_array_equal(load_image(png_named_bmp),
                                  NOISE.transpose(2, 0, 1) / np.float32(255))
    marker = tmp_path / "ran"
    (tmp_path / "pickle.png").write_bytes(pickle.dumps(Payload(str(marker))))
    model_named_png = tmp_path / "model.png"
    model_named_png.write_bytes(good.read_bytes())
    (tmp_path / "page.png").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    for name in ("pickle.png", "model.png", "page.png"):
        with pytest.raises(ImageError, match=rf"{name}': the file is not a readable PNG"):
            load_image(tmp_path / name)
    assert not marker.exists()


@pytest.mark.parametrize(("fmt", "ext"), [("PCX", "png"), ("TGA", "jpg"), ("ICO", "png"),
                                          ("EPS", "png"), ("PDF", "png"), ("SGI", "bmp")])
def test_formats_outside_the_allowed_list_are_refused(tmp_path, monkeypatch, fmt, ext):
    """Pillow can read these (EPS by running Ghostscript): convscope never tries them."""
    if fmt not in Image.SAVE:
        pytest.skip(f"this Pillow cannot write {fmt}")
    path = tmp_path / f"image.{ext}"
    try:
        Image.fromarray(NOISE).save(path, format=fmt)
    except OSError:  # EPS writing needs nothing, but be safe on odd builds
        pytest.skip(f"cannot write {fmt} here")
    import subprocess

    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("ran a program"))
    with pytest.raises(ImageError, match=rf"image\.{ext}': the file is not a readable PNG"):
        load_image(path)


def _png_by_hand(path: Path, pixels: np.ndarray, colour_type: int) -> Path:
    """A 16-bit PNG written from the specification with zlib, independent of Pillow."""
    h, w = pixels.shape[:2]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    rows = pixels.astype(">u2").reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter 0 on every row
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(
        raw)) + chunk(b"IEND", b""))
    return path


def test_16_bit_png_written_by_hand(tmp_path):
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    rgb = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    g = _png_by_hand(tmp_path / "g16.png", gray, colour_type=0)
    np.testing.assert_array_equal(load_image(g, channels=1)[0], gray / np.float32(65535))
    c = _png_by_hand(tmp_path / "rgb48.png", rgb, colour_type=2)
    # Pillow reads 48-bit RGB as 8-bit RGB: within one 8-bit step of the true value
    np.testing.assert_allclose(load_image(c), rgb.transpose(2, 0, 1) / 65535, atol=1 / 255)


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "CMYK", "YCbCr", "1", "L"])
def test_modes_convert_as_pillow_converts(tmp_path, mode):
    """Against Pillow's own convert('RGB'), the reference torchvision uses."""
    base = Image.fromarray(NOISE)
    if mode == "P":
        img = base.quantize(16)
    elif mode == "RGBA":
        alpha = np.random.default_rng(4).integers(0, 256, NOISE.shape[:2], dtype=np.uint8)
        img = Image.merge("RGBA", [*base.split(), Image.fromarray(alpha)])
    elif mode == "LA":
        img = base.convert("LA")
    else:
        img = base.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "YCbCr") else "PNG"
    path = _saved(tmp_path, f"img.{fmt.lower()}", img, format=fmt)
    with Image.open(path) as check:
        assert check.mode == mode
        reference = np.asarray(check.convert("RGB"), np.float32) / 255
    np.testing.assert_allclose(load_image(path), reference.transpose(2, 0, 1), atol=1e-6)
