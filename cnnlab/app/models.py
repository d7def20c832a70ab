"""A model before training: check, summarise and lint it against a data set, start from a template, move it
between YAML text and layer lists, and import one written in Keras or PyTorch."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..diagnose.check import check_model
from ..diagnose.lint import Finding, lint, lint_spec, render as render_lint
from ..errors import NotFound, UserError
from ..models import build_model, list_models, model_spec, resolve_spec
from ..models.layers import normalise_entry, written_args
from ..models.pretrained import IMAGENET, IMAGENET_CLASSES, IMAGENET_INPUT, PUBLISHED, model_name
from ..models.summary import Summary, render as render_summary, summarize
from ..models.templates import TEMPLATES
from ..yamlio import load_yaml, parse_yaml
from .datasets import data_for_shape, input_for


@dataclass
class ModelArg:
    """What `cnnlab summary | lint MODEL` was given, resolved: the model (with its file lines) and the data set
    it is for (from --data, else the config file's data.name, else cifar10)."""
    spec: object
    data: str


def model_arg(model: str, data: str | None = None) -> ModelArg:
    """A model YAML, a training config holding `model:`, or a registered name."""
    spec = model
    if model.endswith((".yaml", ".yml")):
        located = load_yaml(model)
        if isinstance(located.data, dict) and "model" in located.data and "layers" not in located.data:
            if data is None and isinstance(located.data.get("data"), dict):
                data = located.data["data"].get("name")
            spec = located.sub(("model",))
            if isinstance(spec.data, str) and spec.data.endswith((".yaml", ".yml")):
                spec = spec.data
        else:
            spec = located
    if data is None and isinstance(spec, str) and model_name(spec) in PUBLISHED:
        data = IMAGENET  # an ImageNet architecture is shown at the input and classes its weights were made for
    return ModelArg(spec, data or "cifar10")


def _input(data: str, data_dir: str | None, root: str | None) -> tuple[tuple, int]:
    """A data set's input shape and classes; `imagenet` (summary and lint only: cnnlab has no loader for it) is
    ImageNet's as torchvision's published weights take it, 3x224x224 and 1000 classes."""
    if data == IMAGENET:
        return IMAGENET_INPUT, IMAGENET_CLASSES
    return input_for(data, data_dir, root)


@dataclass
class ModelReport:
    """A model's summary (None when it cannot be built), its lint findings, and the build error if any."""
    summary: Summary | None
    findings: list[Finding]
    error: UserError | None = None
    batch_size: int = 256

    def render(self, lint_always: bool = False) -> str:
        """The summary table, then the findings (`lint: no findings` said only when `lint_always`)."""
        parts = [render_summary(self.summary, self.batch_size)] if self.summary else []
        if self.findings or lint_always or self.summary is None:
            parts.append(render_lint(self.findings))
        return "\n".join(parts)


def summary(model, data: str = "cifar10", data_dir: str | None = None, root: str | None = None,
            batch_size: int = 256) -> ModelReport:
    """Layer table, parameters, MACs and memory, with the lint findings (raises if the model cannot be built)."""
    shape, classes = _input(data, data_dir, root)
    built = build_model(model, shape, classes)
    return ModelReport(summarize(built), lint(built), batch_size=batch_size)


def lint_model(model, data: str = "cifar10", data_dir: str | None = None, root: str | None = None) -> ModelReport:
    """Findings for a model; one that cannot be built gets its error and every finding still possible."""
    shape, classes = _input(data, data_dir, root)
    error, findings = lint_spec(model, shape, classes)
    return ModelReport(None, findings, error)


def check(model, data: str = "cifar10", data_dir: str | None = None) -> dict:
    """Every top-level layer's output shape, parameters and findings, the totals, and the failing layer: what
    the Build page draws as the model is edited."""
    shape, classes = input_for(data, data_dir, skip_empty=True)  # as the pages train a folder: its empty class left out
    return check_model(model, shape, classes)


def apply_fix(model, rule: str, layers: list[str], data: str = "cifar10", data_dir: str | None = None) -> dict:
    """Apply lint's mechanical fix for the finding `rule` at `layers` (as /api/check gave them): the new layer
    list, the 1-based positions of the layers it added or changed (for the page to highlight), and one line
    saying what changed. The model is linted again here, so the edit is the server's, never the page's."""
    shape, classes = input_for(data, data_dir)
    written = resolve_spec(model, shape, classes).data.get("layers")
    if not isinstance(written, list):
        raise UserError("model: a fix edits a layer list; this model has none")
    _, findings = lint_spec(model, shape, classes)
    finding = next((f for f in findings if f.rule == rule and f.layers == list(layers)), None)
    if finding is None:
        found = ", ".join(f"{f.rule} at layer {', '.join(f.layers)}" for f in findings) or "none"
        raise UserError(f"fix: no finding '{rule}' at layer {', '.join(layers)} in this model; its findings: {found}")
    if finding.edit is None:
        raise UserError(f"fix: '{rule}' has no mechanical fix; by hand: {finding.fix}")
    items = [{"entry": entry, "at": str(n + 1), "changed": False} for n, entry in enumerate(written)]
    said = [_apply_step(items, step) for step in finding.edit]
    return {"layers": [i["entry"] for i in items], "changed": [str(n + 1) for n, i in enumerate(items) if i["changed"]],
            "description": "; ".join(said)}


def _kind(entry) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def _apply_step(items: list[dict], step: dict) -> str:
    """One step of a lint edit on `items` (each layer's entry and its position before the fix); what it did."""
    n = next(n for n, i in enumerate(items) if i["at"] == step["layer"])
    kind = _kind(items[n]["entry"])
    if step["op"] == "remove":
        del items[n]
        return f"removed layer {step['layer']} ({kind})"
    if step["op"] == "replace":
        items[n] = {"entry": step["entry"], "at": None, "changed": True}
        return f"replaced layer {step['layer']} ({kind}) by {_kind(step['entry'])}"
    if step["op"] == "insert":
        items.insert(n + (step["where"] == "after"), {"entry": step["entry"], "at": None, "changed": True})
        return f"added {_kind(step['entry'])} {step['where']} layer {step['layer']} ({kind})"
    # set: the entry written out as {kind: {args}}, the key set (or dropped: back to its default)
    kind, args = written_args(items[n]["entry"])
    if step["value"] is None:
        args.pop(step["key"], None)
        what = f"dropped {step['key']} from layer {step['layer']} ({kind})"
    else:
        args[step["key"]] = step["value"]
        value = str(step["value"]).lower() if isinstance(step["value"], bool) else step["value"]  # as YAML writes it
        what = f"set {step['key']}: {value} on layer {step['layer']} ({kind})"
    items[n].update(entry={kind: args} if args else kind, changed=True)
    return what


def refuse_code(model, where: str = "model") -> None:
    """`{module: package.module:Class}` imports and calls Python code, and a path reads a file: fine from a
    local config file, refused for a model that arrives over the network (it would run any callable)."""
    stack = [model]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and ("/" in node or "\\" in node or node.endswith((".yaml", ".yml"))):
            raise UserError(f"{where}: a file path is not read over the network; send the layers, or a "
                            "registered name")
        if isinstance(node, dict):
            if "module" in node:
                raise UserError(f"{where}: a {{module: ...}} model imports Python code and is refused over the "
                                "network; write it as layers, or train it from the CLI")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def templates() -> list[str]:
    return list(TEMPLATES)


def template(name: str, data: str = "cifar10", data_dir: str | None = None) -> dict:
    """A starting point's layers: a Build-page template, or a registered architecture written out."""
    if name in TEMPLATES:
        return {"name": name, "layers": TEMPLATES[name]}
    if name not in list_models():
        raise NotFound(f"no template or model named '{name[:60]}'; valid: {', '.join(templates() + list_models())}")
    shape, classes = input_for(data, data_dir)
    spec = model_spec(name, shape, classes)
    return {"name": spec.get("name", name), "layers": spec["layers"]}


def to_yaml(model, name: str = "model", data: str = "cifar10", data_dir: str | None = None) -> str:
    """A model as the YAML file a user would save (a registered name written out for `data`'s images)."""
    spec = resolve_spec(model, *input_for(data, data_dir)).data
    spec = {"name": name, **{k: v for k, v in spec.items() if k != "name"}}
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=110)


