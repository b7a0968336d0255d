"""Predictions and features over folders of images in one process (``convscope.batch``).

Folders are generated: tiny images in several modes and sizes, plus corrupt, truncated,
bomb-sized and unreadable files, which must become rows with the CLI's message while the job
completes. Rows come in path order (also through the external sort's spills), hold the
numbers ``convscope predict`` always gave, survive a SIGKILL with ``--resume`` (no row lost
or repeated), and the job's memory stays flat from 2,000 to 20,000 images.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from batch_images import CLASSES, bad_files, folder, many, model_file, tiny
from convscope.batch import paths as paths_mod
from convscope.batch.job import Progress
from convscope.cli import main
from convscope.errors import ArgumentError, DataError, ImageError, ShapeError


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _cli_message(path: Path) -> str:
    with pytest.raises(ImageError) as info:
        cs.data.load_image(path, size=(16, 16), channels=3)
    return str(info.value)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, list[Path], list[Path]]:
    t = tmp_path_factory.mktemp("batch")
    good = folder(t / "photos", 37)
    bad = bad_files(t / "photos" / "zbad")
    (t / "photos" / "notes.txt").write_text("not an image, not listed")
    tiny(t / "photos" / ".hidden.png", 5)
    return t, model_file(t / "model.safetensors"), good, bad


def test_a_folder_with_bad_files_completes_with_error_rows(setup, capsys):
    t, model, good, bad = setup
    out = t / "preds.csv"
    assert main(["predict", str(model), str(t / "photos"), "--out", str(out), "--top", "2",
                 "--chunk-size", "8", "--batch-size", "5", "--quiet"]) == 3
    said = capsys.readouterr().out
    assert f"{len(good) + len(bad)} rows ({len(bad)} of them errors)" in said
    rows = _rows(out)
    assert [r["path"] for r in rows] == sorted(str(p) for p in good + bad)
    assert list(rows[0]) == ["path", "class", "probability", "class_2", "probability_2", "error"]
    by_path = {r["path"]: r for r in rows}
    for p in bad:
        r = by_path[str(p)]
        assert r["error"] == _cli_message(p) and r["class"] == r["probability"] == ""
    # the good rows hold the numbers `convscope predict` gave for a few images
    net = cs.load(model)
    probs = cs.train.predict_proba(net, np.stack([cs.data.load_image(p, size=16)
                                                  for p in good]))
    for p, prob in zip(good, probs, strict=True):
        r = by_path[str(p)]
        top = np.argsort(-prob, kind="stable")[:2]
        assert r["error"] == "" and [r["class"], r["class_2"]] == [CLASSES[k] for k in top]
        assert [np.float32(r["probability"]), np.float32(r["probability_2"])] == \
            list(prob[top])
    assert not Path(str(out) + ".parts").exists()


def test_csv_and_parquet_hold_the_same_rows(setup):
    pq = pytest.importorskip("pyarrow.parquet")
    t, model, good, bad = setup
    cs.batch.predict(model, t / "photos", str(t / "same.csv"), top=3, progress=None)
    cs.batch.predict(model, t / "photos", str(t / "same.parquet"), top=3, progress=None)
    table = pq.read_table(t / "same.parquet").to_pylist()
    rows = _rows(t / "same.csv")
    assert len(table) == len(rows) == len(good) + len(bad)
    for a, b in zip(rows, table, strict=True):
        assert a["path"] == b["path"] and (a["error"] or None) == b["error"]
        for k in ("", "_2", "_3"):
            assert (a["class" + k] or None) == b["class" + k]
            want = np.float32(a["probability" + k]) if a["probability" + k] else None
            assert want == (None if b["probability" + k] is None else
                            np.float32(b["probability" + k]))


def test_paths_come_sorted_even_when_the_sort_spills(tmp_path, monkeypatch):
    monkeypatch.setattr(paths_mod, "RUN", 2)  # every listing of more than 2 names spills
    names = ["a.png", "a-b.png", "a/x.png", "a/b/c.png", "a0.png", "B.png", "é.png",
             "a b.png", "z/y/x/w.jpg", "z/a.JPEG", "a/with,comma.png", 'a/"q".png']
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_bytes(b"")
    (tmp_path / "a" / "skip.txt").write_text("")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "hidden.png").write_bytes(b"")
    os.symlink(tmp_path / "a", tmp_path / "link-to-a")  # a linked folder is not followed
    got = list(cs.batch.PathSource(tmp_path))
    assert got == sorted(str(tmp_path / n) for n in names)
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("ab/-.\n\u00e9"), 6)) for _ in range(50)]
    assert list(paths_mod.sorted_bounded(words, run=3)) == sorted(words)


def test_globs_lists_and_files_merge_in_order_without_repeats(setup):
    t, model, good, bad = setup
    listed = t / "list.txt"
    rel = [os.path.relpath(p, t) for p in good[:5]]
    listed.write_text("# five images\n\n" + "\n".join(reversed(rel)) + "\nmissing.png\n")
    src = cs.batch.PathSource([str(listed), str(t / "photos" / "s000" / "*.png"),
                               str(good[3])])
    want = sorted({str(p) for p in good[:5]} | {str(t / "missing.png")}
                  | {str(p) for p in good[:10] if p.suffix == ".png"})
    assert list(src) == want
    assert src.scan()[0] == len(want)
    summary = cs.batch.predict(model, [str(listed)], str(t / "listed.csv"), progress=None)
    rows = {r["path"]: r["error"] for r in _rows(t / "listed.csv")}
    assert summary.errors == 1 and rows[str(t / "missing.png")].endswith(
        "the file does not exist. Fix: check the path and working folder.")


def test_mistakes_are_found_before_any_work(setup, tmp_path):
    t, model, good, bad = setup
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("")
    out = str(tmp_path / "o.csv")
    checks = [
        (lambda: cs.batch.PathSource(str(tmp_path / "nope")), DataError, "no such file"),
        (lambda: cs.batch.predict(model, tmp_path / "empty", out, progress=None), DataError,
         "holds no image files"),
        (lambda: cs.batch.predict(model, str(tmp_path / "*.jpg"), out, progress=None),
         DataError, "no such file|matches no image"),
        (lambda: cs.batch.predict(model, good, out, input_shape=(3, 32, 32), progress=None),
         ShapeError, "does not run on a 32x32x3 input volume"),
        (lambda: cs.batch.predict(model, good, out, top=4, progress=None), ArgumentError,
         "top must be from 1 to the number of classes, 3"),
        (lambda: cs.batch.features("resnet18", good, "layer1", out, progress=None),
         ArgumentError, r"200704 values per image, more than 65536"),
        (lambda: cs.batch.features(model, good, "nope", out, progress=None), ArgumentError,
         "the model has no layer 'nope'"),
        (lambda: cs.batch.predict(model, good, str(tmp_path / "o.txt"), progress=None),
         ArgumentError, r"must end \.csv or \.parquet"),
        (lambda: cs.batch.predict(model, good, str(tmp_path / "no" / "o.csv"),
                                  progress=None), ArgumentError, "does not exist"),
    ]
    for call, kind, pattern in checks:
        with pytest.raises(kind, match=pattern):
            call()
    assert sorted(os.listdir(tmp_path)) == ["empty"]  # nothing was written
    unet = cs.models.get("unet", seed=0)
    with pytest.raises(ShapeError, match="not one score per class"):
        cs.batch.Runner(unet, "predict", input_shape=(3, 16, 16))


def test_a_left_over_run_is_resumed_only_when_asked_and_only_if_it_matches(setup, tmp_path):
    t, model, good, bad = setup
    out = str(tmp_path / "o.csv")
    os.mkdir(out + ".parts")
    with pytest.raises(DataError, match=r"an earlier run left .*o\.csv\.parts.*--resume"):
        cs.batch.predict(model, good, out, progress=None)
    os.rmdir(out + ".parts")
    stop = RuntimeError("stop")

    def interrupt(i, rows):
        raise stop

    runner = cs.batch.Runner(model, "predict")
    with pytest.raises(RuntimeError):
        cs.batch.run_job(runner, cs.batch.PathSource(good), out, chunk_size=8,
                         progress=None, on_chunk=interrupt)
    with pytest.raises(DataError, match="written for other inputs or settings.*differs in "
                                        "chunk"):
        cs.batch.predict(model, good, out, resume=True, chunk_size=4, progress=None)
    with pytest.raises(DataError, match="differs in top"):
        cs.batch.predict(model, good, out, resume=True, chunk_size=8, top=2, progress=None)
    summary = cs.batch.predict(model, good, out, resume=True, chunk_size=8, progress=None)
    assert summary.resumed == 8 and summary.images == len(good)
    assert [r["path"] for r in _rows(Path(out))] == sorted(str(p) for p in good)


def _features(model, paths, layer, tmp, **kw) -> np.ndarray:
    out = str(tmp / f"f{abs(hash(str(layer)))}.csv")
    cs.batch.features(model, paths, layer, out, progress=None, **kw)
    rows = _rows(Path(out))
    assert [r["path"] for r in rows] == sorted(str(p) for p in paths)
    return np.array([[np.float32(v) for k, v in r.items() if k.startswith("f")]
                     for r in rows], np.float32)


def test_features_of_layers_functions_and_containers(setup, tmp_path):
    t, model, good, bad = setup
    paths = sorted(good[:9], key=str)
    x = np.stack([cs.data.load_image(p, size=16) for p in paths])
    net = cs.load(model)
    with cs.no_grad():
        want = net[:3](x).numpy().reshape(len(x), -1)  # conv, relu, maxpool
    assert np.array_equal(_features(model, paths, 2, tmp_path), want)
    resnet = cs.models.get("resnet18", seed=0).eval()
    kw = {"input_shape": (3, 32, 32)}
    x32 = np.stack([cs.data.load_image(p, size=32) for p in paths])
    with cs.no_grad():
        logits = resnet(x32).numpy()  # the fused inference pass
    # the last node's features are the model's output, bit for bit
    assert np.array_equal(_features(resnet, paths, "fc", tmp_path, **kw), logits)
    pooled = _features(resnet, paths, "avgpool", tmp_path, **kw)
    flat = _features(resnet, paths, "flatten", tmp_path, **kw)  # a function node
    assert pooled.shape == (9, 512) and np.array_equal(pooled, flat)
    seen = []
    with resnet.layer4.register_forward_hook(lambda m, a, y: seen.append(y.numpy())):
        resnet(x32)  # with gradients: the unfused pass, which calls a container's hooks
    # a container's path names the node that made its output (layer4.1's 2nd ReLU call)
    block = _features(resnet, paths, "layer4", tmp_path, **kw)
    np.testing.assert_allclose(block, seen[0].reshape(9, -1), rtol=1e-4,
                               atol=1e-5 * np.abs(block).max())


def test_a_few_files_print_as_before_and_folders_stream(setup, capsys):
    t, model, good, bad = setup
    a, b = str(good[0]), str(good[11])
    assert main(["predict", str(model), b, a, "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [b, a]  # the order given
    assert re.fullmatch(re.escape(a) + r"  (cat|dog|emu) \d+\.\d%, (cat|dog|emu) \d+\.\d%",
                        lines[1])
    assert main(["predict", str(model), a, str(bad[0])]) == 2
    assert "the file is not a readable PNG" in capsys.readouterr().err
    assert main(["predict", str(model), str(t / "photos" / "zbad"), str(good[0])]) == 3
    got = capsys.readouterr()
    assert len(got.out.splitlines()) == len(bad) + 1 and "error: image" in got.out
    assert f"({len(bad)} of them errors)" in got.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_in_logs():
    tty, log = _Terminal(), io.StringIO()
    for stream in (tty, log):
        bar = Progress(stream, total=100, every=0.0)
        bar.update(40, 1)
        bar.update(60, 0)
        bar.close()
    assert re.search(r"\r\[#{9}\.{15}\] 40/100 images  [\d,]+ images/s  ETA \d+ s, 1 errors",
                     tty.getvalue())
    assert tty.getvalue().endswith("\n") and "\r" not in log.getvalue()
    assert re.match(r"40/100 images \(40%\), [\d,]+ images/s, ETA \d+ s, 1 errors\n"
                    r"100/100 images \(100%\)", log.getvalue())


# --------------------------------------------------------------------------- kills
def _start(model: Path, photos: Path, out: Path, resume: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "convscope.cli", "predict", str(model), str(photos),
            "--out", str(out), "--chunk-size", "4", "--batch-size", "4", "--quiet"]
    return subprocess.Popen(argv + (["--resume"] if resume else []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _parts(out: Path) -> int:
    try:
        return sum(name.startswith("part-") for name in os.listdir(f"{out}.parts"))
    except FileNotFoundError:
        return 0


def test_resume_after_sigkill_loses_and_repeats_no_row(tmp_path):
    model = model_file(tmp_path / "m.safetensors")
    photos = tmp_path / "photos"
    folder(photos, 300, per_folder=50)
    bad_files(photos / "bad")
    reference = tmp_path / "ref.csv"
    cs.batch.predict(model, photos, str(reference), chunk_size=4, batch_size=4, progress=None)
    out = tmp_path / "preds.csv"
    seen = 0
    for kill in range(2):
        proc = _start(model, photos, out, resume=kill > 0)
        deadline = time.monotonic() + 60
        while _parts(out) < seen + 5 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        assert not out.exists(), "the kill came after the job ended: use more images"
        assert _parts(out) > seen
        seen = _parts(out)
    assert main(["predict", str(model), str(photos), "--out", str(out), "--chunk-size", "4",
                 "--batch-size", "4", "--resume", "--quiet"]) == 3
    assert out.read_bytes() == reference.read_bytes()  # every row once, in order
    assert not Path(f"{out}.parts").exists()


# --------------------------------------------------------------------------- memory
MEASURE = textwrap.dedent("""
    import resource, sys
    import convscope as cs
    summary = cs.batch.predict(sys.argv[1], sys.argv[2], sys.argv[3], top=2, progress=None)
    assert summary.images == int(sys.argv[4]), summary
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB
""")


def _peak_kib(model: Path, photos: Path, out: Path, n: int, env: dict[str, str]) -> int:
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(model), str(photos), str(out),
                           str(n)], capture_output=True, text=True, check=False,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.split()[-1])


@pytest.mark.parametrize("fmt, small, large", [("csv", 2_000, 20_000),
                                                ("parquet", 1_000, 10_000)])
def test_memory_stays_flat_from_thousands_to_tens_of_thousands(tmp_path, fmt, small, large):
    """Peak RSS of whole runs in fresh processes; the growth must stay under 3 MiB (holding
    the paths alone would take ~2.5 MiB more at 20k images, the decoded images ~55 MiB).
    Arrow's default allocator keeps freed blocks in caches whose peak varies by a few MiB
    from run to run (measured flat to 100k images), so Parquet runs use the system one."""
    if fmt == "parquet":
        pytest.importorskip("pyarrow.parquet")
    model = model_file(tmp_path / "m.safetensors")
    many(tmp_path / "small", small)
    many(tmp_path / "large", large)
    env = {"ARROW_DEFAULT_MEMORY_POOL": "system"}
    a = _peak_kib(model, tmp_path / "small", tmp_path / f"s.{fmt}", small, env)
    b = _peak_kib(model, tmp_path / "large", tmp_path / f"l.{fmt}", large, env)
    assert b - a < 3 * 1024, f"peak RSS {a} KiB at {small} images, {b} KiB at {large}"
