"""`cnnlab import | export`: a model in from Keras or PyTorch, a trained run out as ONNX, TorchScript or
safetensors."""
from __future__ import annotations

from ..app import models, runs
from .options import add_data_options


def register(sub) -> None:
    p = sub.add_parser("import", help="read a Keras or PyTorch model into a cnnlab model file",
                       description="Read a model's architecture (not its weights) into a cnnlab model file with a "
                                   "comment per layer, then print its summary and lint. Keras code is read, never "
                                   "run: a Sequential model, its model.add(...) lines alone, or the functional API "
                                   "(Input, Add, Concatenate, Model(inputs, outputs)); also Keras JSON and .keras "
                                   "files. A PyTorch nn.Module is made by its class or a function returning one (with --args, or arguments "
                                   "in the reference: vgg.py:VGG('VGG16')) and traced with torch.fx "
                                   "(from a file, only its imports, definitions and constants run). Branches "
                                   "become residual and concat blocks.")
    p.add_argument("file", help="Keras code (.py), model.to_json() output, a .keras file, - for standard input, or "
                                "a PyTorch module: their_net.py:Net, resnet.py:ResNet18 (a function returning one), "
                                "vgg.py:VGG('VGG16'), package.module:Net, or their_net.py")
    p.add_argument("-o", "--out", help="model file to write (default: FILE's name with .yaml)")
    p.add_argument("--args", help="arguments to make a PyTorch module with, as Python values: `--args \"'VGG16'\"` "
                                  "for vgg.py:VGG, `--args net_size=1` (or write them in the reference: "
                                  "vgg.py:VGG('VGG16'))")
    p.add_argument("--data", help="data set to check it against, and to trace a PyTorch module on (default: from "
                                  "its input shape, else cifar10)")
    p.add_argument("--overwrite", action="store_true")
    add_data_options(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a trained run's model as ONNX, TorchScript or safetensors")
    p.add_argument("run", help="run directory")
    p.add_argument("--format", choices=["onnx", "torchscript", "safetensors"], default="onnx")
    p.add_argument("-o", "--out", help="file to write (default: model.onnx etc. in the run directory)")
    p.add_argument("--input", choices=["float", "uint8"], default="float",
                   help="what the exported model takes: float images in [0, 1] (default) or uint8 0..255")
    p.set_defaults(func=cmd_export)


def cmd_import(args) -> int:
    """Keras code, JSON or .keras, or a PyTorch module -> a model file with a comment per layer; then its
    summary and lint."""
    print(models.import_model(args.file, args.out, args.data, args.data_dir, args.root, args.overwrite, args.args).render())
    return 0


def cmd_export(args) -> int:
    path = runs.export(runs.open_run(args.run), args.format, args.out, args.input)
    print(f"wrote {path} ({args.format}, input {args.input})")
    return 0
