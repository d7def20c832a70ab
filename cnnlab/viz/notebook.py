"""What a notebook shows while a run trains: a bar, curves that redraw at each epoch, the log, and at the end the
result and the doctor's verdict. A listener of the job's events, like the terminal's `Progress`; each part is
one IPython display updated in place through its `display_id` (not a widget), so a notebook executed by
nbclient or saved from the browser keeps each part's last state.

IPython is imported only when a `NotebookProgress` is made: cnnlab runs without it (`pip install
'cnnlab[notebook]'` adds it, and Jupyter brings it anyway)."""
from __future__ import annotations

import sys
import time

from ..diagnose.doctor import Verdict
from ..events import Listener
from ..htmlrepr import esc
from ..train.progress import epoch_line, fmt_seconds, result_line, stopped_line
from .curves import curves_png

UPDATE_INTERVAL = 0.25  # seconds between redraws of the bar: live to the eye, and each redraw is a message the
                        # kernel sends and the browser renders (the trainer already sends at most ~5 batches a s)
SEPARATOR = " \u00b7 "  # between the bar's facts


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel. IPython is asked only if something imported it already (a
    kernel always has), so a script never imports it."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and (type(shell).__name__ == "ZMQInteractiveShell" or hasattr(shell, "kernel"))


class NotebookProgress(Listener):
    """The live display of a run in a notebook: `cnnlab.train` and `cnnlab.resume` choose it in a kernel.
    `display` and `clock` stand in for IPython's `display` and `time.monotonic` (tests pass their own)."""

    def __init__(self, display=None, clock=time.monotonic):
        try:
            from IPython.display import HTML, Image, display as ipython_display
        except ImportError:
            raise ImportError("the notebook display needs IPython: pip install 'cnnlab[notebook]'") from None
        self._html, self._image = HTML, Image
        self._display = display or ipython_display
        self._clock = clock
        self._handles: dict[str, object] = {}    # part -> its display handle: log, bar, curves, end
        self.logs: list[str] = []
        self.rows: list[dict] = []
        self.ending: list[str] = []
        self.name, self.epochs, self.batches = "run", 0, 0
        self.last_epoch = ""                    # the terminal's line for the last finished epoch
        self._started, self._first_batch, self._drawn = clock(), 0, float("-inf")

    def show(self, part: str, obj) -> None:
        """Display `obj` as `part` the first time, and replace it in place afterwards."""
        if part in self._handles:
            self._handles[part].update(obj)
        else:
            self._handles[part] = self._display(obj, display_id=True)

    # ------------------------------------------------------------------ events
    def on_log(self, data, event) -> None:
        self.logs.append(data["text"])
        self.show("log", self._html(f"<pre style='margin:0'>{esc(chr(10).join(self.logs))}</pre>"))

    def on_fit_start(self, d, event) -> None:
        self.name, self.epochs, self.batches = d["name"], d["epochs"], d["batches_per_epoch"]
        self.rows = list(d.get("history") or [])   # a resumed run's epochs so far
        self._started, self._first_batch = self._clock(), len(self.rows) * self.batches
        self._bar(len(self.rows) + 1, 0, None)
        if self.rows:
            self._curves()

    def on_batch_end(self, d, event) -> None:
        now = self._clock()
        if now - self._drawn < UPDATE_INTERVAL and d["batch"] < d["batches"]:
            return
        self._drawn = now
        done = (d["epoch"] - 1) * d["batches"] + d["batch"]
        rate = (done - self._first_batch) / max(now - self._started, 1e-9)
        eta = (self.epochs * d["batches"] - done) / rate if rate > 0 else None
        self._bar(d["epoch"], d["batch"], eta,
                  SEPARATOR.join([f"loss {d['loss']:.4f}", f"acc {d['acc']:.4f}", f"{d['img_per_s']:.0f} img/s"]))

    def on_epoch_end(self, d, event) -> None:
        row = d["row"]
        self.rows.append(row)
        self.last_epoch = epoch_line(row, d["epochs"])
        self._bar(row["epoch"], self.batches, d.get("eta_s"))
        self._curves()

    def on_result(self, result, event) -> None:
        status = result["status"]
        if status == "finished":
            text = result_line(result, event.run)
        elif status == "interrupted":
            text = stopped_line(result, f"cnnlab.resume({str(event.run)!r})")
        else:
            text = f"The run {status}" + (f": {result['message']}" if result.get("message") else "")
        self._end(f"<div><b>{esc(text)}</b></div>")

    def on_diagnosis(self, d, event) -> None:
        self._end(Verdict(**d["verdict"])._repr_html_())

    def on_error(self, d, event) -> None:
        self._end(f"<div style='color:#c00'><b>error ({esc(d['kind'])}):</b> {esc(d['message'])}</div>")

    # ------------------------------------------------------------------ the parts
    def _bar(self, epoch: int, batch: int, eta_s: float | None, running: str = "") -> None:
        total = max(self.epochs * self.batches, 1)
        done = min((max(epoch, 1) - 1) * self.batches + batch, total)
        facts = [f"<b>Epoch {epoch}/{self.epochs}</b>", f"batch {batch}/{self.batches}"]
        if running:
            facts.append(running)
        if eta_s:  # none yet, or none left
            facts.append(f"ETA {fmt_seconds(eta_s)}")
        last = f"<div>{esc(self.last_epoch)}</div>" if self.last_epoch else ""
        bar = f"<progress value='{done}' max='{total}' style='width:24em;vertical-align:middle'></progress>"
        self.show("bar", self._html(f"<div style='font-family:monospace'><div>{bar} {SEPARATOR.join(facts)}</div>"
                                    f"{last}</div>"))

    def _end(self, html: str) -> None:
        """The run's ending, one part: the result, then the verdict (or the error) under it."""
        self.ending.append(html)
        self.show("end", self._html("".join(self.ending)))

    def _curves(self) -> None:
        self.show("curves", self._image(data=curves_png({self.name: self.rows}, self.name), format="png"))
