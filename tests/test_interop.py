"""Interop: ONNX export and import, and weights from PyTorch and Keras.

Every exported graph passes ``onnx.checker.check_model(full_check=True)`` and strict shape
inference, and ONNX Runtime (one thread) runs it; ORT's float32 output and convscope's are
both compared to convscope's float64 forward with the verification notes' rule for inputs of
order 1 (``rtol=1e-4, atol=1e-5 * max(1, max|y64|)``). A convscope -> ONNX -> convscope round
trip must give identical weights and bit-identical outputs. PyTorch tests (marked ``torch``)
compare to PyTorch's float64 forward the same way.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings

import numpy as np
import pytest

import convscope as cs
from convscope.errors import ArgumentError, FileFormatError, ShapeError
from convscope.interop import export_onnx, load_onnx, load_weights

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, TP = onnx.helper, onnx.TensorProto

DIGITS = ("8x8x1 | conv(16, 3, padding=1) | relu | maxpool(2) | conv(32, 3, padding=1) | relu "
          "| maxpool(2) | flatten | linear(10)")
TINY_VGG = ("64x64x3 | conv(10, 3) | relu | conv(10, 3) | relu | maxpool(2) | conv(10, 3) | relu "
            "| conv(10, 3) | relu | maxpool(2) | flatten | linear(10)")
EVERY = ("19x21x4 | conv(6, 3, padding=1, padding_mode='reflect') | batchnorm(eps=0.001) | relu"
         " | conv(6, 3, padding=((1, 2), (0, 1)), groups=3, padding_mode='replicate')"
         " | conv(8, 3, padding=2, dilation=2, groups=2, bias=false, padding_mode='circular')"
         " | maxpool(3, stride=2, padding=1, ceil_mode=true)"
         " | conv(8, 3, stride=2, padding=1) | relu"
         " | avgpool(2, stride=1, padding=1, ceil_mode=true, count_include_pad=false)"
         " | conv(6, (1, 3), stride=(2, 1), padding=(0, 1)) | avgpool(3, stride=1, padding=1)"
         " | maxpool(2, stride=1, dilation=2)"
         " | flatten | dropout(0.25) | linear(12) | relu | linear(5, bias=false)")
SPECS = {"digits": DIGITS, "tiny_vgg": TINY_VGG, "every_layer": EVERY}


def build(spec: str, seed: int = 0) -> cs.nn.Sequential:
    """The model of ``spec`` with non-trivial BatchNorm statistics, in eval mode."""
    model = cs.parse(spec, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in model:
        if isinstance(layer, cs.nn.BatchNorm2d):
            c = layer.num_features
            layer.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
            layer.bias.data = rng.uniform(-1, 1, c).astype(np.float32)
            layer.register_buffer("running_mean", rng.uniform(-1, 1, c).astype(np.float32))
            layer.register_buffer("running_var", rng.uniform(0.5, 2, c).astype(np.float32))
            layer.register_buffer("num_batches_tracked", np.array(7, np.int64))
    return model.eval()


def inputs(model: cs.nn.Sequential, n: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, *model.input_shape)).astype(np.float32)


def run_ort(path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return session.run(None, {name: x})[0]


def float64_forward(model: cs.nn.Sequential, x: np.ndarray) -> np.ndarray:
    twin = cs.parse(model.spec, seed=0)
    twin.load_state_dict(model.state_dict())
    return twin.double().eval()(x.astype(np.float64)).numpy()


def assert_float32_close(y, y64, what: str) -> float:
    """The verification notes' rule for float32 against float64 with inputs of order 1."""
    y64 = np.asarray(y64, np.float64)
    assert np.shape(y) == y64.shape, f"{what}: shape {np.shape(y)} != {y64.shape}"
    scale = max(1.0, float(np.abs(y64).max()))
    np.testing.assert_allclose(y, y64, rtol=1e-4, atol=1e-5 * scale, err_msg=what)
    return float(np.abs(np.asarray(y, np.float64) - y64).max())


