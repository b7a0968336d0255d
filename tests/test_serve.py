"""``convscope serve``: the HTTP interface against the library, and every safety rule.

The API through Starlette's test client: ``/api/model`` against ``cs.explain`` and
``cs.graph.trace``, ``/api/maps?format=json`` against the forward pass (layer by layer, and
forward hooks inside a ResNet), ``/api/why`` against ``cs.explain_value`` and the forward
pass (a spec chain, ResNet-18 at 64x64 inside a residual block, the U-Net), an upload
changing what the maps show. Then the guard: the Host header (DNS rebinding), cross-origin
writes, path traversal (``..``, encoded, absolute, symbolic links; through a live server
too, where no client tidies the path), upload size (413), decompression bombs refused
before decoding, bad parameters answered with a 4xx that names the valid range, the
default loopback bind, the warning for another host and a clean Ctrl-C.
"""

from __future__ import annotations

import io
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
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

import convscope as cs

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
with warnings.catch_warnings():  # starlette asks for httpx2 where only httpx is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from convscope.cli import main  # noqa: E402
from convscope.cli.cmd_serve import host_warning  # noqa: E402
from convscope.serve.app import STATIC, create_app, static_files  # noqa: E402
from convscope.serve.state import State  # noqa: E402
from convscope.serve.walk import take_apart  # noqa: E402

BASE = "http://127.0.0.1:8765"
CHAIN = ("16x16x3 | conv(4, 3, padding=1) | relu | maxpool(2) | "
         "conv(6, 3, stride=2, padding=2, dilation=2) | flatten | linear(5)")


def client(state: State, **kwargs) -> TestClient:
    return TestClient(create_app(state, "127.0.0.1", 8765, **kwargs), base_url=BASE)


