// seethrough view — plain JavaScript, no build step, no dependency, no network.
// Reads the data format of seethrough/viewer/format.py (version 1): data/manifest.js calls
// SEETHROUGH.manifest(...), data/chunk-K.js calls SEETHROUGH.chunk(K, ...) when a sample needs it.
"use strict";

const FORMAT_VERSION = 1;
const PAGE_SIZE = 48;
const PANEL_SIDE = 224;          // canvas pixels of a models × explainers panel
const SMALL_SIDE = 128;          // canvas pixels of an extras thumbnail
const CURVE_W = 220, CURVE_H = 140;
// colour maps: 17 anchors (matplotlib's jet and cividis sampled at i/16), linearly interpolated
const COLORMAPS = {
  jet: [[0,0,128],[0,0,200],[0,0,255],[0,64,255],[0,128,255],[0,192,255],[22,255,225],[73,255,173],[125,255,122],
        [177,255,70],[228,255,19],[255,208,0],[255,148,0],[255,89,0],[255,30,0],[196,0,0],[128,0,0]],
  cividis: [[0,34,78],[0,46,106],[26,56,111],[50,67,109],[67,78,108],[83,90,109],[97,101,111],[111,112,115],
            [125,124,120],[140,136,120],[155,148,118],[171,160,114],[188,174,108],[205,187,99],[222,201,88],
            [240,216,70],[254,232,56]],
};

const state = {
  manifest: null, chunks: {}, waiting: {}, lut: null, order: [], page: 0, current: 0, cls: null,
  opacity: 0.55, threshold: 0, images: {}, cursor: null, tableSort: null,
};

const SEETHROUGH = {
  manifest(data) { start(data); },
  chunk(k, data) {
    state.chunks[k] = data;
    (state.waiting[k] || []).forEach(resolve => resolve(data));
    delete state.waiting[k];
  },
};
window.SEETHROUGH = SEETHROUGH;

const $ = id => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  children.flat().forEach(c => node.append(c instanceof Node ? c : document.createTextNode(String(c))));
  return node;
};
const fmt = v => (v === null || v === undefined || Number.isNaN(v)) ? "—" : Number(v).toFixed(3);
const className = c => (state.manifest.classes[c] !== undefined ? state.manifest.classes[c] : String(c));

// ---------------------------------------------------------------- data
function loadChunk(k) {
  if (state.chunks[k]) return Promise.resolve(state.chunks[k]);
  return new Promise(resolve => {
    const first = !state.waiting[k];
    (state.waiting[k] = state.waiting[k] || []).push(resolve);
    if (first) {
      const script = document.createElement("script");
      script.src = "data/chunk-" + String(k).padStart(5, "0") + ".js";
      document.body.append(script);
    }
  });
}

function decodeMap(map) {        // {h, w, d: base64 uint8} → {h, w, values: Uint8Array, sorted}
  if (map._decoded) return map._decoded;
  const bytes = atob(map.d), values = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) values[i] = bytes.charCodeAt(i);
  map._decoded = { h: map.h, w: map.w, values, sorted: Uint8Array.from(values).sort() };
  return map._decoded;
}

function loadImage(src) {
  if (!state.images[src]) {
    state.images[src] = new Promise(resolve => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => resolve(null);
      img.src = src;
    });
  }
  return state.images[src];
}

// ---------------------------------------------------------------- colour and maps
function buildLut(name) {
  const anchors = COLORMAPS[name] || COLORMAPS.jet, lut = new Uint8ClampedArray(256 * 3);
  for (let v = 0; v < 256; v++) {
    const x = v / 255 * (anchors.length - 1), i = Math.min(Math.floor(x), anchors.length - 2), t = x - i;
    for (let c = 0; c < 3; c++) lut[v * 3 + c] = anchors[i][c] * (1 - t) + anchors[i + 1][c] * t;
  }
  return lut;
}