def same_weights(a: cs.nn.Module, b: cs.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    keys = [k for k in sa if not k.endswith("num_batches_tracked")]
    assert keys == [k for k in sb if not k.endswith("num_batches_tracked")]
    for k in keys:
        assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k


# --------------------------------------------------------------------------- export -> ORT
@pytest.mark.parametrize("name,opset", [("digits", 17), ("tiny_vgg", 17), ("every_layer", 13),
                                        ("every_layer", 17), ("every_layer", 19)])
def test_export_is_valid_onnx_and_onnx_runtime_agrees(tmp_path, name, opset):
    model = build(SPECS[name])
    path = export_onnx(model, tmp_path / "m.onnx", opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    want = model(inputs(model, 1)).shape[1:]
    assert [d.dim_param for d in dims[:1]] == ["N"]
    assert [d.dim_value for d in dims[1:]] == list(want)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert proto.opset_import[0].version == opset
    if name == "every_layer":
        ops = [n.op_type for n in proto.graph.node]
        assert ("Gather" in ops) == (opset < 19) and ops.count("Pad") == 2 + (opset >= 19)
    x = inputs(model, 3)  # a batch size other than the one shapes were worked out with
    y64 = float64_forward(model, x)
    assert_float32_close(run_ort(path, x), y64, f"{name}: ONNX Runtime vs float64")
    assert_float32_close(model(x).numpy(), y64, f"{name}: convscope vs float64")


@pytest.mark.parametrize("name,opset", [("digits", 17), ("tiny_vgg", 17), ("every_layer", 17),
                                        ("every_layer", 19)])
def test_convscope_onnx_convscope_round_trip_is_exact(tmp_path, name, opset):
    model = build(SPECS[name])
    back = load_onnx(export_onnx(model, tmp_path / "m.onnx", opset=opset))
    assert back.spec == model.spec and back.input_shape == model.input_shape
    assert not back.training and back.source.endswith("m.onnx")
    same_weights(model, back)
    x = inputs(model)
    assert np.array_equal(back(x).numpy(), model(x).numpy())


def test_export_leaves_the_model_alone_and_writes_eval_semantics(tmp_path):
    model = build("6x6x2 | conv(3, 3) | batchnorm | relu | flatten | dropout(0.5) | linear(4)")
    model.train()
    before = model.state_dict()
    path = export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    for k, v in model.state_dict().items():
        assert np.array_equal(v, before[k])
    x = inputs(model)
    model.eval()
    assert_float32_close(run_ort(path, x), float64_forward(model, x), "eval semantics")


def test_export_replaces_a_file_atomically(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    export_onnx(build(DIGITS), path)
    assert load_onnx(path).spec == DIGITS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left


# (spec, what it reads back as): where PyTorch's ceil rule drops the last window, ceil mode
# makes the same windows as floor mode; ONNX's ceil rule keeps that window, so the layer is
# written (and read back) with ceil_mode=0: the same numbers, a shorter spec.
DROPPED = {"5x6x2 | maxpool(2, padding=1, ceil_mode=true)": "5x6x2 | maxpool(2, padding=1)",
           "5x7x2 | avgpool(2, padding=1, ceil_mode=true)": "5x7x2 | avgpool(2, padding=1)"}
POOLS = [
    *DROPPED,
    "6x7x1 | maxpool(2, stride=3, ceil_mode=true)",
    "7x7x2 | maxpool(3, stride=2, padding=1, dilation=2, ceil_mode=true)",
    "5x6x1 | maxpool((2, 3), stride=2, padding=1, ceil_mode=true)",  # the axes disagree
    "5x6x1 | avgpool((2, 3), stride=2, padding=1, ceil_mode=true, count_include_pad=false)",
    "6x8x2 | avgpool(3, stride=2, padding=1, ceil_mode=true)",  # overhang, padding counted
    "5x7x2 | avgpool(3, stride=2, padding=1, ceil_mode=true, count_include_pad=false)",
    "6x6x1 | avgpool(3, stride=2, padding=1, count_include_pad=false)",
]


@pytest.mark.parametrize("spec", POOLS)
def test_pooling_options_agree_with_onnx_runtime_and_round_trip(tmp_path, spec):
    model = build(spec)
    path = export_onnx(model, tmp_path / "p.onnx")
    onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    x = inputs(model, 2)
    assert_float32_close(run_ort(path, x), float64_forward(model, x), spec)
    back = load_onnx(path)
    assert back.spec == DROPPED.get(spec, spec)
    assert np.array_equal(back(x).numpy(), model(x).numpy())


@pytest.mark.parametrize("spec,back_spec", [
    ("9x10x2 | conv(3, 4, padding='same', dilation=2)", "9x10x2 | conv(3, 4, padding=3, "
     "dilation=2)"),
    ("9x10x2 | conv(3, (2, 5), stride=(3, 2), padding='same')",
     "9x10x2 | conv(3, (2, 5), stride=(3, 2), padding=((0, 0), (1, 2)))"),
])
def test_same_padding_is_written_as_numbers(tmp_path, spec, back_spec):
    model = build(spec)
    path = export_onnx(model, tmp_path / "s.onnx")
    x = inputs(model)
    assert_float32_close(run_ort(path, x), float64_forward(model, x), spec)
    back = load_onnx(path)
    assert back.spec == back_spec
    assert np.array_equal(back(x).numpy(), model(x).numpy())


def test_a_ceil_mode_average_that_onnx_cannot_say_is_refused(tmp_path):
    model = build("5x6x1 | avgpool((2, 3), stride=2, padding=1, ceil_mode=true)")
    with pytest.raises(ArgumentError,
                       match=r"layer 0 \(AvgPool2d\).*ceil_mode.*Received: input 5x6"):
        export_onnx(model, tmp_path / "p.onnx")


# --------------------------------------------------------------------------- foreign graphs
def init(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def graph_model(nodes, initializers, in_shape, out_shape, opset=17, inputs_=None):
    graph = helper.make_graph(
        nodes, "g", inputs_ or [helper.make_tensor_value_info("x", TP.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TP.FLOAT, out_shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _foreign(kind: str, rng: np.random.Generator):
    w = rng.uniform(-1, 1, (4, 2, 3, 3)).astype(np.float32)
    fc = rng.uniform(-1, 1, (4 * 3 * 3, 5)).astype(np.float32)  # (in, out)
    b = rng.uniform(-1, 1, 5).astype(np.float32)
    if kind == "gemm_transB0_alpha_beta":
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], auto_pad="VALID"),
                 helper.make_node("Flatten", ["c"], ["f"]),
                 helper.make_node("Gemm", ["f", "fc", "b"], ["y"], alpha=0.5, beta=2.0)]
        return nodes, [init("w", w), init("fc", fc), init("b", b.reshape(1, 5))], [2, 5, 5], [5]
    if kind == "matmul_add_reshape":
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[0, 0, 0, 0]),
                 helper.make_node("Identity", ["c"], ["i"]),
                 helper.make_node("Reshape", ["i", "shape"], ["f"]),
                 helper.make_node("MatMul", ["f", "fc"], ["m"]),
                 helper.make_node("Add", ["b", "m"], ["y"])]
        inits = [init("w", w), init("fc", fc), init("b", b), init("shape", np.array([0, -1]))]
        return nodes, inits, [2, 5, 5], [5]
    if kind == "same_upper_global_pool":
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER",
                                  strides=[2, 2]),
                 helper.make_node("BatchNormalization", ["c", "s", "sh", "m", "v"], ["n"],
                                  epsilon=1e-3),
                 helper.make_node("Relu", ["n"], ["r"]),
                 helper.make_node("GlobalAveragePool", ["r"], ["g"]),
                 helper.make_node("Flatten", ["g"], ["f"]),
                 helper.make_node("Dropout", ["f"], ["y"])]
        stats = [init(n, rng.uniform(0.5, 1.5, 4).astype(np.float32))
                 for n in ("s", "sh", "m", "v")]
        return nodes, [init("w", w), *stats], [2, 6, 7], [4]
    if kind == "same_lower_pads_avgpool":
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_LOWER",
                                  strides=[2, 1]),
                 helper.make_node("Pad", ["c", "pads"], ["p"], mode="reflect"),
                 helper.make_node("Conv", ["p", "w2", "b2"], ["d"]),
                 helper.make_node("AveragePool", ["d"], ["a"], kernel_shape=[2, 2],
                                  pads=[1, 1, 1, 1]),  # count_include_pad defaults to 0
                 helper.make_node("GlobalMaxPool", ["a"], ["y"])]
        w2 = rng.uniform(-1, 1, (3, 4, 3, 3)).astype(np.float32)
        inits = [init("w", w), init("pads", np.array([0, 0, 1, 2, 0, 0, 1, 0])),
                 init("w2", w2), init("b2", rng.uniform(-1, 1, 3).astype(np.float32))]
        return nodes, inits, [2, 6, 7], [3, 1, 1]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["gemm_transB0_alpha_beta", "matmul_add_reshape",
                                  "same_upper_global_pool", "same_lower_pads_avgpool"])
