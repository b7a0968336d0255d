"""Pictures that show the computation: feature maps, kernels, the animation, why, receptive
fields, saliency, training curves, and the commands that write them.

Every picture is checked for real content: its pixels against the numbers it shows."""

from __future__ import annotations

import importlib
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import convscope as cs
from convscope import filters
from convscope import functional as F
from convscope.cli import main
from convscope.data import save_image
from convscope.errors import ArgumentError, ShapeError
from convscope.viz import DIVERGING, diverging
from convscope.viz.animate import animate, frame_positions, gif_bytes, save_gif
from convscope.viz.curves import TRAIN, VAL, training_curves
from convscope.viz.pictures import feature_map_grid, feature_maps, kernel_grid, kernel_picture
from convscope.viz.receptive import receptive_field
from convscope.viz.saliency import saliency_maps
from convscope.viz.why import WhyMismatchError, why

FAST = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RED, BLUE = tuple(DIVERGING[-1].astype(int)), tuple(DIVERGING[0].astype(int))


def png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def layer_at(model, k: int) -> str:
    """The number `explain` gives the k-th layer (the pictures use the same numbering)."""
    return cs.explain(model).rows[k]["index"]


def reference_forward(model, image, upto: int) -> np.ndarray:
    """The model's layers applied one by one, outside convscope.viz."""
    x = cs.tensor(image[None])
    with cs.no_grad():
        for layer in list(model)[:upto + 1]:
            x = layer(x)
    return x.numpy()[0]


