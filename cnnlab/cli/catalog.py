"""`cnnlab models | recipes | schema`: what cnnlab ships — the named architectures, the training recipes, and
the JSON Schemas of the model language and the training config."""
from __future__ import annotations

import json

from ..app import models, recipes
from ..app.config import schema


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of the model language or the training config")
    p.add_argument("what", choices=["model", "config"])
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("models", help="list the named architectures")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("recipes", help="list the shipped training recipes, their FLOP budgets and measured results")
    p.add_argument("--show", metavar="NAME", help="print a recipe's YAML (copy it to change it)")
    p.set_defaults(func=cmd_recipes)


def cmd_schema(args) -> int:
    """The JSON Schema of the model language or of the training config (what forms and tools validate with)."""
    print(json.dumps(schema(args.what), indent=2))
    return 0


def cmd_models(args) -> int:
    listed = models.models(args.pattern)
    width = max((len(m["name"]) for m in listed), default=0)
    for m in listed:
        options = f"  [options: {', '.join(m['options'])}]" if m["options"] else ""
        print(f"{m['name']:{width}s}  {m['about']}{options}")
    return 0


def cmd_recipes(args) -> int:
    if args.show:
        print(recipes.recipe_text(args.show), end="")
        return 0
    for recipe in recipes.recipes():
        print(recipe.render())
    return 0