def test_foreign_graphs_import_and_agree_with_onnx_runtime(tmp_path, kind):
    nodes, inits, chw, out = _foreign(kind, np.random.default_rng(3))
    proto = graph_model(nodes, inits, ["batch", *chw], ["batch", *out])
    onnx.checker.check_model(proto, full_check=True)
    path = tmp_path / "f.onnx"
    onnx.save(proto, str(path))
    model = load_onnx(path)
    x = np.random.default_rng(4).uniform(-1, 1, (2, *chw)).astype(np.float32)
    want = run_ort(path, x)
    assert_float32_close(model(x).numpy(), want, kind)  # float32 on both sides: bound x2 fits
    assert cs.parse(model.spec).input_shape == tuple(chw)


# --------------------------------------------------------------------------- ONNX errors
def _save(proto, path):
    path.write_bytes(proto.SerializeToString())
    return path


def _conv_then(op, tmp_path, **attrs):
    w = np.ones((2, 1, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="first_conv"),
             helper.make_node(op, ["c"], ["y"], name="my_node", **attrs)]
    return _save(graph_model(nodes, [init("w", w)], [1, 1, 5, 5], [1, 2, 3, 3]),
                 tmp_path / "bad.onnx")


def test_unsupported_operator_is_named_with_index_and_supported_list(tmp_path):
    path = _conv_then("LRN", tmp_path, size=3)
    with pytest.raises(FileFormatError, match=r"node 1 \('my_node', LRN\): operator LRN "
                       r"is not supported\. Fix: convscope imports graphs of .*AveragePool, "
                       r"BatchNormalization, .*Conv, .*Received: op_type 'LRN', node name "
                       r"'my_node', index 1"):
        load_onnx(path)


