"""Rescue measured on stuck models (examples/stuck/): for each model, data set, budget and seed, three runs
at the same compute —

- the start: the config as its author wrote it, `cnnlab train STUCK.yaml --epochs B`;
- cnnlab's defaults: the same layers as written with cnnlab's training settings, `cnnlab train DEFAULTS.yaml
  --epochs B` (the config without its optimizer, schedule, batch, augmentation and loss settings);
- the rescue: `cnnlab rescue STUCK.yaml --budget B` (its race and its final run together).

    python bench/rescue_stuck.py [--data-dir ../shared/datasets] [--models keras-cifar10,deep-sigmoid,...]
        [--datasets cifar10,fashion-mnist] [--budgets 15,40] [--seeds 0,1] [--limit 5000] [--jobs 2]
        [--change-architecture]

`--limit N` trains on the first N training images (0: all of them; the test set stays whole) so that the grid fits a CPU: the
budget is then B epochs of N images, for all three alike. Results go to docs/results/rescue/stuck.json (every
row as it finishes: a stopped benchmark continues) and a Markdown table is printed. Each run uses one thread;
`--jobs` runs that many at once (2 on a 2-core machine).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cnnlab.rescue.prior import floor  # noqa: E402  (the defaults arm is the rescue's own floor, as written)

OUT = ROOT / "docs" / "results" / "rescue" / "stuck.json"
MODELS = ["keras-cifar10", "pytorch-tutorial", "deep-unpadded", "lr-too-high", "deep-sigmoid", "small-overfit",
          "dense-head"]
LOCK = threading.Lock()


def machine() -> str:
    cpu = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True,
                         text=True).stdout.strip()
    flags = subprocess.run("grep -o 'avx512_bf16\\|amx_bf16' /proc/cpuinfo | sort -u | tr '\\n' ' '", shell=True,
                           capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {platform.machine()}, bf16: {flags or 'none (AVX2 only)'}"


def write_configs(model: str, data: str, args, folder: Path) -> tuple[Path, Path]:
    """(the stuck config, its defaults) for one data set, with the model file's path made absolute."""
    source = ROOT / "examples" / "stuck" / f"{model}.yaml"
    config = yaml.safe_load(source.read_text())
    if isinstance(config["model"], str):
        config["model"] = str(source.parent / config["model"])
    config["data"] = {"name": data, "dir": str(Path(args.data_dir).resolve()),
                      **({"limit": args.limit} if args.limit else {})}
    config["threads"] = 1
    config["eval_every"] = 100  # the test set once, at the end: 10,000 images an epoch would cost more than training
    folder.mkdir(parents=True, exist_ok=True)
    stuck, defaults = folder / f"{model}-{data}.yaml", folder / f"{model}-{data}-defaults.yaml"
    stuck.write_text(yaml.safe_dump(config, sort_keys=False))
    defaults.write_text(yaml.safe_dump(floor(config), sort_keys=False))
    return stuck, defaults


