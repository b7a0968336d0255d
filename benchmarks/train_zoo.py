"""`convscope train --data FOLDER --model resnet18` against PyTorch with the same recipe.

The folder is the generated ``shapes`` data written out as PNG files, one subfolder per
class (an ImageFolder, read back through the same decoder as a folder of photos). Both
libraries get the same images, the same seeded 80/10/10 split, the same initial weights
(convscope's, loaded into torchvision's ResNet-18 written out in tests/torchvision_defs.py)
and the same recipe: Adam, lr 2e-3 reached by a linear warm-up over the first epoch,
batch 16, the same epochs, batch norm in train mode while training and eval mode for the
test. Each library runs in its own process with the same thread count.

    python benchmarks/train_zoo.py --epochs 5             # ResNet-18 at 64x64x3
    python benchmarks/train_zoo.py --epochs 5 --model mobilenet_v2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LR, BATCH, SEED, SIZE = 2e-3, 16, 0, 64
HERE = Path(__file__).resolve().parent


def write_folder(root: Path, n: int) -> None:
    """The shapes data as PNG files in class subfolders."""
    import convscope as cs

    ds = cs.data.load_dataset("shapes", seed=SEED)
    for k in range(min(n, len(ds))):
        folder = root / ds.classes[int(ds.labels[k])]
        folder.mkdir(parents=True, exist_ok=True)
        cs.data.save_image(folder / f"{k:05d}.png", ds.images[k])


def run_convscope(folder: str, model: str, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "convscope.cli", "train", "--data", folder, "--model",
               model, "--input", f"{SIZE}x{SIZE}x3", "--epochs", str(epochs), "--seed",
               str(SEED), "--out", out, "--quiet"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    return {"seconds": seconds, "test_accuracy": metrics["test_accuracy"]}


def run_torch(folder: str, model_name: str, epochs: int) -> dict:
    import numpy as np
    import torch

    import convscope as cs

    sys.path.insert(0, str(HERE.parent / "tests"))
    import torchvision_defs as tv

    ds = cs.data.load_dataset(folder, size=(SIZE, SIZE), channels=3, seed=SEED)
    train, _, test = ds.split(seed=SEED)
    ours = cs.models.get(model_name, num_classes=len(ds.classes), seed=SEED)
    model = getattr(tv, model_name)(num_classes=len(ds.classes))
    model.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in ours.state_dict().items()})
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = torch.tensor(train.images), torch.tensor(train.labels)
    steps = -(-len(x) // BATCH)
    t = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.tensor(np.random.default_rng([SEED, epoch]).permutation(len(x)))
        for i in range(0, len(x), BATCH):
            step += 1
            for group in opt.param_groups:
                group["lr"] = LR * min(1.0, step / steps)
            idx = order[i: i + BATCH]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(test.images)).argmax(1).numpy()
    return {"seconds": seconds, "test_accuracy": float((pred == test.labels).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", nargs=4, metavar=("LIB", "FOLDER", "MODEL", "EPOCHS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        lib, folder, model, epochs = args.worker
        if lib == "torch":
            import torch

            torch.set_num_threads(args.threads)
        fn = run_torch if lib == "torch" else run_convscope
        print(json.dumps(fn(folder, model, int(epochs))))
        return
    env = dict(os.environ, **{v: str(args.threads) for v in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        write_folder(folder, args.images)
        for lib in ("convscope", "torch"):
            out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                  "--worker", lib, str(folder), args.model, str(args.epochs)],
                                 env=env, capture_output=True, text=True)
            if out.returncode:
                print(f"{lib}: failed\n{out.stderr[-2000:]}")
                continue
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{args.model} on a folder of {args.images} PNGs, {args.epochs} epochs  "
                  f"{lib:9}  test accuracy {res['test_accuracy'] * 100:5.1f}%  "
                  f"{res['seconds']:7.1f} s", flush=True)


if __name__ == "__main__":
    main()
