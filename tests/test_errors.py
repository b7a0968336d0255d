"""Bad input catalogue: every wrong argument of every public function and layer.

Each case pins its message with a regex that holds the numbers involved, and checks the house
form (:func:`errorcheck.check_error`): a convscope error that is also a ValueError or
TypeError, a ``Fix:`` part, no traceback text. What is *not* an error (int arrays, NaN, empty
batches), the memory limits and generated conv requests are in ``test_limits.py``; the
command line's mistakes in ``test_cli_errors.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope import functional as F
from convscope import nn, optim
from convscope.data import Dataset, ImageFolder, batches, load_image, save_image
from convscope.errors import (
    ArgumentError,
    ArgumentTypeError,
    DataError,
    FileFormatError,
    GradError,
    ImageError,
    ShapeError,
    SpecError,
)
from errorcheck import check_error

X = np.zeros((2, 3, 8, 8), np.float32)  # two 8x8x3 images
W = np.zeros((4, 3, 3, 3), np.float32)  # 4 kernels of 3x3x3
LOGITS = np.zeros((2, 3), np.float32)
SMALL = "8x8x3 | conv(4, 3) | relu | flatten | linear(5)"


def _model() -> nn.Sequential:
    return cs.parse(SMALL, seed=0)


def _params() -> list:
    return list(_model().parameters())


def _backward_twice() -> None:
    y = (cs.tensor([1.0], requires_grad=True) * 2).sum()
    y.backward()
    y.backward()


# ----------------------------------------------------------------------------- functional
FUNCTIONAL = [
    # conv2d: ranks, dtypes, missing arrays
    ("conv2d 2-D input", lambda: F.conv2d(np.zeros((8, 8)), W), ShapeError,
     r"^conv2d: expected a 4-D input \(N, C, H, W\) or a 3-D volume \(C, H, W\), got 2-D\. "
     r"Fix: .*transpose\(2, 0, 1\).*Received: input shape \(8, 8\)\.$"),
    ("conv2d 5-D input", lambda: F.conv2d(np.zeros((1, 2, 3, 8, 8)), W), ShapeError,
     r"got 5-D.*input shape \(1, 2, 3, 8, 8\)"),
    ("conv2d 1-D input", lambda: F.conv2d(np.zeros(8), W), ShapeError, r"got 1-D"),
    ("conv2d bool input", lambda: F.conv2d(X.astype(bool), W), ArgumentTypeError,
     r"conv2d: expected numbers, got an array of booleans\. Fix: .*astype\(np\.float32\)"
     r".*dtype=bool, shape=\(2, 3, 8, 8\)"),
    ("conv2d string input", lambda: F.conv2d(np.array([["a"]]), W), ArgumentTypeError,
     r"conv2d: expected numbers, got an array of dtype <U1.*shape=\(1, 1\)"),
    ("conv2d object input", lambda: F.conv2d(np.array([None, 1], dtype=object), W),
     ArgumentTypeError, r"dtype object.*dtype=object, shape=\(2,\)"),
    ("conv2d complex input", lambda: F.conv2d(X.astype(complex), W), ArgumentTypeError,
     r"dtype complex128"),
    ("conv2d None input", lambda: F.conv2d(None, W), ArgumentTypeError,
     r"conv2d: `input` is None\. Fix: pass an array as `input`"),
    ("conv2d ragged list", lambda: F.conv2d([[1.0, 2.0], [3.0]], W), ArgumentTypeError,
     r"conv2d: data is not a rectangular array of numbers.*inhomogeneous"),
    ("conv2d None weight", lambda: F.conv2d(X, None), ArgumentTypeError, r"`weight` is None"),
    ("conv2d 3-D weight", lambda: F.conv2d(X, W[0]), ShapeError,
     r"weight must be 4-D \(C_out, C_in/groups, kH, kW\), got 3-D.*weight shape \(3, 3, 3\)"),
    ("conv2d bool weight", lambda: F.conv2d(X, W.astype(bool)), ArgumentTypeError, r"booleans"),
    ("conv2d 0x3 kernels", lambda: F.conv2d(X, np.zeros((4, 3, 0, 3))), ShapeError,
     r"the kernels are 0x3: a kernel needs at least 1x1 values.*weight shape \(4, 3, 0, 3\)"),
    # conv2d: bias
    ("conv2d bias of 3 for 4 kernels", lambda: F.conv2d(X, W, np.zeros(3)), ShapeError,
     r"bias must have one value per kernel \(4\)\. Fix: pass a bias of shape \(4,\) or "
     r"bias=None\. Received: bias shape \(3,\)"),
    ("conv2d 2-D bias", lambda: F.conv2d(X, W, np.zeros((4, 1))), ShapeError,
     r"bias shape \(4, 1\)"),
    ("conv2d string bias", lambda: F.conv2d(X, W, np.array(["a"] * 4)), ArgumentTypeError,
     r"dtype <U1"),
    # conv2d: stride, padding, dilation, groups
    ("conv2d stride 0", lambda: F.conv2d(X, W, stride=0), ArgumentError,
     r"^conv2d: `stride` must be positive\. Fix: use stride=1 or larger\. Received: stride=0\.$"),
    ("conv2d stride -1", lambda: F.conv2d(X, W, stride=-1), ArgumentError, r"stride=-1"),
    ("conv2d stride (1, 0)", lambda: F.conv2d(X, W, stride=(1, 0)), ArgumentError,
     r"stride=\(1, 0\)"),
    ("conv2d stride 1.5", lambda: F.conv2d(X, W, stride=1.5), ArgumentTypeError,
     r"`stride` must be an int or a pair of ints.*stride=1\.5"),
    ("conv2d stride '1'", lambda: F.conv2d(X, W, stride="1"), ArgumentTypeError, r"stride='1'"),
    ("conv2d stride triple", lambda: F.conv2d(X, W, stride=(1, 1, 1)), ArgumentTypeError,
     r"stride=\(1, 1, 1\)"),
    ("conv2d stride True", lambda: F.conv2d(X, W, stride=True), ArgumentTypeError,
     r"stride=True"),
    ("conv2d padding -1", lambda: F.conv2d(X, W, padding=-1), ArgumentError,
     r"`padding` must be >= 0\. Fix: use padding=0 or larger\. Received: padding=-1"),
    ("conv2d padding ((1, 2), (3, -1))", lambda: F.conv2d(X, W, padding=((1, 2), (3, -1))),
     ArgumentError, r"`padding` must be >= 0.*padding=\(3, -1\)"),
    ("conv2d padding 'full'", lambda: F.conv2d(X, W, padding="full"), ArgumentError,
     r"`padding` must be an int, a pair, .*'valid' or 'same'.*padding='full'"),
    ("conv2d padding None", lambda: F.conv2d(X, W, padding=None), ArgumentTypeError,
     r"padding=None"),
    ("conv2d dilation 0", lambda: F.conv2d(X, W, dilation=0), ArgumentError,
     r"`dilation` must be positive.*dilation=0"),
    ("conv2d groups 0", lambda: F.conv2d(X, W, groups=0), ArgumentError,
     r"`groups` must be positive.*groups=0"),
    ("conv2d groups 2 of 3 channels", lambda: F.conv2d(X, W, groups=2), ArgumentError,
     r"`groups` must divide both in_channels and out_channels\. Fix: choose groups from the "
     r"common divisors of 3 and 4\. Received: in_channels=3, out_channels=4, groups=2"),
    ("conv2d groups 1.0", lambda: F.conv2d(X, W, groups=1.0), ArgumentTypeError,
     r"`groups` must be an int.*groups=1\.0"),
    # conv2d: volumes that do not fit
    ("conv2d depth 4 vs kernels of depth 3", lambda: F.conv2d(np.zeros((1, 4, 8, 8)), W),
     ShapeError, r"input depth 4 does not match kernel depth 3 \(input depth = kernel depth\)\. "
     r"Fix: pass an input volume with 3 channels, or kernels of depth 4\. Received: input "
     r"shape \(1, 4, 8, 8\), weight shape \(4, 3, 3, 3\)"),
    ("conv2d grouped depth", lambda: F.conv2d(np.zeros((1, 4, 8, 8)), np.zeros((4, 1, 3, 3)),
                                              groups=2),
     ShapeError, r"input depth 4 does not match kernel depth 1 x 2 groups"),
    ("conv2d kernel larger than input", lambda: F.conv2d(np.zeros((1, 3, 2, 2)), W), ShapeError,
     r"the 3x3 kernel is larger than the padded input 2x2\. Fix: use a smaller kernel, more "
     r"padding, or a larger input\. Received: input 2x2, kernel 3x3"),
    ("conv2d dilated kernel larger", lambda: F.conv2d(X, W, dilation=4), ShapeError,
     r"the 9x9 kernel \(dilated\) is larger than the padded input 8x8"),
    ("conv2d empty image", lambda: F.conv2d(np.zeros((1, 3, 0, 8)), W), ShapeError,
     r"larger than the padded input 0x8"),
    ("conv2d 9x9 kernel, stride 2, on 8x8", lambda: F.conv2d(X, np.zeros((4, 3, 9, 9)),
                                                             stride=2, padding="valid"),
     ShapeError, r"9x9 kernel is larger than the padded input 8x8"),
    # max_pool2d
    ("max_pool2d kernel 0", lambda: F.max_pool2d(X, 0), ArgumentError,
     r"^max_pool2d: `kernel_size` must be positive.*kernel_size=0"),
    ("max_pool2d kernel '2'", lambda: F.max_pool2d(X, "2"), ArgumentTypeError,
     r"kernel_size='2'"),
    ("max_pool2d window larger than input", lambda: F.max_pool2d(X, 9), ShapeError,
     r"the 9x9 pooling window is larger than the padded input 8x8\. Fix: use a smaller "
     r"kernel_size or a larger input\. Received: input 8x8, kernel_size=\(9, 9\)"),
    ("max_pool2d padding over half", lambda: F.max_pool2d(X, 2, padding=2), ArgumentError,
     r"padding must be at most half the \(dilated\) pooling window\. Fix: use padding <= 1\. "
     r"Received: kernel_size=\(2, 2\), padding=\(2, 2\)"),
    ("max_pool2d stride 0", lambda: F.max_pool2d(X, 2, stride=0), ArgumentError, r"stride=0"),
    ("max_pool2d padding -1", lambda: F.max_pool2d(X, 2, padding=-1), ArgumentError,
     r"padding=-1"),
    ("max_pool2d dilation 0", lambda: F.max_pool2d(X, 2, dilation=0), ArgumentError,
     r"dilation=0"),
    ("max_pool2d 2-D input", lambda: F.max_pool2d(np.zeros((8, 8)), 2), ShapeError,
     r"max_pool2d: expected a 4-D input.*got 2-D"),
    ("max_pool2d 5-D input", lambda: F.max_pool2d(np.zeros((1, 1, 1, 8, 8)), 2), ShapeError,
     r"got 5-D.*\(1, 1, 1, 8, 8\)"),
    ("max_pool2d string input", lambda: F.max_pool2d(np.array([["a"]]), 2), ArgumentTypeError,
     r"max_pool2d: expected numbers"),
    # avg_pool2d
    ("avg_pool2d window larger than input", lambda: F.avg_pool2d(X, (2, 9)), ShapeError,
     r"avg_pool2d: the 2x9 pooling window is larger than the padded input 8x8"),
    ("avg_pool2d padding over half", lambda: F.avg_pool2d(X, 3, padding=2), ArgumentError,
     r"use padding <= 1.*padding=\(2, 2\)"),
    ("avg_pool2d stride (0, 1)", lambda: F.avg_pool2d(X, 2, stride=(0, 1)), ArgumentError,
     r"stride=\(0, 1\)"),
    ("avg_pool2d 5-D input", lambda: F.avg_pool2d(np.zeros((1, 1, 1, 8, 8)), 2), ShapeError,
     r"got 5-D"),
    ("avg_pool2d None input", lambda: F.avg_pool2d(None, 2), ArgumentTypeError,
     r"avg_pool2d: `input` is None"),
    # linear
    ("linear 5 features into 4", lambda: F.linear(np.zeros((2, 5)), np.zeros((3, 4))),
     ShapeError, r"^linear: expects 4 input features, got 5\. Fix: make the previous layer "
     r"produce 4 values per example.*in_features=5\. Received: input shape \(2, 5\)\.$"),
    ("linear 1-D weight", lambda: F.linear(np.zeros((2, 5)), np.zeros(5)), ShapeError,
     r"weight must be 2-D \(out_features, in_features\), got 1-D.*weight shape \(5,\)"),
    ("linear bias of 2 for 3 outputs", lambda: F.linear(np.zeros((2, 4)), np.zeros((3, 4)),
                                                        np.zeros(2)),
     ShapeError, r"bias must have 3 values\. Fix: pass a bias of shape \(3,\).*\(2,\)"),
    ("linear scalar input", lambda: F.linear(np.float32(1), np.zeros((3, 4))), ShapeError,
     r"expects 4 input features, got 1"),
    ("linear string input", lambda: F.linear(np.array(["a"]), np.zeros((3, 4))),
     ArgumentTypeError, r"linear: expected numbers"),
    ("linear None weight", lambda: F.linear(np.zeros((2, 4)), None), ArgumentTypeError,
     r"`weight` is None"),
    # flatten
    ("flatten start after end", lambda: F.flatten(X, 3, 1), ArgumentError,
     r"start_dim must come before end_dim.*start_dim=3, end_dim=1"),
    ("flatten start_dim 7 of 4", lambda: F.flatten(X, 7), ArgumentError,
     r"`start_dim` must be in \[-4, 3\] for a 4-D input.*start_dim=7, input shape "
     r"\(2, 3, 8, 8\)"),
    ("flatten end_dim -5", lambda: F.flatten(X, 0, -5), ArgumentError, r"end_dim=-5"),
    ("flatten start_dim '1'", lambda: F.flatten(X, "1"), ArgumentTypeError,
     r"`start_dim` must be an int \(an axis\).*start_dim='1'"),
    # pad
    ("pad mode 'mirror'", lambda: F.pad(X, 1, "mirror"), ArgumentError,
     r"unknown padding mode 'mirror'\. Fix: use one of zeros, reflect, replicate, circular"),
    ("pad -1", lambda: F.pad(X, -1), ArgumentError, r"^pad: `padding` must be >= 0"),
    ("pad reflect 8 of 8", lambda: F.pad(X, 8, "reflect"), ShapeError,
     r"reflect padding must be smaller than the input size.*input 8x8, padding "
     r"\(\(8, 8\), \(8, 8\)\)"),
    ("pad circular 9 of 8", lambda: F.pad(X, 9, "circular"), ShapeError,
     r"circular padding must be at most the input size"),
    ("pad 2-D", lambda: F.pad(np.zeros((8, 8)), 1), ShapeError, r"^pad: expected a 4-D"),
    # cross_entropy
    ("cross_entropy fractional labels", lambda: F.cross_entropy(LOGITS, np.array([0.5, 1])),
     ArgumentTypeError, r"target must hold integer class indices.*target dtype float64"),
    ("cross_entropy label 3 of 3 classes", lambda: F.cross_entropy(LOGITS, np.array([0, 3])),
     ArgumentError, r"labels must be in \[0, 2\]\. Fix: the model has 3 outputs.*labels from 0 "
     r"to 3"),
    ("cross_entropy label -1", lambda: F.cross_entropy(LOGITS, np.array([-1, 0])),
     ArgumentError, r"labels from -1 to 0"),
    ("cross_entropy 3 labels for 2", lambda: F.cross_entropy(LOGITS, np.array([0, 1, 2])),
     ShapeError, r"target must have one label per example \(2\).*target shape \(3,\)"),
    ("cross_entropy string labels", lambda: F.cross_entropy(LOGITS, np.array(["a", "b"])),
     ArgumentTypeError, r"target dtype <U1"),
    ("cross_entropy None labels", lambda: F.cross_entropy(LOGITS, None), ArgumentTypeError,
     r"target dtype object"),
    ("cross_entropy 1-D logits", lambda: F.cross_entropy(np.zeros(3), np.array([0])),
     ShapeError, r"expected logits of shape \(N, classes\), got 1-D.*input shape \(3,\)"),
    ("cross_entropy 3-D logits", lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.array([0, 1])),
     ShapeError, r"got 3-D"),
    ("cross_entropy 0 classes", lambda: F.cross_entropy(np.zeros((2, 0)), np.array([0, 0])),
     ShapeError, r"the logits have 0 classes.*input shape \(2, 0\)"),
    ("cross_entropy reduction 'avg'", lambda: F.cross_entropy(LOGITS, np.array([0, 1]),
                                                              reduction="avg"),
     ArgumentError, r"unknown reduction 'avg'\. Fix: use 'mean', 'sum' or 'none'"),
    # mse_loss
    ("mse_loss shapes (3,) and (4,)", lambda: F.mse_loss(np.zeros(3), np.zeros(4)), ShapeError,
     r"input and target must have the same shape.*input \(3,\), target \(4,\)"),
    ("mse_loss reduction", lambda: F.mse_loss(np.zeros(3), np.zeros(3), reduction="x"),
     ArgumentError, r"unknown reduction 'x'"),
    ("mse_loss None target", lambda: F.mse_loss(np.zeros(3), None), ArgumentTypeError,
     r"mse_loss: `target` is None"),
    # batch_norm
    ("batch_norm 2-D", lambda: F.batch_norm(np.zeros((2, 3)), np.zeros(3), np.ones(3)),
     ShapeError, r"expected \(N, C, H, W\), got 2-D.*input shape \(2, 3\)"),
    ("batch_norm 2 running means for 3 channels",
     lambda: F.batch_norm(X, np.zeros(2), np.ones(2)), ShapeError,
     r"`running_mean` must have one value per channel \(3\)\. Fix: pass an array of shape "
     r"\(3,\)\. Received: running_mean shape \(2,\), input shape \(2, 3, 8, 8\)"),
    ("batch_norm eval without statistics", lambda: F.batch_norm(X, None, None), ArgumentError,
     r"evaluation needs `running_mean`"),
    ("batch_norm weight of 2", lambda: F.batch_norm(X, np.zeros(3), np.ones(3),
                                                    weight=np.ones(2)),
     ShapeError, r"`weight` must have one value per channel \(3\).*weight shape \(2,\)"),
    ("batch_norm bias of 4", lambda: F.batch_norm(X, np.zeros(3), np.ones(3), bias=np.ones(4)),
     ShapeError, r"bias shape \(4,\)"),
    ("batch_norm training on one value", lambda: F.batch_norm(np.zeros((1, 3, 1, 1)), None, None,
                                                              training=True),
     ShapeError, r"training needs more than one value per channel.*\(1, 3, 1, 1\)"),
    # dropout
    ("dropout p 2", lambda: F.dropout(X, 2), ArgumentError,
     r"p must be a probability in \[0, 1\]\. Fix: use p=0\.5\. Received: p=2"),
    ("dropout p -0.1", lambda: F.dropout(X, -0.1), ArgumentError, r"p=-0\.1"),
    ("dropout p nan", lambda: F.dropout(X, float("nan")), ArgumentError, r"p=nan"),
    ("dropout p '0.5'", lambda: F.dropout(X, "0.5"), ArgumentError, r"p=0\.5"),
    # softmax
    ("softmax dim 5 of 2", lambda: F.softmax(LOGITS, dim=5), ArgumentError,
     r"^softmax: `dim` must be in \[-2, 1\] for a 2-D input.*dim=5, input shape \(2, 3\)"),
    ("softmax dim -3", lambda: F.softmax(LOGITS, dim=-3), ArgumentError, r"dim=-3"),
    ("softmax dim '1'", lambda: F.softmax(LOGITS, dim="1"), ArgumentTypeError,
     r"`dim` must be an int"),
    ("softmax string input", lambda: F.softmax(np.array(["a"])), ArgumentTypeError,
     r"expected numbers"),
    ("relu object input", lambda: F.relu(np.array([{}])), ArgumentTypeError, r"relu: expected"),
]


# ----------------------------------------------------------------------------- layers
LAYERS = [
    ("Conv2d in_channels 0", lambda: nn.Conv2d(0, 4, 3), ArgumentError,
     r"^Conv2d: `in_channels` must be positive\. Fix: use in_channels=1 or more\. Received: "
     r"in_channels=0\.$"),
    ("Conv2d in_channels '3'", lambda: nn.Conv2d("3", 4, 3), ArgumentTypeError,
     r"`in_channels` must be an int.*in_channels='3'"),
    ("Conv2d in_channels 3.0", lambda: nn.Conv2d(3.0, 4, 3), ArgumentTypeError,
     r"in_channels=3\.0"),
    ("Conv2d out_channels -1", lambda: nn.Conv2d(3, -1, 3), ArgumentError, r"out_channels=-1"),
    ("Conv2d kernel 0", lambda: nn.Conv2d(3, 4, 0), ArgumentError,
     r"`kernel_size` must be positive.*kernel_size=0"),
    ("Conv2d kernel (3,)", lambda: nn.Conv2d(3, 4, (3,)), ArgumentTypeError,
     r"kernel_size=\(3,\)"),
    ("Conv2d stride 0", lambda: nn.Conv2d(3, 4, 3, stride=0), ArgumentError, r"stride=0"),
    ("Conv2d padding -1", lambda: nn.Conv2d(3, 4, 3, padding=-1), ArgumentError,
     r"padding=-1"),
    ("Conv2d padding 'full'", lambda: nn.Conv2d(3, 4, 3, padding="full"), ArgumentError,
     r"padding='full'"),
    ("Conv2d dilation 0", lambda: nn.Conv2d(3, 4, 3, dilation=0), ArgumentError,
     r"dilation=0"),
    ("Conv2d groups 2", lambda: nn.Conv2d(3, 4, 3, groups=2), ArgumentError,
     r"common divisors of 3 and 4.*groups=2"),
    ("Conv2d groups 0", lambda: nn.Conv2d(3, 4, 3, groups=0), ArgumentError, r"groups=0"),
    ("Conv2d padding_mode 'mirror'", lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"),
     ArgumentError, r"unknown padding_mode 'mirror'\. Fix: use 'zeros', 'reflect'"),
    ("Conv2d 'same' stride 2 reflect", lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same",
                                                         padding_mode="reflect"),
     ArgumentError, r"padding='same' with stride > 1 needs padding_mode='zeros'.*stride=\(2, 2\)"),
    ("Conv2d 100000 kernels of 100x100x100000", lambda: nn.Conv2d(100_000, 100_000, 100),
     ShapeError, r"^Conv2d: the weight would need 372529 GiB, above the 8 GiB limit\. Fix: "
     r"use fewer or smaller kernels\. Received: shape \(100000, 100000, 100, 100\)"),
    ("Conv2d seed 'x'", lambda: nn.Conv2d(3, 4, 3, seed="x"), ArgumentTypeError,
     r"a seed must be an int >= 0, a np\.random\.Generator, a convscope\.Generator or None.*x"),
    ("Conv2d seed -1", lambda: nn.Conv2d(3, 4, 3, seed=-1), ArgumentError, r"seed=-1"),
    ("Conv2d forward depth 5", lambda: nn.Conv2d(3, 4, 3)(np.zeros((1, 5, 8, 8))), ShapeError,
     r"^Conv2d\(3 -> 4, 3x3\): input depth 5 does not match kernel depth 3"),
    ("Conv2d forward 2x2 input", lambda: nn.Conv2d(3, 4, 3)(np.zeros((1, 3, 2, 2))), ShapeError,
     r"^Conv2d\(3 -> 4, 3x3\): the 3x3 kernel is larger than the padded input 2x2"),
    ("Conv2d forward 2-D", lambda: nn.Conv2d(3, 4, 3)(np.zeros((8, 8))), ShapeError,
     r"^Conv2d\(3 -> 4, 3x3\): expected a 4-D input.*got 2-D"),
    ("Conv2d forward 5-D", lambda: nn.Conv2d(3, 4, 3)(np.zeros((1, 1, 3, 8, 8))), ShapeError,
     r"got 5-D"),
    ("Conv2d reflect padding 5 of 4", lambda: nn.Conv2d(3, 4, 3, padding=5,
                                                        padding_mode="reflect")(
        np.zeros((1, 3, 4, 4))), ShapeError, r"reflect padding must be smaller than the input "
     r"size.*input 4x4, padding \(\(5, 5\), \(5, 5\)\)"),
    ("Linear in_features 0", lambda: nn.Linear(0, 3), ArgumentError, r"in_features=0"),
    ("Linear out_features -3", lambda: nn.Linear(4, -3), ArgumentError, r"out_features=-3"),
    ("Linear in_features '4'", lambda: nn.Linear("4", 3), ArgumentTypeError,
     r"in_features='4'"),
    ("Linear 10**6 x 10**6", lambda: nn.Linear(10**6, 10**6), ShapeError,
     r"^Linear: the weight would need 3725\.3 GiB, above the 8 GiB limit.*shape "
     r"\(1000000, 1000000\)"),
    ("Linear forward 5 into 4", lambda: nn.Linear(4, 3)(np.zeros((2, 5))), ShapeError,
     r"^Linear\(4 -> 3\): expects 4 input features, got 5"),
    ("MaxPool2d kernel 0", lambda: nn.MaxPool2d(0), ArgumentError,
     r"^MaxPool2d: `kernel_size` must be positive"),
    ("MaxPool2d stride 0", lambda: nn.MaxPool2d(2, stride=0), ArgumentError, r"stride=0"),
    ("MaxPool2d padding -1", lambda: nn.MaxPool2d(2, padding=-1), ArgumentError,
     r"padding=-1"),
    ("MaxPool2d dilation 0", lambda: nn.MaxPool2d(2, dilation=0), ArgumentError,
     r"dilation=0"),
    ("MaxPool2d forward 9x9 of 8x8", lambda: nn.MaxPool2d(9)(X), ShapeError,
     r"^MaxPool2d\(9x9\): the 9x9 pooling window is larger than the padded input 8x8"),
    ("MaxPool2d forward padding 3", lambda: nn.MaxPool2d(2, padding=3)(X), ArgumentError,
     r"^MaxPool2d\(2x2\): padding must be at most half.*padding <= 1"),
    ("AvgPool2d kernel 0", lambda: nn.AvgPool2d(0), ArgumentError, r"kernel_size=0"),
    ("AvgPool2d kernel '2'", lambda: nn.AvgPool2d("2"), ArgumentTypeError, r"kernel_size='2'"),
    ("AvgPool2d forward 9x9", lambda: nn.AvgPool2d(9)(X), ShapeError, r"^AvgPool2d\(9x9\): "),
    ("BatchNorm2d 0 features", lambda: nn.BatchNorm2d(0), ArgumentError, r"num_features=0"),
    ("BatchNorm2d eps 'a'", lambda: nn.BatchNorm2d(3, eps="a"), ArgumentError,
     r"`eps` must be a number >= 0.*eps='a'"),
    ("BatchNorm2d eps -1", lambda: nn.BatchNorm2d(3, eps=-1), ArgumentError, r"eps=-1"),
    ("BatchNorm2d momentum None", lambda: nn.BatchNorm2d(3, momentum=None), ArgumentError,
     r"`momentum` must be a number in \[0, 1\].*momentum=None"),
    ("BatchNorm2d momentum 2", lambda: nn.BatchNorm2d(3, momentum=2), ArgumentError,
     r"momentum=2"),
    ("BatchNorm2d forward 3 channels into 4", lambda: nn.BatchNorm2d(4)(X), ShapeError,
     r"^BatchNorm2d\(4\): expected 4 channels, got 3\. Fix: build BatchNorm2d\(3\)"),
    ("BatchNorm2d forward 2-D", lambda: nn.BatchNorm2d(3)(np.zeros((2, 3))), ShapeError,
     r"got 2-D"),
    ("Dropout p 2", lambda: nn.Dropout(2), ArgumentError, r"^Dropout: p must be a probability"),
    ("Dropout p -0.1", lambda: nn.Dropout(-0.1), ArgumentError, r"p=-0\.1"),
    ("Dropout p '0.5'", lambda: nn.Dropout("0.5"), ArgumentError, r"p='0\.5'"),
    ("Sequential of a string", lambda: nn.Sequential(nn.ReLU(), "relu"), ArgumentTypeError,
     r"^Sequential: item 1 is not a Module\. Fix: pass layers such as nn\.Conv2d.*'relu'"),
    ("Sequential of a function", lambda: nn.Sequential(lambda x: x), ArgumentTypeError,
     r"item 0 is not a Module"),
    ("Sequential first layer", lambda: nn.Sequential(nn.Conv2d(5, 4, 3))(X), ShapeError,
     r"^layer 0, Conv2d\(5 -> 4, 3x3\): input depth 3 does not match kernel depth 5 \(input "
     r"depth = kernel depth\)\. Fix: "),
    ("Sequential conv after conv", lambda: nn.Sequential(nn.Conv2d(3, 4, 3),
                                                         nn.Conv2d(5, 4, 3))(X),
     ShapeError, r"^layer 1, Conv2d\(5 -> 4, 3x3\): input depth 4 does not match kernel depth 5 "
     r"\(input depth = kernel depth\); its input \(2, 4, 6, 6\) comes from layer 0 \(Conv2d\)\. "
     r"Fix: pass an input volume with 5 channels, or kernels of depth 4\. Received: input "
     r"shape \(2, 4, 6, 6\), weight shape \(4, 5, 3, 3\)\.$"),
    ("Sequential pad error names the layer", lambda: nn.Sequential(
        nn.ReLU(), nn.Conv2d(3, 4, 3, padding=9, padding_mode="reflect"))(X), ShapeError,
     r"^layer 1 \(Conv2d\): pad: reflect padding must be smaller than the input size; its "
     r"input \(2, 3, 8, 8\) comes from layer 0 \(ReLU\)\. Fix: "),
]


# ----------------------------------------------------------------------------- tensors
TENSORS = [
    ("tensor of strings", lambda: cs.tensor(["a"]), ArgumentTypeError,
     r"^tensor: expected numbers, got an array of dtype <U1\. Fix: convert the data to a float "
     r"array.*Received: dtype=<U1, shape=\(1,\)\.$"),
    ("tensor None", lambda: cs.tensor(None), ArgumentTypeError,
     r"^tensor: expected numbers, got None\. Fix: "),
    ("tensor ragged", lambda: cs.tensor([[1, 2], [3]]), ArgumentTypeError,
     r"not a rectangular array of numbers.*detected shape was \(2,\)"),
    ("tensor of objects", lambda: cs.tensor(np.array([1, None], dtype=object)),
     ArgumentTypeError, r"dtype object.*shape=\(2,\)"),
    ("Tensor of booleans", lambda: cs.Tensor([True, False]), ArgumentTypeError,
     r"got an array of booleans.*dtype=bool, shape=\(2,\)"),
    ("tensor complex", lambda: cs.tensor([1j]), ArgumentTypeError, r"complex128"),
    ("tensor dict", lambda: cs.tensor({"a": 1}), ArgumentTypeError, r"dtype object"),
    ("tensor dates", lambda: cs.tensor(np.array(["2020-01-01"], "datetime64[D]")),
     ArgumentTypeError, r"datetime64\[D\]"),
    ("tensor dtype float16", lambda: cs.tensor([1], dtype=np.float16), ArgumentTypeError,
     r"`dtype` must be one of convscope's tensor types: float32, float64, int64.*float16"),
    ("tensor dtype 'floaty'", lambda: cs.tensor([1], dtype="floaty"), ArgumentTypeError,
     r"`dtype` must be one of convscope's tensor types.*dtype='floaty'"),
    ("Tensor dtype int32", lambda: cs.Tensor([1], dtype=np.int32), ArgumentTypeError,
     r"dtype must be float32 or float64.*int32"),
    ("backward without requires_grad", lambda: cs.tensor([1.0]).backward(), GradError,
     r"^backward: this tensor does not require grad.*shape \(1,\)"),
    ("backward of 2 values without gradient",
     lambda: (cs.tensor([1.0, 2.0], requires_grad=True) * 2).backward(), GradError,
     r"a non-scalar output needs an explicit gradient.*output shape \(2,\)"),
    ("backward gradient of 3 for 2",
     lambda: (cs.tensor([1.0, 2.0], requires_grad=True) * 2).backward(np.ones(3)), ShapeError,
     r"gradient must have the output's shape\. Fix: pass an array of shape \(2,\)\. "
     r"Received: gradient shape \(3,\)"),
    ("backward string gradient",
     lambda: (cs.tensor([1.0, 2.0], requires_grad=True) * 2).backward(np.array(["a", "b"])),
     ArgumentTypeError, r"^backward: expected numbers"),
    ("backward twice", _backward_twice, GradError,
     r"the graph was already freed by an earlier backward\(\) call"),
    ("reshape 3 values to 2x2", lambda: cs.tensor([1.0, 2, 3]).reshape(2, 2), ShapeError,
     r"shape \(2, 2\) is invalid for a tensor of 3 values.*shape \(3,\) -> \(2, 2\)"),
    ("reshape 'a'", lambda: cs.tensor([1.0, 2, 3]).reshape("a"), ArgumentTypeError,
     r"sizes must be ints.*sizes \('a',\)"),
    ("reshape 2.0", lambda: cs.tensor([1.0, 2, 3, 4]).reshape(2.0, 2), ArgumentTypeError,
     r"sizes \(2\.0, 2\)"),
    ("reshape two -1", lambda: cs.tensor([1.0, 2, 3, 4]).reshape(-1, -1), ShapeError,
     r"shape \(-1, -1\) is invalid for a tensor of 4 values"),
    ("item of 2 values", lambda: cs.tensor([1.0, 2]).item(), ShapeError,
     r"only a one-element tensor converts to a Python number; this one has 2 elements\. Fix: "
     r"index or reduce first.*Received: shape \(2,\)"),
    ("item of nothing", lambda: cs.tensor([]).item(), ShapeError, r"shape \(0,\)"),
    ("pow with a string", lambda: cs.tensor([1.0]) ** "2", ArgumentTypeError,
     r"the exponent must be a number"),
    ("matmul (2, 3) @ (2, 3)", lambda: cs.tensor(np.ones((2, 3))) @ np.ones((2, 3)), ShapeError,
     r"expected \(n, k\) @ \(k, m\).*\(2, 3\) @ \(2, 3\)"),
]


# ----------------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    ("SGD empty list", lambda: optim.SGD([], lr=0.1), ArgumentError,
     r"^SGD: got an empty parameter list\. Fix: pass model\.parameters\(\)"),
    ("SGD lr -1", lambda: optim.SGD(_params(), lr=-1), ArgumentError,
     r"lr must be a non-negative number\. Fix: use lr=1e-3\. Received: lr=-1"),
    ("SGD lr '0.1'", lambda: optim.SGD(_params(), lr="0.1"), ArgumentError, r"lr='0\.1'"),
    ("SGD lr nan", lambda: optim.SGD(_params(), lr=float("nan")), ArgumentError, r"lr=nan"),
    ("SGD lr True", lambda: optim.SGD(_params(), lr=True), ArgumentError, r"lr=True"),
    ("SGD momentum -1", lambda: optim.SGD(_params(), lr=0.1, momentum=-1), ArgumentError,
     r"momentum must be a number >= 0\.0\. Fix: use momentum=0\.9\. Received: momentum=-1"),
    ("SGD momentum 'a'", lambda: optim.SGD(_params(), lr=0.1, momentum="a"), ArgumentError,
     r"momentum='a'"),
    ("SGD dampening 2", lambda: optim.SGD(_params(), lr=0.1, dampening=2), ArgumentError,
     r"dampening must be a number in \[0\.0, 1\.0\].*dampening=2"),
    ("SGD weight_decay -1", lambda: optim.SGD(_params(), lr=0.1, weight_decay=-1),
     ArgumentError, r"weight_decay=-1"),
    ("SGD nesterov without momentum", lambda: optim.SGD(_params(), lr=0.1, nesterov=True),
     ArgumentError, r"nesterov needs momentum > 0 and dampening = 0.*momentum=0\.0"),
    ("SGD of arrays", lambda: optim.SGD([np.zeros(3)], lr=0.1), ArgumentTypeError,
     r"params must be Parameters.*an item of type ndarray"),
    ("SGD of a model", lambda: optim.SGD(_model(), lr=0.1), ArgumentTypeError,
     r"params must be an iterable of Parameters\. Fix: pass model\.parameters\(\)\. "
     r"Received: params of type Sequential"),
    ("SGD of None", lambda: optim.SGD(None, lr=0.1), ArgumentTypeError, r"NoneType"),
    ("SGD of one tensor", lambda: optim.SGD(nn.Parameter([1.0]), lr=0.1), ArgumentTypeError,
     r"params of type Parameter"),
    ("Adam betas (1.0, 0.9)", lambda: optim.Adam(_params(), betas=(1.0, 0.9)), ArgumentError,
     r"^Adam: betas must be two numbers in \[0, 1\).*betas=\(1\.0, 0\.9\)"),
    ("Adam betas 0.9", lambda: optim.Adam(_params(), betas=0.9), ArgumentError, r"betas=0\.9"),
    ("Adam betas ('a', 0.9)", lambda: optim.Adam(_params(), betas=("a", 0.9)), ArgumentError,
     r"betas=\('a', 0\.9\)"),
    ("Adam eps -1", lambda: optim.Adam(_params(), eps=-1), ArgumentError, r"eps=-1"),
    ("Adam weight_decay -1", lambda: optim.Adam(_params(), weight_decay=-1), ArgumentError,
     r"weight_decay=-1"),
    ("Adam lr inf", lambda: optim.Adam(_params(), lr=float("inf")), ArgumentError, r"lr=inf"),
    ("AdamW betas (0.9, -0.1)", lambda: optim.AdamW(_params(), betas=(0.9, -0.1)),
     ArgumentError, r"^AdamW: betas.*-0\.1"),
    ("AdamW empty", lambda: optim.AdamW([]), ArgumentError, r"^AdamW: got an empty"),
]


# ----------------------------------------------------------------------------- spec, explain
SPEC = [
    ("parse None", lambda: cs.parse(None), SpecError,
     r"^spec: a model spec must be a string\..*Received: None"),
    ("parse bytes", lambda: cs.parse(b"8x8x3 | relu"), SpecError, r"b'8x8x3 \| relu'"),
    ("parse empty", lambda: cs.parse(""), SpecError, r"expected a layer name, found nothing"),
    ("parse only a volume", lambda: cs.parse("8x8x3"), SpecError, r"the spec has no layers"),
    ("parse seed 'x'", lambda: cs.parse("8x8x3 | relu", seed="x"), ArgumentTypeError,
     r"seed='x'"),
    ("parse input_shape (3, 0, 8)", lambda: cs.parse("relu", input_shape=(3, 0, 8)), SpecError,
     r"the input volume must be \(C, H, W\): three positive ints.*\(3, 0, 8\)"),
    ("parse input_shape '8x8'", lambda: cs.parse("relu", input_shape="8x8"), SpecError,
     r"needs three numbers H x W x D.*write e\.g\. 8x8x1"),
    ("parse input_shape 8", lambda: cs.parse("relu", input_shape=8), SpecError,
     r"Received: 8\."),
    ("parse 1000000 kernels of 100x100x3", lambda: cs.parse("64x64x3 | conv(1000000, 100)"),
     SpecError, r"Conv2d: the weight would need 111\.8 GiB, above the 8 GiB limit.*use fewer or "
     r"smaller kernels.*\(1000000, 3, 100, 100\)"),
    ("parse linear on 300000000 values",
     lambda: cs.parse("10000x10000x3 | flatten | linear(1000)"), SpecError,
     r"impossible with input 300000000 flat values: Linear: the weight would need 1117\.6 GiB"),
    ("parse a 5000-digit number", lambda: cs.parse("8x8x3 | conv(" + "9" * 5000 + ", 3)"),
     SpecError, r"this number has 5000 characters, more than 40"),
    ("parse 1000 nested parentheses",
     lambda: cs.parse("8x8x3 | conv(8, " + "(" * 1000 + "3" + ")" * 1000 + ")"), SpecError,
     r"values nest more than 4 deep"),
    ("parse 8.5 kernels", lambda: cs.parse("8x8x3 | conv(8.5, 3)"), SpecError,
     r"`out_channels` must be a positive int.*out_channels=8\.5"),
    ("parse 9x9 kernel on 8x8", lambda: cs.parse("8x8x3 | conv(8, 9)"), SpecError,
     r"spec layer 0 \(conv\): impossible with input volume 8x8x3: .*the 9x9 kernel is larger "
     r"than the padded input 8x8"),
    ("parse linear without a volume", lambda: cs.parse("linear(3)"), SpecError,
     r"linear needs the input volume to work out in_features"),
    ("parse __import__", lambda: cs.parse("8x8x3 | conv(8, __import__('os').system('true'))"),
     SpecError, r"unexpected character '\.'"),
    ("explain None", lambda: cs.explain(None), ArgumentError,
     r"^explain: expected a model, a layer or a spec string.*NoneType"),
    ("explain 42", lambda: cs.explain(42), ArgumentError, r"Received: int"),
    ("explain without a volume", lambda: cs.explain(nn.Conv2d(3, 4, 3)), ArgumentError,
     r"the input volume is unknown\. Fix: pass input_shape=\(3, 64, 64\)"),
    ("explain volume (3, -1, 8)", lambda: cs.explain(nn.Conv2d(3, 4, 3), input_shape=(3, -1, 8)),
     SpecError, r"\(3, -1, 8\)"),
    ("expect 'abc'", lambda: cs.explain("8x8x3 | relu").check("abc"), ArgumentError,
     r"^--expect: 'abc' is not a volume\. Fix: write it as H x W x D"),
    ("expect '0x8x3'", lambda: cs.explain("8x8x3 | relu").check("0x8x3"), ArgumentError,
     r"'0x8x3' is not a volume"),
    ("expect ('a', 1)", lambda: cs.explain("8x8x3 | relu").check(("a", 1)), ArgumentError,
     r"the expected output must be a volume.*\('a', 1\)"),
    ("expect (3, -8, 8)", lambda: cs.explain("8x8x3 | relu").check((3, -8, 8)), ArgumentError,
     r"\(3, -8, 8\)"),
    ("expect None", lambda: cs.explain("8x8x3 | relu").check(None), ArgumentError,
     r"Received: None"),
]


# ----------------------------------------------------------------------------- files, data, fit
def _files(tmp: Path) -> list[tuple]:
    (tmp / "folder").mkdir()
    (tmp / "notes.txt").write_text("not a model\n")
    cs.safetensors.save_file(tmp / "bare.safetensors", {"w": np.zeros(2, np.float32)})
    save_image(tmp / "img.png", np.zeros((3, 4, 4)))
    (tmp / "classes" / "a").mkdir(parents=True)
    (tmp / "classes" / "b").mkdir()
    save_image(tmp / "classes" / "a" / "1.png", np.zeros((3, 4, 4)))
    fifo = tmp / "pipe.png"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
    model = _model()
    t = str(tmp)
    return [
        ("save without a volume", lambda: cs.save(nn.Sequential(nn.Conv2d(3, 4, 3)),
                                                  tmp / "m.safetensors"),
         ArgumentError, r"^save: the model's input volume is unknown.*input_shape=None"),
        ("save a string", lambda: cs.save("model", tmp / "m.safetensors"), ArgumentTypeError,
         r"^save: expected a model.*model of type str"),
        ("save int class names", lambda: cs.save(model, tmp / "m.safetensors", classes=[1, 2]),
         ArgumentTypeError, r"classes must be a list of str, one per output.*classes=\[1, 2\]"),
        ("save classes 'abc'", lambda: cs.save(model, tmp / "m.safetensors", classes="abc"),
         ArgumentTypeError, r"classes='abc'"),
        ("save onto a folder", lambda: cs.save(model, tmp / "folder"), FileFormatError,
         r"save_file\('.*folder'\): the path is a directory"),
        ("save into a missing folder", lambda: cs.save(model, tmp / "no" / "m.safetensors"),
         FileFormatError, r"the folder to write into does not exist.*no'"),
        ("save extra object", lambda: cs.save(model, tmp / "m.safetensors",
                                              extra={"x": object()}),
         ArgumentTypeError, r"extra values must be str or JSON.*not JSON serializable"),
        ("save extra 'spec'", lambda: cs.save(model, tmp / "m.safetensors",
                                              extra={"spec": "relu"}),
         ArgumentError, r"extra cannot set \['spec'\]"),
        ("save path None", lambda: cs.save(model, None), ArgumentTypeError,
         r"^save: the path must be a str or a pathlib\.Path.*NoneType"),
        ("load a missing file", lambda: cs.load(tmp / "missing.safetensors"), FileFormatError,
         r"^load: no such file: .*missing\.safetensors\. Fix: check the path"),
        ("load an empty folder", lambda: cs.load(tmp / "folder"), FileFormatError,
         r"the folder .*folder holds no model\.safetensors"),
        ("load a text file", lambda: cs.load(tmp / "notes.txt"), FileFormatError,
         r"notes\.txt"),
        ("load bare weights", lambda: cs.load(tmp / "bare.safetensors"), FileFormatError,
         r"bare\.safetensors is a safetensors file but not a convscope model"),
        ("load None", lambda: cs.load(None), ArgumentTypeError, r"^load: the path must be"),
        ("load_image missing", lambda: load_image(tmp / "x.png"), ImageError,
         r"^image '.*x\.png': the file does not exist\. Fix: "),
        ("load_image None", lambda: load_image(None), ArgumentTypeError,
         r"^load_image: the path must be a str.*NoneType"),
        ("load_image size -1", lambda: load_image(tmp / "img.png", size=-1), ArgumentError,
         r"size must be at least 1 pixel.*size=-1"),
        ("load_image size '64'", lambda: load_image(tmp / "img.png", size="64"),
         ArgumentTypeError, r"size='64'"),
        ("load_image channels 4", lambda: load_image(tmp / "img.png", channels=4), ArgumentError,
         r"channels must be 1 \(grayscale\) or 3 \(RGB\).*channels=4"),
        ("load_image max_pixels 0", lambda: load_image(tmp / "img.png", max_pixels=0),
         ArgumentError, r"max_pixels must be a positive int.*max_pixels=0"),
        ("load_image 16 pixels over 15", lambda: load_image(tmp / "img.png", max_pixels=15),
         ImageError, r"claims 4x4 = 16 pixels, more than max_pixels=15; it was not decoded"),
        ("load_image a folder", lambda: load_image(tmp / "folder"), ImageError,
         r"the path is a directory"),
        ("load_image a text file", lambda: load_image(tmp / "notes.txt"), ImageError,
         r"notes\.txt': the file is not a readable PNG, JPEG"),
        *([("load_image a named pipe", lambda: load_image(fifo), ImageError,
            r"pipe\.png': the path is not a regular file")] if fifo.exists() else []),
        ("ImageFolder None", lambda: ImageFolder(None), ArgumentTypeError,
         r"^ImageFolder: the path must be"),
        ("ImageFolder missing", lambda: ImageFolder(tmp / "nope"), DataError,
         r"nope'\): the folder does not exist"),
        ("ImageFolder on a file", lambda: ImageFolder(tmp / "notes.txt"), DataError,
         r"the path is a file, not a folder"),
        ("ImageFolder without class folders", lambda: ImageFolder(tmp / "folder"), DataError,
         r"the folder has no class subfolders"),
        ("ImageFolder class without images", lambda: ImageFolder(tmp / "classes"), DataError,
         r"class folder 'b' holds no images.*folder '.*classes/b'"),
        ("ImageFolder size 0", lambda: ImageFolder(tmp / "classes", size=0), ArgumentError,
         r"size=0"),
        ("ImageFolder channels 2", lambda: ImageFolder(tmp / "classes", channels=2),
         ArgumentError, r"channels=2"),
        ("batches size 0", lambda: list(batches((X, np.zeros(2, int)), 0)), ArgumentError,
         r"batch_size must be at least 1.*batch_size=0"),
        ("batches size '4'", lambda: list(batches((X, np.zeros(2, int)), "4")),
         ArgumentTypeError, r"batch_size='4'"),
        ("batches shuffle without rng",
         lambda: list(batches((X, np.zeros(2, int)), 1, shuffle=True)), ArgumentError,
         r"shuffle=True needs an explicit random generator"),
        ("batches 2 images 3 labels", lambda: list(batches((X, np.zeros(3, int)), 1)), DataError,
         r"same first dimension N.*images shape \(2, 3, 8, 8\), labels shape \(3,\)"),
        ("batches None", lambda: list(batches(None, 2)), ArgumentTypeError, r"NoneType"),
        ("Dataset labels beyond classes", lambda: Dataset(X, np.array([0, 2]), ["a", "b"]),
         DataError, r"labels must lie in \[0, 2\).*labels in \[0, 2\], 2 classes"),
        ("fit into a file", lambda: cs.fit(_model(), _data(), epochs=1, out=tmp / "notes.txt",
                                           progress=None),
         FileFormatError, r"cannot create the run folder .*notes\.txt"),
        ("fit data folder is a file", lambda: cs.fit(_model(), t + "/notes.txt", epochs=1),
         DataError, r"the path is a file, not a folder"),
    ]


def _data(n: int = 12, nan_at: tuple[int, ...] = (), inf_at: tuple[int, ...] = ()) -> Dataset:
    images = np.random.default_rng(0).random((n, 3, 8, 8)).astype(np.float32)
    for i in nan_at:
        images[i, 1, 2, 3] = np.nan
    for i in inf_at:
        images[i, 0, 0, 0] = -np.inf
    return Dataset(images, np.arange(n) % 5, list("abcde"))


def _splits(**kw) -> tuple[Dataset, Dataset, Dataset]:
    return _data(**kw), _data(4), _data(4)


FIT = [
    ("fit epochs 0", lambda: cs.fit(_model(), _data(), epochs=0), ArgumentError,
     r"^fit: epochs must be a positive int.*epochs=0"),
    ("fit epochs '3'", lambda: cs.fit(_model(), _data(), epochs="3"), ArgumentError,
     r"epochs='3'"),
    ("fit batch_size 0", lambda: cs.fit(_model(), _data(), batch_size=0), ArgumentError,
     r"batch_size=0"),
    ("fit lr -1", lambda: cs.fit(_model(), _data(), lr=-1, progress=None), ArgumentError,
     r"^Adam: lr must be a non-negative number.*lr=-1"),
    ("fit optimizer 'rmsprop'", lambda: cs.fit(_model(), _data(), optimizer="rmsprop"),
     ArgumentError, r"unknown optimizer 'rmsprop'\. Fix: use adam, adamw or sgd"),
    ("fit data None", lambda: cs.fit(_model(), None), ArgumentTypeError,
     r"^fit: data must be 'digits', 'shapes', a folder path or a convscope\.data\.Dataset.*"
     r"NoneType"),
    ("fit data 3", lambda: cs.fit(_model(), 3), ArgumentTypeError, r"data of type int"),
    ("fit data 'nonexistent'", lambda: cs.fit(_model(), "nonexistent"), DataError,
     r"'nonexistent' is neither a built-in dataset nor an existing folder"),
    ("fit a string model", lambda: cs.fit("model", _data()), ArgumentTypeError,
     r"^fit: model must be a convscope model.*model of type str"),
    ("fit seed 'x'", lambda: cs.fit(_model(), _data(), seed="x"), ArgumentError,
     r"seed must be an int >= 0.*seed='x'"),
    ("fit warmup -1", lambda: cs.fit(_model(), _data(), warmup_epochs=-1), ArgumentError,
     r"warmup_epochs must be a number >= 0.*warmup_epochs=-1"),
    ("fit resume without a folder", lambda: cs.fit(_model(), _data(), resume=True,
                                                   progress=None),
     ArgumentError, r"resume needs a run folder\. Fix: pass out='runs/name'"),
    ("fit NaN in 2 training images", lambda: cs.fit(_model(), _data(), epochs=1, progress=None,
                                                    splits=_splits(nan_at=(3, 7))),
     DataError, r"^fit: 2 of the 12 training images hold NaN \(the first is image 3 of the "
     r"training split\)\. Fix: clean the data first.*training images of shape \(12, 3, 8, 8\)"),
    ("fit -inf in a training image", lambda: cs.fit(_model(), _data(), epochs=1, progress=None,
                                                    splits=_splits(inf_at=(11,))),
     DataError, r"1 of the 12 training images hold infinity \(the first is image 11"),
    ("fit NaN in validation", lambda: cs.fit(_model(), _data(), epochs=1, progress=None,
                                             splits=(_data(), _data(4, nan_at=(0,)), _data(4))),
     DataError, r"1 of the 4 validation images hold NaN"),
    ("fit an empty training split", lambda: cs.fit(_model(), _data(), progress=None,
                                                   splits=(_data(0), _data(4), _data(4))),
     DataError, r"the training split is empty"),
    ("fit 16x16 images into an 8x8 model",
     lambda: cs.fit(cs.parse("16x16x3 | conv(4, 3) | flatten | linear(5)"), _data(),
                    epochs=1, progress=None),
     ShapeError, r"^layer 2, Linear\(784 -> 5\): expects 784 input features, got 144; its input "
     r"\(\d+, 144\) comes from layer 1 \(Flatten\), which flattened 6x6x4 volumes \(H x W x D\): "
     r"6\*6\*4 = 144\. Fix: "),
]

CATALOGUE = FUNCTIONAL + LAYERS + TENSORS + OPTIMIZERS + SPEC + FIT


@pytest.mark.parametrize(("fn", "cls", "pattern"), [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_bad_input_is_refused_with_a_pinned_message(fn, cls, pattern):
    check_error(fn, cls, pattern)


def test_bad_files_and_data_are_refused_with_pinned_messages(tmp_path):
    cases = _files(tmp_path)
    for name, fn, cls, pattern in cases:
        try:
            check_error(fn, cls, pattern)
        except AssertionError as exc:  # pytest.fail keeps the case's name in the report
            pytest.fail(f"{name}: {exc}")
    assert len(cases) >= 35
    assert not (tmp_path / "m.safetensors").exists(), "a refused save wrote a file"


def test_catalogue_size():
    """The figure quoted in the issue note: how many bad inputs are pinned here."""
    assert len(CATALOGUE) >= 200