def picture(seed: int, shape=(3, 64, 64)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.fixture(scope="module")
def chain():
    state = State(CHAIN, picture(0, (3, 16, 16)))
    return state, client(state)


@pytest.fixture(scope="module")
def resnet():
    model = cs.models.get("resnet18", seed=0)
    model.input_shape = (3, 64, 64)  # small and fast; uploads are fitted to it
    state = State(model, picture(1), title="resnet18")
    return state, client(state)


@pytest.fixture(scope="module")
def unet():
    state = State("unet", picture(2))
    return state, client(state)


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- the graph
@pytest.mark.parametrize("which", ["chain", "resnet", "unet"])
def test_model_is_the_explain_table_and_the_traced_graph(which, request):
    state, c = request.getfixturevalue(which)
    got = ok(c.get("/api/model"))
    shape = state.image.shape
    graph = cs.graph.trace(state.model, shape)
    e = cs.explain(state.model, input_shape=shape)
    assert len(got["nodes"]) == len(graph.nodes) == len(e.rows)
    for node, traced, row in zip(got["nodes"], graph.nodes, e.rows, strict=True):
        assert node["name"] == traced.name and node["op"] == traced.op
        assert tuple(node["output"]) == traced.shape[1:] == tuple(row["output"])
        assert tuple(node["input"]) == tuple(row["input"])
        assert node["index"] == row["index"] and node["operation"] == row["operation"]
        assert [i["name"] for i in node["inputs"]] == [
            i for i in traced.inputs if i in graph.by_name() or graph.sources[i].kind == "input"]
        assert node["params"] == row["params"] and node["macs"] == row["macs"]
    assert got["image"]["shape"] == list(shape)


def test_a_residual_add_names_both_branches(resnet):
    _, c = resnet
    nodes = {n["name"]: n for n in ok(c.get("/api/model"))["nodes"]}
    add = nodes["layer1.0.add"]
    assert add["residual"] and add["block"] == "layer1.0"
    assert [i["name"] for i in add["inputs"]] == ["layer1.0.bn2", "maxpool"]
    assert nodes["layer2.0.downsample.0"]["block"] == "layer2.0.downsample"


# --------------------------------------------------------------------------- maps
def test_chain_maps_are_the_layers_run_one_by_one(chain):
    state, c = chain
    x = cs.tensor(state.image[None])
    for k, layer in enumerate(state.model):
        x = layer(x)
        got = ok(c.get("/api/maps", params={"layer": k, "format": "json"}))
        values = np.asarray(got["maps"] if "maps" in got else got["values"], np.float32)
        np.testing.assert_allclose(values, x.data[0], rtol=1e-6, atol=1e-6)


def test_resnet_maps_inside_a_block_are_the_forward_pass(resnet):
    state, c = resnet
    seen = {}
    handle = state.model.get_submodule("layer1.0.conv2").register_forward_hook(
        lambda m, args, out: seen.setdefault("conv2", out.data.copy()))
    try:
        logits = state.model(state.image[None]).data[0]
    finally:
        handle.remove()
    got = ok(c.get("/api/maps", params={"layer": "layer1.0.conv2", "format": "json"}))
    np.testing.assert_allclose(got["maps"], seen["conv2"][0], rtol=1e-5, atol=1e-6)
    one = ok(c.get("/api/maps", params={"layer": 7, "format": "json", "channel": 5}))
    np.testing.assert_allclose(one["values"], seen["conv2"][0, 5], rtol=1e-5, atol=1e-6)
    fc = ok(c.get("/api/maps", params={"layer": "fc", "format": "json"}))
    np.testing.assert_allclose(fc["values"], logits, rtol=1e-5, atol=1e-5)


def test_unet_output_is_the_forward_pass(unet):
    state, c = unet
    out = state.model(state.image[None]).data[0]
    last = ok(c.get("/api/model"))["nodes"][-1]
    got = ok(c.get("/api/maps", params={"layer": last["name"], "format": "json"}))
    np.testing.assert_allclose(got["maps"], out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("view", [{}, {"view": "atlas"}, {"view": "thumbs"}, {"channel": 0}])
def test_map_pictures_are_pngs_of_the_atlas_layout(resnet, view):
    from PIL import Image

    _, c = resnet
    r = c.get("/api/maps", params={"layer": "layer1.0.relu", **view})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    if view.get("view") == "atlas":
        node = ok(c.get("/api/model"))["nodes"][6]
        assert img.size == (node["atlas"]["width"], node["atlas"]["height"])
    if "channel" in view:
        assert img.size == (16, 16)


# --------------------------------------------------------------------------- why
CHAIN_VALUES = [(0, (2, 0, 0)), (0, (3, 7, 15)), (1, (1, 4, 4)), (2, (0, 3, 5)),
                (3, (5, 1, 2)), (5, (3,))]
RESNET_VALUES = [("layer1.0.conv2", (3, 5, 7)), ("layer1.0.add", (1, 1, 1)),
                 ("layer2.0.downsample.0", (7, 2, 3)), ("maxpool", (0, 0, 0)),
                 ("layer1.0.relu#2", (4, 2, 2)), ("fc", (17,)), ("conv1", (9, 31, 0))]
UNET_VALUES = [("up1.up", (3, 5, 6)), ("up1.cat", (20, 3, 3)), ("outc", (1, 10, 63))]


def _params(at):
    return dict(zip(("channel", "row", "col"), at, strict=False)) if len(at) == 3 else \
        {"index": at[0]}


@pytest.mark.parametrize(("which", "cases"), [("chain", CHAIN_VALUES), ("resnet", RESNET_VALUES),
                                              ("unet", UNET_VALUES)])
def test_why_is_explain_value_and_the_forward_pass(which, cases, request):
    state, c = request.getfixturevalue(which)
    for layer, at in cases:
        got = ok(c.get("/api/why", params={"layer": layer, **_params(at)}))
        want = cs.explain_value(state.model, state.image, layer, at)
        assert got["value"] == pytest.approx(want.value, rel=1e-12, abs=1e-12)
        assert got["forward"] == want.forward_value
        maps = ok(c.get("/api/maps", params={"layer": layer, "format": "json"}))
        grid = np.asarray(maps.get("maps", maps.get("values")))
        assert got["forward"] == float(grid[at])
        assert abs(got["value"] - got["forward"]) <= 1e-5 * max(1.0, abs(got["forward"]))
        assert got["text"] == str(want)  # the cached walk-through is cs.explain_value's
        assert got["at"] == list(at) and got["kind"] == want.kind


def test_take_apart_is_why_field_by_field(resnet):
    state, _ = resnet
    ref = state.find("layer1.0.conv2")
    mine = take_apart(state, ref, (3, 5, 7))
    theirs = cs.explain_value(state.model, state.image, "layer1.0.conv2", (3, 5, 7))
    for name in ("patch", "kernel", "products", "channel_sums", "rows", "cols"):
        np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name))
    assert (mine.value, mine.forward_value, mine.bias) == (theirs.value, theirs.forward_value,
                                                          theirs.bias)