// bilinear sample of a native map at relative position (u, v) ∈ [0,1)², half-pixel centres
function sample(map, u, v) {
  const x = Math.min(Math.max(u * map.w - 0.5, 0), map.w - 1), y = Math.min(Math.max(v * map.h - 0.5, 0), map.h - 1);
  const x0 = Math.floor(x), y0 = Math.floor(y), x1 = Math.min(x0 + 1, map.w - 1), y1 = Math.min(y0 + 1, map.h - 1);
  const fx = x - x0, fy = y - y0, m = map.values;
  const top = m[y0 * map.w + x0] * (1 - fx) + m[y0 * map.w + x1] * fx;
  const bottom = m[y1 * map.w + x0] * (1 - fx) + m[y1 * map.w + x1] * fx;
  return top * (1 - fy) + bottom * fy;
}

function percentile(map, p) {
  if (p <= 0) return -1;
  return map.sorted[Math.min(map.sorted.length - 1, Math.floor(p / 100 * map.sorted.length))];
}

// The thumbnail is drawn as is and the coloured map composited over it from an offscreen canvas:
// pixels of a file:// image cannot be read back (the canvas would be tainted), so nothing here does.
async function paint(canvas, thumb, encoded) {
  const img = await loadImage(thumb);
  canvas._image = img;
  canvas._overlay = encoded ? overlay(decodeMap(encoded), canvas.width) : null;
  redraw(canvas);
}

function overlay(map, side) {
  const layer = document.createElement("canvas");
  layer.width = layer.height = side;
  const ctx = layer.getContext("2d"), pixels = ctx.createImageData(side, side), out = pixels.data;
  const cut = percentile(map, state.threshold), lut = state.lut, alpha = Math.round(state.opacity * 255);
  for (let py = 0; py < side; py++) {
    const v = (py + 0.5) / side;
    for (let px = 0; px < side; px++) {
      const value = sample(map, (px + 0.5) / side, v);
      if (value < cut) continue;
      const q = Math.round(value) * 3, o = (py * side + px) * 4;
      out[o] = lut[q]; out[o + 1] = lut[q + 1]; out[o + 2] = lut[q + 2]; out[o + 3] = alpha;
    }
  }
  ctx.putImageData(pixels, 0, 0);
  return layer;
}

function redraw(canvas) {
  const ctx = canvas.getContext("2d"), side = canvas.width;
  ctx.clearRect(0, 0, side, side);
  if (canvas._image) ctx.drawImage(canvas._image, 0, 0, side, side);
  if (canvas._overlay) ctx.drawImage(canvas._overlay, 0, 0);
  if (state.cursor && canvas.dataset.model) {
    const x = state.cursor[0] * side, y = state.cursor[1] * side;
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(x - 6, y); ctx.lineTo(x + 6, y); ctx.moveTo(x, y - 6); ctx.lineTo(x, y + 6); ctx.stroke();
  }
}

// ---------------------------------------------------------------- start
function start(manifest) {
  if (manifest.format !== "seethrough-view" || manifest.version > FORMAT_VERSION) {
    document.body.textContent = "This view was written in format " + manifest.format + " v" + manifest.version +
      "; this viewer reads v" + FORMAT_VERSION + ". Write it again with this seethrough version.";
    return;
  }
  state.manifest = manifest;
  state.lut = buildLut("jet");
  document.title = "seethrough view — " + manifest.title;
  $("title").textContent = manifest.title;
  document.querySelectorAll("nav .tab").forEach(b => b.addEventListener("click", () => showTab(b.dataset.tab)));
  if (manifest.benchmark) { document.querySelector('[data-tab="leaderboard"]').hidden = false; renderLeaderboard(); }
  if (manifest.errors.length) { document.querySelector('[data-tab="notes"]').hidden = false; renderNotes(); }
  setupGridControls();
  setupDetailControls();
  applyFilters();
  SEETHROUGH.readyMs = performance.now();       // the grid is built (first paint follows)
}

