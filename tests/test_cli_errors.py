"""Every command of the CLI, given mistakes: exit code 2, ``convscope: error:``, no traceback.

Missing files, folders where files belong, unreadable images, empty image folders, a class
folder without images, malformed specs, bad ``--expect`` values and bad numbers. The table
must name every command in :data:`convscope.cli.COMMANDS`, so a new command cannot ship
without its mistakes being tried. One case runs through a real subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope.cli import COMMANDS, main
from convscope.data import save_image

GOOD_SPEC = "16x16x3 | conv(2, 3) | relu | flatten | linear(2)"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A folder of good and bad inputs, shared by every case (nothing writes into it)."""
    t = tmp_path_factory.mktemp("cli")
    save_image(t / "img.png", np.zeros((3, 16, 16)))
    (t / "text.png").write_text("not an image\n")
    (t / "cut.png").write_bytes((t / "img.png").read_bytes()[:40])
    (t / "empty").mkdir()
    (t / "loose").mkdir()
    save_image(t / "loose" / "a.png", np.zeros((3, 16, 16)))
    for cls in ("a", "b"):
        (t / "oneclass" / cls).mkdir(parents=True)
    save_image(t / "oneclass" / "a" / "1.png", np.zeros((3, 16, 16)))
    (t / "oneclass" / "b" / "notes.txt").write_text("no images here")
    (t / "badimage" / "a").mkdir(parents=True)
    (t / "badimage" / "a" / "x.png").write_text("not an image\n")
    (t / "short.safetensors").write_bytes(b"\x00" * 3)
    (t / "afile").write_text("a file, not a folder\n")
    (t / "garbage.onnx").write_bytes(b"\x08\x07\x12\x00garbage")
    cs.safetensors.save_file(t / "bare.safetensors", {"w": np.zeros(2, np.float32)})
    cs.save(cs.parse(GOOD_SPEC), t / "good.safetensors", classes=["x", "y"])
    return {k: str(v) for k, v in {
        "T": t, "img": t / "img.png", "text": t / "text.png", "cut": t / "cut.png",
        "empty": t / "empty", "loose": t / "loose", "oneclass": t / "oneclass",
        "badimage": t / "badimage", "short": t / "short.safetensors", "afile": t / "afile",
        "onnx": t / "garbage.onnx", "bare": t / "bare.safetensors",
        "good": t / "good.safetensors", "missing": t / "missing.png",
        "missing_model": t / "missing.safetensors"}.items()}


def _train(data: str, *extra: str, spec: str = GOOD_SPEC, out: str = "{T}/run") -> list[str]:
    return ["train", "--data", data, "--model", spec, "--out", out, "--quiet", *extra]