def test_slide_geometry_for_stride_padding_and_dilation(chain, resnet):
    _, c = chain
    g = ok(c.get("/api/slide", params={"layer": 3}))
    assert (g["kernel"], g["stride"], g["dilation"]) == ([3, 3], [2, 2], [2, 2])
    assert g["padding"] == [[2, 2], [2, 2]] and g["input"] == [4, 8, 8]
    assert g["output"] == [6, 4, 4] and g["source"] == "2"
    _, r = resnet
    g = ok(r.get("/api/slide", params={"layer": "conv1"}))
    assert g["source_is_image"] and g["padding"] == [[3, 3], [3, 3]] and g["stride"] == [2, 2]
    g = ok(r.get("/api/slide", params={"layer": "maxpool"}))
    assert g["kernel"] == [3, 3] and g["padding"] == [[1, 1], [1, 1]]


# --------------------------------------------------------------------------- images
def png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_upload_changes_every_value(tmp_path):
    state = State(CHAIN, picture(0, (3, 16, 16)))
    c = client(state)
    before = ok(c.get("/api/maps", params={"layer": 0, "format": "json"}))["maps"]
    version = ok(c.get("/api/model"))["version"]
    rgb = (np.random.default_rng(5).random((20, 24, 3)) * 255).astype(np.uint8)
    got = ok(c.post("/api/image?name=mine.png", content=png(rgb)))
    assert got["image"] == "mine.png" and got["version"] == version + 1
    model = ok(c.get("/api/model"))
    assert model["image"]["name"] == "mine.png" and model["image"]["volume"] == "16x16x3"
    after = ok(c.get("/api/maps", params={"layer": 0, "format": "json"}))["maps"]
    assert not np.allclose(before, after)
    path = tmp_path / "mine.png"
    path.write_bytes(png(rgb))
    image = cs.data.load_image(path, size=(16, 16))
    np.testing.assert_allclose(after, state.model[0](image[None]).data[0], rtol=1e-6, atol=1e-6)
    why = ok(c.get("/api/why", params={"layer": 0, "channel": 1, "row": 2, "col": 3}))
    assert why["forward"] == pytest.approx(after[1][2][3], abs=0)


def test_a_spec_without_a_volume_takes_each_image_size():
    state = State("conv(2, 3, padding=1) | relu")
    c = client(state)
    assert ok(c.get("/api/model"))["image"]["volume"] == "64x64x3"
    rgb = (np.random.default_rng(1).random((30, 40, 3)) * 255).astype(np.uint8)
    ok(c.post("/api/image", content=png(rgb)))
    assert ok(c.get("/api/model"))["nodes"][0]["output_volume"] == "30x40x2"


def test_classes_of_a_trained_model(tmp_path):
    model = cs.parse("8x8x1 | conv(2, 3) | relu | flatten | linear(3)", seed=0)
    cs.save(model, tmp_path / "m.safetensors", classes=["cat", "dog", "owl"])
    state = State(str(tmp_path / "m.safetensors"))
    got = ok(client(state).get("/api/classes"))
    logits = cs.load(tmp_path / "m.safetensors")(state.image[None]).data[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert [c["name"] for c in got["classes"]] == [["cat", "dog", "owl"][k] for k in
                                                   np.argsort(-p)]
    assert [c["probability"] for c in got["classes"]] == pytest.approx(sorted(p)[::-1])
    untrained = ok(client(State(CHAIN)).get("/api/classes"))
    assert untrained["classes"] is None and "no class names" in untrained["reason"]


# --------------------------------------------------------------------------- safety
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
