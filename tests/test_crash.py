"""Crashes lose nothing: kills in the middle of a checkpoint write, and a disk that fills up.

``test_train.py`` kills a run at chosen epochs and checks the weights it ends with. Here the
kills aim at the moment a file is being written: the child process slows its own writes
down (64 KiB at a time, a millisecond apart; the writing code itself is untouched), so that
most of a run's time is spent inside ``save_file`` and a random kill usually lands there.
After every kill the checkpoint on disk must load completely and never go back in time;
the final weights must equal those of a run that was never interrupted. A full disk
(``ENOSPC`` from a write, ``fsync`` or the rename) must leave the previous file intact and no
temporary file, through ``cs.save``, ``cs.fit`` and the ``convscope train`` command.
"""

from __future__ import annotations

import errno
import io
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
from convscope.cli import main
from convscope.errors import FileFormatError
from convscope.safetensors import load_file, read_metadata

SPEC = "16x16x3 | flatten | linear(256) | relu | dropout(0.1) | linear(4)"  # ~0.8 MB of weights
EPOCHS = 60
KILLS = 12

CHILD = textwrap.dedent(f"""
    import os, sys, time
    import numpy as np
    import convscope as cs

    real_fdopen = os.fdopen

    class Slow:
        '''A file whose writes trickle out, so that a kill is likely to land mid-write.'''

        def __init__(self, f):
            self.f = f

        def write(self, data):
            view = memoryview(data).cast("B")
            for i in range(0, len(view), 1 << 16):
                self.f.write(view[i:i + (1 << 16)])
                time.sleep(0.001)
            return len(view)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return Slow(f) if "w" in mode else f

    os.fdopen = fdopen
    rng = np.random.default_rng(0)
    ds = cs.data.Dataset(rng.random((40, 3, 16, 16), dtype=np.float32), np.arange(40) % 4,
                         list("abcd"))
    model = cs.parse({SPEC!r}, seed=0)
    warm = cs.parse({SPEC!r}, seed=1)  # load the compiled kernels before the kills' clock
    warm(ds.images[:16]).sum().backward()  # starts (~0.5 s), on a model of its own
    print("go", flush=True)
    cs.fit(model, ds, epochs={EPOCHS}, batch_size=16, seed=5, out=sys.argv[1], resume=True,
           progress=None)
""")


