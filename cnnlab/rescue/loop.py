"""The rescue: a race of the doctor's candidates where the winner goes on to be the final run.

Every candidate (cnnlab/rescue/prior.py: the floor, the floor with the doctor's prescriptions, a forecast) is a
run planned for the whole budget as if it wins: the same schedule, its epochs what the budget leaves once the
others have trained to the rung. All train to the rung (1-3 epochs) on the same seeded validation split; the
floor is kept unless another beats it there by KEEP_MARGIN; the winner's run then trains on from its checkpoint
to the end of its schedule, where the test set is read for the first and only time. Nothing the search trained
is thrown away but the losers' first epochs, and a rescue whose doctor prescribes nothing is exactly
`cnnlab train` of the floor at the full budget.

A candidate that diverges is recorded and dropped (its cost counted) and raced again once at a third of its
rate; every candidate failing is the rescue's failure, named. The journal (rescue.json) is written after every
step, atomically: started again with the same arguments, the rescue replays it — the same decisions — and
continues the run under way from its checkpoint. A stop (Ctrl-C, SIGTERM, `request_stop`, the STOP file in the
rescue's folder) ends the current run after its batch, marked interrupted, and raises RescueStopped.
"""
from __future__ import annotations

import copy
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..diagnose.facts import diagnose_run
from ..errors import UserError
from ..fsutil import write_text
from ..rundir import Run
from ..train.engine import Diverged
from ..viz.rescue_table import render_table
from .budget import Budget, Entrant, Meter, check_epochs, plan_epochs, rung_epochs, val_fraction
from .changes import CHANGES, put, setting
from .prior import Candidate

JOURNAL_VERSION = 2
# A challenger replaces the floor when it leads at the rung by this much: 0.5 points, 12 of 2,500 validation
# images. Every entrant has the same seed, images, order and validation split; the floor wins ties because it
# is what the user would have had anyway.
KEEP_MARGIN = 0.005
FORECAST_SHARE = 0.5    # a forecast races on this share of the train split: half the cost, the same schedule point
STOP_POLL_S = 0.5


class RescueStopped(UserError):
    """The rescue was asked to stop; its message says how to continue."""


@dataclass
class Step:
    name: str                   # lint | floor | prescribed | forecast | NAME-lr3 | final | alone
    label: str
    architecture: bool
    run: str | None             # the run directory
    parent: str | None          # the run it started from (the rescued run), if any
    val_acc: float | None = None
    test_acc: float | None = None
    images: float = 0.0         # images trained in this step (the final step: after the rung)
    flop: float = 0.0
    seconds: float = 0.0
    kept: bool | None = None
    verdict: str | None = None
    detail: str = ""
    status: str = "running"     # raced | diverged | dropped | forecast | won | finished | applied | failed
    epoch: int | None = None    # the epoch val_acc was read at


@dataclass
class Journal:
    budget: str
    started: dict = field(default_factory=dict)     # the arguments it was started with
    plan: dict = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    state: str = "running"      # running | stopped | finished | failed
    pid: int | None = None
    message: str = ""

    @classmethod
    def load(cls, path: Path) -> "Journal | None":
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        if data.get("version") != JOURNAL_VERSION:
            raise UserError(f"{path}: a rescue journal from an earlier cnnlab (its rescue raced no candidates); "
                            "start a new rescue with another --name")
        return cls(data["budget"], data.get("started", {}), data.get("plan", {}),
                   [Step(**s) for s in data["steps"]], data.get("state", "running"), data.get("pid"),
                   data.get("message", ""))

    def save(self, path: Path, meter: Meter) -> None:
        total = meter.flop(Budget(*_budget_parts(self.budget)))
        write_text(path, json.dumps({"version": JOURNAL_VERSION, "budget": self.budget, "total_flop": total,
                                     "started": self.started,
                                     "plan": self.plan, "state": self.state, "pid": self.pid,
                                     "message": self.message, "train_images": meter.train_images,
                                     "flop_per_image": meter.flop_per_image,
                                     "steps": [asdict(s) for s in self.steps]}, indent=2))


