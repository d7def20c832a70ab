"""The model summary as data (rows and totals) and as the table Keras and torchsummary users know."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..htmlrepr import block, esc, table
from .build import SpecModel
from .layers import LayerInfo, fmt_shape


@dataclass
class Row:
    index: str
    layer: str
    out_shape: tuple
    params: int
    macs: int
    depth: int = 0
    frozen: bool = False  # its parameters do not train (fine-tuning's frozen body)


@dataclass
class Summary:
    name: str
    input_shape: tuple
    num_classes: int
    rows: list[Row] = field(default_factory=list)
    trainable: int = 0
    non_trainable: int = 0
    macs: int = 0
    activations_per_image: int = 0  # output elements of every layer for one image (the forward pass keeps them)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def as_dict(self) -> dict:
        return {"name": self.name, "params_trainable": self.trainable, "params_non_trainable": self.non_trainable,
                "params_total": self.total, "macs": self.macs, "activations_per_image": self.activations_per_image}

    def _repr_html_(self) -> str:
        """The layer table as a notebook shows it, with the totals beneath (`render` is the terminal's)."""
        indent = "\u00a0\u00a0"  # no-break spaces: HTML would fold plain ones, and the nesting with them
        rows = [[indent * r.depth + r.index, indent * r.depth + r.layer, fmt_shape(r.out_shape), f"{r.params:,}",
                 f"{r.macs:,}"] for r in self.rows]
        foot = [["", "Total params", "", f"{self.total:,}", f"{self.macs:,}"],
                ["", "Trainable params", "", f"{self.trainable:,}", ""],
                ["", "Non-trainable params", "", f"{self.non_trainable:,}", ""]]
        title = (f"<b>Model: {esc(self.name)}</b> \u2014 input {esc(fmt_shape(self.input_shape))} (C x H x W), "
                 f"{self.num_classes} classes; {esc(_human(self.macs, 'MAC'))} per image")
        return block(title, table(["#", "Layer", "Output shape", "Param #", "MACs"], rows, right=(3, 4), foot=foot))


def count_params(module: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable) as Keras counts them: BatchNorm running mean and variance are non-trainable."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    stats = sum(b.numel() for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var")))
    return trainable, frozen + stats


def _spec_rows(infos: list[LayerInfo], depth: int = 0) -> list[Row]:
    rows = []
    for info in infos:
        own = sum(count_params(info.module))
        if info.children:
            own -= sum(sum(count_params(c.module)) for c in info.children)
        params = list(info.module.parameters())
        frozen = bool(params) and not any(p.requires_grad for p in params)
        rows.append(Row(info.index, info.desc + (" (frozen)" if frozen else ""), info.out_shape, own, info.macs,
                        depth, frozen))
        rows += _spec_rows(info.children, depth + 1)
    return rows


def _hooked_rows(model: nn.Module, input_shape) -> list[Row]:
    """For a user's own module: run one image through and record each top-level child's output."""
    inner = getattr(model, "inner", model)
    children = list(inner.named_children())
    rows, hooks = [], []

    def hook_for(name, module):
        def hook(_, inputs, output):
            if not isinstance(output, torch.Tensor):
                return
            macs = 0
            if isinstance(module, nn.Conv2d):
                macs = output[0].numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            elif isinstance(module, nn.Linear):
                macs = module.in_features * module.out_features * (output[0].numel() // module.out_features)
            rows.append(Row(str(len(rows) + 1), f"{name} ({type(module).__name__})", tuple(output.shape[1:]),
                            sum(count_params(module)), macs))
        return hook

    for name, child in children:
        hooks.append(child.register_forward_hook(hook_for(name, child)))
    was_training = inner.training
    try:
        with torch.no_grad():
            inner.eval()(torch.zeros(1, *input_shape))
    finally:
        inner.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def summarize(model: nn.Module) -> Summary:
    input_shape = tuple(model.input_shape)
    name = (getattr(model, "spec", None) or {}).get("name") or (model.spec or {}).get("module", "model")
    rows = _spec_rows(model.infos) if isinstance(model, SpecModel) else _hooked_rows(model, input_shape)
    trainable, non_trainable = count_params(model)
    activations = sum(math.prod(r.out_shape) for r in rows if r.depth == 0)
    macs = sum(r.macs for r in rows)
    return Summary(str(name), input_shape, model.num_classes, rows, trainable, non_trainable, macs, activations)


def _human(n: float, unit: str = "") -> str:
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{suffix}{unit}" if suffix else f"{n:g}{unit}"
        n /= 1000
    return f"{n:.3g}P{unit}"


def render(summary: Summary, batch_size: int = 256) -> str:
    """A fixed-width table: position, layer, output shape (C x H x W), parameters; then the totals."""
    header = ("#", "Layer", "Output shape", "Param #")
    body = [("  " * r.depth + r.index, "  " * r.depth + r.layer, fmt_shape(r.out_shape), f"{r.params:,}")
            for r in summary.rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    rule = "─" * len(line(header))
    mb = lambda n: f"{n * 4 / 2**20:.2f} MB"  # noqa: E731 — fp32 bytes
    out = [f'Model: "{summary.name}"   input {fmt_shape(summary.input_shape)} (C x H x W)   '
           f"{summary.num_classes} classes", rule, line(header), rule]
    out += [line(b) for b in body]
    out += [rule,
            f"Total params: {summary.total:,} ({mb(summary.total)})",
            f"Trainable params: {summary.trainable:,} ({mb(summary.trainable)})",
            f"Non-trainable params: {summary.non_trainable:,} ({mb(summary.non_trainable)})"
            + ("   [BatchNorm running mean/var: Keras counts them, torch parameters() does not]"
               if summary.non_trainable else ""),
            f"Multiply-accumulates per image: {summary.macs:,} ({_human(summary.macs, 'MAC')}; "
            f"~{_human(2 * summary.macs, 'FLOP')})",
            f"Activations per image (forward): {mb(summary.activations_per_image)}; "
            f"a training batch of {batch_size} keeps ~{mb(summary.activations_per_image * batch_size * 2)} "
            "(forward + backward)",
            rule]
    return "\n".join(out)
