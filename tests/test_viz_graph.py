"""The pictures on graphs: why, show, kernels, receptive, saliency and report on any traced
model (ResNet-18, MobileNetV2, the U-Net, small hand-built graphs), by node number or
module path, each node reading its own inputs (``node.inputs``), never the row before."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import functional as F
from convscope import nn
from convscope.cli import main
from convscope.data import save_image
from convscope.errors import ArgumentError
from convscope.viz.layers import activations, find_layer, layer_refs, load_model
from convscope.viz.nodes import inspect_mode, replay
from convscope.viz.pictures import feature_map_grid, feature_maps, kernel_grid
from convscope.viz.receptive import receptive_field
from convscope.viz.report import report
from convscope.viz.saliency import saliency_maps
from convscope.viz.why import why
from convscope.viz.why_windows import ConvArgs

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
U = 2.0 ** -24


def within_float32(w) -> bool:
    """The float32 forward value against the float64 recompute, by notes/verification.md:
    a sum of K products is off by at most gamma_K times the sum of their sizes; other
    values by rtol 1e-4, atol 1e-5 * max(1, |y|)."""
    diff = abs(w.value - w.forward_value)
    if w.products is not None:
        k = w.products.size + 2  # the products, the bias, and the op after the sum
        scale = float(np.abs(w.products).sum()) + abs(w.bias)
        return diff <= k * U / (1 - k * U) * scale + 4 * U * abs(w.value)
    return diff <= 1e-4 * abs(w.value) + 1e-5 * max(1.0, abs(w.value))


@pytest.fixture(scope="module")
def zoo():
    """The zoo at small sizes (their random weights, seeded), with one image each."""
    rng = np.random.default_rng(0)
    models = {name: load_model(name)[0] for name in ("resnet18", "mobilenet_v2", "unet")}
    return {name: (m, rng.random((3, 32, 32), dtype=np.float32)) for name, m in models.items()}


class AllOps(nn.Module):
    """Every kind of node `why` takes apart, in one small graph (input 3x8x8)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv = nn.Conv2d(3, 6, 3, padding=1, seed=rng)
        self.dw = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6, seed=rng)
        self.dil = nn.Conv2d(6, 4, 3, dilation=2, padding=2, padding_mode="reflect", seed=rng)
        self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, seed=rng)
        self.bn = nn.BatchNorm2d(4)
        self.bn.running_mean = rng.normal(size=4).astype(np.float32)
        self.bn.running_var = rng.uniform(0.5, 2, 4).astype(np.float32)
        self.acts = nn.Sequential(nn.LeakyReLU(0.1), nn.ReLU6(), nn.Hardtanh(-0.5, 0.5),
                                  nn.SiLU(), nn.GELU(), nn.Hardswish(), nn.Tanh(), nn.ELU(0.5),
                                  nn.Sigmoid(), nn.Hardsigmoid(), nn.ReLU())
        self.w = nn.Parameter(rng.normal(size=(10, 3, 3, 3)).astype(np.float32))
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear")
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(3, stride=2, ceil_mode=True, count_include_pad=False)
        self.adapt = nn.AdaptiveAvgPool2d((3, 2))
        self.drop = nn.Dropout2d(0.3)
        self.fc = nn.Linear(60, 5, seed=rng)
        self.soft = nn.Softmax(dim=1)
        self.input_shape = (3, 8, 8)

    def forward(self, x):
        a = self.conv(x)
        c = self.dil(self.dw(a))
        d = self.bn(self.up(c))
        g = self.acts(F.cat([d, a], dim=1))
        s = g + F.conv2d(x, self.w, None, 1, 1)  # a conv called as a function
        u = self.upsample(s)
        n = F.interpolate(s, size=(11, 13), mode="nearest")
        q = self.pool(u) + self.avg(u)
        p = self.drop(self.adapt(q)) + F.adaptive_avg_pool2d(n, (3, 2))
        return self.soft(self.fc(F.flatten(p, 1)))


@pytest.fixture(scope="module")
def allops():
    return AllOps(), np.random.default_rng(1).normal(size=(3, 8, 8)).astype(np.float32)


