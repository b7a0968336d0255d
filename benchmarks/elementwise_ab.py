"""A/B timing of batch norm and the element-wise ops: the NumPy code they replaced, the
compiled loops (:mod:`convscope.kernels.elementwise`), and PyTorch.

The NumPy versions and the loops run in **this** process, in alternation (the order rotates
each round); PyTorch runs in a process of its own (started once, asked for one round at a
time between ours: in one process its idle threads would disturb ours), NCHW and
channels_last, its faster layout taken per round. Two threads each. Prints per row the
median over rounds of each variant's median time and of its ratio to the NumPy version
and to PyTorch (same round).

    python benchmarks/elementwise_ab.py [--rounds 5] [--repeats 9] [--only bn,add,relu6]
                                        [--threads=1] [--verbose]

``--threads=1`` runs every library on one thread: on a machine busy with other work, a
two-thread region waits whole scheduler slices for its second thread (times then cluster
at multiples of 4-8 ms, PyTorch's as ours), while a one-thread process only shares a core.

"NumPy" is what convscope ran before: batch norm as the old ``functional.batch_norm``
computed it (mean, var, ``xhat``, then ``* weight`` and ``+ bias`` as separate ops, the
backward of each of the three nodes), ``a + b`` and the existing ReLU loop, and ReLU6 as
``np.minimum(np.maximum(x, 0), 6)``.
"""

# ruff: noqa: B023  (closures are timed inside the loop iteration that defines them)

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

THREADS = "1" if "--threads=1" in sys.argv else "2"
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = THREADS  # before NumPy, Numba and torch start their thread pools

import numpy as np  # noqa: E402

AXES = (0, 2, 3)
BN_SHAPES = [(8, 64, 112, 112), (32, 64, 56, 56)]
ADD_SHAPE = (8, 64, 56, 56)
RELU6_SHAPE = (8, 96, 112, 112)


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def arrays(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    w = rng.uniform(0.5, 1.5, c).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    return x, g, w, b


# --------------------------------------------------------------------------- convscope side
def old_bn_train(x, g, w, b, eps=1e-5):
    """The old functional.batch_norm, forward and the three nodes' backward, in NumPy."""
    c = x.shape[1]
    col = (1, c, 1, 1)
    mean = x.mean(axis=AXES)
    var = x.var(axis=AXES)
    inv = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - mean.reshape(col)) * inv.reshape(col)
    y = xhat * w.reshape(col) + b.reshape(col)
    gb = g.sum(axis=AXES)  # add node, unbroadcast
    gw = (g * xhat).sum(axis=AXES)  # mul node: g * xhat, unbroadcast
    gxh = g * w.reshape(col)  # mul node: g * w
    gm = gxh.mean(axis=AXES, keepdims=True)
    gxm = (gxh * xhat).mean(axis=AXES, keepdims=True)
    gx = (gxh - gm - xhat * gxm) * inv.reshape(col)
    return y, gx, gw, gb


def old_bn_eval(x, mean, var, w, b, eps=1e-5):
    c = x.shape[1]
    col = (1, c, 1, 1)
    inv = (1.0 / np.sqrt(var.astype(x.dtype) + eps)).astype(x.dtype)
    xhat = (x - mean.reshape(col)) * inv.reshape(col)
    return xhat * w.reshape(col) + b.reshape(col)


def convscope_round(job):
    import convscope as cs
    from convscope import functional as F
    from convscope.kernels import elementwise as ew
    from convscope.kernels import fast

    out = {}
    reps = job["repeats"]
    order = job["round"]
    if "bn" in job["only"]:
        for shape in BN_SHAPES:
            x, g, w, b = arrays(shape)
            rm, rv = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
            xt = cs.tensor(x)
            wt, bt = cs.tensor(w, requires_grad=True), cs.tensor(b, requires_grad=True)

            def new_train():  # the node's backward called directly: an input that is a
                xl = cs.Tensor._wrap(x, True)  # leaf would add the engine's copy into .grad
                F.batch_norm(xl, rm, rv, wt, bt, training=True)._node.backward(g)

            def new_eval():
                with cs.no_grad():
                    F.batch_norm(xt, rm, rv, wt, bt, training=False)

            key = "x".join(map(str, shape))
            variants = {
                f"bn train fwd+bwd {key}": {"numpy": lambda: old_bn_train(x, g, w, b),
                                            "loops": new_train},
                f"bn eval fwd {key}": {"numpy": lambda: old_bn_eval(x, rm, rv, w, b),
                                       "loops": new_eval},
            }
            out.update(run_variants(variants, reps, order))
    if "add" in job["only"]:
        a, b2, _, _ = arrays(ADD_SHAPE)
        variants = {
            "add 8x64x56x56": {"numpy": lambda: a + b2, "loops": lambda: ew.add(a, b2)},
            "add+relu 8x64x56x56": {"numpy": lambda: fast.relu(a + b2),
                                    "loops": lambda: ew.add_relu(a, b2)},
        }
        out.update(run_variants(variants, reps, order))
    if "relu6" in job["only"]:
        x, g, _, _ = arrays(RELU6_SHAPE)

        def old_fb():
            np.minimum(np.maximum(x, 0), 6)
            np.where((x > 0) & (x < 6), g, 0)

        def new_fb():
            ew.hardtanh(x, 0.0, 6.0)
            ew.hardtanh_grad(g, x, 0.0, 6.0)

        variants = {
            "relu6 fwd 8x96x112x112": {"numpy": lambda: np.minimum(np.maximum(x, 0), 6),
                                       "loops": lambda: ew.hardtanh(x, 0.0, 6.0)},
            "relu6 fwd+bwd 8x96x112x112": {"numpy": old_fb, "loops": new_fb},
        }
        out.update(run_variants(variants, reps, order))
    return out


