"""The server's guard: which requests are answered at all, and the headers every answer gets.

- **Host.** A page on another site can make a browser send requests to
  ``http://127.0.0.1:8765`` through a name it controls (DNS rebinding): the request then
  carries that name in its ``Host`` header. Only the served address is answered (as Jupyter
  and Gradio do); any other ``Host`` gets 403 and a message saying which address to open.
- **Origin.** A request that changes something (``POST``) from a page of another origin is
  refused, so another site cannot swap the image under you.
- **Headers.** Every answer forbids framing, MIME sniffing, referrers and any script, style
  or connection that is not the server's own (a Content-Security-Policy).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import Any

__all__ = ["Guard", "served_names", "is_loopback", "host_for_url"]

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
     b"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"),
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def host_for_url(host: str) -> str:
    """How ``host`` is written in a URL: IPv6 addresses in brackets; a wildcard bind is
    opened through 127.0.0.1."""
    if _wildcard(host):
        return "127.0.0.1"
    name = host.strip("[]")
    return f"[{name}]" if ":" in name else name


def served_names(host: str, port: int, extra: Iterable[str] = ()) -> set[str]:
    """The ``Host`` header values answered: the bound name with its port (and without it on
    port 80), the loopback names when the bind covers loopback, and for a wildcard bind
    this machine's own name and addresses."""
    names = {host_for_url(host).lower(), *(e.lower() for e in extra)}
    if is_loopback(host) or _wildcard(host):
        names.update(LOCAL_NAMES)
    if _wildcard(host):
        try:
            machine = socket.gethostname()
            names.update({machine.lower(), socket.getfqdn().lower()})
            for info in socket.getaddrinfo(machine, None):
                addr = str(info[4][0])
                names.add(f"[{addr}]" if ":" in addr else addr)
        except OSError:
            pass
    out = {f"{n}:{port}" for n in names}
    if port == 80:
        out |= names
    return out


async def _refuse(send: Any, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: refuse other ``Host`` headers and cross-origin writes; add the
    security headers to every answer."""

    def __init__(self, app: Any, hosts: set[str], url: str) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}
        self.origins = {f"http://{h}" for h in self.hosts}
        self.url = url

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if host not in self.hosts:
            shown = repr(host) if host else "missing"
            await _refuse(send, 403, f"refused: the Host header is {shown}, not the address this "
                          f"server answers to (a guard against DNS rebinding). Fix: open "
                          f"{self.url} (answered: {', '.join(sorted(self.hosts))})")
            return
        origin = headers.get(b"origin", b"").decode("latin-1").strip().lower()
        if scope["method"] not in ("GET", "HEAD") and origin and origin not in self.origins:
            await _refuse(send, 403, f"refused: a {scope['method']} from the page {origin!r}; "
                          f"only this server's own page may change the image. Fix: use "
                          f"{self.url}")
            return

        async def send_guarded(event: dict) -> None:
            if event["type"] == "http.response.start":
                event = {**event, "headers": [*event.get("headers", []), *SECURITY_HEADERS]}
            await send(event)

        await self.app(scope, receive, send_guarded)
