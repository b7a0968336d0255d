// One node, large: its sentence, volumes, numbers, kernels, and every map in an atlas
// (one pixel per value, enlarged). Clicking a value of a map, or the form under it, asks
// for that value's walk-through.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { short, thousands } from "./colors.js";

const ATLAS_WIDTH = 620; // the atlas is enlarged by a whole factor up to about this width

function fact(label, value) {
  return value === "" || value === null || value === undefined
    ? null : h("tr", {}, h("th", { text: label }), h("td", {}, value));
}

function names(node) {
  return node.maps ? ["channel", "row", "col"] : ["index"];
}

export class NodeView {
  constructor(root, onValue) {
    this.root = root;
    this.onValue = onValue;
  }

  render(node, model) {
    this.node = node;
    const from = node.inputs.map((i) => (i.index === null ? `the image (${i.volume})` : `${i.name} (node ${i.index}, ${i.volume})`));
    const parts = [
      h("h2", {}, h("span", { class: "idx", text: node.index }), ` ${node.name} `, h("small", { text: node.layer })),
      h("p", { class: "big-sentence", id: "sentence" },
        `${node.input_volume} `, h("span", { class: "arrow", text: "→" }), ` ${node.operation} `,
        h("span", { class: "arrow", text: "→" }), ` ${node.output_volume}`),
      h("table", { class: "facts" },
        fact(node.inputs.length > 1 ? "inputs" : "input", from.join(" and ") || node.input_volume),
        fact("output", node.maps ? `${node.output_volume}: ${node.output[0]} feature maps of ${node.output[1]}x${node.output[2]}` : node.output_volume),
        fact("parameters", node.params ? thousands(node.params) : "none"),
        fact("multiply-adds", node.macs ? `${thousands(node.macs)} (${short(node.macs)})` : ""),
        fact("receptive field", node.rf ? `${node.rf} pixels of the image` : ""),
        fact("output size", node.formula)),
      node.narration.length ? h("div", { class: "narration" }, node.narration.map((p) => h("p", { class: p.startsWith("- ") ? "bullet" : "", text: p.replace(/^- /, "") }))) : null,
    ];
    if (node.kernels) {
      parts.push(h("details", { class: "kernels", open: node.output[0] <= 16 },
        h("summary", { text: "Kernels (one row per kernel, one tile per input channel)" }),
        h("img", { src: api.kernels(node.index), alt: `kernels of node ${node.index}`, class: "kernels-img" })));
    }
    parts.push(this.atlas(node));
    this.walk = h("div", { id: "walk" });
    parts.push(this.walk);
    clear(this.root, parts);
  }

  atlas(node) {
    const lay = node.atlas;
    const scale = Math.max(1, Math.min(12, Math.floor(ATLAS_WIDTH / lay.width)));
    const img = h("img", {
      class: "atlas", src: api.maps(node.index, { view: "atlas" }),
      alt: node.maps ? `the ${node.output[0]} feature maps of node ${node.index}` : `the ${lay.count} values of node ${node.index}`,
    });
    img.style.width = lay.width * scale > ATLAS_WIDTH * 1.2 ? "100%" : `${lay.width * scale}px`;
    this.marker = h("div", { class: "marker", hidden: true });
    const wrap = h("div", { class: "atlas-wrap" }, img, this.marker);
    img.addEventListener("mousemove", (e) => { img.title = this.describe(this.at(e, img)); });
    img.addEventListener("click", (e) => {
      const at = this.at(e, img);
      if (at) this.choose(at);
    });
    this.img = img;
    const inputs = names(node).map((n) => h("label", {}, `${n} `, h("input", { type: "number", min: 0, name: n, value: 0, class: "at" })));
    this.form = h("form", { class: "at-form", onsubmit: (e) => { e.preventDefault(); this.choose(this.formAt()); } },
      inputs, h("button", { type: "submit", text: "Take this value apart" }));
    if (!node.why) this.form.hidden = true;
    const title = node.maps
      ? `Feature maps: ${node.output[0]} maps of ${node.output[1]}x${node.output[2]}, each on its own colour scale`
      : `Output: ${lay.count} values, in reading order`;
    return h("section", { class: "maps" }, h("h3", {}, title, " ",
      h("span", { class: "hint", text: node.why ? "click a value to take it apart" : "(no walk-through for this operation)" })),
    h("p", { class: "legend" }, h("span", { class: "neg", text: "blue < 0" }), " · white = 0 · ", h("span", { class: "pos", text: "red > 0" })),
    wrap, this.form);
  }

  // The (channel, row, col), or (index,), under a mouse event on the atlas; null in a gap.
  at(event, img) {
    const lay = this.node.atlas;
    const box = img.getBoundingClientRect();
    const x = Math.floor((event.clientX - box.left) * lay.width / box.width);
    const y = Math.floor((event.clientY - box.top) * lay.height / box.height);
    if (x < 0 || y < 0 || x >= lay.width || y >= lay.height) return null;
    if (lay.flat) {
      const index = y * lay.cols + x;
      return index < lay.count ? [index] : null;
    }
    const [th, tw] = lay.tile;
    const col = Math.floor(x / (tw + lay.gap));
    const row = Math.floor(y / (th + lay.gap));
    const cx = x - col * (tw + lay.gap);
    const cy = y - row * (th + lay.gap);
    const channel = row * lay.cols + col;
    if (cx >= tw || cy >= th || channel >= this.node.output[0]) return null;
    return [channel, cy, cx];
  }

  describe(at) {
    if (!at) return "";
    return at.length === 1 ? `value ${at[0]}` : `map ${at[0]}, row ${at[1]}, column ${at[2]}`;
  }

  formAt() {
    return names(this.node).map((n) => Number(this.form.querySelector(`input[name=${n}]`).value));
  }

  // Mark a value on the atlas, write it into the form, and ask for its walk-through.
  choose(at, ask = true) {
    const lay = this.node.atlas;
    names(this.node).forEach((n, k) => { this.form.querySelector(`input[name=${n}]`).value = at[k]; });
    let x;
    let y;
    if (lay.flat) {
      x = at[0] % lay.cols;
      y = Math.floor(at[0] / lay.cols);
    } else {
      const [th, tw] = lay.tile;
      x = (at[0] % lay.cols) * (tw + lay.gap) + at[2];
      y = Math.floor(at[0] / lay.cols) * (th + lay.gap) + at[1];
    }
    const place = () => {
      const s = this.img.clientWidth / lay.width;
      Object.assign(this.marker.style, { left: `${x * s - 2}px`, top: `${y * s - 2}px`, width: `${s + 4}px`, height: `${s + 4}px` });
      this.marker.hidden = false;
    };
    if (this.img.complete && this.img.clientWidth) place();
    else this.img.addEventListener("load", place, { once: true });
    if (ask && this.node.why) this.onValue(this.node, at);
  }
}
