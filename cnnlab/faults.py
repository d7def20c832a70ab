"""Fail points for the kill-anywhere tests: `CNNLAB_FAULT=checkpoint-write:2` SIGKILLs this process the
second time training passes the point named `checkpoint-write` (as a power cut would). Without the
variable, `hit` is one dictionary lookup.

Points: batch, epoch-end, checkpoint-write (temporary file written, not yet renamed), checkpoint-written,
final-eval, weights-write, result-write.
"""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def hit(point: str) -> None:
    target = os.environ.get("CNNLAB_FAULT")
    if not target:
        return
    name, _, nth = target.partition(":")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
