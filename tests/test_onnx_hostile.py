"""Hostile ONNX graphs through ``load_onnx``: each one loads and computes what ONNX Runtime
computes, or is refused with a convscope error that names the file; none hangs, none
crashes, none allocates what the file claims before checking it.

Two parts: hand-made hostile DAGs (cycles, dangling edges, names written twice, a huge
fan-out, 20,000-node chains, paths 2,000 scopes deep, absurd shapes and attributes, names
that are not UTF-8), and a seeded fuzz of structured mutations of two graph models exported
by convscope (attributes set to extreme values, operators swapped, edges rewired into cycles
or dangling, outputs duplicated, nodes dropped or repeated, initializers with other shapes,
types or values, bytes flipped). The record of the fuzz is printed for the notes.
"""

from __future__ import annotations

import collections
import random
import time

import numpy as np
import pytest

import convscope as cs
from convscope.errors import ConvscopeError, FileFormatError
from convscope.interop import export_onnx, load_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, TP = onnx.helper, onnx.TensorProto
nn, F = cs.nn, cs.nn.functional


def ort_run(data: bytes, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def save(tmp_path, nodes, inits=(), shape=("N", 1, 2, 2), opset=17, name="h.onnx",
         domains=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TP.FLOAT, [])],
        [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, 1) for d in domains])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def load_within(path, seconds: float = 3.0):
    start = time.perf_counter()
    try:
        return load_onnx(path)
    finally:
        assert time.perf_counter() - start < seconds, f"load_onnx took over {seconds} s"


def refused(path, pattern):
    with pytest.raises(FileFormatError, match=pattern):
        load_within(path)


def same_as_ort(model, path, shape=(2, 1, 2, 2)):
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    want = ort_run(path.read_bytes(), x)
    got = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1, np.abs(want).max()))


# --------------------------------------------------------------------------- hand-made
N = 20_000


def chain_of(op, n):
    return [helper.make_node(op, ["x" if i == 0 else f"t{i - 1}"], [f"t{i}" if i < n - 1 else "y"],
                             name=f"n{i}") for i in range(n)]


def test_a_long_cycle_and_a_self_loop_are_refused_quickly(tmp_path):
    ring = [helper.make_node("Relu", [f"t{(i - 1) % N}"], [f"t{i}"], name=f"r{i}")
            for i in range(N)] + [helper.make_node("Relu", ["t0"], ["y"])]
    refused(save(tmp_path, ring), r"the graph has a cycle: 'r0' \(Relu\) -> 'r1' \(Relu\) -> .* "
            r"-> \.\.\. \(20000 nodes in all\) -> 'r0' \(Relu\)")
    refused(save(tmp_path, [helper.make_node("Relu", ["x", "y"], ["y"], name="me")]),
            r"cycle: 'me' \(Relu\) -> 'me' \(Relu\)")


def test_a_dangling_edge_at_the_end_of_a_long_chain_is_found(tmp_path):
    nodes = chain_of("Relu", N)
    nodes[-1].input[0] = "nowhere"
    refused(save(tmp_path, nodes), rf"node {N - 1} \('n{N - 1}', Relu\): it reads 'nowhere'")


def test_a_20000_node_chain_and_a_5000_node_dag_load_and_compute(tmp_path):
    path = save(tmp_path, chain_of("Relu", N))
    model = load_within(path)
    assert isinstance(model, nn.Sequential) and len(model) == N
    same_as_ort(model, path)
    adds = [helper.make_node("Add", ["x" if i == 0 else f"t{i - 1}", "x"],
                             [f"t{i}" if i < 4999 else "y"]) for i in range(5000)]
    path = save(tmp_path, adds, name="adds.onnx")
    model = load_within(path)
    assert len(model.graph.nodes) == 5000
    same_as_ort(model, path)


def test_a_huge_fan_out_loads_in_linear_time(tmp_path):
    nodes = [helper.make_node("Sigmoid", ["x"], [f"s{i}"]) for i in range(5000)]
    nodes.append(helper.make_node("Concat", [f"s{i}" for i in range(5000)], ["y"], axis=1))
    path = save(tmp_path, nodes)
    model = load_within(path)
    same_as_ort(model, path)


