// The HTTP interface, as the page uses it. Every answer that is not OK carries
// {"error": "..."}: the message the command line would print.

export class ApiError extends Error {}

async function check(response) {
  if (response.ok) return response;
  let text = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) text = body.error;
  } catch (_) { /* not JSON */ }
  throw new ApiError(text);
}

export const api = {
  version: 0,

  url(path, params = {}) {
    const q = new URLSearchParams({ ...params, v: String(this.version) });
    return `${path}?${q}`;
  },

  async json(path, params = {}) {
    const response = await check(await fetch(this.url(path, params)));
    return response.json();
  },

  model() { return this.json("/api/model"); },
  why(layer, at) {
    const names = at.length === 3 ? ["channel", "row", "col"] : ["index"];
    const params = { layer };
    names.forEach((n, k) => { params[n] = at[k]; });
    return this.json("/api/why", params);
  },
  slide(layer) { return this.json("/api/slide", { layer }); },
  classes() { return this.json("/api/classes"); },

  maps(layer, params = {}) { return this.url("/api/maps", { layer, ...params }); },
  kernels(layer) { return this.url("/api/kernels", { layer }); },
  image() { return this.url("/api/image"); },

  async upload(file) {
    const response = await fetch(`/api/image?name=${encodeURIComponent(file.name || "image")}`, {
      method: "POST", body: file,
    });
    await check(response);
    return response.json();
  },
};
