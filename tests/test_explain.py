"""explain: the slides' numbers, hand-counted costs, receptive fields, broken models, --expect."""

from __future__ import annotations

import pytest

import convscope as cs
from convscope import nn
from convscope.errors import ArgumentError, SpecError
from convscope.explain import Explanation, conv_formula, explain

SLIDES = "64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)"


# ----------------------------------------------------------------------------- the slides
@pytest.mark.parametrize("spec, volume", [
    ("64x64x3 | conv(1, 5)", "60x60x1"),                       # "Feature map: 60x60x1"
    ("64x64x3 | conv(1, 5, padding=2)", "64x64x1"),            # "64x64x1 (with padding=2)"
    ("64x64x3 | conv(8, 5, padding=2)", "64x64x8"),            # "a volume of 64x64x8"
    ("64x64x3 | conv(8, 5, padding=1)", "62x62x8"),            # the deck's slip
    (SLIDES, "64x64x16"),                                      # the second layer
])
def test_the_slides_volumes(spec, volume):
    e = explain(spec)
    assert e.rows[-1]["output_text"] == volume
    assert e.error is None and cs.explain is explain


def test_the_slides_words():
    e = explain(SLIDES)
    assert [r["operation"] for r in e.rows] == [
        "8 kernels of 5x5x3, padding 2, stride 1",
        "ReLU: max(x, 0) per value",
        "16 kernels of 5x5x8, padding 2, stride 1",
    ]
    assert [r["input_text"] for r in e.rows] == ["64x64x3", "64x64x8", "64x64x8"]
    text = str(e)
    for phrase in ["Each kernel is 5x5x3: kernel depth = input depth = 3",
                   "its dot product with the 5x5x3 patch under it, 75 multiplies + bias",
                   "(64 + 2*2 - 5)/1 + 1 = 64",
                   "8 kernels give depth 8: the output is a volume of 64x64x8",
                   "the next conv (layer 2) has kernels of 5x5x8: as deep as this output",
                   "FLOPs = 2 x multiply-adds = 31.1 MFLOPs",
                   "one multiply-add counts once"]:
        assert phrase in " ".join(text.split()), phrase
    assert all(len(line) <= 100 for line in text.splitlines())


def test_no_padding_formula():
    e = explain("64x64x3 | conv(1, 5)")
    assert e.rows[0]["formula"] == "(64 - 5)/1 + 1 = 60"
    assert "no padding" in e.rows[0]["operation"]


@pytest.mark.parametrize("args, text", [
    ((64, 5, 1, (2, 2)), "(64 + 2*2 - 5)/1 + 1 = 64"),
    ((64, 5, 2, (2, 2)), "floor((64 + 2*2 - 5)/2) + 1 = 32"),
    ((64, 4, 1, (1, 2)), "(64 + 1 + 2 - 4)/1 + 1 = 64"),
    ((16, 3, 2, (1, 1), 2), "floor((16 + 2*1 - 2*(3 - 1) - 1)/2) + 1 = 7"),
    ((5, 2, 2, (0, 0), 1, True), "ceil((5 - 2)/2) + 1 = 3"),
])
def test_conv_formula(args, text):
    assert conv_formula(*args) == text
    size, k, stride, pad = args[:4]
    if len(args) < 6:  # floor mode: the same number as shapes.conv_out
        dilation = args[4] if len(args) > 4 else 1
        assert int(text.rsplit("= ", 1)[1]) == cs.shapes.conv_out(size, k, stride, sum(pad),
                                                                  dilation)


# ----------------------------------------------------------------------------- counts
def test_params_and_multiply_adds_counted_by_hand():
    e = explain("32x32x3 | conv(8, 3, padding=1) | relu | maxpool(2) | batchnorm | flatten"
                " | linear(10) | dropout")
    conv_params = 8 * 3 * 3 * 3 + 8                 # 8 kernels of 3x3x3 + 8 biases = 224
    conv_macs = 32 * 32 * 8 * (3 * 3 * 3)           # each output value: 27 multiply-adds
    bn_params, bn_macs = 2 * 8, 2 * 8                # scale + shift (torchinfo's count)
    lin_params = 16 * 16 * 8 * 10 + 10              # 2048 -> 10
    lin_macs = 2048 * 10
    assert [r["params"] for r in e.rows] == [conv_params, 0, 0, bn_params, 0, lin_params, 0]
    assert [r["macs"] for r in e.rows] == [conv_macs, 0, 0, bn_macs, 0, lin_macs, 0]
    assert (conv_params, conv_macs) == (224, 221_184)
    assert e.total_params == 224 + 16 + 20_490
    assert e.total_params == sum(p.numel() for p in cs.parse(
        "32x32x3 | conv(8, 3, padding=1) | relu | maxpool(2) | batchnorm | flatten"
        " | linear(10) | dropout").parameters())
    assert e.total_macs == conv_macs + bn_macs + lin_macs
    assert e.output_shape == (10,)
    assert "flatten 16x16x8 -> 2048 values" in [r["operation"] for r in e.rows]
    assert "linear 2048 -> 10" in [r["operation"] for r in e.rows]
    assert "max pool 2x2, stride 2" in [r["operation"] for r in e.rows]


