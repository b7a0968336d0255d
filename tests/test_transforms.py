"""convscope.transforms against torchvision's documented semantics, written out here.

torchvision is not installed (and never will be): each test states torchvision's rule
(output sizes, crop offsets with Python's round, padding, the RandomResizedCrop sampling,
the colour formulas) and checks the transform against it. PIL images are checked against
Pillow itself, which is what torchvision calls for them.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

import convscope as cs
import convscope.transforms as T
import convscope.transforms.functional as F
from convscope.errors import ArgumentError, ArgumentTypeError, ShapeError
from errorcheck import check_error


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _chw(pil: Image.Image) -> np.ndarray:
    a = np.asarray(pil)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


# ------------------------------------------------------------------------------ ToTensor
def test_to_tensor_scales_uint8_and_keeps_floats():
    hwc = _rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = T.ToTensor()(hwc)
    assert isinstance(x, cs.Tensor) and x.shape == (3, 5, 7) and x.dtype == np.float32
    np.testing.assert_array_equal(x.numpy(), hwc.transpose(2, 0, 1).astype(np.float32) / 255)
    np.testing.assert_array_equal(T.ToTensor()(Image.fromarray(hwc)).numpy(), x.numpy())
    grey = T.ToTensor()(Image.fromarray(hwc[:, :, 0]))
    assert grey.shape == (1, 5, 7)
    bits = T.ToTensor()(Image.fromarray(hwc[:, :, 0] > 128))
    assert set(np.unique(bits.numpy())) <= {0.0, 1.0}
    f64 = np.linspace(0, 3, 6).reshape(2, 3)  # not uint8: values kept, as torchvision
    y = T.ToTensor()(f64)
    assert y.dtype == np.float64 and y.numpy().tolist() == [f64.tolist()]
    check_error(lambda: T.ToTensor()(x), ArgumentTypeError, r"PIL image or a NumPy array.*Tensor")
    check_error(lambda: T.ToTensor()(np.zeros((1, 2, 3, 4))), ShapeError, r"2-D \(H, W\) or 3-D")


# ----------------------------------------------------------------------------- Normalize
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**31))
def test_normalize_is_minus_mean_over_std_per_channel(c, seed):
    rng = _rng(seed)
    x = rng.random((c, 3, 4), dtype=np.float32)
    mean = rng.random(c).tolist()
    std = (rng.random(c) + 0.1).tolist()
    out = T.Normalize(mean, std)(cs.tensor(x))
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    np.testing.assert_array_equal(out.numpy(), (x - m) / s)  # torch: sub_(mean).div_(std)
    assert isinstance(out, cs.Tensor)
    batched = T.Normalize(mean, std)(np.stack([x, x]))
    np.testing.assert_array_equal(batched[1], (x - m) / s)


def test_normalize_errors():
    x = np.ones((3, 2, 2), np.float32)
    check_error(lambda: T.Normalize((0.5,), (0.5,))(Image.new("RGB", (2, 2))), ArgumentTypeError,
                r"ToTensor\(\) before Normalize")
    check_error(lambda: T.Normalize((0,), (1,))(x.astype(np.uint8)), ArgumentTypeError,
                r"must hold floats")
    check_error(lambda: T.Normalize((0, 0, 0), (1, 0, 1))(x), ArgumentError,
                r"std evaluated to zero")
    check_error(lambda: T.Normalize((0, 0), (1, 1))(x), ShapeError,
                r"mean has 2 values but the image has 3 channels")
    check_error(lambda: T.Normalize((0,), (1,))(x[0]), ShapeError, r"\(\.\.\., C, H, W\)")


# -------------------------------------------------------------------------------- Resize
def _torchvision_size(h: int, w: int, size: int, max_size: int | None = None) -> tuple[int, int]:
    """torchvision's _compute_resized_output_size for an int size, written out."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return new_h, new_w


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 50), st.booleans())
def test_resize_output_sizes(h, w, size, capped):
    max_size = size + 7 if capped else None
    expected = _torchvision_size(h, w, size, max_size)
    arr = np.zeros((3, h, w), np.float32)
    if min(expected) == 0:  # torchvision goes on with an empty image; convscope says why
        check_error(lambda: T.Resize(size, max_size=max_size)(arr), ArgumentError,
                    r"which has no pixels")
        return
    assert T.Resize(size, max_size=max_size)(arr).shape == (3, *expected)
    pil = Image.new("RGB", (w, h))
    assert T.Resize(size, max_size=max_size)(pil).size == (expected[1], expected[0])
    assert T.Resize((size, 5))(arr).shape == (3, size, 5)