def cnnlab(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnlab", *argv], capture_output=True, text=True, cwd=ROOT)


def run_train(config: Path, budget: int, seed: int, run_dir: Path) -> dict:
    t0 = time.time()
    done = cnnlab("train", str(config), "--epochs", str(budget), "--seed", str(seed), "--run-dir", str(run_dir),
                  "--overwrite", "--quiet", "--no-store")
    result = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").exists() else {}
    data = json.loads((run_dir / "data.json").read_text()) if (run_dir / "data.json").exists() else {}
    metrics = (run_dir / "metrics.csv").read_text().splitlines()[1:] if (run_dir / "metrics.csv").exists() else []
    macs = result.get("macs") or _macs(config)
    images = len(metrics) * data.get("train", 0)
    if done.returncode != 0 and "diverged" not in done.stderr + done.stdout and "became nan" not in done.stderr:
        raise SystemExit(f"cnnlab train {config} failed:\n{done.stderr[-2000:]}")
    return {"test_acc": result.get("test_acc", 0.1 if done.returncode else None),
            "status": "diverged" if done.returncode else result.get("status"),
            "pflop": 6 * macs * images / 1e15, "seconds": round(time.time() - t0)}


def _macs(config: Path) -> int:
    """MACs per image of a config's model, for a run that diverged before writing its result."""
    import torch
    from cnnlab.app.datasets import config_input
    from cnnlab.models import build_model
    from cnnlab.models.summary import summarize
    from cnnlab.train.session import prepare_config
    cfg = prepare_config(str(config))
    shape, classes = config_input(cfg)
    with torch.device("meta"):
        return summarize(build_model(cfg.model, shape, classes)).macs


def run_rescue(config: Path, budget: int, seed: int, name: str, runs_root: Path, flags: list[str]) -> dict:
    t0 = time.time()
    done = cnnlab("rescue", str(config), "--budget", str(budget), "--seed", str(seed), "--name", name,
                  "--runs-root", str(runs_root), *flags)
    if done.returncode != 0:
        raise SystemExit(f"cnnlab rescue {config} failed:\n{done.stderr[-2000:]}")
    folder = runs_root / "rescues" / name
    journal = json.loads((folder / "rescue.json").read_text())
    final = next(s for s in journal["steps"] if s["name"] in ("final", "alone"))
    won = next((s for s in journal["steps"] if s["status"] == "won"), final)
    return {"test_acc": final["test_acc"], "pflop": sum(s["flop"] for s in journal["steps"]) / 1e15,
            "budget_pflop": budget * journal["train_images"] * journal["flop_per_image"] / 1e15,
            "winner": won["name"], "seconds": round(time.time() - t0), "table": (folder / "rescue.md").read_text()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--datasets", default="cifar10,fashion-mnist")
    ap.add_argument("--budgets", default="15,40")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--limit", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--arms", default="start,defaults,rescue", help="which of the three to run (a second seed may "
                    "leave the start out: it is the reference, not the comparison)")
    ap.add_argument("--change-architecture", action="store_true")
    ap.add_argument("--runs-root", default=str(ROOT / "runs-rescue-bench"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--table-only", action="store_true", help="print the table of what is recorded and stop")
    args = ap.parse_args()
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {"rows": {}}
    record["machine"], record["limit"] = machine(), args.limit
    runs_root = Path(args.runs_root)
    mode = "arch" if args.change_architecture else "kept"
    flags = ["--change-architecture"] if args.change_architecture else []
    if args.table_only:  # nothing written: not even the configs
        print(table(record, mode))
        return
    tasks = []
    for budget in map(int, args.budgets.split(",")):
        for data in args.datasets.split(","):
            for model in args.models.split(","):
                stuck, defaults = write_configs(model, data, args, runs_root / "configs")
                for seed in map(int, args.seeds.split(",")):
                    key = f"{model}|{data}|{budget}|{seed}"
                    tag = f"{model}-{data}-b{budget}-s{seed}"
                    tasks += [(key, "start", lambda s=stuck, b=budget, e=seed, t=tag: run_train(s, b, e, runs_root / f"{t}-start")),
                              (key, "defaults", lambda d=defaults, b=budget, e=seed, t=tag: run_train(d, b, e, runs_root / f"{t}-defaults")),
                              (key, f"rescue-{mode}", lambda s=stuck, b=budget, e=seed, t=tag: run_rescue(s, b, e, f"{t}-{mode}", runs_root, flags))]
    arms = {"start", "defaults", f"rescue-{mode}"} & {a if a != "rescue" else f"rescue-{mode}" for a in args.arms.split(",")}
    tasks = [t for t in tasks if t[1] in arms]
    todo = [t for t in tasks if t[1] not in record["rows"].get(t[0], {})]
    print(f"{machine()}; {len(todo)} of {len(tasks)} runs to do, {args.jobs} at a time", flush=True)

    def do(task):
        key, arm, fn = task
        result = fn()
        with LOCK:
            record["rows"].setdefault(key, {})[arm] = result
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=1))
            print(f"{key} {arm}: test {result['test_acc']}  {result['pflop']:.3g} PFLOP  {result['seconds']} s",
                  flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(do, todo))
    print(table(record, mode))


def table(record: dict, mode: str) -> str:
    groups: dict = {}
    for key, arms in record["rows"].items():
        model, data, budget, seed = key.split("|")
        groups.setdefault((model, data, int(budget)), []).append(arms)
    lines = ["| stuck model | data | budget (epochs) | start | cnnlab's defaults | rescue | rescue - defaults | "
             "compute, PFLOP (start / defaults / rescue) | the race's winner |", "|" + "---|" * 9]
    gains = []
    for (model, data, budget), seeds in sorted(groups.items(), key=lambda g: (g[0][2], g[0][1], g[0][0])):
        arm = f"rescue-{mode}"
        done = [s for s in seeds if {"defaults", arm} <= set(s)]  # the comparison: the same seeds on both sides
        if not done:
            continue

        def cell(name):
            values = [s[name]["test_acc"] for s in seeds if name in s and (name == "start" or s in done)]
            if not values:  # the start is a reference, not always run (`--arms defaults,rescue`)
                return None
            return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), values
        start, defaults, rescued = cell("start"), cell("defaults"), cell(arm)
        gain = rescued[0] - defaults[0]
        gains.append((budget, gain))
        fmt = lambda c: "not run" if c is None else f"{c[0]:.4f} ± {c[1]:.4f} ({len(c[2])})" if len(c[2]) > 1 \
            else f"{c[0]:.4f} (1)"  # noqa: E731
        pflop = "/".join(f"{statistics.mean(s[n]['pflop'] for s in seeds if n in s):.3g}"
                         if any(n in s for s in seeds) else "-" for n in ("start", "defaults", arm))
        winners = ", ".join(s[arm]["winner"] for s in done)
        lines.append(f"| {model} | {data} | {budget} | {fmt(start)} | {fmt(defaults)} | {fmt(rescued)} | "
                     f"{100 * gain:+.1f} | {pflop} | {winners} |")
    for budget in sorted({b for b, _ in gains}):
        at = [g for b, g in gains if b == budget]
        lines.append(f"\nbudget {budget}: rescue - defaults over {len(at)} rows: mean {100 * statistics.mean(at):+.2f} "
                     f"points, worst {100 * min(at):+.2f}")
    if gains:
        lines.append(f"\n(n): seeds; machine: {record['machine']}; training images: {record['limit'] or 'all'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
