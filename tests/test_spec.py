"""The model-spec language: every layer and value form, round trips, generated specs, errors."""

from __future__ import annotations

import ast
import builtins
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import nn, shapes
from convscope.errors import SpecError
from convscope.spec import format_volume, output_shape, parse, parse_volume, to_spec


# ----------------------------------------------------------------------------- valid specs
def test_the_design_example():
    model = parse("64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | flatten | linear(10)")
    assert [type(m).__name__ for m in model] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten",
                                                  "Linear"]
    assert model.input_shape == (3, 64, 64)
    assert model[0].weight.shape == (8, 3, 5, 5)
    assert model[4].in_features == 32 * 32 * 8
    assert list(model.state_dict()) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert model(np.zeros((2, 3, 64, 64), np.float32)).shape == (2, 10)
    assert cs.parse is parse


@pytest.mark.parametrize("spec, check", [
    ("8x8x3 | conv(4, 3)", lambda m: m[0].kernel_size == (3, 3) and m[0].padding == ((0, 0),) * 2),
    ("8x8x3 | conv(4, (3, 5))", lambda m: m[0].kernel_size == (3, 5)),
    ("8x8x3 | conv(4, 3, 2, 1)", lambda m: m[0].stride == (2, 2) and m[0].padding == ((1, 1),) * 2),
    ("8x8x3 | conv(4, 3, stride=(1, 2))", lambda m: m[0].stride == (1, 2)),
    ("8x8x3 | conv(4, 3, padding=(1, 2))", lambda m: m[0].padding == ((1, 1), (2, 2))),
    ("8x8x3 | conv(4, 4, padding=((1, 2), (0, 3)))",
     lambda m: m[0].padding == ((1, 2), (0, 3))),
    ("8x8x3 | conv(4, 4, padding='same')", lambda m: m[0].padding == ((1, 2), (1, 2))),
    ('8x8x3 | conv(4, 3, padding="valid")', lambda m: m[0].padding == ((0, 0), (0, 0))),
    ("8x8x3 | conv(4, 3, dilation=2)", lambda m: m[0].dilation == (2, 2)),
    ("8x8x4 | conv(6, 3, groups=2)", lambda m: m[0].weight.shape == (6, 2, 3, 3)),
    ("8x8x3 | conv(4, 3, bias=false)", lambda m: m[0].bias is None),
    ("8x8x3 | conv(4, 3, bias=False)", lambda m: m[0].bias is None),
    ("8x8x3 | conv(4, 3, bias=True)", lambda m: m[0].bias is not None),
    ("8x8x3 | conv(4, 3, padding=1, padding_mode='reflect')",
     lambda m: m[0].padding_mode == "reflect"),
    ("8x8x3 | conv(out_channels=4, kernel_size=3)", lambda m: m[0].out_channels == 4),
    ("8x8x3 | conv(4, 3,)", lambda m: m[0].out_channels == 4),
    ("8x8x3 | maxpool(2)", lambda m: m[0].kernel_size == (2, 2) and m[0].stride == (2, 2)),
    ("8x8x3 | maxpool(3, stride=1, padding=1, dilation=1, ceil_mode=true)",
     lambda m: m[0].stride == (1, 1) and m[0].extra["ceil_mode"]),
    ("8x8x3 | maxpool(2, none)", lambda m: m[0].stride == (2, 2)),
    ("8x8x3 | avgpool(2, 1, 1, false, false)",
     lambda m: m[0].stride == (1, 1) and not m[0].extra["count_include_pad"]),
    ("8x8x3 | batchnorm", lambda m: m[0].num_features == 3),
    ("8x8x3 | batchnorm(eps=1e-3, momentum=0.2)", lambda m: m[0].eps == 1e-3),
    ("8x8x3 | dropout", lambda m: m[0].p == 0.5),
    ("8x8x3 | dropout(0.25)", lambda m: m[0].p == 0.25),
    ("8x8x3 | dropout(p=.1)", lambda m: m[0].p == 0.1),
    ("8x8x3 | flatten | linear(5, bias=false)",
     lambda m: m[1].in_features == 192 and m[1].bias is None),
    ("8x8x3 | conv2d(4, 3) | maxpool2d(2) | batchnorm2d", lambda m: len(m) == 3),
    ("  8 x 8 x 3|conv(4,3)|RELU  ", lambda m: m.input_shape == (3, 8, 8)),
    ("8\u00d78\u00d73 | relu", lambda m: m.input_shape == (3, 8, 8)),
    ("relu | maxpool(2)", lambda m: m.input_shape is None),
])
def test_layers_and_value_forms(spec, check):
    assert check(parse(spec))


