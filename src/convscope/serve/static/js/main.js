// The page: loads the model, draws the overview, follows clicks (a node, a value), takes
// new images (chosen or dropped) and shows the server's error messages as they are.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { short, thousands } from "./colors.js";
import { NodeView } from "./node.js";
import { Overview } from "./overview.js";
import { Walk } from "./walk.js";

const $ = (id) => document.getElementById(id);

const page = {
  model: null,
  selected: null, // the node's index
  value: null, // [channel, row, col] or [index]
};

function showError(text) {
  const box = $("error");
  clear(box, h("span", { class: "error-text", text }), h("button", {
    type: "button", class: "close", "aria-label": "close", text: "×", onclick: () => { box.hidden = true; },
  }));
  box.hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

// Run an action; a refused request shows its message in the page.
async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    showError(error.message || String(error));
    return undefined;
  }
}

const overview = new Overview($("graph"), (index) => attempt(() => select(index)));
const walk = new Walk(null, (at) => { page.value = at; nodeView.choose(at, false); });
const nodeView = new NodeView($("detail"), (node, at) => attempt(() => takeApart(node, at)));

function findNode(index) {
  return page.model.nodes.find((n) => n.index === index) || page.model.nodes.find((n) => n.name === index);
}

async function select(index, value = null) {
  const node = findNode(index);
  if (!node) return;
  page.selected = node.index;
  page.value = null;
  overview.select(node.index);
  walk.reset();
  nodeView.render(node, page.model);
  walk.root = nodeView.walk;
  history.replaceState(null, "", `#node=${encodeURIComponent(node.index)}`);
  if (value) nodeView.choose(value);
}

async function takeApart(node, at) {
  page.value = at;
  history.replaceState(null, "", `#node=${encodeURIComponent(node.index)}&at=${at.join(",")}`);
  await walk.show(node, at);
}

function header(model) {
  $("model-name").textContent = model.model;
  $("summary").textContent = `${model.nodes.length} nodes · ${thousands(model.params)} parameters · ` +
    `${short(model.macs)} multiply-adds · input ${model.image.volume} → ${model.output}`;
  $("image-name").textContent = `${model.image.name} (${model.image.volume})`;
  $("image-thumb").src = api.image();
  const note = $("note");
  note.hidden = !model.note;
  note.textContent = model.note ? `Note: ${model.note}. The maps show what random kernels do, not what a trained model learned.` : "";
  document.title = `convscope: ${model.model}`;
}

async function classes(model) {
  const box = $("classes");
  if (!model.classes) { clear(box); return; }
  const got = await api.classes();
  if (!got.classes) { clear(box); return; }
  const rows = got.classes.slice(0, 5).map((c) => {
    const bar = h("span", { class: "bar" });
    bar.style.width = `${Math.max(1, c.probability * 100)}%`;
    return h("div", { class: "class-row" }, h("span", { class: "class-name", text: c.name }),
      h("span", { class: "bar-box" }, bar), h("span", { class: "prob", text: `${(c.probability * 100).toFixed(1)} %` }));
  });
  clear(box, h("div", { class: "classes-title", text: "The model's answer" }), rows);
}

function intro(model) {
  clear($("detail"), h("div", { class: "intro" },
    h("h2", { text: "How this model sees the image" }),
    h("p", { text: "On the left: every node of the model in the order it runs, with the first feature maps it makes from the image (blue below zero, white at zero, red above). Lines on the left join each node to what it reads; arcs are skip connections and branches." }),
    h("p", { text: "Click a node to see all its maps, its kernels and its shapes. Then click any value of a map to see how it was computed, the kernel sliding over the input, and the sum that makes it." }),
    h("p", { text: "Drop an image anywhere on the page (or choose one above) to see it all again for your image." }),
    h("p", { class: "muted", text: `${model.model}: ${model.nodes.length} nodes.` })));
}

async function load(keep = true) {
  const model = await api.model();
  api.version = model.version;
  page.model = model;
  header(model);
  overview.render(model);
  await attempt(() => classes(model));
  const wanted = keep ? page.selected : null;
  if (wanted !== null && findNode(wanted)) await select(wanted, page.value);
  else intro(model);
}

async function upload(file) {
  if (!file) return;
  document.body.classList.add("busy");
  $("image-name").textContent = `reading ${file.name}…`;
  try {
    await api.upload(file);
    hideError();
    await load(true);
  } catch (error) {
    showError(error.message || String(error));
    $("image-name").textContent = `${page.model.image.name} (${page.model.image.volume})`;
  } finally {
    document.body.classList.remove("busy");
  }
}

function dragAndDrop() {
  const drop = $("drop");
  let depth = 0;
  document.addEventListener("dragenter", (e) => { e.preventDefault(); depth += 1; drop.hidden = false; });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) drop.hidden = true; });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    drop.hidden = true;
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) upload(file);
  });
  $("file").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
}

function fromAddress() {
  const params = new URLSearchParams(location.hash.slice(1));
  const node = params.get("node");
  if (node !== null) page.selected = node;
  const at = params.get("at");
  page.value = at ? at.split(",").map(Number) : null;
}

dragAndDrop();
fromAddress();
window.addEventListener("hashchange", () => {
  fromAddress();
  if (page.model && page.selected !== null) attempt(() => select(page.selected, page.value));
});
attempt(() => load(true)).then(() => document.body.classList.add("ready"));
