// cnnlab's page: plain JavaScript over the JSON API (/docs). Every check, number and verdict comes from the
// server, which calls the same Python functions as the CLI; nothing here re-implements them.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) node.append(kid);
  return node;
};
const fmt = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));

async function api(path, body) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; ")
      : data.detail;
    throw new Error(detail || `${response.status}`);
  }
  return data;
}

const state = { info: null, layers: [], schemas: {}, check: null, run: null, source: null, changed: [], parent: null };

// ------------------------------------------------------------------ pages
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.page)));
function show(page) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.page === page));
  document.querySelectorAll(".page").forEach((p) => p.classList.toggle("active", p.id === `page-${page}`));
  if (page === "runs") loadRuns();
  if (page === "see") loadSeeRuns();
  if (page === "train") planRun();
}

// ------------------------------------------------------------------ Build
// one data choice: a built-in set, an image folder on this machine, or "your folder" (a path typed in)
const YOUR_FOLDER = "(your folder)";
const dataName = () => ($("#data").value === YOUR_FOLDER ? $("#data-path").value.trim() : $("#data").value);
function setData(value) {  // a name or a folder path; a path not in the menu is "your folder ..."
  const known = [...$("#data").options].some((o) => o.value === value && o.value !== YOUR_FOLDER);
  $("#data").value = known ? value : YOUR_FOLDER;
  $("#data-path").value = known ? "" : value;
  $("#data-path-label").hidden = known;
  if ($("#start-folder")) $("#start-folder").value = known ? "" : value;
  markData();
  recheck();
}

function layerSpec() {
  return state.layers.map(({ kind, args }) => (Object.keys(args).length ? { [kind]: args } : kind));
}

function fromSpec(layers) {
  return layers.map((entry) => {
    if (typeof entry === "string") return { kind: entry, args: {} };
    const [kind, value] = Object.entries(entry)[0];
    const main = state.schemas[kind] && state.schemas[kind]["x-main"];
    if (value === null || value === undefined) return { kind, args: {} };
    if (typeof value === "object" && !Array.isArray(value)) return { kind, args: { ...value } };
    return { kind, args: main ? { [main]: value } : {} };
  });
}

function parseValue(text) {  // what a user types in an argument box, read as YAML would read it
  const t = text.trim();
  if (t === "") return undefined;
  if (/^-?\d+$/.test(t)) return parseInt(t, 10);
  if (/^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(t)) return parseFloat(t);
  if (t === "true" || t === "false") return t === "true";
  if (t.startsWith("[")) { try { return JSON.parse(t); } catch (e) { return t; } }
  return t;
}

function argInput(kind, name, prop, value, onchange) {
  const type = prop.type || (prop.anyOf ? null : "string");
  let input;
  const choices = prop.enum || (prop.anyOf && prop.anyOf.every((o) => o.enum || o.type === "null") &&
    prop.anyOf.flatMap((o) => o.enum || []));
  if (choices) {
    input = el("select", {}, ...(prop.enum && prop.default !== undefined && prop.default !== null ? [] : [el("option", { value: "" }, "")]),
      ...choices.map((v) => el("option", { value: v }, String(v))));
    input.value = value ?? prop.default ?? "";
  } else if (type === "boolean") {
    input = el("input", { type: "checkbox" });
    input.checked = value ?? prop.default ?? false;
  } else {
    input = el("input", { type: "text", placeholder: prop.default === undefined || prop.default === null ? "" :
      typeof prop.default === "string" ? prop.default : JSON.stringify(prop.default) });
    if (value !== undefined) input.value = typeof value === "object" ? JSON.stringify(value) : String(value);
  }
  input.dataset.arg = name;
  const read = () => onchange(input.type === "checkbox" ? input.checked : input.tagName === "SELECT" ?
    (input.value || undefined) : parseValue(input.value));
  input.addEventListener("change", read);
  if (input.type === "text") input.addEventListener("input", read);  // applied as you type (recheck waits 300 ms)
  return el("label", {}, name, input);
}

const NESTED = ["layers", "shortcut", "branches"];  // arguments that hold layers: edited as YAML

function nestedText(name, value) {
  if (name === "branches") return `${(value || []).length} branches (edit as YAML)`;
  if (name === "shortcut") return value ? `shortcut: ${value.length} layers` : "";
  return `${(value || []).length} layers (edit as YAML)`;
}

// changed: positions ("3") a fix or a prescription just added or edited, highlighted until the next edit
function renderLayers(changed = []) {
  state.check = null;  // the layer list changed: no stale shapes until the server has checked it again
  state.changed = changed;
  if (!changed.length) $("#fix-note").textContent = "";
  const list = $("#layers");
  list.replaceChildren();
  state.layers.forEach((layer, i) => {
    const schema = state.schemas[layer.kind] || { properties: {} };
    const args = Object.entries(schema.properties || {}).map(([name, prop]) =>
      NESTED.includes(name) ? el("span", { class: "nested" }, nestedText(name, layer.args[name]))
        : argInput(layer.kind, name, prop, layer.args[name], (v) => {
          if (v === undefined) delete layer.args[name]; else layer.args[name] = v;
          editedLayers();
          recheck();
        }));
    list.append(el("li", { "data-index": i + 1, class: changed.includes(String(i + 1)) ? "changed" : null },
      el("span", { class: "handle", title: "drag to reorder" }, "⋮⋮"),
      el("span", { class: "pos" }, String(i + 1)),
      el("span", { class: "kind" }, layer.kind),
      el("span", { class: "args" }, args),
      el("span", { class: "shape" }, ""),
      el("span", { class: "params" }, ""),
      el("button", { class: "remove", title: "remove", onclick: () => { state.layers.splice(i, 1); renderLayers(); nameModel(); recheck(); } }, "×")));
  });
  paintCheck();
}

