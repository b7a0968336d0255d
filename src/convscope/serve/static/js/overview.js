// The overview: the model's nodes in the order they run (explain's rows), grouped by the
// block they belong to, each with thumbnails of its feature maps for the current image.
// A rail on the left draws the graph: a straight line where a node reads the one above it,
// an arc where it reads an earlier node (a skip connection, a branch, a concatenation).

import { api } from "./api.js";
import { clear, h, svg } from "./dom.js";

const DOT_X = 62; // the rail's column of dots
const LANE = 9; // distance between the arcs' lanes

function blockDepth(block) {
  return block ? block.split(".").length : 0;
}

function fromText(node, previous) {
  const reads = node.inputs.filter((i) => i.index !== null || i.name);
  if (!reads.length) return null;
  const parts = reads.map((i) => (i.index === null ? "the image" : `${i.index} ${i.name}`));
  const skips = reads.some((i) => i.index !== previous);
  if (!skips && reads.length === 1) return null;
  const joined = node.op === "add" ? parts.join(" + ") : parts.join(", ");
  return `from ${joined}`;
}

export class Overview {
  constructor(root, onSelect) {
    this.root = root;
    this.onSelect = onSelect;
    this.rows = new Map();
    new ResizeObserver(() => this.drawRail()).observe(root);
  }

  render(model) {
    this.model = model;
    this.rows.clear();
    const list = h("div", { class: "nodes" });
    this.rail = svg("svg", { class: "rail", "aria-hidden": "true" });
    let block = null;
    let previous = null;
    for (const node of model.nodes) {
      if (node.block !== block) {
        block = node.block;
        if (block) {
          const head = h("div", { class: "block", text: block });
          head.style.marginLeft = `${(blockDepth(block) - 1) * 14}px`;
          list.append(head);
        }
      }
      list.append(this.row(node, previous));
      previous = node.index;
    }
    clear(this.root, this.rail, list);
    requestAnimationFrame(() => this.drawRail());
  }

  row(node, previous) {
    const from = fromText(node, previous);
    const row = h("div", {
      class: `node${node.residual ? " residual" : ""}`, tabindex: "0", role: "button",
      dataset: { index: node.index },
      "aria-label": `node ${node.index}: ${node.name}, ${node.operation}`,
      onclick: () => this.onSelect(node.index),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.onSelect(node.index); } },
    },
    h("div", { class: "head" },
      h("span", { class: "idx", text: node.index }),
      node.name !== node.index ? h("span", { class: "name", text: node.name }) : null,
      h("span", { class: "op", text: node.layer }),
      h("span", { class: "vol", text: node.output_volume })),
    h("div", { class: "sentence", text: node.operation }),
    from ? h("div", { class: `from${node.residual ? " skip" : ""}`, text: from }) : null,
    h("img", {
      class: "thumbs", loading: "lazy", decoding: "async",
      alt: `feature maps of node ${node.index}`,
      src: api.maps(node.index, { view: "thumbs" }),
    }));
    row.style.marginLeft = `${blockDepth(node.block) * 14}px`;
    this.rows.set(node.index, row);
    return row;
  }

  select(index) {
    for (const [key, row] of this.rows) row.classList.toggle("selected", key === index);
    const row = this.rows.get(index);
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  // The rail: one dot per node; its edges as lines and arcs in lanes that do not overlap.
  drawRail() {
    if (!this.model || !this.rail) return;
    const top = this.root.getBoundingClientRect().top - this.root.scrollTop;
    const y = new Map();
    for (const [index, row] of this.rows) {
      const head = row.querySelector(".head").getBoundingClientRect();
      y.set(index, head.top + head.height / 2 - top);
    }
    const height = this.root.scrollHeight;
    this.rail.setAttribute("height", height);
    this.rail.setAttribute("width", DOT_X + 8);
    const parts = [];
    const arcs = [];
    let previous = null;
    for (const node of this.model.nodes) {
      for (const input of node.inputs) {
        if (input.index === null) continue;
        if (input.index === previous) {
          parts.push(svg("line", { x1: DOT_X, x2: DOT_X, y1: y.get(previous), y2: y.get(node.index), class: "edge" }));
        } else {
          arcs.push({ from: input.index, to: node.index, residual: node.residual });
        }
      }
      previous = node.index;
    }
    const lanes = []; // per lane, the end (y) of the last arc in it
    arcs.sort((a, b) => y.get(a.from) - y.get(b.from));
    for (const arc of arcs) {
      const y1 = y.get(arc.from);
      const y2 = y.get(arc.to);
      let lane = lanes.findIndex((end) => end < y1 - 2);
      if (lane < 0) { lane = lanes.length; lanes.push(0); }
      lanes[lane] = y2;
      const x = DOT_X - 14 - lane * LANE;
      const r = 5;
      const d = `M ${DOT_X} ${y1} H ${x + r} Q ${x} ${y1} ${x} ${y1 + r} V ${y2 - r} Q ${x} ${y2} ${x + r} ${y2} H ${DOT_X}`;
      parts.push(svg("path", { d, class: `arc${arc.residual ? " skip" : ""}` },
        svg("title", {}, `node ${arc.to} reads node ${arc.from}`)));
    }
    for (const node of this.model.nodes) {
      parts.push(svg("circle", { cx: DOT_X, cy: y.get(node.index), r: node.op === "add" || node.op === "cat" ? 5 : 3.5, class: `dot ${node.op}` }));
    }
    clear(this.rail, parts);
  }
}
