"""The traced graph: what a trace records, replaying it, its JSON form, and the edges.

Every tool (explain, pictures, ONNX, model files) reads this graph, so a wrong edge here is
a wrong picture everywhere: the tests build models whose true wiring is known by hand.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
import convscope.functional as F
from convscope import nn
from convscope.errors import ArgumentError, FileFormatError, ShapeError
from convscope.graph import GraphModule, from_json, to_json, trace


class Block(nn.Module):
    """ResNet's basic block: one ReLU module called twice, a skip connection."""

    def __init__(self, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, 2 * c if stride == 2 else c, 3, stride, 1, seed=1)
        self.bn1 = nn.BatchNorm2d(self.conv1.out_channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(self.conv1.out_channels, self.conv1.out_channels, 3, padding=1,
                               seed=2)
        self.down = nn.Conv2d(c, 2 * c, 1, stride=2, seed=3) if stride == 2 else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        skip = x if self.down is None else self.down(x)
        return self.relu(out + skip)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, seed=0), nn.ReLU())
        self.layer = nn.Sequential(Block(4), Block(4, stride=2))
        self.fc = nn.Linear(8 * 4 * 4, 5, seed=4)

    def forward(self, x):
        x = self.layer(self.stem(x))
        x = x.reshape(x.shape[0], -1)
        return self.fc(x)


def _bn_stats(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so eval mode differs from the identity."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[:] = rng.normal(0, 0.1, m.num_features)
            m.running_var[:] = rng.uniform(0.5, 1.5, m.num_features)


# ----------------------------------------------------------------------------- what is recorded
def test_the_recorded_edges_are_the_true_wiring():
    g = trace(Net(), (3, 8, 8))
    names = [n.name for n in g.nodes]
    assert names == ["stem.0", "stem.1", "layer.0.conv1", "layer.0.bn1", "layer.0.relu",
                     "layer.0.conv2", "layer.0.add", "layer.0.relu#2", "layer.1.conv1",
                     "layer.1.bn1", "layer.1.relu", "layer.1.conv2", "layer.1.down",
                     "layer.1.add", "layer.1.relu#2", "reshape", "fc"]
    edges = {n.name: n.inputs for n in g.nodes}
    assert edges["stem.0"] == ("input",)
    assert edges["layer.0.add"] == ("layer.0.conv2", "stem.1")      # the block's own input
    assert edges["layer.1.down"] == ("layer.0.relu#2",)             # the shortcut reads x
    assert edges["layer.1.add"] == ("layer.1.conv2", "layer.1.down")
    assert [n.index for n in g.nodes] == list(range(len(g.nodes)))
    by = g.by_name()
    assert by["layer.0.relu#2"].module is by["layer.0.relu"].module  # one module, two calls
    assert by["layer.0.add"].kind == "function" and by["layer.0.add"].path == "layer.0"
    assert by["layer.1.down"].shape == (1, 8, 4, 4) and by["fc"].shape == (1, 5)
    assert g.containers["layer.1"] == "layer.1.relu#2" and g.containers["stem"] == "stem.1"
    assert g.outputs == ("fc",) and not g.is_chain() and g.failure is None
    assert [u.name for u in g.users("stem.1")] == ["layer.0.conv1", "layer.0.add"]


def test_a_sequential_is_a_chain_named_as_pytorch_indexes_it():
    model = cs.parse("16x16x3 | conv(4, 3, padding=1) | relu | maxpool(2) | flatten | linear(2)")
    g = trace(model)
    assert g.is_chain() and [n.name for n in g.nodes] == ["0", "1", "2", "3", "4"]
    assert [n.op for n in g.nodes] == ["conv2d", "relu", "max_pool2d", "flatten", "linear"]
    assert g.find(2) is g.find("2") is g.nodes[2]


def test_find_by_number_path_or_container_and_clear_errors():
    g = trace(Net(), (3, 8, 8))
    assert g.find("layer.1.conv2").index == 11 and g.find(11).name == "layer.1.conv2"
    assert g.find("layer.0").name == "layer.0.relu#2"   # a container: the node of its output
    with pytest.raises(ArgumentError, match=r"no layer 'layer.1.conv3'.*did you mean"):
        g.find("layer.1.conv3")
    with pytest.raises(ArgumentError, match=r"there is no node 99: the model has 17 \(0 to 16\)"):
        g.find(99)


def test_a_shapes_only_trace_computes_nothing_and_agrees_with_the_real_one():
    model = Net()
    x = np.random.default_rng(0).random((3, 3, 8, 8), dtype=np.float32)
    fast = trace(model, (3, 8, 8), batch=3)
    real = trace(model, inputs=x, values=True)
    assert [(n.name, n.shape) for n in fast.nodes] == [(n.name, n.shape) for n in real.nodes]
    for n in fast.nodes:
        if n.kind == "module":  # a leaf answered from its output_shape: no data behind it
            assert fast.values is None
    model.eval()
    np.testing.assert_array_equal(real.values["fc"], model(x).data)


def test_a_trace_leaves_modes_and_running_statistics_alone():
    model = Net()
    _bn_stats(model)
    before = {k: np.asarray(v).copy() for k, v in model.state_dict().items()}
    model.train()
    trace(model, inputs=np.ones((2, 3, 8, 8), np.float32), values=True)
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), before[k], err_msg=k)