// an edit in place: what a fix or a prescription changed is no longer news, and the name follows the layers
function editedLayers() {
  state.changed = [];
  $("#fix-note").textContent = "";
  document.querySelectorAll("#layers li.changed").forEach((li) => li.classList.remove("changed"));
  nameModel();
}

// a model's name says how it differs from the template it started from, so Runs and Compare tell runs apart:
// course-net-5f (its convs' filters), course-net-6layers, or the first differing argument (course-net-rate0.4)
function variantName() {
  const t = state.template;
  if (!t) return null;
  const now = layerSpec();
  if (JSON.stringify(now) === JSON.stringify(t.layers)) return t.name;
  const was = fromSpec(t.layers);
  const filters = (ls) => ls.filter((l) => l.kind === "conv").map((l) => l.args.filters);
  const a = filters(was), b = filters(state.layers);
  if (b.length && JSON.stringify(a) !== JSON.stringify(b)) return `${t.name}-${b.join("-")}f`;
  if (was.length !== state.layers.length) return `${t.name}-${state.layers.length}layers`;
  for (let i = 0; i < was.length; i++) {
    const x = was[i], y = state.layers[i];
    if (x.kind !== y.kind) return `${t.name}-${i + 1}${y.kind}`;
    for (const key of new Set([...Object.keys(x.args), ...Object.keys(y.args)])) {
      if (JSON.stringify(x.args[key]) !== JSON.stringify(y.args[key])) {
        return `${t.name}-${key}${String(y.args[key] ?? "default").replace(/[^A-Za-z0-9.+-]+/g, "")}`;
      }
    }
  }
  return `${t.name}-edited`;
}

function nameModel() {  // unless the user named the model themselves
  const name = variantName();
  if (name && !state.namedByUser) $("#model-name").value = name;
}

let checkTimer = null;
function recheck() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(async () => {
    const model = { name: $("#model-name").value || "model", layers: layerSpec() };
    try {
      state.check = state.layers.length ? await api("/api/check", { model, data: dataName() }) : null;
      state.checkError = null;
    } catch (e) {
      state.check = null;
      state.checkError = e.message;
    }
    paintCheck();
    loadWeights();
    if ($("#page-train").classList.contains("active")) planRun();
  }, 300);  // 300 ms after the last keystroke: typing "64" checks once
}

function paintCheck() {
  const check = state.check;
  // while a check is on its way the diagram keeps its last picture, so it does not flicker at every keystroke
  if (check || state.checkError || !state.layers.length) Diagram.draw($("#diagram"), state.layers, check, state.changed, selectLayer);
  const items = [...document.querySelectorAll("#layers li")];
  const errorBox = $("#build-error");
  items.forEach((li) => { li.classList.remove("bad", "after-bad", "warned"); li.querySelectorAll(".layer-note").forEach((n) => n.remove()); });
  errorBox.hidden = true;
  if (!check) {
    $("#totals").textContent = state.layers.length ? "" : "Add layers from the palette, or start from a template.";
    if (state.checkError) { errorBox.hidden = false; errorBox.textContent = state.checkError; }
    $("#findings").replaceChildren();
    return;
  }
  const rows = Object.fromEntries(check.layers.map((r) => [r.index, r]));
  items.forEach((li) => {
    const row = rows[li.dataset.index];
    li.querySelector(".shape").textContent = row ? row.out_shape : "";
    li.querySelector(".params").textContent = row ? fmt(row.params) : "";
    for (const f of (row ? row.findings : [])) {
      li.classList.add("warned");
      li.append(el("div", { class: "layer-note warning" }, `⚠ ${f.message} — fix: ${f.fix}`, fixButton(f)));
    }
  });
  if (check.error) {
    const bad = items.find((li) => li.dataset.index === check.error.layer);
    if (bad) {
      bad.classList.add("bad");
      bad.append(el("div", { class: "layer-note error" }, check.error.message.replace(/^.*?: layer \d+: /, "")));
      items.slice(items.indexOf(bad) + 1).forEach((li) => li.classList.add("after-bad"));
    }
    errorBox.hidden = false;
    errorBox.textContent = check.error.message;
    $("#totals").textContent = "The model cannot be built yet.";
  } else {
    const t = check.totals;
    $("#totals").replaceChildren(
      el("div", {}, `Input ${check.input_shape.join("x")} → ${check.num_classes} classes`),
      el("div", { id: "total-params" }, `Total params: ${fmt(t.params)}`),
      el("div", {}, `Trainable: ${fmt(t.trainable)} · non-trainable: ${fmt(t.non_trainable)}`),
      el("div", {}, `MACs per image: ${fmt(t.macs)}`));
  }
  $("#findings").replaceChildren(...(check.findings.length ? check.findings.map((f) =>
    el("div", { class: "finding", "data-rule": f.rule }, el("b", {}, `[${f.rule}] layer ${f.layers.join(", ")}`), ` ${f.message}`,
      el("div", {}, `why: ${f.why}`), el("div", {}, `fix: ${f.fix}`, fixButton(f)))) : [el("div", {}, "no findings")]));
}

