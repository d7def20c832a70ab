"""`cnnlab lint`: read a model written in the layer language and point at what will hold it back.

Each finding names the layers, says in one sentence why it matters, and gives the fix. Rules work on the
built layer list (`LayerInfo`: kind, arguments, input and output shapes), so they need no training.

A finding whose fix is a mechanical edit of the top-level layer list also carries it as data (`edit`), so a
front end can apply it with one click (cnnlab.app.models.apply_fix): a list of steps, each one of
  {"op": "remove", "layer": "8"}
  {"op": "insert", "layer": "3", "where": "after" | "before", "entry": "relu"}
  {"op": "set", "layer": "7", "key": "activation", "value": None}     (None: back to the default)
  {"op": "replace", "layer": "6", "entry": "global_avgpool"}
with layers numbered as the finding numbers them (1-based, before any step is applied).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from ..models.build import SpecModel, build_model, resolve_spec
from ..models.layers import ACTIVATIONS, LayerError, LayerInfo, fmt_shape, normalise_entry
from ..models.summary import count_params

WEIGHTED = ("conv", "dense")
# Layers that are affine maps: a stack of them with weights is still one linear map.
AFFINE = ("conv", "dense", "pad", "batchnorm", "dropout", "spatial_dropout", "flatten", "avgpool", "global_avgpool",
          "scale")


@dataclass
class Finding:
    rule: str
    layers: list[str]
    message: str
    why: str
    fix: str
    edit: list[dict] | None = None  # the fix as steps on the top-level layer list, when it is mechanical

    def render(self) -> str:
        return f"warning [{self.rule}] layer{'s' if len(self.layers) > 1 else ''} " \
               f"{', '.join(self.layers)}: {self.message}\n  why: {self.why}\n  fix: {self.fix}"


def _has_activation(info: LayerInfo) -> bool:
    if info.kind in ACTIVATIONS or info.kind in ("maxpool", "global_maxpool"):
        return True
    if info.kind in ("residual", "concat"):
        return True  # the block boundary: its layers (or branches) are linted on their own
    return info.kind in WEIGHTED and info.args.get("activation") not in (None, "linear", "none", "identity")


def _linear_stacks(infos: list[LayerInfo]) -> list[Finding]:
    findings, run = [], []
    for info in infos:
        if info.kind in AFFINE and not _has_activation(info):
            run.append(info)
            continue
        if info.kind in WEIGHTED:  # a weighted layer with its own activation ends the stack including itself
            run.append(info)
        findings += _report_stack(run)
        run = []
    return findings + _report_stack(run)


def _report_stack(run: list[LayerInfo]) -> list[Finding]:
    weighted = [i for i in run if i.kind in WEIGHTED]
    if len(weighted) < 2:
        return []
    # narrower in the middle than at both ends is a linear bottleneck (MobileNetV2, EfficientNet; Sandler et al.
    # 2018): a low-rank factorisation on purpose, where a nonlinearity would lose what the narrow map carries
    if min(i.out_shape[0] for i in weighted[:-1]) < min(weighted[0].in_shape[0], weighted[-1].out_shape[0]):
        return []
    first = weighted[0]
    return [Finding(
        "linear-stack", [i.index for i in weighted],
        f"{' -> '.join(i.desc for i in weighted)} have no nonlinearity between them",
        "without an activation (or max pooling) in between, stacked conv/dense layers collapse into a single "
        "linear map, so the extra layers add parameters and time but no power",
        f"add `activation: relu` to layer {first.index} (or a `relu` layer after it)",
        _edit({"op": "insert", "layer": first.index, "where": "after", "entry": "relu"}))]


def _output_findings(infos: list[LayerInfo], num_classes: int) -> list[Finding]:
    last = infos[-1]
    act = last.kind if last.kind in ACTIVATIONS else last.args.get("activation") if last.kind == "dense" else None
    if act == "softmax":
        return [Finding("softmax-output", [last.index], "the model ends with a softmax",
                        "cnnlab's loss (like PyTorch's CrossEntropyLoss) applies softmax itself; a softmax output "
                        "gives a double softmax in PyTorch code and weaker, less stable gradients",
                        f"remove the softmax: end with `dense: {num_classes}` (logits); predictions still "
                        "report probabilities", _unactivate(last))]
    if act in ("sigmoid", "tanh") and num_classes > 2:
        return [Finding("squashed-output", [last.index], f"the model ends with {act} for {num_classes} classes",
                        f"{act} squeezes every score into a narrow range, so the classes cannot be told apart "
                        "confidently and gradients vanish as scores saturate",
                        f"remove the {act}: end with `dense: {num_classes}` (logits)", _unactivate(last))]
    return []


def _edit(*steps: dict) -> list[dict] | None:
    """The steps, when every one concerns a top-level layer (a layer inside a block, "3.2", is edited by hand)."""
    return list(steps) if all("." not in step["layer"] for step in steps) else None


def _unactivate(last: LayerInfo) -> list[dict] | None:
    """Drop the output's squashing: the activation layer itself, or the last dense's `activation`."""
    if last.kind in ACTIVATIONS:
        return _edit({"op": "remove", "layer": last.index})
    return _edit({"op": "set", "layer": last.index, "key": "activation", "value": None})


def _walk(infos: list[LayerInfo]):
    for info in infos:
        yield info
        yield from _walk(info.children)


def _dense_on_maps(infos) -> list[Finding]:
    return [Finding("dense-on-feature-map", [i.index], f"{i.desc} receives a {fmt_shape(i.in_shape)} feature map",
                    "a dense layer on a feature map acts on each position's channels separately (like a 1x1 conv), "
                    "which is rarely what a Keras-style classifier head means",
                    f"put `flatten` or `global_avgpool` before layer {i.index}",
                    _edit({"op": "insert", "layer": i.index, "where": "before", "entry": "global_avgpool"}))
            for i in _walk(infos) if i.kind == "dense" and len(i.in_shape) == 3]


def _spatial_findings(infos: list[LayerInfo]) -> list[Finding]:
    findings = []
    flat = list(_walk(infos))
    collapsed = next((n for n, i in enumerate(flat) if len(i.out_shape) == 3 and i.out_shape[1:] == (1, 1)), None)
    if collapsed is not None:
        later = [i for i in flat[collapsed + 1:] if i.kind == "conv" and max(_pair(i.args["kernel"])) > 1]
        if later:
            findings.append(Finding(
                "early-collapse", [flat[collapsed].index] + [i.index for i in later],
                f"the feature map is 1x1 after layer {flat[collapsed].index}, but {len(later)} conv layer(s) with "
                "kernels larger than 1 follow",
                "a 3x3 kernel on a 1x1 map only multiplies its centre weight; the rest see padding and are wasted",
                "remove a pooling/stride-2 layer earlier, or replace the later convs by 1x1 convs or dense layers"))
    in_branches = {id(layer) for i in flat if i.kind == "concat" for b in i.children for layer in b.children}
    for i in flat:
        if i.kind == "conv" and len(i.in_shape) == 3:
            k = _pair(i.args["kernel"])
            if k[0] > i.in_shape[1] or k[1] > i.in_shape[2]:
                findings.append(Finding("kernel-larger-than-input", [i.index],
                                        f"{i.desc} has a {k[0]}x{k[1]} kernel on a {i.in_shape[1]}x{i.in_shape[2]} input",
                                        "most of the kernel only ever sees padding",
                                        "use a kernel no larger than the input, or pool less before this layer"))
        if i.kind in ("maxpool", "avgpool") and id(i) not in in_branches:  # Inception's pooling branch keeps the size
            stride = _pair(i.args["stride"] if i.args["stride"] is not None else i.args["size"])
            if stride == (1, 1):
                findings.append(Finding("pool-stride-1", [i.index], f"{i.desc} has stride 1",
                                        "pooling with stride 1 does not reduce the map; it costs time for little gain",
                                        "use stride 2 (the default: stride = size), or remove the layer",
                                        _edit({"op": "set", "layer": i.index, "key": "stride", "value": 2})))
    return findings


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def dense_head(model: SpecModel):
    """(layer info, its share of all parameters, its count, the total) when a dense layer holds more than half
    of the model's parameters (typically the first dense after flatten), else None. Lint and the doctor's facts
    both ask this."""
    total = sum(count_params(model))
    top = max(model.infos, key=lambda i: sum(count_params(i.module)))
    count = sum(count_params(top.module))
    share = count / max(total, 1)
    if share <= 0.5 or top.kind != "dense":  # a conv holding most weights is normal; a dense one is the head
        return None
    return top, share, count, total


def _param_hog(model: SpecModel) -> list[Finding]:
    head = dense_head(model)
    if head is None or head[3] < 100_000:
        return []
    top, share, count, total = head
    position = next((n for n, i in enumerate(model.infos) if i is top), None)  # None: inside a block
    before = model.infos[position - 1] if position else None
    edit = _edit({"op": "replace", "layer": before.index, "entry": "global_avgpool"}) \
        if before is not None and before.kind == "flatten" else None
    return [Finding("parameter-hog", [top.index], f"{top.desc} holds {share:.0%} of all parameters "
                    f"({count:,} of {total:,})",
                    "one oversized layer (typically the first dense after flatten) memorises the training set "
                    "quickly and dominates the cost, while the convolutions do the real work",
                    f"use `global_avgpool` instead of `flatten` before it, or narrow layer {top.index}", edit)]


def _order_findings(infos: list[LayerInfo]) -> list[Finding]:
    findings = []
    for seq in [infos] + [i.children for i in _walk(infos) if i.children]:
        for a, b in zip(seq, seq[1:]):
            if a.kind == "batchnorm" and b.kind in ("dropout", "spatial_dropout") and b.args["rate"] > 0:
                findings.append(Finding("batchnorm-then-dropout", [a.index, b.index],
                                        f"batchnorm is followed directly by {b.desc}",
                                        "dropout changes the variance of what BatchNorm normalised, so statistics "
                                        "learned in training do not hold at test time (Li et al. 2018, "
                                        "arXiv:1801.05134)",
                                        "move the dropout after the next pooling or activation, or to the dense "
                                        "head only"))
            if a.kind in ("dropout", "spatial_dropout") and a.args["rate"] > 0:
                nxt = b
                if nxt.kind in ACTIVATIONS:
                    idx = seq.index(b)
                    nxt = seq[idx + 1] if idx + 1 < len(seq) else None
                if nxt is not None and nxt.kind == "batchnorm":
                    findings.append(Finding("dropout-before-batchnorm", [a.index, nxt.index],
                                            f"{a.desc} feeds batchnorm (layer {nxt.index})",
                                            "BatchNorm learns the variance of dropped-out activations in training "
                                            "but sees a different variance at test time (the variance shift, "
                                            "Li et al. 2018, arXiv:1801.05134)",
                                            "put the dropout after BatchNorm and the activation, or drop it"))
            if a.kind == "conv" and b.kind == "batchnorm" and a.args["bias"] and a.args.get("activation") in (None, "linear"):
                findings.append(Finding("bias-before-batchnorm", [a.index, b.index],
                                        f"{a.desc} has a bias and is followed by batchnorm",
                                        "BatchNorm subtracts the mean, cancelling the bias: those parameters are "
                                        "wasted", f"set `bias: false` on layer {a.index}",
                                        _edit({"op": "set", "layer": a.index, "key": "bias", "value": False})))
    return findings


def _weighted(info: LayerInfo) -> bool:
    return info.kind in WEIGHTED + ("whiten", "batchnorm") or any(_weighted(c) for c in info.children)


def _branch_findings(infos: list[LayerInfo]) -> list[Finding]:
    """Two branches of a concat written alike with no weights compute the same values: the block only
    repeats channels. (Alike branches with weights differ from the first step: each starts from its own
    random weights.)"""
    findings = []
    for block in (i for i in _walk(infos) if i.kind == "concat"):
        seen: dict[str, LayerInfo] = {}
        for branch, written in zip(block.children, block.args["branches"]):
            if _weighted(branch):
                continue
            key = repr(written)
            if key in seen:
                first = seen[key]
                what = "the input itself" if not written else "the same " + ", ".join(c.desc for c in branch.children)
                findings.append(Finding(
                    "duplicate-branch", [first.index, branch.index],
                    f"{first.desc.split(' (')[0]} and {branch.desc.split(' (')[0]} of layer {block.index} both "
                    f"give {what}",
                    "branches without weights that are written alike compute the same values, so the block "
                    "repeats those channels and the next layer pays for them twice",
                    f"remove branch {branch.index.rsplit('.', 1)[1]} of layer {block.index}"))
            else:
                seen[key] = branch
    return findings


def _depth_findings(infos: list[LayerInfo], num_classes: int) -> list[Finding]:
    findings = []
    flat = list(_walk(infos))
    convs = [i for i in flat if i.kind == "conv"]
    head = next((n for n, i in enumerate(infos) if i.kind in ("flatten", "global_avgpool", "global_maxpool")), None)
    if head is not None:
        feeding = [i for i in infos[:head] if i.kind == "conv"]
        if feeding and feeding[-1].args["filters"] <= 4 and feeding[-1].args["filters"] != num_classes:
            last = feeding[-1]
            findings.append(Finding("too-few-filters", [last.index],
                                    f"{last.desc} gives the classifier only {last.args['filters']} channel(s)",
                                    "the classifier sees just a few numbers per position: a bottleneck that "
                                    "caps accuracy however long you train",
                                    f"use 32-128 filters in layer {last.index}",
                                    _edit({"op": "set", "layer": last.index, "key": "filters", "value": 32})))
    has_residual = any(i.kind == "residual" for i in flat)
    has_norm = any(i.kind == "batchnorm" for i in flat)
    if len(convs) > 20 and not has_residual and not has_norm:
        findings.append(Finding("deep-plain-net", [convs[0].index, convs[-1].index],
                                f"{len(convs)} conv layers with no residual connections or normalisation",
                                "gradients fade through a deep plain stack, so such nets train worse than "
                                "shallower ones (He et al. 2015)",
                                "add `batchnorm` after each conv, or wrap pairs of convs in `residual:` blocks",
                                _edit(*({"op": "insert", "layer": c.index, "where": "after", "entry": "batchnorm"}
                                        for c in convs))))
    return findings


def lint(model: nn.Module) -> list[Finding]:
    """All findings for a built model; [] for a clean model or a user's own nn.Module (not in the language)."""
    if not isinstance(model, SpecModel):
        return []
    return _lint_infos(model.infos, model.num_classes) + _param_hog(model)


