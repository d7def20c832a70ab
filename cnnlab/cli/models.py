"""`cnnlab summary | lint | models | recipes | data | schema | import | export`: what a model is, where it
comes from and goes to, and what the data look like. Each command parses, calls cnnlab.app, prints."""
from __future__ import annotations

import json

from ..app import datasets, models, recipes, runs
from ..app.config import schema


def cmd_summary(args) -> int:
    arg = models.model_arg(args.model, args.data)
    print(models.summary(arg.spec, arg.data, args.data_dir, args.root, args.batch_size).render())
    return 0


def cmd_lint(args) -> int:
    """Findings for the model; one that cannot be built gets its error and every finding still possible."""
    arg = models.model_arg(args.model, args.data)
    report = models.lint_model(arg.spec, arg.data, args.data_dir, args.root)
    if report.error is not None:
        if report.findings:
            print(report.render())
        raise report.error
    print(report.render())
    return 1 if report.findings and args.strict else 0


def cmd_models(args) -> int:
    for m in models.models(args.pattern):
        print(f"{m['name']:10s} {m['about']}  [options: {', '.join(m['options'])}]")
    return 0


def cmd_recipes(args) -> int:
    if args.show:
        print(recipes.recipe_text(args.show), end="")
        return 0
    for recipe in recipes.recipes():
        print(recipe.render())
    return 0


def cmd_data_info(args) -> int:
    print(datasets.describe(args.name, args.data_dir, args.val_split, args.root).render())
    return 0


def cmd_data_show(args) -> int:
    out = datasets.samples(args.name, args.out, args.augment, args.data_dir, args.root, args.count, args.seed)
    print(f"wrote {out}")
    return 0


def cmd_schema(args) -> int:
    """The JSON Schema of the model language or of the training config (what forms and tools validate with)."""
    print(json.dumps(schema(args.what), indent=2))
    return 0


def cmd_import(args) -> int:
    """Keras code, JSON or .keras, or a PyTorch module -> a model file with a comment per layer; then its
    summary and lint."""
    print(models.import_model(args.file, args.out, args.data, args.data_dir, args.root, args.overwrite).render())
    return 0


def cmd_export(args) -> int:
    path = runs.export(runs.open_run(args.run), args.format, args.out, args.input)
    print(f"wrote {path} ({args.format}, input {args.input})")
    return 0
