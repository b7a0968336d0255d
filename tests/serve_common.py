"""What the serve tests share: a test client on the served address, small models, images."""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from convscope.serve.state import State

try:
    with warnings.catch_warnings():  # starlette asks for httpx2 where only httpx is installed
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
except ImportError:  # the tests that use it skip (pytest.importorskip)
    TestClient = None

BASE = "http://127.0.0.1:8765"
CHAIN = ("16x16x3 | conv(4, 3, padding=1) | relu | maxpool(2) | "
         "conv(6, 3, stride=2, padding=2, dilation=2) | flatten | linear(5)")


def client(state: State, **kwargs: Any) -> Any:
    """A test client whose requests name the served address (127.0.0.1:8765)."""
    from convscope.serve.app import create_app

    return TestClient(create_app(state, "127.0.0.1", 8765, **kwargs), base_url=BASE)


def picture(seed: int, shape=(3, 64, 64)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()