def test_a_subclass_that_overrides_forward_is_traced_through():
    class Doubled(nn.Conv2d):
        def forward(self, x):
            return F.conv2d(x, self.weight, self.bias, padding=1) * 2.0

    g = trace(nn.Sequential(Doubled(3, 2, 3, seed=0)), (3, 5, 5))
    assert [n.op for n in g.nodes] == ["conv2d", "mul"]
    assert [n.kind for n in g.nodes] == ["function", "function"]
    assert g.sources["0.weight"].kind == "param" and g.sources["0.weight"].trainable
    assert g.nodes[0].inputs == ("input", "0.weight", "0.bias")


def test_tied_weights_are_one_parameter_stepped_once():
    layer = nn.Conv2d(3, 3, 3, padding=1, seed=0)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(model.parameters())) == 2
    assert sum(p.data.size for p in model.parameters()) == 3 * 3 * 9 + 3
    e = cs.explain(model, (3, 6, 6))
    assert [r["params"] for r in e.rows] == [84, 0, 0] and e.total_params == 84
    opt = cs.optim.SGD(model.parameters(), lr=0.1)
    before = layer.weight.numpy().copy()
    loss = model(np.ones((1, 3, 6, 6), np.float32)).sum()
    loss.backward()
    grad = layer.weight.grad.numpy().copy()
    opt.step()
    np.testing.assert_allclose(layer.weight.numpy(), before - 0.1 * grad, rtol=1e-6)


def test_traces_in_two_threads_do_not_mix():
    results: dict[int, list[str]] = {}

    def run(k: int) -> None:
        model = Net() if k else cs.parse("8x8x3 | conv(2, 3) | relu")
        for _ in range(20):
            results[k] = [n.name for n in trace(model, (3, 8, 8)).nodes]

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == ["0", "1"] and len(results[1]) == 17


# ----------------------------------------------------------------------------- replay and JSON
@settings(max_examples=6, deadline=None)
@given(batch=st.integers(1, 4), size=st.sampled_from([8, 12]))
def test_a_graph_replays_as_the_model_on_any_batch(batch, size):
    model = Net() if size == 8 else None
    if model is None:  # another input size: the linear layer follows it
        model = Net()
        model.fc = nn.Linear(8 * 6 * 6, 5, seed=4)
    _bn_stats(model)
    g = trace(model, (3, size, size))                       # traced with batch 1
    replay = GraphModule(g).eval()
    x = np.random.default_rng(batch).random((batch, 3, size, size), dtype=np.float32)
    model.eval()
    np.testing.assert_array_equal(replay(x).data, model(x).data)
    assert list(replay.state_dict()) == list(model.state_dict())