def test_a_skip_connection_loads_and_several_inputs_are_refused(tmp_path):
    w = np.ones((1, 1, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["y"], name="skip")]
    path = _save(graph_model(nodes, [init("w", w)], [1, 1, 4, 4], [1, 1, 4, 4]), tmp_path / "a")
    model = load_onnx(path)  # a graph model now (tests/test_onnx_graph.py has the rest)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, 4, 4)).astype(np.float32)
    assert_float32_close(model(x).numpy(), run_ort(path, x), "skip connection")
    two = [helper.make_tensor_value_info(n, TP.FLOAT, [1, 1, 4, 4]) for n in ("x", "z")]
    proto = graph_model([helper.make_node("Add", ["x", "z"], ["y"])], [], None, [1, 1, 4, 4],
                        inputs_=two)
    with pytest.raises(FileFormatError, match=r"2 input\(s\) and 1 output\(s\)"):
        load_onnx(_save(proto, tmp_path / "b.onnx"))


def test_weights_that_are_not_float32_are_refused(tmp_path):
    w = np.ones((2, 1, 3, 3), np.float16)
    proto = graph_model([helper.make_node("Conv", ["x", "w"], ["y"], name="half")],
                        [init("w", w)], [1, 1, 5, 5], [1, 2, 3, 3])
    proto.graph.input[0].type.tensor_type.elem_type = TP.FLOAT16
    proto.graph.output[0].type.tensor_type.elem_type = TP.FLOAT16
    with pytest.raises(FileFormatError, match=r"input holds FLOAT16 values"):
        load_onnx(_save(proto, tmp_path / "h.onnx"))
    proto.graph.input[0].type.tensor_type.elem_type = TP.FLOAT
    with pytest.raises(FileFormatError, match=r"\('half', Conv\).*weight 'w' holds FLOAT16"):
        load_onnx(_save(proto, tmp_path / "h2.onnx"))


