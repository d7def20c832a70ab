// Rescue from the page: "Rescue this run" in a run's doctor panel (Runs) and under Train's diagnosis, and the
// rescue view that follows it. The server decides everything (cnnlab.app.rescue_jobs over cnnlab.app.rescue,
// as `cnnlab rescue` does); this polls GET /api/rescues/NAME each second and draws what it says: the trials
// as a table with their curves, Stop and Resume, and at the end the final run beside the run it started from.
"use strict";

// the budget box and the button; `runId`: the run whose config the rescue starts from
function rescueForm(runId) {
  const budget = el("input", { type: "number", class: "rescue-budget", min: "2", max: "500", step: "1", value: "15",
    title: "epochs of the run's training set for the search and the final run together" });
  const arch = el("input", { type: "checkbox", class: "rescue-arch" });
  const note = el("div", { class: "error rescue-error" });
  const button = el("button", { class: "primary rescue-button", onclick: async () => {
    button.disabled = true;
    note.textContent = "";
    try {
      const started = await api("/api/rescues", { run: runId, budget: Number(budget.value), change_architecture: arch.checked });
      openRescue(started.name);
    } catch (e) { note.textContent = e.message; }
    button.disabled = false;
  } }, "Rescue this run");
  return el("div", { class: "rescue-form" },
    el("div", { class: "rescue-controls" }, button, el("label", {}, "Budget ", budget, " epochs"),
      el("label", {}, arch, " also change the architecture")),
    el("div", { class: "hint" }, "The doctor races its prescriptions against the layers with cnnlab's own settings " +
      "for the first epochs; the winner trains on as the final run, all within the budget."), note);
}

// Runs: a run's doctor panel, opened from its row
async function openDoctor(runId) {
  const box = $("#run-doctor");
  box.hidden = false;
  box.replaceChildren(el("div", { class: "box" }, `Reading ${runId}…`));
  try {
    const d = await api(`/api/runs/${encodeURIComponent(runId)}`);
    const v = d.verdict;
    box.replaceChildren(el("div", { class: "box" },
      el("h3", {}, `Doctor: ${runId}`, el("button", { class: "close", title: "close", onclick: () => { box.hidden = true; } }, "×")),
      v ? el("div", {}, el("b", {}, v.regime), ` — ${v.headline}`) : el("div", {}, "No verdict: the run has no epochs yet."),
      v && v.prescriptions.length ? el("ol", {}, v.prescriptions.map((p) => el("li", {}, p))) : null,
      rescueForm(runId)));
    box.scrollIntoView({ block: "nearest" });
  } catch (e) { box.replaceChildren(el("div", { class: "error" }, e.message)); }
}

// ------------------------------------------------------------------ the rescue view
const rescueView = { name: null, timer: null, busy: false, runs: {}, compared: false, steps: 0 };

function openRescue(name) {
  clearInterval(rescueView.timer);
  Object.assign(rescueView, { name, busy: false, runs: {}, compared: false, steps: 0 });
  if (!$("#page-runs").classList.contains("active")) show("runs");
  const view = $("#rescue-view");
  view.hidden = false;
  view.replaceChildren(el("h3", {}, `Rescue ${name}`), el("div", { class: "status" }, "queued"));
  view.scrollIntoView({ block: "start" });
  pollRescue();
  rescueView.timer = setInterval(pollRescue, 1000);
}

async function pollRescue() {
  const name = rescueView.name;
  if (!name || rescueView.busy) return;
  rescueView.busy = true;
  try {
    const r = await api(`/api/rescues/${encodeURIComponent(name)}`);
    await readRuns(r);
    if (name !== rescueView.name) return;
    paintRescue(r);
    if (r.steps.length !== rescueView.steps) { rescueView.steps = r.steps.length; loadRuns(); }  // its runs join Runs
    const going = ["queued", "running"].includes(r.state);
    if (!going) {
      clearInterval(rescueView.timer);
      rescueView.timer = null;
      loadRuns();
      if (r.final && r.start_id && !rescueView.compared) {
        rescueView.compared = true;
        compareRuns([r.start_id, r.final.id]);
      }
    }
  } catch (e) {
    if (name === rescueView.name) $("#rescue-view").replaceChildren(el("h3", {}, `Rescue ${name}`), el("div", { class: "error" }, e.message));
  } finally { rescueView.busy = false; }
}

