"""Image files, folders of images, built-in datasets, splits and batches."""

from __future__ import annotations

import struct
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from convscope.data import (
    DEFAULT_MAX_PIXELS,
    SHAPE_CLASSES,
    Dataset,
    ImageFolder,
    batches,
    digits,
    image_size,
    images,
    load_dataset,
    load_image,
    save_image,
    shapes,
)
from convscope.errors import ArgumentError, ArgumentTypeError, DataError, ImageError

RNG = np.random.default_rng(0)
U8_RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
U8_GRAY = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
U8_ALPHA = RNG.integers(0, 256, (5, 7), dtype=np.uint8)


def _write(img: Image.Image, path, **kwargs) -> str:
    img.save(path, **kwargs)
    return str(path)


def _chw(hwc_u8: np.ndarray, scale: float = 255.0) -> np.ndarray:
    return (hwc_u8.astype(np.float32) / scale).transpose(2, 0, 1)


# ----------------------------------------------------------------------------- modes


def test_gray_l_png(tmp_path):
    path = _write(Image.fromarray(U8_GRAY), tmp_path / "l.png")
    gray = load_image(path, channels=1)
    assert gray.shape == (1, 5, 7) and gray.dtype == np.float32
    np.testing.assert_array_equal(gray[0], U8_GRAY / np.float32(255))
    rgb = load_image(path)
    assert rgb.shape == (3, 5, 7)
    np.testing.assert_array_equal(rgb, np.repeat(gray, 3, axis=0))


def test_la_png_drops_alpha(tmp_path):
    img = Image.merge("LA", [Image.fromarray(U8_GRAY), Image.fromarray(U8_ALPHA)])
    path = _write(img, tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(path, channels=1)[0], U8_GRAY / np.float32(255))


def test_rgb_png_exact_and_rgba_drops_alpha(tmp_path):
    path = _write(Image.fromarray(U8_RGB), tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(path), _chw(U8_RGB))
    rgba = np.concatenate([U8_RGB, np.zeros((5, 7, 1), np.uint8)], axis=2)  # fully transparent
    path = _write(Image.fromarray(rgba), tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(path), _chw(U8_RGB))


def test_channels_1_is_itu_601_luma_like_pil(tmp_path):
    path = _write(Image.fromarray(U8_RGB), tmp_path / "rgb.png")
    gray = load_image(path, channels=1)[0]
    expected = U8_RGB.astype(np.float64) @ [0.299, 0.587, 0.114] / 255
    np.testing.assert_allclose(gray, expected, atol=1e-6)
    pil = np.asarray(Image.fromarray(U8_RGB).convert("L")) / 255
    np.testing.assert_allclose(gray, pil, atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize("transparency", [0, bytes([0, 128, 255])], ids=["index", "bytes"])
def test_palette_with_transparency_gives_palette_colours(tmp_path, transparency):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255]
    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    img = Image.fromarray(index).convert("P")
    img.putpalette(palette)
    img.putdata(index.ravel().tolist())
    path = _write(img, tmp_path / "p.png", transparency=transparency)
    with Image.open(path) as check:
        assert check.mode == "P" and "transparency" in check.info
    expected = np.array(palette, np.float32).reshape(3, 3)[index] / 255
    np.testing.assert_array_equal(load_image(path), expected.transpose(2, 0, 1))
    luma = expected @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(load_image(path, channels=1)[0], luma, atol=1e-6)


def test_mode_1_bilevel(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], bool)
    path = _write(Image.fromarray(bits), tmp_path / "b.png")
    with Image.open(path) as check:
        assert check.mode == "1"
    np.testing.assert_array_equal(load_image(path, channels=1)[0], bits.astype(np.float32))


