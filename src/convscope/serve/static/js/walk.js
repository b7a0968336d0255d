// One value taken apart (the /api/why answer), as the slides do it. A convolution: the
// volumes in 3-D, the kernel sliding, then per input channel the patch, the kernel slice
// and their products with the channel's sum, and the total: the sums, plus the bias, equal
// to the forward pass. Pools, activations, joins and linear layers get their own short
// walk-through; every kind ends with the recomputed value next to the forward pass's.

import { api } from "./api.js";
import { cell, css, decimals, full, ink, limitOf, num, signed } from "./colors.js";
import { clear, h, svg } from "./dom.js";
import { Slider } from "./slider.js";
import { volumes } from "./volume.js";

const FIRST_CHANNELS = 4; // input channels drawn as grids at first (the largest sums)
const MORE = 16;

function place(why) {
  const at = why.at;
  return at.length === 3 ? `channel ${at[0]}, row ${at[1]}, column ${at[2]}` : `value ${at[0]}`;
}

// A grid of numbers coloured by sign; padding cells hatched, one cell marked.
function grid(values, title, { pad = null, mark = null, limit = null } = {}) {
  const lim = limit ?? limitOf(values);
  const places = decimals(lim);
  const rows = values.map((row, i) => h("tr", {}, row.map((v, j) => {
    const td = h("td", { text: pad && pad[i][j] && !Number.isFinite(num(v)) ? "pad" : cell(v, places) });
    td.style.background = css(v, lim);
    td.style.color = ink(v, lim);
    if (pad && pad[i][j]) td.classList.add("pad");
    if (mark && mark[0] === i && mark[1] === j) td.classList.add("mark");
    return td;
  })));
  return h("figure", { class: "grid" }, h("figcaption", { text: title }), h("table", {}, h("tbody", {}, rows)));
}

function sumBars(sums, channels, shown) {
  const lim = limitOf(sums) || 1;
  const w = Math.max(2, Math.min(14, Math.floor(600 / sums.length)));
  const hh = 70;
  const bars = sums.map((s, k) => {
    const v = num(s);
    const len = (Math.abs(v) / lim) * (hh / 2 - 2);
    return svg("rect", {
      x: k * w, y: v >= 0 ? hh / 2 - len : hh / 2, width: Math.max(1, w - 1), height: Math.max(0.5, len),
      class: `${v >= 0 ? "pos" : "neg"}${shown.has(k) ? " shown" : ""}`,
    }, svg("title", {}, `input channel ${channels[k]}: ${signed(v)}`));
  });
  bars.push(svg("line", { x1: 0, x2: sums.length * w, y1: hh / 2, y2: hh / 2, class: "axis" }));
  return h("figure", { class: "bars" }, h("figcaption", { text: `the sum of each of the ${sums.length} input channels (the ones drawn below are outlined)` }),
    svg("svg", { width: sums.length * w, height: hh, class: "sum-bars" }, bars));
}

// One input channel's row; the colour scales are shared by all channels (`limits`), so a
// channel that matters more looks stronger.
function channelRow(why, k, limits) {
  const pad = why.padding;
  const ch = why.channels[k];
  const transposed = why.kind === "transposed conv";
  return h("div", { class: "channel-row", dataset: { channel: ch } },
    h("div", { class: "channel-name", text: `input channel ${ch}` }),
    grid(why.patch[k], transposed ? "input values landing" : "patch (input values)", { pad, limit: limits[0] }),
    h("span", { class: "times", text: "×" }),
    grid(why.kernel[k], `kernel ${why.at[0]}, slice ${ch}`, { limit: limits[1] }),
    h("span", { class: "times", text: "=" }),
    grid(why.products[k], "products", { pad, limit: limits[2] }),
    h("div", { class: "channel-sum" }, h("span", { text: "sum" }), h("b", { text: signed(why.channel_sums[k]) })));
}

