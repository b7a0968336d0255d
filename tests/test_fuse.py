"""Inference fusions on the traced graph: the same numbers as the graph as written.

conv -> batch norm (-> ReLU/ReLU6) folded into one conv, conv -> ReLU, add -> ReLU; applied
only in eval mode without gradients, only where the producer has one user and no layer
involved has a hook (notes/verification.md: float32 within the conv's rounding bound).
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope import nn
from convscope.graph import fuse, trace


def _stats(model, seed=0):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[:] = rng.normal(0, 0.2, m.num_features)
            m.running_var[:] = rng.uniform(0.3, 2.0, m.num_features)
            m.weight.data[:] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[:] = rng.normal(0, 0.2, m.num_features)
    return model


def _both(model, x):
    model.eval()
    want = model(x).numpy()            # gradients on: the graph as written
    with cs.no_grad():
        got = model(x).numpy()         # the fused graph
    return got, want


class Block(nn.Module):
    fused_inference = True

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 6, 3, padding=1, bias=False, seed=0)
        self.bn1 = nn.BatchNorm2d(6)
        self.act = nn.ReLU6()
        self.conv2 = nn.Conv2d(6, 4, 3, stride=1, padding=1, seed=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.conv3 = nn.Conv2d(4, 4, 1, seed=2)

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = cs.nn.functional.relu(y + x)
        return cs.nn.functional.relu(self.conv3(y))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "unet"])
def test_the_zoo_infers_the_same_through_the_fused_graph(name):
    model = _stats(cs.models.get(name, num_classes=5, seed=0))
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    got, want = _both(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    plan = model._fused_plans[((3, 32, 32), "<f4")][1]
    ops = [n.op for n in plan.nodes]
    assert "batch_norm" not in ops and ops.count("conv_bn_act") == sum(
        isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if name == "resnet18":
        assert ops.count("add_relu") == 8


def test_every_pattern_and_its_exact_values():
    model = _stats(Block(), 3)
    x = np.random.default_rng(2).standard_normal((3, 4, 7, 9)).astype(np.float32) * 3
    got, want = _both(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert got.max() > 0 and (got >= 0).all()
    plan = fuse(trace(model, (4, 7, 9)))
    assert [(n.op, n.attrs.get("act")) for n in plan.nodes] == [
        ("conv_bn_act", "relu6"), ("conv_bn_act", None), ("add_relu", None),
        ("conv_act", "relu")]
    model64 = _stats(Block(), 3).double()
    got64, want64 = _both(model64, x.astype(np.float64))
    np.testing.assert_allclose(got64, want64, rtol=1e-12, atol=1e-12)


def test_a_value_read_twice_is_not_fused_away():
    class Two(nn.Module):
        fused_inference = True

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1, seed=0)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y          # the conv's output has two users

    plan = fuse(trace(_stats(Two()), (3, 5, 5)))
    assert [n.op for n in plan.nodes] == ["conv2d", "batch_norm", "add"]
    got, want = _both(_stats(Two()), np.ones((1, 3, 5, 5), np.float32))
    np.testing.assert_array_equal(got, want)


def test_hooks_see_every_layer_and_stop_the_fusion():
    model = _stats(cs.models.resnet18(num_classes=3, seed=0)).eval()
    seen = []
    handle = model.layer1[0].bn1.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    with cs.no_grad():
        model(np.zeros((1, 3, 32, 32), np.float32))
    assert seen == [(1, 64, 8, 8)]
    handle.remove()


def test_a_replaced_layer_or_changed_statistics_are_used_at_once():
    model = _stats(cs.models.resnet18(num_classes=3, seed=0)).eval()
    x = np.random.default_rng(3).random((1, 3, 32, 32), dtype=np.float32)
    with cs.no_grad():
        first = model(x).numpy()
    model.load_state_dict(_stats(cs.models.resnet18(num_classes=3, seed=1), 7).state_dict())
    with cs.no_grad():
        second = model(x).numpy()
    want = model(x).numpy()  # unfused
    np.testing.assert_allclose(second, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(first, second)
    model.fc = nn.Linear(512, 7, seed=0)             # a new layer: a new plan
    with cs.no_grad():
        assert model(x).shape == (1, 7)


def test_compile_opts_a_model_in_and_training_is_untouched():
    model = _stats(Block())
    object.__setattr__(model, "fused_inference", False)
    assert cs.compile(model) is model and model.fused_inference
    model.train()
    x = np.random.default_rng(4).standard_normal((4, 4, 6, 6)).astype(np.float32)
    out = model(x)
    out.sum().backward()
    assert model.conv1.weight.grad is not None and "_fused_plans" not in model.__dict__


def test_a_hook_on_a_container_sees_its_call():
    model = _stats(cs.models.resnet18(num_classes=3, seed=0)).eval()
    seen = []
    model.layer4.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    with cs.no_grad():
        model(np.zeros((2, 3, 32, 32), np.float32))
    assert seen == [(2, 512, 1, 1)]


def test_sequential_hooks_on_a_pool_or_conv_after_a_conv_relu_pair_fire():
    model = cs.parse("16x16x3 | conv(4, 3, padding=1) | relu | maxpool(2) | conv(4, 3, padding=1)"
                     " | relu | conv(2, 3, padding=1)")
    seen = []
    for k in (2, 5):
        model[k].register_forward_hook(lambda m, a, out, k=k: seen.append(k))
    model(np.ones((1, 3, 16, 16), np.float32))
    assert seen == [2, 5]
