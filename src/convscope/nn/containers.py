"""``ModuleList`` and ``ModuleDict``: modules held in a list or a dict, registered as children.

Their children appear in ``parameters()`` and ``state_dict()`` under PyTorch's names: the
position (``blocks.0.weight``) or the key (``heads.cls.weight``). Neither has a
``forward``: a model's own ``forward`` decides how to call them.

>>> import convscope as cs
>>> blocks = cs.nn.ModuleList([cs.nn.Linear(4, 4, seed=i) for i in range(2)])
>>> len(blocks.append(cs.nn.ReLU())), type(blocks[-1]).__name__
(3, 'ReLU')
>>> list(blocks.state_dict())
['0.weight', '0.bias', '1.weight', '1.bias']
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError, ConvscopeError, message
from .module import Module

__all__ = ["ModuleList", "ModuleDict", "ModuleIndexError", "ModuleKeyError"]


class ModuleIndexError(ConvscopeError, IndexError, ValueError):
    """A position past the end of a ModuleList (an IndexError, as PyTorch's)."""


class ModuleKeyError(ConvscopeError, KeyError, ValueError):
    """A key a ModuleDict does not hold (a KeyError, as PyTorch's)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


def _module(value: Any, where: str, what: str) -> Module:
    if not isinstance(value, Module):
        raise ArgumentTypeError(message(where, f"{what} is not a Module",
                                        "pass layers such as nn.Linear(...)",
                                        f"{type(value).__name__} {value!r:.40}"))
    return value


class ModuleList(Module):
    """A list of modules: indexing, slicing, ``len``, iteration, ``append``, ``extend``,
    ``insert``, ``pop``, ``del``, ``+`` and ``+=``, as ``torch.nn.ModuleList``.

    Parameters
    ----------
    modules : iterable of Module, optional
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _items(self) -> list[Module]:
        return list(self._modules.values())

    def _renumber(self, items: list[Module]) -> None:
        """Hold exactly ``items``, named 0, 1, ... in order."""
        for key in list(self._modules):
            self._modules.pop(key)
            self.__dict__.pop(key, None)
        for i, m in enumerate(items):
            setattr(self, str(i), m)

    def _index(self, idx: Any, where: str) -> int:
        if not isinstance(idx, numbers.Integral) or isinstance(idx, bool):
            raise ArgumentTypeError(message(where, "indices must be ints or slices",
                                            "use e.g. blocks[0] or blocks[1:]",
                                            f"index {idx!r} of type {type(idx).__name__}"))
        n = len(self)
        if not -n <= idx < n:
            raise ModuleIndexError(message(where, f"index {idx} is out of range for {n} "
                                           f"modules", f"use an index in [{-n}, {n - 1}]"
                                           if n else "append a module first", f"index {idx}"))
        return int(idx) % n

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(self._items()[idx])
        return self._items()[self._index(idx, "ModuleList")]

    def __setitem__(self, idx: int, module: Module) -> None:
        items = self._items()
        items[self._index(idx, "ModuleList")] = _module(module, "ModuleList",
                                                        f"the module for index {idx}")
        self._renumber(items)  # the order of the children stays the order of the list

    def __delitem__(self, idx: int | slice) -> None:
        items = self._items()
        if isinstance(idx, slice):
            del items[idx]
        else:
            del items[self._index(idx, "ModuleList")]
        self._renumber(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        if not isinstance(other, Iterable):
            return NotImplemented
        out = type(self)(self._items())
        return out.extend(other)

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end; returns the list."""
        setattr(self, str(len(self)), _module(module, "ModuleList.append", "the item"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add every module of ``modules`` at the end; returns the list."""
        if not isinstance(modules, Iterable) or isinstance(modules, (str, Mapping)):
            raise ArgumentTypeError(message("ModuleList.extend", "expected an iterable of "
                                            "modules", "pass a list, e.g. [nn.ReLU()]",
                                            f"{type(modules).__name__}"))
        items = list(modules)
        for i, m in enumerate(items):
            _module(m, "ModuleList", f"item {i}")
        for m in items:
            setattr(self, str(len(self)), m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index`` (as ``list.insert``)."""
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            self._index(index, "ModuleList.insert")  # refuses it
        items = self._items()
        items.insert(int(index), _module(module, "ModuleList.insert", "the item"))
        self._renumber(items)

    def pop(self, key: int = -1) -> Module:
        """Remove the module at ``key`` and return it."""
        items = self._items()
        module = items.pop(self._index(key, "ModuleList.pop"))
        self._renumber(items)
        return module


class ModuleDict(Module):
    """A dict of modules by name: ``[]``, ``in``, ``len``, iteration over keys, ``keys``,
    ``values``, ``items``, ``update``, ``pop``, ``clear``, as ``torch.nn.ModuleDict``.

    Keys keep the order they were added in.

    >>> import convscope as cs
    >>> heads = cs.nn.ModuleDict({"cls": cs.nn.Linear(4, 3, seed=0)})
    >>> heads["box"] = cs.nn.Linear(4, 4, seed=1)
    >>> list(heads), sorted(heads.state_dict())[0]
    (['cls', 'box'], 'box.bias')
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[Any] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise ModuleKeyError(message("ModuleDict", f"no module named {key!r}",
                                         f"use one of {list(self._modules)}", f"key {key!r}"))
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise ArgumentTypeError(message("ModuleDict", "keys must be strings",
                                            "use a name such as 'classifier'",
                                            f"key {key!r} of type {type(key).__name__}"))
        if not key or "." in key:
            raise ArgumentError(message("ModuleDict", "a key must be a non-empty name without "
                                        "'.' (the dots separate names in state_dict)",
                                        "use e.g. 'layer_1'", f"key {key!r}"))
        if key not in self._modules and hasattr(self, key):
            raise ArgumentError(message("ModuleDict", f"the key {key!r} would hide the "
                                        "attribute of that name", "choose another key",
                                        f"key {key!r}"))
        module = _module(module, "ModuleDict", f"the value for {key!r}")
        if key not in self._modules:
            setattr(self, key, module)
            return
        pairs = [(k, module if k == key else m) for k, m in self._modules.items()]
        self.clear()  # a replaced module keeps its place, as in a dict
        for k, m in pairs:
            setattr(self, k, m)

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def pop(self, key: str) -> Module:
        """Remove the module named ``key`` and return it."""
        module = self[key]
        self._modules.pop(key)
        self.__dict__.pop(key, None)
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            self.pop(key)

    def update(self, modules: Mapping[str, Module] | Iterable[Any]) -> None:
        """Add (or replace) modules from a mapping or from ``(key, module)`` pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = list(modules.items())
        elif isinstance(modules, Iterable) and not isinstance(modules, (str, Module)):
            pairs = []
            for i, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ArgumentTypeError(message("ModuleDict.update", f"element {i} is not "
                                                    "a (key, module) pair",
                                                    "pass a dict or a list of pairs",
                                                    f"{pair!r:.60}"))
                pairs.append((pair[0], pair[1]))
        else:
            raise ArgumentTypeError(message("ModuleDict.update", "expected a dict of modules "
                                            "or (key, module) pairs",
                                            "pass e.g. {'cls': nn.Linear(4, 3)}",
                                            f"{type(modules).__name__}"))
        for key, module in pairs:
            self[key] = module
