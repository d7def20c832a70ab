"""`cnnlab sanity`: before tuning anything, can the model memorise one small batch?

With dropout, augmentation, weight decay and label smoothing off, a working model and pipeline drive the
loss on 64 images to near zero within a few hundred steps. If not, it is a bug, not a tuning problem.
Also reported at initialisation: the loss against ln(classes), dead ReLU fractions, per-layer gradient norms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..train.engine import classification_loss


@dataclass
class SanityReport:
    passed: bool
    initial_loss: float
    expected_initial: float
    final_loss: float
    final_acc: float
    steps: int
    dead_relu: list[tuple[str, float]] = field(default_factory=list)
    grad_norms: list[tuple[str, float]] = field(default_factory=list)
    symptoms: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"Overfit one batch: {'PASSED' if self.passed else 'FAILED'} — loss {self.initial_loss:.3f} -> "
                 f"{self.final_loss:.4f}, accuracy {self.final_acc:.3f} after {self.steps} steps",
                 f"Initial loss {self.initial_loss:.3f} (a fresh classifier should start near ln(classes) = "
                 f"{self.expected_initial:.3f})"]
        lines += [f"  symptom: {s}" for s in self.symptoms]
        width = max([len(n) for n, _ in self.dead_relu + self.grad_norms] + [10])
        if self.dead_relu:
            lines.append("Dead ReLU units at initialisation (zero for every image of the batch):")
            lines += [f"  {name:{width}s}  {frac:6.1%}" for name, frac in self.dead_relu]
        lines.append("Gradient norm per layer at initialisation:")
        lines += [f"  {name:{width}s}  {norm:.3e}" for name, norm in self.grad_norms]
        return "\n".join(lines)


def _layer_name(model: nn.Module, module_name: str) -> str:
    """'layers.3.0' -> 'layer 4 (conv 32 3x3 same relu)' for models in the layer language."""
    infos = getattr(model, "infos", None)
    parts = module_name.split(".")
    if infos and parts[0] == "layers" and len(parts) > 1 and parts[1].isdigit():
        info = infos[int(parts[1])]
        return f"layer {info.index} ({info.desc})"
    return module_name


def sanity_check(session, batch_size: int = 64, max_steps: int = 300, lr: float = 1e-3) -> SanityReport:
    model, placement = session.model, session.placement
    for m in model.modules():  # regularisation off: this is about capacity and plumbing
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.p = 0.0
    x = session.augmenter.eval_batch(session.data.train_x[:batch_size])
    y = session.data.train_y[:batch_size].to(placement.device)
    probs = getattr(model, "outputs_probabilities", False)
    num_classes = session.data.num_classes
    model.train()

    relu_outputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: relu_outputs.__setitem__(name, out.detach()))
             for name, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    with placement.autocast():
        out = model(x)
    loss = classification_loss(out, y, 0.0, probs)
    loss.backward()
    for h in hooks:
        h.remove()
    dead = [(_layer_name(model, n), float((o.float().amax(dim=0) <= 0).float().mean())) for n, o in relu_outputs.items()]
    grads, symptoms = [], []
    for name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if isinstance(w, torch.Tensor) and w.requires_grad and w.grad is not None and len(list(module.children())) == 0:
            norm = float(w.grad.float().norm())
            grads.append((_layer_name(model, name), norm))
            if not math.isfinite(norm):
                symptoms.append(f"gradient is NaN/inf in {_layer_name(model, name)}")
            elif norm == 0:
                symptoms.append(f"gradient is exactly zero in {_layer_name(model, name)} (nothing reaches it)")
    initial = loss.item()
    expected = math.log(num_classes)
    if initial > 3 * expected:
        symptoms.append(f"initial loss {initial:.2f} is far above ln({num_classes}) = {expected:.2f}: the initial "
                        "outputs are huge (unnormalised inputs, or a bad initialisation)")
    for name, frac in dead:
        if frac > 0.5:
            symptoms.append(f"{frac:.0%} of the units in {name} are dead at initialisation")

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps, final_loss, final_acc = 0, initial, 0.0
    for steps in range(1, max_steps + 1):
        with placement.autocast():
            out = model(x)
        loss = classification_loss(out, y, 0.0, probs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        final_loss = loss.item()
        final_acc = float((out.detach().argmax(1) == y).float().mean())
        if not math.isfinite(final_loss) or (final_loss < 0.01 and final_acc == 1.0):
            break
    passed = math.isfinite(final_loss) and final_loss < 0.1 and final_acc >= 0.99
    if not passed:
        if not math.isfinite(final_loss):
            symptoms.append(f"the loss became {final_loss} while memorising one batch")
        elif abs(final_loss - expected) < 0.1 * expected:
            symptoms.append(f"loss stuck at ln({num_classes}) = {expected:.3f}: the model predicts the same "
                            "distribution for every image (dead network, or labels unrelated to images)")
        if final_acc <= 1.5 / num_classes:
            symptoms.append(f"accuracy {final_acc:.3f} is chance level even on the images it trains on")
        from .lint import lint
        for finding in lint(model):
            symptoms.append(f"likely cause — {finding.rule} at layer {', '.join(finding.layers)}: {finding.message}; "
                            f"{finding.fix}")
        symptoms.append("this is a bug in the model or the pipeline, not a tuning problem: check activations "
                        "between layers (`cnnlab lint`), the output layer, and that labels match images "
                        "(`cnnlab data show`)")
    return SanityReport(passed, initial, expected, final_loss, final_acc, steps, dead, grads, symptoms)
