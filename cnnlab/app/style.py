"""Style transfer (cnnlab/style/): Gatys optimisation of one image, and fast feed-forward style networks
trained on a folder of photos and applied to new ones."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class Stylised:
    out: Path
    width: int
    height: int
    steps: int
    seconds: float
    first: dict
    last: dict
    loss_net: str


def stylise(content: str, style: str, out: str | Path, size: int = 256, steps: int = 300,
            style_weight: float = 10.0, content_weight: float = 1.0, tv_weight: float = 1e-3,
            loss_net: str = "random", optimizer: str = "adam", seed: int = 0, init: str = "content",
            save_every: int | None = None, on_step=None) -> Stylised:
    """Gatys et al.: optimise an image to keep `content`'s layout and take `style`'s textures. `on_step(step,
    losses)` hears each step; with `save_every`, the image is also written every so many steps."""
    from ..style.gatys import load_image, save_image, stylise as optimise
    from ..style.lossnet import loss_network
    content_image, style_image = load_image(content, size), load_image(style, size)
    net = loss_network(loss_net, seed)
    out = Path(out)
    start = time.perf_counter()

    def step(n, record, image):
        if on_step is not None:
            on_step(n, record)
        if save_every and n % save_every == 0:
            save_image(image, out.with_name(f"{out.stem}-{n:04d}{out.suffix}"))
    result = optimise(net, content_image, style_image, steps, style_weight, content_weight, tv_weight, optimizer,
                      seed, init=init, on_step=step)
    save_image(result.image, out)
    return Stylised(out, result.image.shape[2], result.image.shape[1], steps, time.perf_counter() - start,
                    result.history[0], result.history[-1], type(net).__name__)


def train_net(style: str, images: str, out: str | Path | None = None, size: int = 256, steps: int = 300,
              batch: int = 4, style_weight: float = 10.0, content_weight: float = 1.0, loss_net: str = "random",
              seed: int = 0, on_step=None) -> tuple[Path, int, float]:
    """A fast style network for `style`, trained on the photos in `images`: (its file, photos, seconds)."""
    import numpy as np
    import torch
    from ..data.readers import decode_image
    from ..style.fast import save_style_net, train_style_net
    from ..style.gatys import load_image
    from ..style.lossnet import loss_network
    style_image = load_image(style, size)
    folder = Path(images)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no images (png, jpg, bmp, webp) to train on")
    photos = torch.from_numpy(np.stack([decode_image(p, (size, size), False) for p in files])).float() / 255
    net = loss_network(loss_net, seed)
    start = time.perf_counter()
    model = train_style_net(net, style_image, photos, steps, batch, min(size, 128), style_weight=style_weight,
                            content_weight=content_weight, seed=seed, on_step=on_step)
    path = Path(out or f"{Path(style).stem}.safetensors")
    save_style_net(model, path, {"style": str(style), "images": len(files), "steps": steps,
                                 "loss_net": type(net).__name__})
    return path, len(files), time.perf_counter() - start


def apply_net(net_file: str, photos: list[str], out_dir: str | Path = ".", size: int = 256) -> list[dict]:
    """Each photo through a fast style network: [{path, width, height, ms}]."""
    from ..style.fast import apply_style_net, load_style_net
    from ..style.gatys import load_image, save_image
    model = load_style_net(net_file)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for photo in photos:
        image = load_image(photo, size)
        styled, seconds = apply_style_net(model, image[None])
        path = save_image(styled[0], out_dir / f"{Path(photo).stem}-{Path(net_file).stem}.png")
        done.append({"path": path, "width": image.shape[2], "height": image.shape[1], "ms": seconds * 1000})
    return done


# ------------------------------------------------------------------ the page's style transfer
# What the web page (and a script) does with in-memory images: Gatys from uploads or a bundled style, the
# image sent back as it forms; the fast style nets in <runs folder>/styles/ listed and chained on a photo.

# a page run: 60 Adam steps at 128 px, 13 images sent, took 54 s on the shared 2-core CPU (another job beside it)
PAGE_SIZE, PAGE_STEPS, PAGE_EVERY = 128, 60, 5
# the bounds keep one request finite, not short: 500 steps at 256 px is ~30x the default's work; closing the
# page stops it, and only one runs at a time (cnnlab/serve/routes/style.py)
MAX_PAGE_SIZE, MAX_PAGE_STEPS = 256, 500
MAX_CHAIN = 8                                    # nets one after another in one request
BUNDLED = ("stripes", "cells", "dots")
NET_NAME = __import__("re").compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Stopped(Exception):
    """Raised from a step when `should_stop()` says the caller has gone (a page closed, a client hung up)."""


def bundled_style(name: str, size: int = PAGE_SIZE):
    """A procedural style image, (3, size, size) in [0, 1], so a student can try without files: 'stripes'
    (diagonal bands in three colours), 'cells' (a mosaic of coloured Voronoi cells with dark borders), 'dots'
    (a grid of coloured discs). Made in code: no downloads, the same every time."""
    import numpy as np
    import torch
    if name not in BUNDLED:
        raise UserError(f"style '{str(name)[:50]}' is not bundled; valid: {', '.join(BUNDLED)}")
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rng = np.random.default_rng(0)
    if name == "stripes":
        colours = np.array([[0.9, 0.3, 0.1], [0.1, 0.2, 0.6], [0.95, 0.85, 0.3]], dtype=np.float32)
        band = ((x + y) * 8).astype(int) % 3
        image = colours[band]
    elif name == "cells":
        seeds = rng.random((24, 2), dtype=np.float32)
        colours = rng.random((24, 3), dtype=np.float32) * 0.8 + 0.2
        d = (y[..., None] - seeds[:, 0]) ** 2 + (x[..., None] - seeds[:, 1]) ** 2
        order = np.sort(d, axis=-1)
        image = colours[d.argmin(-1)]
        image = image * (np.sqrt(order[..., 1]) - np.sqrt(order[..., 0]) > 0.012)[..., None]
    else:  # drawn at 4x and shrunk: smooth rims, as a painted or photographed dot has (on the pixel grid each
        #    disc is a jagged set of pixels, whose noise measure is 0: no output could match it)
        y, x = np.mgrid[0:4 * size, 0:4 * size].astype(np.float32) / (4 * size)
        cy, cx = (y * 8) % 1 - 0.5, (x * 8) % 1 - 0.5
        cell = (y * 8).astype(int) * 8 + (x * 8).astype(int)
        colours = rng.random((64, 3), dtype=np.float32)
        image = np.where((cy ** 2 + cx ** 2 < 0.09)[..., None], colours[cell], np.float32(0.97))
        image = image.reshape(size, 4, size, 4, 3).mean(axis=(1, 3))
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1).contiguous()


def bundled_styles(size: int = PAGE_SIZE) -> list[dict]:
    """The bundled style images as the page shows them: [{name, image (a PNG data URL)}], at the size the page's
    default run uses them (at 64 px the 256 px view showed 4x4 blocks)."""
    return [{"name": name, "image": data_url(bundled_style(name, size))} for name in BUNDLED]


def data_url(image) -> str:
    """(3, H, W) in [0, 1] -> a PNG data: URL."""
    import base64
    import io
    import numpy as np
    from PIL import Image
    array = (image.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decode_image(data: str, size: int, what: str = "image"):
    """A data: URL upload -> (3, H, W) in [0, 1], its longer side `size` (cnnlab/app/uploads.py: its limits)."""
    import numpy as np
    import torch
    from PIL import Image
    from .uploads import open_upload
    img = open_upload(data, what)
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def test_image(runs_root: str | Path, run_id: str | None, index: int | None, size: int, cache=None):
    """Test image `index` of a finished run's data set, as (3, H, W) in [0, 1], its longer side `size`.
    `cache`: a server's SeeCache (cnnlab/app/see.py), so a data set is loaded once, not per request."""
    import torch.nn.functional as F
    from .runs import run_in
    from .see import SeeCache
    if run_id is None or index is None:
        raise UserError("send image (a data: URL), or run and test_index")
    cache = cache or SeeCache(1)
    with cache.lock:
        picture = cache.test_image(run_in(Path(runs_root), run_id), index).float() / 255
    picture = picture.expand(3, -1, -1) if picture.shape[0] == 1 else picture[:3]
    h, w = picture.shape[-2:]
    scale = size / max(h, w)
    return F.interpolate(picture[None], size=(max(1, round(h * scale)), max(1, round(w * scale))),
                         mode="bilinear", align_corners=False)[0].clamp(0, 1)


