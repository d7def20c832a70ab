"""Starting from trained weights: a .safetensors file, a PyTorch state dict (.pt/.pth, read with
weights_only=True), the checkpoint dict a training script saved (the state dict under `state_dict`, `model`,
`net`, ...; keys perhaps prefixed `module.` by DataParallel), or a cnnlab run directory. Tensors are loaded
by name where the shapes match; the classifier is made new where the class count differs; what was loaded,
left new and not used is said (as timm's and torchvision's loaders report missing and unexpected keys).

An imported PyTorch model names its tensors as cnnlab does (`layers.3.weight`); its model file carries a
`weights_names` map from those names to the original module's (`features.0.weight`), made and checked by
`cnnlab import`, so the original script's checkpoint loads into it. `imagenet` is torchvision's published
file for a named ImageNet architecture (cnnlab/models/pretrained.py), whose `weights_names` map it."""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .pretrained import IMAGENET, imagenet_file, published

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile


@dataclass
class LoadedWeights:
    """What `load_weights` did, in names of the model it loaded into."""
    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)          # in the model, not in the file (initialised here)
    replaced: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # the classifier: (name, file, model)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # the body, left new where asked
    unused: list[str] = field(default_factory=list)       # in the file, not in the model

    def lines(self) -> list[str]:
        out = [f"weights from {self.source}: {len(self.loaded)} tensors loaded"]
        if self.replaced:
            out.append("new classifier (the class count differs): " + ", ".join(
                f"{name} {tuple(theirs)} -> {tuple(ours)}" for name, theirs, ours in self.replaced))
        if self.mismatched:
            out.append("left new, the shapes differ: " + ", ".join(
                f"{name} {tuple(theirs)} in the file, {tuple(ours)} here" for name, theirs, ours in self.mismatched))
        if self.new:
            out.append(f"new, not in the file: {_some(self.new)}")
        if self.unused:
            out.append(f"in the file, not used: {_some(self.unused)}")
        return out

    def as_dict(self) -> dict:
        return {"source": self.source, "loaded": len(self.loaded), "new": self.new,
                "replaced": [name for name, _, _ in self.replaced],
                "mismatched": [name for name, _, _ in self.mismatched], "unused": self.unused}


def described(weights: dict | None) -> str | None:
    """A run's result.json `weights` in a line for a page: `run ID (12 tensors loaded, new classifier)`,
    `imagenet (resnet18-f37072fd.pth) (...)`, or a file's name; never the server's folders."""
    if not weights or not weights.get("source"):
        return None
    source = str(weights["source"])
    if source != IMAGENET and not source.startswith(IMAGENET + " ("):
        path = Path(source)  # a run directory (its name is its id), else a weights file
        source = f"the file {path.name}" if path.is_file() or path.suffix in WEIGHT_SUFFIXES else f"run {path.name}"
    counts = [f"{weights['loaded']} tensors loaded"] if "loaded" in weights else []
    if weights.get("replaced"):
        counts.append("new classifier")
    if weights.get("mismatched"):
        counts.append(f"left new, the shapes differ: {_some(weights['mismatched'], 3)}")
    return source + (f" ({', '.join(counts)})" if counts else "")


