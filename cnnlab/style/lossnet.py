"""Loss networks for style transfer: what turns an image into the feature maps whose values carry content
and whose Gram matrices carry style (Gatys, Ecker & Bethge 2016). In order of quality:

1. VGG-19 or VGG-16 with ImageNet weights from a file the user has: torchvision's checkpoint
   (`vgg19-dcbb9e9d.pth`, keys `features.N.weight`) or a safetensors copy. Loaded with weights_only=True;
   keys and shapes are checked, and the first mismatch is named. cnnlab never downloads weights by itself.
2. Any cnnlab run: the outputs of its conv layers (after their activations).
3. No weights at all: a multi-scale network of random filters (Ustyuzhaninov, Brendel, Gatys & Bethge,
   ICLR 2017: random shallow networks synthesise convincing textures). The default that always works.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import UserError

# torchvision's VGG `features` layout: numbers are conv widths, "M" a 2x2 max-pool
VGG = {"vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
       "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512,
                 "M"]}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class LossNet(nn.Module):
    """features(x) -> {name: map} for images in [0, 1]; `content` names one layer, `style` several."""
    content: str
    style: list[str]
    lr = 0.05  # Adam's step in logit space (cnnlab/style/gatys.py): what suits VGG's features
    start_noise = 0.0  # std of the noise added (in logit space) to a start from the content image
    noise_scale = 1    # that noise drawn at 1/noise_scale of the size, enlarged smoothly
    stages, stage_share = (1,), (1.0,)  # coarse to fine (cnnlab/style/gatys.py): image-side divisors, step shares
    content_gain = tv_gain = 1.0        # what this network multiplies the caller's content and TV weights by
    stage_lr = None                     # per stage (aligned to the last), what Adam's step is multiplied by
    # Adam on the coarse-to-fine path (cnnlab/style/gatys.py): its betas; `eps_gain`: eps as this multiple of
    # each stage's median |gradient| (0: Adam's own 1e-8); `average`: the picture returned is this running
    # average (EMA decay) of the last stage's steps (0: the last step's)
    adam_betas, eps_gain, average = (0.9, 0.999), 0.0, 0.0

    def style_loss(self, g: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """How far Gram matrix `g` is from the style's: the mean squared difference (Gatys et al.)."""
        return F.mse_loss(g, target)

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.mean.shape[1]:  # a grayscale net on a colour photo, or the other way round
            x = x.mean(1, keepdim=True) if self.mean.shape[1] == 1 else x.expand(-1, self.mean.shape[1], -1, -1)
        return (x - self.mean) / self.std


class VGGLoss(LossNet):
    """VGG features, named like the paper: relu1_1, relu2_1, ... (content relu4_2, style relu{1..5}_1)."""

    def __init__(self, arch: str = "vgg19"):
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        layers, names, block, index, channels = [], {}, 1, 1, 3
        for item in VGG[arch]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))  # max as torchvision has it (Gatys used average)
                block, index = block + 1, 1
                continue
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            names[len(layers) - 1] = f"relu{block}_{index}"
            channels, index = item, index + 1
        self.features = nn.Sequential(*layers)
        self.names = names
        self.content, self.style = "relu4_2", ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
        self.last = max(k for k, v in names.items() if v in self.style + [self.content])

    def forward(self, x):
        out, x = {}, self.prepare(x)
        for i, layer in enumerate(self.features[:self.last + 1]):
            x = layer(x)
            if i in self.names:
                out[self.names[i]] = x
        return out