FROM_SCRATCH_LR = {"sgd": 0.05, "muon": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adadelta": 1.0}


def lint_training(cfg) -> list[Finding]:
    """Findings about how a model starting from weights is trained (a TrainConfig; pure)."""
    findings = []
    ft = cfg.finetune
    if ft is not None and ft.freeze == "body" and (ft.head_epochs == "all" or ft.head_epochs >= cfg.epochs) \
            and cfg.epochs > 10:
        findings.append(Finding(
            "frozen-too-long", ["body"], f"only the classifier trains, for all {cfg.epochs} epochs",
            "a classifier on fixed features learns what it can in a few epochs; the rest of the run buys nothing "
            "unless the body adapts to the new images",
            "finetune: {head_epochs: 2} unfreezes the body after 2 epochs (or train fewer epochs)"))
    scratch = FROM_SCRATCH_LR.get(cfg.optimizer.name)
    if cfg.weights and ft is None and scratch and cfg.optimizer.lr >= scratch:
        findings.append(Finding(
            "finetune-at-scratch-rate", ["all"], f"every layer starts from {cfg.weights} and trains at "
            f"lr {cfg.optimizer.lr:g}, a from-scratch rate",
            "the first steps at that rate, with a new classifier's large gradients, wash out much of what the "
            "weights knew",
            "finetune: {freeze: body, head_epochs: 1} (the head first, then lower rates for the early layers), "
            f"or --lr {cfg.optimizer.lr / 10:g}"))
    return findings


def lint_spec(spec, input_shape, num_classes: int) -> tuple[UserError | None, list[Finding]]:
    """(the build error or None, findings) for a model that may not build: the rules still read every layer
    built before the bad one, and the last layer as written (a softmax output is worth saying either way)."""
    try:
        return None, lint(build_model(spec, input_shape, num_classes))
    except LayerError as exc:
        infos = exc.partial
        findings = _lint_infos(infos, num_classes, output=False) if infos else []
        last = _last_as_written(spec, input_shape, num_classes)
        if last is not None:
            findings += _output_findings([last], num_classes)
        return exc, findings


def _last_as_written(spec, input_shape, num_classes) -> LayerInfo | None:
    try:
        layers = resolve_spec(spec, input_shape, num_classes).data["layers"]
        kind, args = normalise_entry(layers[-1], "model")
    except (UserError, KeyError, TypeError, IndexError):
        return None
    return LayerInfo(str(len(layers)), kind, kind, args, (), (), None)


def _lint_infos(infos: list[LayerInfo], num_classes: int, output: bool = True) -> list[Finding]:
    findings = []
    for seq in [infos] + [i.children for i in _walk(infos) if i.children]:
        findings += _linear_stacks(seq)
    if output:
        findings += _output_findings(infos, num_classes)
    findings += _dense_on_maps(infos)
    findings += _spatial_findings(infos)
    findings += _order_findings(infos)
    findings += _branch_findings(infos)
    findings += _depth_findings(infos, num_classes)
    return findings


def render(findings: list[Finding]) -> str:
    if not findings:
        return "lint: no findings"
    return "\n".join(f.render() for f in findings) + f"\nlint: {len(findings)} finding{'s' * (len(findings) != 1)}"