def edge_image(h: int = 16, w: int = 24) -> np.ndarray:
    """Dark left half, bright right half: a vertical edge between columns w/2-1 and w/2."""
    img = np.full((1, h, w), 0.1, np.float32)
    img[:, :, w // 2:] = 0.9
    return img


def sobel_model(h: int = 16, w: int = 24):
    model = cs.parse(f"{h}x{w}x1 | conv(1, 3, padding=1, bias=false, padding_mode='replicate')")
    model[0].weight.data = filters.kernel2d("sobel-x")[None, None].astype(np.float32)
    return model


def tile_box(pic: np.ndarray, row: int) -> tuple[int, int]:
    """Left and right x of the grey (200) border of the one map tile crossing ``row``."""
    xs = np.flatnonzero((pic[row] == 200).all(axis=1))
    return int(xs[0]), int(xs[-1])


# ----------------------------------------------------------------------------- feature maps
def test_feature_maps_are_the_layer_outputs():
    spec = "12x12x3 | conv(4, 3, padding=1) | relu | maxpool(2) | conv(5, 3, stride=2, padding=1)"
    model = cs.parse(spec, seed=3)
    image = np.random.default_rng(0).random((3, 12, 12), dtype=np.float32)
    for k in range(4):
        got = feature_maps(model, image, layer_at(model, k))
        np.testing.assert_array_equal(got, reference_forward(model, image, k))


def test_sobel_x_on_a_vertical_edge_gives_a_red_column_in_the_png(tmp_path):
    model, image = sobel_model(), edge_image()
    maps = feature_maps(model, image, 0)
    assert set(np.flatnonzero(np.abs(maps[0]).sum(axis=0) > 1e-5)) == {11, 12}
    path = tmp_path / "maps.png"
    cs.viz.save_png(path, feature_map_grid(model, image, 0))
    pic = png(path)
    red = (pic == RED).all(axis=2)
    rows = np.flatnonzero(red.any(axis=1))
    rows = rows[:np.argmax(np.diff(rows, append=10**6) > 1) + 1]  # the tile, not the legend
    assert rows.size > 0
    left, right = tile_box(pic, int(rows[len(rows) // 2]))
    scale = (right - left - 1) // 24
    assert scale >= 2 and right - left - 1 == 24 * scale
    # every row of the tile: red exactly on map columns 11 and 12, white elsewhere
    tile = pic[rows[0]:rows[-1] + 1, left + 1:right]
    assert len(rows) == 16 * scale
    cols = np.flatnonzero((tile == RED).all(axis=2).all(axis=0))
    np.testing.assert_array_equal(cols, np.arange(11 * scale, 13 * scale))
    rest = np.delete(tile, cols, axis=1)
    assert (rest == 255).all()


def test_colour_scale_is_symmetric_around_zero(tmp_path):
    """-1 and +3 in one map: +3 is full red, -1 is blue at a third of the scale, 0 white."""
    values = np.zeros((1, 6, 9), np.float32)
    values[0, :, :3], values[0, :, 6:] = -1.0, 3.0
    model = cs.parse("6x9x1 | conv(1, 1, bias=false)")
    model[0].weight.data = np.ones((1, 1, 1, 1), np.float32)
    pic = feature_map_grid(model, values, 0)
    want = diverging(np.array([-1.0, 0.0, 3.0]), 3.0)
    row = np.flatnonzero((pic == RED).all(axis=2).any(axis=1))[2]
    left, right = tile_box(pic, row)
    scale = (right - left - 1) // 9
    line = pic[row, left + 1:right]
    for col, colour in ((1, want[0]), (4, want[1]), (7, want[2])):
        np.testing.assert_array_equal(line[col * scale + scale // 2], colour)
    assert tuple(want[2]) == RED and (want[0] != BLUE).any()  # -1 is not full blue


def test_512_maps_fit_one_picture():
    pic = feature_map_grid("6x6x2 | conv(512, 1)", np.ones((2, 6, 6), np.float32), 0)
    assert pic.shape[1] <= 1800 and pic.shape[0] < 2500
    assert len(np.unique(pic.reshape(-1, 3), axis=0)) > 100


def test_flat_layer_has_no_maps():
    with pytest.raises(ShapeError, match="flat values, not feature maps"):
        feature_maps("4x4x1 | flatten | linear(2)", np.ones((1, 4, 4)), 0)


def test_layer_errors_name_the_valid_layers():
    with pytest.raises(ArgumentError, match=r"there is no layer 7.*0 \(Conv2d\), 1 \(ReLU\)"):
        feature_maps("8x8x1 | conv(2, 3) | relu", np.ones((1, 8, 8)), 7)


# ----------------------------------------------------------------------------- kernels
def test_kernel_picture_one_row_per_kernel_one_tile_per_slice():
    w = np.zeros((2, 3, 3, 3), np.float32)
    w[:] = filters.kernel2d("sobel-x")
    two = kernel_picture(w)
    four = kernel_picture(np.concatenate([w, w]))
    assert four.shape[0] > two.shape[0] * 1.5 and four.shape[1] == two.shape[1]
    deep = kernel_picture(np.zeros((2, 8, 3, 3), np.float32))
    assert kernel_picture(np.zeros((2, 1, 3, 3), np.float32)).shape[1] < deep.shape[1]
    blue = np.argwhere((two == BLUE).all(axis=2))
    red = np.argwhere((two == RED).all(axis=2))
    assert len(blue) and len(red) and red[:, 1].mean() > blue[:, 1].mean()  # red on the right


def test_kernel_grid_of_a_model_and_its_errors():
    spec = "8x8x3 | conv(4, 3) | relu | conv(70, 1)"
    assert kernel_grid(spec).shape[2] == 3
    assert kernel_grid(spec, 2).shape[0] < 5000  # 70 kernels: 64 drawn, smaller
    with pytest.raises(ArgumentError, match=r"layer 1 is ReLU.*pick one of: 0 \(Conv2d\), "
                                            r"2 \(Conv2d\)"):
        kernel_grid(spec, 1)


# ----------------------------------------------------------------------------- animation
def _conv_output(layer, x):
    if layer.padding_mode == "zeros":
        y = F.conv2d(x[None], layer.weight, layer.bias, layer.stride, layer.padding,
                     layer.dilation, layer.groups)
    else:
        y = F.conv2d(F.pad(x[None], layer.padding, layer.padding_mode), layer.weight,
                     layer.bias, layer.stride, 0, layer.dilation, layer.groups)
    return y.numpy()[0]


@pytest.mark.parametrize("conv", [
    "conv(2, 3, padding=1)",
    "conv(1, 3, stride=2, padding=2, dilation=2)",
    "conv(1, (2, 3), stride=(1, 2), padding=1, padding_mode='reflect')",
    "conv(1, 3, padding=2, padding_mode='replicate')",
    "conv(1, 3, stride=2, padding=1, padding_mode='circular')",
])
def test_animation_last_frame_is_the_conv_output(conv):
    image = np.random.default_rng(1).random((3, 9, 10), dtype=np.float32)
    frames = animate(image, conv, channel=0, max_frames=14)
    model = cs.parse(conv, input_shape=image.shape, seed=0)
    out = _conv_output(model[0], image)[0]
    assert len(frames) <= 14 and frames[-1].position is None
    np.testing.assert_array_equal(frames[-1].map, out.astype(np.float64))
    for f in frames[:-1]:
        assert f.value == out[f.position]
        assert np.isnan(f.map).sum() < out.size  # filled up to here
    # the GIF's last frame: the map's pixels are the colours of the computed values
    with Image.open(io.BytesIO(gif_bytes(frames))) as gif:
        assert gif.n_frames == len(frames)
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
    x0, y0, cell = frames[-1].map_box
    vmax = np.abs(out).max()
    table = diverging(np.linspace(-vmax, vmax, 401), vmax).astype(int)
    levels = np.linspace(-vmax, vmax, 401)
    for (r, c), v in np.ndenumerate(out):
        colour = last[y0 + r * cell + cell // 2, x0 + c * cell + cell // 2].astype(int)
        guess = levels[np.abs(table - colour).sum(axis=1).argmin()]
        assert abs(guess - v) <= 0.1 * vmax, (r, c, v, guess)


def test_frame_positions_first_ones_then_a_stride():
    picks, step = frame_positions(64, 64, 60)
    assert len(picks) == 59 and picks[:19] == list(range(19)) and picks[-1] == 4095
    assert step > 1 and all(b > a for a, b in zip(picks, picks[1:], strict=False))
    assert frame_positions(3, 3, 60) == (list(range(9)), 1)


def test_animation_gif_of_the_slides_is_small(tmp_path):
    from convscope.demo import default_image

    frames = animate(default_image(64), "conv(1, 5, padding=2)")
    path = save_gif(frames, tmp_path / "slide.gif")
    assert path.stat().st_size < 2_000_000 and len(frames) == 60
    first, last = frames[0].rgb, frames[-1].rgb
    assert first.shape == last.shape and (first != last).any()
    assert "sum of 75 products + bias = " in frames[0].text


# ----------------------------------------------------------------------------- why
@st.composite
def conv_cases(draw):
    c = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
    out = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    s, d = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    p = draw(st.integers(0, 2))
    h, w = draw(st.integers(3, 8)), draw(st.integers(3, 8))
    if d * (k - 1) + 1 > min(h, w) + 2 * p:
        p = 2
    if d * (k - 1) + 1 > min(h, w) + 2 * p:
        k = 1
    spec = (f"{h}x{w}x{c} | conv({out}, {k}, stride={s}, padding={p}, dilation={d}, "
            f"groups={groups}, padding_mode='{mode}')")
    model = cs.parse(spec, seed=draw(st.integers(0, 9)))
    oh, ow = cs.explain(model).output_shape[1:]
    at = (draw(st.integers(0, out - 1)), draw(st.integers(0, oh - 1)),
          draw(st.integers(0, ow - 1)))
    image = np.random.default_rng(draw(st.integers(0, 9))).normal(size=(c, h, w))
    return model, image.astype(np.float32), at


@FAST
@given(conv_cases())
def test_why_value_equals_the_forward_output(case):
    model, image, at = case
    w = why(model, image, 0, at)
    layer = model[0]
    out = _conv_output(layer, image)
    assert w.forward_value == out[at]
    assert w.value == pytest.approx(float(out[at]), abs=1e-5)
    np.testing.assert_allclose(w.products, w.patch * w.kernel)
    assert w.channel_sums.sum() + w.bias == pytest.approx(w.value)
    kh, kw = layer.kernel_size
    assert w.patch.shape == (layer.in_channels // layer.groups, kh, kw)
    outside = ((w.rows < 0) | (w.rows >= image.shape[1]))[:, None] | \
        ((w.cols < 0) | (w.cols >= image.shape[2]))[None, :]
    np.testing.assert_array_equal(w.padding, outside)
    if layer.padding_mode == "zeros":
        assert (w.patch[:, w.padding] == 0).all()


def test_why_pool_and_relu():
    spec = "6x6x2 | conv(2, 3, padding=1) | relu | maxpool(2) | avgpool(2, padding=1)"
    model = cs.parse(spec, seed=1)
    image = np.random.default_rng(2).normal(size=(2, 6, 6)).astype(np.float32)
    x = reference_forward(model, image, 0)
    r = why(model, image, 1, (1, 2, 3))
    assert r.kind == "relu" and r.value == max(float(x[1, 2, 3]), 0.0)
    m = why(model, image, 2, (0, 1, 2))
    relu = np.maximum(x, 0)
    assert m.value == relu[0, 2:4, 4:6].max()
    assert relu[m.winner] == m.value and "the winner" in str(m)
    a = why(model, image, 3, (0, 0, 0))
    pooled = reference_forward(model, image, 2)
    assert a.divisor == 4 and a.value == pytest.approx(pooled[0, 0, 0] / 4)


def test_why_text_and_errors():
    spec = "8x8x3 | conv(4, 3, padding=1) | relu"
    image = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    text = str(why(spec, image, 0, "2,0,7"))
    assert "sum of 27 products = " in text and "the forward pass gave" in text
    assert "* = zero padding" in text and "random" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    with pytest.raises(ArgumentError, match=r"column 8 is out of range.*rows 0\.\.7, "
                                            r"columns 0\.\.7"):
        why(spec, image, 0, (0, 0, 8))
    with pytest.raises(ArgumentError, match="a position there is 3 numbers"):
        why(spec, image, 0, (0, 0))


def test_why_refuses_a_value_that_does_not_match_the_forward_pass(monkeypatch):
    why_module = importlib.import_module("convscope.viz.why")  # the module, not why()
    real = why_module.activations

    def off_by_one(*args, **kwargs):
        acts = real(*args, **kwargs)
        acts[-1] = acts[-1] + 1.0
        return acts

    monkeypatch.setattr(why_module, "activations", off_by_one)
    with pytest.raises(WhyMismatchError, match=r"rebuilt by hand, .* differs from the "
                                               r"forward pass, "):
        why("5x5x1 | conv(1, 3)", np.ones((1, 5, 5)), 0, (0, 1, 1))


def test_why_picture_has_the_three_grids():
    pic = why("6x6x3 | conv(2, 3, padding=1)", np.random.default_rng(0).random((3, 6, 6)), 0,
              (1, 0, 0)).picture()
    assert pic.shape[0] > 300 and pic.shape[1] > 500
    assert len(np.unique(pic.reshape(-1, 3), axis=0)) > 50


# ----------------------------------------------------------------------------- receptive field
@st.composite
def stacks(draw):
    size = draw(st.integers(10, 16))
    parts = [f"{size}x{size}x2"]
    shape = (2, size, size)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "relu"]))
        k, s = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        if kind == "conv":
            mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
            d, p = draw(st.integers(1, 2)), draw(st.integers(0, 2))
            g = draw(st.sampled_from([1, 2]))
            item = f"conv({2 * draw(st.integers(1, 2))}, {k}, stride={s}, padding={p}, " \
                   f"dilation={d}, groups={g}, padding_mode='{mode}')"
        elif kind == "relu":
            item = "relu"
        else:
            k = max(k, 2)
            ceil = draw(st.booleans())
            item = f"{kind}({k}, stride={s}, padding={draw(st.integers(0, k // 2))}, " \
                   f"ceil_mode={'true' if ceil else 'false'})"
        try:
            cs.parse(" | ".join(parts + [item]))
        except ValueError:
            continue
        parts.append(item)
    model = cs.parse(" | ".join(parts))
    shape = cs.explain(model).output_shape
    at = (draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1)),
          draw(st.integers(0, shape[2] - 1)))
    return model, len(model) - 1, at


@FAST
@given(stacks())
def test_receptive_field_analytic_equals_gradient(case):
    model, last, at = case
    image = np.zeros(model.input_shape, np.float32)
    layer = layer_at(model, last)
    a = receptive_field(model, image, layer, at, gradient=False)
    g = receptive_field(model, image, layer, at, method="gradient", gradient=False)
    np.testing.assert_array_equal(a.mask, g.mask)
    if "circular" not in model.spec:  # circular padding reaches the opposite edge
        assert a.span[0] <= a.full[0] and a.span[1] <= a.full[1]


def test_receptive_field_size_matches_explain_inside_the_image():
    spec = "40x40x3 | conv(4, 3) | maxpool(2) | conv(4, 3, dilation=2) | conv(4, 5, stride=2)"
    model = cs.parse(spec)
    rf = receptive_field(model, np.zeros((3, 40, 40)), 3, (1, 2, 2))
    explained = cs.explain(model).rows[3]["rf"]
    assert rf.span == rf.full == explained
    assert rf.channels == (0, 1, 2) and rf.pixels == rf.span[0] * rf.span[1]
    text = str(rf)
    assert f"region {explained[0]}x{explained[1]}" in text


def test_receptive_field_dilation_has_holes_and_padding_clips():
    rf = receptive_field("9x9x1 | conv(1, 3, dilation=3, padding=3)", np.zeros((1, 9, 9)), 0,
                         (0, 0, 4))
    assert rf.rows.tolist() == [0, 3] and rf.cols.tolist() == [1, 4, 7]
    assert rf.full == (7, 7) and rf.pixels == 6


def test_receptive_field_picture_and_errors(tmp_path):
    spec = "16x16x3 | conv(2, 3) | relu | flatten | linear(2)"
    image = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    rf = receptive_field(spec, image, 1, (0, 3, 3))
    pic = rf.picture()
    yellow = (pic == (255, 220, 0)).all(axis=2)
    assert yellow.sum() > 100 and rf.gradient is not None and rf.gradient.shape == (16, 16)
    with pytest.raises(ArgumentError, match="before flatten"):
        receptive_field(spec, image, 3, (0,))


# ----------------------------------------------------------------------------- saliency
def _toy(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A bright 5x4 block in the left (class 0) or right (class 1) half of noise."""
    x = rng.random((n, 1, 16, 16), dtype=np.float32) * 0.2
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = rng.integers(2, 10), rng.integers(1, 4) + 8 * y[i]
        x[i, 0, r:r + 5, c:c + 4] += 0.8
    return x, y


@pytest.fixture(scope="module")
def classifier():
    rng = np.random.default_rng(0)
    x, y = _toy(256, rng)
    model = cs.parse("16x16x1 | conv(4, 3, padding=1) | relu | maxpool(2) | flatten | "
                     "linear(2)", seed=0)
    opt = cs.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(4):
        for i in range(0, 256, 32):
            loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.classes = ["left", "right"]
    return model.eval()


def test_saliency_and_grad_cam_point_at_the_evidence(classifier):
    rng = np.random.default_rng(7)
    image = rng.random((1, 16, 16), dtype=np.float32) * 0.2
    image[0, 5:10, 10:14] += 0.8  # a block on the right
    block = np.zeros((16, 16), bool)
    block[5:10, 10:14] = True
    s = saliency_maps(classifier, image)
    assert s.classes[s.predicted] == "right" and s.target == s.predicted
    assert s.grad_x_input[block].mean() > 5 * np.abs(s.grad_x_input[~block]).mean()
    assert s.cam.max() == 1.0 and s.cam[block].mean() > 2 * s.cam[~block].mean()
    assert np.array_equal(cs.viz.saliency(classifier, image), s.grad_x_input)
    assert np.array_equal(cs.viz.grad_cam(classifier, image), s.cam)
    pic = s.picture()
    assert pic.shape[1] > 3 * 256 and "predicted: right" in str(s)


def test_saliency_needs_a_classifier():
    with pytest.raises(ShapeError, match="needs a classifier"):
        saliency_maps("8x8x1 | conv(2, 3)", np.ones((1, 8, 8)))


# ----------------------------------------------------------------------------- curves
ROWS = [{"epoch": e, "train_loss": 2 / e, "train_accuracy": 1 - 0.5 / e, "val_loss": 2.2 / e,
         "val_accuracy": 1 - 0.6 / e, "seconds": 0.1} for e in range(1, 6)]


def test_training_curves_from_rows_and_run_folder(tmp_path):
    pic = training_curves(ROWS, tmp_path / "c.png")
    assert png(tmp_path / "c.png").shape == pic.shape == (360, 1000, 3)
    for colour in (TRAIN, VAL):
        assert (pic == colour).all(axis=2).sum() > 200
    (tmp_path / "metrics.json").write_text(json.dumps({"epochs": ROWS}))
    assert np.array_equal(training_curves(tmp_path), pic)
    no_val = [dict(r, val_loss=float("nan"), val_accuracy=float("nan")) for r in ROWS]
    assert (training_curves(no_val) == VAL).all(axis=2).sum() < 200  # the legend only
    with pytest.raises(ValueError, match="no epochs"):
        training_curves([])


def test_fit_writes_curves_png(tmp_path):
    rng = np.random.default_rng(0)
    x, y = _toy(40, rng)
    data = cs.data.Dataset(x, y, ["left", "right"])
    model = cs.parse("16x16x1 | conv(2, 3) | relu | flatten | linear(2)", seed=0)
    cs.fit(model, data, epochs=2, batch_size=16, out=tmp_path, progress=None)
    assert png(tmp_path / "curves.png").shape == (360, 1000, 3)


# ----------------------------------------------------------------------------- the commands
@pytest.fixture
def files(tmp_path, classifier):
    image = np.zeros((3, 20, 20), np.float32)
    image[:, :, 10:] = 0.9
    save_image(tmp_path / "edge.png", image)
    toy = np.full((1, 16, 16), 0.1, np.float32)
    toy[0, 4:9, 10:14] = 0.9
    save_image(tmp_path / "toy.png", toy)
    run = tmp_path / "run"
    run.mkdir()
    cs.save(classifier, run / "model.safetensors", classes=classifier.classes)
    (run / "metrics.json").write_text(json.dumps({"epochs": ROWS}))
    return tmp_path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


SPEC = "20x20x3 | conv(4, 3, padding=1) | relu | maxpool(2)"


def test_cli_pictures(files, capsys):
    f = files
    cases = [
        ("show", SPEC, f / "edge.png", "--layer", "2", "--out", f / "maps.png"),
        ("kernels", SPEC, "--layer", "0", "--out", f / "kernels.png"),
        ("animate", f / "edge.png", "conv(1, 3, padding=1)", "--frames", "8", "--out",
         f / "slide.gif"),
        ("receptive", SPEC, f / "edge.png", "--layer", "2", "--at", "0,3,3", "--out",
         f / "rf.png"),
        ("saliency", f / "run", f / "toy.png", "--out", f / "sal.png"),
        ("curves", f / "run", "--out", f / "curves.png"),
    ]
    for argv in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 0 and err == "", (argv, err)
        written = argv[-1]
        assert written.exists() and f"wrote {written}" in out
        with Image.open(written) as im:
            assert min(im.size) > 100
    code, out, _ = run_cli(capsys, "show", SPEC, f / "edge.png", "--layer", "0", "--out",
                           f / "maps0.png")
    assert "untrained model" in out  # a spec gets random weights, and says so


def test_cli_why_prints_the_walk_through(files, capsys):
    code, out, err = run_cli(capsys, "why", SPEC, files / "edge.png", "--layer", "0", "--at",
                             "3,9,10", "--out", files / "why.png")
    assert code == 0 and err == ""
    assert "output channel 3, row 9, column 10 = kernel 3 (3x3x3)" in out
    assert "sum of 27 products = " in out and "the forward pass gave" in out
    assert (files / "why.png").exists()


@pytest.mark.parametrize("argv, pattern", [
    (("why", SPEC, "{f}/edge.png", "--layer", "0", "--at", "0,20,0"),
     r"row 20 is out of range.*rows 0\.\.19"),
    (("why", SPEC, "{f}/edge.png", "--layer", "9", "--at", "0,0,0"), "there is no layer 9"),
    (("kernels", SPEC, "--layer", "1"), "layer 1 is ReLU"),
    (("show", SPEC, "{f}/missing.png", "--layer", "0"), "missing.png"),
    (("saliency", SPEC, "{f}/edge.png"), "needs a classifier"),
    (("curves", "{f}"), "no metrics file"),
    (("animate", "{f}/edge.png", "conv(2, 3)", "--channel", "5"), "there is no kernel 5"),
    (("receptive", "{f}/run", "{f}/toy.png", "--layer", "4", "--at", "0"), "before flatten"),
])
def test_cli_mistakes_are_errors_not_tracebacks(files, capsys, argv, pattern):
    code, out, err = run_cli(capsys, *(a.format(f=files) for a in argv))
    assert code == 2 and "Traceback" not in err
    assert err.startswith("convscope: error: ")
    import re

    assert re.search(pattern, err), err