// each trial's epochs (for its curve) and the start's result, read once a run has ended
async function readRuns(r) {
  const ids = new Map([...r.steps, ...(r.final ? [r.final] : [])].filter((s) => s.id).map((s) => [s.id, s.status]));
  if (r.start_id) ids.set(r.start_id, "finished");
  await Promise.all([...ids].map(async ([id, status]) => {
    const known = rescueView.runs[id];
    if (known && known.ended) return;
    try {
      const d = await api(`/api/runs/${encodeURIComponent(id)}`);
      rescueView.runs[id] = { metrics: d.metrics, result: d.result, ended: status !== "running" && d.result.status === "finished" };
    } catch (e) { rescueView.runs[id] = { metrics: [], result: {}, ended: false }; }
  }));
}

// a run's curve, small: training accuracy (blue) and validation/test accuracy (orange) per epoch, 0 to 1
function sparkline(rows) {
  const w = 120, h = 36, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const frame = document.createElementNS(ns, "rect");
  Object.entries({ x: 0.5, y: 0.5, width: w - 1, height: h - 1, fill: "#fff", stroke: "#dfe3ea" }).forEach(([k, v]) => frame.setAttribute(k, v));
  svg.append(frame);
  const n = rows.length;
  const x = (i) => (n <= 1 ? w / 2 : 4 + (i * (w - 8)) / (n - 1));
  const y = (v) => h - 3 - v * (h - 6);
  for (const [key, color] of [["acc", "#2b6cde"], ["eval", "#d9480f"]]) {
    const points = rows.map((r, i) => [i, key === "acc" ? r.acc : (r.val_acc ?? r.test_acc)]).filter(([, v]) => v !== null && v !== undefined);
    if (points.length > 1) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", points.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
      Object.entries({ fill: "none", stroke: color, "stroke-width": 1.5 }).forEach(([k, v]) => line.setAttribute(k, v));
      svg.append(line);
    }
    for (const [i, v] of points.slice(-1)) {  // the last epoch as a dot: a one-epoch trial is a dot
      const dot = document.createElementNS(ns, "circle");
      Object.entries({ cx: x(i), cy: y(v), r: 2.5, fill: color }).forEach(([k, val]) => dot.setAttribute(k, val));
      svg.append(dot);
    }
  }
  const title = document.createElementNS(ns, "title");
  title.textContent = rows.map((r) => `epoch ${r.epoch}: train ${r.acc?.toFixed(3)}, ${r.val_acc !== null && r.val_acc !== undefined ? "val" : "test"} ${(r.val_acc ?? r.test_acc)?.toFixed(3)}`).join("\n") || "no epoch yet";
  svg.append(title);
  return svg;
}

const acc = (v) => (v === null || v === undefined ? "" : Number(v).toFixed(4));

