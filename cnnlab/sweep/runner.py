"""Running a sweep with Optuna: each trial is an ordinary cnnlab run (run directory, store row tagged
`sweep:NAME` and `trial:N`, the doctor's verdict), its per-epoch validation metric reported to Optuna so
bad trials are pruned early, the study kept in Optuna's journal file (or an RDB such as PostgreSQL for
workers on several machines).

Exactly `trials` trials end complete or pruned, however many workers share the study. A worker killed
mid-trial leaves that trial RUNNING; the next worker to start (on the same machine for a journal file, or
anywhere for an RDB with heartbeats) marks it failed and asks for its parameters again, so a killed sweep
resumes with no trial lost and none run twice.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import socket
import sys
import warnings
from pathlib import Path

from ..errors import UserError
from ..process import alive
from ..schema.config import TrainConfig
from ..train.engine import Diverged
from .spec import SweepSpec, apply_params, base_config

COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


def sweep_dir(runs_root: Path, name: str) -> Path:
    return Path(runs_root) / "sweeps" / name


def storage_for(spec: SweepSpec, runs_root: Path, url: str | None):
    import optuna
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    if url:
        if url.startswith(("postgresql", "mysql", "sqlite")):
            # a worker that stops beating for 20 s is dead: its trial fails and is asked again
            return optuna.storages.RDBStorage(
                _driver(url), heartbeat_interval=5, grace_period=20,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
        raise UserError(f"--storage {url}: expected an RDB URL (postgresql://..., sqlite:///...); the default is "
                        "a journal file in the sweep directory")
    from optuna.storages.journal import JournalFileBackend
    folder = sweep_dir(runs_root, spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))


def _driver(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; use psycopg2 (cnnlab[sweep]) when only it is here."""
    if url.startswith("postgresql://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _sampler(spec: SweepSpec, offset: int = 0):
    """`offset` moves the seed on for each worker and for a resumed sweep, so none replays another's draws."""
    import optuna
    seed = (spec.seed + offset) % 2 ** 32
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        grid = {}
        for key, p in spec.space.items():
            if p.type == "categorical":
                grid[key] = p.choices
            elif p.step:
                count = int(round((p.high - p.low) / p.step)) + 1
                grid[key] = [(int if p.type == "int" else float)(p.low + i * p.step) for i in range(count)]
            else:
                raise UserError(f"sweep {spec.name}: grid search needs `step` (or choices) for '{key}'")
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: SweepSpec):
    import optuna
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def open_study(spec: SweepSpec, runs_root: Path, url: str | None):
    import time
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(10):
        try:
            return optuna.create_study(study_name=spec.name, storage=storage_for(spec, runs_root, url),
                                       load_if_exists=True, direction=spec.direction, sampler=_sampler(spec),
                                       pruner=_pruner(spec))
        except Exception as exc:  # noqa: BLE001 — workers on several machines racing to create the tables
            if not url or attempt == 9 or "sqlalchemy" not in type(exc).__module__:
                raise
            time.sleep(0.3 + 0.2 * attempt)


def suggest(trial, spec: SweepSpec) -> dict:
    params = {}
    for key, p in spec.space.items():
        if p.type == "categorical":
            params[key] = trial.suggest_categorical(key, p.choices)
        elif p.type == "int":
            params[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            params[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
    return params


def _recover_stale(study) -> None:
    """Trials left RUNNING by a killed worker on this machine: mark them failed and ask for them again."""
    import optuna
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or alive(attrs.get("pid")):
            continue
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)


def _taken(study, number: int) -> int:
    """How many trials numbered below `number` are complete, pruned, diverged or still under way (a diverged
    trial is a result, counted; a crashed one is tried again)."""
    import optuna
    states = tuple(getattr(optuna.trial.TrialState, s) for s in COUNTED)
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number < number
               and (t.state in states or t.user_attrs.get("diverged")))