// "Start from": random weights, ImageNet's (offered by the server only for a *-imagenet network), or a finished
// run on this server whose model fits (cnnlab.app.weights decides; runs of other models are counted, with why)
let weightsAsked = 0, finetuneDefaults = false;
async function loadWeights() {
  const asked = ++weightsAsked;
  let sources;
  try {
    sources = await api("/api/weights", { model: { name: $("#model-name").value || "model", layers: layerSpec() }, data: dataName() });
  } catch (e) { sources = { imagenet: false, runs: [], error: e.message }; }
  if (asked !== weightsAsked) return;
  const select = $("#weights"), was = select.value;
  const fits = sources.runs.filter((r) => r.fits), others = sources.runs.filter((r) => !r.fits);
  const acc = (r) => (typeof r.test_acc === "number" ? `, test ${r.test_acc.toFixed(3)}` : "");
  select.replaceChildren(el("option", { value: "" }, "random weights"),
    sources.imagenet ? el("option", { value: "imagenet" }, "ImageNet weights") : null,
    el("optgroup", { label: "a past run" }, ...(fits.length ? fits.map((r) => el("option", { value: r.id }, `${r.id} (${r.name}${acc(r)})`))
      : [el("option", { value: "-", disabled: "" }, "no finished run of this model yet")])));
  const still = [...select.options].some((o) => o.value === was && !o.disabled);
  select.value = still ? was : "";
  const note = $("#weights-note");
  note.textContent = [was && !still ? `${was === "imagenet" ? "ImageNet's weights do" : `run ${was} does`} not fit this model; random weights.` : "",
    sources.imagenet_why || "",
    others.length ? `${others.length} finished run${others.length === 1 ? "" : "s"} of other models not listed` : ""].filter(Boolean).join(" · ");
  note.title = others.map((r) => `${r.id}: ${r.why}`).join("\n");
  if (sources.finetune && !finetuneDefaults) {  // cnnlab's defaults for the schedule, from the server's schema
    finetuneDefaults = true;
    if (typeof sources.finetune.head_epochs === "number") $("#finetune-head").value = sources.finetune.head_epochs;
  }
  showFinetune();
}
function showFinetune() {
  $("#finetune-box").hidden = !$("#weights").value;
  $("#finetune-head-label").hidden = $("#finetune-mode").value !== "head";
}
$("#weights").addEventListener("change", () => { $("#weights-note").textContent = ""; showFinetune(); planRun(); });
$("#finetune-mode").addEventListener("change", showFinetune);

// a finding whose fix is mechanical gets a button; the server applies the edit (cnnlab.app.models.apply_fix),
// so the page and `cnnlab lint` never disagree on what the fix is
function fixButton(finding) {
  if (!finding.edit) return null;
  return el("button", { class: "fix", "data-rule": finding.rule, onclick: () => applyFix(finding) }, "Apply fix");
}

async function applyFix(finding) {
  try {
    const fixed = await api("/api/model/fix", { model: { layers: layerSpec() }, data: dataName(), rule: finding.rule,
      layers: finding.layers });
    state.layers = fromSpec(fixed.layers);
    renderLayers(fixed.changed);
    $("#fix-note").textContent = `What changed: ${fixed.description}.`;
    recheck();
  } catch (e) { $("#fix-note").textContent = e.message; }
}

// a block clicked in the diagram: its layer in the list, scrolled to and highlighted (and the block outlined)
function selectLayer(index) {
  document.querySelectorAll("#layers li").forEach((li) => li.classList.toggle("selected", li.dataset.index === index));
  const li = document.querySelector(`#layers li[data-index="${index}"]`);
  if (li) li.scrollIntoView({ block: "center", behavior: "smooth" });
  Diagram.select($("#diagram"), index);
}

async function loadTemplate(name) {
  try {
    const t = await api(`/api/templates/${encodeURIComponent(name)}?data=${encodeURIComponent(dataName())}`);
    state.layers = fromSpec(t.layers);
    state.template = { name, layers: layerSpec() };
    state.namedByUser = false;
    $("#model-name").value = name;
    $("#template").value = name;  // the menu says what is loaded
    $("#start-network").value = name;
    renderLayers();
    recheck();
  } catch (e) { $("#status-line").textContent = e.message; }
}