def test_truncated_and_foreign_files_are_refused(tmp_path):
    data = export_onnx(build(DIGITS), tmp_path / "m.onnx").read_bytes()
    for cut in (1, 7, len(data) // 8, len(data) // 3, len(data) // 2, len(data) - 9,
                len(data) - 1):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(FileFormatError, match=r"ONNX file .*(truncated|not a valid|no ONNX)"):
            load_onnx(path)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(FileFormatError, match="the file is empty"):
        load_onnx(tmp_path / "empty.onnx")
    with pytest.raises(FileFormatError, match="more than the limit of 100"):
        load_onnx(tmp_path / "m.onnx", max_bytes=100)
    with pytest.raises(FileFormatError, match="does not exist"):
        load_onnx(tmp_path / "nope.onnx")
    with pytest.raises(FileFormatError, match="directory"):
        load_onnx(tmp_path)


def test_external_data_is_refused(tmp_path):
    proto = onnx.load(str(export_onnx(build(DIGITS), tmp_path / "m.onnx")))
    onnx.save_model(proto, str(tmp_path / "ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    with pytest.raises(FileFormatError, match=r"external file \('weights.bin'\).*never reads"):
        load_onnx(tmp_path / "ext.onnx")
    shape = helper.make_tensor("s", TP.INT64, [2], [0, -1])
    shape.data_location = TP.EXTERNAL
    shape.external_data.add(key="location", value="../../etc/passwd")
    shape.ClearField("int64_data")
    nodes = [helper.make_node("Constant", [], ["shape"], value=shape, name="c"),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    path = _save(graph_model(nodes, [], [1, 1, 2, 2], [1, 4]), tmp_path / "attr.onnx")
    with pytest.raises(FileFormatError, match=r"node 0 \('c', Constant\), attribute 'value'.*"
                       r"'../../etc/passwd'"):
        load_onnx(path)


def test_export_errors(tmp_path, monkeypatch):
    model = cs.nn.Sequential(cs.nn.Conv2d(1, 2, 3, seed=0), cs.nn.BatchNorm2d(2,
                             track_running_stats=False))
    with pytest.raises(ArgumentError, match=r"input volume \(C, H, W\) is unknown"):
        export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ArgumentError, match=r"layer 1 \(BatchNorm2d\).*no running statistics"):
        export_onnx(model, tmp_path / "m.onnx", input_shape=(1, 5, 5))
    with pytest.raises(ArgumentError, match=r"opset must be an int from 13"):
        export_onnx(build(DIGITS), tmp_path / "m.onnx", opset=12)
    with pytest.raises(ShapeError, match=r"input depth 3 does not match kernel depth 1"):
        export_onnx(build(DIGITS), tmp_path / "m.onnx", input_shape=(3, 8, 8))
    with pytest.raises(FileFormatError, match=r"folder to write into does not exist"):
        export_onnx(build(DIGITS), tmp_path / "no" / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'convscope\[onnx\]'"):
        export_onnx(build(DIGITS), tmp_path / "m.onnx")
    with pytest.raises(ImportError, match=r"needs the `onnx` package"):
        load_onnx(tmp_path / "m.onnx")


# --------------------------------------------------------------------------- Keras layout
def keras_arrays(model: cs.nn.Sequential) -> dict[str, np.ndarray]:
    """The Keras names and layouts of ``model``'s weights, in layer order, built by hand."""
    out: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    shape = model.input_shape
    flat_from = None
    from convscope.spec import output_shape

    for layer in model:
        kind = {cs.nn.Conv2d: "conv2d", cs.nn.Linear: "dense",
                cs.nn.BatchNorm2d: "batch_normalization"}.get(type(layer))
        if kind:
            n = counts.get(kind, 0)
            counts[kind] = n + 1
            name = f"sequential/{kind}" + (f"_{n}" if n else "")
            s = layer.state_dict()
            if kind == "conv2d":
                out[f"{name}/kernel:0"] = s["weight"].permute(2, 3, 1, 0)  # OIHW -> HWIO
            elif kind == "dense":
                k = s["weight"].T  # (in, out)
                if flat_from is not None:  # our rows are (C, H, W); Keras's are (H, W, C)
                    c, h, w = flat_from
                    k = k.reshape(c, h, w, -1).permute(1, 2, 0, 3).reshape(c * h * w, -1)
                out[f"{name}/kernel:0"] = k
            else:
                for ours, theirs in (("weight", "gamma"), ("bias", "beta"),
                                     ("running_mean", "moving_mean"),
                                     ("running_var", "moving_variance")):
                    out[f"{name}/{theirs}:0"] = s[ours]
            if kind != "batch_normalization" and "bias" in s:
                out[f"{name}/bias:0"] = s["bias"]
        flat_from = shape if isinstance(layer, cs.nn.Flatten) else (
            flat_from if isinstance(layer, (cs.nn.ReLU, cs.nn.Dropout)) else None)
        shape = output_shape(layer, shape)
    return out


KERAS_SPEC = ("7x6x3 | conv(4, 3, padding=1) | batchnorm | relu | conv(6, 3, groups=2) "
              "| maxpool(2) | flatten | dropout(0.3) | linear(8) | relu | linear(3, bias=false)")


@pytest.mark.parametrize("layout", ["keras", "auto"])
def test_keras_layout_npz_loads_to_identical_outputs(tmp_path, layout):
    model = build(KERAS_SPEC, seed=1)
    path = tmp_path / "keras.npz"
    np.savez(path, **keras_arrays(model))
    fresh = load_weights(cs.parse(KERAS_SPEC, seed=9), path, layout=layout).eval()
    same_weights(model, fresh)
    x = inputs(model)
    assert np.array_equal(fresh(x).numpy(), model(x).numpy())


def test_keras_layout_safetensors_and_depthwise(tmp_path):
    from convscope.safetensors import save_file

    spec = "6x6x3 | conv(6, 3, groups=3) | relu | flatten | linear(2)"
    model = build(spec, seed=2)
    arrays = keras_arrays(model)
    kernel = arrays.pop("sequential/conv2d/kernel:0")  # (3, 3, 1, 6) -> depthwise (3, 3, 3, 2)
    arrays["sequential/depthwise_conv2d/depthwise_kernel:0"] = kernel.reshape(3, 3, 3, 2)
    arrays["sequential/depthwise_conv2d/bias:0"] = arrays.pop("sequential/conv2d/bias:0")
    save_file(tmp_path / "k.safetensors", arrays)
    fresh = load_weights(cs.parse(spec, seed=5), tmp_path / "k.safetensors").eval()
    x = inputs(model)
    assert np.array_equal(fresh(x).numpy(), model(x).numpy())


def test_keras_shape_mismatch_names_the_tensor(tmp_path):
    arrays = keras_arrays(build(KERAS_SPEC))
    arrays["sequential/conv2d_1/kernel:0"] = np.zeros((3, 3, 4, 6), np.float32)
    np.savez(tmp_path / "k.npz", **arrays)
    with pytest.raises(ShapeError, match=r"layer 3 \(Conv2d\(4 -> 6, 3x3\)\).*tensor "
                       r"'sequential/conv2d_1/kernel:0'.*Keras \(kH, kW, in, out\).*expected "
                       r"\(3, 3, 2, 6\), received \(3, 3, 4, 6\)"):
        load_weights(cs.parse(KERAS_SPEC), tmp_path / "k.npz", layout="keras")


# --------------------------------------------------------------------------- weights errors
def test_npz_round_trip_and_wrong_shape(tmp_path):
    model = build(DIGITS, seed=4)
    np.savez(tmp_path / "w.npz", **model.state_dict())
    fresh = load_weights(cs.parse(DIGITS, seed=8), tmp_path / "w.npz")
    same_weights(model, fresh)
    state = model.state_dict()
    state["3.weight"] = np.zeros((32, 16, 5, 5), np.float32)
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(ShapeError, match=r"tensor '3.weight'.*expected \(32, 16, 3, 3\), "
                       r"received \(32, 16, 5, 5\)"):
        load_weights(cs.parse(DIGITS), tmp_path / "bad.npz")
    del state["3.weight"]
    state["extra"] = np.zeros(1, np.float32)
    np.savez(tmp_path / "names.npz", **state)
    with pytest.raises(ShapeError, match=r"the file's layer 'extra'|belong to"):
        load_weights(cs.parse(DIGITS), tmp_path / "names.npz")


def test_pickled_and_foreign_weight_files_are_refused(tmp_path, monkeypatch):
    np.savez(tmp_path / "obj.npz", **{"0.weight": np.array([{"x": 1}], dtype=object)})
    with pytest.raises(FileFormatError, match=r"member '0.weight' holds pickled Python objects"):
        load_weights(cs.parse(DIGITS), tmp_path / "obj.npz")
    import zipfile

    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as zf:
        zf.writestr("data.pkl", b"\x80\x04N.")
    with pytest.raises(FileFormatError, match=r"member 'data.pkl' is not a .npy array"):
        load_weights(cs.parse(DIGITS), tmp_path / "zip.npz")
    (tmp_path / "w.h5").write_bytes(b"\x89HDF")
    with pytest.raises(FileFormatError, match=r"Keras .h5/.keras files are not read"):
        load_weights(cs.parse(DIGITS), tmp_path / "w.h5")
    with pytest.raises(ArgumentError, match=r"unknown layout 'jax'"):
        load_weights(cs.parse(DIGITS), tmp_path / "obj.npz", layout="jax")
    (tmp_path / "w.pt").write_bytes(b"\x80\x04N.")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(FileFormatError, match=r"needs PyTorch, which is not installed"):
        load_weights(cs.parse(DIGITS), tmp_path / "w.pt")


# --------------------------------------------------------------------------- CLI
def _cli(argv):
    from convscope.cli import cmd_export, cmd_import

    parser = argparse.ArgumentParser(prog="convscope")
    sub = parser.add_subparsers()
    cmd_export.register(sub)
    cmd_import.register(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_cli_export_and_import(tmp_path, capsys):
    model = build(DIGITS, seed=3)
    cs.save(model, tmp_path / "model.safetensors")
    saved = tmp_path / "model.safetensors"
    assert _cli(["export", saved, tmp_path / "m.onnx", "--opset", "19"]) == 0
    x = inputs(model)
    assert_float32_close(run_ort(tmp_path / "m.onnx", x), float64_forward(model, x), "cli")
    assert _cli(["import", tmp_path / "m.onnx", tmp_path / "back.safetensors"]) == 0
    back = cs.load(tmp_path / "back.safetensors")
    assert np.array_equal(back(x).numpy(), model(x).numpy())
    np.savez(tmp_path / "w.npz", **model.state_dict())
    assert _cli(["import", tmp_path / "w.npz", "--spec", DIGITS, tmp_path / "w.safetensors"]) == 0
    assert np.array_equal(cs.load(tmp_path / "w.safetensors")(x).numpy(), model(x).numpy())
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(ArgumentError, match="needs the architecture"):
        _cli(["import", tmp_path / "w.npz", tmp_path / "x.safetensors"])


# --------------------------------------------------------------------------- PyTorch
def torch_twin(model: cs.nn.Sequential, torch, view_flatten: bool = False):
    """The same architecture in PyTorch (torch's own initial weights)."""
    nn = torch.nn

    class ViewFlatten(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)

    layers = []
    for layer in model:
        if isinstance(layer, cs.nn.Conv2d):
            layers.append(nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                    layer.stride, layer._padding_arg, layer.dilation,
                                    layer.groups, layer.bias is not None, layer.padding_mode))
        elif isinstance(layer, cs.nn.MaxPool2d):
            layers.append(nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding,
                                       layer.extra["dilation"], ceil_mode=layer.extra["ceil_mode"]))
        elif isinstance(layer, cs.nn.AvgPool2d):
            layers.append(nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding,
                                       layer.extra["ceil_mode"], layer.extra["count_include_pad"]))
        elif isinstance(layer, cs.nn.BatchNorm2d):
            layers.append(nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum))
        elif isinstance(layer, cs.nn.Linear):
            layers.append(nn.Linear(layer.in_features, layer.out_features, layer.bias is not None))
        elif isinstance(layer, cs.nn.Flatten):
            layers.append(ViewFlatten() if view_flatten else nn.Flatten())
        elif isinstance(layer, cs.nn.Dropout):
            layers.append(nn.Dropout(layer.p))
        else:
            layers.append(nn.ReLU())
    twin = nn.Sequential(*layers)
    with torch.no_grad():  # a few training steps give BatchNorm real statistics
        twin.train()
        for _ in range(3):
            twin(torch.randn(4, *model.input_shape))
    return twin.eval()


