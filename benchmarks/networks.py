"""Whole networks against PyTorch CPU: ResNet-18 and MobileNetV2 inference, a ResNet-18
training step, and the memory of that step.

Each library runs alone in its own worker process with two threads (``benchmarks/run.py``'s
method); the libraries alternate round by round; a worker reports the median of its
repeats; the ratio convscope / PyTorch (the faster of NCHW and channels_last) is taken per
round and the median of those ratios is reported. PyTorch runs torchvision's
architectures written out in ``tests/torchvision_defs.py`` with convscope's weights loaded,
so both compute the same function.

Rows (the issue's targets):

- ResNet-18 inference, batch 8, 224x224x3, eval, no gradients
- MobileNetV2 inference, batch 8, 224x224x3, eval, no gradients
- ResNet-18 training step, batch 32, 64x64x3: forward, cross-entropy, backward, SGD with
  momentum 0.9
- peak resident memory of a process doing those training steps, and the memory the steps
  add once the library's code and the model are loaded

Usage::

    python benchmarks/networks.py            # 5 rounds
    python benchmarks/networks.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREADS = "2"
INFER_BATCH, INFER_SIZE = 8, 224
TRAIN_BATCH, TRAIN_SIZE = 32, 64


def _median(values: list[float]) -> float:
    values = sorted(v for v in values if v is not None and not math.isnan(v))
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _timed(fn, repeats: int) -> float:
    from worker import median_time  # benchmarks/ is the script's folder: on sys.path

    return median_time(fn, repeats, warmup=2)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- workers
def convscope_job(job: str, repeats: int) -> dict:
    import numpy as np

    import convscope as cs

    rng = np.random.default_rng(0)
    if job in ("resnet18", "mobilenet_v2"):
        model = cs.models.get(job, seed=0).eval()
        x = rng.random((INFER_BATCH, 3, INFER_SIZE, INFER_SIZE), dtype=np.float32)

        def infer():
            with cs.no_grad():
                model(x)

        return {"seconds": _timed(infer, repeats)}
    model = cs.models.resnet18(num_classes=10, seed=0)
    model.train()
    opt = cs.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = rng.random((TRAIN_BATCH, 3, TRAIN_SIZE, TRAIN_SIZE), dtype=np.float32)
    y = rng.integers(0, 10, TRAIN_BATCH)
    base = _rss()

    def step():
        loss = cs.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    seconds = _timed(step, repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "peak": peak, "added": peak - base}


def torch_job(job: str, repeats: int) -> dict:
    import numpy as np
    import torch

    import convscope as cs

    torch.set_num_threads(int(THREADS))
    sys.path.insert(0, str(HERE.parent / "tests"))
    import torchvision_defs as tv

    rng = np.random.default_rng(0)
    out: dict = {}
    if job in ("resnet18", "mobilenet_v2"):
        model = getattr(tv, job)()
        model.load_state_dict({k: torch.tensor(np.asarray(v))
                               for k, v in cs.models.get(job, seed=0).state_dict().items()})
        model.eval()
        x = torch.tensor(rng.random((INFER_BATCH, 3, INFER_SIZE, INFER_SIZE), dtype=np.float32))
        for layout in ("nchw", "channels_last"):
            m, xx = (model, x) if layout == "nchw" else (
                model.to(memory_format=torch.channels_last),
                x.contiguous(memory_format=torch.channels_last))

            def infer(m=m, xx=xx):
                with torch.no_grad():
                    m(xx)

            out[layout] = _timed(infer, repeats)
        out["seconds"] = min(out["nchw"], out["channels_last"])
        return out
    model = tv.resnet18(num_classes=10)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.tensor(rng.random((TRAIN_BATCH, 3, TRAIN_SIZE, TRAIN_SIZE), dtype=np.float32))
    y = torch.tensor(rng.integers(0, 10, TRAIN_BATCH))
    base = _rss()
    for layout in ("nchw", "channels_last"):
        m, xx = (model, x) if layout == "nchw" else (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last))

        def step(m=m, xx=xx):
            loss = torch.nn.functional.cross_entropy(m(xx), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        out[layout] = _timed(step, repeats)
        if layout == "nchw":  # memory of the NCHW steps only
            out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out["added"] = out["peak"] - base
    out["seconds"] = min(out["nchw"], out["channels_last"])
    return out


# --------------------------------------------------------------------------- driver
def _env() -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = THREADS
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(lib: str, job: str, repeats: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", lib, job, str(repeats)],
                          capture_output=True, text=True, env=_env(), check=False)
    if proc.returncode:
        raise RuntimeError(f"{lib} {job} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


JOBS = [("resnet18", "ResNet-18 inference, batch 8, 224x224x3", 5),
        ("mobilenet_v2", "MobileNetV2 inference, batch 8, 224x224x3", 5),
        ("train", "ResNet-18 training step, batch 32, 64x64x3", 5)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--worker", nargs=3, metavar=("LIB", "JOB", "REPEATS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        lib, job, repeats = args.worker
        fn = torch_job if lib == "torch" else convscope_job
        print(json.dumps(fn(job, int(repeats))))
        return
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: nothing to compare with (pip install torch==2.13.0)")
        return
    print(f"networks, {THREADS} threads each, {args.rounds} rounds (ratio = convscope / "
          "PyTorch's faster layout, median of the rounds' ratios)")
    results = {}
    for job, title, repeats in JOBS:
        ratios, ours, theirs, mem = [], [], [], []
        for _ in range(args.rounds):
            a = _run("convscope", job, repeats)
            b = _run("torch", job, repeats)
            ratios.append(a["seconds"] / b["seconds"])
            ours.append(a["seconds"])
            theirs.append(b["seconds"])
            if "peak" in a:
                mem.append((a["peak"] / b["peak"], a["added"] / max(b["added"], 1),
                            a["peak"], b["peak"], a["added"], b["added"]))
        results[job] = dict(ratio=_median(ratios), convscope=_median(ours),
                            torch=_median(theirs), ratios=ratios)
        print(f"  {title:45s} {_median(ours) * 1e3:8.1f} ms vs {_median(theirs) * 1e3:8.1f} ms"
              f"   ratio {_median(ratios):.2f}  (rounds {min(ratios):.2f}-{max(ratios):.2f})",
              flush=True)
        if mem:
            peak = _median([m[0] for m in mem])
            added = _median([m[1] for m in mem])
            mib = 1 << 20
            print(f"  {'peak memory of that process':45s} "
                  f"{_median([m[2] for m in mem]) / mib:8.0f} MiB vs "
                  f"{_median([m[3] for m in mem]) / mib:8.0f} MiB   ratio {peak:.2f}")
            print(f"  {'memory the steps add':45s} {_median([m[4] for m in mem]) / mib:8.0f} "
                  f"MiB vs {_median([m[5] for m in mem]) / mib:8.0f} MiB   ratio {added:.2f}")
            results[job].update(peak_ratio=peak, added_ratio=added)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"networks-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