def test_16_bit_keeps_precision(tmp_path):
    values = np.array([[0, 1, 2, 65535], [1000, 1001, 30000, 65534]], np.uint16)
    path = _write(Image.fromarray(values), tmp_path / "i16.png")
    with Image.open(path) as check:
        assert check.mode.startswith("I;16")
    out = load_image(path, channels=1)[0]
    np.testing.assert_array_equal(out, values / np.float32(65535))
    assert out[0, 1] > 0 and out[1, 1] > out[1, 0]  # 8-bit rounding would erase these
    flat = _write(Image.fromarray(np.full((6, 6), 12345, np.uint16)), tmp_path / "flat16.png")
    resized = load_image(flat, size=3, channels=3)
    np.testing.assert_allclose(resized, 12345 / 65535, rtol=1e-6)


def test_mode_i_and_f_tiff(tmp_path):
    ints = np.array([[0, 32768, 65535, 70000]], np.int32)
    path = _write(Image.fromarray(ints), tmp_path / "i.tif")
    np.testing.assert_allclose(load_image(path, channels=1)[0], [[0, 32768 / 65535, 1, 1]])
    floats = np.array([[0.25, 0.5, 1.5, -1.0]], np.float32)
    path = _write(Image.fromarray(floats), tmp_path / "f.tif")
    np.testing.assert_array_equal(load_image(path, channels=1)[0], [[0.25, 0.5, 1.0, 0.0]])


def test_jpeg_rgb_and_cmyk(tmp_path):
    colour = (200, 30, 90)
    path = _write(Image.new("RGB", (16, 16), colour), tmp_path / "c.jpg", quality=100)
    np.testing.assert_allclose(load_image(path)[:, 8, 8], np.array(colour) / 255, atol=3 / 255)
    path = _write(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), tmp_path / "cmyk.jpg", quality=100)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    np.testing.assert_allclose(load_image(path)[:, 8, 8], [0.0, 1.0, 1.0], atol=3 / 255)


def test_content_decides_not_extension(tmp_path):
    path = _write(Image.fromarray(U8_RGB), tmp_path / "really_png.jpg", format="PNG")
    np.testing.assert_array_equal(load_image(path), _chw(U8_RGB))


