// The library's colours (convscope.viz.colors): blue below zero, white at zero, red above,
// and how numbers are written (convscope.viz.why_text).

const DIVERGING = [
  [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
  [255, 255, 255],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
];

// A JSON number, or "inf" / "-inf" / "nan" as the server writes them.
export function num(v) {
  if (typeof v === "number") return v;
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  return NaN;
}

export function rgb(value, limit) {
  const v = num(value);
  if (Number.isNaN(v)) return [128, 128, 128];
  if (!(limit > 0) || !Number.isFinite(limit)) return [255, 255, 255];
  const t = Math.min(1, Math.max(0, 0.5 + 0.5 * (Number.isFinite(v) ? v : Math.sign(v) * limit) / limit));
  const pos = t * (DIVERGING.length - 1);
  const lo = Math.min(DIVERGING.length - 2, Math.floor(pos));
  const f = pos - lo;
  return DIVERGING[lo].map((c, k) => Math.round(c * (1 - f) + DIVERGING[lo + 1][k] * f));
}

export function css(value, limit) {
  const [r, g, b] = rgb(value, limit);
  return `rgb(${r}, ${g}, ${b})`;
}

// Dark text on light cells, white text on dark ones.
export function ink(value, limit) {
  const [r, g, b] = rgb(value, limit);
  return 0.299 * r + 0.587 * g + 0.114 * b < 120 ? "#fff" : "#111";
}

export function limitOf(values) {
  let m = 0;
  for (const v of values.flat(Infinity)) {
    const x = Math.abs(num(v));
    if (Number.isFinite(x) && x > m) m = x;
  }
  return m;
}

// Decimals that show about two significant digits of values up to m (as why_text.decimals).
export function decimals(m) {
  if (m > 0 && m < 0.01) return Math.min(7, 1 - Math.floor(Math.log10(m)));
  return m < 10 ? 3 : m < 100 ? 2 : 1;
}

export function cell(v, places) {
  const x = num(v);
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  return x.toFixed(places);
}

// "+0.0459"; tiny values in powers of ten, as the CLI writes them.
export function signed(v) {
  const x = num(v);
  if (!Number.isFinite(x)) return cell(x, 0);
  if (x !== 0 && Math.abs(x) < 5e-4) return (x > 0 ? "+" : "") + x.toExponential(2);
  return (x >= 0 ? "+" : "") + (Math.abs(x) < 1e4 ? x.toFixed(4) : x.toPrecision(4));
}

// A value as the command line writes it (Python's "%g": 6 significant digits), so the
// recomputed value and the forward pass's float32 read the same when they agree.
export function full(v) {
  const x = num(v);
  if (!Number.isFinite(x)) return cell(x, 0);
  if (x === 0) return "0";
  const exp = Math.floor(Math.log10(Math.abs(x)));
  if (exp < -4 || exp >= 6) {
    const [m, e] = x.toExponential(5).split("e");
    return `${m.replace(/\.?0+$/, "")}e${e[0] === "-" ? "-" : "+"}${e.replace(/^[-+]/, "").padStart(2, "0")}`;
  }
  return x.toFixed(Math.max(0, 5 - exp)).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

export function thousands(n) {
  return Number(n).toLocaleString("en-US");
}

export function short(n) {
  for (const [unit, size] of [["G", 1e9], ["M", 1e6], ["k", 1e3]]) {
    if (n >= size) return `${(n / size).toPrecision(3)} ${unit}`;
  }
  return String(n);
}