async function initBuild() {
  const info = state.info;
  for (const option of info.layer_schema.$defs.Layer.oneOf) {
    const kind = Object.keys(option.properties)[0];
    state.schemas[kind] = option.properties[kind];
    $("#palette").append(el("button", { "data-kind": kind, onclick: () => {
      const args = {};
      const required = state.schemas[kind].required || [];
      // a new conv keeps the map's size (padding same, as Keras examples write it) with 32 filters: a
      // useful layer at once, where `valid` shrinks the map by 2 pixels at every conv
      if (kind === "conv") Object.assign(args, { filters: 32, padding: "same" });
      if (kind.endsWith("dropout")) args.rate = 0.25;  // 0.5 (the schema's default) is for dense heads only
      if (required.includes("units")) args.units = "classes";
      if (required.includes("factor")) args.factor = 1;
      if (required.includes("layers")) args.layers = ["relu"];
      if (required.includes("branches")) args.branches = [["relu"], []];
      state.layers.push({ kind, args });
      renderLayers(); nameModel(); recheck();
    } }, `+ ${kind}`));
  }
  const datasets = info.present.length ? info.present : info.datasets;
  $("#data").replaceChildren(...(info.folders || []).map((f) => el("option", { value: f.path }, f.label)),
    ...datasets.map((d) => el("option", { value: d }, info.labels[d] || d)),
    el("option", { value: YOUR_FOLDER }, "your folder of images ..."));
  // the digit sample first where the data folder has it: it trains in seconds and is what See draws on
  const sample = (info.folders || []).find((f) => f.name === "mnist-sample") || (info.folders || [])[0];
  $("#data").value = sample ? sample.path : datasets[0];
  $("#data").addEventListener("change", () => {
    $("#data-path-label").hidden = $("#data").value !== YOUR_FOLDER;
    markData(); recheck();
  });
  $("#data-path").addEventListener("input", () => { markData(); recheck(); });
  $("#template").replaceChildren(el("option", { value: "" }, "(your own layers)"),
    ...info.templates.map((t) => el("option", { value: t }, t)),
    ...info.models.map((m) => el("option", { value: m }, `${m} (named architecture)`)));
  $("#template").addEventListener("change", (e) => e.target.value && loadTemplate(e.target.value));
  $("#model-name").addEventListener("change", () => { state.namedByUser = $("#model-name").value.trim() !== ""; recheck(); });
  Sortable.create($("#layers"), { handle: ".handle", animation: 120, onEnd: (evt) => {
    const [moved] = state.layers.splice(evt.oldIndex, 1);
    state.layers.splice(evt.newIndex, 0, moved);
    renderLayers(); nameModel(); recheck();
  } });
  $("#download-yaml").addEventListener("click", async () => {
    const { yaml } = await api("/api/model/yaml", { model: { layers: layerSpec() }, name: $("#model-name").value || "model", data: dataName() });
    const a = el("a", { href: URL.createObjectURL(new Blob([yaml], { type: "text/yaml" })), download: `${$("#model-name").value || "model"}.yaml` });
    document.body.append(a); a.click(); a.remove();
  });
  $("#upload-yaml").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    try {
      const model = await api("/api/model/parse", { text: await file.text(), data: dataName() });
      state.layers = fromSpec(model.layers);
      state.template = { name: model.name, layers: layerSpec() };
      $("#model-name").value = model.name;
      $("#template").value = "";  // the menu says what is loaded: the user's own file
      renderLayers(); recheck();
    } catch (err) { $("#build-error").hidden = false; $("#build-error").textContent = err.message; }
  });
  renderLayers();
}

// ------------------------------------------------------------------ Train
let charts = null;
function makeCharts() {
  const opts = (title, label) => ({ title, width: chartWidth($("#chart-loss")), height: 260, scales: { x: { time: false } },
    axes: [{ label: "epoch" }, { label }],
    series: [{}, { label: "train (running, per batch)", stroke: "#9fb7e8", points: { show: false }, spanGaps: true },
      { label: "train (epoch)", stroke: "#2b6cde", width: 2, spanGaps: true, points: { show: true, size: 6 } },
      { label: "val/test (epoch)", stroke: "#d9480f", width: 2, spanGaps: true, points: { show: true, size: 6 } }] });
  $("#chart-loss").replaceChildren(); $("#chart-acc").replaceChildren();
  const data = () => [[], [], [], []];
  charts = { loss: new uPlot(opts("Loss", "loss"), data(), $("#chart-loss")),
    acc: new uPlot(opts("Accuracy", "accuracy"), data(), $("#chart-acc")), points: { loss: data(), acc: data() } };
}

// a chart as wide as its box (the box is half the page on a wide screen, all of it on a narrow one)
function chartWidth(box) {
  const width = box.parentElement.clientWidth;
  return Math.max(240, Math.floor(width >= 900 ? (width - 16) / 2 - 12 : width - 12));
}
window.addEventListener("resize", () => {
  if (!charts) return;
  for (const key of ["loss", "acc"]) charts[key].setSize({ width: chartWidth($("#chart-loss")), height: 260 });
});

// what the next run will train, on what, with which augmentation, and a strip of what it will see: the server
// resolves the config as the run will (`auto` is no augmentation in a short run), so the page never guesses
let planTimer = null, planAsked = 0;
function planRun() {
  clearTimeout(planTimer);
  planTimer = setTimeout(async () => {
    const asked = ++planAsked;
    const box = $("#train-plan"), strip = $("#augment-strip");
    try {
      const p = await api("/api/plan", { config: trainConfig() });
      if (asked !== planAsked) return;
      const t = state.check && state.check.totals;
      box.replaceChildren(el("div", {}, "This run trains ", el("b", { id: "plan-model" }, p.model),
        ` (${state.layers.length} layers${t ? `, ${fmt(t.params)} parameters` : ""}) on `, el("b", { id: "plan-data" }, p.data),
        ` for ${p.epochs} epoch${p.epochs === 1 ? "" : "s"}, batch ${p.batch_size}.`),
        el("div", { id: "plan-augment" }, `Augmentation: ${p.augment}.`),
        el("div", { id: "plan-start" }, `Starts from ${p.start}.`),
        ...(p.strip_error ? [el("div", { class: "error" }, `The data cannot be read: ${p.strip_error}`)] : []));
      strip.hidden = !p.strip;
      if (p.strip) strip.src = p.strip;
      strip.title = p.strip ? "training images as this run will see them" : "";
    } catch (e) {
      if (asked !== planAsked) return;
      strip.hidden = true;
      box.replaceChildren(el("div", { class: "error" }, e.message));
    }
  }, 250);
}
$("#train-form").addEventListener("input", planRun);
$("#train-form").addEventListener("change", planRun);