def test_names_that_are_too_deep_or_not_text_are_handled(tmp_path):
    deep = "".join(f"/{'.'.join(['a'] * (i + 1))}" for i in range(2000))
    nodes = [helper.make_node("Relu", ["x"], ["a"], name=deep + "/Relu"),
             helper.make_node("Add", ["a", "x"], ["y"], name="/" + "x" * 100_000 + "/Add")]
    path = save(tmp_path, nodes)
    model = load_within(path)
    assert [n.name for n in model.graph.nodes] == ["relu", "add"]  # not module paths
    same_as_ort(model, path)
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="RELU_NAME"),
             helper.make_node("Add", ["a", "x"], ["y"])]
    data = save(tmp_path, nodes).read_bytes().replace(b"RELU_NAME", b"RELU\xff\xfeAME")
    (tmp_path / "bad.onnx").write_bytes(data)
    refused(tmp_path / "bad.onnx", r"(not valid UTF-8|not a valid ONNX model)")


def test_names_written_twice_are_refused(tmp_path):
    w = np.ones((1, 1, 1, 1), np.float32)
    refused(save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"])], [("w", w), ("w", w)]),
            r"two initializers are named 'w'")
    refused(save(tmp_path, [helper.make_node("Relu", ["x"], ["a"]),
                            helper.make_node("Relu", ["a"], ["a"], name="twice"),
                            helper.make_node("Relu", ["a"], ["y"])]),
            r"\('twice', Relu\): it writes 'a', which node 0 \('unnamed', Relu\) writes too")


@pytest.mark.parametrize("case", ["resize", "constant_of_shape", "reshape", "stride", "flag",
                                  "alpha", "axis", "subgraph", "domain", "transpose_batch"])
def test_absurd_sizes_and_attributes_are_refused_before_anything_is_made(tmp_path, case):
    w = np.ones((1, 1, 1, 1), np.float32)
    nodes, inits, pattern = {
        "resize": ([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest",
                                     coordinate_transformation_mode="asymmetric",
                                     nearest_mode="floor")],
                   [("s", np.array([1, 1, 1e9, 1e9], np.float32))],
                   r"Resize\): it does not fit the volume here.*would"),
        "constant_of_shape": ([helper.make_node("ConstantOfShape", ["s"], ["c"]),
                               helper.make_node("Add", ["x", "c"], ["y"])],
                              [("s", np.array([2**40], np.int64))],
                              r"ConstantOfShape\): its constant arithmetic cannot be worked out"),
        "reshape": ([helper.make_node("Reshape", ["x", "s"], ["y"])],
                    [("s", np.array([0, 2**40, -1], np.int64))],
                    r"Reshape\): it cannot reshape \(1, 2, 2\) to \[0, 1099511627776, -1\]"),
        "stride": ([helper.make_node("Conv", ["x", "w"], ["y"], strides=[2**40, 1])], [("w", w)],
                   r"attribute 'strides' holds a size beyond 2\*\*31"),
        "flag": ([helper.make_node("Flatten", ["x"], ["f"]),
                  helper.make_node("Gemm", ["f", "m"], ["y"], transB=2**62)],
                 [("m", np.ones((4, 3), np.float32))], r"attribute 'transB' must be 0 or 1"),
        "alpha": ([helper.make_node("Flatten", ["x"], ["f"]),
                   helper.make_node("Gemm", ["f", "m"], ["y"], alpha=float("-inf"))],
                  [("m", np.ones((4, 3), np.float32))], r"alpha and beta must be finite"),
        "axis": ([helper.make_node("Relu", ["x"], ["a"]),
                  helper.make_node("Flatten", ["a"], ["y"], axis=-7)], [],
                 r"only Flatten\(axis=1\)"),
        "domain": ([helper.make_node("Relu", ["x"], ["y"], domain="com.evil")], [],
                   r"operator Relu \(domain 'com\.evil'\) is not supported"),
        "subgraph": ([helper.make_node("If", ["c"], ["y"], then_branch=_branch("Relu"),
                                       else_branch=_branch("Sigmoid"))],
                     [("c", np.array(True))], r"If\): operator If is not supported"),
        "transpose_batch": ([helper.make_node("Relu", ["x"], ["a"]),
                             helper.make_node("Transpose", ["a"], ["y"], perm=[1, 0, 2, 3])], [],
                            r"it must keep the batch axis first"),
    }[case]
    refused(save(tmp_path, nodes, inits, domains=["com.evil"] if case == "domain" else []),
            pattern)