function paintRescue(r) {
  const stop = el("button", { id: "rescue-stop", disabled: r.can_stop ? null : "", onclick: async () => {
    stop.disabled = true;
    try { await api(`/api/rescues/${encodeURIComponent(r.name)}/stop`, {}); } catch (e) { $("#rescue-note").textContent = e.message; }
  } }, "Stop");
  const resume = el("button", { id: "rescue-resume", disabled: r.can_resume ? null : "", onclick: async () => {
    resume.disabled = true;
    try { await api(`/api/rescues/${encodeURIComponent(r.name)}/resume`, {}); openRescue(r.name); }
    catch (e) { $("#rescue-note").textContent = e.message; }
  } }, "Resume");
  const final = r.final;  // "final" (the winner trained on), or "alone" (nothing prescribed: the floor alone)
  const stepRows = r.steps.filter((s) => !final || s.name !== final.name);
  const row = (s, eval_) => el("tr", { class: `rescue-step status-${s.status}`, "data-step": s.name },
    el("td", {}, s.name), el("td", { class: "change" }, s.label,
      s.detail && !s.detail.startsWith("{") ? el("div", { class: "run-message" }, s.detail) : null),  // a reason, not the plan
    el("td", { class: "num" }, eval_), el("td", { class: `status ${s.status}` }, s.status),
    el("td", {}, s.kept === null || s.kept === undefined ? "" : s.name === "final" ? "" : s.kept ? "kept" : "dropped"),
    el("td", { class: "num" }, s.cost === null || s.cost === undefined ? "" : Number(s.cost).toFixed(2)),
    // a candidate's curve up to the rung where it was judged (the winner's run goes on as the final one)
    el("td", {}, s.id ? sparkline(((rescueView.runs[s.id] || {}).metrics || []).slice(0, s === final || s.status === "running" ? undefined : s.epoch || undefined)) : ""));
  const start = r.start_id && rescueView.runs[r.start_id];
  const startAcc = start && start.result ? start.result.test_acc : undefined;
  const finalRun = final && final.test_acc !== null && final.test_acc !== undefined ? final : null;
  const note = $("#rescue-note") ? $("#rescue-note").textContent : "";
  $("#rescue-view").replaceChildren(...[  // replaceChildren writes a null as "null": the empty parts are left out
    el("h3", {}, `Rescue ${r.name}`, r.start_id ? el("span", { class: "muted" }, ` of ${r.start_id}`) : null),
    el("div", { class: "rescue-head" },
      el("span", { id: "rescue-state", class: `status ${r.state}` }, r.state),
      el("span", {}, ` · spent ${Number(r.spent).toFixed(2)} of ${Number(r.budget_total).toFixed(2)} ${r.unit}`),
      stop, resume),
    r.message ? el("div", { class: "run-message" }, r.message) : null,
    el("div", { id: "rescue-note", class: "error" }, note),
    el("div", { class: "table-box" }, el("table", { id: "rescue-table" },
      el("thead", {}, el("tr", {}, ...["step", "change", "val acc", "status", "kept", "cost (epochs)", "curve"].map((c) => el("th", {}, c)))),
      el("tbody", {}, ...stepRows.map((s) => row(s, acc(s.val_acc))),
        ...(final ? [row(final, final.test_acc !== null && final.test_acc !== undefined ? `test ${acc(final.test_acc)}` : "")] : [])))),
    finalRun ? el("div", { id: "rescue-final", class: "box" }, "Final run: ",
      el("a", { href: "#", id: "rescue-final-link", onclick: (e) => { e.preventDefault(); showRun(finalRun.id); } }, finalRun.id),
      ` (from ${finalRun.parent}) · test accuracy ${acc(finalRun.test_acc)}`,
      startAcc !== undefined && startAcc !== null ? ` against ${acc(startAcc)} for ${r.start_id} (${finalRun.test_acc >= startAcc ? "+" : ""}${((finalRun.test_acc - startAcc) * 100).toFixed(1)} points)` : "",
      " · ", el("a", { href: `/api/runs/${encodeURIComponent(finalRun.id)}/report`, target: "_blank" }, "report"),
      el("div", { class: "hint" }, "Its comparison with the start is below.")) : null,
    r.log && r.log.length ? el("details", { class: "rescue-log" }, el("summary", {}, `log (${r.log.length} lines)`), el("pre", {}, r.log.join("\n"))) : null].filter(Boolean));
}

// the Runs table filtered to one run (its row shows the run it came from)
function showRun(id) {
  $("#runs-filter").value = id;
  loadRuns().then(() => {
    const row = document.querySelector(`#runs-table tbody tr[data-id="${CSS.escape(id)}"]`);
    if (row) { row.classList.add("highlight"); row.scrollIntoView({ block: "center" }); }
  });
}