def gatys_inputs(runs_root: str | Path, content: str | None = None, run: str | None = None,
                 test_index: int | None = None, style: str | None = None, style_name: str | None = None,
                 size: int = PAGE_SIZE, steps: int = PAGE_STEPS, every: int = PAGE_EVERY, cache=None):
    """The page's Gatys inputs checked and decoded before any work starts, so a bad request is an answer (400,
    404, 413), not a failed stream: (content, style) as (3, H, W) tensors in [0, 1]."""
    _bounded(size, steps, every)
    if style is None and style_name is None:
        raise UserError("send style (a data: URL) or style_name (a bundled style)")
    if content is None and (run is None or test_index is None):
        raise UserError("send content (a data: URL), or run and test_index")
    picture = decode_image(content, size, "content") if content is not None else \
        test_image(runs_root, run, test_index, size, cache)
    return picture, decode_image(style, size, "style") if style is not None else bundled_style(style_name, size)


def _bounded(size: int, steps: int, every: int) -> None:
    if not 16 <= size <= MAX_PAGE_SIZE:
        raise UserError(f"size {size}: valid 16 to {MAX_PAGE_SIZE} px")
    if not 1 <= steps <= MAX_PAGE_STEPS:
        raise UserError(f"steps {steps}: valid 1 to {MAX_PAGE_STEPS}")
    if not 1 <= every <= MAX_PAGE_STEPS:
        raise UserError(f"every {every}: valid 1 to {MAX_PAGE_STEPS} (past the steps: the first and last only)")


