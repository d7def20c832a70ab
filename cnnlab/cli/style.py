"""`cnnlab style CONTENT STYLE`, `cnnlab style train STYLE --images FOLDER`, `cnnlab style apply NET PHOTO...`."""
from __future__ import annotations

import sys

from ..app import style
from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("style", help="style transfer: CONTENT STYLE (Gatys), `train STYLE --images DIR`, "
                                     "`apply NET PHOTO...` (fast feed-forward)")
    p.add_argument("args", nargs="+", metavar="ARG", help="CONTENT STYLE | train STYLE | apply NET PHOTO...")
    p.add_argument("-o", "--out", help="output image (Gatys), network file (train) or folder (apply)")
    p.add_argument("--size", type=int, default=256, help="longer side of the images, in pixels (default 256)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--style-weight", type=float, default=10.0, help="weight of the Gram-matrix (style) loss")
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--tv-weight", type=float, default=1e-3)
    p.add_argument("--loss-net", default="random",
                   help="random (default), a cnnlab run directory, or a VGG-19/16 weights file")
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam",
                   help="adam (default: 2x faster a step here, and it never stalled) or lbfgs (Gatys's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=["content", "noise"], default="content", help="start from the content image or noise")
    p.add_argument("--save-every", type=int, help="also write the image every N steps")
    p.add_argument("--images", help="train: a folder of photos to train the fast network on")
    p.add_argument("--batch", type=int, default=4, help="train: photos per step")
    p.set_defaults(func=cmd_style)


def cmd_style(args) -> int:
    if args.args[0] == "train":
        return _train(args)
    if args.args[0] == "apply":
        return _apply(args)
    if len(args.args) != 2:
        raise UserError("usage: cnnlab style CONTENT STYLE [-o out.png] (or `cnnlab style train STYLE --images DIR`, "
                        "`cnnlab style apply NET PHOTO...`)")
    live = sys.stdout.isatty()

    def on_step(step, record):
        if live and (step % 5 == 0 or step == args.steps):
            print(f"\rstep {step}/{args.steps}  style {record['style']:.4g}  content {record['content']:.4g}  "
                  f"tv {record['tv']:.3g}", end="", flush=True)
    done = style.stylise(args.args[0], args.args[1], args.out or "stylised.png", args.size, args.steps,
                         args.style_weight, args.content_weight, args.tv_weight, args.loss_net, args.optimizer,
                         args.seed, args.init, args.save_every, on_step)
    if live:
        print()
    first, last = done.first, done.last
    print(f"wrote {done.out} ({done.width}x{done.height}, {done.steps} steps in {done.seconds:.1f}s; style loss "
          f"{first['style']:.4g} -> {last['style']:.4g}, content loss {first['content']:.4g} -> "
          f"{last['content']:.4g}; loss network {done.loss_net})")
    return 0


def _train(args) -> int:
    if len(args.args) != 2 or not args.images:
        raise UserError("usage: cnnlab style train STYLE --images FOLDER [-o style.safetensors]")

    def on_step(step, parts):
        if step % 25 == 0 or step == args.steps:
            print(f"step {step}/{args.steps}  style {parts['style']:.4g}  content {parts['content']:.4g}", flush=True)
    out, photos, seconds = style.train_net(args.args[1], args.images, args.out, args.size, args.steps, args.batch,
                                           args.style_weight, args.content_weight, args.loss_net, args.seed, on_step)
    print(f"wrote {out} (trained on {photos} images for {args.steps} steps in {seconds:.0f}s); "
          f"apply it with: cnnlab style apply {out} PHOTO...")
    return 0


def _apply(args) -> int:
    if len(args.args) < 3:
        raise UserError("usage: cnnlab style apply STYLE_NET PHOTO... [-o DIR]")
    for done in style.apply_net(args.args[1], args.args[2:], args.out or ".", args.size):
        print(f"wrote {done['path']} ({done['width']}x{done['height']} in {done['ms']:.0f} ms)")
    return 0
