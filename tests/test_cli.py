"""The convscope command, run in-process through main() and once through the entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope import filters, viz
from convscope.cli import COMMANDS, main
from convscope.data import save_image

SLIDES = "64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)"
SLIP = "64x64x3 | conv(8, 5, padding=1)"


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def edge_image(tmp_path) -> Path:
    """32x48 picture: dark left half, bright right half (a vertical edge at column 24)."""
    img = np.full((3, 32, 48), 0.1, np.float32)
    img[:, :, 24:] = 0.9
    path = tmp_path / "edge.png"
    save_image(path, img)
    return path


# ----------------------------------------------------------------------------- explain
def test_explain_prints_the_table_and_the_narration(capsys):
    code, out, err = run(capsys, "explain", SLIDES)
    assert code == 0 and err == ""
    assert "8 kernels of 5x5x3, padding 2, stride 1   64x64x8" in out
    assert "16 kernels of 5x5x8, padding 2, stride 1  64x64x16" in out
    assert "(64 + 2*2 - 5)/1 + 1 = 64" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_explain_input_option(capsys):
    code, out, _ = run(capsys, "explain", "conv(8, 5, padding=2) | maxpool(2)", "--input",
                       "128x128x3")
    assert code == 0 and "64x64x8" in out and "input volume 128x128x3" in out


@pytest.mark.parametrize("expect, code", [("62x62x8", 0), ("64x64x8", 1)])
def test_expect_exit_codes(capsys, expect, code):
    got, out, err = run(capsys, "explain", SLIP, "--expect", expect)
    assert got == code
    if code == 0:
        assert "--expect 62x62x8: right" in out and err == ""
    else:
        assert err == ("convscope: expect: the output is 62x62x8, not 64x64x8: layer 0 gives "
                       "(64 + 2*1 - 5)/1 + 1 = 62; padding=2 at layer 0 gives 64x64x8\n")


def test_explain_a_saved_model_file(capsys, tmp_path):
    path = tmp_path / "model.safetensors"
    cs.save(cs.parse("16x16x1 | conv(4, 3, padding=1) | relu | flatten | linear(3)"), path)
    code, out, _ = run(capsys, "explain", str(path))
    assert code == 0 and "4 kernels of 3x3x1, padding 1" in out and "linear 1024 -> 3" in out
    code, _, err = run(capsys, "explain", str(tmp_path / "missing.safetensors"))
    assert code == 2 and err.startswith("convscope: error:") and "missing.safetensors" in err


# ----------------------------------------------------------------------------- mistakes
def _mistakes(tmp_path: Path, image: Path) -> list[tuple[list[str], str]]:
    return [
        (["explain", "64x64x3 | covn(8, 5)"], r"unknown layer 'covn'. Fix: did you mean 'conv'"),
        (["explain", "conv(8, 5)"], "conv needs the input volume"),
        (["explain", "64x64x3 | conv(8, 70)"], "the 70x70 kernel is larger than the padded"),
        (["explain", SLIP, "--expect", "64x64"], "--expect: '64x64' is not a volume"),
        (["explain", SLIP, "--input", "64x64"], "the input volume needs three numbers"),
        (["explain"], "explain: the following arguments are required: MODEL"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["apply", str(tmp_path / "missing.png")], "missing.png"),
        (["apply", str(tmp_path)], str(tmp_path)),
        (["apply", str(image), "--kernels", "sobelx"], "unknown kernel 'sobelx'. Fix: did "
                                                        "you mean 'sobel-x'"),
        (["apply", str(image), "--padding", "wide"], "--padding: 'wide' is not a padding"),
        (["apply", str(image), "--spec", "flatten | linear(3)"], "ends with 3 flat values"),
        (["apply", str(image), "--spec", "32x48x3 | relu"], "the input volume comes from"),
        (["apply", str(image), "--grey", "--kernels", "red"], "needs an RGB image"),
        (["apply", str(image), "--size", "0"], "load_image"),
        (["demo", "--image", str(tmp_path / "nope.jpg")], "nope.jpg"),
    ]


def test_user_mistakes_exit_2_without_a_traceback(capsys, tmp_path, edge_image):
    for argv, text in _mistakes(tmp_path, edge_image):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert "convscope: error: " in err and text in err, (argv, err)
        assert "Traceback" not in err


def test_errors_from_the_filesystem(capsys, tmp_path, edge_image, monkeypatch):
    import convscope.cli.cmd_apply as cmd_apply

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "maps/00-sobel-x.png")

    monkeypatch.setattr("convscope.demo.write_maps", denied)
    code, _, err = run(capsys, "apply", str(edge_image), "--out", str(tmp_path / "m"))
    assert (code, err) == (2, "convscope: error: permission denied: maps/00-sobel-x.png\n")
    assert cmd_apply.DEFAULT_KERNELS.startswith("sobel-x")


def test_no_command_prints_help(capsys):
    code, out, err = run(capsys)
    assert code == 2 and "examples:" in err and "convscope demo" in err


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"convscope {cs.__version__}"
    for command in COMMANDS:
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "examples:" in out and f"convscope {command}" in out


# ----------------------------------------------------------------------------- apply
def test_apply_writes_maps_whose_pixels_follow_the_values(capsys, tmp_path, edge_image):
    out_dir = tmp_path / "maps"
    code, out, err = run(capsys, "apply", str(edge_image), "--kernels", "sobel-x,sobel-y",
                         "--padding", "valid", "--out", str(out_dir))
    assert code == 0, err
    assert "Image " in out and "32x48x3" in out and "2 kernels of 3x3x3, no padding" in out
    assert "(48 - 3)/1 + 1 = 46" in out and "30x46x2" in out
    paths = sorted(out_dir.iterdir())
    assert [p.name for p in paths] == ["0-sobel-x.png", "1-sobel-y.png", "grid.png"]
    for p in paths:
        assert str(p) in out
    sobel_x = png(out_dir / "0-sobel-x.png").astype(int)
    assert sobel_x.shape == (30, 46, 3)
    # brightness rises to the right at the edge: strongly red there, white elsewhere
    redness = (sobel_x[:, :, 0] - sobel_x[:, :, 2]).mean(axis=0)
    assert set(np.argsort(redness)[-2:]) == {22, 23}
    assert np.all(sobel_x[:, [22, 23]] == viz.DIVERGING[-1].astype(int))
    assert np.all(np.delete(sobel_x, [22, 23], axis=1) == 255)
    # the horizontal-edge detector sees nothing: all white
    assert np.all(png(out_dir / "1-sobel-y.png") == 255)
    grid = png(out_dir / "grid.png")
    assert grid.ndim == 3 and grid.shape[1] >= 2 * 46


def test_apply_maps_equal_the_computed_convolution(capsys, tmp_path):
    rng = np.random.default_rng(0)
    img = rng.random((3, 20, 24)).astype(np.float32)
    save_image(tmp_path / "noise.png", img)
    code, _, _ = run(capsys, "apply", str(tmp_path / "noise.png"), "--kernels",
                     "laplacian,gaussian", "--out", str(tmp_path / "m"))
    assert code == 0
    loaded = cs.data.load_image(tmp_path / "noise.png")
    weight, _ = filters.bank("laplacian,gaussian", 3)
    maps = cs.functional.conv2d(loaded, weight, padding="same").numpy()
    for i, name in enumerate(["laplacian", "gaussian"]):
        pixels = png(tmp_path / "m" / f"{i}-{name}.png")
        assert pixels.shape == (20, 24, 3)
        np.testing.assert_array_equal(pixels, viz.diverging(maps[i]))


def test_apply_with_a_spec_after_the_kernels(capsys, tmp_path, edge_image):
    code, out, _ = run(capsys, "apply", str(edge_image), "--kernels", "sobel-x,red", "--spec",
                       "relu | maxpool(2)", "--out", str(tmp_path / "m"))
    assert code == 0 and "16x24x2" in out and "max pool 2x2" in out
    assert png(tmp_path / "m" / "0-sobel-x.png").shape == (16, 24, 3)
    code, out, _ = run(capsys, "apply", str(edge_image), "--spec", "conv(4, 3) | relu",
                       "--out", str(tmp_path / "r"))
    assert code == 0 and "4 kernels of 3x3x3" in out
    assert sorted(p.name for p in (tmp_path / "r").iterdir())[0] == "0-map-0.png"


# ----------------------------------------------------------------------------- entry point
def test_the_installed_entry_point(tmp_path):
    exe = Path(sys.executable).parent / "convscope"
    cmd = [str(exe)] if exe.exists() else (
        [shutil.which("convscope")] if shutil.which("convscope") else
        [sys.executable, "-m", "convscope.cli"])
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    ok = subprocess.run(cmd + ["explain", SLIP, "--expect", "64x64x8"], capture_output=True,
                        text=True, timeout=120, env=env)
    assert ok.returncode == 1, ok.stderr
    assert "62x62x8" in ok.stdout and "padding=2 at layer 0 gives 64x64x8" in ok.stderr
    bad = subprocess.run(cmd + ["explain", "64x64x3 | conv(8, __import__('os'))"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("convscope: error: spec:")
    assert "Traceback" not in bad.stderr and "^^^^^^^^^^" in bad.stderr
