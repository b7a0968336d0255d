"""The layers of graph networks (issue 11) and the leaf-layer protocol they carry.

Every layer: ``op`` names its functional op; ``type(m)(**m.get_config())`` rebuilds it (also
after a JSON round trip); ``output_shape`` equals the forward pass's output shape on
generated inputs and raises the forward pass's error when the forward pass raises;
``describe`` speaks the slides' words; ``macs`` follows torchinfo. PyTorch comparisons of
the layers are in ``test_ops_new_torch.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import strategies as st

import convscope as cs
from conv_cases import generated
from convscope import nn
from convscope.errors import ArgumentError, ArgumentTypeError, ConvscopeError, ShapeError
from convscope.tracing import OPS
from errorcheck import check_error

ACTIVATION_LAYERS = [
    nn.LeakyReLU(0.2), nn.ReLU6(), nn.Hardtanh(-2.0, 3.0), nn.Sigmoid(), nn.Tanh(),
    nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Hardswish(), nn.Hardsigmoid(), nn.ELU(0.5),
    nn.Softmax(1), nn.LogSoftmax(-1), nn.Softmax(),
]


def spatial_layers():
    return [
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, seed=0),
        nn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), dilation=(3, 1), output_padding=(2, 1),
                           groups=2, bias=False, seed=1),
        nn.AdaptiveAvgPool2d(1), nn.AdaptiveAvgPool2d((3, None)),
        nn.Upsample(scale_factor=2), nn.Upsample(size=(5, 7), mode="bilinear",
                                                 align_corners=True),
        nn.Upsample(scale_factor=(1.5, 0.5), mode="nearest-exact"), nn.Dropout2d(0.3, seed=0),
    ]


ALL_LAYERS = ACTIVATION_LAYERS + spatial_layers()
IDS = [repr(m) for m in ALL_LAYERS]


# --------------------------------------------------------------------------- the protocol
@pytest.mark.parametrize("layer", ALL_LAYERS, ids=IDS)
def test_op_names_a_traced_function_and_the_class_is_a_leaf(layer):
    assert type(layer).is_leaf()
    assert layer.op in OPS
    assert nn.layer_for_op(layer.op) is type(layer)


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=IDS)
def test_get_config_rebuilds_the_layer_after_a_json_round_trip(layer):
    cfg = layer.get_config()
    again = json.loads(json.dumps(cfg))
    assert again == cfg  # JSON values only (lists, not tuples)
    twin = type(layer)(**again)
    assert twin.get_config() == cfg and repr(twin) == repr(layer)
    for name, p in layer.named_parameters():
        assert dict(twin.named_parameters())[name].shape == p.shape


@st.composite
def volumes(draw):
    """Mostly (N, C, H, W) and (C, H, W), sometimes a rank no spatial layer takes."""
    rank = draw(st.sampled_from([3, 4, 4, 4, 2, 5]))
    return tuple(draw(st.integers(1, 4 if i < rank - 2 else 9)) for i in range(rank))


@generated(st.sampled_from(range(len(ALL_LAYERS))), volumes(), examples=150)
def test_output_shape_equals_the_forward_pass(index, shape):
    layer = ALL_LAYERS[index]
    if isinstance(layer, nn.ConvTranspose2d) and len(shape) >= 3:
        shape = shape[:-3] + (layer.in_channels,) + shape[-2:]  # mostly the right depth
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    try:
        want = layer(x).shape
    except ConvscopeError as exc:
        with pytest.raises(type(exc)) as info:
            layer.output_shape(shape)
        assert str(info.value) == str(exc)
        return
    assert layer.output_shape(shape) == want


def test_output_shape_raises_the_forward_errors():
    up = nn.ConvTranspose2d(4, 6, 3, seed=0)
    for shape in [(1, 3, 5, 5), (5, 5), (1, 4, 0, 3)]:
        with pytest.raises(ShapeError) as a:
            up(np.zeros(shape, np.float32))
        with pytest.raises(ShapeError) as b:
            up.output_shape(shape)
        assert str(a.value) == str(b.value)
    assert nn.ConvTranspose2d(4, 6, 3, padding=1, seed=0).output_shape((1, 4, 1, 1)) == (
        1, 6, 1, 1)
    with pytest.raises(ShapeError, match="the output would be -1x-1"):
        nn.ConvTranspose2d(4, 6, 3, padding=2, seed=0).output_shape((1, 4, 1, 1))
    with pytest.raises(ShapeError, match="mode 'bilinear' needs a 4-D input"):
        nn.Upsample(scale_factor=2, mode="bilinear").output_shape((1, 3, 8))
    with pytest.raises(ArgumentError, match=r"`dim` must be in \[-2, 1\]"):
        nn.Softmax(2).output_shape((4, 10))


def test_describe_speaks_the_slides_words():
    n = (1, 128, 28, 28)
    assert nn.ConvTranspose2d(128, 64, 2, stride=2, seed=0).describe(n, (1, 64, 56, 56)) == (
        "transposed conv: 64 kernels of 2x2x128, stride 2")
    assert nn.ConvTranspose2d(8, 4, 3, padding=1, output_padding=(0, 1), stride=2, groups=2,
                              seed=0).describe((1, 8, 5, 5), (1, 4, 9, 10)) == (
        "transposed conv: 4 kernels of 3x3x4, stride 2, padding 1, output_padding (0, 1), "
        "2 groups")
    assert nn.Upsample(scale_factor=2, mode="bilinear").describe(n, n) == "upsample x2 bilinear"
    assert nn.Upsample(size=56).describe(n, (1, 128, 56, 56)) == "upsample 28x28 -> 56x56 nearest"
    assert nn.Sigmoid().describe(n, n) == "sigmoid: 1/(1+e^-x) per value"
    assert nn.AdaptiveAvgPool2d(1).describe((1, 512, 7, 7), (1, 512, 1, 1)) == (
        "global average pool 7x7 -> 1x1")
    assert nn.AdaptiveAvgPool2d(7).describe((1, 512, 14, 14), (1, 512, 7, 7)) == (
        "adaptive average pool 14x14 -> 7x7")
    assert nn.LeakyReLU().describe(n, n) == "leaky_relu: x if x > 0 else 0.01x, per value"
    assert nn.Softmax().describe((2, 10), (2, 10)) == (
        "softmax over dim 1: e^x / sum of e^x (sums to 1)")
    assert "whole feature maps" in nn.Dropout2d().describe(n, n)
    for layer in ALL_LAYERS:
        assert layer.describe(n, n)


def test_macs_follow_torchinfo():
    # torchinfo: (weights + biases) x N x H_out x W_out for every "Conv" layer
    up = nn.ConvTranspose2d(128, 64, 2, stride=2, seed=0)
    assert up.macs((2, 128, 28, 28), (2, 64, 56, 56)) == (128 * 64 * 4 + 64) * 2 * 56 * 56
    nob = nn.ConvTranspose2d(8, 4, 3, groups=2, bias=False, seed=0)
    assert nob.macs((1, 8, 5, 5), (1, 4, 7, 7)) == 8 * 2 * 9 * 49
    for layer in ALL_LAYERS:
        if not isinstance(layer, nn.ConvTranspose2d):
            assert layer.macs((1, 4, 5, 5), (1, 4, 5, 5)) == 0


# --------------------------------------------------------------------------- construction
def test_conv_transpose_init_is_pytorchs_and_seeded():
    layer = nn.ConvTranspose2d(16, 32, 3, groups=2, seed=0)
    assert layer.weight.shape == (16, 16, 3, 3) and layer.bias.shape == (32,)
    assert layer.weight.dtype == np.float32
    bound = 1 / math.sqrt(16 * 9)  # fan_in = out_channels / groups * kH * kW
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(layer.bias.numpy()).max() <= bound
    same = nn.ConvTranspose2d(16, 32, 3, groups=2, seed=0)
    np.testing.assert_array_equal(same.weight.numpy(), w)
    cs.manual_seed(3)
    a = nn.ConvTranspose2d(2, 2, 2).weight.numpy()
    cs.manual_seed(3)
    np.testing.assert_array_equal(nn.ConvTranspose2d(2, 2, 2).weight.numpy(), a)
    assert list(layer.state_dict()) == ["weight", "bias"]


def test_conv_transpose_output_size_picks_output_padding():
    up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, seed=0)
    x = np.ones((1, 3, 4, 4), np.float32)
    assert up(x).shape == (1, 2, 7, 7)
    assert up(x, output_size=(8, 7)).shape == (1, 2, 8, 7)
    assert up(x[0], output_size=[1, 2, 8, 8]).shape == (2, 8, 8)  # a whole shape; unbatched
    check_error(lambda: up(x, output_size=(9, 8)), ShapeError,
                r"an output of 9x8 cannot come from a 4x4 input: the possible sizes are 7\.\.8 "
                r"x 7\.\.8")


def test_layers_train_and_eval_modes():
    drop = nn.Dropout2d(0.5, seed=0)
    x = np.ones((2, 8, 3, 3), np.float32)
    assert (drop(x).numpy() == 0).any()
    np.testing.assert_array_equal(drop.eval()(x).numpy(), x)
    soft = nn.Softmax()  # PyTorch's implicit dim: 1 for 2-D and 4-D, 0 for 3-D
    np.testing.assert_allclose(soft(np.zeros((2, 4), np.float32)).numpy(), 0.25)
    np.testing.assert_allclose(soft(np.zeros((3, 2, 5), np.float32)).numpy(), 1 / 3, rtol=1e-6)


def test_layers_accept_and_ignore_inplace():
    for cls in (nn.LeakyReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.Hardsigmoid,
                nn.ELU, nn.Dropout2d):
        layer = cls(inplace=True)
        x = np.full((1, 2, 2, 2), -1.0, np.float32)
        layer(x)
        assert (x == -1.0).all()


def test_a_graph_network_trains_with_the_new_layers():
    """A tiny U-Net-like model: conv, pool, transposed conv, skip concatenation, add."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Conv2d(2, 4, 3, padding=1, seed=0)
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2, seed=1)
            self.mix = nn.Conv2d(6, 2, 1, seed=2)
            self.act = nn.GELU()
            self.head = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            d = self.act(self.down(x))
            u = self.up(cs.functional.max_pool2d(d, 2))
            y = self.mix(cs.cat([u, x], dim=1))
            return cs.flatten(self.head(cs.add(y, x)), 1)

    net = Net().double()
    x = cs.tensor(np.random.default_rng(0).standard_normal((3, 2, 8, 8)))
    target = np.array([0, 1, 1])
    opt = cs.optim.SGD(net.parameters(), lr=0.5)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = cs.functional.cross_entropy(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in net.parameters())


