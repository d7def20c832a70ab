"""The rescue loop: measure where the model stands, search the learning rate, then let the doctor act —
prescribe, branch a run with the change, train it, read the verdict, keep or drop — and finally train the
best config on the full training set.

Every trial is an ordinary run (tagged `rescue:NAME`, its `parent` the run it branched from), trained for
the final run's epochs on a stratified share of the training split, so that one trial costs about one epoch
of the full set and sees the schedule and augmentation the final run will. Trials are judged on a seeded
validation split (10% of the training set); the test set is read once, by the final run.

The journal (rescue.json in the rescue's folder) is written after every step, atomically: killing the rescue
and starting it again with the same arguments replays the journal — the same decisions, in the same order,
with the budget counted as it stood at each step — and continues with the step under way (a trial that has a
checkpoint resumes from it).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..diagnose.facts import diagnose_run
from ..errors import UserError
from ..fsutil import write_text
from ..rundir import Run
from ..train.engine import Diverged
from ..train.session import prepare_config
from .budget import Budget, Meter, final_epochs
from .changes import CHANGES, Change, candidates, put, setting

VAL_SPLIT = 0.1
# one trial: the final run's epochs on 1/final of the training split, so the split's worth of images
TRIAL_COST = 1 - VAL_SPLIT
# A change is kept when it beats the best validation accuracy by this much. Every trial has the same seed, the
# same images in the same order and the same validation split, so two trials differ by the change and by the
# arithmetic it perturbs; 0.003 is 15 of 5,000 validation images. (A small folder's split is noisier: a
# change kept there may be luck, and the table shows by how much it won.)
KEEP_MARGIN = 0.003
# trials in the learning-rate search: Optuna's median rule prunes from the fourth on (3 startup trials)
LR_TRIALS = 4
NOT_LEARNING = ("chance", "diverged", "no-data")  # verdicts where a rate search has nothing to climb


@dataclass
class Step:
    name: str                   # lint | baseline | sgd-onecycle | lr-search | a change's name | final
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
    started: dict = field(default_factory=dict)   # the arguments it was started with

    @classmethod
    def load(cls, path: Path) -> "Journal | None":
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["budget"], data["final_epochs"], [Step(**s) for s in data["steps"]], data.get("started", {}))

    def save(self, path: Path, meter: Meter) -> None:
        write_text(path, json.dumps({"budget": self.budget, "final_epochs": self.final_epochs,
                                     "started": self.started, "train_images": meter.train_images,
                                     "flop_per_image": meter.flop_per_image,
                                     "steps": [asdict(s) for s in self.steps]}, indent=2))


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
        started = {"name": name, "budget": str(budget), "seed": seed, "allow_architecture": allow_architecture,
                   "search_lr": search_lr, "config": config}
        old = Journal.load(self.path)
        if old is not None:
            differs = [k for k in started if old.started.get(k) != started[k]]
            if differs:
                what = ", ".join(f"{k} {old.started.get(k)!r:.60}" for k in differs if k != "config")
                raise UserError(f"{self.path}: rescue {name} was started with other arguments ("
                                f"{what or 'another model or config'}); run it again with those to continue, or "
                                "choose another --name")
        self.journal = old or Journal(str(budget), self.final, started=started)
        self._done = {s.name: s for s in self.journal.steps}
        self._spent = 0.0   # images, counted step by step as the loop reaches each (replayed or new)

    # ------------------------------------------------------------ bookkeeping
    def spent_epochs(self) -> float:
        return self.meter.epochs(self._spent)

    def _room_for_trial(self) -> bool:
        return self.spent_epochs() + TRIAL_COST <= self.total_epochs - self.final + 1e-9

    def add_step(self, step: Step) -> Step:
        """A step decided outside the loop (lint's fixes), journalled once, first."""
        if step.name not in self._done:
            self._record(step)
        self._spent += self._done[step.name].images
        return self._done[step.name]

    def _record(self, step: Step) -> Step:
        self.journal.steps = [s for s in self.journal.steps if s.name != step.name] + [step]
        self._done[step.name] = step
        self.journal.save(self.path, self.meter)
        return step

    def _trial_config(self, config: dict, parent: str | None, run_name: str) -> dict:
        config = json.loads(json.dumps(config))
        config.update(name=run_name, epochs=self.final, seed=self.seed)
        # the batch the final run of this config trains with: a learning rate found in a trial means the same there
        config["batch_size"] = prepare_config(config).batch_size
        put(config, "data.val_split", VAL_SPLIT)
        if self.final > 1:
            put(config, "data.subset", round(1 / self.final, 4))
        if parent:
            config["parent"] = parent
        config["group"] = f"rescue:{self.name}"  # loggers nest the trials under one parent
        config["evaluate_test"] = False  # the test set is read once, by the final run
        return config

    def _train(self, config: dict, run_dir: Path, listeners=()) -> Run:
        """A run of `config` in `run_dir`: resumed where a killed attempt left a checkpoint, kept where it had
        finished before the journal could say so."""
        result = run_dir / "result.json"
        if result.exists() and json.loads(result.read_text()).get("status") == "finished":
            return Run(run_dir)
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

    def _run_dir(self, label: str) -> Path:
        # the rescue's name in every run's name: the store's id is the directory's name, and rescues share a store
        return self.folder / f"{self.name}-{label}"

    def _trial(self, name: str, label: str, architecture: bool, config: dict, parent: str | None) -> Step:
        if name in self._done:
            return self._done[name]
        index = len(self.journal.steps)
        run_dir = self._run_dir(f"{index:02d}-{name}")
        try:
            trial = self._trial_config(config, parent, run_dir.name)
        except UserError as exc:  # a change that makes the config invalid is dropped, with the reason
            return Step(name, label, architecture, None, parent, detail=f"not valid: {exc}")
        try:
            run = self._train(trial, run_dir)
        except Diverged as exc:  # a change that blows the training up is a result, not the end of the rescue
            run = Run(run_dir)
            return Step(name, label, architecture, str(run_dir), parent, images=len(run.metrics) * run.data_info["train"],
                        verdict="diverged", detail=str(exc))
        rows = [r for r in run.metrics if r.get("val_acc") is not None]
        verdict = diagnose_run(run)
        self._tag(run, "trial")
        return Step(name, label, architecture, str(run.dir), parent, rows[-1]["val_acc"] if rows else None,
                    images=len(run.metrics) * run.data_info["train"], verdict=verdict.regime,
                    detail=verdict.headline)

    # ------------------------------------------------------------ the loop
    def run(self) -> Step:
        """Search within the budget, then train the final model on the full training set."""
        self.log(f"rescue {self.name}: budget {self.budget} = {self.total_epochs:.1f} epochs of "
                 f"{self.meter.train_images:,} images ({self.meter.pflop(self.total_epochs * self.meter.train_images):.3g} "
                 f"PFLOP); final run {self.final} epochs, the rest for trials of {self.final} epochs on "
                 f"{100 / self.final if self.final > 1 else 100:.0f}% of the training split (about "
                 f"{TRIAL_COST:.2f} epochs each)")
        best = self._decide(self._trial("baseline", "the model and settings as given", False, self.config, None),
                            None)
        best_config = self.config
        first = CHANGES["sgd-onecycle"]
        changed = first.apply(best_config)
        if changed is not None and self._room_for_trial():
            best, best_config = self._try(first, changed, best, best_config)
        tried, searched = {"sgd-onecycle"}, not self.search_lr
        while self._room_for_trial():
            # a learning rate is worth searching once the network learns; a net stuck at chance needs the
            # doctor's other prescriptions first (a deep plain net: batchnorm), and the search after them
            if not searched and best.verdict not in NOT_LEARNING:
                best, best_config = self._search_lr(best, best_config)
                searched = True
                tried |= {"lr-x3", "lr-div3"}  # the search spanned 10x either way
                continue
            for change in candidates(best.verdict or "unknown", self.allow_architecture, tried):
                tried.add(change.name)
                config = change.apply(best_config)
                if config is not None and not self._same_run(config, best_config):
                    best, best_config = self._try(change, config, best, best_config)
                    break
            else:
                if searched:
                    break
                best, best_config = self._search_lr(best, best_config)  # nothing else left to try
                searched = True
        return self._final(best, best_config)

    def _same_run(self, a: dict, b: dict) -> bool:
        """Two configs that resolve to the same run (augment: auto in a run too short for augmentation, say):
        a trial of the change would measure nothing."""
        def resolved(config):
            return prepare_config({**config, "epochs": self.final, "name": "x"}).model_dump(exclude={"parent"})
        try:
            return resolved(a) == resolved(b)
        except UserError:
            return False  # the trial says why

    def _decide(self, step: Step, best: Step | None) -> Step:
        """Keep or drop a new step (a replayed one keeps its recorded decision), journal it, and count its cost."""
        if step.name in self._done:
            step = self._done[step.name]
        else:
            step.kept = step.val_acc is not None and (best is None or step.val_acc > (best.val_acc or 0) + KEEP_MARGIN)
            self._record(step)
            self._spent += step.images
            self.log(self._line(step, best))
            return step
        self._spent += step.images
        return step

    def _line(self, step: Step, best: Step | None) -> str:
        val = f"val {step.val_acc:.4f}" if step.val_acc is not None else f"no validation accuracy ({step.detail:.80})"
        than = f" (best {best.val_acc:.4f})" if best is not None and best.val_acc is not None else ""
        decision = "start" if best is None else "kept" if step.kept else "dropped"
        return (f"  {step.name:<16} {val}{than}  {decision}  doctor: {step.verdict}  "
                f"spent {self.spent_epochs():.1f}/{self.total_epochs:.1f} epochs")

    def _try(self, change: Change, config: dict, best: Step, best_config: dict) -> tuple[Step, dict]:
        step = self._trial(change.name, change.label, change.architecture, config, Path(best.run).name)
        step = self._decide(step, best)
        return (step, config) if step.kept else (best, best_config)

    def _search_lr(self, best: Step, best_config: dict) -> tuple[Step, dict]:
        """An Optuna study over the learning rate (TPE, median pruning after each epoch), around the best so
        far: the sweep machinery, each trial an ordinary run. Killed, it continues from its own journal."""
        name = "lr-search"
        lr = setting(best_config, "optimizer.lr")
        if name in self._done:
            step = self._decide(self._done[name], best)
        else:
            room = int((self.total_epochs - self.final - self.spent_epochs()) // TRIAL_COST)
            trials = max(1, min(LR_TRIALS, room - 1 if room > 2 else room))  # room for one change after it
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
            step = self._decide(step, best)
        if step.kept:
            return step, put(json.loads(json.dumps(best_config)), "optimizer.lr", json.loads(step.detail)["lr"])
        return best, best_config

    def _lr_study(self, base: dict, low: float, high: float, trials: int):
        import torch
        from ..sweep.runner import run_sweep
        from ..sweep.spec import Param, SweepSpec
        spec = SweepSpec(name=f"{self.name}-lr", base=base, objective="val_acc", sampler="tpe", pruner="median",
                         trials=trials, seed=self.seed,
                         space={"optimizer.lr": Param(type="float", low=low, high=high, log=True)})
        return run_sweep(spec, self.folder, self.job, url=None, workers=1,
                         store_path=Path(self.store) if self.store else None,
                         log=lambda text: self.log(f"    lr {text}"), threads=torch.get_num_threads())

    def _final(self, best: Step, best_config: dict) -> Step:
        done = self._done.get("final")
        if done is None or done.test_acc is None:
            config = json.loads(json.dumps(best_config))
            config.update(name=f"{self.name}-final", epochs=self.final, seed=self.seed, parent=Path(best.run).name,
                          evaluate_test=True)
            put(config, "data.val_split", None)
            self.log(f"final: the best config ({best.name}) for {self.final} epochs on the full training set")
            run = self._train(config, self._run_dir("final"), self.final_listeners)
            result = run.result
            if result.get("test_acc") is None:
                raise UserError(f"{run.dir}: the final run ended {result.get('status', 'unfinished')} without a "
                                "test accuracy; run the rescue again to continue it")
            self._tag(run, "final")
            done = self._record(Step("final", f"the best config ({best.name}), {self.final} epochs on the full "
                                     "training set", False, str(run.dir), Path(best.run).name, None,
                                     result["test_acc"], images=len(run.metrics) * run.data_info["train"], kept=True))
            write_text(run.dir / "rescue.json", self.path.read_text())  # the table travels with the final run
        self._spent += done.images
        return done

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
    images = sum(s.images for s in journal.steps)
    if final is not None and final.test_acc is not None:
        lines.append(f"| final | {final.label} | | test {final.test_acc:.4f} | | | | {meter.epochs(final.images):.2f} |")
    lines.append(f"\nspent {meter.epochs(images):.2f} of {meter.in_epochs(budget):.2f} epochs "
                 f"({meter.pflop(images):.3g} PFLOP; the budget: {budget})")
    return "\n".join(lines)