# ----------------------------------------------------------------------------- why
def test_why_takes_apart_every_node_of_a_small_graph(allops):
    model, image = allops
    rng = np.random.default_rng(0)
    kinds = set()
    for ref in layer_refs(model, image.shape):
        for _ in range(3):
            at = tuple(int(rng.integers(0, n)) for n in ref.output_shape)
            w = why(model, image, ref.index, at)
            assert within_float32(w), (ref.name, at, w.value, w.forward_value)
            kinds.add(w.kind)
    assert kinds >= {"conv", "transposed conv", "batch norm", "cat", "leaky_relu", "relu6",
                     "hardtanh", "silu", "gelu", "hardswish", "tanh", "elu", "sigmoid",
                     "hardsigmoid", "relu", "add", "interpolate", "max pool", "average pool",
                     "adaptive average pool", "dropout", "flatten", "linear", "softmax"}


ZOO_NODES = [
    ("resnet18", "conv1", (5, 3, 9)),  # 7x7, stride 2, reads the image
    ("resnet18", "maxpool", (2, 4, 0)),
    ("resnet18", "layer1.0.conv2", (3, 4, 5)),  # inside a residual block
    ("resnet18", "layer1.0.bn2", (3, 4, 5)),
    ("resnet18", "layer1.0.add", (3, 4, 5)),
    ("resnet18", "layer1.0.relu#2", (3, 4, 5)),  # the block's ReLU, called a second time
    ("resnet18", "layer2.0.conv1", (7, 1, 2)),  # 3x3 stride 2
    ("resnet18", "layer2.0.downsample.0", (7, 1, 2)),  # 1x1 stride 2 on the skip
    ("resnet18", "avgpool", (100, 0, 0)),
    ("resnet18", "flatten", (300,)),
    ("resnet18", "fc", (17,)),
    ("mobilenet_v2", "features.1.conv.0.0", (9, 6, 7)),  # depthwise, stride 1
    ("mobilenet_v2", "features.2.conv.1.0", (50, 3, 4)),  # depthwise, stride 2
    ("mobilenet_v2", "features.2.conv.0.2", (50, 3, 4)),  # ReLU6
    ("mobilenet_v2", "features.3.add", (5, 1, 2)),
    ("mobilenet_v2", "adaptive_avg_pool2d", (7, 0, 0)),  # a function in forward()
    ("mobilenet_v2", "classifier.0", (5,)),
    ("mobilenet_v2", "classifier.1", (5,)),
    ("unet", "up1.up", (3, 5, 6)),  # transposed conv, stride 2
    ("unet", "up3.up", (2, 9, 12)),
    ("unet", "up1.cat", (10, 5, 6)),  # from the skip
    ("unet", "up1.cat", (70, 5, 6)),  # from the upsampling
    ("unet", "down1.0", (3, 5, 6)),
    ("unet", "outc", (1, 20, 30)),
]


@pytest.mark.parametrize("name, node, at", ZOO_NODES)
def test_why_on_the_zoo_equals_the_forward_value(zoo, name, node, at):
    model, image = zoo[name]
    w = why(model, image, node, at)
    assert within_float32(w), (w.value, w.forward_value)
    acts = activations(model, image)
    assert w.forward_value == float(acts.value(w.name)[at])


def test_why_of_a_depthwise_conv_reads_one_channel(zoo):
    model, image = zoo["mobilenet_v2"]
    w = why(model, image, "features.2.conv.1.0", (50, 3, 4))
    assert w.channels == (50,) and w.patch.shape == (1, 3, 3)
    assert w.rows.tolist() == [5, 6, 7] and w.cols.tolist() == [7, 8, 9]  # 2r - 1, stride 2
    x = activations(model, image).value("features.2.conv.0.2")
    np.testing.assert_array_equal(w.patch[0], x[50, 5:8, 7:10])
    text = str(w)
    assert "depthwise (groups = 96)" in text and "reads input channel 50 only" in text
    assert "stride 2: the window of output row 3 starts at input row 3 x 2 - 1 = 5" in text


