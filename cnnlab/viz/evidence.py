"""Why the network says what it says, for one image: where a unit looks (its receptive field on the input),
what feeds it (the previous layer's channels ranked by their contribution, with the filter's weights), and
which pixels speak for a class (vanilla-gradient saliency and Grad-CAM). The See view's node-link picture
draws these (CNN Explainer's idea: click a unit, light what it sees and what feeds it).

    box = receptive_field(model.infos, "4", y=3, x=5)     # {top, left, bottom, right, height, width} in pixels
    unit(trained, image, "4", channel=2)                  # its value, box and feeding channels
    class_evidence(trained, image, class_index=7)        # saliency and Grad-CAM overlays as PNG data URLs
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import UserError
from ..models.layers import LayerInfo, _padding, _pair
from ..train.trained import TrainedModel

FEEDERS = 16          # the strongest feeding units a unit lists (a dense unit may have thousands)
OVERLAY = 224         # overlay side in pixels: 28x28 digits x8, 32x32 CIFAR x7
CONV_KINDS = ("conv", "whiten", "residual", "concat")


# ------------------------------------------------------------------ receptive fields

def _back(info: LayerInfo, lo: int, hi: int, axis: int) -> tuple[int, int] | None:
    """The input rows (axis 0) or columns (axis 1), inclusive, that output rows/columns lo..hi of `info` read;
    None when the layer reads the whole input (flatten, dense, global pooling)."""
    if len(info.in_shape) != 3 or len(info.out_shape) != 3:
        return None
    a = info.args
    if info.kind in ("conv", "maxpool", "avgpool"):
        kernel = _pair(a["kernel"] if info.kind == "conv" else a["size"])
        stride = _pair(a["stride"]) if a.get("stride") is not None else kernel
        dilation = _pair(a["dilation"]) if info.kind == "conv" else (1, 1)
        before = _padding(a["padding"], info.in_shape, kernel, stride, dilation)[axis][0]
        k, s, d = kernel[axis], stride[axis], dilation[axis]
        return lo * s - before, hi * s - before + d * (k - 1)
    if info.kind == "whiten":
        return lo, hi + a["kernel"] - 1
    if info.kind == "squeeze_excite":  # its gate reads the means of the whole map
        return None
    if info.kind == "pad":
        h = _pair(a["size"])[axis]
        return lo - h, hi - h
    if info.kind in ("residual", "concat"):
        spans = []
        for child in info.children:
            paths = child.children if child.kind in ("shortcut", "branch") else None
            if paths is None:
                continue
            spans.append(_chain(paths, lo, hi, axis) if paths else (lo, hi))
        if info.kind == "residual":
            body = [c for c in info.children if c.kind != "shortcut"]
            spans.append(_chain(body, lo, hi, axis))
            if not any(c.kind == "shortcut" for c in info.children):  # identity or a strided 1x1 projection
                s = math.ceil(info.in_shape[1 + axis] / info.out_shape[1 + axis])
                spans.append((lo * s, hi * s))
        if any(span is None for span in spans):
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)
    return lo, hi   # elementwise: activations, batchnorm, dropout, scale, a 1x1 dense


def _chain(infos: list[LayerInfo], lo: int, hi: int, axis: int) -> tuple[int, int] | None:
    for info in reversed(infos):
        span = _back(info, lo, hi, axis)
        if span is None:
            return None
        lo, hi = span
    return lo, hi


def receptive_field(infos: list[LayerInfo], layer: str, y: int | None = None, x: int | None = None) -> dict:
    """The input pixels that unit (y, x) of top-level layer `layer` (its index, "1", "2", ...) can see: the
    box clipped to the image (top, left, bottom, right, inclusive) and its unclipped height and width. A
    vector layer's unit, or no position given, sees the whole image."""
    position = _position(infos, layer)
    _, h, w = infos[0].in_shape
    rows = cols = None
    # a flatten of a map: its unit (c, y, x) sees what the map's unit (y, x) sees
    upto = position if is_flat_map(infos[position]) else position + 1
    if y is not None and x is not None and len(map_shape(infos[position])) == 3:
        rows = _chain(infos[:upto], y, y, 0)
        cols = _chain(infos[:upto], x, x, 1)
    rows, cols = rows or (0, h - 1), cols or (0, w - 1)
    return {"top": max(rows[0], 0), "left": max(cols[0], 0), "bottom": min(rows[1], h - 1),
            "right": min(cols[1], w - 1), "height": rows[1] - rows[0] + 1, "width": cols[1] - cols[0] + 1}