def _branch(op):
    """A subgraph for If: ``op`` of the outer input."""
    return helper.make_graph([helper.make_node(op, ["x"], ["z"])], op, [],
                             [helper.make_tensor_value_info("z", TP.FLOAT, ["N", 1, 2, 2])])


def test_weights_that_are_not_finite_are_refused(tmp_path):
    """Found by the fuzz: a -inf weight meets a zero of padding, 0 * -inf = NaN here, while
    ONNX Runtime skips the padded cells; a model with such weights is damaged anyway."""
    w = np.ones((1, 1, 3, 3), np.float32)
    w[0, 0, 0, 1] = -np.inf
    refused(save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1],
                                             name="c")], [("w", w)]),
            r"\('c', Conv\): its weight 'w' holds 1 values that are not finite numbers")


def test_an_absurd_input_volume_loads_without_allocating(tmp_path):
    w = np.ones((2, 1, 3, 3), np.float32)
    path = save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"])], [("w", w)],
                shape=("N", 1, 2**31, 2**31))
    model = load_within(path)  # a model for that volume: nothing is made until it runs
    assert model.input_shape == (1, 2**31, 2**31)


# --------------------------------------------------------------------------- the fuzz
class Residual(nn.Module):
    """Residual add, grouped conv, batch norm, pooling, transposed conv, resize, concat."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, seed=0)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2, seed=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2, seed=2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 5, seed=3)

    def forward(self, x):
        a = F.relu(self.bn1(self.conv1(x)))
        b = a + F.sigmoid(self.conv2(a))
        c = self.up(self.pool(b))
        d = cs.cat([c, F.interpolate(self.pool(c), scale_factor=2)], dim=1)
        g = F.adaptive_avg_pool2d(d, 1)
        return self.fc(cs.flatten(F.leaky_relu(cs.cat([g, g * 0.5], dim=1), 0.1), 1))


class Skips(nn.Module):
    """Reflect and circular padding, bilinear resizing, GELU and SiLU, a skip concat."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect", seed=4)
        self.b = nn.Conv2d(4, 4, 3, stride=2, padding=1, padding_mode="circular", seed=5)
        self.c = nn.Conv2d(8, 2, 1, seed=6)

    def forward(self, x):
        a = F.gelu(self.a(x))
        b = F.interpolate(F.silu(self.b(a)), scale_factor=2, mode="bilinear")
        return F.softmax(self.c(cs.cat([a, b], dim=1)), 1)


INTS = [-(2**40), -7, -1, 0, 1, 2, 3, 5, 64, 2**31, 2**62]
FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 1e-30, 1e30, 0.5, 2.0]
OPS = ["Relu", "Sigmoid", "Add", "Mul", "Concat", "Conv", "MaxPool", "Gemm", "Flatten",
       "Resize", "LRN", "If", "Identity", "Reshape", "Transpose", "ConvTranspose", "Erf",
       "Softmax", "Gather", "Pad", "Slice"]


def _attr(node, rng):
    a = rng.choice(list(node.attribute))
    if a.type == onnx.AttributeProto.INT:
        a.i = rng.choice(INTS)
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = rng.choice(FLOATS)
    elif a.type == onnx.AttributeProto.INTS and len(a.ints):
        a.ints[rng.randrange(len(a.ints))] = rng.choice(INTS)
        if rng.random() < 0.3:
            a.ints.append(rng.choice(INTS))
    elif a.type == onnx.AttributeProto.STRING:
        a.s = rng.choice([b"", b"nearest", b"linear", b"cubic", b"half_pixel", b"align_corners",
                          b"SAME_UPPER", b"VALID", b"wrap", b"reflect", b"xx"])
    return f"attr {node.op_type}.{a.name}"