def test_why_of_a_transposed_conv_names_what_lands(zoo):
    model, image = zoo["unet"]
    w = why(model, image, "up1.up", (3, 5, 6))  # stride 2, kernel 2: one entry per input
    assert w.kind == "transposed conv" and int((~w.padding).sum()) == 1
    assert w.rows.tolist() == [-1, 2] and w.cols.tolist() == [3, -1]  # (5 - a) / 2, (6 - b) / 2
    x = activations(model, image).value("down3.1.5")
    weight = model.up1.up.weight.data
    assert w.value == pytest.approx(float(x[:, 2, 3] @ weight[:, 3, 1, 0].astype(np.float64))
                                    + float(model.up1.up.bias.data[3]), rel=1e-12, abs=1e-12)
    assert "sum of 128 products" in str(w) and "no input value lands" in str(w)


def test_why_of_an_add_names_both_operands(zoo):
    model, image = zoo["resnet18"]
    acts = activations(model, image)
    w = why(model, image, "layer2.0.add", (4, 1, 2))
    (na, a), (nb, b) = w.operands
    assert na.startswith("layer2.0.bn2 (node") and nb.startswith("layer2.0.downsample.1 (node")
    assert a == float(acts.value("layer2.0.bn2")[4, 1, 2])
    assert b == float(acts.value("layer2.0.downsample.1")[4, 1, 2])
    assert w.value == a + b


def test_why_of_a_cat_names_the_part_and_its_channel(zoo):
    model, image = zoo["unet"]
    acts = activations(model, image)
    w = why(model, image, "up2.cat", (40, 3, 4))  # 32 skip channels, then 32 upsampled
    assert w.details["part"] == 1 and w.details["local"] == (8, 3, 4)
    assert w.value == float(acts.value("up2.up")[8, 3, 4])
    assert "channels 0..31 from input 0; channels 32..63 from input 1" in str(w)


