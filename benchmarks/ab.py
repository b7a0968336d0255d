"""A/B timing of convolution algorithms on given shapes, PyTorch beside them.

For a change to one kernel: every algorithm named runs in **one** process, in alternation
(the order rotates each round), so that they share the machine's state minute by minute;
PyTorch runs in a process of its own in the same rounds (its idle threads would disturb
ours). Two threads each. Prints, per shape and operation, the median over rounds of each
algorithm's median time and of its ratio to the first algorithm (same round) and to
PyTorch's faster layout (same round).

Usage::

    python benchmarks/ab.py "8,64,56,56,128,3,2,1,1" --algos phases,direct --ops fwd,gi,gw
    python benchmarks/ab.py "32,32,64,64,32,3,1,1,32" --algos auto --ops autograd --torch

A shape is ``n,c,h,w,o,k,s,p,g`` (batch, input channels, height, width, kernels, kernel
size, stride, padding, groups). ``auto`` is :func:`convscope.kernels.fast.choose`'s pick.
Operations: ``fwd`` (forward), ``gi`` (input gradient), ``gw`` (weight gradient),
``relu`` (fused conv + ReLU forward), ``autograd`` (``F.conv2d(...).backward(gy)`` with
fresh leaf tensors each call, as a user's step). An algorithm may carry settings of the
kernels' module constants, for tuning: ``panel@panel.TASKS=32;panel.PANEL_ROWS=128``.

Rounds in which another user's processes took 10 % or more of the machine's CPU time
(``/proc/stat``, which sees every container) are run again, up to twice.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
THREADS = "2"


def parse_shape(text: str) -> dict:
    n, c, h, w, o, k, s, p, g = (int(v) for v in text.split(","))
    return dict(n=n, c=c, h=h, w=w, o=o, k=k, s=s, p=p, g=g)


def arrays(shape: dict, dtype=np.float32):
    rng = np.random.default_rng(0)
    n, c, h, w, o, k, s, p, g = (shape[key] for key in "nchwokspg")
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((o, c // g, k, k)) / np.sqrt(c // g * k * k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    gy = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, wt, b, gy


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: compilation and first-touch never timed
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def tuned(fn, settings: str):
    """``fn`` run with module constants of ``convscope.kernels`` set for the call:
    ``"panel.TASKS=32;direct.SERIAL_WORK=0"`` (for tuning, A/B against the defaults)."""
    import importlib

    pairs = []
    for item in filter(None, settings.split(";")):
        name, value = item.split("=")
        module, attr = name.rsplit(".", 1)
        pairs.append((importlib.import_module(f"convscope.kernels.{module}"), attr, eval(value)))

    def call():
        old = [getattr(m, a) for m, a, _ in pairs]
        for m, a, v in pairs:
            setattr(m, a, v)
        try:
            return fn()
        finally:
            for (m, a, _), v in zip(pairs, old, strict=True):
                setattr(m, a, v)

    return call


def convscope_calls(shape: dict, algo: str | None) -> dict:
    """The operations of one shape; ``algo`` may carry settings: ``"panel@panel.TASKS=32"``."""
    from convscope import functional as F
    from convscope import kernels
    from convscope.tensor import Tensor

    algo, _, settings = (algo or "").partition("@")
    algo = None if algo in ("", "auto") else algo

    x, w, b, gy = arrays(shape)
    s, p, g = shape["s"], shape["p"], shape["g"]
    geo = ((s, s), ((p, p), (p, p)), (1, 1), g)

    def autograd():
        xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
        F.conv2d(xt, wt, bt, stride=s, padding=p, groups=g).backward(gy)

    calls = {
        "fwd": lambda: kernels.conv2d(x, w, b, *geo, algo=algo),
        "relu": lambda: kernels.conv2d_relu(x, w, b, *geo, algo=algo),
        "gi": lambda: kernels.conv2d_grad_input(gy, w, x.shape[2:], *geo, algo=algo),
        "gw": lambda: kernels.conv2d_grad_weight(gy, x, w.shape[2:], *geo, algo=algo),
        "autograd": autograd,
    }
    return {op: tuned(fn, settings) for op, fn in calls.items()}


def torch_calls(shape: dict) -> dict:
    import torch

    x, w, b, gy = arrays(shape)
    s, p, g = shape["s"], shape["p"], shape["g"]
    f = torch.nn.functional
    out = {}
    tb = torch.from_numpy(b)
    for name, fmt in (("nchw", torch.contiguous_format), ("cl", torch.channels_last)):
        tx, tw, tg = (torch.from_numpy(a).contiguous(memory_format=fmt) for a in (x, w, gy))

        def fwd(tx=tx, tw=tw):
            with torch.no_grad():
                f.conv2d(tx, tw, tb, stride=s, padding=p, groups=g)

        def relu(tx=tx, tw=tw):
            with torch.no_grad():
                torch.relu_(f.conv2d(tx, tw, tb, stride=s, padding=p, groups=g))

        def grads(which, tx=tx, tw=tw, tg=tg):
            mask = [which == "gi", which == "gw", False]
            return lambda: torch.ops.aten.convolution_backward(
                tg, tx, tw, [tw.shape[0]], [s, s], [p, p], [1, 1], False, [0, 0], g, mask)

        def autograd(tx=tx, tw=tw, tg=tg):
            ax, aw, ab = (t.clone().requires_grad_(True) for t in (tx, tw, tb))
            f.conv2d(ax, aw, ab, stride=s, padding=p, groups=g).backward(tg)

        for op, fn in (("fwd", fwd), ("relu", relu), ("gi", grads("gi")), ("gw", grads("gw")),
                       ("autograd", autograd)):
            out[f"{op}_{name}"] = fn
    return out


def worker(lib: str, job: dict) -> dict:
    """One process: every algorithm (convscope) or layout (torch), rotating, one round."""
    if lib == "torch":
        import torch

        torch.set_num_threads(int(THREADS))
    result: dict = {}
    r = job["round"]
    for text in job["shapes"]:
        shape = parse_shape(text)
        if lib == "torch":
            calls = torch_calls(shape)
            for op in job["ops"]:
                result[f"{text} {op}"] = min(timed(calls[f"{op}_{lay}"], job["repeats"])
                                             for lay in ("nchw", "cl"))
            continue
        algos = job["algos"]
        order = algos[r % len(algos):] + algos[:r % len(algos)]
        per_algo = {a: convscope_calls(shape, a) for a in algos}
        for op in job["ops"]:
            for a in order:
                result[f"{text} {op} {a}"] = timed(per_algo[a][op], job["repeats"])
    return result


def busy_jiffies() -> int:
    """CPU time the whole machine has spent busy (all processes, every container), in
    clock ticks: from ``/proc/stat``, which is not limited to our own processes."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4]  # minus idle and iowait


