"""convscope against PyTorch CPU, ONNX Runtime and plain NumPy, measured side by side.

Each library runs alone in its own worker process (``benchmarks/worker.py``) with two
threads; libraries alternate round by round; a worker reports the median of its repeats;
the ratio convscope / PyTorch (the faster of NCHW and channels_last) is taken per round and
the median of those ratios is reported. Only ratios measured in the same run are
comparable: the machines are shared and absolute times drift.

Usage::

    python benchmarks/run.py            # full suite (several minutes)
    python benchmarks/run.py --quick    # fewer rows and repeats, for development

A JSON copy of every number goes to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREADS = "2"

CONV_ROWS = [  # name, batch, input C x H x W, kernels O @ k x k, padding p, groups g
    dict(name="slides L1 64x64x3->8@5x5 p2", n=64, c=3, h=64, w=64, o=8, k=5, p=2, g=1),
    dict(name="slides L2 64x64x8->16@5x5 p2", n=64, c=8, h=64, w=64, o=16, k=5, p=2, g=1),
    dict(name="TinyVGG 64x64x3->10@3x3", n=64, c=3, h=64, w=64, o=10, k=3, p=0, g=1),
    dict(name="TinyVGG 62x62x10->10@3x3", n=64, c=10, h=62, w=62, o=10, k=3, p=0, g=1),
    dict(name="VGG N=16 56x56x64->64@3x3 p1", n=16, c=64, h=56, w=56, o=64, k=3, p=1, g=1),
    dict(name="VGG N=16 28x28x128->128@3x3 p1", n=16, c=128, h=28, w=28, o=128, k=3, p=1, g=1),
    dict(name="depthwise N=32 64x64x32 3x3 p1", n=32, c=32, h=64, w=64, o=32, k=3, p=1, g=32),
    dict(name="slides L1 N=1", n=1, c=3, h=64, w=64, o=8, k=5, p=2, g=1),
]
QUICK_ROWS = [0, 2, 5, 6, 7]
# ResNet-18's downsampling layers at batch 8 (224 x 224 input): the stem and the 3x3 and
# 1x1 stride-2 convolutions (issue 13); ``s`` is the stride
STRIDED_ROWS = [
    dict(name="ResNet stem N=8 224x224x3->64@7x7 s2", n=8, c=3, h=224, w=224, o=64, k=7, p=3,
         g=1, s=2),
    dict(name="ResNet N=8 56x56x64->128@3x3 s2", n=8, c=64, h=56, w=56, o=128, k=3, p=1, g=1,
         s=2),
    dict(name="ResNet N=8 28x28x128->256@3x3 s2", n=8, c=128, h=28, w=28, o=256, k=3, p=1,
         g=1, s=2),
    dict(name="ResNet N=8 14x14x256->512@3x3 s2", n=8, c=256, h=14, w=14, o=512, k=3, p=1,
         g=1, s=2),
    dict(name="ResNet N=8 56x56x64->128@1x1 s2", n=8, c=64, h=56, w=56, o=128, k=1, p=0, g=1,
         s=2),
    dict(name="ResNet N=8 28x28x128->256@1x1 s2", n=8, c=128, h=28, w=28, o=256, k=1, p=0,
         g=1, s=2),
    dict(name="ResNet N=8 14x14x256->512@1x1 s2", n=8, c=256, h=14, w=14, o=512, k=1, p=0,
         g=1, s=2),
]

POOL_ROWS = [
    dict(name="max 2x2 s2 N=64 60x60x10", op="max", n=64, c=10, h=60, w=60, k=2, s=2, p=0),
    dict(name="max 3x3 s2 p1 N=16 56x56x64", op="max", n=16, c=64, h=56, w=56, k=3, s=2, p=1),
    dict(name="avg 2x2 s2 N=64 60x60x10", op="avg", n=64, c=10, h=60, w=60, k=2, s=2, p=0),
]


def worker_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = THREADS
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def run_worker(lib: str, job: dict) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "worker.py"), lib, json.dumps(job)],
                          capture_output=True, text=True, env=worker_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {lib} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def median(values):
    values = sorted(v for v in values if v is not None and not math.isnan(v))
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def rounds_of(libs: list[str], job: dict, rounds: int) -> dict[str, list[dict]]:
    """Every library once per round; the order rotates so no library always goes first."""
    out: dict[str, list[dict]] = {lib: [] for lib in libs}
    for r in range(rounds):
        for lib in libs[r % len(libs):] + libs[:r % len(libs)]:
            out[lib].append(run_worker(lib, job))
    return out


def conv_flops(row: dict) -> float:
    oh = (row["h"] + 2 * row["p"] - row["k"]) // row.get("s", 1) + 1
    ow = (row["w"] + 2 * row["p"] - row["k"]) // row.get("s", 1) + 1
    return 2.0 * row["n"] * row["o"] * oh * ow * (row["c"] // row["g"]) * row["k"] ** 2


def fmt_ms(t: float) -> str:
    return "-" if t is None or math.isnan(t) else f"{t * 1e3:8.2f}"


def conv_section(rows, res, sgemm, key: str, title: str) -> list[dict]:
    has_torch, has_ort = "torch" in res, "onnxruntime" in res
    print(f"\n## {title} (ms, median over rounds; ratio = convscope / faster PyTorch layout)")
    head = f"{'layer':34} {'convscope':>9} {'torch':>9} {'torch CL':>9}"
    if key == "fwd":
        head += f" {'ORT':>9} {'NumPy':>9}"
    print(head + f" {'ratio':>6} {'GFLOP/s':>8} {'of sgemm':>8}")
    table = []
    for row in rows:
        name = row["name"]
        mult = 1.0 if key == "fwd" else 3.0
        cs = median(r[name][key] for r in res["convscope"])
        entry = {"row": name, "convscope": cs}
        line = f"{name:34} {fmt_ms(cs):>9}"
        ratios = []
        if has_torch:
            tn = median(r[name][f"{key}_nchw"] for r in res["torch"])
            tc = median(r[name][f"{key}_cl"] for r in res["torch"])
            ratios = [a[name][key] / min(b[name][f"{key}_nchw"], b[name][f"{key}_cl"])
                      for a, b in zip(res["convscope"], res["torch"], strict=True)]
            entry.update(torch_nchw=tn, torch_cl=tc)
            line += f" {fmt_ms(tn):>9} {fmt_ms(tc):>9}"
        if key == "fwd":
            ort = median(r[name]["fwd"] for r in res["onnxruntime"]) if has_ort else None
            npy = median(r[name]["fwd"] for r in res["numpy"])
            entry.update(onnxruntime=ort, numpy=npy)
            line += f" {fmt_ms(ort):>9} {fmt_ms(npy):>9}"
        if key == "fwdbwd":
            entry["autograd"] = median(r[name]["autograd"] for r in res["convscope"])
        ratio = median(ratios)
        gflops = mult * conv_flops(row) / cs / 1e9
        entry.update(ratio=ratio, gflops=gflops, of_sgemm=gflops / sgemm)
        print(line + f" {ratio:6.2f} {gflops:8.1f} {gflops / sgemm:8.2f}")
        table.append(entry)
    if has_torch:
        ratios = [e["ratio"] for e in table]
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"{'geomean ratio':34} {geo:.2f}   worst {max(ratios):.2f}")
    if key == "fwdbwd":
        print("convscope through autograd (fwd+bwd, ms): "
              + ", ".join(f"{e['row'].split()[0]} {fmt_ms(e['autograd']).strip()}" for e in table))
    return table


def pool_section(rows, res) -> list[dict]:
    print("\n## Pooling (ms; ratio = convscope / faster PyTorch layout)")
    cols = ("cs fwd", "torch", "ratio", "cs f+b", "torch", "ratio")
    print(f"{'layer':34} " + " ".join(f"{c:>8}" for c in cols))
    table = []
    for row in rows:
        name, entry, line = row["name"], {"row": row["name"]}, f"{row['name']:34}"
        for key in ("fwd", "fwdbwd"):
            cs = median(r[name][key] for r in res["convscope"])
            tt = median(min(r[name][f"{key}_nchw"], r[name][f"{key}_cl"]) for r in res["torch"]) \
                if "torch" in res else float("nan")
            ratio = median(a[name][key] / min(b[name][f"{key}_nchw"], b[name][f"{key}_cl"])
                           for a, b in zip(res["convscope"], res["torch"], strict=True)) \
                if "torch" in res else float("nan")
            entry[key] = {"convscope": cs, "torch": tt, "ratio": ratio}
            line += f" {fmt_ms(cs):>8} {fmt_ms(tt):>8} {ratio:6.2f}"
        print(line)
        table.append(entry)
    return table


def timed_subprocess(code: str, extra_env: dict | None = None) -> float:
    """Seconds reported by ``code`` (which prints one float) in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=worker_env(extra_env), check=True)
    return float(proc.stdout.strip().splitlines()[-1])