function showTab(name) {
  document.querySelectorAll("nav .tab").forEach(b => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll("main .view").forEach(s => { s.hidden = s.id !== name; });
  if (name === "detail") renderDetail();
}

// ---------------------------------------------------------------- grid
function metricKeys() {
  const keys = [];
  for (const model of state.manifest.models)
    for (const explainer of state.manifest.explainers)
      for (const metric of state.manifest.metrics) keys.push([model.name, explainer, metric]);
  return keys;
}

function setupGridControls() {
  const m = state.manifest;
  $("filter-class").append(el("option", { value: "all", text: "all" }),
    ...m.classes.map((c, i) => el("option", { value: i, text: c })));
  $("filter-model").append(...m.models.map(x => el("option", { value: x.name, text: x.name })));
  if (!m.metrics.length) $("metric-controls").hidden = true;
  $("filter-metric").append(...metricKeys().map(k => el("option", { value: k.join("\u0001"), text: k.join(" · ") })));
  const refilter = () => { state.page = 0; applyFilters(); };
  ["filter-class", "filter-model", "filter-correct", "filter-metric", "sort-order"]
    .forEach(id => $(id).addEventListener("change", refilter));
  // number fields filter as they are typed in (a filter applied only on blur would re-build the
  // grid under the click that blurred it)
  ["filter-min", "filter-max"].forEach(id => $(id).addEventListener("input", refilter));
  $("page-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderGrid(); });
  $("page-next").addEventListener("click", () => {
    state.page = Math.min(Math.max(0, Math.ceil(state.order.length / PAGE_SIZE) - 1), state.page + 1); renderGrid();
  });
}

function metricOf(sample, key) {
  const [model, explainer, metric] = key;
  const v = (((sample.metrics || {})[model] || {})[explainer] || {})[metric];
  return v === undefined ? null : v;
}

function applyFilters() {
  const m = state.manifest, cls = $("filter-class").value, model = $("filter-model").value;
  const correct = $("filter-correct").value, sort = $("sort-order").value;
  const key = $("filter-metric").value ? $("filter-metric").value.split("\u0001") : null;
  const lo = $("filter-min").value === "" ? -Infinity : Number($("filter-min").value);
  const hi = $("filter-max").value === "" ? Infinity : Number($("filter-max").value);
  let order = m.samples.map((s, i) => i).filter(i => {
    const s = m.samples[i];
    if (cls !== "all" && String(s.label) !== cls) return false;
    const pred = s.models[model] && s.models[model].top.length ? s.models[model].top[0][0] : null;
    if (correct === "correct" && pred !== s.label) return false;
    if (correct === "wrong" && pred === s.label) return false;
    if (key && (lo > -Infinity || hi < Infinity)) {
      const v = metricOf(s, key);
      if (v === null || v < lo || v > hi) return false;
    }
    return true;
  });
  if (key && sort !== "id") {
    const sign = sort === "asc" ? 1 : -1;
    order.sort((a, b) => {
      const va = metricOf(m.samples[a], key), vb = metricOf(m.samples[b], key);
      if (va === null) return 1; if (vb === null) return -1;
      return sign * (va - vb);
    });
  }
  state.order = order;
  renderGrid();
}

function renderGrid() {
  const m = state.manifest, cells = $("grid-cells");
  const pages = Math.max(1, Math.ceil(state.order.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const shown = state.order.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  $("grid-count").textContent = state.order.length + " of " + m.samples.length + " images";
  $("page-label").textContent = "page " + (state.page + 1) + " / " + pages;
  cells.replaceChildren(...shown.map((i, position) => {
    const s = m.samples[i];
    const badges = m.models.map(model => {
      const top = s.models[model.name] && s.models[model.name].top[0];
      const ok = top && top[0] === s.label;
      return el("span", { class: "badge " + (ok ? "good" : "bad"), title: model.name + ": " + (top ? className(top[0]) : "?") },
        model.name.slice(0, 8));
    });
    return el("div", { class: "cell", "data-sample": s.id, onclick: () => openSample(state.page * PAGE_SIZE + position) },
      el("img", { src: s.thumb, loading: "lazy", alt: "sample " + s.id }),
      el("div", {}, "#" + s.id + " " + className(s.label)), el("div", {}, badges));
  }));
}

// ---------------------------------------------------------------- one image
function openSample(position) {
  state.current = position;
  state.cls = null;
  showTab("detail");
}

function setupDetailControls() {
  const m = state.manifest;
  $("focus-model").append(...m.models.map(x => el("option", { value: x.name, text: x.name })));
  $("focus-explainer").append(...m.explainers.map(e => el("option", { value: e, text: e })));
  $("focus-model").addEventListener("change", e => setFocus(e.target.value, state.focus[1]));
  $("focus-explainer").addEventListener("change", e => setFocus(state.focus[0], e.target.value));
  state.focus = [m.models.length ? m.models[0].name : null, m.explainers[0] || "native"];
  const focus = $("focus-canvas");
  focus.dataset.model = "focus";
  focus.addEventListener("mousemove", e => hover(e, focus));
  focus.addEventListener("mouseleave", () => { state.cursor = null; updateCaptions(); });
  $("prev-image").addEventListener("click", () => step(-1));
  $("next-image").addEventListener("click", () => step(1));
  $("class-select").addEventListener("change", e => { state.cls = Number(e.target.value); repaint(); });
  $("opacity").addEventListener("input", e => {
    state.opacity = Number(e.target.value) / 100; $("opacity-value").textContent = e.target.value + " %"; repaint();
  });
  $("threshold").addEventListener("input", e => {
    state.threshold = Number(e.target.value); $("threshold-value").textContent = e.target.value + "th percentile"; repaint();
  });
  $("colormap").addEventListener("change", e => { state.lut = buildLut(e.target.value); repaint(); });
  document.addEventListener("keydown", e => {
    if ($("detail").hidden || e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === "ArrowLeft") step(-1);
    if (e.key === "ArrowRight") step(1);
  });
}

function step(delta) {
  if (!state.order.length) return;
  state.current = (state.current + delta + state.order.length) % state.order.length;
  state.cls = null;
  renderDetail();
}

function currentSample() {
  const index = state.order[state.current];
  return index === undefined ? null : state.manifest.samples[index];
}

async function renderDetail() {
  const s = currentSample();
  if (!s) { $("detail-title").textContent = "no image matches the filters"; return; }
  const chunk = (await loadChunk(s.chunk))[s.id] || { maps: {}, extras: {}, curves: {}, interventions: [] };
  if (state.cls === null) state.cls = s.label;
  $("detail-title").textContent = "#" + s.id + " — " + className(s.label) + " (" + (state.current + 1) + " / " + state.order.length + ")";
  renderClassSelect(s);
  renderPredictions(s);
  buildPanels(s, chunk);
  renderExtras(s, chunk);
  renderCurves(chunk);
  renderMetricTable(s);
  renderInterventions(s, chunk);
  await repaint();
  SEETHROUGH.shown = s.id;                      // the image now on screen (tests wait for it)
}

function renderClassSelect(s) {
  const stored = new Set([s.label]);
  Object.values(s.models).forEach(x => x.top.forEach(([c]) => stored.add(c)));
  const options = state.manifest.classes.map((name, c) => el("option", { value: c },
    name + (c === s.label ? " (ground truth)" : "") + (stored.has(c) ? "" : " — not stored")));
  $("class-select").replaceChildren(...options);
  $("class-select").value = String(state.cls);
}

function renderPredictions(s) {
  const blocks = [el("div", {}, el("button", { onclick: () => setClass(s.label) }, "ground truth: " + className(s.label)))];
  for (const model of state.manifest.models) {
    const top = (s.models[model.name] || { top: [] }).top;
    const rows = top.map(([c, p], i) => el("tr", {},
      el("td", {}, el("button", { onclick: () => setClass(c) }, (i === 0 ? "prediction: " : "") + className(c))),
      el("td", {}, (100 * p).toFixed(1) + " %")));
    blocks.push(el("div", {}, el("b", {}, model.name + (model.kind === "intr" ? " (look-alike classes)" : "")),
      el("table", {}, rows)));
  }
  $("predictions").replaceChildren(...blocks);
}

// the stored map of the current class ("*": a map that is the same for every class)
function mapFor(maps) { return maps[String(state.cls)] || maps["*"]; }

function setClass(c) { state.cls = c; $("class-select").value = String(c); repaint(); }

function panelLabel(model, explainer) {
  const why = model.sign < 0 ? "why not " : "why ";
  return model.name + " · " + explainer + " — " + why + className(state.cls);
}

function buildPanels(s, chunk) {
  // columns: models side by side; rows: explainers
  const m = state.manifest, panels = $("panels");
  panels.style.gridTemplateColumns = "6em repeat(" + m.models.length + ", minmax(0, " + PANEL_SIDE + "px))";
  const nodes = [el("div"), ...m.models.map(x => el("div", { class: "rowhead" }, x.name + (x.sign < 0 ? " (−)" : "")))];
  state.panels = [];
  for (const explainer of m.explainers) {
    nodes.push(el("div", { class: "rowhead" }, explainer));
    for (const model of m.models) {
      const canvas = el("canvas", { width: PANEL_SIDE, height: PANEL_SIDE, "data-model": model.name, "data-explainer": explainer });
      const caption = el("div", { class: "caption" });
      const panel = { canvas, caption, model, explainer, maps: ((chunk.maps[model.name] || {})[explainer]) || {} };
      canvas.addEventListener("mousemove", e => hover(e, canvas));
      canvas.addEventListener("mouseleave", () => { state.cursor = null; updateCaptions(); });
      canvas.addEventListener("click", () => setFocus(model.name, explainer));
      state.panels.push(panel);
      panel.box = el("div", { class: "panel" }, canvas, caption);
      nodes.push(panel.box);
    }
  }
  panels.replaceChildren(...nodes);
  state.sample = s;
}

function focusedPanel() {
  return (state.panels || []).find(p => p.model.name === state.focus[0] && p.explainer === state.focus[1]);
}

async function setFocus(model, explainer) {
  state.focus = [model, explainer];
  $("focus-model").value = model;
  $("focus-explainer").value = explainer;
  const started = performance.now();
  await paintFocus();
  updateCaptions();
  SEETHROUGH.lastPaintMs = performance.now() - started;
  SEETHROUGH.paints = (SEETHROUGH.paints || 0) + 1;
}

async function paintFocus() {
  const panel = focusedPanel(), s = state.sample;
  (state.panels || []).forEach(p => p.box && p.box.classList.toggle("focused", p === panel));
  await paint($("focus-canvas"), s.thumb, panel ? mapFor(panel.maps) : null);
}

// repaints every canvas of the image; SEETHROUGH.lastPaintMs is how long it took (the budget of
// benchmarks/viewer_budget.py)
async function repaint() {
  if (!state.panels || !state.sample) return;
  const started = performance.now(), s = state.sample;
  await Promise.all(state.panels.map(p => paint(p.canvas, s.thumb, mapFor(p.maps))));
  await Promise.all((state.extraCanvases || []).map(x => paint(x.canvas, s.thumb, x.map(state.cls))));
  await paintFocus();
  updateCaptions();
  SEETHROUGH.lastPaintMs = performance.now() - started;
  SEETHROUGH.paints = (SEETHROUGH.paints || 0) + 1;
}

function hover(event, canvas) {
  const box = canvas.getBoundingClientRect();
  state.cursor = [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
  updateCaptions();
}

function updateCaptions() {
  const focus = focusedPanel();
  if (focus) {
    const encoded = mapFor(focus.maps);
    const value = encoded && state.cursor ? " — value " + (sample(decodeMap(encoded), state.cursor[0], state.cursor[1]) / 255).toFixed(3) : "";
    $("focus-caption").textContent = panelLabel(focus.model, focus.explainer) + (encoded ? value : " — not stored for this class");
    redraw($("focus-canvas"));
  }
  for (const p of state.panels || []) {
    const encoded = mapFor(p.maps);
    const parts = [el("b", {}, panelLabel(p.model, p.explainer))];
    if (!encoded) parts.push(el("div", { class: "missing" }, "not stored for this class"));
    else if (state.cursor) {
      const value = sample(decodeMap(encoded), state.cursor[0], state.cursor[1]) / 255;
      parts.push(el("div", { class: "value" }, "value " + value.toFixed(3)));
    } else parts.push(el("div", {}, "map " + encoded.h + "×" + encoded.w));
    p.caption.replaceChildren(...parts);
    redraw(p.canvas);
  }
}

// ---------------------------------------------------------------- extras
function renderExtras(s, chunk) {
  const blocks = [];
  state.extraCanvases = [];
  const small = (label, mapFor) => {
    const canvas = el("canvas", { width: SMALL_SIDE, height: SMALL_SIDE });
    state.extraCanvases.push({ canvas, map: mapFor });
    return el("figure", {}, canvas, el("figcaption", {}, label));
  };
  for (const model of state.manifest.models) {
    const extras = chunk.extras[model.name] || {};
    if (extras.heads) {
      const count = Object.values(extras.heads)[0].length;
      const figures = [];
      for (let h = 0; h < count; h++) figures.push(small("head " + (h + 1), c => (extras.heads[String(c)] || [])[h]));
      blocks.push(el("div", { class: "extras-block" }, el("h3", {}, model.name + ": each head's cross-attention of the class's query"),
        el("div", { class: "thumbs" }, figures)));
    }
    if (extras.taps) {
      blocks.push(el("div", { class: "extras-block" }, el("h3", {}, model.name + ": the cross-attention stream at each tap (class-agnostic)"),
        el("div", { class: "thumbs" }, Object.entries(extras.taps).map(([tap, map]) => small(tap, () => map)))));
    }
    if (extras.prototypes) {
      const gallery = (state.manifest.prototypes || {})[model.name] || [];
      const figures = extras.prototypes.map(p => {
        const row = gallery.find(g => g.prototype === p.prototype) || {};
        const crop = row.crop ? el("img", { src: row.crop, alt: "prototype " + p.prototype }) : el("div", { class: "missing" }, "no picture");
        const source = row.source ? el("figure", {}, el("img", { src: row.source, alt: "source of prototype " + p.prototype }),
          el("figcaption", {}, "its source image (box: the patch's receptive field)")) : "";
        return el("div", { class: "thumbs" },
          small("this: prototype " + p.prototype + " on the image", () => p.map),
          el("figure", {}, crop, el("figcaption", {}, "looks like that: class " + className(row.class) +
            " — similarity " + fmt(p.similarity) + " × weight " + fmt(p.weight))), source);
      });
      blocks.push(el("div", { class: "extras-block" }, el("h3", {}, model.name + ": this looks like that (predicted class's top prototypes)"), figures));
    }
  }
  $("extras").replaceChildren(...blocks);
}

// ---------------------------------------------------------------- curves, metrics, interventions
function auc(ys) {
  let area = 0;
  for (let i = 1; i < ys.length; i++) area += ((ys[i] || 0) + (ys[i - 1] || 0)) / 2;
  return area / (ys.length - 1);
}

// Okabe–Ito colours (colour-blind safe), one per explainer
const LINE_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

// one figure per model and metric: a line per explainer, its AUC in the legend
function curveSvg(lines, title) {
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  const height = CURVE_H + 14 * lines.length;
  svg.setAttribute("width", CURVE_W); svg.setAttribute("height", height);
  svg.setAttribute("viewBox", "0 0 " + CURVE_W + " " + height);
  const top = Math.max(1e-9, ...lines.flatMap(([, ys]) => ys.filter(v => v !== null)));
  const node = (tag, attrs) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); return n; };
  svg.append(node("path", { d: "M30 15 V" + (CURVE_H - 20) + " H" + (CURVE_W - 10), stroke: "#999", fill: "none" }));
  const label = node("text", { x: 32, y: 11, "font-size": 11 });
  label.textContent = title + " (y: score, top " + top.toFixed(2) + ")";
  svg.append(label);
  lines.forEach(([name, ys], k) => {
    const colour = LINE_COLOURS[k % LINE_COLOURS.length];
    const px = i => 30 + i / (ys.length - 1) * (CURVE_W - 40), py = v => CURVE_H - 20 - v / top * (CURVE_H - 35);
    svg.append(node("polyline", { points: ys.map((v, i) => px(i) + "," + py(v || 0)).join(" "), fill: "none",
      stroke: colour, "stroke-width": 2, "data-explainer": name }));
    const entry = node("text", { x: 32, y: CURVE_H + 4 + 14 * k, "font-size": 11, fill: colour });
    entry.textContent = name + " — AUC " + auc(ys).toFixed(3);
    svg.append(entry);
  });
  return svg;
}

function renderCurves(chunk) {
  const figures = [];
  for (const [model, perExplainer] of Object.entries(chunk.curves || {})) {
    const byMetric = {};
    for (const [explainer, perMetric] of Object.entries(perExplainer))
      for (const [metric, ys] of Object.entries(perMetric))
        if (ys && ys.length > 1) (byMetric[metric] = byMetric[metric] || []).push([explainer, ys]);
    for (const [metric, lines] of Object.entries(byMetric))
      figures.push(el("figure", { class: "curve" }, curveSvg(lines, metric), el("figcaption", {}, model)));
  }
  $("curves").replaceChildren(...figures);
}

function renderMetricTable(s) {
  const m = state.manifest;
  if (!m.metrics.length) { $("metric-table").replaceChildren(); return; }
  let rows = [];
  for (const model of m.models) for (const explainer of m.explainers)
    rows.push([model.name, explainer, ...m.metrics.map(metric => metricOf(s, [model.name, explainer, metric]))]);
  if (state.tableSort) {
    const [column, sign] = state.tableSort;
    rows.sort((a, b) => (a[column] === null) - (b[column] === null) || sign * (a[column] > b[column] ? 1 : a[column] < b[column] ? -1 : 0));
  }
  const header = ["model", "explainer", ...m.metrics].map((name, column) => el("th", {
    onclick: () => { state.tableSort = [column, state.tableSort && state.tableSort[0] === column ? -state.tableSort[1] : 1]; renderMetricTable(s); },
    title: m.lower_is_better.includes(name) ? "lower is better" : "higher is better" }, name));
  $("metric-table").replaceChildren(el("table", { class: "metrics" }, el("tr", {}, header),
    rows.map(r => el("tr", {}, r.map((v, i) => el("td", {}, i < 2 ? v : fmt(v)))))));
}

function renderInterventions(s, chunk) {
  const list = chunk.interventions || [];
  if (!list.length) { $("interventions").replaceChildren(); return; }
  const figures = list.map(x => el("figure", {}, el("img", { src: x.thumb, alt: "without part " + x.part }),
    el("figcaption", {}, "without " + x.name + " (" + x.role + "): " +
      Object.entries(x.delta).map(([model, d]) => model + " " + (d >= 0 ? "+" : "") + d.toFixed(2)).join(", "))));
  $("interventions").replaceChildren(el("div", { class: "extras-block" },
    el("h3", {}, "Each part removed: change of each model's score (logit) of the true class"), el("div", { class: "thumbs" }, figures)));
}

// ---------------------------------------------------------------- leaderboard and notes
function renderLeaderboard() {
  const b = state.manifest.benchmark, families = b.leaderboard.length ? Object.keys(b.leaderboard[0].families) : [];
  const cell = f => f ? fmt(f.mean) + (f.low !== null && f.low !== undefined ? " [" + fmt(f.low) + ", " + fmt(f.high) + "]" : "") : "—";
  const board = el("table", { class: "metrics" }, el("tr", {}, ["rank", "model", "explainer", ...families, "mean"].map(h => el("th", {}, h))),
    b.leaderboard.map((row, i) => el("tr", {}, el("td", {}, i + 1), el("td", {}, row.model), el("td", {}, row.explainer),
      families.map(f => el("td", {}, cell(row.families[f]))), el("td", {}, fmt(row.score)))));
  const validity = el("table", { class: "metrics" }, el("tr", {}, ["metric", "can tell", "separated pairs"].map(h => el("th", {}, h))),
    Object.entries(b.validity).map(([metric, v]) => el("tr", {}, el("td", {}, metric), el("td", {}, v.tells ? "yes" : "no"),
      el("td", {}, v.separated + "/" + v.pairs))));
  const radar = Object.entries(b.radar).map(([model, src]) => el("figure", {}, el("img", { src, alt: "radar " + model, width: 320 }),
    el("figcaption", {}, model)));
  const protos = Object.entries(b.prototypes || {}).map(([model, p]) => el("li", {}, model + ": " + fmt(p.on_evidence) +
    " of " + p.prototypes + " prototypes on an evidence part (chance " + fmt(p.chance) + ")"));
  $("leaderboard").replaceChildren(el("h2", {}, "Leaderboard"), board, el("h2", {}, "Can this metric tell?"), validity,
    protos.length ? el("div", {}, el("h2", {}, "Prototypes on evidence"), el("ul", {}, protos)) : "",
    el("div", { class: "radars" }, radar));
}

function renderNotes() {
  $("notes").replaceChildren(el("h2", {}, "Not shown"), el("ul", { class: "notes" }, state.manifest.errors.map(e => el("li", {}, e))));
}
