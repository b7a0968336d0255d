"""Training: determinism, resume after SIGKILL, run-folder contents, learning on real data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope.errors import ArgumentError, FileFormatError
from convscope.safetensors import load_file, read_metadata

SPEC = "16x16x3 | conv(6, 3, padding=1) | relu | maxpool(2) | dropout(0.2) | flatten | linear(10)"

# A child process that trains and can be killed at any moment.
CHILD = textwrap.dedent(f"""
    import sys, convscope as cs
    ds = cs.data.shapes(n=600, size=16, seed=3)
    model = cs.parse({SPEC!r}, seed=0)
    cs.fit(model, ds, epochs=int(sys.argv[2]), seed=5, out=sys.argv[1],
           resume=len(sys.argv) > 3, progress=None)
""")


def _run_child(out: Path, epochs: int, resume: bool = False) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    args = [sys.executable, "-c", CHILD, str(out), str(epochs)] + (["resume"] if resume else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(run / "model.safetensors")[0]


def test_same_seed_gives_bit_identical_weights(tmp_path):
    ds = cs.data.shapes(n=120, size=16, seed=1)
    runs = []
    for _ in range(2):
        model = cs.parse(SPEC, seed=0)
        cs.fit(model, ds, epochs=2, seed=7, progress=None)
        runs.append(model.state_dict())
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name], err_msg=name)
    other = cs.parse(SPEC, seed=0)
    cs.fit(other, ds, epochs=2, seed=8, progress=None)
    assert not np.array_equal(other.state_dict()["0.weight"], runs[0]["0.weight"])


def test_run_folder_has_model_metrics_checkpoint_and_curves(tmp_path):
    ds = cs.data.shapes(n=150, size=16, seed=2)
    model = cs.parse(SPEC, seed=0)
    history = cs.fit(model, ds, epochs=2, seed=0, out=tmp_path, progress=None)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 2]
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["test_accuracy"] == history.test_accuracy
    assert metrics["classes"] == ds.classes
    loaded = cs.load(tmp_path)
    assert loaded.classes == ds.classes and loaded.input_shape == (3, 16, 16)
    x = ds.images[:5]
    np.testing.assert_array_equal(loaded(x).numpy(), model.eval()(x).numpy())
    assert (tmp_path / "checkpoint.safetensors").is_file()


def _epoch_done(run: Path) -> int:
    try:
        return int(read_metadata(run / "checkpoint.safetensors")["epoch"])
    except (FileFormatError, KeyError):
        return 0


def test_resume_after_sigkill_ends_with_identical_weights(tmp_path):
    epochs = 30
    straight = tmp_path / "straight"
    assert _run_child(straight, epochs).wait(timeout=300) == 0
    resumed = tmp_path / "resumed"
    rng = np.random.default_rng(0)
    kills = 0
    # Kill once the checkpoint reaches each target epoch, plus a random few milliseconds:
    # mid-epoch, or mid-way through writing the next checkpoint. Then resume.
    for target in (2, 7, 12, 18, 24):
        child = _run_child(resumed, epochs, resume=True)
        while _epoch_done(resumed) < target and child.poll() is None:
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.06)))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
        assert _epoch_done(resumed) >= target - 1, "a resume went back further than one epoch"
    assert _run_child(resumed, epochs, resume=True).wait(timeout=300) == 0
    assert kills >= 4, f"only {kills} kills landed before the run ended"
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    m_a = json.loads((straight / "metrics.json").read_text())["epochs"]
    m_b = json.loads((resumed / "metrics.json").read_text())["epochs"]
    assert [r["train_loss"] for r in m_a] == [r["train_loss"] for r in m_b]
    assert not list(resumed.glob("*.tmp*")), "a temporary file was left behind"


def test_fit_rejects_bad_arguments():
    model = cs.parse(SPEC, seed=0)
    ds = cs.data.shapes(n=50, size=16, seed=0)
    with pytest.raises(ArgumentError, match=r"epochs must be a positive int.*epochs=0"):
        cs.fit(model, ds, epochs=0)
    with pytest.raises(ArgumentError, match=r"unknown optimizer 'rmsprop'.*adam, adamw or sgd"):
        cs.fit(model, ds, epochs=1, optimizer="rmsprop", progress=None)


def test_digits_cnn_learns():
    """A short run on real handwritten digits already beats 90% (the full run reaches >= 98%)."""
    pytest.importorskip("sklearn")
    model = cs.parse("8x8x1 | conv(16, 3, padding=1) | relu | maxpool(2) | conv(32, 3, padding=1)"
                     " | relu | maxpool(2) | flatten | linear(10)", seed=0)
    history = cs.fit(model, "digits", epochs=4, seed=0, progress=None)
    assert history.test_accuracy >= 0.90, history.to_json()
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
