"""What a training job tells its listeners, as plain data: the store, the terminal's progress bar,
TensorBoard and the web page's stream all hear the same events and none of them imports the trainer.

Event types, in order:
  start      run_dir, name, config, summary, data, epochs, batches_per_epoch, history (rows so far: a resume)
  log        text (lint findings, the run line, warnings)
  batch      epoch, batch, batches, loss, acc, img_per_s, lr   (at most ~5 a second, and each epoch's last)
  epoch      row (what metrics.csv gets), epochs, eta_s
  result     result (what result.json holds; status finished | interrupted | diverged | failed)
  diagnosis  verdict (the doctor's, as a dict), text
  error      message, kind (user | diverged | crash)
  end        status — always the last event
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass
class Event:
    type: str
    data: dict
    run: str | None = None           # the run directory, once claimed
    time: float = field(default_factory=time.time)

    def as_dict(self) -> dict:
        return asdict(self)


class Listener:
    """A listener with one method per event type it cares about: `on_epoch(data, event)`; others are ignored."""

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"on_{event.type}", None)
        if handler is not None:
            handler(event.data, event)
