"""The config overrides a command's flags make: its --set pairs, the shortcuts (--model, --data, --data-dir),
and `cnnlab train`'s short flags (--epochs, --lr, ...)."""
from __future__ import annotations

# The short flags of `cnnlab train` and the config key each sets. They come after every --set, and an error
# names the flag: `--epochs 0: epochs must be an integer from 1 to 100,000, got 0`.
SHORT_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "optimizer.lr", "device": "device",
               "seed": "seed", "precision": "precision", "recipe": "recipe", "weights": "weights"}


def config_overrides(args) -> list[str]:
    """--set pairs plus the shortcut flags (--data, --data-dir, --model) as overrides, shortcuts last."""
    overrides = list(args.set or [])
    for flag, key in (("data", "data.name"), ("data_dir", "data.dir"), ("model", "model")):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    return overrides


def flag_overrides(args, flags=tuple(SHORT_FLAGS)) -> list[tuple]:
    """The short flags given, as (config key, value, flag as typed) overrides holding the value as argparse
    typed it (an --lr of 1e-05 stays a number; as `--set` text YAML would read it as a string). Plain tuples:
    cnnlab.config.resolve reads them as its Overrides, so the CLI needs nothing from below cnnlab.app."""
    return [(SHORT_FLAGS[flag], getattr(args, flag), f"--{flag.replace('_', '-')} {getattr(args, flag)}")
            for flag in flags if getattr(args, flag, None) is not None]