def test_resize_int_and_pair_match_pil_bilinear(tmp_path):
    big = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    path = _write(Image.fromarray(big), tmp_path / "big.png")
    assert load_image(path, size=16).shape == (3, 16, 16)
    out = load_image(path, size=(20, 30))
    assert out.shape == (3, 20, 30)
    pil = np.asarray(Image.fromarray(big).resize((30, 20), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(out, _chw(pil), atol=1.5 / 255)
    assert load_image(path, size=(40, 60)).tobytes() == load_image(path).tobytes()


# ----------------------------------------------------------------------------- refusals


def _bomb_png(path, width: int, height: int) -> str:
    """A valid 1x1 PNG whose header claims width x height (with a correct CRC)."""
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    with open(path, "wb") as f:
        f.write(raw)
    return str(path)


BOMBS = [
    (8_000, r"claims 8000x8000 = 64000000 pixels, more than max_pixels=40000000"),
    (10_000, r"claims 10000x10000 = 100000000 pixels, more than max_pixels"),  # Pillow warns
    (20_000, r"claims 400000000 pixels, more than Pillow's hard limit of 178956970"),
]


@pytest.mark.parametrize(("side", "pattern"), BOMBS, ids=["ours", "pillow-warns", "pillow-refuses"])
def test_bomb_png_refused_before_decoding(tmp_path, monkeypatch, side, pattern):
    path = _bomb_png(tmp_path / "bomb.png", side, side)
    assert (tmp_path / "bomb.png").stat().st_size < 100

    def no_decoding(self):  # noqa: ANN001, ANN202
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    with pytest.raises(ImageError, match=r"bomb\.png.*" + pattern + r".*not decoded"):
        load_image(path)
    with pytest.raises(ImageError, match=pattern):
        image_size(path)


def test_max_pixels_argument_and_default(tmp_path, monkeypatch):
    path = _write(Image.fromarray(U8_RGB), tmp_path / "rgb.png")
    with pytest.raises(ImageError, match=r"claims 7x5 = 35 pixels, more than max_pixels=34"):
        load_image(path, max_pixels=34)
    assert load_image(path, max_pixels=35).shape == (3, 5, 7)
    assert 1_000_000 <= DEFAULT_MAX_PIXELS < 89_478_485  # ours acts before Pillow's warning
    with pytest.raises(ArgumentError, match=r"max_pixels must be a positive int"):
        load_image(path, max_pixels=0)
    monkeypatch.setattr(images, "DEFAULT_MAX_PIXELS", 34)  # the module constant is read per call
    with pytest.raises(ImageError, match=r"more than max_pixels=34"):
        load_image(path)
    with pytest.raises(ArgumentError, match=r"size 100x100 has more pixels than max_pixels=35"):
        load_image(path, size=100, max_pixels=35)


def test_truncated_png(tmp_path):
    noise = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    raw = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match=r"cut\.png.*cannot be decoded.*truncated or damaged"):
        load_image(tmp_path / "cut.png")


def test_text_named_png_missing_and_directory(tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all\n")
    with pytest.raises(ImageError, match=r"notes\.png.*not a readable PNG, JPEG"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(ImageError, match=r"nothing\.png.*does not exist"):
        load_image(tmp_path / "nothing.png")
    with pytest.raises(ImageError, match=r"the path is a directory"):
        load_image(tmp_path)


def test_bad_arguments(tmp_path):
    path = _write(Image.fromarray(U8_RGB), tmp_path / "rgb.png")
    with pytest.raises(ArgumentError, match=r"channels must be 1 \(grayscale\) or 3.*channels=4"):
        load_image(path, channels=4)
    with pytest.raises(ArgumentTypeError, match=r"size must be an int or a pair.*size='64'"):
        load_image(path, size="64")
    with pytest.raises(ArgumentError, match=r"size must be at least 1 pixel.*size=\(0, 5\)"):
        load_image(path, size=(0, 5))


def test_save_image_round_trip_and_errors(tmp_path):
    chw = RNG.random((3, 6, 4))
    save_image(tmp_path / "a.png", chw)
    np.testing.assert_allclose(load_image(tmp_path / "a.png"), chw, atol=0.5 / 255 + 1e-6)
    save_image(tmp_path / "g.png", chw[0])
    np.testing.assert_allclose(
        load_image(tmp_path / "g.png", channels=1)[0], chw[0], atol=0.51 / 255
    )
    save_image(tmp_path / "one.png", chw[:1])
    save_image(tmp_path / "clip.png", np.full((2, 2), 7.0))
    assert load_image(tmp_path / "clip.png").min() == 1.0
    with pytest.raises(ArgumentError, match=r"\(H, W\) or \(C, H, W\).*shape \(2, 3, 4, 4\)"):
        save_image(tmp_path / "x.png", np.zeros((2, 3, 4, 4)))
    with pytest.raises(ArgumentError, match=r"NaN"):
        save_image(tmp_path / "x.png", np.full((2, 2), np.nan))
    with pytest.raises(ImageError, match=r"cannot write the file"):
        save_image(tmp_path / "missing" / "x.png", chw)


# ----------------------------------------------------------------------------- ImageFolder


def _folder(root, layout: dict[str, list[tuple[str, tuple[int, int]]]]) -> None:
    for cls, files in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, (h, w) in files:
            arr = np.full((h, w, 3), zlib.crc32((cls + name).encode()) % 256, np.uint8)
            Image.fromarray(arr).save(root / cls / name)


def test_image_folder_happy_path(tmp_path):
    _folder(tmp_path, {"dog": [("1.png", (8, 8)), ("2.jpg", (8, 8))], "cat": [("a.png", (8, 8))]})
    (tmp_path / "cat" / "README.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "cat" / ".thumbs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / ".thumbs" / "t.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / ".hidden.png")
    (tmp_path / "cat" / "sub").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "cat" / "sub" / "b.BMP")
    ds = ImageFolder(tmp_path, channels=1)
    assert isinstance(ds, Dataset) and ds.classes == ["cat", "dog"]
    assert ds.images.shape == (4, 1, 8, 8) and ds.labels.tolist() == [0, 0, 1, 1]
    assert [p.split("/")[-1] for p in ds.files] == ["a.png", "b.BMP", "1.png", "2.jpg"]
    np.testing.assert_allclose(ds.images[1], 0.299, atol=1e-6)
    assert repr(ds).startswith("Dataset(") and "4 images of 8x8x1, 2 classes" in repr(ds)


def test_image_folder_sizes(tmp_path):
    _folder(tmp_path, {"a": [("1.png", (8, 8)), ("2.png", (10, 12))], "b": [("3.png", (8, 8))]})
    with pytest.raises(
        DataError, match=r"images differ in size: .*1\.png' is 8x8 but .*2\.png' is 10x12"
    ):
        ImageFolder(tmp_path)
    ds = ImageFolder(tmp_path, size=(6, 5))
    assert ds.images.shape == (3, 3, 6, 5)
    assert load_dataset(str(tmp_path), size=4).images.shape == (3, 3, 4, 4)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match=r"the folder does not exist"):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match=r"the path is a file, not a folder"):
        ImageFolder(tmp_path / "file.txt")
    Image.new("RGB", (4, 4)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match=r"no class subfolders; 1 images lie directly in it"):
        ImageFolder(tmp_path)
    _folder(tmp_path, {"full": [("1.png", (4, 4))]})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"class folder 'empty' holds no images"):
        ImageFolder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match=r"broken\.png"):
        ImageFolder(tmp_path, size=4)