def test_resize_of_the_same_size_returns_the_image_itself():
    arr = np.zeros((1, 4, 6), np.float32)
    assert T.Resize(4)(arr) is arr
    check_error(lambda: T.Resize((4, 6), max_size=9), ArgumentError, r"max_size only applies")
    check_error(lambda: T.Resize("big"), ArgumentTypeError, r"size must be a positive int")
    check_error(lambda: T.Resize(8, max_size=8), ArgumentError, r"max_size must be larger")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 30), st.integers(1, 30),
       st.integers(0, 2**31))
def test_resize_arrays_equal_pillows_antialiased_bilinear(h, w, oh, ow, seed):
    """Pillow's float ("F") resize is the antialiased bilinear filter torchvision uses."""
    x = _rng(seed).random((2, h, w), dtype=np.float32)
    ours = F.resize(x, [oh, ow])
    for k in range(2):
        ref = np.asarray(Image.fromarray(x[k]).resize((ow, oh), Image.Resampling.BILINEAR))
        np.testing.assert_allclose(ours[k], ref, atol=2e-6, rtol=0)


def test_resize_without_antialias_is_bilinear_interpolation_and_nearest_is_floor():
    x = np.arange(8, dtype=np.float64).reshape(1, 1, 8)
    # align_corners=False: output pixel i samples input position (i + 0.5) * 8 / 4 - 0.5
    np.testing.assert_allclose(F.resize(x, [1, 4], antialias=False)[0, 0], [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(F.resize(x, [1, 4])[0, 0],  # antialiased: a wider triangle
                               [(0 * 3 + 1 * 3 + 2 * 1) / 7, 2.5, 4.5, (5 + 6 * 3 + 7 * 3) / 7])
    near = F.resize(x, [1, 3], interpolation="nearest")[0, 0]
    assert near.tolist() == [x[0, 0, math.floor(i * 8 / 3)] for i in range(3)]
    u8 = np.array([[[0, 255, 0, 255]]], np.uint8)
    assert F.resize(u8, [1, 2], antialias=False).tolist() == [[[128, 128]]]  # 127.5 rounded
    check_error(lambda: F.resize(x, [1, 3], interpolation="cubic"), ArgumentError,
                r"nearest, bilinear or bicubic")


# ----------------------------------------------------------------------------- CenterCrop
@settings(max_examples=80, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 24), st.integers(1, 24))
def test_center_crop_offsets_use_pythons_round(h, w, th, tw):
    arr = np.arange(h * w, dtype=np.float32).reshape(1, h, w) + 1
    out = T.CenterCrop((th, tw))(arr)
    assert out.shape == (1, th, tw)
    if th <= h and tw <= w:
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))  # halves to even
        np.testing.assert_array_equal(out, arr[:, top:top + th, left:left + tw])
    else:  # torchvision pads with zeros first: (t - s) // 2 before, (t - s + 1) // 2 after
        pt = (th - h) // 2 if th > h else 0
        pl = (tw - w) // 2 if tw > w else 0
        padded = np.pad(arr, ((0, 0), (pt, max(th - h - pt, 0)), (pl, max(tw - w - pl, 0))))
        ph, pw = padded.shape[1:]
        top, left = int(round((ph - th) / 2.0)), int(round((pw - tw) / 2.0))
        np.testing.assert_array_equal(out, padded[:, top:top + th, left:left + tw])
    pil = Image.fromarray(arr[0])
    np.testing.assert_array_equal(np.asarray(T.CenterCrop((th, tw))(pil)), out[0])