def parse_layers(text: str, source: str = "uploaded model", data: str = "cifar10", data_dir: str | None = None) -> dict:
    """A model file's text -> {name, layers}, each layer checked against the schema naming its line (a
    registered name written out for `data`'s images)."""
    located = parse_yaml(text, source)
    refuse_code(located.data)
    spec = resolve_spec(located, *input_for(data, data_dir))
    if not isinstance(spec.data.get("layers"), list):
        raise UserError(f"{source}: the builder edits layer lists; a {{module: ...}} model cannot be edited")
    for i, entry in enumerate(spec.data["layers"]):
        normalise_entry(entry, f"{spec.where(('layers', i))}: layer {i + 1}")
    return {"name": spec.data.get("name", "model"), "layers": spec.data["layers"]}


def models(pattern: str = "*") -> list[dict]:
    from ..models.registry import describe, options
    return [{"name": n, "about": describe(n), "options": options(n)} for n in list_models(pattern)]


@dataclass
class ImportReport:
    out: Path
    data: str
    layers: int
    report: ModelReport
    notes: list[str] = field(default_factory=list)
    framework: str = "Keras"
    source_params: int | None = None  # what the source framework counts, when it was counted (PyTorch)

    def render(self) -> str:
        return "\n".join([f"note: {n}" for n in self.notes] + [self.report.render(lint_always=True)] +
                         [f"wrote {self.out} ({self.layers} layers, checked against {self.data}); train it with: "
                          f"cnnlab train {self.out} --data {self.data}"])