IMPORT_CODE = "import time; t=time.perf_counter(); import {m}; print(time.perf_counter()-t)"
FIRST_CALL_CODE = """
import time, numpy as np
import convscope
from convscope import kernels
x = np.ones((1, 3, 64, 64), np.float32); w = np.ones((8, 3, 5, 5), np.float32)
t = time.perf_counter()
kernels.conv2d(x, w, None, (1, 1), ((2, 2), (2, 2)), (1, 1), 1)
print(time.perf_counter() - t)
"""


def startup_section(has_torch: bool) -> dict:
    out = {"import_convscope": min(timed_subprocess(IMPORT_CODE.format(m="convscope"))
                                   for _ in range(3))}
    if has_torch:
        out["import_torch"] = min(timed_subprocess(IMPORT_CODE.format(m="torch"))
                                  for _ in range(3))
    timed_subprocess(FIRST_CALL_CODE)  # make sure the on-disk cache is filled
    out["first_call_warm_cache"] = min(timed_subprocess(FIRST_CALL_CODE) for _ in range(3))
    with tempfile.TemporaryDirectory() as cache:
        out["first_call_cold_cache"] = timed_subprocess(FIRST_CALL_CODE,
                                                        {"NUMBA_CACHE_DIR": cache})
    print("\n## Start-up (s)")
    for key, value in out.items():
        print(f"{key:34} {value:8.3f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", choices=["conv", "strided", "pool", "train", "startup"],
                        default=None)
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    repeats = 3 if args.quick else 7
    rows = [CONV_ROWS[i] for i in QUICK_ROWS] if args.quick else CONV_ROWS
    has_torch, has_ort = available("torch"), available("onnxruntime")
    libs = ["convscope", "numpy"] + ["torch"] * has_torch + ["onnxruntime"] * has_ort
    report: dict = {"rounds": rounds, "repeats": repeats, "threads": int(THREADS),
                    "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.time()
    if args.only in (None, "conv"):
        res = rounds_of(libs, {"kind": "conv", "rows": rows, "repeats": repeats}, rounds)
        sgemm = median(r["sgemm_gflops"] for r in res["numpy"])
        print(f"machine sgemm (NumPy float32 2048^3, 2 threads): {sgemm:.0f} GFLOP/s")
        report["sgemm_gflops"] = sgemm
        report["forward"] = conv_section(rows, res, sgemm, "fwd", "Forward")
        res_b = {k: v for k, v in res.items() if k in ("convscope", "torch")}
        report["forward_backward"] = conv_section(rows, res_b, sgemm, "fwdbwd",
                                                  "Forward + backward (grad input, weight, bias)")
    if args.only in (None, "strided"):
        srows = STRIDED_ROWS[1:2] + STRIDED_ROWS[4:5] if args.quick else STRIDED_ROWS
        res = rounds_of(libs, {"kind": "conv", "rows": srows, "repeats": repeats}, rounds)
        sgemm = median(r["sgemm_gflops"] for r in res["numpy"])
        report["strided_forward"] = conv_section(srows, res, sgemm, "fwd",
                                                 "Strided (ResNet downsampling), forward")
        res_b = {k: v for k, v in res.items() if k in ("convscope", "torch")}
        report["strided_forward_backward"] = conv_section(
            srows, res_b, sgemm, "fwdbwd", "Strided (ResNet downsampling), forward + backward")
    if args.only in (None, "pool"):
        pl = ["convscope"] + ["torch"] * has_torch
        prows = POOL_ROWS[:1] if args.quick else POOL_ROWS
        report["pooling"] = pool_section(prows, rounds_of(pl, {"kind": "pool", "rows": prows,
                                                              "repeats": repeats}, rounds))
    if args.only in (None, "train"):
        tl = ["convscope"] + ["torch"] * has_torch
        res = rounds_of(tl, {"kind": "train", "repeats": repeats}, rounds)
        cs = median(r["step"] for r in res["convscope"])
        line = f"\n## Tiny VGG training step, batch 64 (Adam): convscope {fmt_ms(cs).strip()} ms"
        entry = {"convscope": cs}
        if has_torch:
            ratios = [a["step"] / min(b["step_nchw"], b["step_cl"])
                      for a, b in zip(res["convscope"], res["torch"], strict=True)]
            entry.update(torch_nchw=median(r["step_nchw"] for r in res["torch"]),
                         torch_cl=median(r["step_cl"] for r in res["torch"]), ratio=median(ratios))
            line += (f", torch {fmt_ms(entry['torch_nchw']).strip()} ms, torch CL "
                     f"{fmt_ms(entry['torch_cl']).strip()} ms, ratio {entry['ratio']:.2f}")
        print(line)
        shares = run_worker("convscope", {"kind": "shares", "repeats": repeats})
        pct = {k: 100 * shares[k] / shares["step"] for k in ("pool", "relu")}
        ms = {k: fmt_ms(v).strip() for k, v in shares.items()}
        print(f"inside a convscope step ({ms['step']} ms): pooling {ms['pool']} ms "
              f"({pct['pool']:.1f}%: backward kernels {ms['pool_backward']} ms, forward fused "
              f"into the conv's output pass {ms['pool_forward']} ms over the conv + ReLU "
              f"kernel, {ms['pool_forward_unfused']} ms as a kernel of its own); ReLU (fused; "
              f"step minus the step without ReLU layers) {ms['relu']} ms ({pct['relu']:.1f}%)")
        entry["shares"] = shares
        mem = {lib: run_worker(lib, {"kind": "memory", "repeats": 0}) for lib in tl}
        for key, what in (("process_peak", "whole-process peak"),
                          ("added_after_warmup", "added by batch-64 steps after a 1-image warm-up"),
                          ("added_from_model", "added from after the model is built (convscope: "
                                               "includes loading its compiled kernels)")):
            line = f"memory, {what} (MiB): " + ", ".join(
                f"{lib} {m[key] / 2**20:.0f}" for lib, m in mem.items())
            if "torch" in mem:
                line += f"; ratio {mem['convscope'][key] / mem['torch'][key]:.2f}"
            print(line)
        report["train_step"], report["train_memory"] = entry, mem
    if args.only in (None, "startup"):
        report["startup"] = startup_section(has_torch)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\n({time.time() - t0:.0f} s; results in {path.relative_to(HERE.parent)})")


if __name__ == "__main__":
    main()
