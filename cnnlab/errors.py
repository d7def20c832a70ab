"""Errors a user can act on.

Everything the user can get wrong (a config key, a layer, a data file) raises `UserError`; the CLI prints
its message and exits with status 2 instead of a traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake in the user's input, with a message that says what was found and what would be valid."""


def closest(name: str, valid: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the nearest valid name, or '' when nothing is close."""
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown(kind: str, name: str, valid: Iterable[str], where: str = "") -> UserError:
    valid = sorted(valid)
    prefix = f"{where}: " if where else ""
    return UserError(f"{prefix}unknown {kind} '{name}'{closest(name, valid)}; valid: {', '.join(valid)}")


class NotFound(UserError):
    """The thing named (a run, a template) does not exist: the server answers 404."""


class Conflict(UserError):
    """The thing exists but is not in a state that allows this (a run without final weights yet): 409."""


class TooLarge(UserError):
    """The input is over a size limit (an upload, a request body): 413."""