function plotPoint(x, values) {  // values: {loss: [running, train, eval], acc: [...]}
  for (const key of ["loss", "acc"]) {
    const series = charts.points[key];
    series[0].push(x);
    values[key].forEach((v, i) => series[i + 1].push(v === undefined ? null : v));
    charts[key].setData(series);
  }
}

function trainConfig() {
  const form = new FormData($("#train-form"));
  const config = { name: $("#model-name").value || "model", model: { name: $("#model-name").value || "model", layers: layerSpec() },
    // a folder's empty class is left out, as its report on Start said (the command line makes it an error)
    data: { name: dataName(), ...($("#data").value === YOUR_FOLDER ? { skip_empty: true } : {}) },
    optimizer: {}, schedule: {} };
  if (state.parent) config.parent = state.parent;
  const weights = $("#weights").value;
  if (weights) {  // a name the server resolves (imagenet, or a run id in its runs folder), never a path
    config.weights = weights;
    if ($("#finetune-mode").value === "head") {
      config.finetune = { freeze: "body", head_epochs: parseInt($("#finetune-head").value || "1", 10) };
    }
  }
  for (const [key, raw] of form.entries()) {
    if (raw === "") continue;
    if (key === "loggers") { config.loggers = [...(config.loggers || []), raw]; continue; }  // one per box ticked
    const value = key === "augment" ? raw : parseValue(raw);
    const [a, b] = key.split(".");
    if (b) { config[a] = config[a] || {}; config[a][b] = value; } else config[a] = value;
  }
  return config;
}

function follow(runId) {
  makeCharts();
  $("#verdict").replaceChildren();
  $("#stop-button").disabled = false;
  $("#train-button").disabled = true;
  const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
  state.source = source;
  let batches = 1, epochs = 1, lastEval = [null, null];
  const status = $("#train-status");
  status.textContent = `${runId}: queued`;
  source.addEventListener("fit_start", (e) => {
    const d = JSON.parse(e.data);
    batches = d.batches_per_epoch; epochs = d.epochs;
    status.textContent = `${runId}: started (${fmt(d.summary.params_trainable)} params, ${fmt(d.data.train)} training images)`;
  });
  source.addEventListener("batch_end", (e) => {
    const d = JSON.parse(e.data);
    plotPoint(d.epoch - 1 + d.batch / d.batches, { loss: [d.loss, undefined, undefined], acc: [d.acc, undefined, undefined] });
    status.textContent = `${runId}: epoch ${d.epoch}/${epochs}, batch ${d.batch}/${d.batches} · loss ${d.loss.toFixed(3)} · ` +
      `acc ${d.acc.toFixed(3)} · ${Math.round(d.img_per_s)} img/s`;
  });
  source.addEventListener("epoch_end", (e) => {
    const { row, verdict } = JSON.parse(e.data);
    const evalLoss = row.val_loss ?? row.test_loss, evalAcc = row.val_acc ?? row.test_acc;
    plotPoint(row.epoch, { loss: [undefined, row.loss, evalLoss], acc: [undefined, row.acc, evalAcc] });
    const eta = row.seconds * (epochs - row.epoch);
    status.textContent = `${runId}: epoch ${row.epoch}/${epochs} done · ${row.val_acc !== null && row.val_acc !== undefined ? "val" : "test"} ` +
      `acc ${evalAcc.toFixed(4)} · ${Math.round(row.img_per_s)} img/s · ETA ${Math.round(eta)} s`;
    if (verdict) showVerdict(verdict, true);
  });
  source.addEventListener("diagnosis", (e) => showVerdict(JSON.parse(e.data), false));
  source.addEventListener("result", (e) => {
    const r = JSON.parse(e.data);
    status.textContent = `${runId}: ${r.status}` + (r.test_acc !== undefined ? ` · test accuracy ${r.test_acc.toFixed(4)}` +
      (r.test_acc_tta !== undefined ? ` (${r.test_acc_tta.toFixed(4)} with ${r.tta ?? "flip"} TTA)` : "") : "") +
      (r.weights_from ? ` · started from ${r.weights_from}` : "") + (r.message ? ` · ${r.message}` : "");
  });
  source.addEventListener("error", (e) => {
    if (e.data) status.textContent = `${runId}: ${JSON.parse(e.data).message}`;
  });
  source.addEventListener("end", () => {
    source.close();
    $("#stop-button").disabled = true;
    $("#train-button").disabled = false;
  });
  state.run = runId;
}

function showVerdict(v, provisional) {
  const actions = v.prescriptions.map((p) => {
    const apply = prescriptionAction(p);
    return el("li", {}, p, apply ? el("button", { onclick: apply, style: "margin-left:.5rem" }, "Apply and show the change") : null);
  });
  $("#verdict").replaceChildren(el("div", { class: "box" },
    el("b", {}, `${provisional ? "So far" : "Diagnosis"}: ${v.regime}`), ` — ${v.headline}`,
    actions.length ? el("ol", {}, actions) : null,
    !provisional && state.run ? rescueForm(state.run) : null));  // the doctor acting on its own: static/rescue.js
}

