"""Safe weights files: round trips, byte layout, hostile files, crash-safe writes."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convscope.errors import ArgumentError, ArgumentTypeError, FileFormatError
from convscope.safetensors import DTYPES, load_file, read_metadata, save_file

DTYPE_CASES = {
    "F32": np.float32,
    "F64": np.float64,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "U16": np.uint16,
    "U32": np.uint32,
    "U64": np.uint64,
    "BOOL": np.bool_,
}
SHAPES = [(), (0,), (2, 0, 3), (5,), (3, 4), (2, 3, 1, 2)]


def _sample(dtype: type, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype is np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _raw_file(path, header: object, data: bytes = b"", pad: bool = True) -> None:
    if isinstance(header, bytes):
        text = header
    else:
        text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_every_dtype_and_shape(tmp_path, name, shape):
    array = _sample(DTYPE_CASES[name], shape)
    path = tmp_path / "t.safetensors"
    save_file(path, {"x": array})
    loaded, meta = load_file(path)
    assert meta == {}
    out = loaded["x"]
    assert out.dtype == array.dtype and out.shape == shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable and out.flags.c_contiguous and out.dtype.isnative
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert json.loads(raw[8 : 8 + n])["x"]["dtype"] == name


def test_round_trip_many_tensors_metadata_and_odd_layouts(tmp_path):
    tensors = {
        "conv1.weight": _sample(np.float32, (8, 3, 5, 5)),
        "conv1.bias": _sample(np.float32, (8,), 1),
        "big_endian": np.arange(6, dtype=">f8").reshape(2, 3),
        "transposed": np.arange(12, dtype=np.int32).reshape(3, 4).T,
        "scalar": np.float64(3.5),
        "ünïcode name": np.zeros(2, np.uint8),
    }
    meta = {"arch": "64x64x3 | conv(8, 5)", "epoch": "3", "ünï": "ç"}
    path = tmp_path / "m.safetensors"
    save_file(str(path), tensors, meta)
    loaded, got_meta = load_file(path)
    assert got_meta == meta and read_metadata(path) == meta
    assert list(loaded) == sorted(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name], np.asarray(value))
        assert loaded[name].dtype.isnative
    assert loaded["big_endian"].dtype == np.float64


def test_empty_dict_round_trips(tmp_path):
    path = tmp_path / "empty.safetensors"
    save_file(path, {})
    assert path.read_bytes() == struct.pack("<Q", 8) + b"{}      "
    assert load_file(path) == ({}, {})


def test_byte_layout_matches_the_format_by_hand(tmp_path):
    path = tmp_path / "hand.safetensors"
    save_file(path, {"b": np.array([1, 2], np.int32), "a": np.array([0.5], np.float32)}, {"k": "v"})
    header = (
        b'{"__metadata__":{"k":"v"},'
        b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        b'"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}}'
    )
    header += b" " * (-len(header) % 8)
    data = struct.pack("<f", 0.5) + struct.pack("<ii", 1, 2)
    assert path.read_bytes() == struct.pack("<Q", len(header)) + header + data
    assert len(header) % 8 == 0


def test_reads_a_file_built_by_hand(tmp_path):
    path = tmp_path / "ext.safetensors"
    data = struct.pack("<2d", 1.0, -2.0) + bytes([1, 0, 1])
    header = {"w": _entry("F64", [2], 0, 16), "m": _entry("BOOL", [3], 16, 19)}
    _raw_file(path, header, data, pad=False)  # unpadded headers are legal
    tensors, _ = load_file(path)
    np.testing.assert_array_equal(tensors["w"], [1.0, -2.0])
    np.testing.assert_array_equal(tensors["m"], [True, False, True])


def test_cross_check_with_the_safetensors_package(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    tensors = {"a": _sample(np.float32, (3, 2)), "b": _sample(np.int64, (4,)), "c": np.array(True)}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    save_file(ours, tensors, {"x": "y"})
    st_numpy.save_file(tensors, str(theirs), metadata={"x": "y"})
    for name, value in st_numpy.load_file(str(ours)).items():
        np.testing.assert_array_equal(value, tensors[name])
    for name, value in load_file(theirs)[0].items():
        np.testing.assert_array_equal(value, tensors[name])


def test_header_length_0x80_is_not_mistaken_for_a_pickle(tmp_path):
    path = tmp_path / "x.safetensors"
    for length in range(0, 200):
        save_file(path, {"w": np.zeros(1, np.float32)}, {"pad": "p" * length})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[:2] == b"\x80\x00"
    assert load_file(path)[1]["pad"] == "p" * length


# ----------------------------------------------------------------------------- save errors


@pytest.mark.parametrize(
    ("tensors", "metadata", "error", "pattern"),
    [
        ([np.zeros(1)], None, ArgumentTypeError, r"tensors must be a dict.*Received: type list"),
        ({1: np.zeros(1)}, None, ArgumentTypeError, r"names must be strings.*name 1"),
        ({"__metadata__": np.zeros(1)}, None, ArgumentError, r"'__metadata__' is reserved"),
        ({"o": np.array([{}], object)}, None, ArgumentTypeError, r"'o' has dtype object"),
        ({"c": np.zeros(2, np.complex64)}, None, ArgumentTypeError, r"dtype complex64"),
        ({"s": np.array(["a"])}, None, ArgumentTypeError, r"dtype <U1"),
        ({"w": np.zeros(1)}, {"epoch": 3}, ArgumentTypeError, r"metadata must be a dict of str"),
    ],
)
def test_save_rejects_bad_arguments(tmp_path, tensors, metadata, error, pattern):
    with pytest.raises(error, match=pattern):
        save_file(tmp_path / "x.safetensors", tensors, metadata)
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder_or_onto_directory(tmp_path):
    with pytest.raises(FileFormatError, match=r"folder to write into does not exist"):
        save_file(tmp_path / "no" / "x.safetensors", {})
    with pytest.raises(FileFormatError, match=r"the path is a directory.*Fix: give a file name"):
        save_file(tmp_path, {})


# ----------------------------------------------------------------------------- crash safety


def _fail_with(exc: BaseException):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.mark.parametrize("target", ["fsync", "replace"])
def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch, target):
    path = tmp_path / "model.safetensors"
    save_file(path, {"w": np.ones(3, np.float32)}, {"v": "1"})
    before = path.read_bytes()
    monkeypatch.setattr(os, target, _fail_with(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(FileFormatError, match=r"No space left on device.*previous file.*unchanged"):
        save_file(path, {"w": np.zeros(1000, np.float32)}, {"v": "2"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    assert load_file(path)[1] == {"v": "1"}


def test_failed_write_of_data_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    real_fdopen = os.fdopen

    class Full(io.FileIO):
        def write(self, b):  # noqa: ANN001
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(fd, "wb"))
    with pytest.raises(FileFormatError, match=r"could not write the file"):
        save_file(path, {"w": np.ones(3, np.float32)})
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_removes_temp_and_reraises(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    monkeypatch.setattr(os, "fsync", _fail_with(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_file(path, {"w": np.ones(3, np.float32)})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- hostile files


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.safetensors"
    save_file(
        path, {"a": np.arange(3, dtype=np.float32), "b": np.array([[1, 2]], np.int64)}, {"k": "v"}
    )
    return path


def test_truncated_at_every_byte_is_refused(small_file, tmp_path):
    raw = small_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for n in range(len(raw)):
        cut.write_bytes(raw[:n])
        with pytest.raises(FileFormatError, match=r"cut\.safetensors"):
            load_file(cut)


def test_trailing_bytes_are_refused(small_file):
    small_file.write_bytes(small_file.read_bytes() + b"\x00")
    with pytest.raises(FileFormatError, match=r"1 trailing bytes follow the last tensor"):
        load_file(small_file)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4)
)
def test_random_corruption_loads_consistently_or_is_refused(small_file, tmp_path, flips):
    raw = bytearray(small_file.read_bytes())
    for pos, xor in flips:
        raw[pos % len(raw)] ^= xor
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(raw))
    start = time.perf_counter()
    try:
        tensors, meta = load_file(bad)
    except FileFormatError:
        pass
    else:
        (n,) = struct.unpack("<Q", bytes(raw[:8]))
        assert sum(t.nbytes for t in tensors.values()) == len(raw) - 8 - n
        assert all(t.dtype in DTYPES.values() for t in tensors.values())
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("shape", "offsets"),
    [([2**40, 2**40], [0, 2**82]), ([2**62], [0, 2**64]), ([10**30, 10**30], [0, 4 * 10**60])],
)
def test_huge_claimed_sizes_allocate_nothing(tmp_path, shape, offsets):
    path = tmp_path / "huge.safetensors"
    _raw_file(path, {"w": _entry("F32", shape, *offsets)}, b"\x00" * 16)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"need .* data bytes but the file holds 16"):
            load_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_huge_header_length_is_refused_before_reading(tmp_path):
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(
        FileFormatError, match=r"header claims 9223372036854775808 bytes, more than"
    ):
        load_file(path)
    path.write_bytes(struct.pack("<Q", 50_000_000) + b"{}")
    with pytest.raises(FileFormatError, match=r"header claims 50000000 bytes but only 2 follow"):
        load_file(path)
    _raw_file(path, {"__metadata__": {"a": "b" * 100}})
    with pytest.raises(FileFormatError, match=r"more than the limit of 64"):
        load_file(path, max_header=64)


def test_max_bytes_refuses_large_data(small_file):
    with pytest.raises(FileFormatError, match=r"the tensors hold 28 bytes, more than max_bytes=10"):
        load_file(small_file, max_bytes=10)
    assert set(load_file(small_file, max_bytes=28)[0]) == {"a", "b"}


HOSTILE_HEADERS = [
    ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 4, 12)}, 12, r"an overlap after 'a'"),
    (
        {"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 12, 20)},
        20,
        r"'b' begins at byte 12, leaving a gap",
    ),
    ({"a": _entry("F32", [2], 4, 12)}, 12, r"leaving a gap at the start"),
    ({"a": _entry("F33", [2], 0, 8)}, 8, r"unknown dtype.*Received: dtype 'F33'"),
    ({"a": _entry("BF16", [2], 0, 4)}, 4, r"dtype BF16, which NumPy cannot hold"),
    ({"a": _entry("F32", [-1], 0, 0)}, 0, r"shape of at most 64 non-negative integers"),
    ({"a": _entry("F32", [2.0], 0, 8)}, 8, r"non-negative integers.*shape \[2\.0\]"),
    ({"a": _entry("F32", [True], 0, 4)}, 4, r"non-negative integers"),
    ({"a": _entry("F32", [1] * 65, 0, 4)}, 4, r"at most 64"),
    ({"a": _entry("F32", [2], 8, 0)}, 8, r"0 <= begin <= end"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, 8, r"data_offsets \[0\]"),
    ({"a": _entry("F32", [3], 0, 8)}, 8, r"needs 12 bytes, but its offsets span 8"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}, 4, r"exactly dtype"),
    ({"a": [1, 2]}, 0, r"exactly dtype, shape and data_offsets"),
    ({"__metadata__": {"k": 1}}, 0, r"__metadata__ must map strings to strings"),
    ({"__metadata__": ["k"]}, 0, r"__metadata__ must map strings to strings"),
    ([1, 2], 0, r"the header does not start with a JSON object"),
]


@pytest.mark.parametrize(("header", "nbytes", "pattern"), HOSTILE_HEADERS)
def test_hostile_headers_are_refused(tmp_path, header, nbytes, pattern):
    path = tmp_path / "bad.safetensors"
    _raw_file(path, header, b"\x00" * nbytes)
    with pytest.raises(FileFormatError, match=r"bad\.safetensors.*" + pattern):
        load_file(path)
    with pytest.raises(FileFormatError, match=pattern):
        read_metadata(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],'
            b'"data_offsets":[1,2]}}',
            r"names 'a' twice",
        ),
        (b'{"__metadata__":{"k":"1","k":"2"}}', r"names 'k' twice"),
        (b'{"a": NaN}', r"not valid JSON"),
        (b'{"a": \xff}', r"not UTF-8"),
        (b'{"a": ', r"not valid JSON"),
        (b"{" + b"[" * 100_000 + b"]" * 100_000 + b"}", r"not valid JSON"),
        (
            b'{"a":{"dtype":"U8","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,1]}}',
            r"not valid JSON",
        ),
    ],
)
def test_malformed_json_is_refused(tmp_path, text, pattern):
    path = tmp_path / "bad.safetensors"
    _raw_file(path, text, b"\x00\x00")
    with pytest.raises(FileFormatError, match=pattern):
        load_file(path)


def test_bool_bytes_other_than_0_and_1_are_refused(tmp_path):
    path = tmp_path / "b.safetensors"
    _raw_file(path, {"m": _entry("BOOL", [2], 0, 2)}, b"\x01\x07")
    with pytest.raises(FileFormatError, match=r"BOOL tensor 'm' holds bytes other than 0 and 1"):
        load_file(path)


class _Payload:
    """Unpickling this creates a directory: the proof that a loader ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_is_refused_and_never_run(tmp_path, protocol):
    live = tmp_path / "live_marker"
    pickle.loads(pickle.dumps(_Payload(str(live)), protocol=protocol))
    assert live.exists()  # the payload is real: unpickling runs it
    marker = tmp_path / "marker"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": _Payload(str(marker))}, protocol=protocol))
    with pytest.raises(FileFormatError, match=r"this is a Python pickle.*never opened"):
        load_file(path)
    with pytest.raises(FileFormatError, match=r"Python pickle"):
        read_metadata(path)
    assert not marker.exists()


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros(3), evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(
        FileFormatError, match=r"weights\.npz.*a zip archive \(NumPy \.npz, PyTorch \.pt"
    ):
        load_file(path)


