// The Build page's picture of the network: one block per top-level layer, top to bottom, drawn as SVG from
// what /api/check answered (each layer's output shape, parameters and MACs, and the layer that fails). A
// block's height grows with the spatial size of its output and its width with the channels, both on a log
// scale, so pooling visibly shrinks the maps and convs visibly widen them. Plain JS, no library: the page
// has no build step.
"use strict";

const Diagram = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const WIDTH = 298, AXIS = 70, TEXT = 144;  // px: the whole picture, the blocks' centre line, the text column
  const GAP = 22;                      // px between blocks: room for the shape written on the edge
  const COLOURS = { conv: "#8fb3f0", whiten: "#8fb3f0", dense: "#f2b880", maxpool: "#9ed8a8", avgpool: "#9ed8a8",
    global_avgpool: "#9ed8a8", global_maxpool: "#9ed8a8", batchnorm: "#c9b3ec", dropout: "#e4e6ea",
    spatial_dropout: "#e4e6ea", flatten: "#f0e08a", residual: "#b5dde6", concat: "#b5dde6" };

  const svg = (tag, attrs = {}, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const compact = (n) => (n === null || n === undefined ? "" : n >= 1e9 ? `${(n / 1e9).toFixed(1)}G`
    : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e5 ? `${Math.round(n / 1e3)}K` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K`
    : String(n));

  // "32x16x16" -> {channels: 32, side: 16}; "10" (a vector) -> {channels: 10, side: 1}
  function dims(shape) {
    const parts = String(shape || "").split("x").map(Number);
    if (!parts.length || parts.some(Number.isNaN)) return null;
    return { channels: parts[0], side: parts.length === 3 ? Math.sqrt(parts[1] * parts[2]) : 1 };
  }

  // log-scaled sizes, so a 1024-wide dense and a 3-channel input both fit beside the list
  function size(d) {
    if (!d) return { w: 60, h: 16 };
    return { w: Math.min(130, 20 + 12 * Math.log2(1 + d.channels)), h: Math.min(60, 10 + 9 * Math.log2(1 + d.side)) };
  }

  function label(layer) {  // what the block says: its kind and main argument; a block counts its inner layers
    const a = layer.args;
    if (layer.kind === "residual") return `residual (${(a.layers || []).length} layers)`;
    if (layer.kind === "concat") return `concat (${(a.branches || []).length} branches)`;
    const main = a.filters ?? a.units ?? a.rate ?? (layer.kind.endsWith("pool") && !layer.kind.startsWith("global") ? a.size : undefined);
    return main === undefined ? layer.kind : `${layer.kind} ${main}`;
  }

  // host: the element to draw into; layers: the page's [{kind, args}]; check: /api/check's answer (or null
  // while it is on its way); changed: positions ("3") to outline; onSelect(position) when a block is clicked
  function draw(host, layers, check, changed, onSelect) {
    const rows = Object.fromEntries(((check && check.layers) || []).map((r) => [r.index, r]));
    const bad = check && check.error ? check.error.layer : null;
    const blocks = layers.map((layer, i) => {
      const index = String(i + 1), row = rows[index];
      return { index, layer, row, box: size(row ? dims(row.out_shape) : null) };
    });
    const height = 40 + blocks.reduce((sum, b) => sum + b.box.h + GAP, 0);
    const root = svg("svg", { width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, class: "diagram" });
    root.append(svg("text", { x: AXIS, y: 14, "text-anchor": "middle", class: "edge" },
      check ? `input ${check.input_shape.join("×")}` : "input"));
    let y = 20, afterBad = false;
    blocks.forEach((b) => {
      root.append(svg("line", { x1: AXIS, y1: y, x2: AXIS, y2: y + GAP, class: "edge-line" }));
      y += GAP;
      const state = b.index === bad ? "bad" : afterBad ? "after-bad" : "";
      if (b.index === bad) afterBad = true;
      const g = svg("g", { class: `block ${state} ${changed.includes(b.index) ? "changed" : ""}`, "data-index": b.index });
      g.append(svg("rect", { x: AXIS - b.box.w / 2, y, width: b.box.w, height: b.box.h, rx: 4,
        fill: state === "bad" ? "#f6b8b2" : COLOURS[b.layer.kind] || "#dfe3ea" }));
      g.append(svg("text", { x: TEXT, y: y + Math.min(b.box.h / 2, 12) + 2, class: "name" }, `${b.index} ${label(b.layer)}`));
      if (b.row) g.append(svg("text", { x: TEXT, y: y + Math.min(b.box.h / 2, 12) + 14, class: "facts" },
        `${compact(b.row.params)} params · ${compact(b.row.macs)} MACs`));
      else if (state === "bad") g.append(svg("text", { x: TEXT, y: y + 24, class: "facts" }, "cannot be built"));
      g.append(svg("title", {}, b.row ? `layer ${b.index}: ${b.row.layer} → ${b.row.out_shape}` : `layer ${b.index}: ${b.layer.kind}`));
      g.addEventListener("click", () => onSelect(b.index));
      root.append(g);
      y += b.box.h;
      // the shape this block hands on, written on the edge below it
      if (b.row) root.append(svg("text", { x: AXIS + 6, y: y + 15, class: "edge" }, b.row.out_shape.replace(/x/g, "×")));
    });
    host.replaceChildren(root);
    return root;
  }

  function select(host, index) {  // outline the block of the layer selected in the list
    host.querySelectorAll(".block").forEach((g) => g.classList.toggle("selected", g.dataset.index === index));
  }

  return { draw, select, dims, size };
})();
