"""convscope demo, and the pieces it shows: the kernel bank, the colour maps, the grids."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope.functional as F
from convscope import filters, viz
from convscope.cli import main
from convscope.demo import LAYER1_KERNELS, default_image, feature_maps, run
from convscope.errors import ArgumentError


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ----------------------------------------------------------------------------- the demo
def test_demo_runs_and_writes_what_it_prints(tmp_path, capsys):
    start = time.perf_counter()
    code = main(["demo", "--out", str(tmp_path / "out")])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert elapsed < 60
    printed = re.findall(r"^  (\S+\.(?:png|gif))", out, flags=re.M)
    assert [Path(p).name for p in printed] == ["input.png", "kernels.png", "layer0.png",
                                               "layer2.png", "why.png", "slide.gif"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        Path(p).name for p in printed)
    for p in printed[:-1]:
        assert png(Path(p)).ndim == 3
    with Image.open(printed[-1]) as gif:
        assert gif.n_frames > 10
    assert "(the forward pass gave" in out
    assert png(tmp_path / "out" / "input.png").shape == (512, 512, 3)
    flat = " ".join(out.split())
    for phrase in ["Input image: 64x64x3", "Kernels: 8 of 5x5x3 with padding=2",
                   "Output: volume of 64x64x8", "Kernels: 16 of 5x5x8 with padding=2",
                   "Output: volume of 64x64x16", "8 kernels of 5x5x3, padding 2, stride 1",
                   "the deck says 64x64x8 with padding=1; that gives 62x62x8: "
                   "(64 + 2*1 - 5)/1 + 1 = 62. padding=2 gives 64x64x8",
                   '--expect 64x64x8']:
        assert phrase in flat, phrase
    assert max(len(line) for line in out.splitlines() if "demo-output" not in line
               and not line.startswith("  /")) <= 100


def test_demo_on_your_own_picture(tmp_path):
    lines: list[str] = []
    rgb = np.zeros((3, 64, 64), np.float32)
    rgb[0, 20:40, 20:40] = 1.0
    paths = run(tmp_path, image=rgb, echo=lines.append)
    assert all(p.exists() for p in paths)
    assert "your 64x64x3 picture" in lines[0]


def test_default_image_is_deterministic_and_colourful():
    a, b = default_image(), default_image()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    assert a[0, 21, 20] > 0.8 > 0.2 > a[1, 21, 20]       # the red disc
    assert a[1, 47, 19] > 0.6 > 0.2 > a[0, 47, 19]       # the green square
    assert a[2, 25, 47] > 0.8 > 0.3 > a[0, 25, 47]       # the blue triangle
    assert default_image(128).shape == (3, 128, 128)


def test_colour_detectors_find_their_colour():
    _, maps, labels = feature_maps(default_image(), ",".join(LAYER1_KERNELS))
    red, green, blue = (maps[labels.index(c)] for c in ("red", "green", "blue"))
    assert red[21, 20] > 0.6 and red[47, 19] < 0 and red[25, 47] < 0
    assert green[47, 19] > 0.4 and green[21, 20] < 0
    assert blue[25, 47] > 0.6 and blue[21, 20] < 0


# ----------------------------------------------------------------------------- filters
def test_bank_shapes_and_meanings():
    w, names = filters.bank("sobel-x, sobel-y,laplacian,gaussian,red", 3)
    assert w.shape == (5, 3, 5, 5) and w.dtype == np.float32
    assert names == ["sobel-x", "sobel-y", "laplacian", "gaussian", "red"]
    np.testing.assert_allclose(w[0].sum(axis=0)[1:4, 1:4], filters.kernel2d("sobel-x"), atol=1e-7)
    assert w[0, :, 0].sum() == 0 and np.isclose(w[3].sum(), 1.0)
    np.testing.assert_array_equal(w[4, :, 2, 2], [1.0, -0.5, -0.5])
    assert np.count_nonzero(w[4]) == 3
    grey_w, _ = filters.bank(["box", "identity", "sharpen", "emboss", "edge"], 1)
    assert grey_w.shape == (5, 1, 3, 3)


def test_sobel_x_is_positive_where_brightness_rises_to_the_right():
    img = np.zeros((1, 8, 8), np.float32)
    img[:, :, 4:] = 1.0
    w, _ = filters.bank("sobel-x,sobel-y", 1)
    y = F.conv2d(img, w).numpy()
    assert y[0].max() == 4.0 and y[0].min() == 0.0 and np.argmax(y[0][0]) in (2, 3)
    assert np.all(y[1] == 0)


def test_filters_errors():
    with pytest.raises(ArgumentError, match=r"unknown kernel 'sobel'. Fix: did you mean "
                                            r"'sobel-x' or 'sobel-y'\? Known kernels: "
                                            r"sobel-x, sobel-y"):
        filters.bank("sobel", 3)
    with pytest.raises(ArgumentError, match=r"the colour detector 'red' needs an RGB image "
                                            r"\(depth 3\)"):
        filters.bank("red", 1)
    with pytest.raises(ArgumentError, match=r"no kernel names given"):
        filters.bank(" , ", 3)
    with pytest.raises(ArgumentError, match=r"depth must be a positive int"):
        filters.kernel("box", 0)


# ----------------------------------------------------------------------------- pictures
def test_diverging_is_symmetric_blue_white_red():
    rgb = viz.diverging(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]))
    assert rgb[2].tolist() == [255, 255, 255]
    assert rgb[0, 2] > rgb[0, 0] and rgb[4, 0] > rgb[4, 2]        # blue end, red end
    assert abs(int(rgb[1].sum()) - int(rgb[3].sum())) < 60         # equal strength both ways
    assert viz.diverging(np.zeros(3)).tolist() == [[255, 255, 255]] * 3
    assert viz.grey(np.array([0.0, 1.0])).tolist() == [[0, 0, 0], [255, 255, 255]]


def test_grid_layouts_for_8_and_512_maps(tmp_path):
    rng = np.random.default_rng(0)
    small = viz.grid(rng.normal(size=(8, 64, 64)), [f"k{i}" for i in range(8)], title="eight")
    assert small.dtype == np.uint8 and small.shape[1] > small.shape[0]   # 2 rows of 4
    big = viz.grid(rng.normal(size=(512, 8, 8)))
    assert big.shape[0] < 3000 and big.shape[1] < 2000
    wide = viz.grid(rng.normal(size=(16, 300, 300)), max_width=800)
    assert wide.shape[1] <= 820
    path = viz.save_png(tmp_path / "a" / "b" / "grid.png", small)
    assert png(path).shape == small.shape
    with pytest.raises(ArgumentError, match=r"3 labels for 8 maps"):
        viz.grid(rng.normal(size=(8, 4, 4)), ["a", "b", "c"])


def test_noise_maps_are_drawn_flat():
    limits = viz.map_limits([np.array([[3.0]]), np.array([[4e-8, -1e-8]])])
    assert limits == [3.0, 0.0]
