"""One benchmark worker: times one library alone in this process and prints JSON.

Run by ``benchmarks/run.py`` (never imported by it), one process per library and round, so
that no other library's idle thread pool competes for the two cores. Usage::

    python benchmarks/worker.py LIB JOB_JSON

``LIB`` is one of ``convscope``, ``torch``, ``onnxruntime``, ``numpy``; the job names the
rows, the repeats and what to measure. The last line of stdout is the result as JSON.
"""

# ruff: noqa: B023  (closures are timed inside the loop iteration that defines them)

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def conv_arrays(row: dict, dtype=np.float32):
    rng = np.random.default_rng(0)
    n, c, h, w, o, k, p, g = (row[key] for key in ("n", "c", "h", "w", "o", "k", "p", "g"))
    s = row.get("s", 1)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((o, c // g, k, k)) / np.sqrt(c // g * k * k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    gy = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, wt, b, gy


# --------------------------------------------------------------------------- per library


def convscope_conv(row: dict, repeats: int) -> dict:
    from convscope import functional as F
    from convscope import kernels
    from convscope.tensor import Tensor

    x, w, b, gy = conv_arrays(row)
    p, g, s = row["p"], row["g"], row.get("s", 1)
    geo = ((s, s), ((p, p), (p, p)), (1, 1), g)

    def fwd():
        return kernels.conv2d(x, w, b, *geo)

    def fwdbwd():
        kernels.conv2d(x, w, b, *geo)
        kernels.conv2d_grad_input(gy, w, x.shape[2:], *geo)
        kernels.conv2d_grad_weight(gy, x, w.shape[2:], *geo)
        gy.sum(axis=(0, 2, 3))

    def autograd():
        xt = Tensor(x, requires_grad=True)
        wt = Tensor(w, requires_grad=True)
        bt = Tensor(b, requires_grad=True)
        F.conv2d(xt, wt, bt, stride=s, padding=p, groups=g).backward(gy)

    return {"fwd": median_time(fwd, repeats), "fwdbwd": median_time(fwdbwd, repeats),
            "autograd": median_time(autograd, repeats)}


def torch_conv(row: dict, repeats: int) -> dict:
    import torch

    x, w, b, gy = conv_arrays(row)
    p, g, s = row["p"], row["g"], row.get("s", 1)
    out = {}
    for name, fmt in (("nchw", torch.contiguous_format), ("cl", torch.channels_last)):
        tx = torch.from_numpy(x).contiguous(memory_format=fmt)
        tw = torch.from_numpy(w).contiguous(memory_format=fmt)
        tb = torch.from_numpy(b)
        tg = torch.from_numpy(gy).contiguous(memory_format=fmt)

        def fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p, groups=g)

        ax, aw, ab = (t.clone().requires_grad_(True) for t in (tx, tw, tb))

        def fwdbwd():
            ax.grad = aw.grad = ab.grad = None
            torch.nn.functional.conv2d(ax, aw, ab, stride=s, padding=p,
                                       groups=g).backward(tg)

        out[f"fwd_{name}"] = median_time(fwd, repeats)
        out[f"fwdbwd_{name}"] = median_time(fwdbwd, repeats)
    return out


def onnxruntime_conv(row: dict, repeats: int) -> dict:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    x, w, b, _ = conv_arrays(row)
    p, g, s = row["p"], row["g"], row.get("s", 1)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[p, p, p, p], group=g,
                            strides=[s, s],
                            kernel_shape=list(w.shape[2:]))
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return {"fwd": median_time(lambda: sess.run(None, {"x": x}), repeats)}


