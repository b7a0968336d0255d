"""``cs.fit(..., augment=...)`` and ``convscope train --augment``: augmentation of the training
split only, seeded from (seed, epoch) so that a resumed run stays bit-identical."""

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
import convscope.train as train_mod
from convscope.cli import main
from convscope.errors import ArgumentError, FileFormatError
from convscope.safetensors import load_file, read_metadata
from convscope.transforms.augment import augmenter, parse_augment
from errorcheck import check_error

SPEC = "16x16x3 | conv(6, 3, padding=1) | relu | maxpool(2) | dropout(0.2) | flatten | linear(10)"

CHILD = textwrap.dedent(f"""
    import sys, convscope as cs
    ds = cs.data.shapes(n=300, size=16, seed=3)
    model = cs.parse({SPEC!r}, seed=0)
    cs.fit(model, ds, epochs=int(sys.argv[2]), seed=5, out=sys.argv[1],
           resume=len(sys.argv) > 3, progress=None, augment="flip,crop,jitter")
""")


def _weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(run / "model.safetensors")[0]


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_crop_and_flip_draw_as_the_transforms_do():
    image = np.arange(16 * 16, dtype=np.float32).reshape(1, 1, 16, 16)
    out = augmenter(("crop",), (1, 16, 16), np.random.default_rng(3))(image)
    padded = np.pad(image[0], ((0, 0), (2, 2), (2, 2)))  # 16 / 8 = 2 pixels of zeros
    ref = np.random.default_rng(3)
    i, j = int(ref.integers(0, 5)), int(ref.integers(0, 5))
    np.testing.assert_array_equal(out[0], padded[:, i:i + 16, j:j + 16])
    flipped = augmenter(("flip",), (1, 16, 16), np.random.default_rng(4))(np.repeat(image, 8, 0))
    draws = np.random.default_rng(4).random(8) < 0.5
    for k in range(8):
        np.testing.assert_array_equal(flipped[k], image[0][..., ::-1] if draws[k] else image[0])
    assert augmenter((), (1, 16, 16), np.random.default_rng(0)) is None
    assert parse_augment(" Flip, crop ,flip") == ("flip", "crop")
    check_error(lambda: parse_augment("flip,rotate"), ArgumentError,
                r"unknown augmentation 'rotate'.*flip, crop, jitter")
    check_error(lambda: parse_augment(3), Exception, r"augment must be names")


def test_only_training_images_are_augmented_and_runs_repeat(monkeypatch):
    ds = cs.data.shapes(n=120, size=16, seed=1)
    seen = []
    real = train_mod.augmenter

    def counting(names, shape, generator):
        fn = real(names, shape, generator)
        if fn is None:
            return None

        def apply(batch):
            seen.append(len(batch))
            return fn(batch)

        return apply

    monkeypatch.setattr(train_mod, "augmenter", counting)
    runs = []
    for _ in range(2):
        model = cs.parse(SPEC, seed=0)
        cs.fit(model, ds, epochs=2, seed=7, progress=None, augment="flip,crop")
        runs.append(model.state_dict())
    train, _, _ = ds.split(seed=7)
    assert sum(seen) == 2 * 2 * len(train)  # two runs of two epochs, training images only
    _same(runs[0], runs[1])
    plain = cs.parse(SPEC, seed=0)
    cs.fit(plain, ds, epochs=2, seed=7, progress=None)
    assert not np.array_equal(plain.state_dict()["0.weight"], runs[0]["0.weight"])


def test_stopping_and_resuming_is_bit_identical(tmp_path):
    ds = cs.data.shapes(n=120, size=16, seed=2)
    straight = cs.parse(SPEC, seed=0)
    h1 = cs.fit(straight, ds, epochs=4, seed=3, progress=None, augment="crop,flip,jitter")
    run = tmp_path / "run"
    cs.fit(cs.parse(SPEC, seed=0), ds, epochs=2, seed=3, out=run, progress=None,
           augment="crop,flip,jitter")
    h2 = cs.fit(cs.parse(SPEC, seed=0), ds, epochs=4, seed=3, out=run, resume=True,
                progress=None, augment="crop,flip,jitter")
    _same(straight.state_dict(), _weights(run))
    assert [r["train_loss"] for r in h1.epochs] == [r["train_loss"] for r in h2.epochs]
    assert json.loads((run / "metrics.json").read_text())["augment"] == ["crop", "flip", "jitter"]
    check_error(lambda: cs.fit(cs.parse(SPEC, seed=0), ds, epochs=5, seed=3, out=run,
                               resume=True, progress=None, augment="flip"),
                ArgumentError, r"trained with augment='crop,flip,jitter'.*same augment")


def _epoch_done(run: Path) -> int:
    try:
        return int(read_metadata(run / "checkpoint.safetensors")["epoch"])
    except (FileFormatError, KeyError):
        return 0


def _child(out: Path, epochs: int, resume: bool = False) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    args = [sys.executable, "-c", CHILD, str(out), str(epochs)] + (["resume"] if resume else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_resume_after_sigkill_with_augmentation_ends_with_identical_weights(tmp_path):
    epochs = 12
    straight = tmp_path / "straight"
    assert _child(straight, epochs).wait(timeout=300) == 0
    resumed = tmp_path / "resumed"
    rng = np.random.default_rng(1)
    kills = 0
    for target in (2, 5, 9):
        child = _child(resumed, epochs, resume=True)
        while _epoch_done(resumed) < target and child.poll() is None:
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.05)))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    assert _child(resumed, epochs, resume=True).wait(timeout=300) == 0
    assert kills >= 2, f"only {kills} kills landed before the run ended"
    _same(_weights(straight), _weights(resumed))
    m_a = json.loads((straight / "metrics.json").read_text())["epochs"]
    m_b = json.loads((resumed / "metrics.json").read_text())["epochs"]
    assert [r["train_loss"] for r in m_a] == [r["train_loss"] for r in m_b]


@pytest.mark.parametrize("augment, code", [("flip,crop", 0), ("spin", 2)])
def test_cli_train_augment(capsys, tmp_path, augment, code):
    out = tmp_path / "run"
    rc = main(["train", "--data", "shapes", "--model", SPEC.replace("16x16x3", "64x64x3"),
               "--epochs", "1", "--out", str(out), "--augment", augment, "--quiet",
               "--batch-size", "64"])
    _, err = capsys.readouterr()
    assert rc == code, err
    if code:
        assert "convscope: error: fit: unknown augmentation 'spin'" in err
    else:
        assert json.loads((out / "metrics.json").read_text())["augment"] == ["flip", "crop"]