def with_arguments(source: str, args: str) -> str:
    """`vgg.py:VGG` and `--args "'VGG16'"` -> `vgg.py:VGG('VGG16')`."""
    from ..interop.pytorch import parse_target
    where, name, given, named = parse_target(source)
    if name is None or given or named:
        raise UserError(f"--args {args}: goes with a PyTorch reference without arguments, FILE.py:Name or "
                        f"package.module:Name; got {source}")
    return f"{where}:{name}({args})"


def import_model(source: str, out: str | None = None, data: str | None = None, data_dir: str | None = None,
                 root: str | None = None, overwrite: bool = False, args: str | None = None) -> ImportReport:
    """A model from another framework -> a model file with a comment per layer, checked against the data set
    its input shape names (or `data`). `source`: Keras code (a Sequential model, its `model.add(...)` lines
    alone, or the functional API), Keras JSON, a .keras file, `-` (standard input), or a PyTorch nn.Module as
    `file.py:Class`, `package.module:Class` or a .py file defining one."""
    from ..fsutil import write_text
    from ..interop import read_model
    from ..interop.imported import to_yaml as model_yaml
    if args is not None:
        source = with_arguments(source, args)
    text = sys.stdin.read() if source == "-" else None
    traced_on = input_for(data, data_dir, root)[0] if data else None  # a PyTorch module runs on the data's images
    imported = read_model(source, text, traced_on)
    path = Path(out or f"{Path(imported.file).stem if imported.file else imported.name}.yaml")
    if path.exists() and not overwrite:
        raise UserError(f"{path}: already exists; choose another -o, or pass --overwrite")
    if data is None and imported.input_shape is not None:
        data = data_for_shape(imported.input_shape, imported.spec)
    data = data or "cifar10"
    shape, classes = input_for(data, data_dir, root)
    notes = []
    if imported.input_shape and tuple(imported.input_shape) != tuple(shape):
        notes.append(f"the {imported.framework} model was written for input {imported.input_shape}; {data} gives "
                     f"{shape}")
    try:
        built = build_model(imported.spec, shape, classes)  # fails before anything is written
    except UserError as exc:
        raise UserError(f"{source} as imported: {exc}") from None
    write_text(path, model_yaml(imported, source))
    notes += imported.all_notes()
    return ImportReport(path, data, len(imported.spec["layers"]), ModelReport(summarize(built), lint(built)), notes,
                        imported.framework, imported.params)


import_keras_model = import_model  # the name this had when only Keras was read


__all__ = ["ModelArg", "ModelReport", "apply_fix", "check", "import_keras_model", "import_model", "lint_model",
           "model_arg", "models", "parse_layers", "refuse_code", "summary", "template", "templates", "to_yaml"]
