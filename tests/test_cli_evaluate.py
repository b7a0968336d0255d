"""``convscope evaluate RUN FOLDER``: its numbers against scikit-learn's, its picture, its errors.

The model is built to be predictable: a global average pool and an identity linear layer,
so it predicts the image's dominant colour channel (red -> "red", ...). The folder labels
some images wrongly on purpose, so every kind of cell of the confusion matrix is used.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope.cli import main
from convscope.data import save_image

skm = pytest.importorskip("sklearn.metrics")

CLASSES = ["blue", "green", "red"]  # the model's output order: channel 2, 1, 0
SIDE = 12


def _model() -> cs.nn.Sequential:
    model = cs.parse(f"{SIDE}x{SIDE}x3 | avgpool({SIDE}) | flatten | linear(3)", seed=0)
    weight = np.zeros((3, 3), np.float32)
    weight[0, 2] = weight[1, 1] = weight[2, 0] = 10.0  # output k = dominant channel
    model.load_state_dict({"2.weight": weight, "2.bias": np.zeros(3, np.float32)})
    return model


@pytest.fixture
def setup(tmp_path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    run = tmp_path / "run"
    run.mkdir()
    cs.save(_model(), run / "model.safetensors", classes=CLASSES, input_shape=(3, SIDE, SIDE))
    rng = np.random.default_rng(0)
    folder = tmp_path / "test"
    truth, predicted = [], []
    for i in range(40):
        dominant = int(rng.integers(0, 3))  # channel index
        img = rng.uniform(0.0, 0.3, (3, SIDE, SIDE))
        img[dominant] += 0.6
        predicted.append(CLASSES.index(["red", "green", "blue"][dominant]))
        wrong = predicted[-1] == 2 or rng.random() < 0.3  # no image is labelled "red"
        label = int(rng.integers(0, 2)) if wrong else predicted[-1]
        truth.append(label)
        (folder / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        save_image(folder / CLASSES[label] / f"{i:02d}.png", img)
    return run, folder, np.array(truth), np.array(predicted)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str) -> dict[str, list[float]]:
    rows = {}
    for line in out.splitlines():
        found = re.match(r"^(\w[\w ]*?)\s+(-|[\d.]+%)\s+(-|[\d.]+%)\s+(-|[\d.]+%)\s+(\d+)$", line)
        if found:
            rows[found.group(1)] = [math.nan if v == "-" else float(v[:-1]) / 100
                                    for v in found.groups()[1:4]] + [int(found.group(5))]
    return rows


def test_numbers_match_sklearn_and_the_picture_is_written(capsys, tmp_path, setup):
    run, folder, truth, predicted = setup
    out_png = tmp_path / "pics" / "confusion.png"
    code, out, err = run_cli(capsys, "evaluate", str(run), str(folder), "--out", str(out_png))
    assert code == 0, err
    acc = skm.accuracy_score(truth, predicted)
    assert f"accuracy {acc * 100:.1f}% ({int(acc * 40)} of 40)" in out
    assert "40 images of 2 of the model's 3 classes, resized to 12x12x3" in out
    p, r, f, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=[0, 1, 2], average=None, zero_division=np.nan)
    rows = _rows(out)
    for k, name in enumerate(CLASSES):
        np.testing.assert_allclose(rows[name][:3], [p[k], r[k], f[k]], atol=5.1e-4,
                                   equal_nan=True)
        assert rows[name][3] == support[k]
    assert math.isnan(rows["red"][1])  # no red image in the folder: recall undefined, "-"
    with Image.open(out_png) as im:
        assert im.mode == "RGB" and im.width > 300 and im.height > 250
    assert f"wrote {out_png}" in out


def test_a_folder_with_some_classes_and_a_batch_size(capsys, tmp_path, setup):
    run, folder, truth, predicted = setup
    only = tmp_path / "only-green"
    (only / "green").mkdir(parents=True)
    for path in sorted((folder / "green").glob("*.png")):
        (only / "green" / path.name).write_bytes(path.read_bytes())
    code, out, _ = run_cli(capsys, "evaluate", str(run / "model.safetensors"), str(only),
                           "--out", str(tmp_path / "c.png"), "--batch-size", "3")
    assert code == 0
    mine = predicted[truth == 1]
    assert f"({int((mine == 1).sum())} of {len(mine)})" in out
    if not (mine == 0).any():  # blue neither occurs nor is predicted: left out
        assert "left out" in out and "\nblue " not in out


def test_mistakes_are_convscope_errors(capsys, tmp_path, setup):
    run, folder, _, _ = setup
    (tmp_path / "zoo" / "zebra").mkdir(parents=True)
    (tmp_path / "zoo" / "green").mkdir(parents=True)
    save_image(tmp_path / "zoo" / "zebra" / "z.png", np.zeros((3, 4, 4)))
    save_image(tmp_path / "zoo" / "green" / "g.png", np.zeros((3, 4, 4)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "hollow" / "red").mkdir(parents=True)
    cases = [
        ([str(run), str(tmp_path / "nowhere")], r"does not exist"),
        ([str(run), str(tmp_path / "zoo")],
         r"class folder 'zebra' is not among the model's 3 classes \(blue, green, red\)"),
        ([str(run), str(tmp_path / "empty")], r"no class subfolders"),
        ([str(run), str(tmp_path / "hollow")], r"class folder 'red' holds no images"),
        ([str(tmp_path / "no-run"), str(folder)], r"no-run"),
        ([str(run), str(folder), "--batch-size", "0"], r"--batch-size must be at least 1"),
    ]
    for argv, pattern in cases:
        code, _, err = run_cli(capsys, "evaluate", *argv, "--out", str(tmp_path / "x.png"))
        assert code == 2, (argv, err)
        assert err.startswith("convscope: error: ") and re.search(pattern, err), (argv, err)
        assert "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
