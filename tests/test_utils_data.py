"""convscope.utils.data: datasets, samplers, DataLoader, default_collate, ImageFolder.

References written here: PyTorch's documented rules (random_split's fraction rule, the
number of batches, what default_collate makes of each type, torchvision's ImageFolder
layout). The comparisons with PyTorch itself are in test_utils_data_torch.py.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

import convscope as cs
from convscope.errors import (
    ArgumentError,
    ArgumentTypeError,
    DataError,
    ImageError,
    ShapeError,
)
from convscope.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    ImageFolder,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    default_convert,
    random_split,
)
from errorcheck import check_error


def _seeded(seed: int) -> cs.Generator:
    return cs.Generator().manual_seed(seed)


def _ids(n: int) -> TensorDataset:
    """A dataset whose sample i is (a float image filled with i, the label i)."""
    images = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 1, 2, 2))
    return TensorDataset(np.ascontiguousarray(images), np.arange(n))


# ------------------------------------------------------------------------------ datasets
def test_tensor_dataset_rows_and_errors():
    x = cs.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    y = np.array([7, 8, 9])
    ds = TensorDataset(x, y)
    assert len(ds) == 3
    row, label = ds[1]
    assert isinstance(row, cs.Tensor) and row.numpy().tolist() == [4.0, 5.0, 6.0, 7.0]
    assert int(label) == 8
    check_error(lambda: TensorDataset(x, np.arange(4)), ShapeError,
                r"size mismatch.*same first dimension.*first dimensions 3, 4")
    check_error(lambda: TensorDataset([1, 2, 3]), ArgumentTypeError,
                r"Tensor or a NumPy array.*argument 0 of type list")
    check_error(lambda: TensorDataset(), ArgumentError, r"at least one tensor")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=5))
def test_concat_dataset_indexes_like_the_concatenated_list(sizes):
    parts, flat, start = [], [], 0
    for n in sizes:
        parts.append(TensorDataset(np.arange(start, start + n)))
        flat += list(range(start, start + n))
        start += n + 100  # distinct values per part
    ds = ConcatDataset(parts)
    assert len(ds) == len(flat) == sum(sizes)
    assert ds.cumulative_sizes == list(np.cumsum(sizes))
    for i in range(-len(flat), len(flat)):
        assert int(ds[i][0]) == flat[i]
    with pytest.raises(IndexError, match="out of range"):
        ds[len(flat)]


def test_dataset_add_and_abstract_getitem():
    a, b = _ids(3), _ids(2)
    both = a + b
    assert isinstance(both, ConcatDataset) and len(both) == 5
    assert [int(both[i][1]) for i in range(5)] == [0, 1, 2, 0, 1]
    with pytest.raises(NotImplementedError, match="must define __getitem__"):
        Dataset()[0]
    check_error(lambda: ConcatDataset([]), ArgumentError, r"should not be an empty iterable")


def test_subset_maps_indices_and_lists():
    base = _ids(10)
    part = Subset(base, [9, 2, 5])
    assert len(part) == 3
    assert [int(part[i][1]) for i in range(3)] == [9, 2, 5]
    assert [int(s[1]) for s in part.__getitems__([2, 0])] == [5, 9]


def _torch_split_lengths(n: int, fractions: list[float]) -> list[int]:
    """PyTorch's documented rule, written out: floor(n * f), then the remainder one by one
    to the splits in order (round robin)."""
    out = [math.floor(n * f) for f in fractions]
    for i in range(n - sum(out)):
        out[i % len(out)] += 1
    return out


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 200), st.lists(st.integers(1, 20), min_size=1, max_size=5),
       st.integers(0, 2**32 - 1))
def test_random_split_fractions_follow_pytorchs_rule_and_partition(n, weights, seed):
    fractions = [w / sum(weights) for w in weights]
    if not math.isclose(sum(fractions), 1):
        return
    if sum(fractions) > 1:  # PyTorch refuses a float sum just above 1 (its rule: <= 1)
        with pytest.raises(ArgumentError, match=r"lengths must be ints >= 0"):
            random_split(_ids(n), fractions, generator=_seeded(seed))
        return
    expected = _torch_split_lengths(n, fractions)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a 0-length split warns, as in PyTorch
        parts = random_split(_ids(n), fractions, generator=_seeded(seed))
        again = random_split(_ids(n), fractions, generator=_seeded(seed))
    assert [len(p) for p in parts] == expected
    everything = [i for p in parts for i in p.indices]
    assert sorted(everything) == list(range(n))
    assert [p.indices for p in parts] == [p.indices for p in again]


def test_random_split_integer_lengths_errors_and_default_generator():
    ds = _ids(10)
    a, b = random_split(ds, [3, 7], generator=_seeded(1))
    assert (len(a), len(b)) == (3, 7) and not set(a.indices) & set(b.indices)
    cs.manual_seed(5)
    first = [p.indices for p in random_split(ds, [5, 5])]
    cs.manual_seed(5)
    assert [p.indices for p in random_split(ds, [5, 5])] == first
    check_error(lambda: random_split(ds, [3, 3]), ArgumentError,
                r"sum to 6, not to the dataset's length 10")
    check_error(lambda: random_split(ds, [1.5, -0.5]), ArgumentError,
                r"fraction at index 0 is not between 0 and 1")
    check_error(lambda: random_split(ds, ["a"]), ArgumentTypeError, r"lengths must be")
    check_error(lambda: random_split(ds, [5, 5], generator=3), ArgumentTypeError,
                r"generator must be a convscope.Generator.*manual_seed")
    with pytest.warns(UserWarning, match="split at index 2 is 0"):
        random_split(_ids(2), [0.5, 0.5, 0.0])


# ------------------------------------------------------------------------------ samplers
def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    g = _seeded(0)
    draws = [list(RandomSampler(range(6), generator=g)) for _ in range(3)]
    assert all(sorted(d) == list(range(6)) for d in draws) and draws[0] != draws[1]
    long = list(RandomSampler(range(4), num_samples=10, generator=g))
    assert len(long) == 10 and sorted(long[:4]) == sorted(long[4:8]) == [0, 1, 2, 3]
    with_rep = list(RandomSampler(range(3), replacement=True, num_samples=50, generator=g))
    assert len(with_rep) == 50 and set(with_rep) <= {0, 1, 2}
    assert sorted(SubsetRandomSampler([10, 20, 30], generator=g)) == [10, 20, 30]
    assert list(BatchSampler(range(5), 2, drop_last=True)) == [[0, 1], [2, 3]]
    check_error(lambda: BatchSampler(range(5), 0, False), ArgumentError,
                r"batch_size should be a positive integer.*batch_size=0")
    check_error(lambda: RandomSampler(range(3), num_samples=0), ArgumentError,
                r"num_samples should be a positive integer")


# ---------------------------------------------------------------------------- DataLoader
@settings(max_examples=80, deadline=None)
@given(st.integers(0, 60), st.integers(1, 17), st.booleans(), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_dataloader_batches_cover_the_data(n, batch_size, shuffle, drop_last, seed):
    ds = _ids(n)
    if n == 0 and shuffle:  # PyTorch's RandomSampler refuses an empty dataset
        check_error(lambda: DataLoader(ds, shuffle=True), ArgumentError, r"dataset is empty")
        return
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                        generator=_seeded(seed))
    batches = list(loader)
    full, rest = divmod(n, batch_size)
    expected_sizes = [batch_size] * full + ([rest] if rest and not drop_last else [])
    assert [len(labels) for _, labels in batches] == expected_sizes
    assert len(loader) == len(expected_sizes)
    seen = [int(v) for _, labels in batches for v in labels]
    for images, labels in batches:  # images and labels stay paired
        assert isinstance(images, cs.Tensor) and images.shape == (len(labels), 1, 2, 2)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images.numpy()[:, 0, 0, 0], labels.numpy().astype(np.float32))
    if shuffle:
        assert len(set(seen)) == len(seen) and set(seen) <= set(range(n))
        again = [int(v) for _, lab in DataLoader(ds, batch_size=batch_size, shuffle=True,
                                                 drop_last=drop_last, generator=_seeded(seed))
                 for v in lab]
        assert again == seen  # same seed, same order
    else:
        assert seen == list(range(len(seen)))
    if not drop_last:
        assert sorted(seen) == list(range(n))


def test_shuffle_draws_a_new_order_each_epoch_and_manual_seed_repeats_it():
    ds = _ids(30)
    loader = DataLoader(ds, batch_size=30, shuffle=True)
    cs.manual_seed(11)
    epochs = [next(iter(loader))[1].tolist() for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    cs.manual_seed(11)
    assert [next(iter(loader))[1].tolist() for _ in range(3)] == epochs


def test_dataloader_options():
    ds = _ids(7)
    singles = list(DataLoader(ds, batch_size=None))
    assert len(singles) == 7 and isinstance(singles[3][0], cs.Tensor)
    assert singles[3][0].shape == (1, 2, 2) and int(singles[3][1]) == 3
    by_sampler = [lab.tolist() for _, lab in DataLoader(ds, batch_size=3, sampler=[6, 0, 2, 4])]
    assert by_sampler == [[6, 0, 2], [4]]
    by_batches = [lab.tolist() for _, lab in DataLoader(ds, batch_sampler=[[1, 2], [5]])]
    assert by_batches == [[1, 2], [5]]
    custom = list(DataLoader(ds, batch_size=4, collate_fn=lambda samples: len(samples)))
    assert custom == [4, 3]
    assert len(DataLoader(ds, batch_size=3, drop_last=True)) == 2
    assert "3 batches" in repr(DataLoader(ds, batch_size=3))


@pytest.mark.parametrize("kwargs, cls, pattern", [
    ({"num_workers": 2}, ArgumentError,
     r"num_workers=2 is not supported.*main process.*Fix: pass num_workers=0"),
    ({"num_workers": "2"}, ArgumentTypeError, r"num_workers must be an int"),
    ({"sampler": [0, 1], "shuffle": True}, ArgumentError, r"mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 4}, ArgumentError,
     r"batch_sampler option is mutually exclusive with batch_size"),
    ({"batch_size": None, "drop_last": True}, ArgumentError, r"mutually exclusive.*drop_last"),
    ({"batch_size": 0}, ArgumentError, r"batch_size should be a positive integer"),
    ({"shuffle": "yes"}, ArgumentTypeError, r"shuffle must be True or False"),
    ({"generator": 0}, ArgumentTypeError, r"generator must be a convscope.Generator"),
    ({"persistent_workers": True}, ArgumentError, r"persistent_workers needs worker processes"),
    ({"prefetch_factor": 2}, ArgumentError, r"prefetch_factor only applies"),
    ({"collate_fn": 3}, ArgumentTypeError, r"collate_fn must be callable"),
])
def test_dataloader_refuses_bad_options(kwargs, cls, pattern):
    check_error(lambda: DataLoader(_ids(4), **kwargs), cls, pattern)


def test_dataloader_refuses_what_is_not_a_dataset():
    check_error(lambda: DataLoader(42), ArgumentTypeError, r"map-style dataset.*TensorDataset")


def test_convscope_data_datasets_work_with_the_dataloader():
    ds = cs.data.shapes(n=20, size=16, seed=0)
    image, label = ds[3]
    assert image.shape == (3, 16, 16) and label == ds.labels[3]
    x, y = next(iter(DataLoader(ds, batch_size=8, shuffle=True, generator=_seeded(0))))
    assert x.shape == (8, 3, 16, 16) and y.dtype == np.int64
    for img, lab in zip(x.numpy(), y, strict=True):  # each image is the one of its label
        matches = np.flatnonzero((ds.images == img).all(axis=(1, 2, 3)))
        assert lab in ds.labels[matches]


# ------------------------------------------------------------------------------- collate
def test_default_collate_follows_pytorchs_type_rules():
    Point = namedtuple("Point", "x y")
    batch = [
        {"img": np.zeros((2, 2), np.float32), "n": 1, "f": 0.5, "name": "a", "p": Point(1, 2.0)},
        {"img": np.ones((2, 2), np.float32), "n": 2, "f": 1.5, "name": "b", "p": Point(3, 4.0)},
    ]
    out = default_collate(batch)
    assert isinstance(out["img"], cs.Tensor) and out["img"].shape == (2, 2, 2)
    assert out["img"].dtype == np.float32
    assert isinstance(out["n"], cs.Tensor) and out["n"].dtype == np.int64
    assert out["n"].tolist() == [1, 2]
    assert isinstance(out["f"], cs.Tensor) and out["f"].dtype == np.float64  # as PyTorch
    assert out["name"] == ["a", "b"]
    assert isinstance(out["p"], Point) and out["p"].x.tolist() == [1, 3]
    pair = default_collate([(np.zeros(3, np.float64), np.int32(4)), (np.ones(3), np.int32(5))])
    assert isinstance(pair, list) and pair[0].dtype == np.float64  # a tuple gives a list
    assert pair[1].dtype == np.int32
    tensors = default_collate([cs.tensor([1.0, 2.0]), cs.tensor([3.0, 4.0])])
    assert tensors.numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert default_convert([np.zeros(2, np.float32), 3])[1] == 3


def test_default_collate_errors_say_what_to_do():
    img = Image.new("RGB", (4, 4))
    check_error(lambda: default_collate([(img, 0), (img, 1)]), ArgumentTypeError,
                r"PIL images.*ToTensor")
    check_error(lambda: default_collate([np.zeros((3, 4)), np.zeros((3, 5))]), ShapeError,
                r"same shape.*Resize.*shapes \(3, 4\), \(3, 5\)")
    check_error(lambda: default_collate([None, None]), ArgumentTypeError,
                r"batch must contain.*NoneType")
    check_error(lambda: default_collate([(1, 2), (1,)]), ShapeError, r"same number of fields")
    check_error(lambda: default_collate([]), ArgumentTypeError, r"non-empty list")


# ---------------------------------------------------------------------------- ImageFolder
def _folder(root: Path, layout: dict[str, list[str]]) -> Path:
    rng = np.random.default_rng(0)
    for cls, names in layout.items():
        for name in names:
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).save(path)
    return root


def test_image_folder_follows_torchvisions_layout(tmp_path):
    root = _folder(tmp_path / "data", {"dog": ["b.png", "a.png", "sub/c.png"],
                                       "cat": ["z.jpg"], ".hidden": ["x.png"]})
    (root / "dog" / "notes.txt").write_text("not an image")
    ds = ImageFolder(root)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    expected = [(str(root / "cat" / "z.jpg"), 0), (str(root / "dog" / "a.png"), 1),
                (str(root / "dog" / "b.png"), 1), (str(root / "dog" / "sub" / "c.png"), 1)]
    assert ds.samples == expected and ds.imgs == expected and ds.targets == [0, 1, 1, 1]
    image, label = ds[2]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (7, 5)
    np.testing.assert_array_equal(np.asarray(image), np.asarray(Image.open(expected[2][0])))
    assert label == 1
    assert ds.find_classes(root) == (["cat", "dog"], {"cat": 0, "dog": 1})


def test_image_folder_transforms_and_dataloader(tmp_path):
    root = _folder(tmp_path, {"a": ["1.png", "2.png"], "b": ["3.png"]})
    grey = Image.fromarray(np.full((5, 7), 200, np.uint8))  # an L image becomes RGB
    grey.save(root / "b" / "4.png")
    ds = ImageFolder(root, transform=cs.transforms.ToTensor(),
                     target_transform=lambda t: t + 10)
    x, y = ds[3]
    assert isinstance(x, cs.Tensor) and x.shape == (3, 5, 7) and y == 11
    np.testing.assert_array_equal(x.numpy(), np.full((3, 5, 7), np.float32(200) / 255))
    images, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 5, 7) and labels.tolist() == [10, 10, 11, 11]
    only_png1 = ImageFolder(root, is_valid_file=lambda p: p.endswith("1.png"), allow_empty=True)
    assert len(only_png1) == 1 and only_png1.extensions is None


def _claiming_png(path: Path, width: int, height: int) -> None:
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))


def test_image_folder_refuses_bombs_before_decoding(tmp_path, monkeypatch):
    root = _folder(tmp_path, {"a": ["ok.png"]})
    _claiming_png(root / "a" / "zz_bomb.png", 30_000, 30_000)
    ds = ImageFolder(root)
    assert ds[0][0].size == (7, 5)

    def no_decoding(self):  # noqa: ANN001, ANN202
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    check_error(lambda: ds[1], ImageError, r"zz_bomb\.png'.*claims .*pixels.*not decoded")
    small = ImageFolder(root, max_pixels=10)
    check_error(lambda: small[0], ImageError, r"ok\.png'.*more than max_pixels=10")


def test_image_folder_errors(tmp_path):
    check_error(lambda: ImageFolder(tmp_path / "missing"), DataError, r"does not exist")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (2, 2)).save(tmp_path / "flat" / "a.png")
    check_error(lambda: ImageFolder(tmp_path / "flat"), DataError,
                r"no class subfolders; 1 images lie directly in it")
    (tmp_path / "flat" / "empty").mkdir()
    (tmp_path / "flat" / "full").mkdir()
    Image.new("RGB", (2, 2)).save(tmp_path / "flat" / "full" / "a.png")
    check_error(lambda: ImageFolder(tmp_path / "flat"), DataError,
                r"class folder 'empty' holds no images")
    assert ImageFolder(tmp_path / "flat", allow_empty=True).classes == ["empty", "full"]
    check_error(lambda: ImageFolder(tmp_path / "flat", transform="resize"), ArgumentTypeError,
                r"transform must be callable")
    check_error(lambda: ImageFolder(3), ArgumentTypeError, r"str or a pathlib.Path")
