// The slides' picture of one value, in 3-D: the input volume with the patch under the
// kernel, the kernel (as deep as the input), and the output volume with the one value they
// make. Boxes in oblique projection: height x width at the front, depth (channels) going
// back. Sizes are compressed (square root for height and width, logarithm for depth) so a
// 224x224x3 image and a 7x7x512 volume both fit.

import { h, svg } from "./dom.js";

const DX = 0.62; // the depth axis, per pixel of depth
const DY = -0.42;

function face(points, cls) {
  return svg("polygon", { points: points.map((p) => p.join(",")).join(" "), class: cls });
}

// A box: front face at (x, y) of w x h, d pixels deep; returns the three visible faces.
function box(x, y, w, h, d, cls) {
  const ox = d * DX;
  const oy = d * DY;
  return [
    face([[x, y], [x + ox, y + oy], [x + w + ox, y + oy], [x + w, y]], `${cls} top`),
    face([[x + w, y], [x + w + ox, y + oy], [x + w + ox, y + h + oy], [x + w, y + h]], `${cls} side`),
    face([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], `${cls} front`),
  ];
}

function text(x, y, content, cls = "label") {
  return svg("text", { x, y, class: cls }, content);
}

// Where, in a box of w x h x d pixels for a volume of H x W x D, a sub-box of rows r0..r1,
// columns c0..c1, channels k0..k1 lies (clipped to the volume, at least `least` pixels).
function part(geo, [r0, r1], [c0, c1], [k0, k1], least = 4) {
  const clip = (v, n) => Math.min(n, Math.max(0, v));
  const ry = clip(r0, geo.H);
  const ry1 = clip(r1 + 1, geo.H);
  const cx = clip(c0, geo.W);
  const cx1 = clip(c1 + 1, geo.W);
  const t = geo.D ? k0 / geo.D : 0;
  const depth = Math.max(2, ((k1 - k0 + 1) / geo.D) * geo.d);
  const w = Math.max(least, ((cx1 - cx) / geo.W) * geo.w);
  const hh = Math.max(least, ((ry1 - ry) / geo.H) * geo.h);
  const x = geo.x + (cx / geo.W) * geo.w + t * geo.d * DX;
  const y = geo.y + (ry / geo.H) * geo.h + t * geo.d * DY;
  return { x: Math.min(x, geo.x + geo.w - w + t * geo.d * DX), y: Math.min(y, geo.y + geo.h - hh + t * geo.d * DY), w, h: hh, d: depth };
}

function sizes(shapes) {
  const spatial = Math.max(...shapes.flatMap((s) => [s[1], s[2]]));
  const deep = Math.max(...shapes.map((s) => s[0]));
  return (shape) => ({
    w: 26 + 100 * Math.sqrt(shape[2] / spatial),
    h: 26 + 100 * Math.sqrt(shape[1] / spatial),
    d: 6 + 46 * (Math.log2(shape[0] + 1) / Math.log2(deep + 1)),
  });
}

function volumeLabel(shape) {
  return `${shape[1]}x${shape[2]}x${shape[0]}`;
}

// why: the /api/why answer for a conv or a pool (3-D input and output).
export function volumes(why) {
  const inShape = why.input_shape;
  const outShape = why.output_shape;
  const size = sizes([inShape, outShape]);
  const base = 150;
  const si = size(inShape);
  const so = size(outShape);
  const conv = why.kind === "conv";
  const inGeo = { x: 16, y: base - si.h, w: si.w, h: si.h, d: si.d, H: inShape[1], W: inShape[2], D: inShape[0] };
  const rows = why.rows.map(Number);
  const cols = why.cols.map(Number);
  const channels = why.channels.length ? why.channels : [why.at[0]];
  const k0 = Math.min(...channels);
  const k1 = Math.max(...channels);
  const patch = part(inGeo, [Math.min(...rows), Math.max(...rows)], [Math.min(...cols), Math.max(...cols)], [k0, k1], 7);
  const items = [...box(inGeo.x, inGeo.y, inGeo.w, inGeo.h, inGeo.d, "vol"), ...box(patch.x, patch.y, patch.w, patch.h, patch.d, "patch")];
  items.push(text(inGeo.x, base + 18, `input ${volumeLabel(inShape)}`));
  const kh = why.patch[0].length;
  const kw = why.patch[0][0].length;
  items.push(text(inGeo.x, base + 34, conv ? `patch ${kh}x${kw}x${channels.length}` : `window ${kh}x${kw} of channel ${channels[0]}`, "label patch-text"));
  let x = inGeo.x + inGeo.w + inGeo.d * DX + 34;
  if (conv) {
    const kd = Math.max(4, patch.d);
    const kwPx = 18 + 8 * Math.sqrt(kw);
    const khPx = 18 + 8 * Math.sqrt(kh);
    items.push(text(x - 22, base - 40, "×", "op"));
    items.push(...box(x, base - khPx - 20, kwPx, khPx, kd, "kernel"));
    items.push(text(x - 4, base + 18, `kernel ${why.at[0]}: ${kh}x${kw}x${channels.length}`));
    items.push(text(x - 4, base + 34, "as deep as the input", "label muted"));
    x += kwPx + kd * DX + 74;
    items.push(text(x - 58, base - 40, "Σ + bias", "op small"));
  } else {
    items.push(text(x - 26, base - 40, why.kind === "max pool" ? "max" : "mean", "op small"));
    x += 20;
  }
  const outGeo = { x, y: base - so.h, w: so.w, h: so.h, d: so.d, H: outShape[1], W: outShape[2], D: outShape[0] };
  const [c, r, q] = why.at;
  const cellBox = part(outGeo, [r, r], [q, q], [c, c], 5);
  items.push(...box(outGeo.x, outGeo.y, outGeo.w, outGeo.h, outGeo.d, "vol"), ...box(cellBox.x, cellBox.y, cellBox.w, cellBox.h, cellBox.d, "cell"));
  items.push(text(outGeo.x, base + 18, `output ${volumeLabel(outShape)}`));
  items.push(text(outGeo.x, base + 34, `channel ${c}, row ${r}, column ${q}`, "label cell-text"));
  const words = `channel ${c}, row ${r}, column ${q}`.length * 7;
  const width = Math.max(outGeo.x + outGeo.w + outGeo.d * DX, outGeo.x + words) + 20;
  const picture = svg("svg", { viewBox: `0 -10 ${Math.max(width, 420)} ${base + 50}`, class: "volumes", role: "img", "aria-label": "the input volume, the patch, the kernel and the output value" }, items);
  picture.style.maxWidth = `${Math.max(width, 420) * 1.25}px`;
  return h("div", { class: "volumes-box" }, picture);
}
