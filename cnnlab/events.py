"""One event system for a run: what the trainer and the job say, as plain data, and who hears it.

The trainer (cnnlab/train/engine.py), the job around it (cnnlab/app/job.py) and the checkpoint writer emit
into one `Emitter`; the store, the terminal's progress bar, the notebook's, TensorBoard, MLflow, W&B, the CSV
log and the web page's stream are `Listener`s of the same events (Lightning's callback hooks, fastai's
named events). An event crosses a process or a socket as JSON and comes back the same.

The events, in the order a run says them (EVENTS below holds the same table, for tests and docs):
  log           text                     lint findings, the run line, warnings; any time
  fit_start     run_dir, name, config, summary, data, epochs, batches_per_epoch, history, pid
                                         training begins (or resumes: history holds the rows so far)
  epoch_start   epoch, epochs            epoch counts from 1
  batch_end     epoch, batch, batches, step, loss, acc, img_per_s, lr
                                         at most ~5 a second, each epoch's last batch, and every step
                                         a listener's `every` (every_n_steps) divides
  evaluation    epoch, split, loss, acc  an epoch's scoring (split val, or test without a val split) and the
                                         final test evaluation (epoch null; with TTA also acc_tta, loss_tta)
  epoch_end     row, epochs, eta_s       row is what metrics.csv gets; a diverged epoch comes with eta_s null
  checkpoint    epoch, path              checkpoint.pt and metrics.csv written (a killed run resumes here)
  result        what result.json holds   status finished | interrupted | diverged | failed
  diagnosis     verdict, text            the doctor's verdict, as a dict and as text
  error         message, kind            kind user | diverged | crash
  end           status                   always the last event

Listeners are made by name too (`loggers: [mlflow, csv]` in a config, `--logger` on the CLI): `register`
adds a factory to the registry, `make_listener(name, **options)` builds one, `listener_names()` lists them
(the shipped loggers register when cnnlab.track.loggers is imported, as the job does).
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .errors import UserError

EVENTS = {
    "log": ("text",),
    "fit_start": ("run_dir", "name", "config", "summary", "data", "epochs", "batches_per_epoch", "history", "pid"),
    "epoch_start": ("epoch", "epochs"),
    "batch_end": ("epoch", "batch", "batches", "step", "loss", "acc", "img_per_s", "lr"),
    "evaluation": ("epoch", "split", "loss", "acc"),
    "epoch_end": ("row", "epochs", "eta_s"),
    "checkpoint": ("epoch", "path"),
    "result": ("status",),
    "diagnosis": ("verdict", "text"),
    "error": ("message", "kind"),
    "end": ("status",),
}


@dataclass
class Event:
    type: str
    data: dict
    run: str | None = None           # the run directory, once claimed
    time: float = field(default_factory=time.time)

    def __post_init__(self):
        if self.type not in EVENTS:
            raise ValueError(f"unknown event type {self.type!r}; the events are {', '.join(EVENTS)}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Event":
        return cls(d["type"], d["data"], d.get("run"), d.get("time", time.time()))


class Listener:
    """A listener with one method per event type it cares about, `on_epoch_end(data, event)`; the rest are
    ignored. A plain callable taking the Event is a listener too."""

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"on_{event.type}", None)
        if handler is not None:
            handler(event.data, event)


class Emitter:
    """Sends each event to every listener in order. A listener that raises is dropped with one warning (a
    `log` event; on stderr where the event was `log` or `end`, which stays the last) and its `dropped(exc)`
    is called if it has one; the run goes on: a logger whose server is down never stops training. A listener
    marked `required = True` (the checkpoint writer) is part of the run: what it raises fails the run. An
    event emitted while another is being delivered (a checkpoint written on epoch_end) is delivered after it,
    so every listener hears the events in the same order. Emit from one thread (the job's); listeners may be
    added from another between events."""

    def __init__(self, listeners=(), run: str | None = None):
        self.listeners: list[Callable[[Event], None]] = list(listeners)
        self.run = run
        self._pending: list[Event] = []
        self._delivering = False

    def emit(self, type_: str, data: dict) -> Event:
        return self.tell(Event(type_, data, self.run))

    def tell(self, event: Event) -> Event:
        """Deliver an event made elsewhere (another emitter's, relayed) as it is."""
        self._pending.append(event)
        if not self._delivering:
            self._delivering = True
            try:
                while self._pending:
                    self._deliver(self._pending.pop(0))
            except BaseException:
                self._pending.clear()  # a required listener failed the run: what was queued is moot
                raise
            finally:
                self._delivering = False
        return event

    def wants_step(self, step: int) -> bool:
        """Whether a listener logs every N steps (its `every` attribute) and `step` is one of them: the trainer
        then tells that batch_end whatever its time throttle says."""
        return any(getattr(listener, "every", None) and step % listener.every == 0 for listener in self.listeners)

    def _deliver(self, event: Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 — a broken listener must not take the run down
                if getattr(listener, "required", False):
                    raise
                if listener in self.listeners:
                    self.listeners.remove(listener)
                _tell_dropped(listener, exc)
                text = (f"warning: listener {_name(listener)} failed on '{event.type}' ({exc}); "
                        "it hears no more events")
                if event.type in ("log", "end"):
                    print(text, file=sys.stderr)
                else:
                    self._pending.append(Event("log", {"text": text}, self.run))


def _tell_dropped(listener, exc: Exception) -> None:
    """A dropped listener's last word (an MLflow run marked FAILED rather than left RUNNING), if it has one."""
    dropped = getattr(listener, "dropped", None)
    if dropped is not None:
        try:
            dropped(exc)
        except Exception:  # noqa: BLE001 — it is gone either way
            pass


def _name(listener) -> str:
    return getattr(listener, "name", None) or getattr(listener, "__name__", None) or type(listener).__name__


# ---------------------------------------------------------------------- listeners by name
_REGISTRY: dict[str, tuple[Callable[..., Listener], str]] = {}


def register(name: str, about: str):
    """Decorator: `@register("mlflow", "MLflow tracking: params, metrics, artifacts")` on a Listener factory
    (a class or a function taking the options as keywords)."""
    def add(factory):
        _REGISTRY[name] = (factory, about)
        return factory
    return add


def listener_names() -> dict[str, str]:
    """Every registered listener's name and what it does."""
    return {name: about for name, (_, about) in sorted(_REGISTRY.items())}


def make_listener(name: str, **options) -> Listener:
    if name not in _REGISTRY:
        raise UserError(f"no logger named {name!r}; the loggers are {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name][0](**options)