function prescriptionAction(text) {  // the prescriptions the page knows how to apply to the model or the config
  const form = $("#train-form");
  const why = "the doctor's prescription";
  const epochs = text.match(/--epochs (\d+)/);
  if (epochs) return () => prescribe(() => setForm({ epochs: epochs[1] }, why));
  const lower = text.match(/lower the learning rate (\d+)/);
  if (lower) return () => prescribe(() => setForm({ "optimizer.lr": +form.elements["optimizer.lr"].value / +lower[1] }, why));
  if (/raise the learning rate/.test(text)) return () => prescribe(() => setForm({ "optimizer.lr": +form.elements["optimizer.lr"].value * 10 }, why));
  if (/double the filters/.test(text)) return () => prescribe(() => changeLayers(() => {
    state.layers.forEach((l) => { if (l.kind === "conv" && Number.isInteger(l.args.filters)) l.args.filters *= 2; });
  }, "doubled the filters of every conv"));
  if (/halve the heavy dropout/.test(text)) return () => prescribe(() => changeLayers(() => {
    state.layers.forEach((l) => { const r = l.args.rate; if (l.kind.endsWith("dropout") && (r ?? 0.5) >= 0.3) l.args.rate = (r ?? 0.5) / 2; });
  }, "halved the heavy dropout"));
  if (/add data augmentation/.test(text)) return () => prescribe(() => setForm({ augment: "auto" }, why));
  if (/add `batchnorm`/.test(text)) {
    const dropoutOut = /take the dropout out/.test(text);
    return () => prescribe(() => changeLayers(() => {
      const out = [];
      state.layers.forEach((l) => {
        if (dropoutOut && l.kind.endsWith("dropout")) return;
        out.push(l);
        if (l.kind === "conv") out.push({ kind: "batchnorm", args: {} });
      });
      state.layers = out;
    }, dropoutOut ? "added batchnorm after every conv and took the dropout out" : "added batchnorm after every conv"));
  }
  return null;
}

// a prescription is for the run being watched: the next run records it as its parent (Runs shows it)
function prescribe(apply) {
  state.parent = state.run;
  apply();
}

// set Train's fields and say so: each changed field highlighted, one line naming old and new values
function setForm(values, why) {
  const form = $("#train-form");
  form.querySelectorAll("label.changed").forEach((l) => l.classList.remove("changed"));  // the note says only these
  const said = Object.entries(values).map(([name, value]) => {
    const input = form.elements[name], old = input.value;
    input.value = value;
    input.closest("label").classList.add("changed");
    return `${name} ${old || "(unset)"} → ${input.value}`;
  });
  $("#train-change").textContent = `Changed by ${why}: ${said.join(", ")}.` +
    (state.parent ? ` The next run records ${state.parent} as its parent.` : "");
  show("train");
}

// edit the layer list in the page and show what the edit touched (highlighted in the list and the diagram)
function changeLayers(edit, what) {
  const before = new Map(state.layers.map((l) => [l, JSON.stringify(l)]));
  edit();
  const changed = state.layers.flatMap((l, i) => (before.get(l) === JSON.stringify(l) ? [] : [String(i + 1)]));
  renderLayers(changed);
  $("#fix-note").textContent = `What changed: ${what} (layers ${changed.join(", ") || "none"}).` +
    (state.parent ? ` The next run records ${state.parent} as its parent.` : "");
  recheck();
  show("build");
}

$("#train-button").addEventListener("click", async () => {
  try {
    const started = await api("/api/runs", { config: trainConfig() });
    state.parent = null;  // recorded in that run; the run after it starts afresh
    document.querySelectorAll("#train-form label.changed").forEach((l) => l.classList.remove("changed"));
    $("#train-change").textContent = "";
    follow(started.id);
  } catch (e) { $("#train-status").textContent = e.message; }
});
$("#stop-button").addEventListener("click", async () => {
  if (!state.run) return;
  try { await api(`/api/runs/${encodeURIComponent(state.run)}/stop`, {}); $("#train-status").textContent += " · stopping…"; }
  catch (e) { $("#train-status").textContent = e.message; }
});

