"""``Module``, ``Parameter`` and ``Sequential``: the containers, as PyTorch users know them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .. import shapes, tracing
from ..errors import ArgumentError, ArgumentTypeError, ConvscopeError, ShapeError, message
from ..tensor import Tensor, as_array, is_grad_enabled

__all__ = ["Parameter", "Module", "Sequential", "make_rng"]


def make_rng(seed: Any) -> np.random.Generator:
    """The generator to draw from: a seed (a new generator), a generator (used as is), or
    None: the default generator that :func:`convscope.manual_seed` seeds, as in PyTorch."""
    from ..random import numpy_rng

    return numpy_rng(seed, "seed")


def _is_device(target: Any) -> bool:
    """Whether ``target`` names a device: only the CPU exists here (anything else is refused)."""
    name = target if isinstance(target, str) else getattr(target, "type", None)
    if not isinstance(name, str):
        return False
    if name.split(":")[0] != "cpu":
        if name.split(":")[0] in ("cuda", "mps", "xpu", "meta"):
            raise ArgumentError(message("to", f"convscope runs on the CPU only, not {name!r}",
                                        "use .to('cpu') (or leave the call out)",
                                        f"device={name!r}"))
        return False
    return True


class Parameter(Tensor):
    """A tensor that a module learns: ``requires_grad=True`` and listed by ``parameters()``."""

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``handle.remove()`` takes the hook away."""

    _next_id = 0

    def __init__(self, table: OrderedDict) -> None:
        self._table = table
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Module:
    """Base class of every layer and model.

    Assigning a :class:`Parameter`, a ``Module`` or (through :meth:`register_buffer`) an array
    to an attribute registers it, so that :meth:`parameters`, :meth:`state_dict` and
    :meth:`train`/:meth:`eval` reach it, with PyTorch's dotted names (``0.weight``).

    **Leaf layers** (the convscope layers) carry their own knowledge for the tools that read
    a traced graph (:mod:`convscope.graph`): a class attribute ``op`` (the graph op name,
    e.g. ``"conv2d"``; None for containers and models, which are traced through) and the
    methods ``get_config()`` (constructor arguments: ``type(m)(**m.get_config())`` rebuilds
    the layer), ``output_shape(shape)`` (the output shape for an input shape with its batch
    axis, from the shapes alone, raising the errors the forward pass would), ``describe(in,
    out)`` (the explain table's words) and ``macs(in, out)`` (multiply-adds, torchinfo's
    convention). A subclass that overrides ``forward`` is traced through, not as a leaf.
    """

    op: str | None = None
    fused_inference = False  # cs.compile(model): inference runs the fused graph

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise ConvscopeError(f"{type(self).__name__}: call super().__init__() first")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None: a declared, absent parameter such as ``bias``)."""
        if param is None:
            self.__setattr__(name, None)
        elif not isinstance(param, Parameter):
            raise ArgumentTypeError(message(f"{type(self).__name__}.register_parameter",
                                            f"{name!r} must be a Parameter or None",
                                            "wrap it: nn.Parameter(array)",
                                            type(param).__name__))
        else:
            self.__setattr__(name, param)

    def register_module(self, name: str, module: Module | None) -> None:
        self.__setattr__(name, module)

    add_module = register_module

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A saved array that is not learned (BatchNorm's running statistics)."""
        self.__setattr__(name, value)
        self._buffers[name] = value

    # ------------------------------------------------------------------ calling
    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward``, with the forward hooks around it and, inside a trace, recorded."""
        rec = tracing.active()
        if rec is not None:  # a trace is convscope's own business: hooks do not see it
            return rec.call_module(self, args, kwargs) if not tracing.quiet() else \
                self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        if self.fused_inference and not self.training and not is_grad_enabled():
            from ..graph.fuse import compiled_call

            result = compiled_call(self, args, kwargs)
            if result is NotImplemented:
                result = self.forward(*args, **kwargs)
        else:
            result = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            changed = hook(self, args, result)
            if changed is not None:
                result = changed
        return result

    def register_forward_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every forward; a non-None return value
        replaces the output. Returns a handle whose ``remove()`` takes the hook away."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(module, args)`` before every forward; a non-None return value
        replaces the arguments."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    @classmethod
    def is_leaf(cls) -> bool:
        """Whether a trace records this class as one node (see the class docstring)."""
        for klass in cls.__mro__:
            if "op" in klass.__dict__:
                return klass.__dict__["op"] is not None and cls.forward is klass.forward
        return False

    # ------------------------------------------------------------------ traversal
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """Every module under this one (itself first) with its dotted path; a module that
        appears twice (shared, tied weights) is listed once, at its first path."""
        if memo is None:
            memo = set()
        if isinstance(memo, str):  # named_modules("prefix"), this class's old signature
            memo, prefix = set(), memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, mod in self._modules.items():
            if mod is None:
                continue
            yield from mod.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                         remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, mod in self._modules.items():
            if mod is not None:
                yield name, mod

    def children(self) -> Iterator[Module]:
        for _, mod in self.named_children():
            yield mod

    def get_submodule(self, target: str) -> Module:
        """The module at a dotted path (``"layer1.0.conv1"``); ``""`` is this one."""
        mod: Module = self
        for part in target.split(".") if target else []:
            nxt = mod._modules.get(part)
            if nxt is None:
                raise ArgumentError(message("get_submodule", f"there is no module {target!r}",
                                            "use a path from model.named_modules()",
                                            f"{type(mod).__name__} has no child {part!r}"))
            mod = nxt
        return mod

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name; a parameter shared by two modules (tied
        weights) is listed once, so an optimizer steps it once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix) if recurse else iter([(prefix, self)])
        for mod_name, mod in mods:
            for name, p in mod._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, mod in self.named_modules(prefix=prefix):
            for name in mod._buffers:
                yield (f"{mod_name}.{name}" if mod_name else name), getattr(mod, name)

    def buffers(self) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers():
            yield b

    def apply(self, fn: Any) -> Module:
        """Call ``fn(m)`` on every submodule, children first, then this one (as PyTorch)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(dtype)`` casts every parameter and floating buffer to float32 or float64, in
        place; ``to("cpu")`` / ``to(device)`` return the module as is (convscope runs on the
        CPU). Returns the module, as PyTorch."""
        targets = list(args) + [kwargs[k] for k in ("device", "dtype") if k in kwargs]
        for target in targets:
            if _is_device(target):
                continue
            dt = np.dtype(target)
            for p in self.parameters():
                p.data = as_array(p.data, "Module.to", dt).copy()
                p.grad = None
            for m in self.modules():
                for name, buf in list(m._buffers.items()):
                    if buf.dtype.kind == "f":
                        m.register_buffer(name, buf.astype(dt))
        return self

    def cpu(self) -> Module:
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Every parameter and buffer by dotted name, as Tensors (copies, detached).

        As in PyTorch, ``np.asarray(v)`` and ``v.detach().cpu().numpy()`` give the arrays;
        unlike PyTorch, the values are copies, so a saved "best" state is not changed by
        later training steps.
        """
        return OrderedDict((k, Tensor._wrap(v)) for k, v in self.state_arrays().items())

    def state_arrays(self) -> OrderedDict[str, np.ndarray]:
        """:meth:`state_dict` as NumPy arrays (copies): what files are written from."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_name, mod in self.named_modules(remove_duplicate=False):
            pre = f"{mod_name}." if mod_name else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    out[pre + name] = p.data.copy()
            for name in mod._buffers:
                out[pre + name] = np.array(getattr(mod, name), copy=True)
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers, checking every name and shape.

        Values may be NumPy arrays, Tensors, or anything with ``.numpy()`` (a torch tensor).
        """
        own = self.state_arrays()
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise ArgumentTypeError(
                message(
                    where,
                    "expected a mapping of names to arrays",
                    "pass model.state_dict()",
                    type(state).__name__,
                )
            )
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise ShapeError(
                message(
                    where,
                    "the names do not match this model",
                    "load weights saved from the same architecture, or strict=False",
                    f"missing {missing or 'none'}, unexpected {unexpected or 'none'}",
                )
            )
        for mod_name, mod in self.named_modules(remove_duplicate=False):
            pre = f"{mod_name}." if mod_name else ""
            for name in [k for k, v in mod._parameters.items() if v is not None] + list(
                    mod._buffers):
                key = pre + name
                if key not in state:
                    continue
                value = state[key]
                if (
                    hasattr(value, "detach")
                    and hasattr(value, "numpy")
                    and not isinstance(value, Tensor)
                ):
                    value = value.detach().cpu().numpy()
                arr = np.asarray(value.data if isinstance(value, Tensor) else value)
                target = own[key]
                if arr.shape != target.shape:
                    raise ShapeError(
                        message(
                            where,
                            f"tensor {key!r} has the wrong shape",
                            f"expected {target.shape}; check the architecture",
                            f"shape {arr.shape}",
                        )
                    )
                if name in mod._parameters:
                    mod._parameters[name].data = as_array(arr, where, target.dtype).copy()
                else:
                    mod.register_buffer(name, arr.astype(target.dtype).copy())

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): " + repr(mod).replace("\n", "\n  ") for name, mod in self._modules.items()
        ]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other; indexing, slicing, ``len`` and iteration as in PyTorch.

    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2, seed=0), nn.ReLU())
    >>> len(model), type(model[0]).__name__
    (2, 'Conv2d')
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ArgumentTypeError(
                    message(
                        "Sequential",
                        f"item {i} is not a Module",
                        "pass layers such as nn.Conv2d(...)",
                        repr(layer),
                    )
                )
            setattr(self, str(i), layer)
        self.spec: str | None = None  # the model-spec text, when built by cs.parse

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def append(self, layer: Module) -> Sequential:
        setattr(self, str(len(self)), layer)
        return self

    def forward(self, x: Any) -> Any:
        """Each layer on the previous one's output.

        A ``Conv2d`` directly followed by a ``ReLU`` (both exactly those classes) runs as
        one fused operation (:meth:`Conv2d.forward_relu`): the same values and gradients,
        without a pass of its own for the ReLU. When such a pair feeds a ``MaxPool2d`` or
        a zero-padded ``Conv2d``, that layer's backward also takes the gradient through
        the pair's ReLU as it writes it (the pool reads its own, smaller output for the
        rule), so the pair's backward reads no mask; a zero-padded pair followed by a
        ``MaxPool2d(2)`` (stride 2, no padding) runs with it as one pass that never stores
        the conv's or the ReLU's output. Calling the layers one by one gives the
        intermediate values. See ``docs/decisions.md`` (Speed and memory).
        """
        from .layers import Conv2d, MaxPool2d, ReLU  # layers imports this module

        layers = list(self)
        if tracing.active() is not None:  # a trace records each layer as itself
            for layer in layers:
                x = layer(x)
            return x
        n = len(layers)
        plain = [not (m._forward_hooks or m._forward_pre_hooks) for m in layers]  # hooks see
        pair = [type(m) is Conv2d and i + 1 < n and type(layers[i + 1]) is ReLU  # every call
                and plain[i] and plain[i + 1] for i, m in enumerate(layers)]
        pool_2x2 = [type(m) is MaxPool2d and m.kernel_size == m.stride == (2, 2) and plain[i]
                    and m.padding == (0, 0) and m.extra == m.defaults
                    for i, m in enumerate(layers)]
        relu_input = [False] * n  # its input is a pair's output, which only it reads
        for i in range(n - 2):
            nxt = layers[i + 2]
            if pair[i] and plain[i + 2] and (type(nxt) is MaxPool2d
                            or (type(nxt) is Conv2d and nxt.padding_mode == "zeros")):
                relu_input[i + 2] = True
        prev: Module | None = None
        prev_shape: tuple[int, ...] = ()
        i = 0
        while i < n:
            layer = layers[i]
            shape = x.shape if isinstance(x, Tensor) else tuple(np.shape(x))
            pooled = pair[i] and i + 2 < n and pool_2x2[i + 2] and _pools_2x2(layer, shape)
            try:
                if pooled:  # conv, ReLU and 2 x 2 max pool in one pass
                    y = layer.forward_relu(x, True, relu_input[i], True, True)
                elif pair[i]:
                    premasked = i + 2 < n and relu_input[i + 2]
                    y = layer.forward_relu(x, True, relu_input[i], premasked)
                elif relu_input[i] and type(layer) is Conv2d:
                    y = layer.forward_relu(x, False, True)
                elif relu_input[i]:
                    y = layer.forward(x, relu_input=True)
                else:
                    y = layer(x)
            except ConvscopeError as exc:
                raise type(exc)(
                    _in_layer(str(exc), i, layer, shape, i - 1, prev, prev_shape)
                ) from None
            prev, prev_shape = layer, shape
            if pooled:  # the pool's input had the conv's output shape
                prev, prev_shape = layers[i + 2], _conv_out_shape(layer, shape)
                i += 2
            elif pair[i]:  # the ReLU's input had the conv's output shape
                prev, prev_shape = layers[i + 1], y.shape
                i += 1
            x = y
            i += 1
        return x