def run_trial(study, trial, spec: SweepSpec, base: TrainConfig, runs_root: Path, store, threads: int | None,
              job, log=print) -> None:
    """One trial as an ordinary run of `job` (the Job class: cnnlab.app.job.Job); its validation curve goes to
    Optuna epoch by epoch."""
    import optuna
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    params = suggest(trial, spec)
    cfg = apply_params(base, params)
    cfg["name"] = f"{spec.name}-t{trial.number}"
    cfg["group"] = f"sweep:{spec.name}"  # loggers nest the trials under one parent
    if threads:
        cfg["threads"] = threads
    run_dir = Path(runs_root) / cfg["name"]
    trial.set_user_attr("run", str(run_dir))
    pruned = []

    def report(event) -> None:
        if event.type != "epoch_end":
            return
        row = event.data["row"]
        value = row.get(spec.objective)
        if value is None:
            return
        trial.report(value, row["epoch"])
        if trial.should_prune():
            pruned.append(row["epoch"])
            job.stop()

    try:
        job = job(cfg, run_dir=run_dir, overwrite=True, store=store.path if store else False, listeners=[report])
        run = job.run()
    except Diverged as exc:  # a rate too high is a result of the search, not its end: failed, and the next trial
        trial.set_user_attr("diverged", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if store is not None:
            store.set_tags(run_dir.name, [f"sweep:{spec.name}", f"trial:{trial.number}", "diverged"])
        log(f"trial {trial.number} ({params}) diverged: {str(exc).split('. ')[0]}; counted as failed")
        return
    except UserError as exc:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise UserError(f"sweep {spec.name}, trial {trial.number} ({params}): {exc}") from None
    except Exception:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    tags = [f"sweep:{spec.name}", f"trial:{trial.number}"] + (["pruned"] if pruned else [])
    if store is not None:
        store.set_tags(run.dir.name, tags)
    rows = [r for r in run.metrics if r.get(spec.objective) is not None]
    if pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif not rows or run.result.get("status") != "finished":
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, rows[-1][spec.objective])


def work(spec: SweepSpec, runs_root: Path, url: str | None, store_path: Path | None, threads: int | None,
         job, log=print, worker: int = 0) -> int:
    """One worker: take trials from the shared study until `spec.trials` are done or under way."""
    import optuna
    from ..track.store import Store
    if threads:
        import torch
        torch.set_num_threads(threads)
    study = open_study(spec, runs_root, url)
    _recover_stale(study)
    # a worker on another machine (RDB storage) has no index here: its process id tells it apart
    study.sampler = _sampler(spec, 7919 * (worker or (os.getpid() if url else 0)) + len(study.trials))
    base = base_config(spec)
    store = Store(store_path) if store_path else None
    done = 0
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = study.ask()
        if _taken(study, trial.number) >= spec.trials:
            trial.set_user_attr("surplus", True)  # another worker took the last one meanwhile
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return done
        run_trial(study, trial, spec, base, runs_root, store, threads, job, log)
        finished = study.get_trials(deepcopy=False)[trial.number]
        state = finished.state.name.lower()
        value = f"{spec.objective} {finished.value:.4f}" if finished.value is not None else ""
        if state == "pruned":
            value = f"pruned after epoch {max(finished.intermediate_values)} ({value})"
        log(f"trial {trial.number}: {value or state}  {finished.params}")
        done += 1


def _work_in_process(args) -> None:
    spec, runs_root, url, store_path, threads, job, worker = args
    try:
        work(spec, runs_root, url, store_path, threads, job, log=lambda text: print(text, flush=True), worker=worker)
    except UserError as exc:
        print(f"cnnlab: error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_sweep(spec: SweepSpec, runs_root: Path, job, url: str | None = None, workers: int = 1,
              store_path: Path | None = None, log=print, threads: int | None = None) -> object:
    """Run the sweep with `workers` local processes sharing the study, each trial a run of `job` (the Job
    class, handed down by the application layer: a trial is an ordinary run); returns the study. `threads`:
    torch threads per worker (default: the cores shared out)."""
    cores = os.cpu_count() or 1
    if workers > cores:
        log(f"warning: {workers} workers on {cores} cores: they compete for the cores, and the sweep takes longer "
            f"in total than with {cores}")
    threads = threads or max(1, cores // workers)
    base = base_config(spec)
    first = {k: (p.choices[0] if p.type == "categorical" else (int(p.low) if p.type == "int" else p.low))
             for k, p in spec.space.items()}
    from ..train.session import prepare_config
    prepare_config(apply_params(base, first))  # a space key that names nothing fails now, not in trial 0
    open_study(spec, runs_root, url)  # create it once, before the workers race to
    if workers == 1:
        work(spec, runs_root, url, store_path, threads if cores > 1 else None, job, log)
    else:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_work_in_process, args=((spec, runs_root, url, store_path, threads, job, i + 1),))
                 for i in range(workers)]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            raise
        if any(p.exitcode not in (0, None) for p in procs):
            raise UserError(f"sweep {spec.name}: a worker failed (exit codes {[p.exitcode for p in procs]})")
    return open_study(spec, runs_root, url)
