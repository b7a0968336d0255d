"""The HTML report: self-contained (every picture embedded), and it renders in a real browser."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope.cli import main
from convscope.data import save_image
from convscope.viz.report import report

SPEC = ("24x24x3 | conv(6, 3, padding=1) | relu | maxpool(2) | conv(8, 3, padding=1) | relu | "
        "flatten | linear(3)")


def _image() -> np.ndarray:
    from convscope.demo import default_image

    return default_image(24)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[str, object]:
    folder = tmp_path_factory.mktemp("report")
    run = folder / "run"
    run.mkdir()
    model = cs.parse(SPEC, seed=0)
    cs.save(model, run / "model.safetensors", classes=["sun", "sea", "sky"])
    rows = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 1 - 0.3 / e,
             "val_loss": 1.1 / e, "val_accuracy": 1 - 0.4 / e, "seconds": 0.1} for e in (1, 2, 3)]
    (run / "metrics.json").write_text(json.dumps({"epochs": rows}))
    path = folder / "report.html"
    return report(run, _image(), path, max_frames=12), path


def _uris(text: str) -> list[str]:
    return re.findall(r'src="([^"]+)"', text)


def test_report_is_self_contained(page):
    text, path = page
    assert path.read_text(encoding="utf-8") == text
    uris = _uris(text)
    assert len(uris) >= 12
    assert all(u.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for u in uris)
    assert not re.search(r"(?:src|href)=\"(?:https?:|//|file:)", text)  # nothing to fetch
    assert "<script" not in text
    for uri in uris:  # every embedded picture decodes and is not empty
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
            assert min(im.size) >= 40


def test_report_has_every_section(page):
    text, _ = page
    for heading in ("Layer by layer", "Training curves", "The kernel sliding",
                    "Why is one value what it is", "Every layer", "Receptive field",
                    "saliency and Grad-CAM"):
        assert heading in text
    for index in range(7):  # one section per layer, numbered as explain numbers them
        assert f'id="layer-{index}"' in text
    assert "8 kernels of 3x3x6" in text and "sum of 27 products" in text
    assert text.count("data:image/gif") == 1


def test_report_of_an_untrained_spec_says_so(tmp_path):
    text = report("12x12x1 | conv(2, 3) | relu", np.zeros((1, 12, 12)), tmp_path / "r.html",
                  max_frames=6)
    assert "untrained model" in text and "saliency" not in text.lower()


def test_report_command(tmp_path, capsys):
    save_image(tmp_path / "pic.png", _image())
    out = tmp_path / "out.html"
    assert main(["report", SPEC, str(tmp_path / "pic.png"), "--out", str(out), "--frames",
                 "6"]) == 0
    assert "self-contained" in capsys.readouterr().out and out.stat().st_size > 50_000


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                                             "chromium); the report's browser check is skipped")
def test_report_renders_in_a_headless_browser(page, tmp_path):
    _, path = page
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1200,2000", path.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[:2] == (2000, 1200)
    ink = (pixels < 235).any(axis=2)
    assert ink.mean() > 0.05  # text, tables and pictures, not a blank page
    colours = np.unique(pixels[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 200  # the embedded pictures were decoded and drawn
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    assert red.sum() > 500  # the picture's red disc, drawn by the browser