# command -> [(argv with {placeholders}, regex the error line must match)]
CASES: dict[str, list[tuple[list[str], str]]] = {
    "explain": [
        (["explain", "64x64x3 | conv(8, "], r"spec: expected a value, found the end of the spec"),
        (["explain", "64x64x3 | conv(8, 5) | frobnicate"], r"unknown layer 'frobnicate'"),
        (["explain", "64x64x3 | conv(8, 5, padding=-2)"], r"`padding` must be an int >= 0"),
        (["explain", "8x8x3 | relu", "--expect", "abc"], r"--expect: 'abc' is not a volume"),
        (["explain", "8x8x3 | relu", "--expect", "0x0x0"], r"'0x0x0' is not a volume"),
        (["explain", "8x8x3 | relu", "--expect", "8x8"], r"'8x8' is not a volume"),
        (["explain", "8x8x3 | relu", "--input", "axbxc"], r"unexpected character|needs three"),
        (["explain", "relu", "--input", "0x8x3"], r"the input volume's sizes must be positive"),
        (["explain", "{missing_model}"], r"no such file: .*missing\.safetensors"),
        (["explain", "{short}"], r"short\.safetensors.*too short"),
        (["explain", "{empty}"], r"empty holds no model\.safetensors"),
        (["explain", "{bare}"], r"bare\.safetensors is a safetensors file but not a convscope"),
        (["explain", "8x8x3 | conv(8, 99)"], r"the 99x99 kernel is larger than the padded input"),
        (["explain"], r"the following arguments are required: MODEL"),
    ],
    "apply": [
        (["apply", "{missing}"], r"missing\.png': the file does not exist"),
        (["apply", "{empty}"], r"empty': the path is a directory"),
        (["apply", "{text}"], r"text\.png': the file is not a readable PNG"),
        (["apply", "{cut}"], r"cut\.png'"),
        (["apply", "{img}", "--size", "x"], r"argument --size: invalid int value: 'x'"),
        (["apply", "{img}", "--size", "0"], r"size must be at least 1 pixel"),
        (["apply", "{img}", "--kernels", "nope"], r"unknown kernel 'nope'"),
        (["apply", "{img}", "--padding", "wide"], r"--padding: 'wide' is not a padding"),
        (["apply", "{img}", "--spec", "conv(2, 99)"], r"99x99 kernel is larger"),
        (["apply", "{img}", "--seed", "-3", "--spec", "conv(2, 3)"], r"seed=-3"),
        (["apply", "{img}", "--out", "{afile}"], r"cannot create .*afile: something of that name "
                                                 r"already exists \(a folder is needed there\)"),
    ],
    "demo": [
        (["demo", "--image", "{missing}"], r"missing\.png': the file does not exist"),
        (["demo", "--image", "{text}"], r"text\.png': the file is not a readable PNG"),
        (["demo", "--image", "{empty}"], r"empty': the path is a directory"),
        (["demo", "--out", "{afile}"], r"cannot create .*afile: .*a folder is needed there"),
        (["demo", "--frobnicate"], r"unrecognized arguments: --frobnicate"),
    ],
    "train": [
        (_train("{empty}"), r"empty'\): the folder has no class subfolders"),
        (_train("{loose}"), r"no class subfolders; 1 images lie directly in it"),
        (_train("{oneclass}"), r"class folder 'b' holds no images"),
        (_train("{badimage}"), r"x\.png'.*not a readable PNG"),
        (_train("{T}/nope"), r"'.*nope' is neither a built-in dataset nor an existing folder"),
        (_train("{afile}"), r"the path is a file, not a folder"),
        (_train("shapes", "--epochs", "0"), r"epochs must be a positive int.*epochs=0"),
        (_train("shapes", "--epochs", "x"), r"argument --epochs: invalid int value: 'x'"),
        (_train("shapes", "--epochs", "-1"), r"epochs=-1"),
        (_train("shapes", "--batch-size", "0"), r"batch_size must be a positive int"),
        (_train("shapes", "--lr", "nan"), r"lr must be a non-negative number.*lr=nan"),
        (_train("shapes", "--lr", "fast"), r"argument --lr: invalid float value: 'fast'"),
        (_train("shapes", "--seed", "-1"), r"seed=-1"),
        (_train("shapes", "--optimizer", "rmsprop"), r"argument --optimizer: invalid choice"),
        (_train("shapes", spec="flatten | linear(2)"), r"linear needs the input volume"),
        (_train("shapes", spec="16x16x3 | conv("), r"spec: expected a value"),
        (_train("shapes", spec="16x16x3 | conv(2, 3) | linear(2)"), r"put flatten before it"),
        (_train("shapes", spec="8x8x3 | flatten | linear(2)"), r"size must be at least 16"),
        (_train("digits", spec="8x8x1 | flatten | linear(10)", out="{afile}"),
         r"cannot create the run folder .*afile"),
        (["train", "--data", "shapes"], r"the following arguments are required: --model, --out"),
    ],
    "predict": [
        (["predict", "{missing_model}", "{img}"], r"no such file: .*missing\.safetensors"),
        (["predict", "{short}", "{img}"], r"short\.safetensors.*too short"),
        (["predict", "{empty}", "{img}"], r"holds no model\.safetensors"),
        (["predict", "{img}", "{img}"], r"img\.png'.*header claims"),
        (["predict", "{bare}", "{img}"], r"not a convscope model"),
        (["predict", "{good}", "{text}"], r"text\.png': the file is not a readable PNG"),
        (["predict", "{good}", "{cut}"], r"cut\.png'"),
        (["predict", "{good}", "{empty}"], r"the folder '.*empty' holds no image files"),
        (["predict", "{good}", "{missing}"], r"missing\.png': the file does not exist"),
        (["predict", "{good}", "{img}", "--top", "x"], r"argument --top: invalid int value"),
        (["predict", "{good}"], r"the following arguments are required: PATHS"),
    ],
    "export": [
        (["export", "{missing_model}", "{T}/x.onnx"], r"no such file: .*missing\.safetensors"),
        (["export", "{short}", "{T}/x.onnx"], r"short\.safetensors.*too short"),
        (["export", "{bare}", "{T}/x.onnx"], r"not a convscope model"),
        (["export", "{good}", "{empty}"], r"export_onnx\('.*empty'\): the path is a directory"),
        (["export", "{good}", "{T}/x.onnx", "--opset", "x"], r"argument --opset: invalid int"),
        (["export", "{good}", "{T}/x.onnx", "--opset", "5"], r"opset must be an int from 13"),
        (["export", "{good}", "{T}/no/such/folder/x.onnx"],
         r"the folder to write into does not exist"),
    ],
    "import": [
        (["import", "{missing}", "{T}/x.safetensors", "--spec", GOOD_SPEC], r"missing\.png"),
        (["import", "{text}", "{T}/x.safetensors"], r"a weights file needs the architecture"),
        (["import", "{onnx}", "{T}/x.safetensors"], r"garbage\.onnx"),
        (["import", "{onnx}", "{T}/x.safetensors", "--spec", GOOD_SPEC], r"leave out --spec"),
        (["import", "{good}", "{T}/x.safetensors", "--spec", "16x16x3 | conv("],
         r"spec: expected a value"),
        (["import", "{bare}", "{T}/x.safetensors", "--spec", GOOD_SPEC],
         r"the tensor names do not match"),
        (["import", "{text}", "{T}/x.safetensors", "--spec", GOOD_SPEC], r"text\.png"),
        (["import", "{good}", "{T}/x.safetensors", "--layout", "jax"], r"invalid choice: 'jax'"),
    ],
}

