"""``convscope serve``: every safety rule, and the command's mistakes.

The guard: the Host header (DNS rebinding), cross-origin writes, the security headers;
path traversal (``..``, encoded, absolute, symbolic links; through a live server too,
where no client tidies the path); upload size (413); decompression bombs refused before
decoding; bad parameters answered with a 4xx that names the valid range, never a 500; the
default loopback bind, the warning for another host, a port in use, a clean Ctrl-C, and
``import convscope`` loading no web server.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).parent))

from convscope.cli import main  # noqa: E402
from convscope.cli.cmd_serve import host_warning  # noqa: E402
from convscope.serve.app import STATIC, create_app, static_files  # noqa: E402
from convscope.serve.state import State  # noqa: E402
from serve_common import CHAIN, client, picture  # noqa: E402


@pytest.fixture(scope="module")
def chain():
    state = State(CHAIN, picture(0, (3, 16, 16)))
    return state, client(state)


@pytest.mark.parametrize("host", ["evil.example:8765", "evil.example", "127.0.0.1:9999",
                                  "127.0.0.1", "localhost.evil.example:8765", "[::2]:8765"])
def test_other_host_headers_are_refused(chain, host):
    _, c = chain
    r = c.get("/api/model", headers={"host": host})
    assert r.status_code == 403
    assert "DNS rebinding" in r.json()["error"] and "http://127.0.0.1:8765/" in r.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765",
                                  "[::1]:8765"])
def test_the_served_address_is_answered(chain, host):
    _, c = chain
    assert c.get("/api/model", headers={"host": host}).status_code == 200


def test_writes_from_another_page_are_refused(chain):
    _, c = chain
    r = c.post("/api/image", content=b"x", headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "only this server's own page" in r.json()["error"]


def test_security_headers_on_every_answer(chain):
    _, c = chain
    for path in ("/", "/api/model", "/api/maps?layer=0", "/nothing"):
        r = c.get(path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"


TRAVERSALS = ["/static/../app.py", "/static/%2e%2e/app.py", "/static/%2e%2e%2fapp.py",
              "/static/..%2f..%2fpyproject.toml", "/static/js/%2e%2e/%2e%2e/state.py",
              "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/..\\app.py",
              "/static/%5c..%5capp.py", "/static/./index.html/..", "/static/", "/static/js"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_leaves_the_static_folder(chain, path):
    _, c = chain
    r = c.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "[project]" not in r.text and "root:" not in r.text and "import" not in r.text


def test_only_the_static_files_are_served(chain):
    _, c = chain
    files = static_files(STATIC)
    assert "index.html" in files and "js/main.js" in files and "style.css" in files
    for name in files:
        assert c.get(f"/static/{name}").status_code == 200
    assert c.get("/").text == files["index.html"].decode()


def test_symbolic_links_are_not_served(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("TOP SECRET")
    folder = tmp_path / "static"
    (folder / "js").mkdir(parents=True)
    (folder / "index.html").write_text("<p>page</p>")
    (folder / "leak.html").symlink_to(outside)
    (folder / "up.css").symlink_to(tmp_path / "static" / ".." / "secret.txt")
    (folder / "js" / "out").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "page.js").write_text("TOP SECRET")
    files = static_files(folder)
    assert set(files) == {"index.html"}
    c = client(State(CHAIN), static_dir=folder)
    for path in ("/static/leak.html", "/static/up.css", "/static/js/out/page.js",
                 "/static/js/out/secret.txt"):
        r = c.get(path)
        assert r.status_code == 404 and "TOP SECRET" not in r.text


def test_uploads_are_limited_in_size():
    c = client(State(CHAIN), max_upload=1000)
    r = c.post("/api/image", content=b"\x00" * 2000)
    assert r.status_code == 413 and "larger than the limit of 1,000 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: counted while read
        for _ in range(5):
            yield b"\x00" * 400

    r = c.post("/api/image", content=chunks())
    assert r.status_code == 413
    r = c.post("/api/image", content=b"")
    assert r.status_code == 400 and "the request body is empty" in r.json()["error"]


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) \
        + chunk(b"IEND", b"")


@pytest.mark.parametrize(("size", "said"), [((20000, 20000), r"claims 400000000 pixels"),
                                            ((10000, 5000), r"more than max_pixels")])
def test_decompression_bombs_are_refused_before_decoding(size, said):
    state = State(CHAIN, picture(0, (3, 16, 16)))
    c = client(state)
    version = state.version
    data = png_claiming(*size)
    assert len(data) < 100
    r = c.post("/api/image?name=bomb.png", content=data)
    assert r.status_code == 400
    text = r.json()["error"]
    assert re.search(said, text) and "not decoded" in text and "image 'bomb.png'" in text
    assert "convscope-upload" not in text  # the temporary copy is not named
    assert state.version == version  # the current image stays


def test_a_file_that_is_no_image_gets_the_cli_message(chain):
    _, c = chain
    r = c.post("/api/image?name=notes.txt", content=b"just text\n")
    assert r.status_code == 400
    assert r.json()["error"].startswith("image 'notes.txt': the file is not a readable PNG")


BAD = [
    ("/api/maps?layer=99", r"there is no layer 99: the model has 6 \(0 to 5\)"),
    ("/api/maps?layer=nope", r"the model has no layer 'nope'"),
    ("/api/maps", r"the layer is missing.*0 to 5"),
    ("/api/maps?layer=0&channel=9", r"channel 9 is out of range.*channels 0\.\.3"),
    ("/api/maps?layer=0&channel=-1", r"channel -1 is out of range"),
    ("/api/maps?layer=0&channel=x", r"channel must be a whole number"),
    ("/api/maps?layer=5&channel=0", r"flat values, not maps"),
    ("/api/maps?layer=0&format=xml", r"format must be one of png, json"),
    ("/api/maps?layer=0&view=big", r"view must be one of grid, atlas, thumbs"),
    ("/api/why?layer=0&channel=0&row=16&col=0", r"row 16 is out of range.*rows 0\.\.15"),
    ("/api/why?layer=0&channel=4&row=0&col=0", r"channel 4 is out of range.*channels 0\.\.3"),
    ("/api/why?layer=0&channel=0&row=0&col=99", r"column 99 is out of range.*columns 0\.\.15"),
    ("/api/why?layer=0&channel=0&row=1.5&col=0", r"row must be a whole number"),
    ("/api/why?layer=0&channel=0", r"channel, row and col are needed.*row=0\.\.15"),
    ("/api/why?layer=5&index=5", r"value 5 is out of range.*values 0\.\.4"),
    ("/api/why?layer=5", r"index is needed.*index=0\.\.4"),
    ("/api/why?channel=0&row=0&col=0", r"the layer is missing"),
    ("/api/why?layer=42&channel=0&row=0&col=0", r"there is no layer 42"),
    ("/api/kernels?layer=1", r"layer 1 is ReLU, not a conv layer"),
    ("/api/kernels", r"the layer is missing"),
    ("/api/slide?layer=1", r"has no sliding window"),
]


@pytest.mark.parametrize(("path", "said"), BAD)
def test_bad_parameters_get_a_4xx_naming_the_valid_range(chain, path, said):
    _, c = chain
    r = c.get(path)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    assert re.search(said, r.json()["error"]), (path, r.json()["error"])


def test_unknown_routes_and_methods_answer_json(chain):
    _, c = chain
    assert c.get("/api/nothing").status_code == 404
    r = c.delete("/api/image")
    assert r.status_code == 405 and "method not allowed" in r.json()["error"]


# --------------------------------------------------------------------------- a live server
@pytest.fixture(scope="module")
def live():
    """uvicorn in a thread on a free port: requests exactly as written on the wire."""
    import uvicorn

    state = State(CHAIN, picture(0, (3, 16, 16)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(state, "127.0.0.1", port),
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)
    sock.close()


def raw(port: int, target: str, host: str | None = None) -> tuple[int, bytes]:
    """Send one request line as written (no client normalises it); (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("target", ["/static/../../../../etc/passwd", "/static/../app.py",
                                    "/static/js/../../state.py", "/../../etc/passwd",
                                    "/static/%2e%2e/%2e%2e/pyproject.toml",
                                    "/static//etc/passwd", "/static/..%5capp.py"])
def test_a_live_server_refuses_traversal_on_the_wire(live, target):
    status, body = raw(live, target)
    assert status in (400, 404), (target, status)
    assert b"root:" not in body and b"import" not in body and b"[project]" not in body


def test_a_live_server_refuses_a_rebound_host(live):
    status, body = raw(live, "/api/model", host=f"attacker.example:{live}")
    assert status == 403 and b"DNS rebinding" in body
    assert raw(live, "/api/model")[0] == 200


# --------------------------------------------------------------------------- the command
def test_serve_binds_loopback_by_default_and_warns_for_another_host():
    from convscope.cli import build_parser

    args = build_parser().parse_args(["serve", "resnet18"])
    assert args.host == "127.0.0.1" and args.port == 8765 and not args.no_open
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None
    assert "other machines" in host_warning("0.0.0.0")
    assert "other machines" in host_warning("192.168.1.10")


def test_a_port_in_use_is_a_clear_mistake(capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        code = main(["serve", CHAIN, "--port", str(port), "--no-open"])
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert code == 2 and f"convscope: error: --port: port {port} on 127.0.0.1 is in use" in err
    assert "Traceback" not in err


def test_serve_warns_answers_and_stops_cleanly_on_ctrl_c():
    """A real process: the warning for another host, the page answered at the printed
    address, and Ctrl-C ending it with exit 0 and no traceback."""
    cmd = [sys.executable, "-m", "convscope.cli", "serve", "8x8x1 | conv(2, 3) | relu",
           "--host", "0.0.0.0", "--port", "0", "--no-open"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
        with urllib.request.urlopen(url + "api/model", timeout=30) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "warning: --host 0.0.0.0: other machines" in err
    assert "Traceback" not in err + out and "convscope serve: stopped" in out


def test_import_convscope_loads_no_web_server():
    code = ("import sys, time; t = time.perf_counter(); import convscope; "
            "t = time.perf_counter() - t; "
            "print(any(m.split('.')[0] in ('starlette', 'uvicorn') for m in sys.modules), t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    loaded, seconds = done.stdout.split()
    assert loaded == "False"
    assert float(seconds) < 2.0  # generous on a busy machine; the target (< 0.5 s) is README's


def test_static_files_are_package_data():
    text = Path(__file__).parents[1].joinpath("pyproject.toml").read_text()
    patterns = re.search(r"convscope = \[(.*?)\]", text.split("[tool.setuptools.package-data]")[1],
                         re.S).group(1)
    for name in static_files(STATIC):
        folder = os.path.dirname(name)
        pattern = f'"serve/static/{folder + "/" if folder else ""}*"'
        assert pattern in patterns, f"{name} is not package data: add {pattern}"
