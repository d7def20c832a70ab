// Start's Data panel: the data doctor's findings on your own photos drawn as pictures. What to draw comes from
// the server (cnnlab.app.data_panel); each picture from GET /api/data/thumb, which serves only the files of a
// folder this server read. The doctor's own sentence on what each finding means for training is shown with it.
"use strict";

const PANEL_TITLES = { leakage: "Test images that are also in training", duplicates: "Duplicates",
  "conflicting labels": "One picture, two classes", "label suspects": "Label suspects", imbalance: "Imbalance",
  sizes: "Image sizes", modes: "Colour modes" };

function showDataPanel(found) {
  $("#start-doctor").textContent = found.doctor_text;
  $("#start-photos .doctor-text").open = !found.panel;  // no pictures (the doctor's extras missing): the text says why
  if (!found.panel) return $("#start-data-panel").replaceChildren();
  const sections = found.panel.map((section) => panelSection(section, found.root));
  if (!found.panel.length) sections.push(el("p", { class: "hint" }, "Nothing to show: no duplicates, no leaks, balanced classes."));
  const suspects = found.panel.some((s) => s.check === "label suspects");
  if (!suspects) sections.push(labelCheck(found));
  $("#start-data-panel").replaceChildren(...sections);
}

// the label check trains a quick model 5 times, so it is asked for, not run on every read
function labelCheck(found) {
  const done = found.label_check;
  if (done) {
    return el("section", { class: "panel-section", "data-check": "label suspects" }, el("h4", {}, "Label suspects"),
      el("p", { class: "panel-message" }, `none: a quick model, ${(done.accuracy * 100).toFixed(0)}% right on images ` +
        "it never saw, contradicts no label strongly enough to suspect it"));
  }
  const note = el("p", { class: "hint label-check-note" },
    "Trains a quick model 5 times, each scoring the images it did not see, and shows the images whose label the " +
    "rest of the data contradicts. About a minute for 60 images on a busy 2-core CPU; up to 200 images here, any number " +
    "with `cnnlab data doctor FOLDER`.");
  const button = el("button", { id: "start-label-check", onclick: async () => {
    button.disabled = true;
    note.textContent = "training a quick model 5 times...";
    try {
      showDataPanel(await api(`/api/data/report?path=${encodeURIComponent(found.root)}&labels=true`));
    } catch (e) {
      note.textContent = `refused: ${e.message}`;
      button.disabled = false;
    }
  } }, "Look for label suspects");
  return el("section", { class: "panel-section", "data-check": "label check" }, el("h4", {}, "Label suspects"), button, note);
}

function panelSection(s, root) {
  const body = s.kind === "pairs" ? s.pairs.map((p) => leakPair(p, s.sides, root))
    : s.kind === "groups" ? s.groups.map((g) => el("div", { class: "dup-group" },
      g.map((f) => thumbFigure(root, f.file, f.label, f.name))))
    : s.kind === "suspects" ? s.suspects.map((x) => thumbFigure(root, x.file,
      `labelled ${x.label}, looks like ${x.suggested} (${(x.confidence * 100).toFixed(0)}%)`, x.name))
    : s.kind === "examples" ? s.examples.map((x) => el("div", { class: "example" },
      el("div", { class: "example-what" }, `${x.what}: ${fmt(x.images)} image${x.images === 1 ? "" : "s"}`),
      el("div", { class: "thumbs" }, x.files.map((f) => thumbFigure(root, f.file, f.name, f.name)))))
    : classCounts(s.counts);
  const shown = s.kind === "pairs" ? s.pairs.length : s.kind === "groups" ? s.groups.length
    : s.kind === "suspects" ? s.suspects.length : s.total;
  return el("section", { class: `panel-section severity-${s.severity}`, "data-check": s.check },
    el("h4", {}, PANEL_TITLES[s.check] || s.check, el("span", { class: "severity" }, s.severity)),
    el("p", { class: "panel-message" }, s.message),
    el("p", { class: "panel-meaning" }, s.meaning),
    el("div", { class: `panel-pictures kind-${s.kind}` }, body),
    s.total > shown ? el("p", { class: "hint" }, `and ${fmt(s.total - shown)} more: ` +
      "`cnnlab data doctor FOLDER --json doctor.json` lists every one") : null);
}

// a leak or a conflicting label: the two images side by side, each with its class
function leakPair(p, sides, root) {
  const [left, right] = sides || ["", ""];
  return el("div", { class: "pair" },
    thumbFigure(root, p.a, `${left ? left + ": " : ""}${p.labels[0]}`, p.name_a),
    el("span", { class: "pair-how", title: "how alike their pixels are" }, p.how === "identical" ? "=" : "≈", el("small", {}, p.how)),
    thumbFigure(root, p.b, `${right ? right + ": " : ""}${p.labels[1]}`, p.name_b));
}

function thumbFigure(root, file, caption, name) {
  const picture = file
    ? el("img", { src: `/api/data/thumb?root=${encodeURIComponent(root)}&file=${encodeURIComponent(file)}`,
      alt: name, title: name })
    : el("div", { class: "no-thumb" }, "not in the folder");
  return el("figure", { class: "thumb" }, picture, el("figcaption", {}, breakable(caption),
    name && name !== caption ? el("small", {}, breakable(name)) : null));
}

// a file name may wrap after a folder's slash, an underscore or a dash, not inside a word (nor before its extension)
function breakable(text) {
  return String(text).split(/(?<=[/_-])/).flatMap((part, i) => (i ? [el("wbr"), part] : [part]));
}

function classCounts(counts) {
  const most = Math.max(...counts.map((c) => c.train), 1);
  return el("div", { class: "class-counts" }, counts.map((c) => el("div", { class: "count-row" },
    el("span", { class: "count-name" }, c.class),
    el("span", { class: "count-bar", style: `width: ${Math.max(2, (100 * c.train) / most)}%` }),
    el("span", { class: "count-n" }, fmt(c.train)))));
}