def is_flat_map(info: LayerInfo) -> bool:
    return info.kind == "flatten" and len(info.in_shape) == 3


def map_shape(info: LayerInfo) -> tuple:
    """The shape a layer's units are shown in: a flatten of a map keeps the map's channels, rows and columns."""
    return tuple(info.in_shape) if is_flat_map(info) else tuple(info.out_shape)


def _position(infos: list[LayerInfo], layer: str) -> int:
    for k, info in enumerate(infos):
        if info.index == str(layer):
            return k
    raise UserError(f"layer: no top-level layer '{layer}'; valid: {', '.join(i.index for i in infos)}")


# ------------------------------------------------------------------ what feeds a unit

def _first_conv(module: nn.Module) -> tuple[nn.Conv2d | None, tuple]:
    """A conv layer's Conv2d and the asymmetric padding (left, right, top, bottom) before it, if any."""
    parts = list(module) if isinstance(module, nn.Sequential) else [module]
    pads = (0, 0, 0, 0)
    for part in parts:
        if hasattr(part, "pads") and not isinstance(part, nn.Conv2d):
            pads = tuple(part.pads)
        if isinstance(part, nn.Conv2d):
            return part, pads
    return None, pads


def _feeding(info: LayerInfo, before: torch.Tensor, channel: int, y: int | None, x: int | None) -> list[dict]:
    """The previous layer's units that feed unit (channel, y, x) of `info`, with their contributions to its
    pre-activation (weight x input, summed over the filter's window), strongest (in size) first."""
    module = info.module
    conv, pads = _first_conv(module) if info.kind in ("conv", "whiten") else (None, None)
    if conv is not None and y is not None:
        padded = torch.nn.functional.pad(before[None], pads)[0] if any(pads) else before
        ph, pw = conv.padding if isinstance(conv.padding, tuple) else (0, 0)
        padded = torch.nn.functional.pad(padded, (pw, pw, ph, ph))
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        window = padded[:, y * sh: y * sh + dh * (kh - 1) + 1: dh, x * sw: x * sw + dw * (kw - 1) + 1: dw]
        per_group = conv.in_channels // conv.groups
        first = channel // (conv.out_channels // conv.groups) * per_group
        weight = conv.weight.detach().float()[channel]               # (in per group, kh, kw)
        parts = (weight * window[first:first + per_group]).sum((1, 2))
        rows = [{"channel": first + i, "contribution": float(parts[i]), "weights": _rounded(weight[i]),
                 "weights_png": _weights_png(weight[i])} for i in range(per_group)]
    elif info.kind == "dense" and len(info.in_shape) == 3 and before.dim() == 3:  # a 1x1 dense over a map
        weight = module[0].weight if isinstance(module, nn.Sequential) else module.weight
        w = weight.detach().float()[channel]
        parts = w * before[:, y if y is not None else 0, x if x is not None else 0]
        rows = [{"channel": i, "contribution": float(parts[i]), "weights": [[round(float(w[i]), 4)]]}
                for i in range(len(w))]
    elif info.kind == "dense":
        linear = module[0] if isinstance(module, nn.Sequential) else module
        w = linear.weight.detach().float()[channel]
        if before.dim() == 3:   # after a flatten: group the weights by the map's channels (a template each)
            c, h, wd = before.shape
            blocks, inputs = w.view(c, h, wd), before
            parts = (blocks * inputs).sum((1, 2))
            rows = [{"channel": i, "contribution": float(parts[i]), "weights": _rounded(blocks[i]),
                     "weights_png": _weights_png(blocks[i])} for i in range(c)]
        else:
            parts = w * before
            rows = [{"channel": i, "contribution": float(parts[i]), "weights": [[round(float(w[i]), 4)]]}
                    for i in range(len(w))]
    elif info.kind in ("residual", "concat") or (len(info.in_shape) != 3 and len(info.out_shape) == 3):
        return []  # a block mixes many paths: no single filter to show
    else:   # pools, activations, batchnorm, dropout, flatten, global pooling: the same channel feeds it
        if before.dim() == 1:
            value = before[channel]
        elif y is not None and not is_flat_map(info) and len(info.out_shape) == 3 and info.kind != "squeeze_excite":
            (top, bottom), (left, right) = _back(info, y, y, 0), _back(info, x, x, 1)
            value = before[channel, max(top, 0):bottom + 1, max(left, 0):right + 1].max()
        else:
            value = before[channel, y, x] if y is not None else before[channel].max()
        rows = [{"channel": channel, "contribution": float(value), "weights": None}]
    rows.sort(key=lambda r: -abs(r["contribution"]))
    for r in rows:
        r["contribution"] = round(r["contribution"], 4)
    return rows[:FEEDERS]


