// The See view as a node-link picture (CNN Explainer's idea, plain JavaScript): the input, then each layer's
// units in a column; click a unit and the units of the previous layer that feed it light up, joined by links
// (thicker = a larger contribution; red adds, blue subtracts), its receptive field is outlined on the input,
// and the filter's weights show beside. Under the top-5 bars, each class opens its saliency or Grad-CAM.
// Every number comes from the server (cnnlab/viz/activations.py, cnnlab/viz/evidence.py).
"use strict";

// fold: the units a column shows before its "all N" button (16 keeps a 64-channel layer's column short)
const see = { seen: null, body: null, run: null, seq: 0, strokeAt: null, unit: null, expanded: new Set(), fold: 16 };

// ------------------------------------------------------------------ the canvas
const canvas = $("#canvas"), ctx = canvas.getContext("2d");
function clearCanvas() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
clearCanvas();
let drawing = false, last = null, seeTimer = null;
canvas.addEventListener("pointerdown", (e) => { drawing = true; last = [e.offsetX, e.offsetY]; stroke(e); });
canvas.addEventListener("pointermove", (e) => { if (drawing) stroke(e); });
window.addEventListener("pointerup", () => {
  if (!drawing) return;
  drawing = false; clearTimeout(seeTimer); seeCanvas();
});
function stroke(e) {
  ctx.strokeStyle = "#fff"; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.lineWidth = +$("#brush").value;
  ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(e.offsetX, e.offsetY); ctx.stroke();
  last = [e.offsetX, e.offsetY];
  see.strokeAt = performance.now();  // the clock for "last stroke to everything painted"
  clearTimeout(seeTimer); seeTimer = setTimeout(seeCanvas, 150);  // probabilities update as you draw
}
$("#clear-canvas").addEventListener("click", () => { clearCanvas(); clearSee(); caption("Draw a digit, or show a test image."); });
const caption = (text) => { $("#canvas-caption").textContent = text; };
$("#upload-image").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => seeImage({ image: reader.result }, null, `uploaded: ${file.name}`);
  reader.onerror = () => { clearSee(); $("#topk").textContent = `cannot read ${file.name}`; };
  reader.readAsDataURL(file);
});
$("#show-test").addEventListener("click", () => seeImage({ test_index: +$("#test-index").value }));
const seeCanvas = () => seeImage({ image: canvas.toDataURL("image/png") }, see.strokeAt, "your drawing");

async function loadSeeRuns() {
  const rows = (await api("/api/runs")).filter((r) => r.status === "finished");
  const current = $("#see-run").value;
  $("#see-run").replaceChildren(...rows.map((r) => el("option", { value: r.id }, `${r.id} (${r.data}, ${(r.final_acc ?? 0).toFixed(3)})`)));
  if (current) $("#see-run").value = current;
}
$("#see-run").addEventListener("change", clearSee);

// ------------------------------------------------------------------ one image through every layer
function clearSee() {  // nothing stale stays on screen: top-5, maps, links, unit detail, overlays
  see.seq++; see.seen = null; see.unit = null;
  for (const id of ["#topk", "#activations", "#detail", "#evidence"]) $(id).replaceChildren();
  delete $("#page-see").dataset.paintMs;
}

// the canvas always shows what is being classified: a test image or an upload is painted on it (at the
// network's own resolution, enlarged), so drawing on afterwards draws over that image
function paintOnCanvas(src) {
  const img = new Image();
  img.onload = () => { clearCanvas(); ctx.imageSmoothingEnabled = false; ctx.drawImage(img, 0, 0, canvas.width, canvas.height); };
  img.src = src;
}

async function seeImage(body, strokeAt = null, what = null) {
  const run = $("#see-run").value;
  if (!run) { clearSee(); $("#topk").textContent = "Train a model first (or pick a finished run)."; return; }
  const seq = ++see.seq;
  try {
    const seen = await api(`/api/runs/${encodeURIComponent(run)}/see`, body);
    if (seq !== see.seq) return;  // a newer stroke (or Clear) came since: this answer is stale
    Object.assign(see, { seen, body, run });
    if (body.test_index !== undefined) {
      paintOnCanvas(seen.input);
      caption(`test image #${body.test_index}, labelled ${seen.label}; the network says ${seen.top[0].class}`);
    } else if (strokeAt === null) {
      paintOnCanvas(seen.input);
      caption(what || "your image");
    } else caption(`${what}: the network says ${seen.top[0].class}`);
    paintTop(seen);
    paintNet(seen);
    $("#evidence").replaceChildren();
    see.evidence = null;
    await Promise.all([...document.querySelectorAll("#activations img")].map((i) => i.decode().catch(() => {})));
    await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
    if (seq !== see.seq) return;
    if (strokeAt !== null) $("#page-see").dataset.paintMs = Math.round(performance.now() - strokeAt);
    if (see.unit) selectUnit(see.unit.layer, see.unit.channel, see.unit.y, see.unit.x);  // follow the new image
  } catch (e) {
    if (seq !== see.seq) return;
    clearSee();
    $("#topk").textContent = e.message;
  }
}