class _Watch:
    """Stops the job it watches after the current batch: at the rung (an epoch_end there), or when the rescue is
    asked to stop (its Event, or the STOP file another process writes)."""

    def __init__(self, rescue: "Rescue", rung: int | None):
        self.rescue, self.rung, self.job, self.at_rung = rescue, rung, None, False
        self._done = threading.Event()

    def __call__(self, event) -> None:
        if self.rung is not None and event.type == "epoch_end" and event.data["row"].get("epoch", 0) >= self.rung:
            self.at_rung = True
            self.job.stop()

    def __enter__(self):
        def poll():
            while not self._done.wait(STOP_POLL_S):
                if self.rescue.stop_asked():
                    self.job.stop()
                    return
        threading.Thread(target=poll, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._done.set()


class Rescue:
    """`job`: the Job class (cnnlab.app.job.Job), handed down by the application layer as sweeps get it.
    `flop_of(config)`: 6 x MACs per image of a candidate's model. `start`: the run being rescued, if any."""

    def __init__(self, candidates: list[Candidate], budget: Budget, folder: Path, meter: Meter, job, *, name: str,
                 flop_of, started: dict, seed: int = 0, store=None, start: str | None = None, log=print,
                 final_listeners=(), stop: threading.Event | None = None, continue_command: str = ""):
        self.candidates, self.budget, self.folder, self.meter, self.job = candidates, budget, folder, meter, job
        self.name, self.flop_of, self.seed, self.store, self.start = name, flop_of, seed, store, start
        self.log, self.final_listeners = log, list(final_listeners)
        self.stop_event = stop or threading.Event()
        self.continue_command = continue_command
        self.path = folder / "rescue.json"
        self.total_flop = meter.flop(budget)
        old = Journal.load(self.path)
        if old is not None and all(s.name == "lint" for s in old.steps):
            old = None  # nothing trained yet (a budget refused, say): the name is free for other arguments
        if old is not None:
            differs = [k for k in ("name", "budget", "seed", "allow_architecture", "config")
                       if old.started.get(k) != started.get(k)]
            if differs:
                what = ", ".join(f"{k} {old.started.get(k)!r:.60}" for k in differs if k != "config")
                raise UserError(f"{self.path}: rescue {name} was started with other arguments ("
                                f"{what or 'another model or config'}); run it again with those to continue, or "
                                "choose another --name")
            old.started = {**old.started, **{k: v for k, v in started.items() if k not in old.started}}
        self.journal = old or Journal(str(budget), started=started)
        self._done = {s.name: s for s in self.journal.steps}

    # ------------------------------------------------------------ bookkeeping
    def stop_asked(self) -> bool:
        return self.stop_event.is_set() or (self.folder / "STOP").exists()

    def spent_flop(self) -> float:
        return sum(s.flop for s in self.journal.steps)

    def _record(self, step: Step) -> Step:
        names = [s.name for s in self.journal.steps]
        if step.name in names:  # a decision on a step already journalled: in its place
            self.journal.steps[names.index(step.name)] = step
        else:
            self.journal.steps.append(step)
        self._done[step.name] = step
        self._save()
        return step

    def _save(self) -> None:
        self.journal.save(self.path, self.meter)

    def add_step(self, step: Step) -> Step:
        """A step decided outside the race (lint's fixes), journalled once, first."""
        return self._done.get(step.name) or self._record(step)

    def _store_arg(self):
        return str(self.store) if self.store else False

    def _tag(self, run_dir: Path, *tags: str) -> None:
        if self.store:
            from ..track.store import Store
            store = Store(self.store)
            had = next((r["tags"] for r in store.runs() if r["id"] == run_dir.name), None)
            if had is not None:
                store.set_tags(run_dir.name, list(dict.fromkeys([*had, f"rescue:{self.name}", *tags])))

    def _run_dir(self, label: str) -> Path:
        # the rescue's name in every run's name: the store's id is the directory's name, and rescues share a store
        return self.folder / f"{self.name}-{label}"

    # ------------------------------------------------------------ training, stoppable
    def _train(self, config: dict | None, run_dir: Path, rung: int | None, listeners=()) -> tuple[Run, bool]:
        """Train `config` in `run_dir` (resumed where a checkpoint is), up to `rung` epochs or to its end.
        (the run, whether it reached the rung). Raises RescueStopped when stopped from outside."""
        if self.stop_asked():
            self._stopped(run_dir)
        result = run_dir / "result.json"
        if result.exists() and json.loads(result.read_text()).get("status") == "finished":
            return Run(run_dir), False
        if rung is not None and (run_dir / "metrics.csv").exists():
            run = Run(run_dir)
            if (len(run.metrics) >= rung and run.metrics[rung - 1].get("val_acc") is not None
                    and _checkpoint_epoch(run_dir) >= rung):
                return run, True  # raced before the journal could say so
        watch = _Watch(self, rung)
        if (run_dir / "checkpoint.pt").exists() and (run_dir / "config.yaml").exists():
            job = self.job.resume(run_dir, listeners=[watch, *listeners], store=self._store_arg())
        else:
            job = self.job(config, run_dir=run_dir, overwrite=True, listeners=[watch, *listeners],
                           store=self._store_arg())
        watch.job = job
        with watch:
            run = job.run()
        if run.result.get("status") == "finished":
            return run, False
        if watch.at_rung and not self.stop_asked():
            return run, True
        self._stopped(run_dir)

    def _stopped(self, run_dir: Path):
        (self.folder / "STOP").unlink(missing_ok=True)
        self.journal.state, self.journal.message = "stopped", f"stopped during {run_dir.name}"
        self._save()
        raise RescueStopped(f"rescue {self.name} stopped: {run_dir.name} is interrupted (its checkpoint kept); "
                            f"continue with: {self.continue_command}")

    # ------------------------------------------------------------ the race
    def _entrants(self) -> list[Entrant]:
        n = self.meter.train_images
        train = n - round(n * val_fraction(n))
        return [Entrant(c.name, self.flop_of(c.config), train * (1 if c.promotable else FORECAST_SHARE),
                        c.promotable) for c in self.candidates]

    def _race_config(self, candidate: Candidate, epochs: int, rung: int, run_dir: Path, val: float) -> dict:
        config = copy.deepcopy(candidate.config)
        config.update(name=run_dir.name, epochs=epochs, seed=self.seed, group=f"rescue:{self.name}",
                      evaluate_test=candidate.promotable,  # read only by a run that finishes: the winner
                      eval_every=rung)  # the race is judged at the rung; the winner gets the user's back
        put(config, "data.val_split", val)
        if not candidate.promotable:
            put(config, "data.subset", FORECAST_SHARE)
        if self.start:
            config["parent"] = self.start
        return config

    def _race(self, candidate: Candidate, epochs: int, rung: int, val: float, flop: float) -> Step:
        if candidate.name in self._done:
            return self._done[candidate.name]
        run_dir = self._run_dir(candidate.name)
        step = Step(candidate.name, candidate.label, candidate.architecture, str(run_dir), self.start,
                    detail=json.dumps({"epochs": epochs, "changes": candidate.changes}))
        try:
            config = self._race_config(candidate, epochs, rung, run_dir, val)
            run, _ = self._train(config, run_dir, rung)
        except Diverged as exc:  # a rate too high is a result, not the end of the rescue
            run = Run(run_dir)
            step.status, step.verdict, step.detail = "diverged", "diverged", str(exc).split(". ")[0]
        except RescueStopped:
            raise
        except UserError as exc:  # a candidate the config or model refuses: dropped, with the reason
            step.status, step.detail = "failed", str(exc)
            return self._record(step)
        self._count(step, run, flop)
        self._tag(run_dir)  # stopped at the rung, it reads as interrupted: the tag says whose it is (no Resume)
        if step.status != "diverged":
            row = run.metrics[rung - 1]
            step.val_acc, step.epoch = row.get("val_acc"), rung
            step.status = "raced" if candidate.promotable else "forecast"
        self.log(f"  {candidate.name:<11} " + (f"val {step.val_acc:.4f} at epoch {rung} of {epochs}"
                 if step.val_acc is not None else f"{step.status}: {step.detail:.100}") +
                 f"   spent {self.meter.epochs(self.spent_flop() + step.flop):.2f} of "
                 f"{self.meter.epochs(self.total_flop):.2f} epochs")
        return self._record(step)

    def _count(self, step: Step, run: Run, flop_per_image: float, after: int = 0) -> None:
        rows = run.metrics[after:]
        per_epoch = run.data_info["train"]
        step.images = len(rows) * per_epoch
        step.flop = step.images * flop_per_image
        step.seconds = round(sum(r.get("seconds") or 0 for r in rows), 1)

    def run(self) -> Step:
        self.journal.state, self.journal.pid, self.journal.message = "running", os.getpid(), ""
        self._save()
        try:
            final = self._run()
        except RescueStopped:
            raise
        except BaseException as exc:
            self.journal.state, self.journal.message = "failed", str(exc) or type(exc).__name__
            self._save()
            raise
        self.journal.state = "finished"
        self._save()
        return final

    def _run(self) -> Step:
        flops = {c.name: self.flop_of(c.config) for c in self.candidates}
        budget_epochs = self.meter.epochs(self.total_flop)
        self.log(f"rescue {self.name}: budget {self.budget} = {budget_epochs:.1f} epochs of "
                 f"{self.meter.train_images:,} images with your layers = {self.total_flop / 1e15:.3g} PFLOP")
        if len(self.candidates) == 1:
            return self._alone(self.candidates[0], flops)
        rung = rung_epochs(budget_epochs)
        val = round(val_fraction(self.meter.train_images), 4)
        plan = plan_epochs(self.total_flop, self._entrants(), rung, self.meter.train_images)
        self.journal.plan = {"rung": rung, "val_split": val, "epochs": plan}
        self._save()
        self.log(f"race: {len(self.candidates)} candidates, each planned for the whole budget as if it wins "
                 f"({', '.join(f'{k} {v} epochs' for k, v in plan.items())}), all to epoch {rung} on "
                 f"{100 * (1 - val):.0f}% of the training split, judged on the other {100 * val:.0f}%; the "
                 "winner trains on to the end, on all of it")
        first_promotable = next(c for c in self.candidates if c.promotable)
        steps = []
        for c in self.candidates:
            epochs = plan.get(c.name) or plan[first_promotable.name]
            step = self._race(c, epochs, rung, val, flops[c.name])
            if step.status == "diverged" and c.promotable:  # once more at a third of the rate
                retry = self._retry(c)
                if retry is not None:
                    flops[retry.name] = flops[c.name]
                    step = self._race(retry, epochs, rung, val, flops[c.name])
                    c = retry
            steps.append((c, step))
        winner, step = self._choose(steps)
        return self._final(winner, step, flops[winner.name], plan.get(winner.name) or plan[winner.name.split("-")[0]])

    def _retry(self, candidate: Candidate) -> Candidate | None:
        config = CHANGES["lr-div3"].apply(candidate.config)
        if config is None:
            return None
        lr = setting(config, "optimizer.lr")
        return Candidate(f"{candidate.name}-lr3", f"{candidate.label}; after diverging, at lr {lr:g}", config,
                         candidate.architecture, changes=candidate.changes + ["lr-div3"])

    def _choose(self, steps: list[tuple[Candidate, Step]]) -> tuple[Candidate, Step]:
        raced = [(c, s) for c, s in steps if c.promotable and s.val_acc is not None]
        if not raced:
            raise UserError(f"rescue {self.name}: every candidate diverged or failed ("
                            + "; ".join(f"{s.name}: {s.detail:.80}" for _, s in steps) + "); lower the learning "
                            "rate in the config or allow --change-architecture (batchnorm)")
        best = raced[0]
        for c, s in raced[1:]:
            if s.val_acc > best[1].val_acc + (KEEP_MARGIN if best[0].name.startswith("floor") else 0):
                best = (c, s)
        for c, s in steps:
            if s.status == "raced":
                s.kept = s is best[1]
                s.status = "won" if s.kept else "dropped"
                self._record(s)
                if not s.kept:
                    self._tag(Path(s.run), "trial", "dropped")
            elif s.status == "forecast":
                self._tag(Path(s.run), "trial", "forecast")
        floor = next((s for c, s in steps if c.name.startswith("floor") and s.val_acc is not None), None)
        lead = f" (+{best[1].val_acc - floor.val_acc:.4f} over the floor)" if floor and best[1] is not floor else ""
        self.log(f"the race: {best[0].name} wins at epoch {best[1].epoch}{lead}; it trains on")
        return best

    def _final(self, winner: Candidate, raced: Step, flop: float, epochs: int) -> Step:
        done = self._done.get("final")
        if done is not None and done.test_acc is not None:
            return done
        run_dir = Path(raced.run)
        self.log(f"final: {winner.name} continues to epoch {epochs} on all {self.meter.train_images:,} training "
                 "images (the validation images folded back in; the test set is read at its end)")
        _fold_in_validation(run_dir, winner.config.get("eval_every") or 1)
        run, _ = self._train(None, run_dir, None, self.final_listeners)
        return self._finish(Step("final", f"{winner.name} trained on to the end of its schedule ({epochs} epochs)",
                                 winner.architecture, str(run.dir), self.start), run, flop, after=raced.epoch)

    def _alone(self, candidate: Candidate, flops: dict) -> Step:
        """The doctor prescribes nothing beyond cnnlab's settings: the floor is trained at the full budget,
        exactly as `cnnlab train` would."""
        done = self._done.get("alone")
        if done is not None and done.test_acc is not None:
            return done
        flop = flops[candidate.name]
        epochs = check_epochs(int(self.total_flop / (self.meter.train_images * flop) + 1e-9), candidate.name)
        if epochs < 1:
            raise UserError(f"a budget of {self.budget} is less than one epoch of this model; give a larger one")
        self.journal.plan = {"rung": None, "val_split": None, "epochs": {candidate.name: epochs}}
        self.log(f"the doctor prescribes nothing beyond cnnlab's training settings: the floor trains for all "
                 f"{epochs} epochs")
        run_dir = self._run_dir("final")
        config = copy.deepcopy(candidate.config)
        config.update(name=run_dir.name, epochs=epochs, seed=self.seed, group=f"rescue:{self.name}")
        if self.start:
            config["parent"] = self.start
        run, _ = self._train(config, run_dir, None, self.final_listeners)
        return self._finish(Step("alone", f"{candidate.label}, {epochs} epochs (nothing else prescribed)", False,
                                 str(run.dir), self.start), run, flop)

    def _finish(self, step: Step, run: Run, flop: float, after: int = 0) -> Step:
        result = run.result
        if result.get("test_acc") is None:
            raise UserError(f"{run.dir}: the final run ended {result.get('status', 'unfinished')} without a test "
                            f"accuracy; continue with: {self.continue_command}")
        self._count(step, run, flop, after)
        step.test_acc, step.kept, step.status = result["test_acc"], True, "finished"
        step.verdict = diagnose_run(run).regime
        self._tag(run.dir, "final")
        self._record(step)
        write_text(run.dir / "rescue.json", self.path.read_text())  # the table travels with the final run
        return step

    # ------------------------------------------------------------ the table
    def table(self) -> str:
        return render_table(json.loads(self.path.read_text()))


def _checkpoint_epoch(run_dir: Path) -> int:
    """The epoch a run's checkpoint holds (0: none). metrics.csv can be ahead of it where a slow checkpoint was
    kept in memory when the process was killed (cnnlab/train/session.py CheckpointWriter)."""
    import torch
    try:
        return int(torch.load(run_dir / "checkpoint.pt", map_location="cpu", mmap=True, weights_only=False)["epoch"])
    except Exception:  # noqa: BLE001 — missing or half-written: nothing to continue from
        return 0


def _fold_in_validation(run_dir: Path, eval_every: int) -> None:
    """The winner's config without its validation split (and evaluating as often as the user asked): it trains
    on from the rung on every training image.
    The schedule reads the progress in epochs (cnnlab/train/engine.py: epoch + batch/batches), so more batches
    an epoch keep it on its course; the checkpoint is at the rung's epoch end, where no epoch is half-done."""
    from ..yamlio import load_yaml
    path = run_dir / "config.yaml"
    config = load_yaml(path).data
    if (config.get("data") or {}).get("val_split"):
        config["data"]["val_split"], config["eval_every"] = None, eval_every
        write_text(path, yaml.safe_dump(config, sort_keys=False))
        (run_dir / "data.json").unlink(missing_ok=True)  # the resumed job writes it again: its training images


def _budget_parts(text: str) -> tuple[float, str]:
    amount, unit = text.split()
    return float(amount), "pflop" if unit.lower() == "pflop" else "epochs"
