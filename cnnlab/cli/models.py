"""`cnnlab summary | lint | models | data | schema | import | export`: what a model is, where it comes from
and goes to, and what the data look like."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError


def cmd_summary(args) -> int:
    from ..diagnose.lint import lint, render as render_lint
    from ..models import build_model
    from ..models.summary import render, summarize
    model = build_model(*_spec_and_data(args))
    print(render(summarize(model), args.batch_size))
    findings = lint(model)
    if findings:
        print(render_lint(findings))
    return 0


def _spec_and_data(args):
    """The model argument of summary/lint (a model YAML, a train config, or a registered name), with the input
    shape and class count of the data set it is for."""
    from ..yamlio import load_yaml
    spec = args.model
    if spec.endswith((".yaml", ".yml")):
        located = load_yaml(spec)
        if isinstance(located.data, dict) and "model" in located.data and "layers" not in located.data:
            if args.data is None and isinstance(located.data.get("data"), dict):
                args.data = located.data["data"].get("name")
            spec = located.sub(("model",))
            if isinstance(spec.data, str) and spec.data.endswith((".yaml", ".yml")):
                spec = spec.data
        else:
            spec = located
    args.data = args.data or "cifar10"
    shape, classes = _input_for(args)
    return spec, shape, classes


def _input_for(args) -> tuple[tuple, int]:
    """Input shape and class count for a data set: known for the built-in sets, read for an image folder."""
    from ..data import SOURCES, load_dataset
    name = args.data
    if name in SOURCES:
        return SOURCES[name].input_shape, SOURCES[name].num_classes
    ds = load_dataset(name, args.data_dir, root=args.root)
    return ds.input_shape, ds.num_classes


def cmd_lint(args) -> int:
    """Findings for the model; one that cannot be built gets its error and every finding still possible."""
    from ..diagnose.lint import lint_spec, render
    error, findings = lint_spec(*_spec_and_data(args))
    if error is not None:
        if findings:
            print(render(findings))
        raise error
    print(render(findings))
    return 1 if findings and args.strict else 0


def cmd_models(args) -> int:
    from ..models.registry import describe, list_models, options
    for name in list_models(args.pattern):
        print(f"{name:10s} {describe(name)}  [options: {', '.join(options(name))}]")
    return 0


def cmd_recipes(args) -> int:
    from ..recipes import budget, list_recipes, load_recipe, recipe_path
    if args.show:
        print(recipe_path(args.show).read_text(), end="")
        return 0
    for name in list_recipes():
        _, about = load_recipe(name)
        b = budget(name)
        model = b["config"].model
        model = model if isinstance(model, str) else json.dumps(model)
        print(f"{name}: {about.get('description', '')}")
        print(f"    model {model}, {b['epochs']} epochs of batch {b['batch_size']}; {b['flop_per_image'] / 1e9:.3f} "
              f"GFLOP per training image, {b['pflop']:.3f} PFLOP in all")
        for line in about.get("measured", []):
            print(f"    measured: {line}")
        print(f"    cnnlab train --recipe {name}")
    return 0


def cmd_data_info(args) -> int:
    from collections import Counter
    from ..data import load_dataset
    ds = load_dataset(args.name, args.data_dir, args.val_split, root=args.root)
    c, h, w = ds.input_shape
    mean, std = ds.channel_stats()
    print(f"{ds.name}: {len(ds.train_x):,} training, {0 if ds.val_x is None else len(ds.val_x):,} validation, "
          f"{len(ds.test_x):,} test images of {h}x{w}, {c} channel{'s' if c > 1 else ''}, {ds.num_classes} classes")
    print(f"channel mean {', '.join(f'{m:.4f}' for m in mean)}   std {', '.join(f'{s:.4f}' for s in std)}")
    train, test = Counter(ds.train_y.tolist()), Counter(ds.test_y.tolist())
    width = max(len(n) for n in ds.classes)
    print(f"{'class':{width}s}  {'train':>7s}  {'test':>6s}")
    for i, name in enumerate(ds.classes):
        print(f"{name:{width}s}  {train[i]:7,d}  {test[i]:6,d}")
    return 0


def cmd_data_show(args) -> int:
    import torch
    from .. import config as config_mod
    from ..data import load_dataset
    from ..train.augment import Augmenter
    from ..viz.grid import image_grid
    ds = load_dataset(args.name, args.data_dir, root=args.root)
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(ds.train_x), generator=gen)[:args.count]
    images = ds.train_x[idx]
    title = f"{ds.name}: {args.count} training images"
    if args.augment:
        cfg, _ = config_mod.resolve(args.augment if Path(args.augment).exists() else {"augment": args.augment})
        settings = config_mod.augment_settings(cfg, ds.name if ds.name in config_mod.AUGMENT_DEFAULTS else "imagefolder")
        augmenter = Augmenter(settings, [0.0] * ds.input_shape[0], [1.0] * ds.input_shape[0], torch.device("cpu"))
        images = augmenter.augment(images, gen)
        title += ", augmented: " + ", ".join(f"{k}={v}" for k, v in settings.model_dump().items()
                                             if v not in (0, 0.0, "none") and k not in ("crop_mode", "fill"))
    out = Path(args.out or f"{ds.name}-samples.png")
    image_grid(images, [ds.classes[i] for i in ds.train_y[idx].tolist()], out, title=title)
    print(f"wrote {out}")
    return 0


def cmd_schema(args) -> int:
    """The JSON Schema of the model language or of the training config (what forms and tools validate with)."""
    if args.what == "model":
        from ..schema.layers import layer_json_schema
        schema = layer_json_schema()
    else:
        from ..schema.config import TrainConfig
        schema = TrainConfig.model_json_schema()
    print(json.dumps(schema, indent=2))
    return 0


def cmd_import(args) -> int:
    """Keras code, JSON or .keras -> a model file with a comment per layer; then its summary and lint."""
    import sys
    from ..diagnose.lint import lint, render as render_lint
    from ..fsutil import write_text
    from ..interop.keras import import_keras, to_yaml
    from ..models import build_model
    from ..models.summary import render, summarize
    text = sys.stdin.read() if args.file == "-" else None
    imported = import_keras(args.file, text)
    out = Path(args.out or f"{Path(imported.name if args.file == '-' else args.file).stem}.yaml")
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: already exists; choose another -o, or pass --overwrite")
    if args.data is None and imported.input_shape is not None:
        args.data = _data_for_shape(imported.input_shape, imported.spec)
    args.data = args.data or "cifar10"
    shape, classes = _input_for(args)
    if imported.input_shape and tuple(imported.input_shape) != tuple(shape):
        print(f"note: the Keras model was written for input {imported.input_shape}; {args.data} gives {shape}")
    model = build_model(imported.spec, shape, classes)  # fails before anything is written
    write_text(out, to_yaml(imported, args.file))
    for note in imported.notes + [n for layer in imported.layers for n in layer.notes]:
        print(f"note: {note}")
    print(render(summarize(model), 256))
    print(render_lint(lint(model)))
    print(f"wrote {out} ({len(imported.spec['layers'])} layers, checked against {args.data}); train it with: "
          f"cnnlab train {out} --data {args.data}")
    return 0


def _data_for_shape(shape, spec) -> str | None:
    """The built-in data set a Keras model's input shape was written for."""
    last = spec["layers"][-1] if spec["layers"] else None
    units = last.get("dense", {}).get("units") if isinstance(last, dict) and isinstance(last.get("dense"), dict) \
        else last.get("dense") if isinstance(last, dict) else None
    if tuple(shape) == (3, 32, 32):
        return "cifar100" if units == 100 else "cifar10"
    if tuple(shape) == (1, 28, 28):
        return "mnist"
    return None


def cmd_export(args) -> int:
    from ..interop.export import export
    path = export(args.run, args.format, args.out, args.input)
    print(f"wrote {path} ({args.format}, input {args.input})")
    return 0