def test_pytorch_style_zip_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": _Payload(str(tmp_path / "m"))}))
    with pytest.raises(FileFormatError, match=r"zip archive"):
        load_file(path)
    assert not (tmp_path / "m").exists()


def test_onnx_model_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    node = helper.make_node("Relu", ["x"], ["y"])
    info = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in "xy"]
    model = helper.make_model(helper.make_graph([node], "g", info[:1], info[1:]))
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    with pytest.raises(FileFormatError, match=r"an ONNX model, not safetensors"):
        load_file(path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"the file is empty"),
        (b"\x02\x00\x00", r"too short to hold the 8-byte header length.*3 bytes"),
        (b'{"a": 1}\n', r"JSON text file without the 8-byte length prefix"),
        (b"\x93NUMPY\x01\x00v\x00{'descr'", r"NumPy \.npy"),
        (
            b"\x10\x00\x00\x00\x00\x00\x00\x00[1,2,3,4,5,6,7,8,]",
            r"does not start with a JSON object",
        ),
        (struct.pack("<Q", 0), r"does not start with a JSON object"),
    ],
)
def test_other_contents_are_refused(tmp_path, content, pattern):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=pattern):
        load_file(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileFormatError, match=r"nope\.safetensors'.*does not exist"):
        load_file(tmp_path / "nope.safetensors")
    with pytest.raises(FileFormatError, match=r"the path is a directory, not a file"):
        load_file(tmp_path)
    with pytest.raises(FileFormatError, match=r"the path is a directory"):
        read_metadata(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.safetensors"
    os.mkfifo(path)
    with pytest.raises(FileFormatError, match=r"not a regular file"):
        load_file(path)


def test_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match=r"does not exist"):
        load_file(tmp_path / "x")
