"""Tables over recorded runs: the run list with filters, and side-by-side comparison of a few runs."""
from __future__ import annotations

import difflib
import json
import re

from ..errors import UserError, closest
from ..htmlrepr import block, esc, png, table as html_table
from ..models.layers import LayerError, normalise_entry

LIST_COLUMNS = ("id", "model", "data", "epochs_completed", "params", "test_acc", "final_acc", "wall_time_s",
                "status", "tags")
FILTER = re.compile(r"^([a-z_]+)\s*(>=|<=|!=|=|>|<|~)\s*(.*)$")


def flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "model":
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
    return out


def _match(run: dict, expr: str) -> bool:
    m = FILTER.match(expr.strip())
    if not m:
        raise UserError(f"--filter '{expr}': expected KEY OP VALUE with OP one of = != > < >= <= ~ "
                        "(e.g. data=cifar10, test_acc>0.8, tag=baseline, model~resnet)")
    key, op, want = m.groups()
    if key == "tag":
        return want in run["tags"] if op in ("=", "~") else want not in run["tags"]
    if key in ("sweep", "trial"):  # trials of `cnnlab sweep` carry the tags sweep:NAME and trial:N
        return (f"{key}:{want}" in run["tags"]) == (op in ("=", "~"))
    if key not in run:
        raise UserError(f"--filter '{expr}': unknown field '{key}'{closest(key, run)}; valid: "
                        f"{', '.join(k for k in run if k not in ('config', 'result'))}, tag")
    have = run[key]
    if op == "~":
        return want.lower() in str(have).lower()
    if op in ("=", "!="):
        return (str(have) == want) == (op == "=")
    if have is None:
        return False
    try:
        have, want_n = float(have), float(want)
    except ValueError:
        raise UserError(f"--filter '{expr}': {key} is not a number") from None
    return {">": have > want_n, "<": have < want_n, ">=": have >= want_n, "<=": have <= want_n}[op]


def select(runs: list[dict], filters: list[str] | None, sort: str | None) -> list[dict]:
    runs = [r for r in runs if all(_match(r, f) for f in filters or [])]
    if sort:
        key, reverse = (sort[1:], True) if sort.startswith("-") else (sort, False)
        if runs and key not in runs[0]:
            raise UserError(f"--sort '{key}': unknown field{closest(key, runs[0])}")
        runs.sort(key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0), reverse=reverse)
    return runs


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) <= 1 else f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value)


def table(rows: list[dict], columns: tuple | list, headers: list[str] | None = None) -> str:
    headers = headers or [c.replace("_", " ") for c in columns]
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(row) for row in cells])


def config_diff(configs: dict[str, dict]) -> dict[str, dict]:
    """{dotted key: {run id: value}} for every config key whose value differs between the runs (name aside)."""
    flat = {run_id: flatten(config) for run_id, config in configs.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    return {k: {run_id: f.get(k) for run_id, f in flat.items()} for k in keys
            if k != "name" and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat.values()}) > 1}


def _layer(entry) -> tuple[str, dict]:
    """(kind, every argument with its default) so `{conv: 32}` and `{conv: {filters: 32}}` compare equal; an
    entry that does not parse is compared as written."""
    try:
        return normalise_entry(entry, "layer")
    except (LayerError, UserError, TypeError, ValueError):
        return (entry if isinstance(entry, str) else str(next(iter(entry), "?"))), {"written": entry}


def model_diff(a_layers: list, b_layers: list) -> list[dict]:
    """Two layer lists side by side, aligned by layer kind (difflib's longest matching runs): one row per
    layer, {"op": "same" | "changed" | "removed" | "added", "kind", "a": position in a or None, "b": position
    in b or None, "changes": {key: [a's value, b's value]}} (positions 1-based, as the layers are numbered)."""
    a, b = [_layer(e) for e in a_layers], [_layer(e) for e in b_layers]
    rows = []
    matcher = difflib.SequenceMatcher(None, [k for k, _ in a], [k for k, _ in b], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                (kind, x), (_, y) = a[i], b[j]
                changes = {k: [x.get(k), y.get(k)] for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}
                rows.append({"op": "changed" if changes else "same", "kind": kind, "a": i + 1, "b": j + 1,
                             "changes": changes})
            continue
        rows += [{"op": "removed", "kind": a[i][0], "a": i + 1, "b": None, "changes": {}} for i in range(i1, i2)]
        rows += [{"op": "added", "kind": b[j][0], "a": None, "b": j + 1, "changes": {}} for j in range(j1, j2)]
    return rows


RESULT_KEYS = ("model", "data", "epochs_completed", "params", "macs", "test_acc", "final_acc", "val_acc",
               "wall_time_s", "device", "status")


def compare(runs: list[dict]) -> tuple[str, str]:
    """(config keys that differ, results side by side) as two text tables, for store rows."""
    ids = [r["id"] for r in runs]
    differ = config_diff({r["id"]: json.loads(r["config"] or "{}") for r in runs})
    config_rows = [{"key": k, **values} for k, values in differ.items()]
    config_table = table(config_rows, ["key"] + ids) if differ else "(the configs are identical)"
    result_rows = [{"result": k, **{r["id"]: r.get(k) for r in runs}} for k in RESULT_KEYS]
    return config_table, table(result_rows, ["result"] + ids)


RUN_RESULT_KEYS = ("status", "model", "data", "epochs_completed", "params_trainable", "macs", "test_acc",
                   "test_acc_tta", "final_acc", "wall_time_s", "device")  # result.json's, where the store has its own


class Comparison(dict):
    """What comparing runs returns (cnnlab/app/runs.py `compare`): a plain dict, as the web page gets it in
    JSON, that a notebook shows as tables — config keys that differ, results side by side, each later model's
    layers against the first's — and the overlaid curves, drawn only when shown (`draw_curves` gives PNG
    bytes; the server never pays for them)."""

    def __init__(self, data: dict, draw_curves=None):
        super().__init__(data)
        self.draw_curves = draw_curves

    def _repr_html_(self) -> str:
        ids = list(self["results"])
        if self["differ"]:
            differ = html_table(["config key", *ids], [[k, *(_cell(v.get(i)) for i in ids)]
                                                  for k, v in self["differ"].items()])
        else:
            differ = "<div>the configs are identical</div>"
        keys = [k for k in RUN_RESULT_KEYS if any(k in r for r in self["results"].values())]
        results = html_table(["result", *ids], [[k, *(_cell(self["results"][i].get(k)) for i in ids)] for k in keys],
                        right=tuple(range(1, len(ids) + 1)))
        parts = [f"<b>{esc(' vs '.join(ids))}</b>", differ, results]
        for run_id, rows in self.get("model_diff", {}).items():
            changed = [[r["op"], r["kind"], _cell(r["a"]), _cell(r["b"]),
                        "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in r["changes"].items())]
                       for r in rows if r["op"] != "same"]
            if changed:
                parts += [f"<div>layers of {esc(run_id)} against {esc(ids[0])}</div>",
                          html_table(["", "layer", ids[0], run_id, "changes"], changed)]
        if self.draw_curves is not None:
            parts.append(f"<div>{png(self.draw_curves(), 'loss and accuracy curves of the runs', width=660)}</div>")
        return block(*parts)