def gatys(content, style, on_event, size: int = PAGE_SIZE, steps: int = PAGE_STEPS, every: int = PAGE_EVERY,
          style_weight: float = 10.0, content_weight: float = 1.0, seed: int = 0, should_stop=None) -> dict:
    """Gatys from images in memory, as the page runs it: `content` is a data: URL or a (3, H, W) tensor,
    `style` a data: URL, a bundled style's name or a tensor. `on_event({step, style, content, total, image})`
    hears the first step, every `every`-th and the last, the image a PNG data: URL; `should_stop()` is asked each
    step and ends the optimisation (Stopped). Returns the last event with the seconds taken."""
    from ..style.gatys import stylise as optimise
    from ..style.lossnet import loss_network
    _bounded(size, steps, every)
    if isinstance(content, str):
        content = decode_image(content, size, "content")
    if isinstance(style, str):
        named = len(style) <= 50 and not style.startswith("data:")  # a name, not an upload
        style = bundled_style(style, size) if named else decode_image(style, size, "style")
    start = time.perf_counter()
    last: dict = {}

    def step(n, record, image):
        if should_stop is not None and should_stop():
            raise Stopped(f"stopped at step {n}")
        if n == 1 or n % every == 0 or n == steps:
            last.clear()
            last.update(step=n, steps=steps, style=record["style"], content=record["content"],
                        total=record["total"], image=data_url(image), seconds=time.perf_counter() - start)
            on_event(dict(last))
    optimise(loss_network("random", seed), content, style, steps, style_weight, content_weight, 1e-3, "adam",
             seed, on_step=step)
    return last


def nets_folder(runs_root: str | Path) -> Path:
    return Path(runs_root) / "styles"


