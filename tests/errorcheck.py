"""The house form of a convscope error, checked in one place for every test that needs it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from convscope.errors import ConvscopeError, GradError


def check_error(fn: Callable[[], object], cls: type[Exception], pattern: str) -> ConvscopeError:
    """``fn()`` raises ``cls`` whose message matches ``pattern`` and has the house form."""
    with pytest.raises(cls, match=pattern) as info:
        fn()
    err = info.value
    assert isinstance(err, ConvscopeError), type(err).__mro__
    # GradError is a RuntimeError, as PyTorch's autograd errors are; everything else is a
    # ValueError or TypeError so that `except ValueError` code keeps working.
    base = RuntimeError if isinstance(err, GradError) else (ValueError, TypeError)
    assert isinstance(err, base), type(err).__mro__
    text = str(err)
    assert "Fix: " in text, text
    assert "Traceback" not in text and len(text) < 2000, text
    return err