def load_vgg(path: str | Path, arch: str | None = None) -> VGGLoss:
    """A VGG loss network from torchvision's checkpoint or a safetensors copy, checked key by key."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as exc:  # noqa: BLE001 — any unreadable file is the user's to know about
        raise UserError(f"{path}: cannot read the weights ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if k.startswith(("features.", "module.features."))}
    if arch is None:
        convs = len({k.split(".")[1] for k in state if k.endswith(".weight")})
        arch = "vgg19" if convs == 16 else "vgg16" if convs == 13 else None
        if arch is None:
            raise UserError(f"{path}: {convs} conv layers under `features.`; VGG-16 has 13 and VGG-19 has 16")
    net = VGGLoss(arch)
    expected = net.features.state_dict()
    for key, tensor in expected.items():
        name = f"features.{key}"
        if name not in state:
            raise UserError(f"{path}: missing '{name}' (layer {net.names.get(int(key.split('.')[0]) + 1, key)}); "
                            f"is this a torchvision {arch} checkpoint?")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise UserError(f"{path}: '{name}' (layer {net.names.get(int(key.split('.')[0]) + 1, key)}) has shape "
                            f"{tuple(state[name].shape)}, {arch} needs {tuple(tensor.shape)}")
    net.features.load_state_dict({k: state[f"features.{k}"] for k in expected})
    return net.eval().requires_grad_(False)


class RunLoss(LossNet):
    """The conv layers of a trained cnnlab run: content at the middle one, style at all of them."""

    def __init__(self, run_dir: str | Path):
        from ..models.build import SpecModel
        from ..rundir import Run
        run = Run(run_dir)
        model = run.model
        if not isinstance(model, SpecModel):
            raise UserError(f"{run_dir}: a loss network needs a model in cnnlab's layer language")
        info = run.data_info
        super().__init__(info["mean"], info["std"])
        self.body = model.layers
        convs = [i for i, layer_info in enumerate(model.infos) if layer_info.kind == "conv"]
        if not convs:
            raise UserError(f"{run_dir}: the model has no conv layers to take style from")
        # each conv's output after its activation: the next layer when it is the activation
        self.taps = [i + 1 if i + 1 < len(model.infos) and model.infos[i + 1].kind in
                     ("relu", "leaky_relu", "elu", "gelu", "silu") else i for i in convs]
        self.names = {t: f"conv{n + 1}" for n, t in enumerate(self.taps)}
        self.style = list(self.names.values())
        self.content = self.style[len(self.style) // 2]
        self.requires_grad_(False).eval()

    def forward(self, x):
        out, x = {}, self.prepare(x)
        for i, layer in enumerate(self.body[:max(self.taps) + 1]):
            x = layer(x)
            if i in self.names:
                out[self.names[i]] = x
        return out


class RandomLoss(LossNet):
    """Random filters on a four-level image pyramid (after Ustyuzhaninov, Brendel, Gatys & Bethge 2017): at
    full, 1/2, 1/4 and 1/8 resolution (binomial blur and subsample; a level under 8 px is skipped), 192
    zero-mean unit-norm random filters per level, 5x5 to 7x7, each followed by ReLU. Scales come from the
    pyramid rather than from large kernels: 23x23 filters at full size cost ~30x more for the same reach.

    What makes it carry texture, not only palette (bench/style_texture.py, docs/style/texture.md: Gabor texture
    movement 0.44-0.67 on four styles, main's network -0.07-0.16, at the page's defaults):
    - content is read at 1/4 resolution with each map's mean removed, so it pins the layout (where the house
      and hills are) but leaves the fine texture, and each feature's overall strength, to the style;
    - each level's Gram matrices are compared relative to the target's size (`style_loss`), so the fine
      levels, whose Grams are small, count as much as the coarse ones;
    - the start is the content image plus noise (`start_noise`), which gives texture somewhere to grow, and
      Adam takes larger steps (`lr`) than for VGG, so 60 steps go far enough."""
    STYLE_GAIN = 0.4    # times the default style weight 10: the house stays and the texture comes; 0.05 kept
    #                     more of the house but less texture (movement 0.42-0.56 against 0.44-0.67)
    CONTENT_LEVEL = 2   # 1/4 resolution: 32x32 for the page's 128 px
    lr = 0.3            # Adam, in logit space: 0.15 reached movement 0.38-0.64, 0.3 0.44-0.69 in 60 steps
    start_noise = 2.0   # logit-space std; 1.0 left flat patches flat (movement 0.13-0.43), 4.0 lost the layout;
    #                     3.0 with the calmer last stage below left waves at 1.52x the style's own noise
    # against speckle (docs/style/speckle.md; the page's 128 px, 60 steps): noise drawn at 1/4 size, 15 steps at
    # 32 px, 15 at 64, 30 at 128; TV x100 and content x0.3 of the caller's weights; four levels, not five (the
    # 1/16 level's Grams held the layout's large shapes, so stripes moved 0.25 of the way, against 0.54)
    noise_scale = 4
    stages, stage_share = (4, 2, 1), (0.25, 0.25, 0.5)
    content_gain, tv_gain = 0.3, 250.0
    # the last, full-size stage at 0.7x Adam's step, and TV x250 (was x100): the speckle forms there, and a
    # smaller step with more TV leaves it 1.0-1.4x the style's own on four styles with movement >= 0.5 each;
    # 0.5x the step lost the stripes (movement 0.48), 0.4x with TV x200 too (0.43); docs/style/speckle.md
    stage_lr = (1.0, 1.0, 0.7)
    # what took the speckle out of the dots (docs/style/speckle.md: its noise 4.9x the style's own -> 1.43x;
    # 1.47x and 1.57x at seeds 2 and 1): the speckle is pixels whose gradient is tiny taking Adam's full-size
    # steps, back and forth. So eps at 0.3x the typical gradient (those pixels step less), betas (0.5, 0.95) (a
    # shorter memory: 0.999 kept pushing pixels the loss had stopped asking for), the last stage's steps averaged
    # (decay 0.9: the jitter cancels), and 5x5 filters at full size, 192 a level (3x3 ones see a speck as
    # texture; 7x7 lost the cells' thin borders). Style x0.4 (was x0.3) wins back the movement averaging costs.
    adam_betas, eps_gain, average = (0.5, 0.95), 0.3, 0.9

    def __init__(self, seed: int = 0, filters: int | tuple = 192, kernels=(5, 5, 7, 5), levels: int = 4,
                 min_side: int = 8):
        super().__init__((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        gen = torch.Generator().manual_seed(seed)
        self.min_side = min_side
        self.convs = nn.ModuleList()
        widths = (filters,) * levels if isinstance(filters, int) else tuple(filters)
        for level in range(levels):
            kernel = kernels[level % len(kernels)]
            conv = nn.Conv2d(3, widths[level], kernel, padding=kernel // 2, padding_mode="reflect", bias=False)
            weight = torch.randn(conv.weight.shape, generator=gen)
            weight = weight - weight.mean(dim=(1, 2, 3), keepdim=True)  # zero-mean: edges, not brightness
            conv.weight.data = weight / weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            self.convs.append(conv)
        self.levels = [f"level{i}" for i in range(levels)]
        self.style = list(self.levels)
        self.content = "content"
        self.requires_grad_(False).eval()

    def forward(self, x):
        x = self.prepare(x)
        out = {}
        for name, conv in zip(self.levels, self.convs):
            if min(x.shape[-2:]) < self.min_side:
                break
            out[name] = F.relu(conv(x))
            x = _half(x)
        kept = [k for k in self.levels if k in out]
        level = out[kept[min(self.CONTENT_LEVEL, len(kept) - 1)]]
        out["content"] = level - level.mean(dim=(2, 3), keepdim=True)
        return out

    def style_loss(self, g: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.STYLE_GAIN * F.mse_loss(g, target) / target.pow(2).mean().clamp_min(1e-12)


def _half(x: torch.Tensor) -> torch.Tensor:
    """Half the resolution with a binomial [1 4 6 4 1]/16 blur first: an average pool's gradient paints the
    image in 2x2, 4x4 ... 16x16 blocks, which the optimiser then keeps."""
    c = x.shape[1]
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), stride=(1, 2), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), stride=(2, 1), groups=c)


def loss_network(spec: str | None, seed: int = 0) -> LossNet:
    """`None`/'random' -> random filters; a directory -> that cnnlab run; a file -> VGG weights."""
    if spec in (None, "random"):
        return RandomLoss(seed)
    path = Path(spec)
    if path.is_dir():
        return RunLoss(path)
    if path.is_file():
        return load_vgg(path)
    raise UserError(f"--loss-net {spec}: expected 'random', a cnnlab run directory, or a VGG-19/16 weights file "
                    "(torchvision's vgg19-dcbb9e9d.pth or a safetensors copy)")
