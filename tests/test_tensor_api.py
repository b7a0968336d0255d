"""The Tensor surface and the top-level helpers (issue 12, part 1), without PyTorch.

What a PyTorch user relies on, pinned by value: 0-d results are 0-d arrays, ``size()`` is a
method, dtypes are NumPy's, comparisons count, device idioms are no-ops on the CPU,
``manual_seed`` governs the random factories, views share memory, and every refusal is a
convscope error with its numbers and a fix. ``test_tensor_api_torch.py`` holds the same
names against PyTorch itself.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import convscope as cs
from convscope import nn
from convscope.errors import (
    ArgumentError,
    ArgumentTypeError,
    ConvscopeError,
    GradError,
    IndexingError,
    ShapeError,
)
from convscope.graph import GraphModule, trace


def _loss():
    logits = cs.tensor(np.random.default_rng(0).standard_normal((4, 3)), dtype=cs.float32,
                       requires_grad=True)
    return cs.functional.cross_entropy(logits, cs.tensor([0, 2, 1, 2])), logits


# --------------------------------------------------------------------------- numbers and arrays
def test_a_loss_converts_to_numpy_and_python_numbers():
    loss, _ = _loss()
    assert isinstance(loss.data, np.ndarray) and loss.data.shape == ()
    assert np.asarray(loss).shape == () and np.asarray(loss).dtype == np.float32
    assert isinstance(float(loss), float) and float(loss) == loss.item() == np.asarray(loss)
    assert f"{loss:.3f}" == f"{loss.item():.3f}"
    for result in (loss * 2, loss.exp(), cs.ones(3).max(), cs.ones(3).mean(), cs.ones(3)[0],
                   cs.ones(2, 2).sum(), cs.tensor([1, 2]).sum(), cs.ones(3).std()):
        assert type(result.data) is np.ndarray, result


def test_python_numbers_from_one_element_tensors():
    assert int(cs.tensor([[2.7]])) == 2 and float(cs.tensor([3])) == 3.0
    assert bool(cs.tensor([0.0])) is False and bool(cs.tensor(1)) is True
    assert type(cs.tensor([7]).item()) is int and type(cs.tensor(True).item()) is bool
    assert ["a", "b", "c"][cs.tensor(2)] == "c" and list(range(5))[cs.tensor([1])] == 1
    assert len(cs.zeros(4, 2)) == 4 and [r.tolist() for r in cs.eye(2)] == [[1, 0], [0, 1]]


def test_size_dim_and_numel_are_pytorchs():
    x = cs.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and isinstance(x.size(), cs.Size) and repr(x.size()) == \
        "Size([2, 3, 4])"
    assert (x.size(0), x.size(-1), x.dim(), x.numel(), x.size().numel()) == (2, 4, 3, 24, 24)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.size()[1:] == cs.Size([3, 4])


def test_dtypes_are_numpy_dtypes_with_pytorchs_names():
    assert np.dtype(cs.float32) == np.float32 and cs.long == cs.int64 == np.int64
    assert cs.float is cs.float32 and cs.double is cs.float64 and cs.int is cs.int32
    assert np.zeros(2, cs.uint8).dtype == np.uint8 and cs.bool == np.bool_
    t = cs.tensor([1.0])
    assert t.dtype == cs.float32 and isinstance(t.dtype, cs.dtype) and t.is_floating_point()
    assert cs.tensor([1, 2]).dtype == cs.int64 and cs.tensor([True]).dtype == cs.bool
    assert cs.tensor([1, 2.5]).dtype == cs.float32 and cs.tensor(np.ones(2)).dtype == cs.float64
    assert cs.tensor([1, 2], dtype=cs.float64).dtype == cs.float64
    assert cs.Tensor([1, 2]).dtype == cs.float32  # the legacy constructor: floats, as torch


def test_numpy_spellings_of_reductions_still_work():
    x = cs.tensor([[1.0, 2.0], [3.0, 5.0]])
    assert x.sum(axis=0).tolist() == x.sum(dim=0).tolist() == [4.0, 7.0]
    assert x.mean(axis=1, keepdims=True).shape == x.mean(1, keepdim=True).shape == (2, 1)
    assert x.argmax(axis=1).tolist() == [1, 1] and x.transpose(0, 1).tolist() == x.T.tolist()


def test_casts_keep_the_graph_between_float_types_only():
    x = cs.tensor([1.5, -2.5], requires_grad=True)
    (x.double() * 2).sum().backward()
    assert x.grad.dtype == cs.float32 and x.grad.tolist() == [2.0, 2.0]
    assert x.float() is x and not x.long().requires_grad and x.long().tolist() == [1, -2]
    assert x.to(cs.float64).dtype == cs.float64 and x.to(x) is x and x.int().dtype == cs.int32
    assert x.bool().tolist() == [True, True] and x.to(dtype=cs.float32, copy=True) is not x


# --------------------------------------------------------------------------- comparisons
def test_comparisons_give_bool_tensors_that_count():
    pred, labels = cs.tensor([0, 2, 1, 3]), cs.tensor([0, 1, 1, 3])
    correct = (pred == labels).sum().item()
    assert correct == 3 and type(correct) is int
    x = cs.tensor([1.0, -2.0], requires_grad=True)
    for mask in (x > 0, x < 0, x >= 0, x <= 0, x == 1, x != 1):
        assert mask.dtype == cs.bool and not mask.requires_grad
    assert (x > 0).tolist() == [True, False] and ((x > 0) & (x < 5)).tolist() == [True, False]
    assert (~(x > 0)).tolist() == [False, True] and ((x > 0) | (x < 0)).all().item()
    assert (x == None) is False and (x != "a") is True  # noqa: E711  (as PyTorch)


def test_tensors_stay_hashable_and_findable_by_identity():
    a, b = cs.zeros(3), cs.zeros(3)
    assert len({a, b}) == 2 and {a: 1}[a] == 1 and a in [a]
    assert id(b) in {id(p) for p in (a, b)}  # as in PyTorch, `in` on a list compares values


# --------------------------------------------------------------------------- memory
def test_views_share_memory_and_reshape_copies_only_when_it_must():
    x = cs.arange(6.0)
    v = x.view(2, 3)
    v[0, 0] = 10.0
    assert x[0].item() == 10.0 and np.shares_memory(x.data, x.view(3, 2).data)
    t = x.view(2, 3).t()
    with pytest.raises(ShapeError, match=r"view: .*memory layout.*Fix: use \.reshape"):
        t.view(6)
    assert t.reshape(6).tolist() == [10.0, 3, 1, 4, 2, 5]
    assert t.contiguous().view(6).tolist() == t.reshape(6).tolist()


def test_from_numpy_and_as_tensor_share_and_tensor_copies():
    a = np.arange(4.0)
    shared, also, copied = cs.from_numpy(a), cs.as_tensor(a), cs.tensor(a)
    a[0] = 9.0
    assert shared[0].item() == also[0].item() == 9.0 and copied[0].item() == 0.0
    assert cs.as_tensor(shared) is shared and cs.as_tensor(a, dtype=cs.float32).dtype == cs.float32


def test_view_after_a_convolution_and_pooling_as_in_the_old_tutorial():
    conv, pool = nn.Conv2d(3, 16, 5, seed=0), nn.MaxPool2d(2, 2)
    x = pool(cs.functional.relu(conv(cs.rand(4, 3, 14, 14))))
    assert x.view(-1, 16 * 5 * 5).shape == (4, 400) and x.view(x.size(0), -1).shape == (4, 400)
    assert cs.flatten(x, 1).shape == (4, 400) and x.flatten(1).shape == (4, 400)


# --------------------------------------------------------------------------- in place
def test_in_place_updates_follow_pytorchs_rules():
    w = cs.zeros(3, requires_grad=True)
    with cs.no_grad():
        w[0] = 1.0
        w += 1.0
        w.mul_(2).add_(cs.ones(3), alpha=0.5)
    assert w.tolist() == [4.5, 2.5, 2.5] and w.requires_grad and w.is_leaf
    y = w * 1
    y += 1  # inside a recorded graph: a new tensor with the same values, as the math says
    y.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 1.0] and y.tolist() == [5.5, 3.5, 3.5]
    counts = cs.zeros(3, dtype=cs.int64)
    counts[cs.tensor([0, 2])] += 1
    assert counts.tolist() == [1, 0, 1]
    total = cs.zeros(())
    total += w.sum()  # a plain tensor plus a recorded one: recorded
    assert total.requires_grad


def test_deep_copies_of_leaves_and_state_dicts():
    w = cs.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    c = copy.deepcopy(w)
    assert c is not w and c.tolist() == w.tolist() and c.requires_grad
    assert c.grad.tolist() == [2.0, 4.0] and not np.shares_memory(c.data, w.data)
    model = nn.Linear(3, 2, seed=0)
    best = copy.deepcopy(model.state_dict())
    with cs.no_grad():
        model.weight.zero_()
    assert best["weight"].abs().sum().item() > 0
    with pytest.raises(GradError, match=r"deepcopy: only tensors created by the user"):
        copy.deepcopy(w * 2)


def test_retain_graph_runs_backward_twice_as_pytorch():
    x = cs.tensor([3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [12.0]
    with pytest.raises(GradError, match="already freed"):
        y.backward()


# --------------------------------------------------------------------------- gradients
def test_gradients_of_max_min_clamp_and_indexing_by_hand():
    x = cs.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [[0, 0.5, 0.5], [0, 0, 0]]       # ties share the gradient
    x.grad = None
    x.max(1).values.sum().backward()
    assert x.grad.tolist() == [[0, 1, 0], [1, 0, 0]]           # the first winner takes it
    x.grad = None
    x.clamp(0, 2).sum().backward()
    assert x.grad.tolist() == [[1, 0, 0], [1, 1, 1]]           # bounds included
    x.grad = None
    x[[0, 0, 1], [1, 1, 2]].sum().backward()
    assert x.grad.tolist() == [[0, 2, 0], [0, 0, 1]]           # a cell picked twice counts twice
    x.grad = None
    x[x > 1].sum().backward()
    assert x.grad.tolist() == [[0, 1, 1], [1, 1, 0]]
    x.grad = None
    cs.where(x > 1, x * 2, x * 10).sum().backward()
    assert x.grad.tolist() == [[10, 2, 2], [2, 2, 10]]


def test_top_level_helpers():
    outputs = cs.tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.1]])
    values, predicted = cs.max(outputs, 1)
    assert predicted.tolist() == [1, 0] and predicted.dtype == cs.int64
    assert values.tolist() == outputs.max(dim=1).values.tolist() == [2.0, 1.5]
    assert cs.argmax(outputs, 1).tolist() == [1, 0] and cs.sum(outputs).item() == \
        pytest.approx(4.2)
    assert cs.allclose(outputs, outputs + 1e-9) and not cs.equal(outputs, outputs[:1])
    assert cs.is_tensor(outputs) and not cs.is_tensor(outputs.numpy()) and cs.numel(outputs) == 6
    assert cs.softmax(outputs, 1).sum(1).tolist() == pytest.approx([1.0, 1.0])
    assert cs.clamp(outputs, max=1).max().item() == 1.0 and cs.exp(cs.zeros(1)).item() == 1.0


# --------------------------------------------------------------------------- devices
def test_device_idioms_are_no_ops_on_the_cpu():
    device = cs.device("cuda:0" if cs.cuda.is_available() else "cpu")
    assert device == cs.device("cpu") == "cpu" and str(device) == "cpu"
    assert cs.cuda.device_count() == 0 and cs.cuda.manual_seed_all(0) is None
    x, model = cs.ones(2), nn.Linear(2, 2, seed=0)
    assert x.to(device) is x and x.cpu() is x and x.device == device and not x.is_cuda
    assert model.to(device) is model and cs.zeros(2, device="cpu").device == device
    assert cs.device("cuda", 1).index == 1 and repr(cs.device("cpu")) == "device(type='cpu')"


# --------------------------------------------------------------------------- randomness
@pytest.mark.parametrize("draw", [
    lambda **k: cs.rand(3, 2, **k), lambda **k: cs.randn(4, **k),
    lambda **k: cs.randint(0, 100, (5,), **k), lambda **k: cs.randperm(8, **k),
    lambda **k: cs.rand_like(cs.zeros(3), **k), lambda **k: cs.randn_like(cs.zeros(2, 2), **k),
])
def test_manual_seed_governs_the_random_factories(draw):
    cs.manual_seed(3)
    a = draw()
    cs.manual_seed(3)
    assert cs.equal(a, draw()) and not cs.equal(draw(), draw())
    g1, g2 = cs.Generator().manual_seed(5), cs.Generator().manual_seed(5)
    cs.manual_seed(3)
    first = draw(generator=g1)
    cs.manual_seed(4)  # the default generator does not matter when one is given
    assert cs.equal(first, draw(generator=g2))


# --------------------------------------------------------------------------- tracing
class _Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, seed=0)
        self.fc = nn.Linear(4 * 3 * 3, 5, seed=1)

    def forward(self, x):
        x = cs.functional.max_pool2d(self.conv(x).relu(), 2)
        x = x.view(x.size(0), -1).unsqueeze(1).squeeze(1)
        x = x.permute(1, 0).transpose(0, 1).contiguous().flatten(1)
        y = self.fc(x).clamp(min=-5.0).float()
        return y.softmax(1) * (y > -10).float() + y.max(1, keepdim=True).values * 0


def test_new_methods_are_recorded_as_replayable_nodes_on_any_batch():
    model = _Classifier()
    g = trace(model, (3, 8, 8))
    assert all(n.kind in ("module", "function") for n in g.nodes), [
        (n.name, n.kind) for n in g.nodes]
    ops = [n.op for n in g.nodes]
    for op in ("view", "unsqueeze", "squeeze", "permute", "transpose", "flatten", "clamp",
               "softmax", "gt", "to", "max"):
        assert op in ops, op
    x = np.random.default_rng(0).random((3, 3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(GraphModule(g)(x).data, model(x).data)


# --------------------------------------------------------------------------- refusals
REFUSED = [
    (lambda: float(cs.zeros(2)), ShapeError,
     r"^float: only a one-element tensor converts to a Python number; this one has 2 elements\. "
     r"Fix: index or reduce first \(t\[0\], t\.sum\(\), t\.mean\(\)\)\. Received: shape \(2,\)\.$"),
    (lambda: int(cs.zeros(2, 2)), ShapeError, r"^int: .*4 elements.*shape \(2, 2\)"),
    (lambda: bool(cs.zeros(3)), ShapeError, r"^bool: the truth value of a tensor with 3 "
     r"elements is ambiguous\. Fix: use t\.any\(\) or t\.all\(\)"),
    (lambda: cs.zeros(0).item(), ShapeError, r"this one has 0 elements"),
    (lambda: len(cs.tensor(1.0)), ArgumentTypeError, r"^len: len\(\) of a 0-d tensor"),
    (lambda: iter(cs.tensor(1.0)), ArgumentTypeError, r"iteration over a 0-d tensor"),
    (lambda: [1][cs.tensor(0.0)], ArgumentTypeError, r"only an integer tensor of one element"),
    (lambda: f"{cs.zeros(2):.2f}", ArgumentTypeError, r"only a 0-d tensor takes a number format"),
    (lambda: cs.zeros(2, 3).view(4), ShapeError,
     r"^view: shape \(4,\) is invalid for a tensor of 6 values\. Fix: make the sizes multiply "
     r"to the same total \(one of them may be -1\)\. Received: shape \(2, 3\) -> \(4,\)\.$"),
    (lambda: cs.zeros(2, 3).view(-1, -1), ShapeError, r"shape \(-1, -1\) is invalid"),
    (lambda: cs.zeros(2, 3).view(), ArgumentTypeError, r"view: the sizes are missing"),
    (lambda: cs.zeros(2, 3).reshape(2.5), ArgumentTypeError, r"sizes must be ints"),
    (lambda: cs.zeros(2, 3, 4).transpose(2, 0, 1), ArgumentTypeError,
     r"^transpose: transpose\(dim0, dim1\) swaps two dims and takes exactly two\. Fix: .*"
     r"x\.permute\(\.\.\.\).*Received: transpose\(2, 0, 1\)\.$"),
    (lambda: cs.zeros(2, 3).transpose(0), ArgumentTypeError, r"Received: transpose\(0\)"),
    (lambda: cs.zeros(2, 3).size(2), ArgumentError,
     r"^size: dimension out of range: `dim` must be in \[-2, 1\] for a 2-D tensor\. "
     r"Fix: pass a dim between -2 and 1\. Received: dim=2, shape \(2, 3\)\.$"),
    (lambda: cs.zeros(2, 3).squeeze(-3), ArgumentError, r"dim=-3"),
    (lambda: cs.zeros(2, 3).unsqueeze(3), ArgumentError, r"\[-3, 2\]"),
    (lambda: cs.zeros(2, 3).sum(dim=(0, -2)), ArgumentError, r"a dim appears twice"),
    (lambda: cs.zeros(2, 3).permute(0, 0), ArgumentError, r"each of the 2 dims once"),
    (lambda: cs.zeros(2, 3).expand(4, 3), ShapeError, r"only dims of size 1 can be expanded"),
    (lambda: cs.zeros(2, 3).repeat(2), ArgumentError, r"at least 2"),
    (lambda: cs.zeros(2)[5], IndexingError, r"^index: index 5 is out of bounds"),
    (lambda: cs.zeros(2)[cs.tensor([0.0])], IndexingError, r"integer.*boolean"),
    (lambda: cs.zeros(2)["a"], IndexingError, r"index"),
    (lambda: cs.zeros(2, 3) + cs.zeros(4), ShapeError,
     r"^add: shapes \(2, 3\) and \(4,\) cannot be broadcast together\. Fix: make the sizes "
     r"equal, or 1 where they differ"),
    (lambda: cs.zeros(2) == cs.zeros(3), ShapeError, r"^eq: shapes \(2,\) and \(3,\)"),
    (lambda: cs.zeros(2) + "a", ArgumentTypeError, r"must be a number, a tensor or an array"),
    (lambda: cs.tensor([1, 2]) ** -1, ArgumentError, r"integers to negative integer powers"),
    (lambda: cs.tensor([1, 2]) // 0, ArgumentError, r"integer division by zero"),
    (lambda: cs.tensor([1, 2]).mean(), ArgumentTypeError,
     r"^mean: mean\(\) needs a floating-point tensor\. Fix: convert first: t\.float\(\)\.mean"),
    (lambda: cs.zeros(0).max(), ShapeError, r"max\(\) of no values is undefined"),
    (lambda: cs.zeros(2, 0).argmax(1), ShapeError, r"dim 1 has size 0"),
    (lambda: -cs.tensor([True]), ArgumentTypeError, r"invert a mask with ~mask"),
    (lambda: cs.tensor([True]) - cs.tensor([False]), ArgumentTypeError, r"bool operand"),
    (lambda: ~cs.zeros(2), ArgumentTypeError, r"not floats"),
    (lambda: cs.tensor([1, 2]).requires_grad_(), ArgumentTypeError,
     r"only floating-point tensors can require gradients"),
    (lambda: cs.tensor([1, 2], requires_grad=True), ArgumentTypeError, r"floating-point"),
    (lambda: cs.zeros(2, requires_grad=True).zero_(), GradError,
     r"^zero_: a leaf tensor that requires grad cannot be changed in place while gradients are "
     r"recorded\. Fix: do it inside `with cs\.no_grad\(\):`"),
    (lambda: (cs.zeros(2, requires_grad=True) * 1).fill_(1), GradError,
     r"in-place changes of tensors in a recorded graph are not supported"),
    (lambda: cs.zeros(2).__setitem__(0, cs.ones(1, requires_grad=True)), GradError,
     r"recorded graph"),
    (lambda: cs.zeros(2, 3).expand(2, 2, 3).fill_(1), ArgumentError, r"read-only"),
    (lambda: cs.zeros(2).__setitem__(slice(None), cs.ones(3)), ShapeError,
     r"do not fit the indexed region"),
    (lambda: cs.zeros(2).__setitem__(4, 1.0), IndexingError, r"out of bounds"),
    (lambda: cs.tensor([1, 2]).add_(0.5), ArgumentTypeError,
     r"cannot be stored in this int64 tensor"),
    (lambda: cs.zeros(2).clamp(), ArgumentError, r"at least one of `min` and `max`"),
    (lambda: cs.zeros(2).to("cuda"), ArgumentError,
     r"^Tensor\.to: convscope runs on the CPU only, not 'cuda'\. Fix: use \.to\('cpu'\)"),
    (lambda: cs.zeros(2).cuda(), ArgumentError, r"CPU only"),
    (lambda: cs.zeros(2).to(cs.float16 if hasattr(cs, "float16") else np.float16),
     ArgumentTypeError, r"`dtype` must be one of convscope's tensor types"),
    (lambda: cs.device("tpu"), ArgumentError, r"unknown device 'tpu'"),
    (lambda: cs.zeros(-1), ArgumentError, r"^zeros: sizes must be >= 0"),
    (lambda: cs.ones("a"), ArgumentTypeError, r"^ones: sizes must be ints"),
    (lambda: cs.full((2,), "x"), ArgumentTypeError, r"fill value must be a number"),
    (lambda: cs.rand(2, dtype=cs.int64), ArgumentTypeError, r"rand draws floating-point"),
    (lambda: cs.randint(10, 5), ArgumentTypeError, r"size must be a tuple"),
    (lambda: cs.randint(5, 1, (2,)), ArgumentError, r"low must be below high"),
    (lambda: cs.arange(0, 5, 0), ArgumentError, r"step must be nonzero"),
    (lambda: cs.from_numpy([1, 2]), ArgumentTypeError, r"expected a NumPy array"),
    (lambda: cs.zeros_like([1, 2]), ArgumentTypeError, r"^zeros_like: expected a Tensor"),
    (lambda: cs.where(cs.zeros(2), 1.0, 0.0), ArgumentTypeError, r"condition must be a bool"),
    (lambda: cs.where(cs.zeros(2) > 0, cs.zeros(3), 0.0), ShapeError, r"cannot be broadcast"),
    (lambda: cs.zeros(2, requires_grad=True).sum().backward(create_graph=True), GradError,
     r"create_graph=True"),
]


@pytest.mark.parametrize("call, cls, pattern", REFUSED)
def test_refusals_are_convscope_errors_with_pinned_messages(call, cls, pattern):
    with pytest.raises(cls, match=pattern) as info:
        call()
    assert isinstance(info.value, ConvscopeError)


def test_an_index_error_is_also_pythons():
    with pytest.raises(IndexError):
        cs.zeros(3)[3]
    with pytest.raises(ValueError):
        cs.zeros(3)[3]
