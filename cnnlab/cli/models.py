"""`cnnlab summary | lint`: what a model is against a data set — its layer table, and what holds it back.
Each command parses, calls cnnlab.app, prints."""
from __future__ import annotations

from ..app import models
from .options import add_data_options


def register(sub) -> None:
    p = sub.add_parser("summary", help="layer table, parameters and MACs of a model")
    p.add_argument("model", help="model YAML, train config YAML, or a registered name (see `cnnlab models`)")
    p.add_argument("--data", help="data set giving the input shape and classes (default cifar10; imagenet: 3x224x224, 1000 classes, the default for the *-imagenet models)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size for the activation-memory estimate")
    add_data_options(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("lint", help="warnings about a model before training: what holds it back, and the fix")
    p.add_argument("model", help="model YAML, train config YAML, or a registered name")
    p.add_argument("--data", help="data set giving the input shape and classes (default cifar10; imagenet: 3x224x224, 1000 classes, the default for the *-imagenet models)")
    p.add_argument("--strict", action="store_true", help="exit with 1 when there are findings")
    add_data_options(p)
    p.set_defaults(func=cmd_lint)


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
