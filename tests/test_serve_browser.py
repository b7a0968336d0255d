"""``convscope serve`` in a real browser: headless Chromium (Debian's ``chromium``) loads the
page from a live uvicorn on a free port and is driven as a person would: the overview of
ResNet-18 at 224x224, a click on a node, a click on a value inside a residual block, the
slider moved half-way and played, an image chosen, a bad file chosen and dropped. The page
is read back (the walk-through's words, the total equal to the forward pass, the error
message) and screenshots are saved under /tmp/serve-shots/ (outside the repository) for a
person to look at. Skipped where Chromium is not installed.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cdp import Browser  # noqa: E402

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

CHROMIUM = Browser.find()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get "
                                "install chromium) to drive the page")
SHOTS = Path("/tmp/serve-shots")


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from convscope.serve.app import create_app
    from convscope.serve.state import State

    state = State("resnet18")  # 224x224x3, the demo picture
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    app = create_app(state, "127.0.0.1", port)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                        lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    b = Browser(CHROMIUM, 1440, 900)
    yield b
    b.close()


def api(url: str, path: str, **params) -> dict:
    with urllib.request.urlopen(url + path.lstrip("/") + "?" + urllib.parse.urlencode(params),
                                timeout=30) as r:
        return json.load(r)


def g(value: float) -> str:
    """How the page writes a value: as the command line does (``%g``)."""
    return f"{value:g}"


def errors(b: Browser) -> list[str]:
    return [json.dumps(e["params"])[:300] for e in b.events
            if e.get("method") == "Runtime.exceptionThrown"]


def walk_total(b: Browser) -> tuple[str, str, str]:
    b.wait_for("!!document.querySelector('#walk-total') && "
               "!document.querySelector('#walk').classList.contains('busy')", 30)
    return tuple(b.js(f"document.querySelector('{s}').textContent") for s in (
        "#walk-total .recomputed", "#walk-total .forward", "#walk-total .verdict"))


def test_overview_of_resnet18_opens_quickly(server, browser):
    b = browser
    start = time.perf_counter()
    b.goto(server)
    b.wait_for("document.body.classList.contains('ready')")
    visible = ("[...document.querySelectorAll('.thumbs')].filter(i => "
               "i.getBoundingClientRect().top < innerHeight)")
    b.wait_for(f"{visible}.length > 3 && {visible}.every(i => i.complete && i.naturalWidth > 0)")
    seconds = time.perf_counter() - start
    page_ms = b.js("performance.now()")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "open-time.txt").write_text(f"ResNet-18 at 224x224: page, /api/model and the first "
                                         f"thumbnails in {seconds:.2f} s (page clock "
                                         f"{page_ms / 1000:.2f} s)\n")
    print(f"ResNet-18 at 224x224 opened in {seconds:.2f} s")
    assert seconds < 10  # the target is 3 s; a loaded 2-core machine gets slack here
    assert b.js("document.querySelectorAll('.node').length") == 69
    add = b.js("document.querySelector(\".node[data-index='9'] .from\").textContent")
    assert add == "from 8 layer1.0.bn2 + 3 maxpool"
    # an arc per block's add (8) and per downsample branch (3); the 5 identity skips stand out
    assert b.js("document.querySelectorAll('.rail path.arc').length") == 11
    assert b.js("document.querySelectorAll('.rail path.arc.skip').length") == 5
    assert "11,689,512 parameters" in b.js("document.querySelector('#summary').textContent")
    b.screenshot(SHOTS / "overview-resnet18.png")
    assert not errors(b)


def test_a_node_then_a_value_inside_a_residual_block(server, browser):
    b = browser
    b.click(".node[data-index='7']")
    b.wait_for("!!document.querySelector('.atlas') && document.querySelector('.atlas').complete"
               " && document.querySelector('.atlas').naturalWidth > 0")
    sentence = b.js("document.querySelector('#sentence').textContent")
    assert sentence == "56x56x64 → 64 kernels of 3x3x64, padding 1, stride 1, no bias → 56x56x64"
    node = next(n for n in api(server, "/api/model")["nodes"] if n["index"] == "7")
    lay = node["atlas"]
    (th, tw), gap, cols = lay["tile"], lay["gap"], lay["cols"]
    channel, row, col = 3, 5, 7
    nx = (channel % cols) * (tw + gap) + col + 0.5
    ny = (channel // cols) * (th + gap) + row + 0.5
    scale = b.js("document.querySelector('.atlas').getBoundingClientRect().width") / lay["width"]
    b.click(".atlas", nx * scale, ny * scale)  # a real click on that pixel of that map
    recomputed, forward, verdict = walk_total(b)
    want = api(server, "/api/why", layer=7, channel=channel, row=row, col=col)
    head = b.js("document.querySelector('.walk-head h3').textContent")
    assert head.startswith("Why is channel 3, row 5, column 7 of layer1.0.conv2 (node 7)")
    assert forward == g(want["forward"]) and recomputed == g(want["value"])
    assert abs(float(recomputed) - float(forward)) <= 2e-6 * max(1, abs(float(forward)))
    assert verdict.startswith("✓ equal to the forward pass")
    assert "from layer1.0.relu (node 6)" in b.js("document.querySelector('.walk-head').textContent")
    rows = b.js("document.querySelectorAll('.channel-row').length")
    assert rows == 4  # the four input channels with the largest sums, as the CLI
    assert b.js("document.querySelectorAll('.sum-bars rect').length") == 64
    assert b.js("document.querySelector('.slide-where').textContent").startswith(
        f"position {row * 56 + col + 1} of 3136: output row 5, column 7")
    b.js("document.querySelector('.walk').scrollIntoView()")
    b.screenshot(SHOTS / "walk-residual-block.png")
    b.js("document.querySelector('#walk-total').scrollIntoView({block: 'end'})")
    b.screenshot(SHOTS / "walk-residual-block-sums.png")
    assert not errors(b)


def test_the_slider_half_way_and_play(server, browser):
    b = browser
    half = 3136 // 2  # output row 28, column 0
    b.js(f"(() => {{ const r = document.querySelector('.slide-range'); r.value = {half};"
         "r.dispatchEvent(new Event('input')); })()")
    b.wait_for("document.querySelector('.walk-head h3').textContent.includes('row 28, column 0')")
    recomputed, forward, _ = walk_total(b)
    want = api(server, "/api/why", layer=7, channel=3, row=28, col=0)
    assert forward == g(want["forward"]) and recomputed == g(want["value"])
    assert b.js("document.querySelector('.at-form input[name=row]').value") == "28"
    assert b.js("document.querySelector('.slide-where').textContent").startswith(
        "position 1569 of 3136: output row 28, column 0 ← input rows 27..29, columns -1..1")
    b.js("document.querySelector('.slide-box').scrollIntoView()")
    b.screenshot(SHOTS / "slider-half-way.png")
    b.click(".play")
    time.sleep(0.6)
    b.click(".play")  # pause: the walk-through follows where it stopped
    moved = int(b.js("document.querySelector('.slide-range').value"))
    assert moved > half
    r, c = divmod(moved, 56)
    b.wait_for(f"document.querySelector('.walk-head h3').textContent.includes("
               f"'row {r}, column {c}')", 30)
    assert not errors(b)


def test_pools_relu_add_and_linear_walk_throughs(server, browser):
    b = browser
    for layer, at, words in [("3", "2,20,20", "largest value of the window"),
                             ("2", "0,50,50", "relu: max(x, 0)"),
                             ("9", "1,10,10", "The add of the values at the same place"),
                             ("68", "5", "inputs times row 5 of the weights")]:
        b.goto("about:blank")
        b.goto(f"{server}#node={layer}&at={at}")  # a link to one value
        b.wait_for("document.body.classList.contains('ready')")
        recomputed, forward, verdict = walk_total(b)
        assert words in b.js("document.querySelector('.walk').textContent"), layer
        assert abs(float(recomputed) - float(forward)) <= 2e-6 * max(1, abs(float(forward)))
        assert verdict.startswith("✓ equal"), layer
    assert not errors(b)


def png_bytes(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_choosing_an_image_recomputes_every_view(server, browser, tmp_path):
    b = browser
    b.js("location.hash = '#node=7&at=3,5,7'")  # the page follows its address
    b.wait_for("document.querySelector('.walk-head h3') && document.querySelector("
               "'.walk-head h3').textContent.includes('row 5, column 7')", 30)
    _, before, _ = walk_total(b)
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[:, :80] = (250, 240, 20)
    rgb[30:90, 90:150] = (20, 40, 200)
    path = tmp_path / "stripes.png"
    path.write_bytes(png_bytes(rgb))
    b.set_files("#file", [str(path)])
    b.wait_for("document.querySelector('#image-name').textContent.startsWith('stripes.png')", 60)
    b.wait_for("document.querySelector('.walk-head h3') && document.querySelector("
               "'.walk-head h3').textContent.includes('row 5, column 7')", 30)
    _, after, _ = walk_total(b)
    want = api(server, "/api/why", layer=7, channel=3, row=5, col=7)
    assert after == g(want["forward"]) != before
    assert api(server, "/api/model")["image"]["name"] == "stripes.png"
    assert "v=2" in b.js("document.querySelector('.thumbs').src")
    b.screenshot(SHOTS / "after-upload.png")
    assert b.js("document.querySelector('#error').hidden")


def test_a_bad_file_shows_the_cli_message(server, browser, tmp_path):
    b = browser
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all\n")
    b.set_files("#file", [str(bad)])
    b.wait_for("!document.querySelector('#error').hidden", 30)
    text = b.js("document.querySelector('#error .error-text').textContent")
    assert text.startswith("image 'notes.png': the file is not a readable PNG, JPEG")
    b.screenshot(SHOTS / "bad-upload.png")
    b.click("#error .close")
    # dropped on the page: the same message, from the same route
    b.js("(() => { const dt = new DataTransfer();"
         "dt.items.add(new File(['GIF89a broken'], 'dropped.gif', {type: 'image/gif'}));"
         "document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true})); })()")
    b.wait_for("!document.querySelector('#error').hidden", 30)
    text = b.js("document.querySelector('#error .error-text').textContent")
    assert text.startswith("image 'dropped.gif':")
    assert api(server, "/api/model")["image"]["name"] == "stripes.png"  # kept
    assert not errors(b)