# ----------------------------------------------------------------------------- the classic bug
class Fork(nn.Module):
    """Two branches read the image; the add reads both; the last conv reads the image again."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(3)
        self.a = nn.Conv2d(2, 2, 3, padding=1, seed=rng)
        self.b = nn.Conv2d(2, 2, 3, padding=1, seed=rng)
        self.c = nn.Conv2d(4, 2, 1, seed=rng)

    def forward(self, x):
        s = self.a(x) + self.b(x)
        return self.c(F.cat([x, s], dim=1))


def test_inputs_come_from_node_inputs_not_the_row_before():
    model = Fork()
    image = np.random.default_rng(0).normal(size=(2, 6, 6)).astype(np.float32)
    acts = activations(model, image)
    refs = {r.name: r for r in layer_refs(model, image.shape)}
    b = refs["b"]  # the row before it is a's output; its input is the image
    assert b.data_inputs == ("input",) and acts.inputs_of(b)[0] is acts[0]
    w = why(model, image, "b", (1, 2, 3))
    np.testing.assert_array_equal(w.patch, image[:, 1:4, 2:5])
    w = why(model, image, "add", (1, 2, 3))
    assert [v for _, v in w.operands] == [float(acts.value("a")[1, 2, 3]),
                                          float(acts.value("b")[1, 2, 3])]
    w = why(model, image, "c", (0, 4, 4))  # reads the cat: the image, then the sum
    np.testing.assert_array_equal(w.patch[:2, 0, 0], image[:, 4, 4])
    np.testing.assert_array_equal(w.patch[2:, 0, 0], acts.value("add")[:, 4, 4])


def test_the_conv_after_a_skip_reads_the_block_input(zoo):
    model, image = zoo["resnet18"]
    acts = activations(model, image)
    ref = find_layer(model, "layer2.0.downsample.0", image.shape)
    assert ref.data_inputs == ("layer1.1.relu#2",)  # the row before it is layer2.0.bn2
    assert ref.input_shape == (64, 8, 8)
    w = why(model, image, ref.index, (7, 1, 2))
    np.testing.assert_array_equal(w.patch[:, 0, 0], acts.value("layer1.1.relu#2")[:, 2, 4])


# ----------------------------------------------------------------------------- hypothesis
@st.composite
def conv_graphs(draw):
    g = draw(st.sampled_from([1, 2, 3]))
    cin, cout = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    p = draw(st.sampled_from([0, 1, 2, "same"])) if s == 1 else draw(st.integers(0, 2))
    h, w = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    try:
        conv = nn.Conv2d(cin, cout, k, s, p, d, g, padding_mode=mode, seed=draw(st.integers(0, 9)))
        out = conv.output_shape((1, cin, h, w))
        if mode != "zeros":  # reflect needs a padding smaller than the input
            F.pad(np.zeros((1, cin, h, w), np.float32), ConvArgs.of_layer(conv).pads(
                (cin, h, w)), mode)
    except ValueError:
        assume(False)
    at = tuple(draw(st.integers(0, n - 1)) for n in out[1:])
    return conv, np.random.default_rng(draw(st.integers(0, 9))).uniform(
        -9, 9, (cin, h, w)).astype(np.float32), at


class Residual(nn.Module):
    """The layer inside a graph: its output plus a constant (so explain reads a graph)."""

    def __init__(self, layer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x) * 1.0


@pytest.mark.torch
@FAST
@given(conv_graphs())
def test_why_conv_matches_pytorch(case):
    torch = pytest.importorskip("torch")
    conv, image, at = case
    w = why(Residual(conv), image, "layer", at)
    x = torch.tensor(image[None], dtype=torch.float64)
    pads = ConvArgs.of_layer(conv).pads(image.shape)
    (t, b), (left, r) = pads
    if conv.padding_mode != "zeros":
        x = torch.nn.functional.pad(x, (left, r, t, b), mode=conv.padding_mode)
    else:
        x = torch.nn.functional.pad(x, (left, r, t, b))
    ref = torch.nn.functional.conv2d(
        x, torch.tensor(conv.weight.data, dtype=torch.float64),
        torch.tensor(conv.bias.data, dtype=torch.float64), conv.stride, 0, conv.dilation,
        conv.groups)[(0,) + at].item()
    assert w.value == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert within_float32(w)
    kh, kw = conv.kernel_size
    assert w.patch.shape == (conv.in_channels // conv.groups, kh, kw)


@st.composite
def transposed_graphs(draw):
    g = draw(st.sampled_from([1, 2]))
    cin, cout = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 2))
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    p = draw(st.integers(0, 2))
    op = draw(st.integers(0, max(s, d) - 1))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    try:
        layer = nn.ConvTranspose2d(cin, cout, k, s, p, op, g, dilation=d,
                                   seed=draw(st.integers(0, 9)))
        out = layer.output_shape((1, cin, h, w))
    except ValueError:
        assume(False)
    at = tuple(draw(st.integers(0, n - 1)) for n in out[1:])
    return layer, np.random.default_rng(draw(st.integers(0, 9))).uniform(
        -9, 9, (cin, h, w)).astype(np.float32), at


@pytest.mark.torch
@FAST
@given(transposed_graphs())
def test_why_transposed_conv_matches_pytorch(case):
    torch = pytest.importorskip("torch")
    layer, image, at = case
    w = why(Residual(layer), image, "layer", at)
    ref = torch.nn.functional.conv_transpose2d(
        torch.tensor(image[None], dtype=torch.float64),
        torch.tensor(layer.weight.data, dtype=torch.float64),
        torch.tensor(layer.bias.data, dtype=torch.float64), layer.stride, layer.padding,
        layer.output_padding, layer.groups, layer.dilation)[(0,) + at].item()
    assert w.value == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert within_float32(w)
    # every landing entry: output row = input row * stride - padding + a * dilation
    o, r, c = at
    for a, i in enumerate(w.rows):
        assert i < 0 or i * layer.stride[0] - layer.padding[0] + a * layer.dilation[0] == r
    for b, j in enumerate(w.cols):
        assert j < 0 or j * layer.stride[1] - layer.padding[1] + b * layer.dilation[1] == c


# ----------------------------------------------------------------------------- finding nodes
def test_layer_by_number_and_by_path_is_the_same_node(zoo):
    model, image = zoo["resnet18"]
    by_path = find_layer(model, "layer1.0.conv2", image.shape)
    assert find_layer(model, by_path.index, image.shape) == by_path
    assert find_layer(model, int(by_path.index), image.shape) == by_path
    assert by_path.label == "layer1.0.conv2 (node 7, Conv2d)"
    assert find_layer(model, "layer1.0", image.shape).name == "layer1.0.relu#2"  # the block
    a = why(model, image, "layer1.0.conv2", (1, 2, 3))
    b = why(model, image, 7, (1, 2, 3))
    assert (a.value, a.forward_value) == (b.value, b.forward_value)


def test_bad_layers_get_errors_that_name_valid_ones(zoo):
    model, image = zoo["resnet18"]
    with pytest.raises(ArgumentError, match=r"no layer 'layer1\.0\.conv9'.*did you mean "
                                            r"layer1\.0\.conv"):
        find_layer(model, "layer1.0.conv9", image.shape)
    with pytest.raises(ArgumentError, match=r"there is no layer 999: the model has 69 \(0 to "
                                            r"68\).*0 conv1, 1 bn1"):
        find_layer(model, 999, image.shape)
    with pytest.raises(ArgumentError, match=r"layer1\.0\.relu \(node 6\) is ReLU, not a conv"):
        kernel_grid(model, "layer1.0.relu", input_shape=image.shape)
    with pytest.raises(ArgumentError, match=r"row 8 is out of range: layer1\.0\.conv2 \(node 7,"
                                            r" Conv2d\) output is 8x8x64"):
        why(model, image, "layer1.0.conv2", (0, 8, 0))


# ----------------------------------------------------------------------------- pictures
def test_show_draws_the_maps_of_any_node(zoo):
    model, image = zoo["resnet18"]
    acts = activations(model, image)
    maps = feature_maps(model, image, "layer1.0.add")
    np.testing.assert_array_equal(maps, acts.value("layer1.0.add"))
    pic = feature_map_grid(model, image, "layer1.0.add")
    few = feature_map_grid(model, image, "layer1.0.add", max_maps=4)
    assert pic.dtype == np.uint8 and pic.shape[2] == 3 and few.shape[0] < pic.shape[0]
    model, image = zoo["unet"]
    assert feature_maps(model, image, "up3.cat").shape == (32, 32, 32)


def test_kernels_of_depthwise_and_transposed_convs(zoo):
    model, image = zoo["mobilenet_v2"]
    depthwise = kernel_grid(model, "features.2.conv.1.0", input_shape=image.shape)
    full = kernel_grid(model, "features.2.conv.0.0", input_shape=image.shape)  # 96 of 1x1x24
    assert depthwise.shape[1] > depthwise.shape[0] / 2  # one tile per channel, side by side
    assert full.shape[0] > 2 * full.shape[1]  # one row per kernel
    model, image = zoo["unet"]
    pic = kernel_grid(model, "up1.up", input_shape=image.shape)
    assert pic.dtype == np.uint8 and min(pic.shape[:2]) > 200


# ----------------------------------------------------------------------------- receptive
@pytest.mark.parametrize("name, node, at", [
    ("resnet18", "layer2.0.add", (0, 1, 2)), ("resnet18", "layer1.1.conv1", (5, 0, 7)),
    ("mobilenet_v2", "features.3.add", (3, 2, 2)), ("unet", "up3.cat", (20, 10, 10)),
    ("unet", "up2.up", (4, 7, 8)), ("unet", "outc", (0, 31, 0))])
def test_receptive_field_through_the_zoo_analytic_equals_gradient(zoo, name, node, at):
    model, image = zoo[name]
    a = receptive_field(model, image, node, at)
    g = receptive_field(model, image, node, at, method="gradient", gradient=False)
    np.testing.assert_array_equal(a.mask, g.mask)
    assert (a.gradient[~a.mask.any(axis=0)] == 0).all()  # the real model stays inside it
    assert a.pixels > 0 and a.picture().dtype == np.uint8


def test_receptive_field_through_every_node_of_a_small_graph(allops):
    model, image = allops
    rng = np.random.default_rng(5)
    for ref in layer_refs(model, image.shape):
        if len(ref.output_shape) != 3:
            continue
        at = tuple(int(rng.integers(0, n)) for n in ref.output_shape)
        a = receptive_field(model, image, ref.index, at, gradient=False)
        g = receptive_field(model, image, ref.index, at, method="gradient", gradient=False)
        np.testing.assert_array_equal(a.mask, g.mask, err_msg=ref.name)
    fork = receptive_field(Fork(), np.zeros((2, 6, 6)), "c", (0, 0, 0), gradient=False)
    assert fork.rows.tolist() == [0, 1] and fork.cols.tolist() == [0, 1]  # 1x1 + 3x3 branches


@st.composite
def branchy(draw):
    """A conv, a transposed conv, a resize back to the input's size and a concatenation."""
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    tk, ts = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    resize = draw(st.sampled_from(["nearest", "bilinear", "nearest-exact"]))
    size = draw(st.integers(6, 10))
    rng = np.random.default_rng(draw(st.integers(0, 9)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, k, s, k // 2 * d, d, padding_mode=mode, seed=rng)
            self.up = nn.ConvTranspose2d(2, 2, tk, ts, seed=rng)
            self.mix = nn.Conv2d(4, 2, 3, padding=1, seed=rng)

        def forward(self, x):
            y = self.up(F.relu(self.conv(x)))
            y = F.interpolate(y, size=tuple(x.shape[2:]), mode=resize)
            return self.mix(F.cat([x, y], dim=1)) + x

    model = Net()
    try:
        shape = cs.explain(model, (2, size, size)).output_shape
    except ValueError:
        assume(False)
    assume(shape is not None)
    at = (draw(st.integers(0, 1)), draw(st.integers(0, size - 1)), draw(st.integers(0, size - 1)))
    return model, size, at


@FAST
@given(branchy())
def test_receptive_field_analytic_equals_gradient_on_generated_graphs(case):
    model, size, at = case
    image = np.zeros((2, size, size), np.float32)
    refs = layer_refs(model, image.shape)
    for node in (refs[-1].name, "up", "conv"):
        ref = find_layer(model, node, image.shape, refs=refs)
        pos = tuple(min(v, n - 1) for v, n in zip(at, ref.output_shape, strict=True))
        a = receptive_field(model, image, node, pos, gradient=False)
        g = receptive_field(model, image, node, pos, method="gradient", gradient=False)
        np.testing.assert_array_equal(a.mask, g.mask)


# ----------------------------------------------------------------------------- saliency
def test_saliency_and_grad_cam_on_a_graph(zoo):
    model, image = zoo["resnet18"]
    s = saliency_maps(model, image)
    assert s.grad_x_input.shape == s.cam.shape == (32, 32)
    assert 0 <= s.cam.min() <= s.cam.max() <= 1
    assert s.cam_where == "layer4.1.relu#2 (node 65)"  # the last block's output, as Grad-CAM
    other = saliency_maps(model, image, target=3, layer="layer3.1.relu#2")
    assert other.target == 3 and other.cam_where.startswith("layer3.1.relu#2")
    assert all(p.grad is None for p in model.parameters())  # the weights got no gradient
    model, image = zoo["mobilenet_v2"]
    assert saliency_maps(model, image).cam_where.startswith("features.18.2 (node")
    assert saliency_maps(model, image).picture().dtype == np.uint8


def test_the_gradient_at_an_inner_node_equals_a_forward_hooks(zoo):
    """Grad-CAM's gradient comes from replaying the graph from a node's values; a forward
    hook that swaps the layer's output for a leaf tensor gives the same gradient."""
    model, image = zoo["resnet18"]
    acts = activations(model, image)
    with inspect_mode(model), cs.enable_grad():
        a = cs.tensor(acts.graph.values["layer4.0.bn2"], requires_grad=True)
        replay(acts.graph, {"layer4.0.bn2": a}, acts.graph.outputs[0])[0, 3].backward()
        leaf = {}

        def swap(module, args, out):
            leaf["t"] = cs.tensor(out.data, requires_grad=True)
            return leaf["t"]

        handle = model.layer4[0].bn2.register_forward_hook(swap)
        try:
            model(image[None])[0, 3].backward()
        finally:
            handle.remove()
    np.testing.assert_allclose(a.grad.data, leaf["t"].grad.data, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- report
def test_report_of_a_big_graph_is_bounded_and_self_contained(zoo, tmp_path):
    model, image = zoo["resnet18"]
    page = report(model, image, tmp_path / "r.html", max_frames=4)
    anchors = re.findall(r'id="layer-(\d+)"', page)
    assert anchors == [str(k) for k in range(69)]
    assert "This model has 69 nodes, so the page stays readable" in page
    assert "Where branches meet: a residual addition (layer1.0.add (node 9))" in page
    assert "Node 9: layer1.0.add: add: 8x8x64 + 8x8x64" in page
    uris = re.findall(r'src="([^"]+)"', page)
    assert all(u.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for u in uris)
    assert len(page) < 8_000_000
    assert base64.b64decode(uris[-1].split(",", 1)[1])[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- the commands
@pytest.fixture
def photo(tmp_path):
    image = np.zeros((3, 40, 40), np.float32)
    image[0, 8:24, 8:24] = 0.9
    image[2, 20:, 20:] = 0.7
    save_image(tmp_path / "photo.png", image)
    return tmp_path / "photo.png"


@pytest.mark.parametrize("argv", [
    ["show", "resnet18", "{p}", "--layer", "layer1.0.add", "--size", "32", "--max-maps", "8"],
    ["why", "resnet18", "{p}", "--layer", "layer1.0.conv2", "--at", "3,4,5", "--size", "32"],
    ["why", "unet", "{p}", "--layer", "up1.up", "--at", "0,1,1", "--size", "16"],
    ["kernels", "mobilenet_v2", "--layer", "features.2.conv.1.0"],
    ["receptive", "resnet18", "{p}", "--layer", "layer2.0.add", "--at", "0,1,1", "--size", "32"],
    ["saliency", "resnet18", "{p}", "--size", "32", "--cam-layer", "layer3.1.relu#2"],
    ["report", "unet", "{p}", "--size", "16", "--frames", "3"],
])
def test_cli_takes_a_zoo_name(photo, tmp_path, capsys, argv):
    out = tmp_path / ("out.html" if argv[0] == "report" else "out.png")
    code = main([a.format(p=photo) for a in argv] + ["--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0 and err == "", err
    assert out.exists() and "untrained model" in stdout + out.read_bytes()[:400_000].decode(
        "latin-1")


@pytest.mark.parametrize("argv, pattern", [
    (["show", "resnet18", "{p}", "--layer", "layer9.conv", "--size", "32"],
     r"the model has no layer 'layer9\.conv'"),
    (["why", "resnet18", "{p}", "--layer", "999", "--at", "0,0,0", "--size", "32"],
     r"there is no layer 999: the model has 69"),
    (["kernels", "unet", "--layer", "up1.cat"], r"up1\.cat \(node 28\) is cat, not a conv"),
    (["receptive", "resnet18", "{p}", "--layer", "fc", "--at", "0", "--size", "32"],
     r"before flatten"),
    (["saliency", "unet", "{p}", "--size", "16"], r"needs a classifier"),
])
def test_cli_bad_layers_exit_2_without_a_traceback(photo, capsys, argv, pattern):
    code = main([a.format(p=photo) for a in argv])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("convscope: error: ") and "Traceback" not in err
    assert re.search(pattern, err), err


def test_zoo_names_load_with_an_untrained_note():
    model, note = load_model("resnet18", seed=3)
    assert "untrained model" in note and "resnet18" in note and "seed 3" in note
    assert math.prod(model.input_shape) == 3 * 224 * 224
