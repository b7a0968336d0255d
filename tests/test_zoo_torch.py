"""The zoo against PyTorch: torchvision's architectures (written out in torchvision_defs.py)
load their weights into convscope's models one to one and give the same outputs and
gradients, in eval and train mode.

Float64 for gradients of whole networks (notes/verification.md: in float32, rounding that
moves one value across a ReLU kink is spread by train-mode batch norm over a channel).
"""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
import convscope.functional as F

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
tv = pytest.importorskip("torchvision_defs")
torch.set_num_threads(2)

RESULTS: dict[str, float] = {}


def _pair(name: str, dtype=torch.float32):
    torch.manual_seed(0)
    theirs = getattr(tv, name)(num_classes=10)
    rng = np.random.default_rng(0)
    with torch.no_grad():  # non-trivial batch-norm statistics and affine parameters
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.tensor(rng.normal(0, 0.1, m.num_features)))
                m.running_var.copy_(torch.tensor(rng.uniform(0.5, 1.5, m.num_features)))
                m.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, m.num_features)))
                m.bias.copy_(torch.tensor(rng.normal(0, 0.1, m.num_features)))
    ours = cs.models.get(name, num_classes=10, seed=0)
    ours.load_state_dict(theirs.state_dict())        # torch tensors, names one to one
    if dtype == torch.float64:
        theirs.double()
        ours.double()
    return ours, theirs


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_eval_outputs_equal_pytorchs(name):
    ours, theirs = _pair(name)
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        want = theirs(torch.tensor(x)).numpy()
    got = ours(x).numpy()
    scale = np.abs(want).max()
    RESULTS[f"{name} eval"] = float(np.abs(got - want).max() / scale)
    np.testing.assert_allclose(got, want, atol=1e-4 * scale, rtol=1e-4)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_train_mode_outputs_and_every_gradient_equal_pytorchs(name):
    ours, theirs = _pair(name, torch.float64)
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32))
    labels = np.array([1, 3, 5, 7])
    ours.train()
    theirs.train()
    if name == "mobilenet_v2":  # dropout draws differ between libraries: switch it off
        ours.classifier[0].p = 0.0
        theirs.classifier[0].p = 0.0
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    torch.nn.functional.cross_entropy(out_t, torch.tensor(labels)).backward()
    xc = cs.tensor(x, requires_grad=True)
    out_c = ours(xc)
    F.cross_entropy(out_c, labels).backward()
    np.testing.assert_allclose(out_c.numpy(), out_t.detach().numpy(), rtol=1e-9, atol=1e-9)
    worst = 0.0
    grads_t = dict(theirs.named_parameters())
    # a gradient that is zero in exact arithmetic (a batch-norm shift followed by a conv and
    # a train-mode batch norm) is rounding noise in both libraries: judge it against the
    # network's gradient scale, not its own
    floor = 1e-6 * max(np.abs(p.grad.numpy()).max() for p in theirs.parameters())
    for pname, p in ours.named_parameters():
        want = grads_t[pname].grad.numpy()
        scale = max(np.abs(want).max(), floor)
        err = np.abs(p.grad.numpy() - want).max() / scale
        worst = max(worst, err)
        assert err < 1e-6, pname
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-7,
                               atol=1e-7 * np.abs(xt.grad.numpy()).max())
    RESULTS[f"{name} train grads (float64, worst relative to scale)"] = float(worst)
    for pname, buf in theirs.named_buffers():  # the running statistics moved the same way
        np.testing.assert_allclose(np.asarray(ours.state_dict()[pname]), buf.numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=pname)


def test_report_max_differences(capsys):
    with capsys.disabled():
        for k, v in RESULTS.items():
            print(f"\n  zoo vs PyTorch: {k}: {v:.2e}", end="")