def _some(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def weights_path(source: str | os.PathLike) -> Path:
    """The file behind `source`: itself, or a run directory's model.safetensors."""
    path = Path(source)
    if path.is_dir():
        if (path / "model.safetensors").is_file():
            return path / "model.safetensors"
        raise UserError(f"weights: {source} is a folder but not a finished cnnlab run (no model.safetensors in it)")
    if not path.is_file():
        raise UserError(f"weights: {source}: no such file or run directory")
    return path


def read_state(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file or run, by name (prefixes of DataParallel and torch.compile removed)."""
    path = weights_path(source)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 — the library's own words say what is wrong with the file
            raise UserError(f"weights: {path}: not a readable .safetensors file ({exc})") from None
    else:
        unreadable = _not_a_torch_save(path)
        if unreadable:
            raise UserError(f"weights: {path}: cannot be read as PyTorch weights, it is {unreadable}; valid: a "
                            "file written by torch.save (.pt, .pth), a .safetensors file or a cnnlab run folder")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            what = str(exc).split("\n")[0][:160]
            raise UserError(f"weights: {path}: refused, it holds Python objects that would run code when loaded "
                            f"({what}); save the weights alone, torch.save(model.state_dict(), 'weights.pt'), or "
                            "as .safetensors") from None
        except Exception as exc:  # noqa: BLE001 — torch's loader fails in many ways on what is not a weights file
            # (a text file gives an IndexError from its legacy reader)
            raise UserError(f"weights: {path}: cannot be read as PyTorch weights, truncated or not a weights file "
                            f"({str(exc).splitlines()[0][:160]})") from None
        state = _state_dict_in(obj, path)
    return {_unprefixed(k): v for k, v in state.items()}


def _not_a_torch_save(path: Path) -> str | None:
    """What the file is where it plainly is not something torch.save wrote (torch's own errors on these are
    its internals: 'pop from empty list', a miniz message), else None."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return None if zipfile.is_zipfile(path) else "a zip archive cut short or damaged (a copy that stopped part way?)"
    if head[:1] == b"\x80":  # a pickle: torch.save's legacy format, or a pickle of something else
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"a text file (it begins {first!r})"


def _state_dict_in(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in CHECKPOINT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
        keys = ", ".join(map(str, list(obj)[:6])) or "none"
        raise UserError(f"weights: {path}: holds a dict without a state dict (its keys: {keys}); cnnlab looks for "
                        f"the tensors themselves or under {', '.join(CHECKPOINT_KEYS)}")
    raise UserError(f"weights: {path}: holds a {type(obj).__name__}, not a state dict of tensors")


def _unprefixed(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def classifier_names(model: nn.Module) -> set[str]:
    """The tensors of the model's last module with parameters: the classifier, new where the classes differ."""
    last = None
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            last = name
    if last is None:
        return set()
    return {f"{last}.{k}" if last else k for k in dict(model.get_submodule(last).state_dict())}


def layer_name(model: nn.Module, key: str) -> str:
    """`layers.3.weight` as the summary names its layer: `layer 4 (conv 64 3x3) weight`."""
    infos = getattr(model, "infos", None)
    parts = key.split(".")
    if infos and parts[0] == "layers" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(infos):
        info = infos[int(parts[1])]
        return f"layer {info.index} ({info.desc}) {'.'.join(parts[2:])}"
    return key


def load_weights(model: nn.Module, source: str | os.PathLike, names: dict[str, str] | None = None,
                 partial: bool = False) -> LoadedWeights:
    """Load `source` into `model` by name and shape. `names`: this model's tensor names -> the file's (an
    imported model's `weights_names`), used where the file does not hold this model's own names. A body tensor
    whose shape differs is an error naming the layer and both shapes, or, with `partial`, left new."""
    label = source
    if str(source) == IMAGENET:  # torchvision's published file for this architecture, fetched once
        spec = getattr(model, "spec", None)
        name = str(spec.get("name")) if isinstance(spec, dict) else type(model).__name__
        source, label = imagenet_file(name), f"imagenet ({published(name).filename})"
    state = read_state(source)
    if names and not any(key in state for key in model.state_dict()):
        # a tensor the map does not name keeps its own name, so the report lists it as not used
        ours_of = {theirs: ours for ours, theirs in names.items()}
        state = {ours_of.get(key, key): tensor for key, tensor in state.items()}
    report = LoadedWeights(str(label))
    head = classifier_names(model)
    ours = model.state_dict()
    merged = dict(ours)
    first_conv = next((k for k, v in ours.items() if v.ndim == 4), None)  # where the image's channels come in
    for key, tensor in ours.items():
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                report.new.append(key)
            continue
        theirs = state[key]
        if theirs.shape == tensor.shape:
            merged[key] = theirs.to(tensor.dtype)
            report.loaded.append(key)
        elif key in head:
            report.replaced.append((key, tuple(theirs.shape), tuple(tensor.shape)))
        elif partial:
            report.mismatched.append((key, tuple(theirs.shape), tuple(tensor.shape)))
        elif key == first_conv and theirs.shape[:1] + theirs.shape[2:] == tensor.shape[:1] + tensor.shape[2:]:
            raise UserError(f"weights: {source}: they were trained on {theirs.shape[1]}-channel images and this data "
                            f"has {tensor.shape[1]} ({layer_name(model, key)} is {tuple(theirs.shape)} in the file, "
                            f"{tuple(tensor.shape)} here); weights_partial: true leaves that first layer new (it "
                            "trains from the start, also while the body is frozen)")
        else:
            raise UserError(f"weights: {source}: {layer_name(model, key)} is {tuple(theirs.shape)} in the file and "
                            f"{tuple(tensor.shape)} in this model: another architecture, or another size of it "
                            "(weights_partial: true leaves what does not fit new)")
    report.unused = [key for key in state if key not in ours]
    if not [k for k in report.loaded if not k.endswith("num_batches_tracked")]:
        raise UserError(f"weights: {source}: none of its {len(state)} tensors fits this model (it holds "
                        f"{_some(list(state), 3)}; the model's are {_some(list(ours), 3)}): weights of another "
                        "architecture")
    model.load_state_dict(merged)
    return report
