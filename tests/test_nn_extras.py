"""nn.init, nn.utils (gradient clipping), ModuleList and ModuleDict, without torch.

The distributions are checked on big tensors against their exact moments with bounds of
six standard errors (a false alarm about once in 10^8 runs); the torch comparisons (fans,
gains, clipping) are in test_nn_extras_torch.py, the losses in test_nn_losses.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope as cs
from convscope import nn
from convscope.errors import ArgumentError, ArgumentTypeError, ConvscopeError, GradError, ShapeError
from convscope.nn import init
from errorcheck import check_error

N = 200_000


def _big(shape=(400, 500), dtype=np.float32) -> nn.Parameter:
    return nn.Parameter(np.zeros(shape, dtype))


def _moments(values: np.ndarray, mean: float, std: float) -> None:
    """Sample mean and standard deviation within six standard errors of the exact ones."""
    x = values.astype(np.float64).reshape(-1)
    n = x.size
    assert abs(x.mean() - mean) <= 6 * std / math.sqrt(n), (x.mean(), mean)
    assert abs(x.std() - std) <= 6 * std / math.sqrt(2 * n) * 1.5, (x.std(), std)


def _cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _truncated_moments(mean, std, a, b):
    """Mean and std of N(mean, std^2) on [a, b], by quadrature of the standard density on
    [alpha, beta] (closed forms cancel badly far in a tail)."""
    al, be = (a - mean) / std, (b - mean) / std
    al = be - 40 if math.isinf(al) else al  # an infinite end: 40 std is far enough
    be = al + 40 if math.isinf(be) else be
    z = np.linspace(al, be, 400_001)
    near = min(max(0.0, al), be)  # the point nearest 0: the density's peak here
    dens = np.exp(-0.5 * (z * z - near * near))
    m = np.trapezoid(z * dens, z) / np.trapezoid(dens, z)
    var = np.trapezoid((z - m) ** 2 * dens, z) / np.trapezoid(dens, z)
    return mean + std * m, std * math.sqrt(var)


# ----------------------------------------------------------------------------- init
def test_uniform_and_normal_fill_in_place_with_the_right_moments():
    w = _big()
    data = w.data
    assert init.uniform_(w, -2.0, 3.0) is w and w.data is data and w.dtype == np.float32
    assert w.numpy().min() >= -2.0 and w.numpy().max() <= 3.0
    _moments(w.numpy(), 0.5, 5 / math.sqrt(12))
    w64 = _big(dtype=np.float64)
    init.normal_(w64, mean=1.0, std=0.02)
    assert w64.dtype == np.float64
    _moments(w64.numpy(), 1.0, 0.02)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier_uniform_and_normal(gain):
    w = _big((100, 20, 10))  # fan_in 200, fan_out 1000
    std = gain * math.sqrt(2 / 1200)
    init.xavier_uniform_(w, gain=gain)
    bound = math.sqrt(3) * std
    assert np.abs(w.numpy()).max() <= bound * (1 + 1e-6)
    assert np.abs(w.numpy()).max() >= bound * 0.999
    _moments(w.numpy(), 0.0, std)
    init.xavier_normal_(w, gain=gain)
    _moments(w.numpy(), 0.0, std)


@pytest.mark.parametrize("mode, nonlinearity, a", [
    ("fan_in", "leaky_relu", 0), ("fan_out", "relu", 0), ("fan_in", "leaky_relu", math.sqrt(5)),
    ("fan_out", "tanh", 0), ("FAN_IN", "linear", 0),
])
def test_kaiming_uniform_and_normal(mode, nonlinearity, a):
    w = _big((50, 40, 10, 10))  # fan_in 4000, fan_out 5000
    fan = 4000 if mode.lower() == "fan_in" else 5000
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    assert np.abs(w.numpy()).max() <= math.sqrt(3) * std * (1 + 1e-6)
    _moments(w.numpy(), 0.0, std)
    init.kaiming_normal_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    _moments(w.numpy(), 0.0, std)


def test_pytorch_default_layer_init_is_kaiming_uniform_with_a_sqrt5():
    w = _big((64, 3, 5, 5))
    init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = 1 / math.sqrt(75)
    assert np.abs(w.numpy()).max() <= bound * (1 + 1e-6) and np.abs(w.numpy()).max() > 0.99 * bound


@pytest.mark.parametrize("mean, std, a, b", [
    (0.0, 1.0, -2.0, 2.0),     # the default: wide, around the mean
    (0.0, 0.02, -2.0, 2.0),    # a and b are values: no truncation in effect
    (0.0, 1.0, -0.1, 0.3),     # narrow, around the mean
    (0.0, 1.0, 3.0, 5.0),      # far in the right tail (PyTorch warns here)
    (1.0, 2.0, -math.inf, -6.0),  # the left tail, one-sided
    (0.0, 1.0, 6.0, 6.05),     # short interval far out
    (0.0, 1.0, 0.0, math.inf),  # a half-normal
])
def test_trunc_normal_stays_in_bounds_with_the_exact_moments(mean, std, a, b):
    w = _big(dtype=np.float64)
    init.trunc_normal_(w, mean, std, a, b, generator=cs.Generator().manual_seed(1))
    x = w.numpy()
    assert x.min() >= a and x.max() <= b
    m, s = _truncated_moments(mean, std, a, b)
    _moments(x, m, s)
    # the whole distribution: a Kolmogorov-Smirnov distance below its 0.1 % critical value
    sample = np.sort(x.reshape(-1)[:20_000])
    al, be = (a - mean) / std, (b - mean) / std
    cdf = np.vectorize(lambda v: (_cdf((v - mean) / std) - _cdf(al)) / (_cdf(be) - _cdf(al)))
    ecdf = np.arange(1, sample.size + 1) / sample.size
    assert np.abs(cdf(sample) - ecdf).max() < 1.95 / math.sqrt(sample.size)


def test_generators_and_manual_seed_make_fills_repeatable():
    w1, w2 = _big((30, 20)), _big((30, 20))
    init.kaiming_normal_(w1, generator=cs.Generator().manual_seed(7))
    init.kaiming_normal_(w2, generator=cs.Generator().manual_seed(7))
    assert np.array_equal(w1.numpy(), w2.numpy())
    cs.manual_seed(3)
    init.xavier_uniform_(w1)
    init.trunc_normal_(w2)
    cs.manual_seed(3)
    a, b = _big((30, 20)), _big((30, 20))
    init.xavier_uniform_(a)
    init.trunc_normal_(b)
    assert np.array_equal(a.numpy(), w1.numpy()) and np.array_equal(b.numpy(), w2.numpy())


def test_constant_ones_zeros_and_fans():
    w = nn.Parameter(np.ones((3, 4, 2, 2), np.float32))
    assert (init.constant_(w, 0.25).numpy() == 0.25).all()
    assert (init.zeros_(w).numpy() == 0).all() and (init.ones_(w).numpy() == 1).all()
    assert init._calculate_fan_in_and_fan_out(w) == (16, 12)
    assert init._calculate_fan_in_and_fan_out(nn.Parameter(np.zeros((5, 7)))) == (7, 5)
    bias = init.zeros_(nn.Parameter(np.ones(3)))  # 1-D: fills work, fans do not
    assert not bias.numpy().any()


def test_gains_match_pytorchs_table():
    assert init.calculate_gain("conv2d") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == 5 / 3 and init.calculate_gain("selu") == 0.75
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)


def test_zero_element_tensor_is_left_alone_with_pytorchs_warning():
    empty = nn.Parameter(np.zeros((0, 3), np.float32))
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        assert init.kaiming_uniform_(empty) is empty
    assert init.xavier_normal_(nn.Parameter(np.zeros((0, 0)))).shape == (0, 0)


INIT_ERRORS = [
    ("xavier of a bias", lambda: init.xavier_uniform_(nn.Parameter(np.zeros(3))), ShapeError,
     r"^xavier_uniform_: fan in and fan out need a tensor of at least 2 dimensions.*shape "
     r"\(3,\)"),
    ("kaiming of a scalar", lambda: init.kaiming_normal_(nn.Parameter(1.0)), ShapeError,
     r"^kaiming_normal_: fan in and fan out.*shape \(\)"),
    ("xavier_normal_ 1-D", lambda: init.xavier_normal_(nn.Parameter(np.zeros(4))), ShapeError,
     r"at least 2 dimensions"),
    ("kaiming_uniform_ 1-D", lambda: init.kaiming_uniform_(nn.Parameter(np.zeros(4))),
     ShapeError, r"at least 2 dimensions"),
    ("an array", lambda: init.zeros_(np.zeros(3)), ArgumentTypeError,
     r"^zeros_: expected a Tensor or Parameter to fill in place\. Fix: pass e\.g\. "
     r"layer\.weight\. Received: ndarray"),
    ("mode fan_mid", lambda: init.kaiming_uniform_(_big((2, 2)), mode="fan_mid"),
     ArgumentError, r"mode must be 'fan_in' or 'fan_out'.*mode='fan_mid'"),
    ("nonlinearity swish", lambda: init.kaiming_normal_(_big((2, 2)), nonlinearity="swish"),
     ArgumentError, r"^calculate_gain: unsupported nonlinearity 'swish'"),
    ("leaky slope 'a'", lambda: init.calculate_gain("leaky_relu", "a"), ArgumentError,
     r"the negative slope must be a number.*param='a'"),
    ("normal std -1", lambda: init.normal_(_big((2, 2)), std=-1), ArgumentError,
     r"^normal_: std must be a finite number >= 0.*std=-1"),
    ("uniform b < a", lambda: init.uniform_(_big((2, 2)), 1.0, 0.0), ArgumentError,
     r"^uniform_: the range \[a, b\) must be finite with a <= b.*a=1\.0, b=0\.0"),
    ("trunc std 0", lambda: init.trunc_normal_(_big((2, 2)), std=0), ArgumentError,
     r"^trunc_normal_: need a finite mean, std > 0 and a <= b"),
    ("trunc a > b", lambda: init.trunc_normal_(_big((2, 2)), a=1, b=-1), ArgumentError,
     r"a=1, b=-1"),
    ("constant 'x'", lambda: init.constant_(_big((2, 2)), "x"), ArgumentTypeError,
     r"^constant_: val must be a number.*val='x'"),
    ("generator 'x'", lambda: init.normal_(_big((2, 2)), generator="x"), ArgumentTypeError,
     r"generator='x'"),
]


@pytest.mark.parametrize("name, fn, cls, pattern", INIT_ERRORS, ids=[e[0] for e in INIT_ERRORS])
def test_init_refuses_bad_arguments(name, fn, cls, pattern):
    check_error(fn, cls, pattern)


# ----------------------------------------------------------------------------- utils
def _with_grads(seed: int, dtype=np.float64, scale: float = 1.0) -> list[nn.Parameter]:
    rng = np.random.default_rng(seed)
    params = [nn.Parameter(np.zeros(s, dtype)) for s in [(3, 4), (5,), (2, 2, 2)]]
    for p in params:
        p.grad = cs.tensor(rng.standard_normal(p.shape).astype(dtype) * scale)
    params.append(nn.Parameter(np.zeros(2, dtype)))  # no gradient: skipped
    return params


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), norm_type=st.sampled_from([0.5, 1, 2.0, 3, math.inf, "inf"]),
       max_norm=st.floats(0.01, 20.0), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_clip_grad_norm_returns_the_total_norm_and_leaves_at_most_max_norm(seed, norm_type,
                                                                           max_norm, scale):
    params = _with_grads(seed, scale=scale)
    flat = np.concatenate([p.grad.numpy().reshape(-1) for p in params if p.grad is not None])
    p = math.inf if norm_type == "inf" else float(norm_type)
    want = np.abs(flat).max() if p == math.inf else (np.abs(flat) ** p).sum() ** (1 / p)
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    assert isinstance(total, cs.Tensor) and total.shape == () and total.dtype == np.float64
    assert math.isclose(total.item(), want, rel_tol=1e-12)
    after = np.concatenate([q.grad.numpy().reshape(-1) for q in params if q.grad is not None])
    new = np.abs(after).max() if p == math.inf else (np.abs(after) ** p).sum() ** (1 / p)
    if want <= max_norm:
        assert np.array_equal(after, flat)
    else:
        assert math.isclose(new, max_norm * want / (want + 1e-6), rel_tol=1e-9)


def test_clip_grad_norm_on_one_tensor_float32_and_nothing():
    w = nn.Parameter(np.zeros(2, np.float32))
    w.grad = cs.tensor(np.array([3.0, 4.0], np.float32))
    total = nn.utils.clip_grad_norm_(w, 10.0)
    assert total.dtype == np.float32 and total.item() == 5.0
    assert nn.utils.clip_grad_norm_([nn.Parameter([1.0])], 1.0).item() == 0.0


def test_clip_grad_norm_with_nan_clips_to_nan_or_refuses():
    params = _with_grads(0)
    params[0].grad.data[0, 0] = np.nan
    check_error(lambda: nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True),
                GradError, r"^clip_grad_norm_: the total norm of order 2\.0 of the gradients is "
                r"not finite.*total norm nan")
    assert np.isnan(nn.utils.clip_grad_norm_(params, 1.0).item())
    assert np.isnan(params[1].grad.numpy()).all()  # as PyTorch: every gradient becomes NaN


def test_clip_grad_value_clamps_in_place():
    params = _with_grads(1, scale=3.0)
    grad = params[0].grad
    before = grad.numpy().copy()
    nn.utils.clip_grad_value_(params, 1.5)
    assert params[0].grad is grad
    assert np.array_equal(grad.numpy(), np.clip(before, -1.5, 1.5))


UTILS_ERRORS = [
    ("max_norm -1", lambda: nn.utils.clip_grad_norm_(_with_grads(0), -1), ArgumentError,
     r"^clip_grad_norm_: max_norm must be a number >= 0.*max_norm=-1"),
    ("norm_type 'two'", lambda: nn.utils.clip_grad_norm_(_with_grads(0), 1, "two"),
     ArgumentError, r"norm_type must be a number >= 0 or 'inf'.*norm_type='two'"),
    ("norm_type -1", lambda: nn.utils.clip_grad_norm_(_with_grads(0), 1, -1), ArgumentError,
     r"norm_type=-1"),
    ("a model", lambda: nn.utils.clip_grad_norm_(nn.Sequential(nn.ReLU()), 1.0),
     ArgumentTypeError, r"parameters must be a Tensor or an iterable of Tensors\. Fix: pass "
     r"model\.parameters\(\)\. Received: Sequential"),
    ("arrays", lambda: nn.utils.clip_grad_value_([np.zeros(3)], 1.0), ArgumentTypeError,
     r"^clip_grad_value_: parameters must be Tensors.*ndarray"),
    ("clip_value nan", lambda: nn.utils.clip_grad_value_(_with_grads(0), math.nan),
     ArgumentError, r"clip_value must be a number >= 0"),
]


@pytest.mark.parametrize("name, fn, cls, pattern", UTILS_ERRORS,
                         ids=[e[0] for e in UTILS_ERRORS])
def test_clipping_refuses_bad_arguments(name, fn, cls, pattern):
    check_error(fn, cls, pattern)


# ----------------------------------------------------------------------------- containers
def _lin(i: int) -> nn.Linear:
    return nn.Linear(2, 3, seed=i)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([_lin(0), nn.ReLU(), _lin(1)])
        self.heads = nn.ModuleDict({"cls": _lin(2), "box": _lin(3)})


def test_children_register_with_pytorchs_names():
    net = _Net()
    assert list(net.state_dict()) == [
        "blocks.0.weight", "blocks.0.bias", "blocks.2.weight", "blocks.2.bias",
        "heads.cls.weight", "heads.cls.bias", "heads.box.weight", "heads.box.bias"]
    assert len(list(net.parameters())) == 8
    assert [n for n, _ in net.named_modules()][:3] == ["", "blocks", "blocks.0"]


def test_module_list_behaves_as_a_list():
    a, b, c, d = _lin(0), _lin(1), nn.ReLU(), _lin(2)
    ml = nn.ModuleList([a, b])
    assert ml.append(c) is ml and ml.extend([d]) is ml and len(ml) == 4
    assert ml[0] is a and ml[-1] is d and list(ml) == [a, b, c, d]
    assert isinstance(ml[1:3], nn.ModuleList) and list(ml[1:3]) == [b, c]
    ml.insert(1, d)
    assert list(ml) == [a, d, b, c, d] and list(ml._modules) == ["0", "1", "2", "3", "4"]
    del ml[1]
    assert list(ml) == [a, b, c, d] and "3.weight" in ml.state_dict()
    ml[0] = c
    assert list(ml) == [c, b, c, d] and list(ml.state_dict())[:2] == ["1.weight", "1.bias"]
    assert ml.pop(1) is b and list(ml) == [c, c, d]
    del ml[:2]
    assert list(ml) == [d] and list(ml.state_dict()) == ["0.weight", "0.bias"]
    ml += [a]
    both = ml + nn.ModuleList([b])
    assert list(both) == [d, a, b] and list(ml) == [d, a]


def test_module_dict_behaves_as_a_dict():
    a, b, c = _lin(0), _lin(1), _lin(2)
    md = nn.ModuleDict([("a", a), ("b", b)])
    assert md["a"] is a and "b" in md and "c" not in md and len(md) == 2
    md["c"] = c
    assert list(md) == ["a", "b", "c"] and list(md.keys()) == ["a", "b", "c"]
    assert list(md.values()) == [a, b, c] and dict(md.items())["b"] is b
    md["a"] = c  # a replaced module keeps its place
    assert list(md) == ["a", "b", "c"] and md["a"] is c
    assert md.pop("b") is b and list(md) == ["a", "c"]
    del md["a"]
    md.update(nn.ModuleDict({"z": a}))
    md.update({"y": b})
    assert list(md) == ["c", "z", "y"] and sorted(md.state_dict())[0] == "c.bias"
    md.clear()
    assert len(md) == 0 and not list(md.parameters())


CONTAINER_ERRORS = [
    ("append a function", lambda: nn.ModuleList().append(len), ArgumentTypeError,
     r"^ModuleList\.append: the item is not a Module.*builtin_function_or_method"),
    ("extend with a module", lambda: nn.ModuleList().extend(_lin(0)), ArgumentTypeError,
     r"^ModuleList\.extend: expected an iterable of modules.*Linear"),
    ("a list with an int", lambda: nn.ModuleList([_lin(0), 3]), ArgumentTypeError,
     r"^ModuleList: item 1 is not a Module.*int 3"),
    ("index '0'", lambda: nn.ModuleList([_lin(0)])["0"], ArgumentTypeError,
     r"indices must be ints or slices.*of type str"),
    ("dict key 1", lambda: nn.ModuleDict({1: _lin(0)}), ArgumentTypeError,
     r"^ModuleDict: keys must be strings.*key 1 of type int"),
    ("dict key 'a.b'", lambda: nn.ModuleDict({"a.b": _lin(0)}), ArgumentError,
     r"a key must be a non-empty name without '\.'.*key 'a\.b'"),
    ("dict key 'train'", lambda: nn.ModuleDict({"train": _lin(0)}), ArgumentError,
     r"the key 'train' would hide the attribute of that name"),
    ("dict of arrays", lambda: nn.ModuleDict({"a": np.zeros(2)}), ArgumentTypeError,
     r"the value for 'a' is not a Module"),
    ("update with a triple", lambda: nn.ModuleDict([("a", _lin(0), 1)]), ArgumentTypeError,
     r"^ModuleDict\.update: element 0 is not a \(key, module\) pair"),
    ("update with an int", lambda: nn.ModuleDict(5), ArgumentTypeError,
     r"expected a dict of modules or \(key, module\) pairs.*int"),
]


@pytest.mark.parametrize("name, fn, cls, pattern", CONTAINER_ERRORS,
                         ids=[e[0] for e in CONTAINER_ERRORS])
def test_containers_refuse_bad_arguments(name, fn, cls, pattern):
    check_error(fn, cls, pattern)


def test_out_of_range_and_missing_keys_are_index_and_key_errors_as_in_pytorch():
    ml = nn.ModuleList([_lin(0)])
    for fn in (lambda: ml[1], lambda: ml[-2], lambda: ml.pop(3), lambda: nn.ModuleList()[0]):
        with pytest.raises(IndexError, match=r"out of range") as info:
            fn()
        assert isinstance(info.value, ConvscopeError) and isinstance(info.value, ValueError)
    with pytest.raises(KeyError) as info:
        nn.ModuleDict({"a": _lin(0)})["b"]
    assert isinstance(info.value, ConvscopeError)
    assert str(info.value) == ("ModuleDict: no module named 'b'. Fix: use one of ['a']. "
                               "Received: key 'b'.")