def numpy_im2col_conv(x, w, b, p, g, step=1):
    """The textbook NumPy convolution: strided im2col view, one copy, one tensordot."""
    n, c, h, wd = x.shape
    o, cg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (xp.shape[2] - k) // step + 1, (xp.shape[3] - k) // step + 1
    s = xp.strides
    win = np.lib.stride_tricks.as_strided(
        xp, (n, c, oh, ow, k, k), (s[0], s[1], s[2] * step, s[3] * step, s[2], s[3]))
    ys = []
    for gi in range(g):
        cols = win[:, gi * cg:(gi + 1) * cg]  # (N, cg, oh, ow, k, k)
        wg = w[gi * (o // g):(gi + 1) * (o // g)]
        ys.append(np.tensordot(cols, wg, axes=([1, 4, 5], [1, 2, 3])))  # (N, oh, ow, og)
    y = np.concatenate(ys, axis=-1).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(y) + b[:, None, None]


def numpy_conv(row: dict, repeats: int) -> dict:
    x, w, b, _ = conv_arrays(row)
    return {"fwd": median_time(
        lambda: numpy_im2col_conv(x, w, b, row["p"], row["g"], row.get("s", 1)), repeats)}


# --------------------------------------------------------------------------- pooling


def pool_arrays(row: dict):
    x = np.random.default_rng(0).standard_normal((row["n"], row["c"], row["h"], row["w"]))
    return x.astype(np.float32)


def convscope_pool(row: dict, repeats: int) -> dict:
    from convscope import kernels

    x = pool_arrays(row)
    k, s, p = (row["k"],) * 2, (row["s"],) * 2, (row["p"],) * 2
    if row["op"] == "max":
        # forward as PyTorch's under no_grad: no winner indices recorded
        fwd = lambda: kernels.max_pool2d(x, k, s, p, (1, 1), False, False)  # noqa: E731

        def fwdbwd():
            y, idx = kernels.max_pool2d(x, k, s, p, (1, 1), False)
            kernels.max_pool2d_grad(y, idx, x.shape[2:])
    else:
        fwd = lambda: kernels.avg_pool2d(x, k, s, p, False, True)  # noqa: E731

        def fwdbwd():
            y = kernels.avg_pool2d(x, k, s, p, False, True)
            kernels.avg_pool2d_grad(y, x.shape[2:], k, s, p, False, True)
    return {"fwd": median_time(fwd, repeats), "fwdbwd": median_time(fwdbwd, repeats)}


def torch_pool(row: dict, repeats: int) -> dict:
    import torch

    out = {}
    for name, fmt in (("nchw", torch.contiguous_format), ("cl", torch.channels_last)):
        x = torch.from_numpy(pool_arrays(row)).contiguous(memory_format=fmt)
        f = torch.nn.functional
        op = f.max_pool2d if row["op"] == "max" else f.avg_pool2d
        args = (row["k"], row["s"], row["p"])

        def fwd():
            with torch.no_grad():
                op(x, *args)

        xa = x.clone().requires_grad_(True)

        def fwdbwd():
            xa.grad = None
            y = op(xa, *args)
            y.backward(y.detach())

        out[f"fwd_{name}"] = median_time(fwd, repeats)
        out[f"fwdbwd_{name}"] = median_time(fwdbwd, repeats)
    return out


# --------------------------------------------------------------------------- training step

TINY_VGG = ("64x64x3 | conv(10, 3) | relu | conv(10, 3) | relu | maxpool(2) | conv(10, 3) | "
            "relu | conv(10, 3) | relu | maxpool(2) | flatten | linear(10)")


def train_data(batch: int = 64):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((batch, 3, 64, 64)).astype(np.float32),
            rng.integers(0, 10, batch))


def convscope_train(repeats: int, spec: str = TINY_VGG, batch: int = 64):
    import convscope as cs

    model = cs.parse(spec)
    opt = cs.optim.Adam(model.parameters(), lr=1e-3)
    x, t = train_data(batch)

    def step():
        opt.zero_grad()
        cs.functional.cross_entropy(model(x), t).backward()
        opt.step()

    return step


def convscope_shares(repeats: int) -> dict:
    """What pooling and ReLU cost inside a Tiny VGG step.

    Pooling backward: its kernels timed inside the steps. Pooling forward: each pool
    follows a conv + ReLU and runs in that conv's output pass, so it has no kernel of its
    own; its cost is the fused kernel's time minus the conv + ReLU kernel's on the same
    layers (alternated, medians), with the unfused pool kernel's time beside it. ReLU:
    fused as well; its cost is the step minus the same step without the ReLU layers
    (paired medians; that step also loses the pool fusion, which needs a ReLU).
    """
    import time

    from convscope import kernels
    from convscope.kernels import fast

    rng = np.random.default_rng(0)
    fwd = {"fused": 0.0, "conv_relu": 0.0, "pool_alone": 0.0}
    for c, h in ((10, 62), (10, 28)):  # the two convs followed by a pool
        x = rng.standard_normal((64, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((10, c, 3, 3)) * 0.2).astype(np.float32)
        b = np.zeros(10, np.float32)
        geo = ((1, 1), ((0, 0), (0, 0)), (1, 1), 1)
        y = fast.conv2d_relu(x, w, b, *geo)
        t = {"fused": [], "conv_relu": [], "pool_alone": []}
        for _ in range(max(3, repeats)):
            t["fused"].append(median_time(lambda: fast.conv2d_relu_maxpool(x, w, b, *geo), 5))
            t["conv_relu"].append(median_time(lambda: fast.conv2d_relu(x, w, b, *geo), 5))
            t["pool_alone"].append(median_time(
                lambda: fast.max_pool2d(y, (2, 2), (2, 2), (0, 0), (1, 1), False), 5))
        for k in fwd:
            fwd[k] += float(np.median(t[k]))

    full = convscope_train(0)
    bare = convscope_train(0, TINY_VGG.replace("relu | ", ""))
    t_full, t_bare = [], []
    for _ in range(3 * max(3, repeats)):  # in alternation; the ReLU cost is a small difference
        t_full.append(median_time(full, 5))
        t_bare.append(median_time(bare, 5))
    spent = {"pool": 0.0}
    originals = {name: getattr(kernels, name) for name in ("max_pool2d", "max_pool2d_grad",
                                                           "conv2d_relu_maxpool")}

    def timed(fn):
        def call(*args, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                spent["pool"] += time.perf_counter() - t0
        return call

    for name, fn in originals.items():
        if name != "conv2d_relu_maxpool":
            setattr(kernels, name, timed(fn))
    used = []
    fused = originals["conv2d_relu_maxpool"]
    kernels.conv2d_relu_maxpool = lambda *a, **k: used.append(1) or fused(*a, **k)
    steps, t0 = 20, time.perf_counter()
    for _ in range(steps):
        full()
    step_timed = (time.perf_counter() - t0) / steps
    for name, fn in originals.items():
        setattr(kernels, name, fn)
    step, no_relu = float(np.median(t_full)), float(np.median(t_bare))
    relu = float(np.median(np.subtract(t_full, t_bare)))  # paired: drifts cancel
    return {"step": step, "step_without_relu": no_relu, "relu": relu,
            "pool_backward": spent["pool"] / steps, "step_pool_timed": step_timed,
            "fused_pools_per_step": len(used) / steps,
            "pool_forward": fwd["fused"] - fwd["conv_relu"],
            "pool_forward_unfused": fwd["pool_alone"],
            "pool": spent["pool"] / steps + max(0.0, fwd["fused"] - fwd["conv_relu"])}


def torch_train(repeats: int, channels_last: bool = False, batch: int = 64):
    import torch

    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 10, 3), nn.ReLU(), nn.Conv2d(10, 10, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(10, 10, 3), nn.ReLU(), nn.Conv2d(10, 10, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1690, 10))
    x, t = train_data(batch)
    x, t = torch.from_numpy(x), torch.from_numpy(t)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), t).backward()
        opt.step()

    return step


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def train_memory(lib: str) -> dict:
    """Resident memory of Tiny VGG training steps (batch 64), three ways (bytes).

    ``process_peak``: the whole process's peak (library, model, data and steps).
    ``added_from_model``: the peak minus the memory after the model is built; for
    convscope this includes loading its compiled kernels (Numba's code generator, ~60 MiB,
    set up at the first call), which PyTorch does inside ``import torch``.
    ``added_after_warmup``: the peak minus the memory after two training steps on one
    image, which load every kernel either library uses: the memory of the steps
    themselves. PyTorch runs NCHW, its default.
    """
    step = convscope_train(0) if lib == "convscope" else torch_train(0)
    one = convscope_train(0, batch=1) if lib == "convscope" else torch_train(0, batch=1)
    base_model = rss_bytes()
    one(), one()
    base_warm = rss_bytes()
    for _ in range(3):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"process_peak": peak, "added_from_model": peak - base_model,
            "added_after_warmup": peak - base_warm}