def mutate(proto, rng) -> str:
    """One structured change to ``proto`` (in place); returns what it did."""
    g = proto.graph
    nodes = g.node
    k = rng.randrange(len(nodes))
    node = nodes[k]
    names = [o for m in nodes for o in m.output] + [t.name for t in g.initializer] + ["input"]
    kind = rng.choice(["attr", "attr", "attr", "op", "rewire", "rewire", "dup_out", "drop",
                       "dup_node", "swap", "out_name", "init_dims", "init_type", "init_values",
                       "input_dims"])
    if kind == "attr" and node.attribute:
        return _attr(node, rng)
    if kind == "op":
        node.op_type = rng.choice(OPS)
    elif kind == "rewire" and node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice(names + ["ghost", ""])
    elif kind == "dup_out" and k > 0:
        node.output[0] = nodes[rng.randrange(k)].output[0]
    elif kind == "drop":
        del nodes[k]
    elif kind == "dup_node":
        nodes.insert(rng.randrange(len(nodes)), node)
    elif kind == "swap":
        j = rng.randrange(len(nodes))
        a, b = type(node)(), type(node)()
        a.CopyFrom(nodes[k])
        b.CopyFrom(nodes[j])
        nodes[k].CopyFrom(b)
        nodes[j].CopyFrom(a)
    elif kind == "out_name":
        g.output[0].name = rng.choice(names + ["ghost"])
    elif kind.startswith("init") and len(g.initializer):
        t = rng.choice(list(g.initializer))
        if kind == "init_dims" and len(t.dims):
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 2, 3, 7, 2**20, 2**40])
        elif kind == "init_type":
            t.data_type = rng.choice([1, 6, 7, 10, 11, 16, 99])
        else:
            try:
                arr = onnx.numpy_helper.to_array(t).copy()
            except ValueError:
                return kind
            if arr.size and arr.dtype.kind == "f":
                arr.reshape(-1)[rng.randrange(arr.size)] = rng.choice(FLOATS)
                t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    elif kind == "input_dims":  # the batch axis stays free: ORT would run only that batch
        dims = g.input[0].type.tensor_type.shape.dim
        d = dims[rng.randrange(1, len(dims))]
        if rng.random() < 0.5:
            d.dim_value = rng.choice([0, 1, 2, 5, 7, 2**31, 2**40])
        else:
            d.dim_param = "Q"
    return kind


def _agree(y: np.ndarray, want: np.ndarray) -> bool:
    if y.shape != want.shape or not np.array_equal(np.isnan(y), np.isnan(want)):
        return False
    finite = np.isfinite(want)
    if not np.array_equal(y[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]):
        return False
    scale = max(1.0, float(np.abs(want[finite]).max(initial=0.0)))
    return bool(np.allclose(y[finite], want[finite], rtol=1e-4, atol=1e-5 * scale))


def fuzz(tmp_path, model, shape, count, seed) -> collections.Counter:
    base = onnx.load(str(export_onnx(model, tmp_path / "base.onnx", input_shape=shape)))
    rng = random.Random(seed)
    outcome: collections.Counter = collections.Counter()
    path = tmp_path / "fuzz.onnx"
    for _ in range(count):
        proto = onnx.ModelProto()
        proto.CopyFrom(base)
        what = [mutate(proto, rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        data = bytearray(proto.SerializeToString())
        if rng.random() < 0.15:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= rng.randint(1, 255)
            what.append("bytes")
        path.write_bytes(bytes(data))
        start = time.perf_counter()
        try:
            back = load_onnx(path)
        except ConvscopeError as exc:
            assert "fuzz.onnx" in str(exc), (what, str(exc)[:300])
            outcome["refused clearly"] += 1
            continue
        finally:
            assert time.perf_counter() - start < 2.0, (what, "load_onnx took over 2 s")
        x = np.random.default_rng(1).uniform(-1, 1, (2, *back.input_shape)).astype(np.float32)
        with np.errstate(all="ignore"):
            y = back(x).numpy()
        want = ort_run(bytes(data), x)
        assert _agree(y, want), (what, "loaded, but not what ONNX Runtime computes")
        outcome["loaded, as ONNX Runtime computes"] += 1
    return outcome


def test_fuzzed_graph_files_load_correctly_or_are_refused(tmp_path):
    residual = Residual().eval()
    rng = np.random.default_rng(0)
    residual.bn1.register_buffer("running_mean", rng.uniform(-0.5, 0.5, 8).astype(np.float32))
    residual.bn1.register_buffer("running_var", rng.uniform(0.5, 2, 8).astype(np.float32))
    record = fuzz(tmp_path, residual, (3, 8, 8), 300, seed=11)
    record += fuzz(tmp_path, Skips().eval(), (3, 6, 8), 200, seed=12)
    total = sum(record.values())
    assert total == 500 and record["refused clearly"] >= 100
    assert record["loaded, as ONNX Runtime computes"] >= 50
    print(f"\nfuzzed ONNX graph files: {total}, {dict(record)}; none crashed or hung")
