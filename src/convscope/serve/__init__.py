"""``convscope serve``: the interactive explainer, a local web page over any model.

The page shows the model's graph in order with thumbnails of every node's feature maps for
the current image; a node's maps, kernels and shapes; one value taken apart (the patch, the
kernel, the products, the sums, the bias, the total equal to the forward pass) with a
slider that moves the window over the input; and any image dropped on it. Everything is
served by convscope itself, from 127.0.0.1, with no network access.

Needs the optional extra: ``pip install 'convscope[serve]'`` (Starlette on uvicorn).

    from convscope.serve import State, create_app
    app = create_app(State("resnet18"))                                # an ASGI app
"""

from __future__ import annotations

from typing import Any

__all__ = ["State", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "State":
        from .state import State

        return State
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'convscope.serve' has no attribute {name!r}")
