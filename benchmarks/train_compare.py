"""Train the same architectures with convscope and with PyTorch: accuracy and time side by side.

Same data (the same seeded 80/10/10 split), same architecture, same recipe (Adam, lr 2e-3
reached by a linear warm-up over the first epoch, batch 16, same epochs), each library in its
own process with the same thread count. PyTorch is optional: without it only convscope runs.

    python benchmarks/train_compare.py              # digits (15 epochs) and shapes (20 epochs)
    python benchmarks/train_compare.py --quick      # 3 epochs each
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

TASKS = {
    "digits": (
        "8x8x1 | conv(16, 3, padding=1) | relu | maxpool(2) | conv(32, 3, padding=1) | relu"
        " | maxpool(2) | flatten | linear(10)",
        15,
    ),
    "shapes": (
        "64x64x3 | conv(10, 3) | relu | conv(10, 3) | relu | maxpool(2) | conv(10, 3) | relu"
        " | conv(10, 3) | relu | maxpool(2) | flatten | linear(10)",
        20,
    ),
}
LR, BATCH, SEED = 2e-3, 16, 0


def run_convscope(task: str, epochs: int) -> dict:
    import convscope as cs

    spec, _ = TASKS[task]
    ds = cs.data.load_dataset(task, seed=SEED)
    model = cs.parse(spec, seed=SEED)
    t = time.perf_counter()
    history = cs.fit(model, ds, epochs=epochs, batch_size=BATCH, lr=LR, seed=SEED, progress=None)
    return {"seconds": time.perf_counter() - t, "test_accuracy": history.test_accuracy}


def run_torch(task: str, epochs: int) -> dict:
    import numpy as np
    import torch

    import convscope as cs

    torch.manual_seed(SEED)
    spec, _ = TASKS[task]
    ds = cs.data.load_dataset(task, seed=SEED)
    train, _, test = ds.split(seed=SEED)
    ours = cs.parse(spec, seed=SEED)
    layers = []
    for m in ours:
        name = type(m).__name__
        if name == "Conv2d":
            layers.append(
                torch.nn.Conv2d(
                    m.in_channels, m.out_channels, m.kernel_size, padding=m.padding[0][0]
                )
            )
        elif name == "ReLU":
            layers.append(torch.nn.ReLU())
        elif name == "MaxPool2d":
            layers.append(torch.nn.MaxPool2d(m.kernel_size))
        elif name == "Flatten":
            layers.append(torch.nn.Flatten())
        elif name == "Linear":
            layers.append(torch.nn.Linear(m.in_features, m.out_features))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = torch.tensor(train.images), torch.tensor(train.labels)
    steps = -(-len(x) // BATCH)
    t = time.perf_counter()
    step = 0
    for epoch in range(1, epochs + 1):
        order = torch.tensor(np.random.default_rng([SEED, epoch]).permutation(len(x)))
        for i in range(0, len(x), BATCH):
            step += 1
            for group in opt.param_groups:
                group["lr"] = LR * min(1.0, step / steps)
            idx = order[i : i + BATCH]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t
    with torch.no_grad():
        pred = model(torch.tensor(test.images)).argmax(1).numpy()
    return {"seconds": seconds, "test_accuracy": float((pred == test.labels).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", nargs=3, metavar=("LIB", "TASK", "EPOCHS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        lib, task, epochs = args.worker
        if lib == "torch":
            import torch

            torch.set_num_threads(args.threads)
        fn = run_torch if lib == "torch" else run_convscope
        print(json.dumps(fn(task, int(epochs))))
        return
    env = dict(
        os.environ,
        **{
            v: str(args.threads)
            for v in (
                "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS",
            )
        },
    )
    try:
        import torch  # noqa: F401

        libs = ["convscope", "torch"]
    except ImportError:
        libs = ["convscope"]
    for task, (_, epochs) in TASKS.items():
        epochs = 3 if args.quick else epochs
        for lib in libs:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--threads",
                    str(args.threads),
                    "--worker",
                    lib,
                    task,
                    str(epochs),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{task:7} {epochs:3d} epochs  {lib:9}  "
                f"test accuracy {res['test_accuracy'] * 100:5.1f}%  {res['seconds']:6.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
