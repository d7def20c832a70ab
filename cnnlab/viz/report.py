"""`cnnlab report RUN`: one self-contained HTML page per run (images embedded, no network), or the figures as
PNG files. Everything comes from what the run wrote plus its model evaluated once on the test set."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..fsutil import write_bytes, write_text
from ..models.weights import described
from ..rundir import Run
from ..train.session import prepare_data
from ..train.trained import TrainedModel
from . import figures
from .curves import plot_curves

SECTIONS = ("summary", "curves", "diagnosis", "confusion", "per-class", "wrong", "filters", "feature-maps")


def _curves_png(run: Run) -> bytes:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_curves({run.result.get("model", "run"): run.metrics}, Path(tmp) / "c.png")
        return path.read_bytes()


def _conv_maps(trained: TrainedModel, image: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Every conv layer's output for one uint8 image (C, H, W), labelled with the layer as the summary names it."""
    model = trained.model
    infos = getattr(model, "infos", None)
    names = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parts = name.split(".")
            label = name
            if infos and parts[0] == "layers" and len(parts) > 1 and parts[1].isdigit():
                label = f"{infos[int(parts[1])].index} {infos[int(parts[1])].desc}"
            names[module] = label
    _, outputs = trained.look_inside(image, list(names))
    return [(names[module], out) for module, out in outputs]


def build_figures(run: Run, image_index: int = 0, wrong_count: int = 24) -> dict:
    """All report figures and tables, computed once; `probabilities`: the test set's, as predict gives them."""
    cfg = run.config
    cfg.data.limit = None
    data = prepare_data(cfg)
    trained = TrainedModel.load(run, device="cpu" if cfg.device == "auto" else cfg.device)
    probs = trained.probabilities(data.test_x)
    true = data.test_y.numpy()
    pred = probs.argmax(1).numpy()
    classes = trained.classes
    cm = figures.confusion_matrix(true, pred, len(classes))
    confidence = probs.max(1).values.numpy()
    wrong = np.flatnonzero(pred != true)
    wrong = wrong[np.argsort(-confidence[wrong])][:wrong_count]
    titles = [f"{classes[true[i]]} -> {classes[pred[i]]}\n{confidence[i]:.2f}" for i in wrong]
    first_conv = next((m for m in trained.model.modules() if isinstance(m, nn.Conv2d)), None)
    image_index = min(max(image_index, 0), len(data.test_x) - 1)
    out = {
        "accuracy": float((pred == true).mean()),
        "probabilities": probs,
        "curves": _curves_png(run) if run.metrics else None,
        "confusion": figures.confusion_figure(cm, classes),
        "per_class": figures.per_class_scores(cm),
        "classes": classes,
        "wrong": figures.wrong_grid(data.test_x[wrong], titles) if len(wrong) else None,
        "filters": figures.filters_figure(first_conv.weight) if first_conv is not None else None,
        "feature_maps": figures.feature_maps_figure(data.test_x[image_index],
                                                    _conv_maps(trained, data.test_x[image_index])),
        "image_label": f"test image {image_index}: {classes[true[image_index]]}, predicted {classes[pred[image_index]]}",
    }
    return out


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f"<p class='none'>{html.escape(alt)}: nothing to show</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px}pre.prose{white-space:pre-wrap}img{max-width:100%}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child{text-align:left}.kv td{text-align:left}.warn{color:#a40}"""

# Marks the page once every embedded image has decoded, so a headless browser test can check it.
CHECK_SCRIPT = """<script>window.addEventListener('load',function(){var imgs=[].slice.call(document.images);
document.body.setAttribute('data-images-ok',imgs.filter(function(i){return i.naturalWidth>0}).length+'/'+imgs.length);});
</script>"""