# The picture commands share MODEL IMAGE: the same model and image mistakes for each.
PICTURES = {"show": ["--layer", "0"], "kernels": [], "animate": [],
            "why": ["--layer", "0", "--at", "0,1,1"],
            "receptive": ["--layer", "0", "--at", "0,1,1"],
            "saliency": [], "report": []}
for _name, _extra in PICTURES.items():
    _image = [] if _name == "kernels" else ["{img}"]
    _model, _args = (["{img}", "{good}"], []) if _name == "animate" else (["{good}"], _image)
    if _name == "animate":
        CASES[_name] = [
            (["animate", "{missing}"], r"missing\.png': the file does not exist"),
            (["animate", "{text}"], r"text\.png': the file is not a readable PNG"),
            (["animate", "{img}", "conv(1, 99)"], r"99x99 kernel is larger"),
            (["animate", "{img}", "conv(1, "], r"spec: expected a value"),
            (["animate", "{img}", "--frames", "x"], r"argument --frames: invalid int value"),
            (["animate", "{img}", "--out", "{empty}"], r"empty is a folder; a file is needed"),
        ]
        continue
    CASES[_name] = [
        ([_name, "{missing_model}", *_image, *_extra], r"missing\.safetensors"),
        ([_name, "{short}", *_image, *_extra], r"short\.safetensors.*too short"),
        ([_name, "{good}", *(["{text}"] if _image else []), *_extra],
         r"text\.png': the file is not a readable PNG" if _image else r"."),
        ([_name, "64x64x3 | conv(8, ", *_image, *_extra], r"spec: expected a value"),
        ([_name, "{good}", *_image, *_extra, "--out", "{empty}"],
         r"empty is a folder; a file is needed here"),
    ]