# --------------------------------------------------------------------------- main


def sgemm_rate() -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    t = median_time(lambda: a @ a, 3)
    return 2 * 2048**3 / t / 1e9


def main() -> None:
    import os

    lib, job = sys.argv[1], json.loads(sys.argv[2])
    if lib == "torch":
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    repeats = job["repeats"]
    result: dict = {}
    if job["kind"] == "conv":
        fn = {"convscope": convscope_conv, "torch": torch_conv, "onnxruntime": onnxruntime_conv,
              "numpy": numpy_conv}[lib]
        result = {row["name"]: fn(row, repeats) for row in job["rows"]}
        if lib == "numpy":
            result["sgemm_gflops"] = sgemm_rate()
    elif job["kind"] == "pool":
        fn = {"convscope": convscope_pool, "torch": torch_pool}[lib]
        result = {row["name"]: fn(row, repeats) for row in job["rows"]}
    elif job["kind"] == "train":
        if lib == "convscope":
            result = {"step": median_time(convscope_train(repeats), repeats)}
        else:
            result = {"step_nchw": median_time(torch_train(repeats), repeats),
                      "step_cl": median_time(torch_train(repeats, True), repeats)}
    elif job["kind"] == "memory":
        result = train_memory(lib)
    elif job["kind"] == "shares":
        result = convscope_shares(repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