def test_json_round_trip_rebuilds_the_model_from_data_alone():
    model = Net()
    _bn_stats(model, 1)
    text = to_json(trace(model, (3, 8, 8)))
    data = json.loads(text)
    assert {n["layer"] for n in data["nodes"] if n["kind"] == "module"} == {
        "Conv2d", "ReLU", "BatchNorm2d", "Linear"}
    rebuilt = GraphModule(from_json(text))
    rebuilt.load_state_dict(model.state_dict())
    x = np.random.default_rng(2).random((2, 3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(rebuilt.eval()(x).data, model.eval()(x).data)


def test_a_saved_graph_model_loads_and_trains(tmp_path):
    model = Net()
    model.input_shape = (3, 8, 8)
    cs.save(model, tmp_path / "net.safetensors", classes=list("abcde"))
    loaded = cs.load(tmp_path / "net.safetensors")
    assert isinstance(loaded, GraphModule) and loaded.classes == list("abcde")
    x = np.random.default_rng(3).random((4, 3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(loaded(x).data, model.eval()(x).data)
    loaded.train()
    opt = cs.optim.SGD(loaded.parameters(), lr=0.05)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(loaded(x), np.array([0, 1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def _graph_json(**change) -> str:
    data = json.loads(to_json(trace(cs.parse("8x8x1 | conv(2, 3) | relu"))))
    for key, value in change.items():
        node, field = key.split("__")
        data["nodes"][int(node)][field] = value
    return json.dumps(data)


@pytest.mark.parametrize(("change", "pattern"), [
    ({"1__inputs": ["1"]}, r"reads '1', which no earlier node or source makes \(a cycle"),
    ({"1__inputs": ["nowhere"]}, r"reads 'nowhere'.*dangling edge"),
    ({"0__layer": "os.system"}, r"names the layer class 'os.system', which convscope does not"),
    ({"1__kind": "function", "1__target": "builtins.eval"}, r"calls 'builtins.eval'"),
    ({"0__attrs": {"in_channels": 1, "evil": "__import__('os')"}}, r"malformed"),
    ({"1__name": "0"}, r"two nodes are named '0'"),
    ({"0__kind": "code"}, r"has the kind 'code'"),
])
def test_hostile_graph_json_is_refused_clearly(change, pattern):
    with pytest.raises(FileFormatError, match=pattern):
        g = from_json(_graph_json(**change))
        GraphModule(g)


def test_an_operation_the_tracer_cannot_replay_is_shown_but_not_saved():
    from convscope.tensor import make

    class Odd(nn.Module):
        def forward(self, x):
            return make(np.cbrt(x.data), (x,), lambda g: (g,), "cbrt")

    g = trace(Odd(), (1, 4, 4))
    assert [(n.op, n.kind) for n in g.nodes] == [("cbrt", "opaque")]
    assert "cbrt" in cs.explain(Odd(), (1, 4, 4)).table()
    with pytest.raises(ArgumentError, match=r"node 0 \(cbrt\) is the operation 'cbrt', which "
                                            r"convscope cannot write down as data"):
        to_json(g)


# ----------------------------------------------------------------------------- failures
def test_branches_that_do_not_fit_are_named_with_their_volumes():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1, seed=0)
            self.b = nn.Conv2d(3, 8, 1, seed=0)

        def forward(self, x):
            return self.a(x) + self.b(x)

    g = trace(Bad(), (3, 16, 16))
    assert g.failure is not None and g.failure.op == "add"
    assert [n.name for n in g.nodes] == ["a", "b"]
    e = cs.explain(Bad(), (3, 16, 16))
    assert e.output_shape is None
    assert "the branches that meet here cannot be added: 8x8x8 from 0 (a); 16x16x8 from 1 (b)" \
        in e.error
    assert "Fix: give both branches the same height, width and depth" in e.error
    with pytest.raises(ShapeError, match=r"add: shapes \(1, 8, 8, 8\) and \(1, 8, 16, 16\) cannot "
                       r"be broadcast together"):
        trace(Bad(), (3, 16, 16), strict=True)


# ----------------------------------------------------------------------------- layers' shapes
LEAVES = [
    lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    lambda: nn.Conv2d(4, 4, 3, padding="same", groups=4, padding_mode="reflect"),
    lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    lambda: nn.AvgPool2d(2, 1, 1, count_include_pad=False),
    lambda: nn.BatchNorm2d(3),
    lambda: nn.ReLU(),
    lambda: nn.Dropout(0.3),
    lambda: nn.Identity(),
    lambda: nn.Flatten(),
    lambda: nn.Flatten(2),
]


@settings(max_examples=20, deadline=None)
@given(k=st.integers(0, len(LEAVES) - 1), h=st.integers(5, 11), w=st.integers(5, 11),
       n=st.integers(1, 3))
def test_every_layers_output_shape_is_what_its_forward_gives(k, h, w, n):
    layer = LEAVES[k]()
    c = 4 if k == 1 else 3
    x = np.random.default_rng(k).random((n, c, h, w), dtype=np.float32)
    layer.eval()
    assert layer.output_shape(x.shape) == layer(x).shape
    rebuilt = type(layer)(**layer.get_config())
    assert rebuilt.get_config() == layer.get_config()


def test_hooks_do_not_see_a_trace_but_see_every_real_call():
    model = Net()
    calls = []
    model.layer[0].relu.register_forward_hook(lambda m, a, out: calls.append(out.shape))
    trace(model, (3, 8, 8))
    cs.explain(model, (3, 8, 8))
    assert calls == []
    model(np.zeros((2, 3, 8, 8), np.float32))
    assert calls == [(2, 4, 8, 8), (2, 4, 8, 8)]  # the block's ReLU, called twice


def test_replay_keeps_arguments_in_their_places_when_some_are_left_out():
    class Skips(nn.Module):
        def forward(self, x):
            y = F.max_pool2d(x, 3, padding=1)                       # stride left out
            y = cs.nn.functional.interpolate(y, size=(9, 9), mode="bilinear")
            return cs.nn.functional.interpolate(y, scale_factor=2)  # size left out

    model = Skips()
    x = np.random.default_rng(5).random((2, 3, 9, 9), dtype=np.float32)
    replay = GraphModule(from_json(to_json(trace(model, (3, 9, 9)))))
    np.testing.assert_array_equal(replay(x).data, model(x).data)
    assert explain_rf(model) == ["3x3", "3x3", "3x3"]


def explain_rf(model):
    return [r["rf_text"] for r in cs.explain(model, (3, 9, 9)).rows]
