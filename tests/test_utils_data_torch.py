"""convscope.utils.data against torch.utils.data itself, where the two can be compared.

Random orders come from different generators (NumPy's PCG64 vs PyTorch's Mersenne
Twister), so shuffled orders are not compared; everything deterministic is: batch
composition, drop_last, lengths, random_split's lengths, what default_collate builds.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope.utils import data as ours

torch = pytest.importorskip("torch")
from torch.utils import data as theirs  # noqa: E402

pytestmark = pytest.mark.torch


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.integers(1, 12), st.booleans())
def test_sequential_batches_match(n, batch_size, drop_last):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n)
    mine = ours.DataLoader(ours.TensorDataset(x, y), batch_size=batch_size, drop_last=drop_last)
    ref = theirs.DataLoader(theirs.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                            batch_size=batch_size, drop_last=drop_last)
    assert len(mine) == len(ref)
    got = list(mine)
    want = list(ref)
    assert len(got) == len(want)
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gx.numpy(), wx.numpy())
        np.testing.assert_array_equal(gy, wy.numpy())
        assert gy.dtype == np.int64 and wy.dtype == torch.int64


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(1, 9), st.booleans(), st.integers(0, 1000))
def test_shuffled_batches_have_the_same_sizes(n, batch_size, drop_last, seed):
    ds = np.arange(n)
    if n == 0:  # both refuse to shuffle an empty dataset
        with pytest.raises(ValueError, match="num_samples"):
            theirs.DataLoader(theirs.TensorDataset(torch.from_numpy(ds)), shuffle=True)
        with pytest.raises(ValueError, match="empty"):
            ours.DataLoader(ours.TensorDataset(ds), shuffle=True)
        return
    mine = ours.DataLoader(ours.TensorDataset(ds), batch_size=batch_size, shuffle=True,
                           drop_last=drop_last, generator=cs.Generator().manual_seed(seed))
    ref = theirs.DataLoader(theirs.TensorDataset(torch.from_numpy(ds)), batch_size=batch_size,
                            shuffle=True, drop_last=drop_last,
                            generator=torch.Generator().manual_seed(seed))
    assert [len(b[0]) for b in mine] == [len(b[0]) for b in ref]
    assert len(mine) == len(ref)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 300), st.lists(st.integers(0, 30), min_size=1, max_size=6))
def test_random_split_lengths_match(n, weights):
    if sum(weights) == 0:
        return
    fractions = [w / sum(weights) for w in weights]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            want = [len(p) for p in theirs.random_split(range(n), fractions)]
        except ValueError:
            with pytest.raises(ValueError):
                ours.random_split(ours.TensorDataset(np.arange(n)), fractions)
            return
        got = [len(p) for p in ours.random_split(ours.TensorDataset(np.arange(n)), fractions)]
    assert got == want


def test_random_sampler_and_batch_sampler_lengths_match():
    for n, num_samples, replacement in [(5, None, False), (5, 12, False), (5, 12, True)]:
        mine = ours.RandomSampler(range(n), replacement=replacement, num_samples=num_samples)
        ref = theirs.RandomSampler(range(n), replacement=replacement, num_samples=num_samples)
        assert len(mine) == len(ref) == len(list(mine)) == len(list(ref))
    for drop_last in (False, True):
        assert list(ours.BatchSampler(range(10), 3, drop_last)) == list(
            theirs.BatchSampler(range(10), 3, drop_last))
        assert len(ours.BatchSampler(range(10), 3, drop_last)) == len(
            theirs.BatchSampler(range(10), 3, drop_last))


def test_default_collate_builds_the_same_structure():
    Pair = namedtuple("Pair", "a b")
    samples = [
        (np.full((2, 3), i, np.float32), i, float(i) / 2, f"s{i}", {"k": np.int64(i)},
         Pair(i, np.float32(i)))
        for i in range(3)
    ]
    got = ours.default_collate(samples)
    want = theirs.default_collate(samples)
    assert type(got) is type(want) is list and len(got) == len(want)
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
    assert got[0].dtype == np.float32 and want[0].dtype == torch.float32
    np.testing.assert_array_equal(got[1], want[1].numpy())
    assert got[1].dtype == np.int64 and want[1].dtype == torch.int64
    np.testing.assert_array_equal(got[2].numpy(), want[2].numpy())
    assert got[2].dtype == np.float64 and want[2].dtype == torch.float64
    assert got[3] == want[3]
    assert got[4]["k"].tolist() == want[4]["k"].tolist()
    assert type(got[5]) is type(want[5]) is Pair
    np.testing.assert_array_equal(got[5].b.numpy(), want[5].b.numpy())


def test_concat_and_subset_index_the_same():
    a, b = np.arange(4), np.arange(10, 13)
    mine = ours.ConcatDataset([ours.TensorDataset(a), ours.TensorDataset(b)])
    ref = theirs.ConcatDataset([theirs.TensorDataset(torch.from_numpy(a)),
                                theirs.TensorDataset(torch.from_numpy(b))])
    assert mine.cumulative_sizes == ref.cumulative_sizes
    assert [int(mine[i][0]) for i in range(-7, 7)] == [int(ref[i][0]) for i in range(-7, 7)]
    sub_m, sub_r = ours.Subset(mine, [6, 0, 3]), theirs.Subset(ref, [6, 0, 3])
    assert [int(sub_m[i][0]) for i in range(3)] == [int(sub_r[i][0]) for i in range(3)]
