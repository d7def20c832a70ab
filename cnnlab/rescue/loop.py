"""The rescue loop: measure where the model stands, search the learning rate, then let the doctor act —
prescribe, branch a run with the change, train it, read the verdict, keep or drop — and finally train the
best config on the full training set.

Every trial is an ordinary run (tagged `rescue:NAME`, its `parent` the run it branched from), trained for
the final run's epochs on a stratified share of the training split, so that one trial costs about one epoch
of the full set and sees the schedule and augmentation the final run will. Trials are judged on a seeded
validation split (10% of the training set); the test set is read once, by the final run.

The journal (rescue.json in the rescue's folder) is written after every step, atomically: killing the rescue
and starting it again with the same arguments replays the journal and continues with the step under way
(a trial that has a checkpoint resumes from it).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..diagnose.facts import diagnose_run
from ..errors import UserError
from ..fsutil import write_text
from ..rundir import Run
from .budget import Budget, Meter, final_epochs
from .changes import CHANGES, Change, candidates, get, put

VAL_SPLIT = 0.1
# a change is kept when it beats the best validation accuracy by this much: 5,000 validation images give a
# standard error of about 0.006 at 70%, and a real gain usually shows well above it
KEEP_MARGIN = 0.003
LR_TRIALS = 4


@dataclass
class Step:
    name: str                   # baseline | sgd-onecycle | lr-search | a change's name | final
    label: str
    architecture: bool
    run: str | None             # the run directory
    parent: str | None          # the run it branched from
    val_acc: float | None = None
    test_acc: float | None = None
    images: float = 0.0         # training images processed (the cost)
    kept: bool | None = None
    verdict: str | None = None
    detail: str = ""


@dataclass
class Journal:
    budget: str
    final_epochs: int
    steps: list[Step] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "Journal | None":
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["budget"], data["final_epochs"], [Step(**s) for s in data["steps"]])

    def save(self, path: Path, extra: dict) -> None:
        write_text(path, json.dumps({"budget": self.budget, "final_epochs": self.final_epochs,
                                     "steps": [asdict(s) for s in self.steps], **extra}, indent=2))


class Rescue:
    """`job`: the Job class (cnnlab.app.job.Job), handed down by the application layer as sweeps get it."""

    def __init__(self, config: dict, budget: Budget, folder: Path, meter: Meter, job, *, name: str,
                 allow_architecture: bool = False, seed: int = 0, store=None, search_lr: bool = True,
                 log=print, final_listeners=()):
        self.config, self.budget, self.folder, self.meter, self.job = config, budget, folder, meter, job
        self.name, self.allow_architecture, self.seed, self.store = name, allow_architecture, seed, store
        self.search_lr, self.log, self.final_listeners = search_lr, log, list(final_listeners)
        self.total_epochs = meter.in_epochs(budget)
        self.final = final_epochs(self.total_epochs)
        self.path = folder / "rescue.json"
        old = Journal.load(self.path)
        if old is not None:
            started = json.loads(self.path.read_text())
            same = (old.budget == str(budget) and old.final_epochs == self.final and started.get("seed") == seed
                    and started.get("allow_architecture") == allow_architecture and started.get("config") == config)
            if not same:
                raise UserError(f"{self.path}: rescue {name} was started with other arguments (budget {old.budget}, "
                                f"seed {started.get('seed')}); run it again with those to continue, or choose "
                                "another --name")
        self.journal = old or Journal(str(budget), self.final)
        self._done = {s.name: s for s in self.journal.steps}
        self.prepare_batch: Callable[[dict], int] = lambda config: config.get("batch_size") or 128

    # ------------------------------------------------------------ bookkeeping
    def spent_epochs(self) -> float:
        return self.meter.epochs(sum(s.images for s in self.journal.steps))

    def _trial_epochs_cost(self) -> float:
        """A trial: the final run's epochs on 1/final of the training split, so about one split's worth."""
        return 1 - VAL_SPLIT

    def _room_for_trial(self) -> bool:
        return self.spent_epochs() + self._trial_epochs_cost() <= self.total_epochs - self.final + 1e-9

    def _record(self, step: Step) -> Step:
        self.journal.steps = [s for s in self.journal.steps if s.name != step.name] + [step]
        self._done[step.name] = step
        self.journal.save(self.path, {"name": self.name, "config": self.config,
                                      "allow_architecture": self.allow_architecture, "seed": self.seed,
                                      "train_images": self.meter.train_images,
                                      "flop_per_image": self.meter.flop_per_image})
        return step

    def _trial_config(self, config: dict, parent: str | None, run_name: str) -> dict:
        config = json.loads(json.dumps(config))
        config["name"] = run_name
        config["epochs"] = self.final
        config["seed"] = self.seed
        # the batch the final run of this config trains with: a learning rate found in a trial means the same there
        config["batch_size"] = self.prepare_batch({**config, "epochs": self.final})
        put(config, "data.val_split", VAL_SPLIT)
        if self.final > 1:
            put(config, "data.subset", round(1 / self.final, 4))
        if parent:
            config["parent"] = parent
        return config

    def _train(self, config: dict, run_dir: Path, listeners=()) -> Run:
        """A run of `config` in `run_dir`: resumed where a killed attempt left a checkpoint."""
        if (run_dir / "checkpoint.pt").exists() and (run_dir / "config.yaml").exists():
            return self.job.resume(run_dir, listeners=list(listeners), store=self._store_arg()).run()
        return self.job(config, run_dir=run_dir, overwrite=True, listeners=list(listeners),
                        store=self._store_arg()).run()

    def _store_arg(self):
        return str(self.store) if self.store else False

    def _tag(self, run: Run, *tags: str) -> None:
        if self.store:
            from ..track.store import Store
            store = Store(self.store)
            had = next((r["tags"] for r in store.runs() if r["id"] == run.dir.name), [])  # a sweep's tags stay
            store.set_tags(run.dir.name, [*had, f"rescue:{self.name}", *tags])

    def _trial(self, name: str, label: str, architecture: bool, config: dict, parent: str | None) -> Step:
        if name in self._done:
            return self._done[name]
        index = len(self.journal.steps)
        run_dir = self.folder / f"{index:02d}-{name}"
        run = self._train(self._trial_config(config, parent, f"{self.name}-{index:02d}-{name}"), run_dir)
        rows = [r for r in run.metrics if r.get("val_acc") is not None]
        verdict = diagnose_run(run)
        step = Step(name, label, architecture, str(run.dir), parent, rows[-1]["val_acc"] if rows else None,
                    images=len(run.metrics) * run.data_info["train"], verdict=verdict.regime,
                    detail=verdict.headline)
        self._tag(run, "trial")
        return step

    # ------------------------------------------------------------ the loop
    def run(self, prepare_batch: Callable[[dict], int]) -> Step:
        """Search within the budget, then train the final model. `prepare_batch(config)`: the batch size a
        config resolves to in the final run (its trials use it too)."""
        self.prepare_batch = prepare_batch
        self.log(f"rescue {self.name}: budget {self.budget} = {self.total_epochs:.1f} epochs of "
                 f"{self.meter.train_images:,} images ({self.meter.pflop(self.total_epochs * self.meter.train_images):.3g} "
                 f"PFLOP); final run {self.final} epochs, the rest for trials of {self.final} epochs on "
                 f"{100 / self.final if self.final > 1 else 100:.0f}% of the training split (about "
                 f"{self._trial_epochs_cost():.2f} epochs each)")
        best = self._decide(self._trial("baseline", "the model and settings as given", False, self.config, None),
                            None, self.config)
        best_config = self.config
        first = CHANGES["sgd-onecycle"]
        changed = first.apply(best_config)
        if changed is not None and self._room_for_trial():
            best, best_config = self._try(first, changed, best, best_config)
        if self.search_lr and self._room_for_trial():
            best, best_config = self._search_lr(best, best_config)
        tried = {"sgd-onecycle"}
        while self._room_for_trial():
            regime = best.verdict or "unknown"
            for change in candidates(regime, self.allow_architecture, tried):
                tried.add(change.name)
                config = change.apply(best_config)
                if config is not None:
                    best, best_config = self._try(change, config, best, best_config)
                    break
            else:
                break
        return self._final(best, best_config)

    def _decide(self, step: Step, best: Step | None, config: dict) -> Step:
        """Keep or drop a new step (a replayed one keeps its recorded decision), and journal it."""
        if step.name in self._done:
            return self._done[step.name]
        step.kept = step.val_acc is not None and (best is None or step.val_acc > (best.val_acc or 0) + KEEP_MARGIN)
        self._record(step)
        self.log(self._line(step, best))
        return step

    def _line(self, step: Step, best: Step | None) -> str:
        val = f"val {step.val_acc:.4f}" if step.val_acc is not None else "no validation accuracy"
        than = f" (best {best.val_acc:.4f})" if best is not None and best.val_acc is not None else ""
        verdict = "kept" if step.kept else "dropped"
        return (f"  {step.name:<16} {val}{than}  {verdict if best is not None else 'start'}  doctor: {step.verdict}  "
                f"spent {self.spent_epochs():.1f}/{self.total_epochs:.1f} epochs")

    def _try(self, change: Change, config: dict, best: Step, best_config: dict) -> tuple[Step, dict]:
        step = self._trial(change.name, change.label, change.architecture, config, Path(best.run).name)
        step = self._decide(step, best, config)
        if step.kept:
            return step, config
        return best, best_config

    def _search_lr(self, best: Step, best_config: dict) -> tuple[Step, dict]:
        """An Optuna study over the learning rate (TPE, median pruning after each epoch), around the best so
        far: the sweep machinery, each trial an ordinary run. Killed, it continues from its journal."""
        name = "lr-search"
        lr = get(best_config, "optimizer.lr") or 0.05
        if name in self._done:
            step = self._done[name]
        else:
            room = int((self.total_epochs - self.final - self.spent_epochs()) // self._trial_epochs_cost())
            trials = max(1, min(LR_TRIALS, room - 1 if room > 2 else room))
            base = self._trial_config(best_config, Path(best.run).name, f"{self.name}-lr")
            study = self._lr_study(base, lr / 10, lr * 10, trials)
            runs = [Run(t.user_attrs["run"]) for t in study.trials if "run" in t.user_attrs
                    and (Path(t.user_attrs["run"]) / "data.json").exists()]
            images = sum(len(r.metrics) * r.data_info["train"] for r in runs)
            done = [t for t in study.trials if t.value is not None]
            if not done:
                step = Step(name, "learning rate search: no trial finished", False, None, best.run, images=images)
            else:
                top = max(done, key=lambda t: t.value)
                found = float(f"{top.params['optimizer.lr']:.3g}")
                run = Run(top.user_attrs["run"])
                pruned = sum(1 for t in study.trials if t.state.name == "PRUNED")
                counted = sum(1 for t in study.trials if t.state.name in ("COMPLETE", "PRUNED"))
                step = Step(name, f"learning rate {lr:g} -> {found:g} (Optuna TPE over {lr / 10:.3g}-{lr * 10:.3g}, "
                            f"{counted} trials, {pruned} pruned by the median rule)", False, str(run.dir),
                            Path(best.run).name, top.value, images=images, verdict=diagnose_run(run).regime,
                            detail=json.dumps({"lr": found}))
                for r in runs:
                    self._tag(r, "trial")
            step = self._decide(step, best, best_config)
        if step.kept:
            return step, put(json.loads(json.dumps(best_config)), "optimizer.lr", json.loads(step.detail)["lr"])
        return best, best_config

    def _lr_study(self, base: dict, low: float, high: float, trials: int):
        from ..sweep.runner import run_sweep
        from ..sweep.spec import Param, SweepSpec
        spec = SweepSpec(name=f"{self.name}-lr", base=base, objective="val_acc", sampler="tpe", pruner="median",
                         trials=trials, seed=self.seed,
                         space={"optimizer.lr": Param(type="float", low=low, high=high, log=True)})
        import torch
        return run_sweep(spec, self.folder, self.job, None, 1, Path(self.store) if self.store else None,
                         log=lambda text: self.log(f"    lr {text}"), threads=torch.get_num_threads())

    def _final(self, best: Step, best_config: dict) -> Step:
        if "final" in self._done and self._done["final"].test_acc is not None:
            return self._done["final"]
        config = json.loads(json.dumps(best_config))
        config.update(name=f"{self.name}-final", epochs=self.final, seed=self.seed, parent=Path(best.run).name)
        put(config, "data.val_split", None)
        config.get("data", {}).pop("subset", None)
        self.log(f"final: the best config ({best.name}) for {self.final} epochs on the full training set")
        run = self._train(config, self.folder / "final", self.final_listeners)
        self._tag(run, "final")
        result = run.result
        step = Step("final", f"the best config ({best.name}), {self.final} epochs on the full training set", False,
                    str(run.dir), Path(best.run).name, None, result.get("test_acc"),
                    images=len(run.metrics) * run.data_info["train"], kept=True)
        self._record(step)
        write_text(run.dir / "rescue.json", self.path.read_text())  # the table travels with the final run
        return step

    # ------------------------------------------------------------ the table
    def table(self) -> str:
        return render_table(self.journal, self.meter, self.budget)


def render_table(journal: Journal, meter: Meter, budget: Budget) -> str:
    lines = ["| step | change | architecture | val acc | vs best before | doctor | kept | cost (epochs) |",
             "|---|---|---|---|---|---|---|---|"]
    best = None
    for s in journal.steps:
        if s.name == "final":
            continue
        delta = "" if best is None or s.val_acc is None else f"{s.val_acc - best:+.4f}"
        val = "" if s.val_acc is None else f"{s.val_acc:.4f}"
        lines.append(f"| {s.name} | {s.label} | {'yes' if s.architecture else 'no'} | {val} | {delta} | "
                     f"{s.verdict or ''} | {'yes' if s.kept else 'no'} | {meter.epochs(s.images):.2f} |")
        if s.kept and s.val_acc is not None:
            best = s.val_acc
    final = next((s for s in journal.steps if s.name == "final"), None)
    spent = meter.epochs(sum(s.images for s in journal.steps))
    if final is not None:
        lines.append(f"| final | {final.label} | | test {final.test_acc:.4f} | | | | {meter.epochs(final.images):.2f} |")
    lines.append(f"\nspent {spent:.2f} of {meter.in_epochs(budget):.2f} epochs "
                 f"({meter.pflop(sum(s.images for s in journal.steps)):.3g} PFLOP of the budget {budget})")
    return "\n".join(lines)