function paintTop(seen) {
  $("#topk").replaceChildren(...seen.top.map((t) => el("div", { class: "bar" }, el("span", {}, t.class),
    el("div", { class: "fill", style: `width:${Math.max(2, t.p * 100)}%` }), el("span", {}, t.p.toFixed(3)),
    el("span", { class: "why" },
      el("button", { class: "evidence", "data-kind": "saliency", "data-class": t.index, title: `which pixels made it say ${t.class}: |d score / d pixel|`,
        onclick: () => showEvidence(t.index, "saliency") }, "saliency"),
      el("button", { class: "evidence", "data-kind": "gradcam", "data-class": t.index, title: `where the last conv layer saw ${t.class}`,
        onclick: () => showEvidence(t.index, "gradcam") }, "Grad-CAM")))));
}

function unitNode(layer, channel, child) {
  child.classList.add("unit");
  child.dataset.layer = layer; child.dataset.channel = channel;
  child.addEventListener("click", () => selectUnit(layer, channel));
  return child;
}

function barWidth(v, values) {  // the largest value the longest bar (logits are often all negative)
  const lo = Math.min(...values, 0), hi = Math.max(...values);
  return hi > lo ? 4 + 96 * (v - lo) / (hi - lo) : 4;
}

function paintNet(seen) {
  const input = el("div", { class: "act-row", "data-layer": "input" }, el("div", { class: "name" }, "input"),
    el("div", { class: "rf-wrap" }, el("img", { id: "see-input", src: seen.input, title: "the input the network sees" })));
  const columns = seen.layers.map((layer, k) => {
    const count = layer.channels ? layer.channels.length + (layer.more || 0) : layer.values.length;
    const open = see.expanded.has(layer.index) || count <= see.fold;
    const shown = open ? count : see.fold;
    const last = k === seen.layers.length - 1;
    const units = layer.channels
      ? layer.channels.slice(0, shown).map((src, c) => unitNode(layer.index, c, el("img", { src, title: `channel ${c}` })))
      : layer.values.slice(0, shown).map((v, c) => unitNode(layer.index, c, el("div", { class: "vunit", title: `unit ${c}: ${v}` },
        el("span", {}, last && seen.classes[c] !== undefined ? seen.classes[c] : String(c)),
        el("i", { style: `width:${barWidth(v, layer.values)}%`, class: v < 0 ? "neg" : "" }))));
    return el("div", { class: layer.channels ? "act-row" : "act-row vector", "data-layer": layer.index },
      el("div", { class: "name", title: layer.layer }, `${layer.index} ${layer.layer}`),
      el("div", { class: "name" }, (layer.map_shape || layer.shape).join("x")),
      el("div", { class: "units" }, ...units),
      count > shown ? el("button", { class: "expand", onclick: () => openLayer(layer.index) }, `all ${count}`) : null);
  });
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.id = "links";
  $("#activations").replaceChildren(input, ...columns, svg);
  sizeUnits(seen);
}

// maps as large as the row allows: the map columns (two units wide) share what the vector columns and the
// gaps leave, between 40 px (a narrow window wraps the columns instead) and 88 px
function sizeUnits(seen) {
  const host = $("#activations");
  const maps = seen.layers.filter((l) => l.channels).length, vectors = seen.layers.length - maps;
  const free = host.clientWidth - 110 - vectors * 142 - (maps + vectors) * 22;
  let unit = Math.max(40, Math.min(88, Math.floor((free / Math.max(maps, 1) - 16) / 2)));
  host.style.setProperty("--unit", `${unit}px`);
  // the estimate leaves out paddings and borders: shrink until the last column (the class scores) is in view
  while (unit > 40 && host.scrollWidth > host.clientWidth) {
    unit -= 2;
    host.style.setProperty("--unit", `${unit}px`);
  }
}