CASES["kernels"][2] = (["kernels", "{good}", "--layer", "9"], r"--layer: there is no layer 9")
CASES["show"].append((["show", "{good}", "{img}", "--layer", "99"], r"there is no layer 99"))
CASES["why"].append((["why", "{good}", "{img}", "--layer", "0", "--at", "x"],
                     r"--at: 'x' is not a position"))
CASES["why"].append((["why", "{good}", "{img}", "--layer", "0", "--at", "0,99,99"],
                     r"row 99 is out of range: layer 0 \(Conv2d\) output is 14x14x2"))
CASES["receptive"].append((["receptive", "{good}", "{img}", "--layer", "0", "--at", "5,1,1"],
                           r"channel 5 is out of range"))
CASES["saliency"].append((["saliency", "{good}", "{img}", "--target", "zebra"],
                          r"there is no class 'zebra'"))
CASES["evaluate"] = [
    (["evaluate", "{missing_model}", "{oneclass}"], r"no such file: .*missing\.safetensors"),
    (["evaluate", "{bare}", "{oneclass}"], r"not a convscope model"),
    (["evaluate", "{good}", "{T}/nope"], r"nope'\): the folder does not exist"),
    (["evaluate", "{good}", "{empty}"], r"empty'\): the folder has no class subfolders"),
    (["evaluate", "{good}", "{loose}"], r"no class subfolders"),
    (["evaluate", "{good}"], r"the following arguments are required: FOLDER"),
]
CASES["curves"] = [
    (["curves", "{missing}"], r"no metrics file at .*missing\.png"),
    (["curves", "{empty}"], r"no metrics file at .*empty/metrics\.json"),
    (["curves", "{text}"], r"text\.png is not valid JSON"),
    (["curves", "{afile}"], r"afile is not valid JSON"),
]
CASES["report"].append((["report", "{good}", "{img}", "--frames", "x"], r"--frames"))
CASES["serve"] = [  # each mistake is found before the server starts
    (["serve", "{missing_model}"], r"no such file: .*missing\.safetensors"),
    (["serve", "{good}", "{text}", "--no-open"], r"text\.png': the file is not a readable PNG"),
    (["serve", "{good}", "{missing}", "--no-open"], r"missing\.png': the file does not exist"),
    (["serve", "16x16x3 | conv(", "--no-open"], r"spec: expected a value"),
    (["serve", "{good}", "--host", "bad host!", "--no-open"], r"--host: 'bad host!' is not an"),
    (["serve", "{good}", "--host", "203.0.113.7", "--port", "0", "--no-open"],
     r"--host: cannot listen on 203\.0\.113\.7"),
    (["serve", "{good}", "--port", "70000", "--no-open"], r"--port: 70000 is not a port number"),
    (["serve", "{good}", "--port", "x"], r"argument --port: invalid int value"),
    (["serve"], r"the following arguments are required: MODEL"),
]