# ----------------------------------------------------------------------------- built-in sets


def test_shapes_deterministic_balanced_and_in_range():
    a, b, c = shapes(n=103, seed=7), shapes(n=103, seed=7), shapes(n=103, seed=8)
    assert a.images.tobytes() == b.images.tobytes() and np.array_equal(a.labels, b.labels)
    assert a.images.tobytes() != c.images.tobytes()
    assert a.images.shape == (103, 3, 64, 64) and a.images.dtype == np.float32
    assert a.classes == list(SHAPE_CLASSES) and len(set(a.classes)) == 10
    counts = a.counts()
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    # every image shows a shape: foreground pixels differ clearly from the background
    spread = a.images.max(axis=(1, 2, 3)) - a.images.min(axis=(1, 2, 3))
    assert spread.min() > 0.3


def test_shapes_speed_size_and_errors():
    start = time.perf_counter()
    ds = shapes()
    assert time.perf_counter() - start < 10  # < 3 s on a quiet core; loose for shared CI
    assert len(ds) == 3000 and ds.counts().tolist() == [300] * 10
    assert shapes(n=10, size=32).images.shape == (10, 3, 32, 32)
    with pytest.raises(ArgumentError, match=r"size must be at least 16.*size=8"):
        shapes(size=8)
    with pytest.raises(ArgumentTypeError, match=r"n must be an int.*n=2.5"):
        shapes(n=2.5)


def test_digits():
    pytest.importorskip("sklearn")
    ds = digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == np.float32
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    assert ds.classes == [str(d) for d in range(10)] and set(ds.labels.tolist()) == set(range(10))


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"needs scikit-learn.*pip install convscope\[digits\]"):
        digits()


def test_load_dataset_resolution(tmp_path):
    assert load_dataset("shapes", size=32, seed=3).images.shape == (3000, 3, 32, 32)
    with pytest.raises(ArgumentError, match=r"shapes images have 3 channel\(s\)"):
        load_dataset("shapes", channels=1)
    with pytest.raises(DataError, match=r"'nope' is neither a built-in dataset nor an existing"):
        load_dataset("nope")
    with pytest.raises(ArgumentError, match=r"the digits images are 8x8"):
        load_dataset("digits", size=16)


# ----------------------------------------------------------------------------- Dataset


def _indexed(n: int = 50, k: int = 3) -> Dataset:
    """A dataset whose image i holds the value i, so items can be traced."""
    images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
    return Dataset(images, np.arange(n) % k, [f"c{j}" for j in range(k)], "idx")