function convBody(why) {
  const sums = why.channel_sums.map(num);
  const order = sums.map((s, k) => k).sort((a, b) => Math.abs(sums[b]) - Math.abs(sums[a]));
  const first = order.slice(0, FIRST_CHANNELS);
  const shown = new Set(first);
  const limits = [limitOf(why.patch), limitOf(why.kernel), limitOf(why.products)];
  const list = h("div", { class: "channels" }, first.map((k) => channelRow(why, k, limits)));
  const parts = [];
  const d = why.channels.length;
  if (d > 1) parts.push(sumBars(sums, why.channels, shown));
  parts.push(h("p", { class: "lead" }, d > FIRST_CHANNELS
    ? `The ${FIRST_CHANNELS} input channels with the largest sums, of ${d}:`
    : `Each input channel: the patch under the kernel times the kernel's slice, value by value, summed:`));
  parts.push(list);
  if (d > FIRST_CHANNELS) {
    let next = 0;
    const more = h("button", { type: "button", class: "more", text: `show the channels in order (${MORE} at a time)` });
    more.addEventListener("click", () => {
      if (next === 0) clear(list);
      for (let k = next; k < Math.min(d, next + MORE); k += 1) list.append(channelRow(why, k, limits));
      next += MORE;
      if (next >= d) more.remove();
      else more.textContent = `show ${Math.min(MORE, d - next)} more (${next} of ${d} shown)`;
    });
    parts.push(more);
  }
  return parts;
}

function totalRows(why) {
  const rows = [];
  if (why.channel_sums) {
    const total = why.channel_sums.map(num).reduce((a, b) => a + b, 0);
    const n = why.channel_sums.length;
    rows.push([n > 1 ? `sum of the ${n} channel sums` : "sum of the products", full(total), ""]);
    const none = num(why.bias) === 0 && /no bias/.test(why.operation);
    rows.push(["+ bias", none ? "0" : full(why.bias), none ? "this layer has no bias" : ""]);
  }
  return rows;
}

function total(why) {
  const agree = why.difference !== null && why.difference !== undefined;
  const rows = totalRows(why).map(([a, b, c]) => h("tr", {}, h("th", { text: a }), h("td", { text: b }), h("td", { class: "muted", text: c })));
  rows.push(h("tr", { class: "value-row" }, h("th", { text: "= value, recomputed" }), h("td", { class: "recomputed", text: full(why.value) }), h("td", { class: "muted", text: "in float64, from the node's inputs" })));
  rows.push(h("tr", { class: "forward-row" }, h("th", { text: "the forward pass gave" }), h("td", { class: "forward", text: full(why.forward) }), h("td", { class: "muted", text: "float32, what the model computed" })));
  const verdict = agree && why.difference > 0
    ? `✓ equal to the forward pass (difference ${Number(why.difference).toExponential(1)}: float32 rounding)`
    : "✓ equal to the forward pass, exactly";
  return h("div", { class: "walk-total", id: "walk-total" }, h("table", {}, h("tbody", {}, rows)), h("p", { class: "verdict", text: verdict }));
}

function poolBody(why) {
  const window = why.patch[0];
  const pad = why.padding;
  let mark = null;
  if (why.winner) {
    const [, wr, wc] = why.winner;
    mark = [why.rows.indexOf(wr), why.cols.indexOf(wc)];
  }
  const rule = why.kind === "max pool"
    ? "the largest value of the window (outlined)"
    : `the mean of the window: the sum of its values / ${why.divisor ?? "its cells"}`;
  return [h("p", { class: "lead", text: `Output ${place(why)} is ${rule}, in input channel ${why.channels[0]}:` }),
    h("div", { class: "channel-row" }, grid(window, `window at rows ${why.rows[0]}..${why.rows[why.rows.length - 1]}, columns ${why.cols[0]}..${why.cols[why.cols.length - 1]}`, { pad, mark }))];
}

function pointBody(why) {
  const x = why.patch[0][0][0];
  const formula = why.details && why.details.formula ? why.details.formula : why.kind;
  return [h("p", { class: "formula" }, `x = ${full(x)}`, h("span", { class: "muted", text: ` (the input at the same place${why.origin})` })),
    h("p", { class: "formula" }, `${why.kind}: ${formula} → `, h("b", { text: full(why.value) }))];
}

function binaryBody(why) {
  const sign = (why.details && why.details.sign) || "+";
  const items = [];
  why.operands.forEach(([name, value], k) => {
    if (k) items.push(h("span", { class: "times", text: sign }));
    const box = h("div", { class: "operand" }, h("b", { text: full(value) }), h("span", { text: name }));
    items.push(box);
  });
  items.push(h("span", { class: "times", text: "=" }), h("div", { class: "operand" }, h("b", { text: full(why.value) }), h("span", { text: "this value" })));
  return [h("p", { class: "lead", text: `The ${why.kind} of the values at the same place in its inputs${why.operands.length > 1 ? "" : " (and a constant)"}:` }), h("div", { class: "operands" }, items)];
}