async function openLayer(index) {  // every channel of a column: the first answer carries 32 a layer
  const k = see.seen.layers.findIndex((l) => l.index === index);
  if (k >= 0 && see.seen.layers[k].more) {
    const seq = see.seq;
    const full = await api(`/api/runs/${encodeURIComponent(see.run)}/see/layer`, { ...see.body, layer: index });
    if (seq !== see.seq) return;
    see.seen.layers[k] = full;
  }
  see.expanded.add(index);
  paintNet(see.seen);
  if (see.unit) drawUnit(see.unit);
}

// ------------------------------------------------------------------ a unit: its field, what feeds it
async function selectUnit(layer, channel, y = null, x = null) {
  if (!see.seen) return;
  const seq = see.seq;
  try {
    const unit = await api(`/api/runs/${encodeURIComponent(see.run)}/see/unit`, { ...see.body, layer, channel, y, x });
    if (seq !== see.seq) return;
    see.unit = unit;
    drawUnit(unit);
  } catch (e) { $("#detail").textContent = e.message; }
}

function nodeOf(layer, channel) {
  if (layer === "input") return $("#see-input");
  return document.querySelector(`#activations .unit[data-layer="${layer}"][data-channel="${channel}"]`);
}

async function drawUnit(unit) {
  // the feeding units must be on screen: open their column if one is folded away
  const hidden = unit.feeding.some((f) => unit.previous !== "input" && !nodeOf(unit.previous, f.channel));
  if (hidden && !see.expanded.has(unit.previous)) { await openLayer(unit.previous); return; }  // which draws it again
  if (!nodeOf(unit.layer, unit.channel) && !see.expanded.has(unit.layer)) { await openLayer(unit.layer); return; }
  document.querySelectorAll("#activations .selected, #activations .feeder").forEach((n) => n.classList.remove("selected", "feeder"));
  const target = nodeOf(unit.layer, unit.channel);
  target.classList.add("selected");
  const [, h, w] = unit.input_shape, f = unit.field;
  const box = () => el("div", { class: "rf", style: `left:${f.left / w * 100}%;top:${f.top / h * 100}%;` +
    `width:${(f.right - f.left + 1) / w * 100}%;height:${(f.bottom - f.top + 1) / h * 100}%` });
  $("#see-input").parentNode.querySelectorAll(".rf").forEach((n) => n.remove());
  $("#see-input").parentNode.append(box());
  // links from the feeding units, strongest first (the server sorts them)
  const host = $("#activations"), svg = $("#links"), origin = host.getBoundingClientRect();
  svg.setAttribute("width", host.scrollWidth); svg.setAttribute("height", host.scrollHeight);
  svg.replaceChildren();
  const strongest = Math.max(...unit.feeding.map((g) => Math.abs(g.contribution)), 1e-9);
  const to = target.getBoundingClientRect();
  for (const g of unit.feeding) {
    const from = nodeOf(unit.previous, g.channel);
    if (!from) continue;
    if (unit.previous !== "input") from.classList.add("feeder");
    const a = from.getBoundingClientRect();
    const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
    const at = (r, side) => [r[side] - origin.left + host.scrollLeft, r.top + r.height / 2 - origin.top + host.scrollTop];
    const [x1, y1] = at(a, "right"), [x2, y2] = at(to, "left");
    Object.entries({ x1, y1, x2, y2, "stroke-width": 0.75 + 4 * Math.abs(g.contribution) / strongest,
      stroke: g.contribution >= 0 ? "#d62728" : "#1f77b4", "stroke-opacity": 0.75 }).forEach(([k, v]) => line.setAttribute(k, v));
    svg.append(line);
  }
  paintDetail(unit, box);
}