// ------------------------------------------------------------------ Runs
const RUN_COLUMNS = ["id", "model", "data", "status", "epochs_completed", "params", "test_acc", "final_acc", "wall_time_s", "tags"];
const runsView = { rows: [], sort: "created_at", desc: true };
async function loadRuns() {
  runsView.rows = await api("/api/runs");
  paintRuns();
}
function paintRuns() {
  const filter = $("#runs-filter").value.trim().toLowerCase();
  let rows = runsView.rows.filter((r) => !filter || JSON.stringify(r).toLowerCase().includes(filter));
  const key = runsView.sort;
  rows = rows.slice().sort((a, b) => ((a[key] ?? "") > (b[key] ?? "") ? 1 : -1) * (runsView.desc ? -1 : 1));
  $("#runs-table thead").replaceChildren(el("tr", {}, el("th", {}, ""), ...RUN_COLUMNS.map((c) =>
    el("th", { onclick: () => { runsView.desc = runsView.sort === c ? !runsView.desc : true; runsView.sort = c; paintRuns(); } },
      c.replace(/_/g, " ") + (runsView.sort === c ? (runsView.desc ? " ▾" : " ▴") : "")))));
  $("#runs-table tbody").replaceChildren(...rows.map((r) => el("tr", { "data-id": r.id },
    el("td", {}, el("input", { type: "checkbox", value: r.id })),
    ...RUN_COLUMNS.map((c) => {
      if (c === "id") return el("td", {}, r.status === "finished" ? el("a", { href: `/api/runs/${encodeURIComponent(r.id)}/report`, target: "_blank" }, r.id) : r.id,
        r.parent ? el("div", { class: "parent" }, `from ${r.parent}`) : r.imagenet ? el("div", { class: "parent" }, "from ImageNet weights") : null);
      // a rescue's tag opens the rescue: its trials, Stop and Resume
      if (c === "tags") return el("td", {}, ...(r.tags || []).map((t) => t.startsWith("rescue:")
        ? el("a", { href: "#", class: "tag rescue-tag", onclick: (e) => { e.preventDefault(); openRescue(t.slice(7)); } }, t)
        : el("span", { class: "tag" }, t)));
      if (c === "status") return el("td", { class: `status ${r.status}` }, r.status,
        r.message && r.status !== "finished" ? el("div", { class: "run-message" }, r.message) : null,
        // a rescue's run resumes with its rescue (its tag opens it): alone it would train a dropped candidate on
        ["interrupted", "crashed"].includes(r.status) && !(r.tags || []).some((t) => t.startsWith("rescue:"))
          ? el("button", { class: "resume", onclick: () => resumeRun(r.id) }, "Resume") : null,
        !["queued", "running"].includes(r.status) ? el("button", { class: "doctor", onclick: () => openDoctor(r.id) }, "Doctor") : null);
      const v = r[c];
      return el("td", { class: typeof v === "number" ? "num" : "" }, typeof v === "number" && v < 1 && c.endsWith("acc") ? v.toFixed(4) : typeof v === "number" ? fmt(Math.round(v * 100) / 100) : (v ?? "-"));
    }))));
}
async function resumeRun(id) {  // continue an interrupted run from its last checkpoint, and watch it on Train
  try { await api(`/api/runs/${encodeURIComponent(id)}/resume`, {}); show("train"); follow(id); }
  catch (e) { $("#status-line").textContent = e.message; }
}
const selectedRuns = () => [...document.querySelectorAll("#runs-table tbody input:checked")].map((i) => i.value);
$("#runs-filter").addEventListener("input", paintRuns);
$("#tag-button").addEventListener("click", async () => {
  const tag = $("#tag-input").value.trim();
  if (!tag) return;
  for (const id of selectedRuns()) {
    const row = runsView.rows.find((r) => r.id === id);
    await api(`/api/runs/${encodeURIComponent(id)}/tags`, { tags: [...(row.tags || []), tag] });
  }
  loadRuns();
});
$("#compare-button").addEventListener("click", () => {
  // oldest first: the first run is the baseline each later run's model is compared against
  const created = Object.fromEntries(runsView.rows.map((r) => [r.id, r.created_at ?? ""]));
  const ids = selectedRuns().reverse().sort((a, b) => (created[a] > created[b] ? 1 : created[a] < created[b] ? -1 : 0));
  if (ids.length) compareRuns(ids);
});
// curves, the config keys that differ and the models layer by layer; `ids[0]`: the run the others are set against
async function compareRuns(ids) {
  const c = await api("/api/compare", { ids });
  const epochs = Math.max(...Object.values(c.metrics).map((m) => m.length), 1);
  const xs = Array.from({ length: epochs }, (_, i) => i + 1);
  const series = [{}], data = [xs];
  const colors = ["#2b6cde", "#d9480f", "#2f9e44", "#9c36b5", "#e8590c", "#1098ad"];
  Object.entries(c.metrics).forEach(([id, rows], i) => {
    series.push({ label: id, stroke: colors[i % colors.length], width: 2 });
    data.push(xs.map((x) => { const r = rows[x - 1]; return r ? (r.val_acc ?? r.test_acc ?? null) : null; }));
  });
  $("#chart-compare").replaceChildren();
  new uPlot({ title: "val/test accuracy by epoch", width: Math.min(620, $("#compare").clientWidth - 12), height: 300, scales: { x: { time: false } }, series }, data, $("#chart-compare"));
  // the model is compared layer by layer below, not as one long JSON string
  const keys = Object.keys(c.differ).filter((k) => !(k === "model" && Object.keys(c.model_diff || {}).length));
  $("#compare-diff").replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "config key that differs"), ...ids.map((i) => el("th", {}, i)))),
    el("tbody", {}, ...(keys.length ? keys : ["(none)"]).map((k) => el("tr", {}, el("td", {}, k),
      ...ids.map((i) => el("td", {}, c.differ[k] ? JSON.stringify(c.differ[k][i]) : "")))))),
    ...Object.entries(c.model_diff || {}).map(([id, rows]) => modelDiffTable(ids[0], id, rows)));
}

