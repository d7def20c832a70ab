"""`cnnlab sweep report NAME`: the best config as a ready-to-train YAML, the trials table, and Optuna's own
plots (optimisation history, parameter importances, slice, parallel coordinates) in one self-contained page."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from .. import config as config_mod
from ..errors import UserError
from ..fsutil import write_text
from .runner import open_study, sweep_dir
from .spec import SweepSpec, apply_params, base_config


def _png(axes) -> str:
    import matplotlib.pyplot as plt
    fig = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    fig.set_size_inches(7, 4)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def trials_table(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        rows.append({"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                     "epochs": len(t.intermediate_values), "run": Path(t.user_attrs.get("run", "")).name,
                     **{k: v for k, v in t.params.items()}})
    return rows


def write_sweep_report(spec: SweepSpec, runs_root: Path, url: str | None = None) -> tuple[Path, Path]:
    from ..mplbackend import headless
    headless()
    import optuna
    from optuna.visualization import matplotlib as ov
    study = open_study(spec, runs_root, url)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise UserError(f"sweep {spec.name}: no complete trial yet; run `cnnlab sweep` first")
    folder = sweep_dir(runs_root, spec.name)
    best = study.best_trial
    best_cfg = apply_params(base_config(spec), best.params)
    best_cfg["name"] = f"{spec.name}-best"
    best_path = folder / "best.yaml"
    write_text(best_path, f"# best of sweep {spec.name}: trial {best.number}, {spec.objective} {best.value:.4f}\n"
                          f"# train it with: cnnlab train {best_path}\n" + config_mod.dump(best_cfg))
    figures = {}
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figures["Optimisation history"] = _png(ov.plot_optimization_history(study))
        if len(complete) >= 2 and len(spec.space) >= 1:
            try:
                figures["Parameter importances"] = _png(ov.plot_param_importances(study))
            except (RuntimeError, ValueError, ZeroDivisionError):
                pass
        figures["Slice"] = _png(ov.plot_slice(study))
        if len(spec.space) >= 2:
            figures["Parallel coordinates"] = _png(ov.plot_parallel_coordinate(study))
    rows = trials_table(study)
    columns = list(rows[0]) if rows else []
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))  # noqa: E731
    table = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows) + "</table>"
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running")}
    epochs = sum(r["epochs"] for r in rows)
    full = len([r for r in rows if r["state"] in ("complete", "pruned")]) * base_config(spec).epochs
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sweep {html.escape(spec.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:.25rem .5rem;font-size:.85rem;text-align:left}}img{{max-width:100%}}</style>
</head><body><h1>Sweep {html.escape(spec.name)}</h1>
<p>{spec.sampler} sampler, {spec.pruner} pruner, objective {spec.objective} ({spec.direction}), final epoch of
each trial on the validation split. Trials: {counts}. Epochs trained: {epochs} of {full} without pruning
({100 * (1 - epochs / max(full, 1)):.0f}% saved).</p>
<h2>Best: trial {best.number}, {spec.objective} {best.value:.4f}</h2>
<pre>{html.escape(best_path.read_text())}</pre>
<h2>Trials</h2>{table}
{''.join(f'<h2>{html.escape(k)}</h2><img alt="{html.escape(k)}" src="data:image/png;base64,{v}">' for k, v in figures.items())}
</body></html>"""
    out = folder / "report.html"
    write_text(out, page)
    return out, best_path