def _rescue_section(run: Run) -> str:
    """The final run of `cnnlab rescue` carries its journal (rescue.json): the race and what it bought."""
    path = run.dir / "rescue.json"
    if not path.exists():
        return ""
    import json
    from .rescue_table import TABLE_HEAD, render_table, table_rows
    e = html.escape
    data = json.loads(path.read_text())
    if data.get("version") != 2:
        return ""
    head = "".join(f"<th>{e(h)}</th>" for h in TABLE_HEAD)
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table_rows(data))
    notes = "".join(f"<p>{e(line)}</p>" for line in render_table(data).split("\n\n", 1)[1].splitlines() if line)
    return (f"<section id='rescue'><h2>Rescue: what each change gave</h2><p>cnnlab rescue "
            f"{e(data['started']['name'])}, budget {e(data['budget'])}: the doctor's candidates raced to the same "
            "point of the same schedule, judged on a validation split; the winner trained on to the end.</p>"
            f"<table><tr>{head}</tr>{rows}</table>{notes}</section>")


def _fact(value) -> str:
    """A fact as a person reads it: 0.9619 (not 0.9619238476953907), 12.3 s, 1,234,567 parameters."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render_html(run: Run, figs: dict) -> str:
    from ..diagnose.facts import diagnose_run
    from ..diagnose.lint import lint
    result = run.result
    summary = (run.dir / "summary.txt").read_text() if (run.dir / "summary.txt").exists() else ""
    findings = lint(run.model)
    verdict = diagnose_run(run)
    e = html.escape
    facts = [("status", result.get("status")), ("data", result.get("data")), ("model", result.get("model")),
             ("started from", described(result.get("weights"))),
             ("test accuracy", result.get("test_acc")), (f"with {result.get('tta', 'flip')} TTA", result.get("test_acc_tta")),
             ("epochs", f"{result.get('epochs_completed')}/{result.get('epochs')}"),
             ("trainable parameters", result.get("params_trainable")), ("MACs per image", result.get("macs")),
             ("wall time (s)", result.get("wall_time_s")), ("device", result.get("device")),
             ("git commit", result.get("git_commit"))]
    rows = "".join(f"<tr><td>{e(k)}</td><td>{e(_fact(v))}</td></tr>" for k, v in facts if v is not None)
    per_class = "".join(
        f"<tr><td>{e(name)}</td><td>{s['support']}</td><td>{s['recall']:.3f}</td><td>{s['precision']:.3f}</td></tr>"
        for name, s in zip(figs["classes"], figs["per_class"]))
    lint_html = ("".join(f"<p class='warn'>{e(f.render())}</p>".replace("\n", "<br>") for f in findings)
                 or "<p>No lint findings.</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>cnnlab report: {e(run.dir.name)}</title>
<style>{STYLE}</style></head><body>
<h1>cnnlab report: {e(run.dir.name)}</h1>
<table class="kv">{rows}</table>
<section id="summary"><h2>Model summary and lint</h2><pre>{e(summary)}</pre>{lint_html}</section>
<section id="curves"><h2>Curves</h2>{_img(figs['curves'], 'loss and accuracy curves')}</section>
<section id="diagnosis"><h2>Diagnosis</h2><pre class="prose">{e(verdict.render())}</pre></section>
{_rescue_section(run)}
<section id="confusion"><h2>Confusion matrix</h2>{_img(figs['confusion'], 'confusion matrix')}</section>
<section id="per-class"><h2>Per-class accuracy, precision and recall</h2>
<table><tr><th>class</th><th>test images</th><th>accuracy (recall)</th><th>precision</th></tr>{per_class}</table></section>
<section id="wrong"><h2>Most confidently wrong</h2>{_img(figs['wrong'], 'misclassified test images')}</section>
<section id="filters"><h2>First-layer filters</h2>{_img(figs['filters'], 'first-layer filters')}</section>
<section id="feature-maps"><h2>Feature maps</h2><p>{e(figs['image_label'])}</p>
{_img(figs['feature_maps'], 'feature maps of every conv layer')}</section>
{CHECK_SCRIPT}</body></html>"""


def write_report(run_dir, image_index: int = 0, fmt: str = "html") -> Path:
    run = Run(run_dir)
    figs = build_figures(run, image_index)
    if fmt == "png":
        folder = run.dir / "report"
        for key in ("curves", "confusion", "wrong", "filters", "feature_maps"):
            if figs[key] is not None:
                write_bytes(folder / f"{key}.png", figs[key])
        return folder
    path = run.dir / "report.html"
    write_text(path, render_html(run, figs))
    return path