def _conv_out_shape(conv: Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of ``conv`` (a zero-padded Conv2d) for an input of ``shape``."""
    batched = shape if len(shape) == 4 else (1, *shape)
    geo = shapes.conv_geometry(
        batched,
        tuple(conv.weight.shape),
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        "Sequential",
    )
    out = (batched[0], conv.weight.shape[0], *geo.out_hw)
    return out if len(shape) == 4 else out[1:]


def _pools_2x2(conv: Module, shape: tuple[int, ...]) -> bool:
    """Whether a zero-padded conv's output, for this input, has a whole 2 x 2 window."""
    if getattr(conv, "padding_mode", "") != "zeros" or len(shape) not in (3, 4):
        return False
    try:
        return min(_conv_out_shape(conv, shape)[-2:]) >= 2
    except ConvscopeError:  # the conv itself will say what is wrong
        return False


def _in_layer(
    text: str,
    i: int,
    layer: Module,
    shape: tuple[int, ...],
    j: int,
    prev: Module | None,
    prev_shape: tuple[int, ...],
) -> str:
    """A layer's error, told as part of a Sequential: which layer, and where its input came from.

    ``"layer 3, Linear(100 -> 10): expects 100 input features, got 144; its input (2, 144)
    comes from layer 2 (Flatten), which flattened 6x6x4 volumes (H x W x D): 6*6*4 = 144.
    Fix: ..."``
    """
    name = type(layer).__name__
    head = f"layer {i}, " if text.startswith(name) else f"layer {i} ({name}): "
    if prev is None:
        return head + text
    origin = f"; its input {shape} comes from layer {j} ({type(prev).__name__})"
    if type(prev).__name__ == "Flatten" and len(prev_shape) == 4 and len(shape) == 2:
        _, c, h, w = prev_shape
        origin += f", which flattened {h}x{w}x{c} volumes (H x W x D): {h}*{w}*{c} = {shape[1]}"
    what, sep, rest = text.partition(". Fix: ")
    if not sep:
        return head + text.rstrip(".") + origin + "."
    return head + what + origin + sep + rest