def test_grouped_strided_dilated_conv_counts():
    e = explain("16x16x4 | conv(6, 3, stride=2, padding=1, dilation=2, groups=2, bias=false)")
    row = e.rows[0]
    assert row["operation"] == ("6 kernels of 3x3x2 in 2 groups, padding 1, stride 2, "
                                "dilation 2, no bias")
    assert row["output"] == (6, 7, 7)
    assert row["params"] == 6 * 2 * 3 * 3
    assert row["macs"] == 6 * 7 * 7 * (2 * 3 * 3)


# ----------------------------------------------------------------------------- receptive field
@pytest.mark.parametrize("spec, fields", [
    ("64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)", ["5x5", "5x5", "9x9"]),
    ("32x32x1 | conv(1, 3) | maxpool(2) | conv(1, 3)", ["3x3", "4x4", "8x8"]),
    ("32x32x1 | conv(1, 3, dilation=2) | conv(1, (3, 1))", ["5x5", "7x5"]),
    ("8x8x1 | conv(2, 3) | flatten | linear(2)", ["3x3", "all", "all"]),
])
def test_receptive_field(spec, fields):
    assert [r["rf_text"] for r in explain(spec).rows] == fields


# ----------------------------------------------------------------------------- broken models
def test_a_spec_broken_at_layer_k_is_explained_up_to_k():
    e = explain("64x64x3 | conv(8, 5) | maxpool(2) | conv(8, 40) | relu")
    assert [r["output_text"] for r in e.rows] == ["60x60x8", "30x30x8", ""]
    assert e.rows[-1]["output"] is None and e.rows[-1]["input_text"] == "30x30x8"
    assert e.output_shape is None
    assert "spec layer 2 (conv): impossible with input volume 30x30x8" in e.error
    assert "the 40x40 kernel is larger than the padded input 30x30" in e.error
    text = str(e)
    assert "ERROR" in text and "The model breaks at layer 2:" in text
    assert "(60 - 2)/2 + 1 = 30" in text
    assert e.check("30x30x8").startswith("the model does not run")


def test_a_sequential_broken_at_layer_k():
    model = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 2, 3))
    e = explain(model, (3, 64, 64))
    assert len(e.rows) == 3 and e.rows[2]["output"] is None
    assert e.rows[2]["operation"].startswith("2 kernels of 3x3x4")
    assert e.error.startswith("layer 2 (Conv2d), input 64x64x8:")
    assert "input depth 8 does not match kernel depth 4" in e.error


def test_syntax_errors_are_raised_not_explained():
    with pytest.raises(SpecError, match=r"unknown layer 'covn'"):
        explain("64x64x3 | covn(8, 5)")


def test_model_input_shape_and_single_layers():
    model = cs.parse(SLIDES)
    assert explain(model).output_shape == (16, 64, 64)
    assert explain(model, (3, 32, 32)).output_shape == (16, 32, 32)
    assert explain(model, "32x32x3").output_shape == (16, 32, 32)
    assert explain(nn.Conv2d(3, 8, 5), (3, 64, 64)).output_shape == (8, 60, 60)
    assert explain("conv(8, 5)", "64x64x3").output_shape == (8, 60, 60)
    with pytest.raises(ArgumentError, match=r"the input volume is unknown"):
        explain(nn.Conv2d(3, 8, 5))
    with pytest.raises(ArgumentError, match=r"expected a model, a layer or a spec string"):
        explain(42)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- --expect
def test_check_catches_the_decks_slip():
    e = explain("64x64x3 | conv(8, 5, padding=1)")
    assert e.check("62x62x8") is None
    assert e.check((8, 62, 62)) is None
    assert e.check("64x64x8") == ("the output is 62x62x8, not 64x64x8: layer 0 gives "
                                  "(64 + 2*1 - 5)/1 + 1 = 62; padding=2 at layer 0 gives 64x64x8")


def test_check_finds_the_padding_behind_later_layers():
    e = explain("64x64x3 | conv(8, 5) | relu | maxpool(2)")
    msg = e.check("32x32x8")
    assert msg.startswith("the output is 30x30x8, not 32x32x8: layer 0 gives (64 - 5)/1 + 1 = 60")
    assert msg.endswith("padding=2 at layer 0 gives 32x32x8")


def test_check_depth_and_impossible_sizes():
    e = explain(SLIDES)
    assert "the depth 16 is the number of kernels of the last conv (layer 2); conv(8, ...) " \
           "gives depth 8" in e.check("64x64x8")
    e = explain("64x64x3 | conv(8, 3, stride=2)")
    assert "no single padding change gives the expected size" in e.check("64x64x8")
    assert explain("8x8x1 | flatten | linear(10)").check("12") == \
        "the output is 10, not 12: the last linear layer sets the number of values"
    with pytest.raises(ArgumentError, match=r"--expect: '64x64' is not a volume"):
        e.check("64x64")


def test_explanation_is_a_plain_object():
    e = explain(SLIDES)
    assert isinstance(e, Explanation) and e.input_shape == (3, 64, 64)
    assert e.rows[0]["params"] == 8 * 75 + 8 and e.rows[2]["params"] == 16 * 200 + 16
    assert e.total_macs == 64 * 64 * 8 * 75 + 64 * 64 * 16 * 200