function paintDetail(unit, box) {
  const layer = see.seen.layers.find((l) => l.index === unit.layer);
  const where = unit.y === null ? "" : ` at (${unit.y}, ${unit.x})`;
  const f = unit.field;
  const map = layer.channels ? el("img", { class: "map", src: layer.channels[unit.channel],
    title: "click a position to look at that unit", onclick: (e) => {
      const [, rows, cols] = layer.map_shape;
      const r = e.target.getBoundingClientRect();
      selectUnit(unit.layer, unit.channel, Math.min(rows - 1, Math.floor((e.clientY - r.top) / r.height * rows)),
        Math.min(cols - 1, Math.floor((e.clientX - r.left) / r.width * cols)));
    } }) : null;
  const mark = map && unit.y !== null ? el("div", { class: "rf spot", style: `left:${unit.x / layer.map_shape[2] * 100}%;` +
    `top:${unit.y / layer.map_shape[1] * 100}%;width:${100 / layer.map_shape[2]}%;height:${100 / layer.map_shape[1]}%` }) : null;
  const previous = unit.previous === "input" ? null : see.seen.layers.find((l) => l.index === unit.previous);
  const feeders = unit.feeding.map((g) => el("div", { class: "feed" },
    el("img", { src: previous && previous.channels ? previous.channels[g.channel] : see.seen.input, title: `channel ${g.channel}` }),
    g.weights_png ? el("img", { class: "weights", src: g.weights_png, title: "the filter's weights for this input (red +, blue -)\n" +
      (g.weights || []).map((row) => row.map((v) => v.toFixed(2)).join(" ")).join("\n") }) : el("span", {}, g.weights ? g.weights[0][0].toFixed(3) : ""),
    el("span", { class: g.contribution >= 0 ? "pos" : "neg" }, `${unit.previous === "input" ? "input" : `ch ${g.channel}`}: ${g.contribution >= 0 ? "+" : ""}${g.contribution.toFixed(3)}`)));
  const last = see.seen.layers[see.seen.layers.length - 1] === layer;
  const named = last && see.seen.classes[unit.channel] !== undefined ? ` (class ${see.seen.classes[unit.channel]})` : "";
  $("#detail").replaceChildren(el("h3", {}, `layer ${unit.layer}, ${layer.channels ? "channel" : "unit"} ${unit.channel}${named}${where}`),
    el("div", { class: "name" }, `${unit.desc} · value ${unit.value.toFixed(3)}`),
    el("div", { class: "pair" },
      el("figure", {}, el("div", { class: "rf-wrap" }, el("img", { class: "map", src: see.seen.input }), box()),
        el("figcaption", {}, `sees input rows ${f.top}–${f.bottom}, columns ${f.left}–${f.right} (field ${f.height}x${f.width})`)),
      map ? el("figure", {}, el("div", { class: "rf-wrap" }, map, mark), el("figcaption", {}, "its map")) : null),
    el("div", { class: "name" }, unit.feeding.length ? `fed by ${unit.previous === "input" ? "the input" : `layer ${unit.previous}`}, strongest first (weight x input, summed):` :
      "a block of several paths: no single filter feeds it"),
    el("div", { class: "feeding" }, ...feeders));
}
window.addEventListener("resize", () => {
  if (see.seen) sizeUnits(see.seen);
  if (see.unit) drawUnit(see.unit);
});

// ------------------------------------------------------------------ class evidence
// which pixels made it say a class: saliency and Grad-CAM side by side, each with a sentence a student reads
async function showEvidence(classIndex, kind) {
  const seq = see.seq;
  const box = $("#evidence");
  box.replaceChildren(el("div", { class: "name" }, "working…"));
  try {
    const ev = await api(`/api/runs/${encodeURIComponent(see.run)}/see/evidence`, { ...see.body, class_index: classIndex });
    if (seq !== see.seq) return;
    const name = `“${ev.class}”`;
    const figure = (shown, title, text) => el("figure", { class: shown === kind ? "asked" : null },
      el("img", { class: `overlay ${shown}`, src: ev[shown], alt: `${title} for ${ev.class}` }),
      el("figcaption", {}, el("b", {}, title), " ", text));
    const layer = ev.gradcam_layer ? ev.gradcam_layer.split(" ")[0] : null;
    box.replaceChildren(el("h3", {}, `Why ${name}?`),
      el("div", { class: "pair" },
        ev.gradcam ? figure("gradcam", "Grad-CAM:", `the regions that made the network say ${name}. Bright where the ` +
          `last feature maps (layer ${layer}) found something that raised its score for ${name}, enlarged to the image.`)
          : el("p", { class: "name" }, "Grad-CAM needs a conv layer; this model has none."),
        figure("saliency", "Saliency:", `the pixels whose change would move the score for ${name} most. ` +
          "Bright: a small change there matters.")));
  } catch (e) { if (seq === see.seq) box.textContent = e.message; }
}