_OUT = ["--out", "{T}/o.csv"]
CASES["predict"] += [  # jobs over folders: each mistake is found before any image is read
    (["predict", "{good}", "{T}/nope/"], r"no such file or folder: .*nope"),
    (["predict", "{good}", "{T}/zz*.png", *_OUT], r"the pattern '.*zz\*\.png' matches no image"),
    (["predict", "{good}", "{loose}", "--input", "32x32x3", *_OUT],
     r"the model does not run on a 32x32x3 input volume"),
    (["predict", "{good}", "{loose}", "--top", "5"], r"top must be from 1 to .* classes, 2"),
    (["predict", "{good}", "{loose}", "--out", "{T}/o.txt"], r"must end \.csv or \.parquet"),
    (["predict", "{good}", "{loose}", "--out", "{afile}/o.csv"], r"afile, does not exist"),
    (["predict", "{good}", "{loose}", "--out", "{empty}"], r"empty is a folder"),
    (["predict", "{good}", "{loose}", "--resume"], r"--resume needs --out"),
    (["predict", "{good}", "{loose}", "--workers", "2"], r"--workers needs --out"),
    (["predict", "{good}", "{loose}", "--workers", "0", *_OUT], r"--workers must be a positive"),
    (["predict", "{good}", "{loose}", "--workers", "2", "--scheduler", "tcp://h:1"],
     r"argument --scheduler: not allowed with argument --workers"),
    (["predict", "{good}", "{loose}", "--batch-size", "0", *_OUT],
     r"--batch-size must be a positive int"),
]
_FEAT = ["--out", "{T}/f.csv"]
CASES["features"] = [
    (["features", "{good}", "{loose}", *_FEAT], r"the following arguments are required: --layer"),
    (["features", "{good}", "{loose}", "--layer", "0"], r"arguments are required: --out"),
    (["features", "{good}", "{loose}", "--layer", "9", *_FEAT],
     r"there is no node 9: the model has 4 \(0 to 3\)"),
    (["features", "{good}", "{loose}", "--layer", "nope", *_FEAT], r"the model has no layer"),
    (["features", "{missing_model}", "{loose}", "--layer", "0", *_FEAT], r"no such file: "),
    (["features", "frobnet", "{loose}", "--layer", "0", *_FEAT], r"no such file: frobnet"),
    (["features", "resnet18", "{loose}", "--layer", "layer1", *_FEAT],
     r"layer1\.1\.relu#2 \(ReLU\) gives 200704 values per image, more than 65536"),
    (["features", "{good}", "{empty}", "--layer", "0", *_FEAT], r"holds no image files"),
    (["features", "{good}", "{T}/nope", "--layer", "0", *_FEAT], r"no such file or folder"),
    (["features", "{good}", "{loose}", "--layer", "0", "--input", "8x8x3", *_FEAT],
     r"does not run on a 8x8x3 input volume.*Linear"),
    (["features", "{good}", "{loose}", "--layer", "0", "--out", "{T}/f.json"],
     r"must end \.csv or \.parquet"),
    (["features", "{good}", "{loose}", "--layer", "0", "--chunk-size", "0", *_FEAT],
     r"--chunk-size must be a positive int"),
]


def _cases() -> list:
    return [pytest.param(command, argv, pattern, id=f"{command}-{i}")
            for command, cases in CASES.items() for i, (argv, pattern) in enumerate(cases)]


def test_every_command_has_its_mistakes_tried():
    missing = [c for c in COMMANDS if len(CASES.get(c, [])) < 4]
    assert not missing, f"add CLI mistake cases for {missing}"


@pytest.mark.parametrize(("command", "argv", "pattern"), _cases())
def test_mistakes_exit_2_with_one_error_line_and_no_traceback(capsys, files, command, argv,
                                                              pattern):
    if command not in COMMANDS:
        pytest.skip(f"{command} is not a command (yet)")
    code = main([a.format(**files) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err + out
    errors = [line for line in err.splitlines() if line.startswith("convscope: error: ")]
    assert len(errors) == 1, err
    assert err.rstrip("\n").endswith(errors[0]) or "\n    " in err, err  # error last (+ caret)
    import re

    assert re.search(pattern, err), (pattern, err)
    assert not Path(files["T"], "run").exists(), "a refused run left a folder behind"


def test_a_real_process_exits_2_without_a_traceback(files):
    """Through the interpreter, as a user runs it: stderr holds one error line and no trace."""
    argv = [sys.executable, "-m", "convscope.cli", *_train(files["oneclass"])]
    done = subprocess.run([a.format(**files) for a in argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("convscope: error: ImageFolder(")
    assert "class folder 'b' holds no images" in done.stderr
