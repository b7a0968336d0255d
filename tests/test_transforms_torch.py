"""convscope.transforms against PyTorch's tensor operations (torchvision's tensor path calls
them): ``interpolate`` for Resize, ``sub_/div_`` for Normalize, ``div(255)`` for ToTensor.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope.transforms as T
import convscope.transforms.functional as F

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 40), st.integers(2, 40), st.integers(2, 40), st.integers(2, 40),
       st.booleans(), st.integers(0, 2**31))
def test_resize_matches_interpolate(h, w, oh, ow, antialias, seed):
    """Sizes of 1 are left out: there PyTorch's antialiased CPU kernel departs from Pillow
    (it returns zeros for a 1-pixel-wide input), and convscope follows Pillow."""
    x = np.random.default_rng(seed).random((2, 3, h, w), dtype=np.float32)
    ours = F.resize(x, [oh, ow], antialias=antialias)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=(oh, ow), mode="bilinear",
                                          align_corners=False, antialias=antialias).numpy()
    if (oh, ow) == (h, w):
        ref = x  # torchvision returns the image untouched
    # PyTorch computes the sampling positions in float32 (an error up to ~size * 2**-24
    # pixels, times the jump between neighbours <= 1), convscope in float64.
    np.testing.assert_allclose(ours, ref, atol=max(h, w) * 2.0**-24 * 4 + 1e-6, rtol=0)
    near = F.resize(x, [oh, ow], interpolation=T.InterpolationMode.NEAREST)
    ref = x if (oh, ow) == (h, w) else torch.nn.functional.interpolate(
        torch.from_numpy(x), size=(oh, ow), mode="nearest").numpy()
    np.testing.assert_array_equal(near, ref)


def test_normalize_and_to_tensor_are_bit_identical_to_torchs_ops():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    x = T.ToTensor()(hwc).numpy()
    ref = torch.from_numpy(hwc).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    np.testing.assert_array_equal(x, ref.numpy())
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    out = T.Normalize(mean, std)(x)
    ref = ref.sub_(torch.tensor(mean).view(-1, 1, 1)).div_(torch.tensor(std).view(-1, 1, 1))
    np.testing.assert_array_equal(out, ref.numpy())


def test_brightness_contrast_saturation_match_torch_blends():
    x = np.random.default_rng(1).random((3, 5, 6), dtype=np.float32)
    t = torch.from_numpy(x)
    grey = (0.2989 * t[0] + 0.587 * t[1] + 0.114 * t[2]).unsqueeze(0)
    for f in (0.0, 0.4, 1.0, 1.7):
        def blend(a, b, r=f):
            return (r * a + (1.0 - r) * b).clamp(0, 1)
        np.testing.assert_allclose(F.adjust_brightness(x, f), blend(t, torch.zeros_like(t)),
                                   atol=1e-6, rtol=0)
        np.testing.assert_allclose(F.adjust_saturation(x, f), blend(t, grey), atol=1e-6, rtol=0)
        mean = torch.mean(grey, dim=(-3, -2, -1), keepdim=True)
        np.testing.assert_allclose(F.adjust_contrast(x, f), blend(t, mean), atol=1e-6, rtol=0)