def test_center_crop_rounding_examples():
    arr = np.arange(7, dtype=np.float32).reshape(1, 1, 7)
    assert T.CenterCrop((1, 2))(arr).ravel().tolist() == [2.0, 3.0]  # round(2.5) == 2
    assert T.CenterCrop((1, 4))(arr).ravel().tolist() == [2.0, 3.0, 4.0, 5.0]  # round(1.5) == 2


# ------------------------------------------------------------------------ flips and crops
def test_flips_and_their_probability():
    x = _rng(1).random((3, 4, 5), dtype=np.float32)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1.0)(x), x[:, ::-1, :])
    assert T.RandomHorizontalFlip(p=0.0)(x) is x
    pil = Image.fromarray((x.transpose(1, 2, 0) * 255).astype(np.uint8))
    np.testing.assert_array_equal(_chw(T.RandomHorizontalFlip(p=1.0)(pil)), _chw(pil)[:, :, ::-1])
    flip = T.RandomHorizontalFlip(p=0.3, generator=cs.Generator().manual_seed(4))
    draws = np.random.default_rng(4).random(50) < 0.3  # one u < p per image
    got = [not np.array_equal(flip(x), x) for _ in range(50)]
    assert got == draws.tolist()
    check_error(lambda: T.RandomHorizontalFlip(p=2), ArgumentError, r"probability in \[0, 1\]")


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.integers(2, 12), st.integers(1, 12), st.integers(0, 4),
       st.sampled_from(["constant", "edge", "reflect", "symmetric"]), st.integers(0, 2**31))
def test_random_crop_with_padding(h, w, size, padding, mode, seed):
    if mode == "reflect" and padding >= min(h, w):
        return
    x = _rng(seed).random((2, h, w), dtype=np.float32)
    size = min(size, h + 2 * padding, w + 2 * padding)
    crop = T.RandomCrop(size, padding=padding, fill=0.25, padding_mode=mode,
                        generator=np.random.default_rng(seed))
    out = crop(x)
    np_mode = {"constant": "constant", "edge": "edge", "reflect": "reflect",
               "symmetric": "symmetric"}[mode]
    kwargs = {"constant_values": 0.25} if mode == "constant" else {}
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)), mode=np_mode, **kwargs)
    ph, pw = padded.shape[1:]
    ref = np.random.default_rng(seed)  # torchvision's draws: top, then left
    if (ph, pw) == (size, size):
        i = j = 0
    else:
        i, j = int(ref.integers(0, ph - size + 1)), int(ref.integers(0, pw - size + 1))
    np.testing.assert_array_equal(out, padded[:, i:i + size, j:j + size])


def test_random_crop_pad_if_needed_pads_both_sides_and_pil_agrees():
    x = np.arange(12, dtype=np.uint8).reshape(1, 3, 4) + 1
    out = T.RandomCrop((3, 8), pad_if_needed=True, generator=0)(x)
    # torchvision pads the width by (8 - 4) on the left AND the right, then crops 8 of 12
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4)))
    j = int(np.random.default_rng(0).integers(0, 12 - 8 + 1))
    np.testing.assert_array_equal(out, padded[:, :, j:j + 8])
    pil = Image.fromarray(x[0])
    got = T.RandomCrop((3, 8), pad_if_needed=True, generator=0)(pil)
    np.testing.assert_array_equal(np.asarray(got), out[0])
    rgb = Image.new("RGB", (2, 2), (10, 20, 30))
    padded_rgb = np.asarray(T.Pad(1, fill=(1, 2, 3))(rgb))
    assert padded_rgb[0, 0].tolist() == [1, 2, 3] and padded_rgb[1, 1].tolist() == [10, 20, 30]
    check_error(lambda: T.RandomCrop(5)(np.zeros((1, 3, 3), np.float32)), ArgumentError,
                r"crop size \(5, 5\) is larger than the input image size \(3, 3\).*padding=")
    check_error(lambda: T.RandomCrop(3, padding_mode="wrap"), ArgumentError,
                r"padding_mode must be constant, edge, reflect or symmetric")