@pytest.mark.parametrize("spec, normal", [
    ("64x64x3 | conv(8, 5, 1, 2)", "64x64x3 | conv(8, 5, padding=2)"),
    ("64x64x3|conv(8,(5,5),stride=(1,1),padding=((2,2),(2,2)))", "64x64x3 | conv(8, 5, padding=2)"),
    ("64x64x3 | conv(8, 5, padding='SAME', bias=False)",
     "64x64x3 | conv(8, 5, padding='same', bias=false)"),
    ("64x64x3 | Conv2d(8, 5) | MaxPool2d(2, 2) | dropout(p=1)",
     "64x64x3 | conv(8, 5) | maxpool(2) | dropout(p=1.0)"),
])
def test_normalised_spec_text(spec, normal):
    assert parse(spec).spec == normal
    assert parse(normal).spec == normal


def test_input_shape_argument_replaces_the_volume():
    model = parse("32x32x1 | conv(4, 3)", input_shape="64x64x3")
    assert model.input_shape == (3, 64, 64) and model[0].in_channels == 3
    assert parse("conv(4, 3)", input_shape=(1, 9, 9)).spec == "9x9x1 | conv(4, 3)"


def test_input_shape_argument_is_checked():
    with pytest.raises(SpecError, match=r"input_shape: the input volume must be \(C, H, W\): "
                                        r"three positive ints.*Received: \(64, 64\)"):
        parse("conv(4, 3)", input_shape=(64, 64))
    with pytest.raises(SpecError, match=r"three positive ints"):
        to_spec(parse("8x8x1 | relu"), (1, 0, 8))


def test_seed_makes_weights_reproducible():
    a = parse("8x8x3 | conv(4, 3) | flatten | linear(2)", seed=5)
    b = parse("8x8x3 | conv(4, 3) | flatten | linear(2)", seed=np.random.default_rng(5))
    c = parse("8x8x3 | conv(4, 3) | flatten | linear(2)", seed=6)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])
    assert not np.array_equal(a[0].weight.data, c[0].weight.data)


def test_volumes():
    assert parse_volume("64x64x3") == (3, 64, 64)
    assert format_volume((3, 64, 32)) == "64x32x3" and format_volume((10,)) == "10"


# ----------------------------------------------------------------------------- round trips
ROUND_TRIP = [
    "64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)",
    "32x32x3 | conv(8, 3, stride=2, padding='same', dilation=2, bias=false) | batchnorm | relu"
    " | maxpool(3, stride=2, padding=1, ceil_mode=true) | dropout(0.1) | flatten | linear(7)",
    "17x9x4 | conv(6, (3, 1), padding=((1, 0), (2, 3)), groups=2, padding_mode='circular')"
    " | avgpool(2, stride=1, count_include_pad=false) | batchnorm(eps=0.001, momentum=0.3)",
]


def _architecture(model: nn.Sequential) -> list[str]:
    return [repr(m) + str([p.shape for p in m.parameters()]) for m in model]


@pytest.mark.parametrize("spec", ROUND_TRIP)
def test_round_trip(spec):
    model = parse(spec)
    text = to_spec(model)
    again = parse(text)
    assert text == model.spec == again.spec
    assert _architecture(again) == _architecture(model)


def test_to_spec_of_a_hand_built_model():
    model = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 32 * 32, 10))
    text = to_spec(model, (3, 64, 64))
    assert text == "64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | flatten | linear(10)"
    assert _architecture(parse(text)) == _architecture(model)


