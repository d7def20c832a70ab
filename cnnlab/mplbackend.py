"""matplotlib's backend for cnnlab's figures, which are all drawn to PNG and closed: Agg, which needs no display
and opens no window, except in a Jupyter kernel, whose own backend (inline) is kept so that a notebook's
`plt.plot` still shows after `import cnnlab` (Agg there hid every later figure of the user's)."""
from __future__ import annotations

import sys


def headless() -> None:
    import matplotlib
    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
