"""The model zoo: torchvision's counts and names, explain's totals, and that each one runs.

The comparisons with PyTorch itself (outputs and gradients through ``load_state_dict``) are
in test_zoo_torch.py; these need no torch.
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.functional as F
from convscope.errors import ArgumentError


@pytest.mark.parametrize(("name", "params", "keys"), [
    ("resnet18", 11_689_512, ["conv1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0."
                              "weight", "layer2.0.downsample.1.running_var", "fc.bias"]),
    ("resnet34", 21_797_672, ["layer3.5.bn2.num_batches_tracked", "layer4.2.conv2.weight"]),
    ("mobilenet_v2", 3_504_872, ["features.0.0.weight", "features.1.conv.0.0.weight",
                                 "features.2.conv.1.0.weight", "features.18.1.running_mean",
                                 "classifier.1.weight"]),
])
def test_torchvisions_parameter_counts_and_state_dict_names(name, params, keys):
    model = cs.models.get(name, seed=0)
    assert sum(p.data.size for p in model.parameters()) == params  # torchvision's counts
    own = model.state_dict()
    assert all(k in own for k in keys)
    e = cs.explain(model)
    assert e.total_params == params and e.output_shape == (1000,)


def test_resnet18_costs_what_torchinfo_says():
    e = cs.explain(cs.models.resnet18(seed=0))
    assert round(e.total_macs / 1e9, 2) == 1.81          # torchinfo: 1.81 G at 224x224x3
    assert "1.81 Gin all" not in str(e) and "(1.81 G in all)" in " ".join(str(e).split())
    rows = {r["name"]: r for r in e.rows}
    assert rows["layer1.0.add"]["operation"] == "add: 56x56x64 + 56x56x64"
    assert rows["layer2.0.downsample.0"]["operation"].startswith("128 kernels of 1x1x64")
    assert rows["layer2.0.add"]["from"] == [rows["layer2.0.bn2"]["index"],
                                            rows["layer2.0.downsample.1"]["index"]]
    assert rows["fc"]["rf"] is None and rows["layer4.1.add"]["output"] == (512, 7, 7)


def test_mobilenet_depthwise_and_residual_rows():
    e = cs.explain(cs.models.mobilenet_v2(seed=0))
    rows = {r["name"]: r for r in e.rows}
    assert rows["features.2.conv.1.0"]["operation"].startswith("96 kernels of 3x3x1 (depthwise)")
    adds = [r for r in e.rows if r["op"] == "add"]
    assert len(adds) == 10  # the blocks with stride 1 and an unchanged depth
    assert round(e.total_macs / 1e6) == 301  # torchinfo: 300.8 M (it also counts the biases)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "unet", "lenet5", "tiny_vgg"])
def test_each_model_trains_a_step(name):
    model = cs.models.get(name, num_classes=3, seed=0)
    shape = (3, 32, 32) if name in ("resnet18", "mobilenet_v2", "unet") else model.input_shape
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    out = model(x)
    if name == "unet":
        assert out.shape == (2, 3, 32, 32)
        loss = (out * out).mean()
    else:
        assert out.shape == (2, 3)
        loss = F.cross_entropy(out, np.array([0, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_seeds_make_the_zoo_repeatable():
    a = cs.models.resnet18(seed=3).state_dict()
    b = cs.models.resnet18(seed=3).state_dict()
    c = cs.models.resnet18(seed=4).state_dict()
    assert all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
    assert not np.array_equal(np.asarray(a["conv1.weight"]), np.asarray(c["conv1.weight"]))
    w = np.asarray(a["layer1.0.conv1.weight"])  # kaiming normal, fan_out: std sqrt(2/(64*9))
    assert abs(w.std() / np.sqrt(2 / 576) - 1) < 0.05


def test_zoo_names_and_a_saved_zoo_model(tmp_path):
    assert cs.models.get("ResNet-18", seed=0).zoo == ("resnet18", {"num_classes": 1000,
                                                                    "in_channels": 3})
    with pytest.raises(ArgumentError, match=r"there is no zoo model 'resnet50'.*resnet18"):
        cs.models.get("resnet50")
    model = cs.models.mobilenet_v2(num_classes=4, seed=1)
    cs.save(model, tmp_path / "m.safetensors", input_shape=(3, 32, 32))
    loaded = cs.load(tmp_path / "m.safetensors")
    assert type(loaded).__name__ == "MobileNetV2" and loaded.input_shape == (3, 32, 32)
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(loaded(x).data, model.eval()(x).data)
