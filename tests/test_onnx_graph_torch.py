"""PyTorch's own ONNX exports of real networks load with ``cs.io.load_onnx``.

``torch.onnx.export(..., dynamo=False)`` of torchvision's ResNet-18 and MobileNetV2 (written
out in tests/torchvision_defs.py), in eval mode, with and without constant folding and with
a dynamic batch axis. What the exporter (torch 2.13, opset 17) emits, counted on these files:

- ResNet-18, folded: Conv 20, Relu 17, MaxPool 1, Add 8, GlobalAveragePool 1, Flatten 1,
  Gemm 1 (and Identity nodes copying an initializer where two hold equal values, as with
  default-initialised batch norms: folded as constants). Each BatchNormalization is folded
  into the Conv before it (the Conv gets a bias; its weights get anonymous names such as
  ``onnx::Conv_193``), so the loaded model has ``layer1.0.conv1.weight`` *and*
  ``layer1.0.conv1.bias`` and no ``bn`` layers;
- unfolded: the same plus BatchNormalization 20, every initializer named as in
  ``state_dict()``: the loaded model has exactly torchvision's ``state_dict`` keys;
- MobileNetV2: Conv 52, Clip 35 (ReLU6, its bounds as Constant nodes), Add 10,
  GlobalAveragePool, Flatten, Gemm (and BatchNormalization 52 unfolded); the module paths
  (``features.1.conv.0.0``) come from the node names (``/features/features.1/conv/conv.0/
  conv.0.0/Conv``).

The loaded model is compared with ONNX Runtime on the same file and with PyTorch's float64
forward (the verification notes' rule for float32 against float64). A smaller network of
the newer layers (transposed conv, concatenation, bilinear and nearest resizing, GELU, SiLU,
Hardswish, LeakyReLU, Softmax) checks PyTorch's forms of those operators as well.
"""

from __future__ import annotations

import collections
import copy
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope.graph import GraphModule
from convscope.interop import load_onnx

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))
import torchvision_defs as tv  # noqa: E402
from test_onnx_graph import close, run_ort  # noqa: E402


def statistics(model, seed: int = 0):
    """Batch norm with non-trivial scale, shift and running statistics; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
    return model.eval()


def torch_export(model, shape, path, **kw) -> Path:
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(1, *shape), buf, dynamo=False,
                              input_names=["x"], output_names=["y"], opset_version=17,
                              dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, **kw)
    except (ImportError, ModuleNotFoundError) as exc:  # a newer torch may need onnxscript
        pytest.skip(f"torch.onnx.export is not usable here: {exc}")
    path.write_bytes(buf.getvalue())
    return path


def torch64(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()


NETS = {"resnet18": tv.resnet18, "mobilenet_v2": tv.mobilenet_v2}


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
@pytest.mark.parametrize("name", list(NETS))
def test_torchvision_exports_load_and_match(tmp_path, name, fold):
    torch.manual_seed(0)
    net = statistics(NETS[name](num_classes=10))
    path = torch_export(net, (3, 64, 64), tmp_path / f"{name}.onnx", do_constant_folding=fold)
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    assert ops["Add"] == {"resnet18": 8, "mobilenet_v2": 10}[name]
    assert ("BatchNormalization" in ops) == (not fold)
    model = load_onnx(path)
    assert isinstance(model, GraphModule) and model.input_shape == (3, 64, 64)
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32)
    y = model(x).numpy()
    y64 = torch64(net, x)
    d_torch = close(y, y64, f"{name}: convscope vs torch float64")
    d_ort = float(np.abs(y - run_ort(path, x)).max())
    close(run_ort(path, x), y64, f"{name}: ONNX Runtime vs torch float64")
    want = net.state_dict()
    got = model.state_dict()
    if fold:  # BN folded into the convs: torchvision's conv and fc paths, convs with a bias
        paths = {k.rsplit(".", 1)[0] for k in want}
        assert {k.rsplit(".", 1)[0] for k in got} <= paths
        assert not any(".bn" in k or k.startswith("bn") for k in got)
        assert got["fc.weight" if name == "resnet18" else "classifier.1.weight"].shape == (10,
            512 if name == "resnet18" else 1280)
    else:  # every name as in torchvision
        assert list(got) == list(want)
        for k, v in want.items():
            if not k.endswith("num_batches_tracked"):
                assert np.array_equal(got[k].numpy(), v.numpy()), k
    print(f"\n{name} ({'folded' if fold else 'unfolded'}) from torch.onnx.export: max "
          f"|convscope - torch float64| {d_torch:.2e}, |convscope - ORT| {d_ort:.2e}; "
          f"ops {dict(ops)}")


class Mixed(torch.nn.Module):
    """The newer layers as PyTorch writes them: ConvTranspose, cat, Resize, activations."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"),
                                  nn.BatchNorm2d(8), nn.SiLU())
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.GELU())
        self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
        self.mix = nn.Conv2d(16, 8, 1)
        self.act = nn.Hardswish()
        self.leaky = nn.LeakyReLU(0.1)
        self.head = nn.Linear(8 * 2 * 3, 5)

    def forward(self, x):
        skip = self.stem(x)
        y = self.up(self.down(skip))
        y = self.act(self.mix(torch.cat([skip, y], dim=1)))
        y = nn_f.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = nn_f.interpolate(y, size=(10, 15), mode="nearest") + 0.5
        y = self.leaky(nn_f.avg_pool2d(torch.sigmoid(y), 5) * y.mean((2, 3), True))
        return torch.softmax(self.head(torch.flatten(y, 1)), dim=1)


nn_f = torch.nn.functional


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
def test_pytorch_forms_of_the_newer_operators_load_and_match(tmp_path, fold):
    torch.manual_seed(2)
    net = statistics(Mixed())
    path = torch_export(net, (3, 8, 12), tmp_path / "mixed.onnx", do_constant_folding=fold)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"ConvTranspose", "Concat", "Resize", "Erf", "Sigmoid", "HardSwish"} <= ops
    model = load_onnx(path)
    layers = {type(m).__name__ for m in model.modules()}
    assert {"SiLU", "GELU", "ConvTranspose2d", "Upsample", "Hardswish", "LeakyReLU"} <= layers
    assert model.get_submodule("up").weight.shape == (16, 8, 3, 3)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3, 8, 12)).astype(np.float32)
    y64 = torch64(net, x)
    close(model(x).numpy(), y64, "convscope vs torch float64")
    close(run_ort(path, x), y64, "ONNX Runtime vs torch float64")


def test_a_torch_chain_still_loads_as_a_sequential(tmp_path):
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    path = torch_export(net.eval(), (3, 8, 8), tmp_path / "chain.onnx")
    model = load_onnx(path)
    assert isinstance(model, cs.nn.Sequential) and model.spec is not None
    assert model.spec.startswith("8x8x3 | conv(4, 3) | sigmoid | flatten | linear(3)")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    close(model(x).numpy(), torch64(net, x), "chain")
