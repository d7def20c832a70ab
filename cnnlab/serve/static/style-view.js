// The Style view: a content photo (uploaded, or a test image of a finished run) and a style image (uploaded, or
// one of the bundled ones); Gatys's optimisation streamed as the image forms (POST /api/style/gatys answers
// text/event-stream, read here with fetch, since EventSource cannot POST); the fast style nets of the runs
// folder's styles/ chained in the order clicked and applied to the photo, each stage shown.
// Every picture and number comes from the server (cnnlab/app/style.py).
"use strict";

const styleView = { content: null, style: null, styleName: null, chain: [], abort: null, updates: 0 };

// ------------------------------------------------------------------ inputs
function readUpload(input, done) {
  input.addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => done(reader.result);
    reader.onerror = () => { $("#style-progress").textContent = `cannot read ${file.name}`; };
    reader.readAsDataURL(file);
  });
}
function setContent(source) {  // source: { image } or { run, test_index }
  styleView.content = source;
  if (source.image) $("#style-content").src = source.image;
}
function setStyle(image, name) {
  styleView.style = name ? null : image; styleView.styleName = name || null;
  $("#style-style").src = image;
  document.querySelectorAll("#style-bundled button").forEach((b) => b.classList.toggle("chosen", b.dataset.style === name));
}
readUpload($("#style-content-upload"), (url) => setContent({ image: url }));
readUpload($("#style-style-upload"), (url) => setStyle(url, null));
$("#style-use-test").addEventListener("click", async () => {
  const source = { run: $("#style-run").value, test_index: +$("#style-test-index").value };
  if (!source.run) { $("#style-progress").textContent = "no finished run to take a test image from"; return; }
  try {
    $("#style-content").src = (await api("/api/style/content", source)).image;
    setContent(source);
    $("#style-progress").textContent = `content: test image ${source.test_index} of ${source.run}`;
  } catch (e) { $("#style-progress").textContent = `cannot use it: ${e.message}`; }
});

async function loadStyle() {
  if (!$("#style-bundled").children.length) {
    const styles = await api("/api/style/styles");
    $("#style-bundled").replaceChildren(...styles.map((s) => el("button", { "data-style": s.name, title: s.name,
      onclick: () => setStyle(s.image, s.name) }, el("img", { src: s.image, alt: s.name }), el("small", {}, s.name))));
  }
  const rows = (await api("/api/runs")).filter((r) => r.status === "finished");
  const current = $("#style-run").value;
  $("#style-run").replaceChildren(...(rows.length ? rows.map((r) => el("option", { value: r.id }, `${r.id} (${r.data})`))
    : [el("option", { value: "" }, "(no finished runs)")]));
  if (current) $("#style-run").value = current;
  loadStyleNets();
}
document.querySelector("nav button[data-page=style]").addEventListener("click", loadStyle);

// ------------------------------------------------------------------ Gatys, as the image forms
function gatysBody() {
  const body = { size: +$("#style-size").value, steps: +$("#style-steps").value, style_weight: +$("#style-weight").value };
  body.every = Math.max(1, Math.min(5, body.steps));
  Object.assign(body, styleView.content && styleView.content.image ? { content: styleView.content.image } : styleView.content || {});
  if (styleView.styleName) body.style_name = styleView.styleName; else if (styleView.style) body.style = styleView.style;
  return body;
}
async function runGatys() {
  const progress = $("#style-progress");
  if (!styleView.content) { progress.textContent = "pick a content photo first (upload, or a run's test image)"; return; }
  if (!styleView.style && !styleView.styleName) { progress.textContent = "pick a style image first"; return; }
  if (styleView.abort) styleView.abort.abort();
  const abort = new AbortController();
  styleView.abort = abort; styleView.updates = 0;
  progress.textContent = "starting...";
  $("#style-run-gatys").disabled = true;
  try {
    const response = await fetch("/api/style/gatys", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(gatysBody()), signal: abort.signal });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(typeof data.detail === "string" ? data.detail : `${response.status}`);
    }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, end); buffer = buffer.slice(end + 2);
        const kind = (chunk.match(/^event: (.*)$/m) || [])[1], data = JSON.parse((chunk.match(/^data: (.*)$/m) || [])[1] || "{}");
        if (kind === "step") {
          $("#style-result").src = data.image;
          styleView.updates++;
          $("#page-style").dataset.updates = styleView.updates;
          progress.textContent = `step ${data.step}/${data.steps}: style loss ${data.style.toPrecision(3)}, ` +
            `content loss ${data.content.toPrecision(3)} (${data.seconds.toFixed(1)} s)`;
        } else if (kind === "done") progress.textContent += " - done";
        else if (kind === "failed") progress.textContent = `failed: ${data.detail}`;
      }
    }
  } catch (e) {
    progress.textContent = e.name === "AbortError" ? `${progress.textContent} - stopped` : `cannot run: ${e.message}`;
  } finally {
    $("#style-run-gatys").disabled = false;
    if (styleView.abort === abort) styleView.abort = null;
  }
}
$("#style-run-gatys").addEventListener("click", runGatys);
$("#style-stop").addEventListener("click", () => { if (styleView.abort) styleView.abort.abort(); });  // the server stops too

// ------------------------------------------------------------------ fast style nets, chained
async function loadStyleNets() {
  const nets = await api("/api/style/nets");
  $("#style-nets").replaceChildren(...(nets.length ? nets.map((n) => el("button", {
    "data-net": n.name, disabled: n.error ? "" : null, title: n.error || "",
    onclick: () => { styleView.chain.push(n.name); showChain(); } }, n.bundled ? `${n.name} (comes with cnnlab)` : n.name,
    el("small", {}, n.error || (n.bundled ? `style ${n.style.replace(/^bundled:/, "")}, trained on scenes made in code` :
      `style ${n.style || "?"}, ${n.steps ?? "?"} steps on ${n.images ?? "?"} photos, width ${n.width}`))))
    : [el("p", { class: "about" }, "No style nets yet: train one with the command above.")]));
}
function showChain() {
  $("#style-chain").textContent = styleView.chain.length ? styleView.chain.join(" -> ") : "(none)";
}
$("#style-chain-clear").addEventListener("click", () => { styleView.chain = []; showChain(); $("#style-stages").replaceChildren(); });
$("#style-apply").addEventListener("click", async () => {
  const stages = $("#style-stages");
  if (!styleView.content) { stages.replaceChildren(el("p", {}, "pick a content photo first")); return; }
  if (!styleView.chain.length) { stages.replaceChildren(el("p", {}, "click one or more nets to chain first")); return; }
  stages.replaceChildren(el("p", {}, "applying..."));
  try {
    const body = Object.assign({ nets: styleView.chain }, styleView.content.image ? { image: styleView.content.image } : styleView.content);
    const out = await api("/api/style/apply", body);
    const figure = (src, caption) => el("figure", {}, el("img", { src, alt: caption }), el("figcaption", {}, caption));
    stages.replaceChildren(figure(out.input, "photo"),
      ...out.stages.map((s, i) => figure(s.image, `${i + 1}. ${s.net} (${s.ms.toFixed(0)} ms)`)));
  } catch (e) { stages.replaceChildren(el("p", {}, `cannot apply: ${e.message}`)); }
});