def test_to_spec_refuses_what_it_cannot_write():
    with pytest.raises(SpecError, match=r"Dropout2d has no spec form"):
        to_spec(nn.Sequential(nn.Dropout2d()), (1, 4, 4))
    with pytest.raises(SpecError, match=r"expects 4 input channels/features, but the volume "
                                        r"there is 8x8x3"):
        to_spec(nn.Sequential(nn.Conv2d(4, 2, 3)), (3, 8, 8))
    with pytest.raises(SpecError, match=r"the input volume is unknown"):
        to_spec(nn.Sequential(nn.Conv2d(4, 2, 3)))


# ----------------------------------------------------------------------------- generated specs
def _pair_text(draw, value_range):
    a = draw(value_range)
    if draw(st.booleans()):
        return str(a), (a, a)
    b = draw(value_range)
    return f"({a}, {b})", (a, b)


@st.composite
def generated_specs(draw):
    """A spec text and the output volume that the arithmetic predicts (None: impossible)."""
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    shape: tuple[int, ...] | None = (c, h, w)
    parts = [f"{h}x{w}x{c}"]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "relu", "maxpool", "avgpool", "batchnorm",
                                     "dropout"]))
        if kind == "conv":
            out = draw(st.integers(1, 4))
            ktext, k = _pair_text(draw, st.integers(1, 4))
            stext, s = _pair_text(draw, st.integers(1, 3))
            dil = draw(st.integers(1, 2))
            groups = draw(st.sampled_from([1, 1, 2]))
            form = draw(st.sampled_from(["int", "pair", "nested", "same", "valid"]))
            if form == "int":
                p0 = draw(st.integers(0, 2))
                ptext, pads = str(p0), ((p0, p0), (p0, p0))
            elif form == "pair":
                a, b = draw(st.integers(0, 2)), draw(st.integers(0, 2))
                ptext, pads = f"({a}, {b})", ((a, a), (b, b))
            elif form == "nested":
                t, bo, le, ri = (draw(st.integers(0, 2)) for _ in range(4))
                ptext, pads = f"(({t}, {bo}), ({le}, {ri}))", ((t, bo), (le, ri))
            else:
                quote = draw(st.sampled_from(["'", '"']))
                ptext, pads = f"{quote}{form}{quote}", form
            bias = draw(st.sampled_from(["", ", bias=false", ", bias=True"]))
            parts.append(f"conv({out}, {ktext}, stride={stext}, padding={ptext}, "
                         f"dilation={dil}, groups={groups}{bias})")
            if shape is not None:
                if shape[0] % groups or out % groups:
                    shape = None
                else:
                    size = []
                    for axis in (0, 1):
                        n = shape[1 + axis]
                        if pads == "same":
                            size.append(-(-n // s[axis]))
                        else:
                            total = 0 if pads == "valid" else sum(pads[axis])
                            size.append(shapes.conv_out(n, k[axis], s[axis], total, dil))
                    shape = (out, *size) if min(size) >= 1 else None
        elif kind in ("maxpool", "avgpool"):
            k = draw(st.integers(1, 3))
            stride = draw(st.sampled_from([None, 1, 2]))
            pad = draw(st.integers(0, 1))
            ceil = draw(st.booleans())
            parts.append(f"{kind}({k}, stride={'none' if stride is None else stride}, "
                         f"padding={pad}, ceil_mode={'true' if ceil else 'false'})")
            if shape is not None:
                s = k if stride is None else stride
                size = [shapes.pool_out(n, k, s, pad, 1, ceil) for n in shape[1:]]
                shape = None if pad > k // 2 or min(size) < 1 else (shape[0], *size)
        else:
            parts.append({"relu": "relu", "batchnorm": "batchnorm",
                          "dropout": "dropout(0.3)"}[kind])
    if draw(st.booleans()):
        features = draw(st.integers(1, 5))
        parts += ["flatten", f"linear({features})"]
        shape = None if shape is None else (features,)
    return " | ".join(parts), shape


@settings(max_examples=60, deadline=None)
@given(generated_specs())
def test_generated_specs_agree_with_shapes_and_with_a_forward_pass(case):
    text, expected = case
    if expected is None:
        with pytest.raises(SpecError, match=r"spec layer \d+ \(\w+\): impossible with input"):
            parse(text)
        return
    model = parse(text).eval()
    shape = model.input_shape
    for layer in model:
        shape = output_shape(layer, shape)
    assert shape == expected
    y = model(np.zeros((1,) + model.input_shape, np.float32))
    assert y.shape == (1,) + expected
    assert parse(model.spec).spec == model.spec


# ----------------------------------------------------------------------------- errors
def _caret_column(err: SpecError) -> tuple[int, int]:
    lines = str(err).splitlines()
    caret = lines[-1]
    start = caret.index("^")
    return start - 4, len(caret.rstrip()) - 4


@pytest.mark.parametrize("spec, column, width, pattern", [
    ("64x64x3 | covn(8, 5)", 10, 4, r"unknown layer 'covn'\. Fix: did you mean 'conv'\? Known "
                                    r"layers: conv, relu, maxpool, avgpool, flatten, linear"),
    ("64x64x3 | conv(8, 5) | rleu", 23, 4, r"did you mean 'relu'"),
    ("64x64x3 | conv(8, 5, paddin=2)", 21, 6, r"conv has no argument `paddin`\. Fix: did you "
                                              r"mean padding\?"),
    ("64x64x3 | conv(8, 5, stride=0)", 28, 1, r"`stride` must be a positive int"),
    ("64x64x3 | conv(8, 5, padding=-1)", 29, 2, r"`padding` must be an int >= 0"),
    ("64x64x3 | conv(8, 5, padding=same)", 29, 4, r"bare word same\. Fix: quote strings: 'same'"),
    ("64x64x3 | conv(8, 5, padding='sane')", 29, 6, r"'same' or 'valid'"),
    ("64x64x3 | conv(8, 5, bias=1)", 26, 1, r"`bias` must be true or false"),
    ("64x64x3 | conv(8)", 10, 7, r"conv needs `kernel_size`\. Fix: write conv\(out_channels, "
                                 r"kernel_size\)"),
    ("64x64x3 | conv(8, 5x5)", 18, 3, r"'5x5' is not a value here"),
    ("64x64x3 | conv(8, 5, stride=2, 1)", 31, 1, r"a positional value after a keyword"),
    ("64x64x3 | conv(8, 5, kernel_size=3)", 21, 11, r"`kernel_size` is given twice"),
    ("64x64x3 | relu(3)", 15, 1, r"relu takes no arguments"),
    ("64x64x3 | dropout(2)", 18, 1, r"`p` must be a number from 0 to 1"),
    ("64x64x3 | conv(8, 5", 19, 1, r"expected ',' or '\)' in conv\(\.\.\.\), found the end"),
    ("64x64x3 | conv(8, 5) relu", 21, 4, r"expected '\|' between layers, found 'relu'"),
    ("64x64x3 | relu |", 16, 1, r"expected a layer name, found nothing"),
    ("64x64x3 || relu", 9, 1, r"expected a layer name, found nothing"),
    ("64x64x3 | conv(8, 5, padding='same)", 29, 6, r"this string is never closed"),
    ("64x64x3 | conv(8; 5)", 16, 1, r"expected ',' or '\)' in conv\(\.\.\.\), found ';'"),
    ("64x64 | relu", 0, 5, r"the input volume needs three numbers H x W x D.*64x64x1"),
    ("0x64x3 | relu", 0, 6, r"sizes must be positive"),
    ("conv(8, 5) | relu", 0, 10, r"spec layer 0 \(conv\): conv needs the input volume to work "
                                 r"out its kernel depth\. Fix: start the spec with the input "
                                 r"volume H x W x D"),
    ("relu | linear(10)", 7, 10, r"linear needs the input volume to work out in_features"),
    ("64x64x3 | conv(8, 70)", 10, 11, r"spec layer 0 \(conv\): impossible with input volume "
                                      r"64x64x3: .*the 70x70 kernel is larger than the padded "
                                      r"input 64x64"),
    ("64x64x3 | conv(8, 5) | maxpool(2) | conv(8, 40)", 36, 11,
     r"spec layer 2 \(conv\): impossible with input volume 30x30x8"),
    ("64x64x3 | conv(8, 5, groups=2)", 10, 20, r"`groups` must divide both in_channels and "
                                               r"out_channels.*in_channels=3, out_channels=8"),
    ("64x64x3 | linear(10)", 10, 10, r"needs flat values, but gets a volume 64x64x3\. Fix: put "
                                     r"flatten before it \(12288 values\)"),
    ("8x8x3 | flatten | conv(4, 3)", 18, 10, r"impossible with input 192 flat values: .*put it "
                                             r"before flatten"),
    ("8x8x3 | maxpool(2, padding=2)", 8, 21, r"padding must be at most half"),
    ("3x64x64 | conv(8, 5)", 10, 10, r"did you mean 64x64x3\?"),
    ("4x4x3 | conv(2, 3, padding=4, padding_mode='reflect')", 8, 45,
     r"reflect padding .* does not fit an input of 4x4"),
    ("64x64x3", 7, 1, r"the spec has no layers"),
    ("", 0, 1, r"expected a layer name, found nothing"),
])
def test_malformed_specs_point_at_the_mistake(spec, column, width, pattern):
    with pytest.raises(SpecError, match=pattern) as info:
        parse(spec)
    err = info.value
    assert str(err).splitlines()[-2] == "    " + spec
    assert _caret_column(err) == (column, column + width)
    assert (err.column, err.end) == (column, column + width)
    assert "Traceback" not in str(err)


@pytest.mark.parametrize("spec", [
    "__import__('os').system('echo pwned')",
    "64x64x3 | conv(8, __import__('os'))",
    "64x64x3 | conv(8, 5, padding=eval('2'))",
    "64x64x3 | conv(8, 5, padding=[2, 2])",
    "64x64x3 | conv(8, 5); import os",
    "64x64x3 | conv(8, 5, **{'padding': 2})",
    "64x64x3 | conv(8, 5, padding=2 if True else 0)",
    "64x64x3 | conv(8, 5, padding=1+1)",
])
def test_nothing_is_evaluated(spec, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the spec parser evaluated text")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(ast, "literal_eval", forbidden)
    with pytest.raises(SpecError):
        parse(spec)


def test_parsing_never_evaluates_even_valid_specs(monkeypatch):
    monkeypatch.setattr(builtins, "eval", None)
    monkeypatch.setattr(ast, "literal_eval", None)
    assert parse("4x4x1 | conv(2, (3, 3), padding=((1, 1), (1, 1)))").spec == \
        "4x4x1 | conv(2, 3, padding=1)"


def test_spec_must_be_a_string():
    with pytest.raises(SpecError, match=r"a model spec must be a string"):
        parse(["conv(8, 5)"])  # type: ignore[arg-type]


def test_spec_errors_are_value_errors():
    with pytest.raises(ValueError):
        parse("64x64x3 | nope")


def test_long_multiline_spec_shows_the_right_line():
    spec = "64x64x3\n| conv(8, 5)\n| maxpool(2)\n| covn(3, 3)"
    with pytest.raises(SpecError) as info:
        parse(spec)
    lines = str(info.value).splitlines()
    assert lines[-2] == "    | covn(3, 3)" and lines[-1] == "      ^^^^"


def test_error_message_sizes_come_from_shapes():
    with pytest.raises(SpecError) as info:
        parse("10x10x1 | conv(1, 4, stride=3) | conv(1, 4)")
    h = shapes.conv_out(10, 4, 3)
    assert f"impossible with input volume {h}x{h}x1" in str(info.value)
    assert math.prod((1, h, h)) == 9 and re.search(r"larger than the padded input 3x3",
                                                   str(info.value))