def _child(out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", CHILD, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _temps(run: Path) -> list[Path]:
    return [p for p in run.iterdir() if p.name.endswith(".tmp")] if run.exists() else []


def _checkpoint_epoch(run: Path) -> int:
    """The epoch of the checkpoint on disk, after loading every byte of it (0: none yet)."""
    path = run / "checkpoint.safetensors"
    if not path.exists():
        return 0
    tensors, meta = load_file(path)  # raises FileFormatError on a half-written file
    assert any(k.startswith("model.") for k in tensors) and any(k.startswith("optim.")
                                                                for k in tensors)
    history = json.loads(meta["history"])
    assert len(history) == int(meta["epoch"]), "history and epoch disagree"
    return int(meta["epoch"])


@pytest.mark.slow
def test_kills_during_checkpoint_writes_lose_nothing(tmp_path):
    straight = _child(tmp_path / "straight")  # the uninterrupted reference, in parallel
    run = tmp_path / "killed"
    rng = np.random.default_rng(12)
    survived = mid_write = 0
    epoch = 0
    for _ in range(KILLS):
        child = _child(run)
        assert child.stdout.readline().strip() == "go"
        time.sleep(float(rng.uniform(0.02, 0.5)))
        if child.poll() is not None:
            break  # the run finished: no more kills possible
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        mid_write += bool(_temps(run))  # a kill inside save_file leaves its temporary file
        now = _checkpoint_epoch(run)
        assert now >= epoch, f"the checkpoint went back from epoch {epoch} to {now}"
        if (run / "model.safetensors").exists():
            cs.load(run / "model.safetensors")
        epoch = now
        survived += 1
    final = _child(run)
    final.stdout.readline()
    assert final.wait(timeout=300) == 0 and straight.wait(timeout=300) == 0
    final.stdout.close()
    straight.stdout.close()
    assert survived == KILLS, f"only {survived} kills landed before the run ended"
    assert mid_write >= KILLS // 3, f"only {mid_write} of {survived} kills landed mid-write"
    assert 0 < epoch < EPOCHS, "the kills should end somewhere in the middle of the run"
    a = load_file(tmp_path / "straight" / "model.safetensors")[0]
    b = load_file(run / "model.safetensors")[0]
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not _temps(run), "a temporary file was left behind"
    print(f"\n{survived} kills survived, {mid_write} of them inside a checkpoint write")


# ----------------------------------------------------------------------------- full disk
class FullDisk:
    """The disk fills up: after ``skip`` files were written normally, the next file gets
    ``budget`` bytes (a partial write), then ENOSPC; or ``fsync``/``replace`` fail."""

    def __init__(self, monkeypatch, budget: int = 0, on: str = "write", skip: int = 0) -> None:
        self.budget, self.on, self.skip, self.hits = budget, on, skip, 0
        real_fdopen = os.fdopen
        disk = self

        class File(io.FileIO):
            full = False

            def write(self, data) -> int:  # noqa: ANN001
                view = memoryview(data).cast("B")
                if self.full and len(view) > disk.budget:
                    super().write(view[:disk.budget])
                    disk.budget = 0
                    disk.hits += 1
                    raise OSError(errno.ENOSPC, "No space left on device")
                if self.full:
                    disk.budget -= len(view)
                return super().write(view)

        def fdopen(fd, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if "w" not in mode:
                return real_fdopen(fd, mode, *args, **kwargs)
            f = File(fd, "wb")
            f.full = disk.on == "write" and disk.skip <= 0
            disk.skip -= 1
            return f

        def fail(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            self.hits += 1
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fdopen", fdopen)
        if on in ("fsync", "replace"):
            monkeypatch.setattr(os, on, fail)


def _model(seed: int) -> cs.nn.Sequential:
    return cs.parse("8x8x3 | conv(4, 3) | relu | batchnorm | flatten | linear(3)", seed=seed)


@pytest.mark.parametrize(("on", "budget"), [("write", 0), ("write", 100), ("write", 700),
                                            ("write", 1500), ("fsync", 0), ("replace", 0)])
def test_a_full_disk_keeps_the_previous_model_and_leaves_no_temp(tmp_path, monkeypatch, on,
                                                                 budget):
    path = tmp_path / "model.safetensors"
    cs.save(_model(0), path, classes=["a", "b", "c"])
    before = path.read_bytes()
    disk = FullDisk(monkeypatch, budget, on)
    with pytest.raises(FileFormatError, match=r"model\.safetensors'\): could not write the file "
                       r"\(No space left on device\)\. Fix: free disk space.*previous file at "
                       r"this path is unchanged"):
        cs.save(_model(1), path, classes=["x", "y", "z"])
    monkeypatch.undo()
    assert disk.hits == 1
    assert path.read_bytes() == before
    assert cs.load(path).classes == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_full_disk_during_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    ds = cs.data.Dataset(rng.random((30, 3, 8, 8), dtype=np.float32), np.arange(30) % 3,
                         list("abc"))
    reference = _model(0)
    cs.fit(reference, ds, epochs=4, seed=2, progress=None)
    run = tmp_path / "run"
    disk = FullDisk(monkeypatch, budget=300, skip=2)  # the checkpoints of epochs 1, 2 fit
    with pytest.raises(FileFormatError, match=r"checkpoint\.safetensors'\): could not write the "
                       r"file \(No space left on device\)"):
        cs.fit(_model(0), ds, epochs=4, seed=2, out=run, progress=None)
    monkeypatch.undo()
    assert disk.hits == 1
    assert int(read_metadata(run / "checkpoint.safetensors")["epoch"]) == 2
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.safetensors"]
    resumed = _model(0)
    cs.fit(resumed, ds, epochs=4, seed=2, out=run, resume=True, progress=None)
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(value, resumed.state_dict()[name], err_msg=name)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_the_train_command_reports_a_full_disk(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    FullDisk(monkeypatch, budget=0)
    code = main(["train", "--data", "digits", "--model", "8x8x1 | flatten | linear(10)",
                 "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("convscope: error: save_file(") and "No space left on device" in err
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