# --------------------------------------------------------------------- RandomResizedCrop
def _torchvision_rrc(rng, height, width, scale, ratio):
    """torchvision's RandomResizedCrop.get_params, written out (same draw order)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int(rng.integers(0, height - h + 1))
            j = int(rng.integers(0, width - w + 1))
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w = width
        h = height
    return (height - h) // 2, (width - w) // 2, h, w


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 50), st.integers(1, 50), st.floats(0.01, 2.0), st.floats(0.01, 2.0),
       st.floats(0.2, 1.0), st.floats(1.0, 5.0), st.integers(0, 2**31))
def test_random_resized_crop_samples_as_torchvision(h, w, s0, s1, r0, r1, seed):
    scale = (min(s0, s1), max(s0, s1))
    img = np.zeros((1, h, w), np.float32)
    got = T.RandomResizedCrop.get_params(img, scale, (r0, r1), np.random.default_rng(seed))
    assert got == _torchvision_rrc(np.random.default_rng(seed), h, w, scale, (r0, r1))
    top, left, ch, cw = got
    assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w


def test_random_resized_crop_fallback_and_output():
    img = np.arange(40 * 10, dtype=np.float32).reshape(1, 40, 10)
    # no area fits (scale > 1): the central crop with the ratio clamped to 3/4
    assert T.RandomResizedCrop.get_params(img, (2.0, 3.0), (3 / 4, 4 / 3)) == (
        (40 - 13) // 2, 0, 13, 10)
    rrc = T.RandomResizedCrop((8, 6), scale=(2.0, 3.0), generator=0)
    np.testing.assert_allclose(rrc(img), F.resize(img[:, 13:26, :], [8, 6]))
    pil = T.RandomResizedCrop(16, generator=1)(Image.new("RGB", (30, 20)))
    assert pil.size == (16, 16)
    check_error(lambda: T.RandomResizedCrop(8, scale=(1.0, 0.5)), ArgumentError,
                r"scale must be a pair \(min, max\) with 0 < min <= max")


# ---------------------------------------------------------------------------- ColorJitter
def _grey(x):
    return 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 2.0), st.integers(0, 2**31))
def test_colour_formulas_are_torchvisions(f, seed):
    x = _rng(seed).random((3, 4, 5), dtype=np.float32)
    x64 = x.astype(np.float64)
    tol = {"atol": 2e-6, "rtol": 0}
    np.testing.assert_allclose(F.adjust_brightness(x, f), np.clip(f * x64, 0, 1), **tol)
    mean = _grey(x64).mean()  # one mean over the whole (grey) image
    np.testing.assert_allclose(F.adjust_contrast(x, f),
                               np.clip(f * x64 + (1 - f) * mean, 0, 1), **tol)
    np.testing.assert_allclose(F.adjust_saturation(x, f),
                               np.clip(f * x64 + (1 - f) * _grey(x64)[None], 0, 1), **tol)
    np.testing.assert_allclose(F.rgb_to_grayscale(x)[0], _grey(x64), **tol)
    grey = x[:1]
    assert F.adjust_saturation(grey, f) is grey and F.adjust_hue(grey, 0.2) is grey


@settings(max_examples=40, deadline=None)
@given(st.floats(-0.5, 0.5), st.integers(0, 2**31))
def test_hue_turns_hsv_hue(hue, seed):
    x = _rng(seed).random((3, 3, 4), dtype=np.float32)
    out = F.adjust_hue(x, hue)
    ref = np.empty_like(x, dtype=np.float64)
    for i in range(3):
        for j in range(4):
            hh, s, v = colorsys.rgb_to_hsv(*x[:, i, j].astype(np.float64))
            ref[:, i, j] = colorsys.hsv_to_rgb((hh + hue) % 1.0, s, v)
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=0)


def test_colour_on_pil_is_pillows_enhance_and_torchvisions_hsv_shift():
    rgb = _rng(3).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    pil = Image.fromarray(rgb)
    for fn, enhancer in ((F.adjust_brightness, ImageEnhance.Brightness),
                         (F.adjust_contrast, ImageEnhance.Contrast),
                         (F.adjust_saturation, ImageEnhance.Color)):
        np.testing.assert_array_equal(np.asarray(fn(pil, 1.3)),
                                      np.asarray(enhancer(pil).enhance(1.3)))
    h, s, v = pil.convert("HSV").split()
    shifted = (np.asarray(h).astype(np.int64) + int(-0.2 * 255)) % 256  # uint8 wrap-around
    ref = Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8)), s, v)).convert("RGB")
    np.testing.assert_array_equal(np.asarray(F.adjust_hue(pil, -0.2)), np.asarray(ref))


def test_color_jitter_draws_an_order_then_the_factors():
    x = _rng(5).random((3, 4, 4), dtype=np.float32)
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=np.random.default_rng(9))
    ref = np.random.default_rng(9)
    order = ref.permutation(4)
    factors = [ref.uniform(0.6, 1.4), ref.uniform(0.6, 1.4), ref.uniform(0.6, 1.4),
               ref.uniform(-0.1, 0.1)]
    ops = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    expected = x
    for k in order:
        expected = ops[k](expected, factors[k])
    np.testing.assert_array_equal(jitter(x), expected)
    assert T.ColorJitter(brightness=0.5).contrast is None  # disabled adjustments
    assert T.ColorJitter(brightness=2.0).brightness == (0.0, 3.0)  # clipped at 0
    check_error(lambda: T.ColorJitter(hue=0.7), ArgumentError, r"hue values should be between")
    check_error(lambda: T.ColorJitter(brightness=-1), ArgumentError, r"must be non-negative")
    check_error(lambda: T.ColorJitter(contrast="a"), ArgumentTypeError,
                r"single number or a pair")


# ------------------------------------------------------------ Compose, types, generators
def test_compose_and_repr():
    pipeline = T.Compose([T.Resize(4), T.CenterCrop(4), T.ToTensor(),
                          T.Normalize((0.5,), (0.5,)), T.Lambda(lambda t: t * 2)])
    out = pipeline(Image.fromarray(np.full((8, 12), 255, np.uint8)))
    assert isinstance(out, cs.Tensor) and out.shape == (1, 4, 4)
    np.testing.assert_allclose(out.numpy(), 2.0)
    assert repr(pipeline).startswith("Compose(\n    Resize(size=4")
    check_error(lambda: T.Compose([T.ToTensor(), 3]), ArgumentTypeError, r"list of callables")


@pytest.mark.parametrize("transform", [
    T.Resize(4), T.CenterCrop(2), T.RandomCrop(2), T.RandomHorizontalFlip(),
    T.RandomResizedCrop(4), T.ColorJitter(0.2), T.Pad(1),
])
def test_a_wrong_type_is_a_convscope_error(transform):
    check_error(lambda: transform([[0.0, 1.0]]), ArgumentTypeError,
                r"expected a PIL image, a NumPy array or a convscope Tensor.*Received: list")
    check_error(lambda: transform(np.zeros((32, 32, 3), np.uint8)), ShapeError,
                r"height x width x channels layout.*ToTensor\(\)")


def test_tensors_stay_tensors_and_default_generator_repeats():
    x = cs.tensor(_rng(2).random((3, 10, 10), dtype=np.float32))
    pipeline = T.Compose([T.RandomResizedCrop(6), T.RandomHorizontalFlip(),
                          T.ColorJitter(0.3, 0.3, 0.3, 0.05), T.RandomCrop(6, padding=2)])
    cs.manual_seed(21)
    a = pipeline(x)
    b = pipeline(x)
    cs.manual_seed(21)
    assert isinstance(a, cs.Tensor) and a.shape == (3, 6, 6)
    np.testing.assert_array_equal(pipeline(x).numpy(), a.numpy())
    np.testing.assert_array_equal(pipeline(x).numpy(), b.numpy())
    # an explicit generator leaves the default one alone
    cs.manual_seed(21)
    T.RandomCrop(6, padding=2, generator=cs.Generator().manual_seed(0))(x)
    np.testing.assert_array_equal(pipeline(x).numpy(), a.numpy())