def _rounded(weights: torch.Tensor) -> list:
    return [[round(float(v), 4) for v in row] for row in weights]


def _weights_png(weights: torch.Tensor, size: int = 48) -> str:
    """A filter's weights as a diverging PNG: blue negative, white zero, red positive (scaled by the largest)."""
    w = weights.numpy()
    scale = float(np.abs(w).max()) or 1.0
    t = np.clip(w / scale, -1, 1)[..., None]
    red, blue, white = np.array([214, 39, 40]), np.array([31, 119, 180]), np.array([255, 255, 255])
    rgb = np.where(t > 0, white + (red - white) * t, white + (blue - white) * -t).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    factor = max(1, size // max(img.size))
    return _url(img.resize((img.width * factor, img.height * factor), Image.NEAREST))


def _url(img: Image.Image) -> str:
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def unit(trained: TrainedModel, image: torch.Tensor, layer: str, channel: int, y: int | None = None,
         x: int | None = None) -> dict:
    """One unit of top-level layer `layer` for a uint8 (C, H, W) image: its value, its receptive field on the
    input, and the previous layer's units that feed it (at most FEEDERS, strongest first) with the filter's
    weights. A map's unit without (y, x) is the channel's strongest position."""
    infos = _infos(trained)
    position = _position(infos, layer)
    info = infos[position]
    channels = map_shape(info)[0]
    if not 0 <= channel < channels:
        raise UserError(f"channel: layer {layer} has {channels} (0 to {channels - 1}), got {channel}")
    inputs = []
    first = trained.model.layers[0]
    hook = first.register_forward_pre_hook(lambda mod, args: inputs.append(args[0][0].detach().float().cpu()))
    try:
        _, captured = trained.look_inside(image, list(trained.model.layers))
    finally:
        hook.remove()
    outputs = [out for _, out in captured]
    out = outputs[position].view(*map_shape(info))
    if out.dim() == 3:
        if y is None or x is None:
            flat = int(out[channel].argmax())
            y, x = divmod(flat, out.shape[2])
        if not (0 <= y < out.shape[1] and 0 <= x < out.shape[2]):
            raise UserError(f"y, x: layer {layer} is {out.shape[1]}x{out.shape[2]}, got ({y}, {x})")
        value = float(out[channel, y, x])
    else:
        y = x = None
        value = float(out[channel])
    before = outputs[position - 1] if position else inputs[0]
    if position and info.kind == "dense" and before.dim() == 1 and infos[position - 1].kind == "flatten" \
            and len(infos[position - 1].in_shape) == 3:
        before = before.view(*infos[position - 1].in_shape)   # the flatten's units, as the maps they came from
    return {"layer": info.index, "desc": info.desc, "channel": channel, "y": y, "x": x, "value": round(value, 4),
            "field": receptive_field(infos, layer, y, x), "input_shape": list(infos[0].in_shape),
            "previous": infos[position - 1].index if position else "input",
            "feeding": _feeding(info, before, channel, y, x)}


def _infos(trained: TrainedModel) -> list[LayerInfo]:
    infos = getattr(trained.model, "infos", None)
    if not infos:
        raise UserError("this run's model is Python code, not a layer list: its units cannot be traced")
    return infos


# ------------------------------------------------------------------ class evidence

def _cam_layer(infos: list[LayerInfo]) -> int | None:
    """The map Grad-CAM reads: the deepest layer whose output is still a spatial map (pooling included), at or
    after the last conv. Before a max-pool only the pool's winners get a gradient, so a map taken there is a
    regular grid of dots (the assignment's conv-relu-maxpool net: every 2x2 block one dot); after it every
    position has one, and the coarse map upsampled smoothly reads as a region."""
    last = max((k for k, i in enumerate(infos) if i.kind in CONV_KINDS and len(i.out_shape) == 3), default=None)
    if last is None:
        return None
    while last + 1 < len(infos) and len(infos[last + 1].out_shape) == 3 and infos[last + 1].out_shape[1] * \
            infos[last + 1].out_shape[2] > 1:
        last += 1
    return last


def saliency_and_cam(trained: TrainedModel, image: torch.Tensor, class_index: int) -> dict:
    """For a uint8 (C, H, W) image and a class: the saliency |d score / d pixel| (max over colour channels,
    H x W) and Grad-CAM on the deepest spatial map (`_cam_layer`, upsampled to H x W), both as float arrays. The same weights,
    normalisation and float32 as `probabilities`.

    The score is the class's log-probability, not its logit: what makes the network say 7 *rather than the
    other classes*. Grad-CAM weighs each position of each channel by its own positive gradient (LayerCAM,
    Jiang et al. 2021) instead of one channel-mean weight (Selvaraju et al. 2017): on the course's network
    trained on 1,000 digits (92%), the channel-mean weights came out negative or near zero for 4 of 10 test
    digits (an empty map), while the per-position map was 2-4x stronger on the stroke than off it for all 10
    (tests/test_see.py checks it)."""
    if not 0 <= class_index < len(trained.classes):
        raise UserError(f"class_index: {len(trained.classes)} classes (0 to {len(trained.classes) - 1}), "
                        f"got {class_index}")
    infos = _infos(trained)
    position = _cam_layer(infos)
    captured = []
    hook = (trained.model.layers[position].register_forward_hook(lambda mod, i, o: captured.append(o))
            if position is not None else None)
    was_training = trained.model.training
    net = trained.deployable(uint8=False)
    try:
        with torch.enable_grad():
            x = (image.float() / 255.0)[None].to(trained.placement.device).requires_grad_(True)
            out = net(x).float()[0]
            score = (out.clamp_min(1e-12).log() if trained.outputs_probabilities else out.log_softmax(0))[class_index]
            grads = torch.autograd.grad(score, [x] + captured[:1])
    finally:
        if hook is not None:
            hook.remove()
        trained.model.train(was_training)
    saliency = grads[0][0].abs().amax(0).cpu().numpy()
    result = {"saliency": saliency, "cam": None, "cam_layer": None}
    if position is not None:
        act, grad = captured[0][0].detach().float(), grads[1][0].float()
        cam = (grad.clamp_min(0) * act).sum(0).clamp_min(0)
        # bicubic from a 7x7 or 14x14 map: a smooth hill over the region, not blocks (clamped: bicubic overshoots)
        cam = torch.nn.functional.interpolate(cam[None, None], size=image.shape[1:], mode="bicubic",
                                              align_corners=False)[0, 0].clamp_min(0)
        result.update(cam=cam.cpu().numpy(), cam_layer=f"{infos[position].index} {infos[position].desc}")
    return result


def _heat(values: np.ndarray) -> np.ndarray:
    """0..1 -> RGB through black-free 'hot' colours (dark red, orange, yellow, white), uint8 (H, W, 3)."""
    stops = np.array([[0, 0, 0], [180, 20, 20], [255, 140, 0], [255, 230, 60], [255, 255, 255]], float)
    t = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.floor(t).astype(int).clip(0, len(stops) - 2)
    frac = (t - low)[..., None]
    return (stops[low] * (1 - frac) + stops[low + 1] * frac).astype(np.uint8)


def overlay(image: torch.Tensor, heat: np.ndarray) -> str:
    """A heat map (H, W) over the image, as a PNG data URL OVERLAY pixels wide: the image in gray, the map
    scaled by its own maximum, blended where it is strong."""
    gray = image.float().mean(0).numpy() / 255.0
    peak = float(heat.max())
    t = heat / peak if peak > 0 else np.zeros_like(heat)
    alpha = (0.25 + 0.65 * t)[..., None]
    rgb = (np.repeat(gray[..., None], 3, 2) * 255 * 0.6) * (1 - alpha) + _heat(t) * alpha
    img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    factor = max(1, OVERLAY // max(img.size))
    return _url(img.resize((img.width * factor, img.height * factor), Image.BILINEAR))


def class_evidence(trained: TrainedModel, image: torch.Tensor, class_index: int) -> dict:
    """Which pixels made the network say class `class_index`: saliency and Grad-CAM overlays on the image."""
    maps = saliency_and_cam(trained, image, class_index)
    return {"class": trained.classes[class_index], "class_index": class_index,
            "saliency": overlay(image, maps["saliency"]),
            "gradcam": overlay(image, maps["cam"]) if maps["cam"] is not None else None,
            "gradcam_layer": maps["cam_layer"]}