function linearBody(why) {
  const xs = why.patch[0][0].map(num);
  const ws = why.kernel[0][0].map(num);
  const ps = why.products[0][0].map(num);
  const order = ps.map((p, k) => k).sort((a, b) => Math.abs(ps[b]) - Math.abs(ps[a])).slice(0, 10);
  const rows = order.map((k) => h("tr", {}, h("td", { text: `input ${k}` }), h("td", { text: signed(xs[k]) }), h("td", { text: "×" }), h("td", { text: signed(ws[k]) }), h("td", { text: "=" }), h("td", { text: signed(ps[k]) })));
  return [h("p", { class: "lead", text: `Output ${why.at[0]} = the ${xs.length} inputs times row ${why.at[0]} of the weights, summed, plus the bias. The largest products:` }),
    h("table", { class: "products" }, h("tbody", {}, rows))];
}

export class Walk {
  constructor(root, onMoved) {
    this.root = root;
    this.onMoved = onMoved; // the atlas marks the value the slider rests on
  }

  async show(node, at) {
    this.node = node;
    this.at = at;
    const token = {};
    this.token = token;
    this.root.classList.add("busy");
    try {
      const why = await api.why(node.index, at);
      if (this.token !== token) return;
      await this.render(node, why);
    } finally {
      if (this.token === token) this.root.classList.remove("busy");
    }
  }

  async render(node, why) {
    const conv = why.kind === "conv" || why.kind === "transposed conv";
    const windowed = ["conv", "max pool", "average pool", "adaptive average pool"].includes(why.kind);
    const header = h("div", { class: "walk-head" },
      h("h3", {}, `Why is ${place(why)} of ${why.where} `, h("b", { class: "the-value", text: full(why.value) }), "?"),
      h("p", { class: "muted", text: `${why.operation}; input ${why.input_shape.length === 3 ? `${why.input_shape[1]}x${why.input_shape[2]}x${why.input_shape[0]}` : `${why.input_shape[0]} values`}${why.origin}` }));
    let body;
    if (conv) body = convBody(why);
    else if (why.kind === "max pool" || why.kind.endsWith("average pool")) body = poolBody(why);
    else if (["add", "sub", "mul", "div"].includes(why.kind)) body = binaryBody(why);
    else if (why.kind === "linear") body = linearBody(why);
    else if (why.patch && why.patch.length === 1 && why.patch[0].length === 1 && why.patch[0][0].length === 1 && why.details && why.details.formula) body = pointBody(why);
    else body = [h("pre", { class: "walk-text", text: why.text })];
    const text = h("details", { class: "as-text" }, h("summary", { text: "the same, as `convscope why` prints it" }), h("pre", { text: why.text }));
    const pictures = windowed && why.input_shape.length === 3 ? volumes(why) : null;
    const slider = await this.slider(node, why);
    clear(this.root, h("section", { class: `walk ${why.kind.replace(/ /g, "-")}` }, header, pictures, slider, body, total(why), text));
  }

  // The slider stays while the node and output channel stay; it follows the value.
  async slider(node, why) {
    if (!node.slide || why.at.length !== 3) return null;
    const [channel, row, col] = why.at;
    const keep = this.sliding && this.sliding.node.index === node.index && this.sliding.channel === channel && this.sliding.version === api.version;
    if (!keep) {
      if (this.sliding) this.sliding.stop();
      const geo = await api.slide(node.index);
      let inChannel = why.channels && why.channels.length ? why.channels[0] : channel;
      if (why.channel_sums) {
        const sums = why.channel_sums.map((s) => Math.abs(num(s)));
        inChannel = why.channels[sums.indexOf(Math.max(...sums))];
      }
      this.sliding = new Slider(geo, node, channel, inChannel, (r, c) => {
        const at = [channel, r, c];
        this.onMoved(at);
        this.show(node, at);
      });
      this.sliding.version = api.version;
    }
    await this.sliding.set(row, col);
    return this.sliding.element;
  }

  reset() {
    if (this.sliding) this.sliding.stop();
    this.sliding = null;
    if (this.root) clear(this.root);
  }
}