def run(lib: str, job: dict) -> dict:
    """One worker process; ``result["_foreign"]``: the share of the machine's busy CPU
    time during the run that was not ours (another user's work: the round is disturbed)."""
    busy0, own0 = busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = _run(lib, job)
    busy1, own1 = busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) * os.sysconf(
        "SC_CLK_TCK")
    busy = max(busy1 - busy0, 1)
    result["_foreign"] = max(0.0, (busy - own) / busy)
    return result


def _run(lib: str, job: dict) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = env.get("AB_THREADS", THREADS)
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--worker", lib, json.dumps(job)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], json.loads(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="+")
    parser.add_argument("--algos", default="auto", help="comma-separated")
    parser.add_argument("--ops", default="fwd,gi,gw")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--torch", action="store_true", help="PyTorch in the same rounds")
    parser.add_argument("--separate", action="store_true",
                        help="each algorithm in a process of its own (for BLAS-based ones, "
                             "whose spinning threads slow the next compiled loop)")
    args = parser.parse_args()
    algos, ops = args.algos.split(","), args.ops.split(",")
    rounds, disturbed = [], 0
    for r in range(args.rounds):
        for _attempt in range(3):  # a round disturbed by another user's work is run again
            job = dict(shapes=args.shapes, algos=algos, ops=ops, repeats=args.repeats, round=r)
            libs = (["torch"] if args.torch else []) + ([] if args.separate else ["convscope"])
            got = {lib: run(lib, job) for lib in (libs if r % 2 == 0 else libs[::-1])}
            if args.separate:
                got["convscope"] = {}
                for a in algos[r % len(algos):] + algos[:r % len(algos)]:
                    one = run("convscope", dict(job, algos=[a]))
                    got["convscope"]["_foreign"] = max(got["convscope"].get("_foreign", 0),
                                                       one.pop("_foreign"))
                    got["convscope"].update(one)
            foreign = max(v["_foreign"] for v in got.values())
            if foreign < 0.1:
                break
            disturbed += 1
        rounds.append(got)
    print(f"{args.rounds} rounds x {args.repeats} calls, {THREADS} threads; {disturbed} "
          "rounds rerun (another user's work took >= 10% of the machine's CPU time); "
          "worst foreign share kept: "
          f"{max(v['_foreign'] for rd in rounds for v in rd.values()):.0%}")
    print(f"ms, medians; "
          f"'x first': ratio to {algos[0]} in the same round; 'x torch': to PyTorch's faster "
          "layout in the same round")
    for text in args.shapes:
        for op in ops:
            line = f"{text:28} {op:8}"
            for a in algos:
                t = [rd["convscope"][f"{text} {op} {a}"] for rd in rounds]
                first = [rd["convscope"][f"{text} {op} {a}"]
                         / rd["convscope"][f"{text} {op} {algos[0]}"] for rd in rounds]
                line += f" | {a} {np.median(t) * 1e3:8.3f}"
                if a != algos[0]:
                    line += f" ({np.median(first):.2f}x first)"
                if args.torch:
                    tt = [rd["convscope"][f"{text} {op} {a}"] / rd["torch"][f"{text} {op}"]
                          for rd in rounds]
                    line += f" {np.median(tt):.2f}x torch"
            if args.torch:
                tt = np.median([rd["torch"][f"{text} {op}"] for rd in rounds])
                line += f" | torch {tt * 1e3:.3f}"
            print(line)


if __name__ == "__main__":
    main()
