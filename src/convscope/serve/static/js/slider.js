// The slides' animation, under your control: the window of a conv (or pool) over its
// padded input on the left, the output map filling in on the right, one value per position.
// Any stride, padding and dilation: the window's cells are drawn where the kernel reads.
// The slider (and play) move the position; when it rests, the walk-through below is asked
// for the value there.

import { api } from "./api.js";
import { h } from "./dom.js";

const SIDE = 300; // each panel's longest side, in pixels
const GAP = 56;

function load(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

function hatch(ctx) {
  const tile = document.createElement("canvas");
  tile.width = tile.height = 6;
  const t = tile.getContext("2d");
  t.fillStyle = "#eef0f3";
  t.fillRect(0, 0, 6, 6);
  t.strokeStyle = "#b9c0ca";
  t.beginPath();
  t.moveTo(0, 6);
  t.lineTo(6, 0);
  t.stroke();
  return ctx.createPattern(tile, "repeat");
}

export class Slider {
  // geo: the /api/slide answer; node: the node; channel: the output channel shown;
  // inChannel: the input channel drawn (for an input that is not the image itself)
  constructor(geo, node, channel, inChannel, onRest) {
    this.geo = geo;
    this.node = node;
    this.channel = channel;
    this.onRest = onRest;
    const [, oh, ow] = geo.output;
    this.count = oh * ow;
    const [, H, W] = geo.input;
    const [[pt, pb], [pl, pr]] = geo.padding;
    this.ph = H + pt + pb;
    this.pw = W + pl + pr;
    this.si = Math.min(16, SIDE / Math.max(this.ph, this.pw));
    this.so = Math.min(16, SIDE / Math.max(oh, ow));
    this.canvas = h("canvas", { class: "slide-canvas", "aria-label": "the window sliding over the input, and the output map" });
    this.canvas.width = Math.ceil(this.pw * this.si + GAP + ow * this.so) + 2;
    this.canvas.height = Math.ceil(Math.max(this.ph * this.si, oh * this.so)) + 24;
    this.range = h("input", { type: "range", min: 0, max: this.count - 1, value: 0, class: "slide-range", "aria-label": "kernel position" });
    this.play = h("button", { type: "button", class: "play", text: "▶ play" });
    this.where = h("span", { class: "slide-where" });
    this.range.addEventListener("input", () => this.move(Number(this.range.value), true));
    this.play.addEventListener("click", () => this.toggle());
    this.canvas.addEventListener("click", (e) => this.clickOutput(e));
    const controls = [this.play, this.range, this.where];
    const picture = geo.source_is_image && (geo.input[0] === 3 || geo.input[0] === 1);
    if (!picture && geo.op === "conv2d" && geo.per_group > 1) controls.push(this.channelPicker(inChannel));
    else if (!picture) controls.push(h("span", { class: "muted", text: `showing input channel ${inChannel}` }));
    this.element = h("div", { class: "slide-box" },
      h("p", { class: "slide-title", text: this.title() }),
      this.canvas, h("div", { class: "slide-controls" }, controls));
    this.inChannel = inChannel;
    this.ready = this.images();
  }

  title() {
    const g = this.geo;
    const pad = g.padding.flat().some((p) => p > 0) ? `padding ${g.padding[0][0]}` : "no padding";
    const parts = [`${g.kernel[0]}x${g.kernel[1]} window`, `stride ${g.stride[0]}${g.stride[1] !== g.stride[0] ? `x${g.stride[1]}` : ""}`, pad];
    if (g.dilation[0] > 1 || g.dilation[1] > 1) parts.push(`dilation ${g.dilation[0]}`);
    return `The ${g.op === "conv2d" ? "kernel" : "window"} sliding over the input (${parts.join(", ")}): ` +
      `each position gives one value of output map ${this.channel}.`;
  }

  channelPicker(selected) {
    const g = this.geo;
    const group = g.op === "conv2d" ? Math.floor(this.channel / (g.output[0] / g.groups)) : this.channel;
    const first = g.op === "conv2d" ? group * g.per_group : this.channel;
    const count = g.op === "conv2d" ? g.per_group : 1;
    const select = h("select", { class: "in-channel", "aria-label": "input channel drawn" });
    for (let k = first; k < first + count; k += 1) {
      select.append(h("option", { value: k, text: `input channel ${k}`, selected: k === selected }));
    }
    select.addEventListener("change", async () => {
      this.inChannel = Number(select.value);
      this.ready = this.images();
      await this.ready;
      this.draw();
    });
    return h("label", {}, "showing ", select);
  }

  async images() {
    const g = this.geo;
    const inputSrc = g.source_is_image && (g.input[0] === 3 || g.input[0] === 1)
      ? api.image() : api.maps(g.source, { channel: this.inChannel });
    [this.inImg, this.outImg] = await Promise.all([load(inputSrc), load(api.maps(this.node.index, { channel: this.channel }))]);
  }

  async set(row, col) {
    const [, , ow] = this.geo.output;
    await this.ready;
    this.move(row * ow + col, false);
  }

  move(position, byHand) {
    this.position = Math.max(0, Math.min(this.count - 1, position));
    this.range.value = this.position;
    this.draw();
    if (byHand) this.rest();
  }

  rest() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.playing) return;
      const [, , ow] = this.geo.output;
      this.onRest(Math.floor(this.position / ow), this.position % ow);
    }, 220);
  }

  toggle() {
    if (this.playing) {
      clearInterval(this.playing);
      this.playing = null;
      this.play.textContent = "▶ play";
      this.rest();
      return;
    }
    if (this.position >= this.count - 1) this.move(0, false);
    const step = Math.max(1, Math.ceil(this.count / 400));
    this.play.textContent = "❚❚ pause";
    this.playing = setInterval(() => {
      if (this.position >= this.count - 1) { this.toggle(); return; }
      this.move(this.position + step, false);
    }, 50);
  }

  clickOutput(event) {
    const box = this.canvas.getBoundingClientRect();
    const scale = this.canvas.width / box.width;
    const x = (event.clientX - box.left) * scale - (this.pw * this.si + GAP);
    const y = (event.clientY - box.top) * scale;
    const [, oh, ow] = this.geo.output;
    const r = Math.floor(y / this.so);
    const c = Math.floor(x / this.so);
    if (r >= 0 && c >= 0 && r < oh && c < ow) this.move(r * ow + c, true);
  }

  draw() {
    if (!this.inImg || this.position === undefined) return;
    const g = this.geo;
    const ctx = this.canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const [, H, W] = g.input;
    const [, oh, ow] = g.output;
    const [[pt], [pl]] = g.padding;
    const si = this.si;
    const so = this.so;
    const ox = this.pw * si + GAP;
    const r = Math.floor(this.position / ow);
    const c = this.position % ow;
    // the padded input: padding hatched, the input itself inside
    ctx.fillStyle = hatch(ctx);
    ctx.fillRect(0, 0, this.pw * si, this.ph * si);
    ctx.drawImage(this.inImg, pl * si, pt * si, W * si, H * si);
    ctx.strokeStyle = "#8a94a3";
    ctx.lineWidth = 1;
    ctx.strokeRect(pl * si + 0.5, pt * si + 0.5, W * si - 1, H * si - 1);
    // the output: positions already visited drawn, the rest waiting
    ctx.fillStyle = "#f1f2f4";
    ctx.fillRect(ox, 0, ow * so, oh * so);
    ctx.save();
    ctx.beginPath();
    ctx.rect(ox, 0, ow * so, r * so);
    ctx.rect(ox, r * so, (c + 1) * so, so);
    ctx.clip();
    ctx.drawImage(this.outImg, ox, 0, ow * so, oh * so);
    ctx.restore();
    ctx.strokeStyle = "#8a94a3";
    ctx.strokeRect(ox + 0.5, 0.5, ow * so - 1, oh * so - 1);
    // the window: one square per kernel cell, where the kernel reads
    const [kh, kw] = g.kernel;
    const [sh, sw] = g.stride;
    const [dh, dw] = g.dilation;
    const top = r * sh;
    const left = c * sw;
    ctx.fillStyle = "rgba(255, 196, 0, 0.28)";
    ctx.strokeStyle = "#111";
    ctx.lineWidth = Math.max(1, Math.min(2, si / 3));
    for (let i = 0; i < kh; i += 1) {
      for (let j = 0; j < kw; j += 1) {
        const y = (top + i * dh) * si;
        const x = (left + j * dw) * si;
        ctx.fillRect(x, y, si, si);
        if (si >= 4) ctx.strokeRect(x + 0.5, y + 0.5, si - 1, si - 1);
      }
    }
    const wy = top * si;
    const wx = left * si;
    const wh = ((kh - 1) * dh + 1) * si;
    const ww = ((kw - 1) * dw + 1) * si;
    ctx.strokeStyle = "#e8a200";
    ctx.lineWidth = 2;
    ctx.strokeRect(wx, wy, ww, wh);
    ctx.strokeStyle = "#111";
    ctx.strokeRect(ox + c * so - 1, r * so - 1, so + 2, so + 2);
    // a line from the window to the value it makes
    ctx.strokeStyle = "rgba(232, 162, 0, 0.9)";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(wx + ww, wy + wh / 2);
    ctx.lineTo(ox + c * so, r * so + so / 2);
    ctx.stroke();
    ctx.fillStyle = "#333";
    ctx.font = "12px system-ui, sans-serif";
    const base = Math.max(this.ph * si, oh * so) + 16;
    const padded = g.padding.flat().some((p) => p > 0);
    ctx.fillText(`input ${H}x${W}${padded ? " (hatched: padding)" : ""}`, 0, base);
    ctx.fillText(`output map ${this.channel}: ${oh}x${ow}`, ox, base);
    const rows = `rows ${top - pt}..${top - pt + (kh - 1) * dh}`;
    const cols = `columns ${left - pl}..${left - pl + (kw - 1) * dw}`;
    this.where.textContent = `position ${this.position + 1} of ${this.count}: output row ${r}, column ${c} ← input ${rows}, ${cols}`;
  }

  stop() {
    if (this.playing) clearInterval(this.playing);
    this.playing = null;
    clearTimeout(this.timer);
  }
}