def run_variants(variants, reps, order):
    out = {}
    for row, fns in variants.items():
        names = list(fns)
        k = order % len(names)
        for name in names[k:] + names[:k]:
            out.setdefault(row, {})[name] = median_time(fns[name], reps)
    return out


# --------------------------------------------------------------------------- torch side
def torch_round(job):
    import torch
    import torch.nn.functional as TF

    torch.set_num_threads(int(THREADS))
    out = {}
    reps = job["repeats"]

    def both_layouts(row, make_fn):
        times = {}
        for layout, fmt in (("nchw", torch.contiguous_format), ("cl", torch.channels_last)):
            times[layout] = median_time(make_fn(fmt), reps)
        out[row] = times

    if "bn" in job["only"]:
        for shape in BN_SHAPES:
            x, g, w, b = arrays(shape)
            key = "x".join(map(str, shape))

            def train(fmt):
                xt = torch.from_numpy(x).contiguous(memory_format=fmt)
                gt = torch.from_numpy(g).contiguous(memory_format=fmt)
                wt = torch.from_numpy(w).requires_grad_()
                bt = torch.from_numpy(b).requires_grad_()
                rm, rv = torch.zeros(shape[1]), torch.ones(shape[1])

                def fn():
                    xl = xt.detach().requires_grad_()
                    TF.batch_norm(xl, rm, rv, wt, bt, training=True).backward(gt)

                return fn

            def evaluate(fmt):
                xt = torch.from_numpy(x).contiguous(memory_format=fmt)
                wt, bt = torch.from_numpy(w), torch.from_numpy(b)
                rm, rv = torch.zeros(shape[1]), torch.ones(shape[1])

                def fn():
                    with torch.no_grad():
                        TF.batch_norm(xt, rm, rv, wt, bt, training=False)

                return fn

            both_layouts(f"bn train fwd+bwd {key}", train)
            both_layouts(f"bn eval fwd {key}", evaluate)
    if "add" in job["only"]:
        a, b2, _, _ = arrays(ADD_SHAPE)

        def add(fmt, relu=False):
            at = torch.from_numpy(a).contiguous(memory_format=fmt)
            bt = torch.from_numpy(b2).contiguous(memory_format=fmt)

            def fn():
                with torch.no_grad():
                    s = at + bt
                    if relu:
                        s.relu_()

            return fn

        both_layouts("add 8x64x56x56", add)
        both_layouts("add+relu 8x64x56x56", lambda fmt: add(fmt, True))
    if "relu6" in job["only"]:
        x, g, _, _ = arrays(RELU6_SHAPE)

        def fwd(fmt):
            xt = torch.from_numpy(x).contiguous(memory_format=fmt)

            def fn():
                with torch.no_grad():
                    TF.relu6(xt)

            return fn

        def fwdbwd(fmt):
            xt = torch.from_numpy(x).contiguous(memory_format=fmt)
            gt = torch.from_numpy(g).contiguous(memory_format=fmt)

            def fn():
                TF.relu6(xt.detach().requires_grad_()).backward(gt)

            return fn

        both_layouts("relu6 fwd 8x96x112x112", fwd)
        both_layouts("relu6 fwd+bwd 8x96x112x112", fwdbwd)
    return out


def worker_loop():
    for line in sys.stdin:
        job = json.loads(line)
        print(json.dumps(torch_round(job)), flush=True)


# --------------------------------------------------------------------------- driver
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", default="bn,add,relu6")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every round's times")
    parser.add_argument("--threads", default=THREADS, help="1 or 2 (read before NumPy loads)")
    args = parser.parse_args()
    worker = None
    if not args.no_torch:
        worker = subprocess.Popen([sys.executable, __file__, "--worker", f"--threads={THREADS}"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=os.environ)
    rounds = []
    for r in range(args.rounds):
        job = {"repeats": args.repeats, "only": args.only.split(","), "round": r}
        mine = convscope_round(job)
        theirs = {}
        if worker is not None:
            worker.stdin.write(json.dumps(job) + "\n")
            worker.stdin.flush()
            theirs = json.loads(worker.stdout.readline())
        rounds.append((mine, theirs))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        if args.verbose:
            for row, times in mine.items():
                print(f"  {row}: " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in times.items())
                      + ", torch " + ", ".join(f"{k} {v * 1e3:.2f}"
                                               for k, v in theirs.get(row, {}).items()),
                      file=sys.stderr)
    if worker is not None:
        worker.stdin.close()
        worker.wait()
    report(rounds)


def report(rounds):
    rows = list(rounds[0][0])
    print(f"{'row':32s} {'numpy ms':>9s} {'loops ms':>9s} {'torch ms':>9s} "
          f"{'loops/numpy':>11s} {'loops/torch':>11s}")
    for row in rows:
        num = [r[0][row]["numpy"] for r in rounds]
        new = [r[0][row]["loops"] for r in rounds]
        tor = [min(r[1][row].values()) if row in r[1] else np.nan for r in rounds]
        ratio_np = np.median([b / a for a, b in zip(num, new, strict=True)])
        ratio_t = np.median([b / t for b, t in zip(new, tor, strict=True)])
        print(f"{row:32s} {np.median(num) * 1e3:9.2f} {np.median(new) * 1e3:9.2f} "
              f"{np.median(tor) * 1e3:9.2f} {ratio_np:11.2f} {ratio_t:11.2f}")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_loop()
    else:
        main()
