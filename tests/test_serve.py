"""``convscope serve``: the HTTP interface against the library.

Through Starlette's test client: ``/api/model`` against ``cs.explain`` and
``cs.graph.trace``, ``/api/maps?format=json`` against the forward pass (layer by layer, and
forward hooks inside a ResNet), ``/api/why`` against ``cs.explain_value`` and the forward
pass (a spec chain, ResNet-18 at 64x64 inside a residual block, the U-Net), an upload
changing what the maps show, the class probabilities of a trained model. The safety rules
are in ``test_serve_safety.py``; the page in a browser in ``test_serve_browser.py``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

import convscope as cs

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).parent))

from convscope.serve.state import State  # noqa: E402
from convscope.serve.walk import take_apart  # noqa: E402
from serve_common import CHAIN, client, ok, picture, png  # noqa: E402


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
