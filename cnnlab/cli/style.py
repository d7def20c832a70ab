"""`cnnlab style CONTENT STYLE`, `cnnlab style train STYLE --images FOLDER`, `cnnlab style apply NET PHOTO...`."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import UserError


def cmd_style(args) -> int:
    if args.args[0] == "train":
        return _train(args)
    if args.args[0] == "apply":
        return _apply(args)
    if len(args.args) != 2:
        raise UserError("usage: cnnlab style CONTENT STYLE [-o out.png] (or `cnnlab style train STYLE --images DIR`, "
                        "`cnnlab style apply NET PHOTO...`)")
    from ..style.gatys import load_image, save_image, stylise
    from ..style.lossnet import loss_network
    content, style = load_image(args.args[0], args.size), load_image(args.args[1], args.size)
    net = loss_network(args.loss_net, args.seed)
    out = Path(args.out or "stylised.png")
    live = sys.stdout.isatty()
    start = time.perf_counter()

    def on_step(step, record, image):
        if live and (step % 5 == 0 or step == args.steps):
            print(f"\rstep {step}/{args.steps}  style {record['style']:.4g}  content {record['content']:.4g}  "
                  f"tv {record['tv']:.3g}", end="", flush=True)
        if args.save_every and step % args.save_every == 0:
            save_image(image, out.with_name(f"{out.stem}-{step:04d}{out.suffix}"))
    result = stylise(net, content, style, args.steps, args.style_weight, args.content_weight, args.tv_weight,
                     args.optimizer, args.seed, init=args.init, on_step=on_step)
    if live:
        print()
    save_image(result.image, out)
    first, last = result.history[0], result.history[-1]
    print(f"wrote {out} ({result.image.shape[2]}x{result.image.shape[1]}, {args.steps} steps in "
          f"{time.perf_counter() - start:.1f}s; style loss {first['style']:.4g} -> {last['style']:.4g}, "
          f"content loss {first['content']:.4g} -> {last['content']:.4g}; loss network {type(net).__name__})")
    return 0


def _train(args) -> int:
    from ..data.readers import decode_image
    from ..style.fast import save_style_net, train_style_net
    from ..style.gatys import load_image
    from ..style.lossnet import loss_network
    import numpy as np
    import torch
    if len(args.args) != 2 or not args.images:
        raise UserError("usage: cnnlab style train STYLE --images FOLDER [-o style.safetensors]")
    style = load_image(args.args[1], args.size)
    folder = Path(args.images)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"))
    if not files:
        raise UserError(f"{folder}: no images (png, jpg, bmp, webp) to train on")
    side = args.size
    photos = torch.from_numpy(np.stack([decode_image(p, (side, side), False) for p in files])).float() / 255
    net = loss_network(args.loss_net, args.seed)
    start = time.perf_counter()

    def on_step(step, parts):
        if step % 25 == 0 or step == args.steps:
            print(f"step {step}/{args.steps}  style {parts['style']:.4g}  content {parts['content']:.4g}", flush=True)
    model = train_style_net(net, style, photos, args.steps, args.batch, min(side, 128), style_weight=args.style_weight,
                            content_weight=args.content_weight, seed=args.seed, on_step=on_step)
    out = Path(args.out or f"{Path(args.args[1]).stem}.safetensors")
    save_style_net(model, out, {"style": str(args.args[1]), "images": len(files), "steps": args.steps,
                                "loss_net": type(net).__name__})
    print(f"wrote {out} (trained on {len(files)} images for {args.steps} steps in {time.perf_counter() - start:.0f}s); "
          f"apply it with: cnnlab style apply {out} PHOTO...")
    return 0


def _apply(args) -> int:
    from ..style.fast import apply_style_net, load_style_net
    from ..style.gatys import load_image, save_image
    if len(args.args) < 3:
        raise UserError("usage: cnnlab style apply STYLE_NET PHOTO... [-o DIR]")
    model = load_style_net(args.args[1])
    out_dir = Path(args.out or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    for photo in args.args[2:]:
        image = load_image(photo, args.size)
        styled, seconds = apply_style_net(model, image[None])
        path = save_image(styled[0], out_dir / f"{Path(photo).stem}-{Path(args.args[1]).stem}.png")
        print(f"wrote {path} ({image.shape[2]}x{image.shape[1]} in {seconds * 1000:.0f} ms)")
    return 0