# fast style nets that ship with cnnlab, so the page's section is never empty: trained here on pictures made in
# code (bench/style_net.py), a net of the runs folder's styles/ with the same name comes first
BUNDLED_NETS = Path(__file__).resolve().parents[1] / "style" / "nets"


def _net_files(runs_root: str | Path) -> dict[str, tuple[Path, bool]]:
    """{name: (file, bundled)}: the runs folder's nets, then the bundled ones it does not shadow."""
    found = {p.stem: (p, False) for p in sorted(nets_folder(runs_root).glob("*.safetensors"))}
    for path in sorted(BUNDLED_NETS.glob("*.safetensors")):
        found.setdefault(path.stem, (path, True))
    return found


def style_nets(runs_root: str | Path) -> list[dict]:
    """The fast style nets a server offers: the cnnlab style nets (`cnnlab style train STYLE --images DIR -o
    runs/styles/NAME.safetensors`) in <runs folder>/styles/ and those bundled with cnnlab (`bundled`: True), with
    what their metadata says. A file that is not
    one is listed with its reason, not hidden."""
    import json
    from safetensors import safe_open
    found = []
    for name, (path, bundled) in _net_files(runs_root).items():
        entry = {"name": name, "bytes": path.stat().st_size, "bundled": bundled}
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            if meta.get("format") != "cnnlab-style-net":
                raise ValueError("not a cnnlab style network")
            info = json.loads(meta.get("info", "{}"))
            entry.update(width=int(meta["width"]), blocks=int(meta["blocks"]),
                         style=Path(str(info.get("style", ""))).name, images=info.get("images"),
                         steps=info.get("steps"), loss_net=info.get("loss_net"), error=None)
        except Exception as exc:  # noqa: BLE001 — a bad file is listed with its reason
            entry["error"] = f"cannot be read ({type(exc).__name__}: {str(exc)[:100]})"
        found.append(entry)
    return found


def _net_path(runs_root: str | Path, name: str) -> Path:
    from ..errors import NotFound
    if not isinstance(name, str) or not NET_NAME.match(name) or name not in _net_files(runs_root):
        raise NotFound(f"no style net '{str(name)[:80]}' in the runs folder's styles/ or cnnlab's own")
    return _net_files(runs_root)[name][0]


def content_preview(runs_root: str | Path, run: str | None, test_index: int | None, size: int = PAGE_SIZE,
                    cache=None) -> dict:
    """A finished run's test image as the page shows it before styling it: {image (a PNG data: URL)}."""
    return {"image": data_url(test_image(runs_root, run, test_index, size, cache))}


def apply_nets(runs_root: str | Path, image, nets: list[str], size: int = 256, cache=None) -> dict:
    """A photo (a data: URL or a (3, H, W) tensor) through the named nets of <runs folder>/styles/ in order,
    each taking the one before's output (the same net twice is allowed): {input, stages: [{net, image, ms}]}."""
    from ..style.fast import apply_style_net, load_style_net
    if isinstance(image, dict):  # {run, test_index}: a finished run's test image
        image = test_image(runs_root, image.get("run"), image.get("test_index"), size, cache)
    if not nets:
        raise UserError("nets: name at least one style net (GET /api/style/nets lists them)")
    if len(nets) > MAX_CHAIN:
        raise UserError(f"nets: {len(nets)} in a row; at most {MAX_CHAIN}")
    if not 16 <= size <= MAX_PAGE_SIZE:
        raise UserError(f"size {size}: valid 16 to {MAX_PAGE_SIZE} px")
    paths = [_net_path(runs_root, name) for name in nets]   # every name checked before any work
    picture = decode_image(image, size, "image") if isinstance(image, str) else image
    loaded: dict[Path, object] = {}
    stages, x = [], picture[None]
    for name, path in zip(nets, paths):
        if path not in loaded:
            loaded[path] = load_style_net(path)
        x, seconds = apply_style_net(loaded[path], x)
        stages.append({"net": name, "image": data_url(x[0]), "ms": round(seconds * 1000, 1)})
    return {"input": data_url(picture), "stages": stages}
