"""What `cnnlab summary` and `cnnlab lint` say about a model, as data for a front-end: each top-level layer
with its output shape, parameters and the lint findings that concern it; the totals; and, for a model that
cannot be built, the layer that fails and why (the layers before it keep their shapes)."""
from __future__ import annotations

from ..models import build_model
from ..models.layers import fmt_shape
from ..models.summary import count_params, summarize
from .lint import lint, lint_spec


def check_model(spec, input_shape, num_classes: int) -> dict:
    error, findings = lint_spec(spec, input_shape, num_classes)
    if error is None:
        summary = summarize(build_model(spec, input_shape, num_classes))
        # a block (residual, concat) counts the parameters and MACs of the layers inside it, as the page
        # draws it as one block; the summary's own row for it holds only its own (none)
        inside = lambda top, key: sum(getattr(r, key) for r in summary.rows  # noqa: E731
                                      if r.index == top or r.index.startswith(top + "."))
        rows = [{"index": r.index, "layer": r.layer, "out_shape": fmt_shape(r.out_shape),
                 "params": inside(r.index, "params"), "macs": inside(r.index, "macs")}
                for r in summary.rows if r.depth == 0]
        totals = {"params": summary.total, "trainable": summary.trainable, "non_trainable": summary.non_trainable,
                  "macs": summary.macs}
        bad = None
    else:
        built = getattr(error, "partial", []) or []
        rows = [{"index": i.index, "layer": i.desc, "out_shape": fmt_shape(i.out_shape),
                 "params": sum(count_params(i.module)), "macs": i.macs} for i in built]
        totals = None
        message = str(error)
        # "model.yaml line 7: layer 4: conv ...": the failing layer's position, for the page to mark
        position = message.split(": layer ", 1)[1].split(":", 1)[0].split(" ")[0] if ": layer " in message else None
        bad = {"layer": position, "message": message}
    by_layer: dict[str, list] = {}
    for f in findings:
        item = {"rule": f.rule, "layers": f.layers, "message": f.message, "why": f.why, "fix": f.fix, "edit": f.edit}
        by_layer.setdefault(f.layers[0].split(".")[0], []).append(item)
    for row in rows:
        row["findings"] = by_layer.get(row["index"], [])
    return {"input_shape": list(input_shape), "num_classes": num_classes, "layers": rows, "totals": totals,
            "error": bad, "findings": [dict(rule=f.rule, layers=f.layers, message=f.message, why=f.why, fix=f.fix,
                                            edit=f.edit) for f in findings]}


__all__ = ["check_model", "lint"]
