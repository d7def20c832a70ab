"""Processes: whether one is still there (a run's trainer, a sweep's worker), from its pid alone."""
from __future__ import annotations

import os


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
    return True
