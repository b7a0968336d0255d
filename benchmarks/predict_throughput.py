"""Images per second of a whole prediction job over a folder, and where the time goes.

Usage::

    .venv/bin/python benchmarks/predict_throughput.py                 # 2,000 images, 3 rounds
    .venv/bin/python benchmarks/predict_throughput.py --images 5000 --rounds 5 --side 96

Runs, each in a fresh process of its own, rounds alternating:

- ``convscope 1 process``: ``cs.batch.predict`` (what ``convscope predict FOLDER --out
  preds.csv`` runs): 2 decoding threads ahead of the model, kernels on 2 threads;
- ``convscope --workers 2``: the same job on a LocalCluster of 2 processes, 1 thread each
  (the cluster's start-up is timed apart);
- ``PyTorch DataLoader(num_workers=2)``: a Dataset that prepares each image exactly as
  convscope does (``cs.data.load_image``), batches of 64, 2 loader processes, the model
  (the same weights) in ``inference_mode`` on 2 threads, softmax and the top class, rows
  written to a CSV file as convscope does; and the same loop with
  ``torch.set_num_threads(1)`` (on 2 cores, the loader processes need the second core:
  PyTorch's idle threads spin and take it from them).

The model is Tiny VGG (CNN Explainer's: 64x64x3, four 3x3 convs of 10 kernels, 10 classes;
seeded random weights: weights do not change the speed). The folder holds ``--images``
JPEG pictures of ``--side`` x ``--side`` pixels (smooth random colours), resized to 64x64.
Every job's time excludes starting Python and importing the libraries, and includes
listing the folder, reading, decoding, resizing, the model and writing the rows; a warm-up
job on 64 images runs first in each process (compiled kernels load from Numba's cache).

Then "where the time goes", in one process on one thread, per image: decoding (Pillow,
``load_image`` without a size), resizing (the rest of ``load_image``), the model at batch
64 (convscope and PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREADS = "2"


def make_folder(root: Path, n: int, side: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / f"{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
        picture = Image.fromarray(small).resize((side, side), Image.Resampling.BILINEAR)
        picture.save(sub / f"{i:06d}.jpg", quality=90)


def make_model(path: Path) -> None:
    import convscope as cs

    cs.save(cs.models.tiny_vgg(seed=0), path, classes=[f"class{k}" for k in range(10)])


# --------------------------------------------------------------------------- the jobs
def job_convscope(model: str, folder: str, out: str, workers: int) -> dict:
    import convscope as cs

    warm = sorted(str(p) for p in Path(folder).rglob("*.jpg"))[:64]
    result: dict = {}
    client = cluster = None
    if workers:
        t0 = time.perf_counter()
        client, cluster = cs.dask.connect(None, workers)
        result["cluster_start_s"] = time.perf_counter() - t0
    runner = cs.batch.Runner(model, "predict")
    try:
        # the warm-up's small chunks reach every worker: each loads the model before timing
        for paths, target, chunk in ((warm, out + ".warm.csv", 8), (folder, out, 1024)):
            t0 = time.perf_counter()
            summary = cs.batch.run_job(runner, cs.batch.PathSource(paths), target,
                                       model_arg=model, client=client, progress=None,
                                       chunk_size=chunk)
            seconds = time.perf_counter() - t0
        result.update(images=summary.images, seconds=seconds)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return result


class _Images:  # a torch Dataset (defined at module level so loader processes import it)
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):  # noqa: ANN204
        import torch

        import convscope as cs

        return torch.from_numpy(cs.data.load_image(self.paths[i], size=(64, 64))), i


def torch_model(path: str):  # noqa: ANN201
    import torch

    import convscope as cs

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 10, 3), torch.nn.ReLU(), torch.nn.Conv2d(10, 10, 3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(10, 10, 3), torch.nn.ReLU(),
        torch.nn.Conv2d(10, 10, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(1690, 10))
    state = {k: torch.from_numpy(v.copy()) for k, v in cs.load(path).state_arrays().items()}
    net.load_state_dict(state)
    return net.eval()


def job_torch(model: str, folder: str, out: str, workers: int, threads: int) -> dict:
    import csv

    import torch

    torch.set_num_threads(threads)
    net = torch_model(model)
    names = [f"class{k}" for k in range(10)]

    def run(paths: list[str], target: str) -> float:
        t0 = time.perf_counter()
        paths = sorted(paths)
        loader = torch.utils.data.DataLoader(_Images(paths), batch_size=64,
                                             num_workers=workers)
        with open(target, "w", newline="") as f, torch.inference_mode():
            writer = csv.writer(f)
            writer.writerow(["path", "class", "probability"])
            for x, index in loader:
                probs = torch.softmax(net(x), dim=1)
                top, k = probs.max(dim=1)
                writer.writerows([paths[i], names[c], f"{p:.9g}"] for i, c, p in
                                 zip(index.tolist(), k.tolist(), top.tolist(), strict=True))
        return time.perf_counter() - t0

    everything = [str(p) for p in Path(folder).rglob("*.jpg")]
    run(sorted(everything)[:64], out + ".warm.csv")
    return {"images": len(everything), "seconds": run(everything, out)}


def breakdown(model: str, folder: str) -> dict:
    """Per image, one thread: decode, resize, the model at batch 64 (both libraries)."""
    import numpy as np
    import torch

    import convscope as cs

    torch.set_num_threads(1)
    import numba

    numba.set_num_threads(1)
    paths = sorted(str(p) for p in Path(folder).rglob("*.jpg"))[:512]

    def per_image(fn, reps: int = 3) -> float:
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) / len(paths)

    decode = per_image(lambda: [cs.data.load_image(p) for p in paths])
    prepare = per_image(lambda: [cs.data.load_image(p, size=(64, 64)) for p in paths])
    x = np.stack([cs.data.load_image(p, size=(64, 64)) for p in paths])
    net = cs.load(model)
    tnet = torch_model(model)

    def cs_model() -> None:
        with cs.no_grad():
            for i in range(0, len(x), 64):
                cs.functional.softmax(net(x[i:i + 64]), dim=1)

    def torch_run() -> None:
        with torch.inference_mode():
            for i in range(0, len(x), 64):
                torch.softmax(tnet(torch.from_numpy(x[i:i + 64])), dim=1)

    return {"decode_us": decode * 1e6, "resize_us": (prepare - decode) * 1e6,
            "convscope_model_us": per_image(cs_model) * 1e6,
            "torch_model_us": per_image(torch_run) * 1e6}


WORKER_JOBS = {"convscope": lambda a: job_convscope(a.model, a.folder, a.out, 0),
               "convscope-workers-2": lambda a: job_convscope(a.model, a.folder, a.out, 2),
               "torch": lambda a: job_torch(a.model, a.folder, a.out, 2, int(THREADS)),
               "torch-1-thread": lambda a: job_torch(a.model, a.folder, a.out, 2, 1),
               "breakdown": lambda a: breakdown(a.model, a.folder)}


def run_worker(kind: str, model: Path, folder: Path, out: Path) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = THREADS
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, str(model), str(folder),
                           str(out)], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--side", type=int, default=96, help="pixels per side of the JPEGs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", help="reuse this folder of pictures (else a temp one)")
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "MODEL", "FOLDER", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, model, folder, out = args.worker
        ns = argparse.Namespace(model=model, folder=folder, out=out)
        print(json.dumps(WORKER_JOBS[kind](ns)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder or Path(tmp) / "pictures")
        if not folder.exists():
            make_folder(folder, args.images, args.side)
        model = Path(tmp) / "tiny_vgg.safetensors"
        make_model(model)
        kinds = ["convscope", "convscope-workers-2", "torch", "torch-1-thread"]
        times: dict[str, list[float]] = {k: [] for k in kinds}
        extra: dict[str, list[float]] = {"cluster_start_s": []}
        for r in range(args.rounds):
            for kind in kinds[r % 4:] + kinds[: r % 4]:  # the order rotates
                got = run_worker(kind, model, folder, Path(tmp) / f"{kind}.csv")
                times[kind].append(got["images"] / got["seconds"])
                if "cluster_start_s" in got:
                    extra["cluster_start_s"].append(got["cluster_start_s"])
                print(f"round {r + 1}: {kind:<20} {times[kind][-1]:8.0f} images/s", flush=True)
        parts = run_worker("breakdown", model, folder, Path(tmp) / "b.csv")
    torch_rate = statistics.median(times["torch"])
    print(f"\n{args.images} JPEGs of {args.side}x{args.side} -> Tiny VGG at 64x64x3; median of "
          f"{args.rounds} rounds (images/s; ratio to PyTorch's loop)")
    for kind, label in (("convscope", "convscope, 1 process"),
                        ("convscope-workers-2", "convscope --workers 2"),
                        ("torch", "PyTorch DataLoader(num_workers=2)"),
                        ("torch-1-thread", "  the same, torch.set_num_threads(1)")):
        rate = statistics.median(times[kind])
        print(f"  {label:<36} {rate:8.0f}   {rate / torch_rate:5.2f}x")
    start = statistics.median(extra["cluster_start_s"])
    print(f"  (LocalCluster start-up, not counted: {start:.1f} s)")
    print("\nwhere the time goes, per image on one thread (microseconds):")
    for key, label in (("decode_us", "decode (Pillow, to float)"), ("resize_us", "resize to 64x64"),
                       ("convscope_model_us", "convscope model, batch 64"),
                       ("torch_model_us", "PyTorch model, batch 64")):
        print(f"  {label:<28} {parts[key]:8.0f}")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results / f"predict_throughput-{stamp}.json").write_text(json.dumps(
        {"args": vars(args), "images_per_s": times, "breakdown": parts, **extra}, indent=1))


if __name__ == "__main__":
    main()