TORCH_SPEC = ("10x9x3 | conv(6, 3, padding=1, padding_mode='reflect') | batchnorm | relu "
              "| conv(6, 3, padding=1, groups=3, padding_mode='circular') "
              "| conv(8, 3, padding=2, dilation=2, bias=false, padding_mode='replicate') "
              "| maxpool(3, stride=2, padding=1, ceil_mode=true) "
              "| avgpool(2, ceil_mode=true, count_include_pad=false) | flatten | dropout(0.1) "
              "| linear(10)")


def _torch_reference(twin, torch, x):
    import copy

    with torch.no_grad():
        return copy.deepcopy(twin).double()(torch.from_numpy(x).double()).numpy()


@pytest.mark.torch
@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pt", "pt_class"])
def test_pytorch_state_dict_files_load_to_the_same_outputs(tmp_path, fmt):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = cs.parse(TORCH_SPEC, seed=0)
    twin = torch_twin(model, torch)
    state = twin.state_dict()
    path = tmp_path / f"w.{fmt.split('_')[0]}"
    if fmt == "safetensors":
        from convscope.safetensors import save_file

        save_file(path, {k: v.numpy() for k, v in state.items()})
    elif fmt == "npz":
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    elif fmt == "pt":
        torch.save(state, path)
    else:  # a model class's names (conv1, bn ...), matched by order; wrapped in a checkpoint
        names = {i: f"block{i}.op" for i in range(len(twin))}
        renamed = {f"{names[int(k.split('.')[0])]}.{k.split('.', 1)[1]}": v
                   for k, v in state.items()}
        torch.save({"epoch": 3, "state_dict": renamed}, path)
    load_weights(model, path).eval()
    for k, v in state.items():
        assert np.array_equal(model.state_dict()[k], v.numpy()), k
    x = inputs(model, 3)
    with torch.no_grad():
        y_torch = twin(torch.from_numpy(x)).numpy()
    y64 = _torch_reference(twin, torch, x)
    assert_float32_close(model(x).numpy(), y64, "convscope vs torch float64")
    assert_float32_close(y_torch, y64, "torch float32 vs float64")