# --------------------------------------------------------------------------- errors
LAYER_ERRORS = [
    ("output_padding", lambda: nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2),
     ArgumentError, r"^ConvTranspose2d: output_padding must be smaller than stride or dilation "
     r"on each axis\. Fix: use output_padding <= 1"),
    ("padding_mode", lambda: nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"), ArgumentError,
     r"pads with zeros only\. Fix: use padding_mode='zeros'"),
    ("groups", lambda: nn.ConvTranspose2d(4, 3, 3, groups=2), ArgumentError,
     r"`groups` must divide both in_channels and out_channels.*in_channels=4, out_channels=3"),
    ("channels", lambda: nn.ConvTranspose2d(0, 3, 3), ArgumentError,
     r"`in_channels` must be positive"),
    ("input depth", lambda: nn.ConvTranspose2d(4, 3, 3, seed=0)(np.zeros((1, 3, 5, 5))),
     ShapeError, r"^ConvTranspose2d\(4 -> 3, 3x3\): input depth 3 does not match"),
    ("upsample both", lambda: nn.Upsample(size=2, scale_factor=2), ArgumentError,
     r"^Upsample: give exactly one of `size` and `scale_factor`"),
    ("upsample corners", lambda: nn.Upsample(scale_factor=2, align_corners=False), ArgumentError,
     r"align_corners applies to the linear modes only"),
    ("upsample mode", lambda: nn.Upsample(scale_factor=2, mode="area"), ArgumentError,
     r"unsupported mode 'area'"),
    ("upsample 3-D", lambda: nn.Upsample(scale_factor=2, mode="bilinear")(np.zeros((3, 4, 4))),
     ShapeError, r"^Upsample\(scale_factor=2, mode='bilinear'\): mode 'bilinear' needs a 4-D "
     r"input, got 3-D"),
    ("adaptive", lambda: nn.AdaptiveAvgPool2d("global"), ArgumentTypeError,
     r"`output_size` must be an int or a pair of ints"),
    ("dropout2d p", lambda: nn.Dropout2d(2.0), ArgumentError, r"p must be a probability"),
    ("hardtanh", lambda: nn.Hardtanh(1.0, -1.0), ArgumentError,
     r"^Hardtanh: min_val must not be greater than max_val"),
    ("gelu", lambda: nn.GELU("erf"), ArgumentError, r"^GELU: `approximate` must be"),
    ("softmax dim", lambda: nn.Softmax(1.5), ArgumentTypeError, r"`dim` must be an int or None"),
]


@pytest.mark.parametrize("fn,cls,pattern", [e[1:] for e in LAYER_ERRORS],
                         ids=[e[0] for e in LAYER_ERRORS])
def test_layer_errors(fn, cls, pattern):
    check_error(fn, cls, pattern)
