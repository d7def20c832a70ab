"""Processes: whether one is still there (a run's trainer, a sweep's worker), from its pid alone."""
from __future__ import annotations

import os
from pathlib import Path


def alive(pid) -> bool:
    """True while a process with this pid exists (also one of another user's: it exists, we may not signal it)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):  # gone, or not a pid at all
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is gone too
        return Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal said it exists