def _ids(ds: Dataset) -> list[int]:
    return ds.images[:, 0, 0, 0].astype(int).tolist()


def test_split_disjoint_covering_deterministic_stratified():
    ds = _indexed(50)
    train, val, test = ds.split()
    ids = [_ids(p) for p in (train, val, test)]
    assert sorted(sum(ids, [])) == list(range(50))
    assert (len(train), len(val), len(test)) == (40, 5, 5)
    for part in (train, val, test):
        assert _ids(part) == sorted(_ids(part))  # original order kept within a part
        np.testing.assert_array_equal(part.labels, np.array(_ids(part)) % 3)  # labels follow images
        assert part.counts().min() >= 1
    again = [_ids(p) for p in ds.split()]
    assert again == ids
    assert [_ids(p) for p in ds.split(seed=1)] != ids
    assert [len(p) for p in ds.split((0.5, 0.5))] == [25, 25]


def test_split_and_dataset_errors():
    ds = _indexed(10)
    with pytest.raises(ArgumentError, match=r"fractions must sum to 1, not 0\.9"):
        ds.split((0.8, 0.1))
    with pytest.raises(ArgumentError, match=r"non-negative numbers"):
        ds.split((1.2, -0.2))
    with pytest.raises(DataError, match=r"images must be a numeric array of shape \(N, C, H, W\)"):
        Dataset(np.zeros((2, 8, 8)), np.zeros(2, int), ["a"])
    with pytest.raises(DataError, match=r"labels must be integers of shape \(N,\).*2 images"):
        Dataset(np.zeros((2, 1, 8, 8)), np.zeros(3, int), ["a"])
    with pytest.raises(DataError, match=r"labels must lie in \[0, 1\).*labels in \[0, 1\]"):
        Dataset(np.zeros((2, 1, 8, 8)), np.array([0, 1]), ["a"])


# ----------------------------------------------------------------------------- batches


def test_batches_cover_everything_in_order():
    ds = _indexed(10)
    got = list(batches(ds, 4))
    assert [len(y) for _, y in got] == [4, 4, 2]
    assert sum((_ids(Dataset(x, y, ds.classes)) for x, y in got), []) == list(range(10))
    assert [len(y) for _, y in batches(ds, 4, drop_last=True)] == [4, 4]
    x, y = next(batches((ds.images, ds.labels), 3))
    assert x.shape == (3, 1, 2, 2) and y.tolist() == [0, 1, 2]


def test_batches_shuffle_is_seeded():
    ds = _indexed(20)

    def order(seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        return [int(v) for x, _ in batches(ds, 6, shuffle=True, rng=rng) for v in x[:, 0, 0, 0]]

    assert order(0) == order(0) and sorted(order(0)) == list(range(20))
    assert order(0) != order(1) and order(0) != list(range(20))
    rng = np.random.default_rng(0)
    first = [y.tolist() for _, y in batches(ds, 20, shuffle=True, rng=rng)]
    second = [y.tolist() for _, y in batches(ds, 20, shuffle=True, rng=rng)]
    assert first != second  # a new order each epoch from the same generator


def test_batches_errors():
    ds = _indexed(4)
    with pytest.raises(ArgumentError, match=r"shuffle=True needs an explicit random generator"):
        list(batches(ds, 2, shuffle=True))
    with pytest.raises(ArgumentError, match=r"batch_size must be at least 1.*batch_size=0"):
        list(batches(ds, 0))
    with pytest.raises(ArgumentTypeError, match=r"batch_size must be an int"):
        list(batches(ds, 2.0))
    with pytest.raises(DataError, match=r"same first dimension N.*images shape \(4, 1, 2, 2\)"):
        list(batches((ds.images, ds.labels[:3]), 2))
    with pytest.raises(ArgumentTypeError, match=r"expected a Dataset or a pair"):
        list(batches(ds.images, 2))
