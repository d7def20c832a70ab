"""What the network sees: one image through a trained run, every top-level layer's activations as small
grayscale PNGs (a thumbnail for every channel), each conv channel's filter, and the top-k classes. The web
page's See view draws these as a node-link picture (cnnlab/viz/evidence.py answers a click on a unit)."""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import UserError
from ..htmlrepr import block, esc, image, table
from ..rundir import Run
from ..train.trained import TrainedModel

AT_ONCE = 32          # thumbnails per layer in the first answer; the rest of a layer comes on request
                      # (`see(..., layer=...)`). ~0.15 ms and ~400 bytes a thumbnail: every channel at once is
                      # 10 ms for the course's network (72) but 200 ms for keras-cifar10 (1,344), 0.5 s and
                      # 2.4 MB for resnet9 (4,416), 1.3 s and 4.3 MB for vgg16-bn (14,144); 32 a layer keeps
                      # a stroke's answer under ~100 ms for all of them
MAX_CHANNELS = 4096   # a layer asked for by name: all of its channels (the widest model cnnlab builds has 512)
THUMB = 48            # thumbnail side in pixels (the page scales them up with nearest-neighbour)


def _png(array: np.ndarray, size: int | None = THUMB) -> str:
    """A 2-D float array as a data: URL of a grayscale PNG, scaled to 0..255 by its own range."""
    lo, hi = float(array.min()), float(array.max())
    scaled = np.zeros_like(array, dtype=np.uint8) if hi - lo < 1e-12 else \
        ((array - lo) / (hi - lo) * 255).astype(np.uint8)
    return _data_url(Image.fromarray(scaled, "L"), size)


def _data_url(img: Image.Image, size: int | None) -> str:
    """A PIL image, enlarged by a whole factor (pixels kept sharp) to about `size`, as a data: URL of a PNG."""
    if size and max(img.size) < size:
        factor = max(1, size // max(img.size))
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=1)  # speed over size: ~300 bytes a thumbnail anyway
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _colour_png(image: torch.Tensor, size: int | None = THUMB) -> str:
    """A (3, H, W) image, values 0..255 as the data holds them, as a data: URL of an RGB PNG."""
    array = image.detach().float().clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return _data_url(Image.fromarray(np.ascontiguousarray(array), "RGB"), size)


def _filters(module: nn.Module, count: int) -> list[str] | None:
    conv = module if isinstance(module, nn.Conv2d) else next(
        (m for m in module.modules() if isinstance(m, nn.Conv2d)), None) if isinstance(module, nn.Sequential) else None
    if conv is None:
        return None
    weight = conv.weight.detach().float().mean(dim=1)  # each output channel's kernel, averaged over its inputs
    return [_png(w.numpy(), 24) for w in weight[:count]]


def see(run: Run | TrainedModel, image: torch.Tensor, top_k: int = 5, layer: str | None = None) -> dict:
    """`image`: uint8 (C, H, W) of the run's input size. Returns the probabilities and every layer's maps (the
    first AT_ONCE channels of each; `more` counts the rest); with `layer` (an index), only that layer's entry,
    with all of its channels."""
    trained = run if isinstance(run, TrainedModel) else TrainedModel.load(run, device="cpu")
    model = trained.model
    layers = []
    infos = getattr(model, "infos", None)
    top_level = list(model.layers) if infos is not None else []
    # as predict computes them: the same numbers for the image
    probs, captured = trained.look_inside(image, top_level)
    values, indices = probs.topk(min(top_k, len(probs)))
    position = {id(m): k for k, m in enumerate(top_level)}
    count = AT_ONCE if layer is None else MAX_CHANNELS
    for module, activation in captured:
        layer_info = infos[position[id(module)]]
        if layer is not None and layer_info.index != str(layer):
            continue
        entry = {"index": layer_info.index, "kind": layer_info.kind, "layer": layer_info.desc,
                 "shape": list(activation.shape)}
        if layer_info.kind == "flatten" and len(layer_info.in_shape) == 3:
            # a flattened map: its units shown as the maps they were, so a dense unit's inputs read as templates
            entry["map_shape"] = list(layer_info.in_shape)
            entry["channels"] = [_png(c.numpy()) for c in activation.view(*layer_info.in_shape)[:count]]
            entry["more"] = max(0, layer_info.in_shape[0] - count)
            entry["filters"] = None
        elif activation.dim() == 3:
            entry["map_shape"] = list(activation.shape)
            entry["channels"] = [_png(c.numpy()) for c in activation[:count]]
            entry["more"] = max(0, activation.shape[0] - count)
            entry["filters"] = _filters(layer_info.module, count)
        if activation.dim() != 3:  # a vector: one bar of values, as a 1-row image
            entry["vector"] = _png(activation[None, :256].numpy(), None)
            entry["values"] = [round(float(v), 4) for v in activation[:256]]
        layers.append(entry)
    if layer is not None:
        if not layers:
            raise UserError(f"layer: no top-level layer '{layer}'; valid: {', '.join(i.index for i in infos or [])}")
        return layers[0]
    return {"input": _png(image.float().mean(0).numpy()) if image.shape[0] != 3 else _colour_png(image),
            "top": [{"class": trained.classes[i], "index": int(i), "p": round(float(v), 4)}
                    for v, i in zip(values, indices)],
            "classes": trained.classes,
            "layers": layers}


class Seen(dict):
    """`see`'s answer (a dict, as the web page gets it in JSON) that a notebook shows: the image beside its top
    classes, then one line per layer with its maps (the first AT_ONCE channels) or its values as a strip."""

    def _repr_html_(self) -> str:
        top = table(["class", "probability"], [[t["class"], f"{t['p']:.4f}"] for t in self["top"]], right=(1,))
        picture = image(self["input"], "the image", width=112, pixelated=True)
        lines = [f'<div style="display:flex;gap:1.5em;align-items:flex-start">{picture}{top}</div>']
        for entry in self["layers"]:
            shape = "x".join(str(n) for n in entry["shape"])
            if "channels" in entry:
                pictures = "".join(image(url, f"channel {c}", width=THUMB, title=f"channel {c}", pixelated=True)
                                   for c, url in enumerate(entry["channels"]))
                more = f" +{entry['more']} more" if entry["more"] else ""
            else:
                pictures = image(entry["vector"], "values", width=min(4 * len(entry["values"]), 768), height=16,
                                 pixelated=True)
                more = ""
            lines.append(f"<div><b>{esc(entry['index'])}</b> {esc(entry['layer'])} \u2192 {esc(shape)}{more}</div>"
                         f'<div style="display:flex;flex-wrap:wrap;gap:2px">{pictures}</div>')
        return block(*lines)