// one run's model against the first's: a row per layer, added/removed/changed ones coloured
function modelDiffTable(first, id, rows) {
  const value = (v) => (typeof v === "object" && v !== null ? JSON.stringify(v) : String(v));
  const what = (r) => (r.op === "changed" ? Object.entries(r.changes).map(([k, [a, b]]) => `${k}: ${value(a)} → ${value(b)}`).join("; ")
    : r.op === "same" ? "" : r.op);
  const differ = rows.filter((r) => r.op !== "same").length;
  return el("table", { class: "model-diff" },
    el("caption", {}, `model of ${id} against ${first}: ${differ ? `${differ} layer(s) differ` : "the same layers"}`),
    el("thead", {}, el("tr", {}, el("th", {}, `# in ${first}`), el("th", {}, `# in ${id}`), el("th", {}, "layer"), el("th", {}, "what changed"))),
    el("tbody", {}, ...rows.map((r) => el("tr", { class: `diff-${r.op}` },
      el("td", {}, r.a ?? ""), el("td", {}, r.b ?? ""), el("td", {}, r.kind), el("td", {}, what(r))))));
}

// ------------------------------------------------------------------ See: static/see.js (the node-link view)

// the Runs view follows runs as they go (CLI runs included: the store is their common ground)
setInterval(() => {
  if ($("#page-runs").classList.contains("active") && !document.hidden &&
      runsView.rows.some((r) => ["running", "queued"].includes(r.status))) loadRuns();
}, 2000);

// ------------------------------------------------------------------ Start
// the first view: a data set, a starting network, a one-minute run, a look inside; each step sets what the
// later pages use (Build's data and layers, Train's settings), so every page after it starts somewhere
const NETWORK_ABOUT = { "course-net": "conv-relu-maxpool twice, flatten, dense: small, trains in a minute on a CPU",
  "keras-cifar10": "the classic Keras CIFAR-10 model: six convs with batchnorm and dropout, a dense head" };

function initStart() {
  const info = state.info;
  const names = [...info.present, ...info.datasets.filter((d) => !info.present.includes(d))];
  $("#start-data").replaceChildren(
    // image folders in the server's data folder first: the digit sample trains in seconds and is drawn on in See
    ...(info.folders || []).map((f) => el("button", { "data-data": f.path, onclick: () => pickData(f.path) },
      f.label, el("small", {}, `a folder on this machine, ${f.classes} classes`))),
    ...names.map((d) => el("button", { "data-data": d, onclick: () => pickData(d) },
      info.labels[d] || d, el("small", {}, info.present.includes(d) ? "on this machine" : "downloaded on first use"))));
  markData();
  $("#start-folder").addEventListener("change", () => setData($("#start-folder").value.trim()));
  $("#start-network").replaceChildren(...[...$("#template").options].filter((o) => o.value).map((o) => el("option", { value: o.value }, o.textContent)));
  $("#start-network").value = $("#template").value;
  aboutNetwork();
  $("#start-network").addEventListener("change", (e) => { loadTemplate(e.target.value); aboutNetwork(); });
  $("#start-build").addEventListener("click", () => show("build"));
  $("#start-train").addEventListener("click", () => { quickRun(); $("#train-button").click(); });
  $("#start-train-settings").addEventListener("click", quickRun);
  $("#start-check-photos").addEventListener("click", () =>
    checkPhotos(api(`/api/data/report?path=${encodeURIComponent($("#start-folder").value.trim())}`)));
  $("#start-zip").addEventListener("change", (e) => { if (e.target.files[0]) checkPhotos(uploadZip(e.target.files[0])); });
  $("#start-see").addEventListener("click", () => show("see"));
  $("#start-runs").addEventListener("click", () => show("runs"));
}

function pickData(name) {  // Build's data menu lists what is on this machine; a set picked here joins it
  if (![...$("#data").options].some((o) => o.value === name)) {
    $("#data").insertBefore(el("option", { value: name }, state.info.labels[name] || name), $("#data").lastChild);
  }
  setData(name);
}

// Your own photos: a zip sent as it is (application/zip), or a folder on this machine; the ingestion report and
// the data doctor's findings are shown before the first run, and an unpacked zip becomes the chosen folder.
async function uploadZip(file) {
  const name = encodeURIComponent(file.name.replace(/\.zip$/i, ""));
  const response = await fetch(`/api/data/zip?name=${name}`,
    { method: "POST", headers: { "Content-Type": "application/zip" }, body: file });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || `${response.status}`);
  return data;
}

async function checkPhotos(pending) {
  $("#start-photos").hidden = false;
  $("#start-ingest").textContent = "reading every file...";
  $("#start-doctor").textContent = "";
  $("#start-data-panel").replaceChildren();
  try {
    const found = await pending;
    $("#start-ingest").textContent = found.ingest_text;
    showDataPanel(found);  // static/data-panel.js
    if (found.unpacked) setData(found.unpacked.root);
  } catch (e) {
    $("#start-ingest").textContent = `refused: ${e.message}`;
  }
}

function markData() {
  document.querySelectorAll("#start-data button").forEach((b) => b.classList.toggle("chosen", b.dataset.data === dataName()));
}

function aboutNetwork() {
  const name = $("#start-network").value;
  $("#start-network-about").textContent = NETWORK_ABOUT[name] || (state.info.models.includes(name) ? "a named architecture, written out as layers" : "");
}

// 2 epochs on 10,000 images: about a minute for course-net on a 2-core CPU, long enough for a curve
const quickRun = () => setForm({ epochs: 2, "data.limit": 10000 }, "Start's one-minute run");

(async () => {
  state.info = await api("/api/info");
  $("#status-line").textContent = `cnnlab ${state.info.version}`;
  await initBuild();
  await loadTemplate("course-net");
  initStart();
})();
