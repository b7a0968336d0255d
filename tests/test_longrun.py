"""Long runs: memory stays flat over a thousand training steps, and no file handle leaks.

Memory is read with tracemalloc (NumPy reports its buffers to it) after every step once
the run has warmed up; a least-squares line through those readings must be flat: under
1 KB per step, where a leaked activation of even one tiny batch would be several KB. The
run keeps every loss tensor, as a user collecting losses for a plot might: only because
``backward`` frees the graph does that stay cheap. File handles are counted in
``/proc/self/fd`` around hundreds of saves, loads and image reads, failing ones included.
"""

from __future__ import annotations

import gc
import os
import tracemalloc

import numpy as np
import pytest

import convscope as cs
from convscope import functional as F
from convscope.data import load_image, save_image
from convscope.errors import FileFormatError, ImageError
from convscope.safetensors import load_file, read_metadata

SPEC = ("8x8x1 | conv(4, 3, padding=1) | batchnorm | relu | maxpool(2) | dropout(0.1) | "
        "flatten | linear(3)")
WARMUP, STEPS = 200, 1200
MAX_SLOPE = 1024  # bytes per step


def _slope(readings: list[int] | np.ndarray) -> float:
    steps = np.arange(len(readings), dtype=np.float64)
    return float(np.polyfit(steps, np.asarray(readings, np.float64), 1)[0])


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, n)


def test_memory_is_flat_over_1000_training_steps():
    model = cs.parse(SPEC, seed=0)
    opt = cs.optim.Adam(model.parameters(), lr=1e-3)
    x, y = _data(64)
    rng = np.random.default_rng(1)
    losses = []  # kept on purpose: every loss tensor of the run
    readings = np.zeros(STEPS, np.int64)  # preallocated: the readings must not grow memory
    tracemalloc.start()
    try:
        for step in range(WARMUP + STEPS):
            idx = rng.integers(0, len(x), 4)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss)
            if step % 100 == 0:
                with cs.no_grad():
                    model.eval()
                    model(x[:8])
                    model.train()
            if step >= WARMUP:
                readings[step - WARMUP] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    slope = _slope(readings)
    growth = readings[-1] - readings[0]
    assert slope < MAX_SLOPE, f"memory grows by {slope:.0f} bytes per step ({growth} in all)"
    assert all(np.isfinite(float(v.item())) for v in losses[-10:])


def test_memory_is_flat_through_fit_over_1000_steps():
    """The real fit loop, watched from its progress stream (a fake terminal)."""
    images, labels = _data(20)
    ds = cs.data.Dataset(images, labels, ["a", "b", "c"])
    readings: list[int] = []

    class Terminal:
        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> None:
            if "ETA" in text:  # one progress line per training step
                readings.append(tracemalloc.get_traced_memory()[0])

        def flush(self) -> None:
            pass

    model = cs.parse(SPEC, seed=0)
    tracemalloc.start()
    try:
        cs.fit(model, ds, epochs=(WARMUP + STEPS) // 4 + 1, batch_size=4, seed=0,
               progress=Terminal())
    finally:
        tracemalloc.stop()
    assert len(readings) >= WARMUP + 1000, len(readings)
    slope = _slope(readings[WARMUP:])
    # per epoch, fit keeps one row of metrics (~0.5 KB): well under the limit per step
    assert slope < MAX_SLOPE, f"memory grows by {slope:.0f} bytes per step"


def _open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_no_file_handle_leaks_over_200_rounds(tmp_path):
    model = cs.parse("8x8x3 | conv(2, 3) | flatten | linear(2)", seed=0)
    path = tmp_path / "model.safetensors"
    image = tmp_path / "img.png"
    save_image(image, np.zeros((3, 8, 8)))
    bad_model = tmp_path / "bad.safetensors"
    bad_model.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    bad_image = tmp_path / "bad.png"
    bad_image.write_bytes(image.read_bytes()[:40])
    cs.save(model, path)  # warm-up: lazy imports open and close their own files
    cs.load(path)
    load_image(image)
    before = _open_fds()
    for _ in range(200):
        cs.save(model, path, classes=["a", "b"])
        assert cs.load(path).classes == ["a", "b"]
        assert load_image(image).shape == (3, 8, 8)
        load_file(path)
        read_metadata(path)
        with pytest.raises(FileFormatError):
            cs.load(bad_model)
        with pytest.raises(ImageError):
            load_image(bad_image)
    after = _open_fds()
    assert after <= before, f"{after - before} file handles leaked over 200 rounds"