@pytest.mark.torch
def test_pytorch_pickles_are_refused_even_with_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"0.weight": torch.zeros(1), "thing": argparse.Namespace(a=1)}, tmp_path / "p.pt")
    with pytest.raises(FileFormatError, match=r"weights_only=True refuses"):
        load_weights(cs.parse(DIGITS), tmp_path / "p.pt")
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "n.safetensors")  # a zip, misnamed
    with pytest.raises(FileFormatError, match=r"zip archive"):
        load_weights(cs.parse(DIGITS), tmp_path / "n.safetensors")


def _torch_export(torch, twin, x, path, **kw):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buf = io.BytesIO()
            torch.onnx.export(twin, torch.from_numpy(x), buf, dynamo=False, input_names=["x"],
                              output_names=["y"], opset_version=17, **kw)
    except (ImportError, ModuleNotFoundError) as exc:  # a newer torch may need onnxscript
        pytest.skip(f"torch.onnx.export is not usable here: {exc}")
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["folded", "unfolded_view", "dynamic_batch"])
def test_pytorch_onnx_export_loads_to_the_same_outputs(tmp_path, variant):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    twin = torch_twin(cs.parse(TORCH_SPEC), torch, view_flatten=variant != "folded")
    x = inputs(cs.parse(TORCH_SPEC), 2, seed=5)
    kw = {"folded": {}, "unfolded_view": {"do_constant_folding": False},
          "dynamic_batch": {"dynamic_axes": {"x": {0: "N"}, "y": {0: "N"}}}}[variant]
    path = _torch_export(torch, twin, x, tmp_path / "t.onnx", **kw)
    model = load_onnx(path)
    assert model.input_shape == (3, 10, 9)
    y64 = _torch_reference(twin, torch, x)
    assert_float32_close(model(x).numpy(), y64, f"{variant}: convscope vs torch float64")
    if variant == "dynamic_batch":
        x5 = inputs(model, 5, seed=6)
        assert_float32_close(model(x5).numpy(), _torch_reference(twin, torch, x5), "batch 5")

