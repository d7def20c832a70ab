"""The fast CIFAR-10 recipes on this machine (issue 12): for each recipe, its FLOP budget, the machine's peak
for its network, then one full `cnnlab train --recipe NAME --seed S` per seed — wall time (everything: start-up,
data load, whitening, training, evaluation, the recipe's final TTA, files), per-epoch time and accuracy, the final
accuracy, the fraction of peak, the process's peak memory — and the mean +- std over seeds against the targets.

    python bench/fast.py --data-dir ../shared/datasets [--recipes cifar10-90,cifar10-fast] [--seeds 3]
    python bench/fast.py --quick      # one seed on a fifth of the training set: a check, not the figure
    python bench/fast.py --peak-only  # budgets and peaks, no training
    python bench/fast.py --recipes cifar10-fast --set epochs=8   # a variant: the budget and runs with the change

The peak is a bare forward+backward+SGD step of the recipe's network at the recipe's batch size, with the best
precision and layout this machine has (bf16 + channels_last where the CPU has bf16, as cnnlab picks; the
faster of the batch whole and in the pieces the recipe's `micro_batch` makes here), timed in the same process
before the runs and again after each run, each phase of the run on its own (a whitening bias that trains, then is frozen). A run's
wall time over (training images / peak), with the mean of the peaks just before and after it, is the efficiency
figure: 1.0 would be a run that does nothing but those steps; the target is <= 1.2 (median over seeds).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.device import choose_placement, micro_batch_size
from cnnlab.models import build_model
from cnnlab.app.recipes import budget
from cnnlab.train.filtering import kept_count
from cnnlab.recipes import load_recipe

# (mean accuracy, PFLOP): cifar10-90 from issue 12, the others from issue 24 (below the public records)
TARGETS = {"cifar10-fast": (0.94, 0.25), "cifar10-90": (0.90, 0.05), "cifar10-95": (0.95, 1.0),
           "cifar10-96": (0.96, 3.0)}
AIMS = {"cifar10-fast": 0.22}  # PFLOP: issue 24's aim for cifar10-fast (airbench94_muon's record: 0.29)


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in info]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{model}; {torch.get_num_threads()} threads; {' '.join(flags) or 'no AVX flags'}; {gpu}; torch {torch.__version__}"


def peak_images_per_second(spec, batch: int, steps: int, repeats: int, piece: int | None = None,
                           epoch: int = 0, size: int = 32, keep: float | None = None) -> tuple[float, str]:
    """Median img/s of a bare training step (no data, no augmentation, no evaluation), its forward and backward
    in pieces of `piece` images as the recipe's `micro_batch` makes them on this device (None: the whole batch).
    `epoch` decides what trains, as in the run: a whitening layer's bias trains in its first epochs only, and
    while it does the backward pass reaches through the first, largest activations (~25% slower here).
    `size`: the images' height and width (a `resolution` phase); `keep`: a `select` phase, where a forward
    without gradients scores the whole batch and only that share of it is trained on."""
    placement = choose_placement("auto", "auto", "auto")
    piece = piece or batch
    model = build_model(spec, (3, 32, 32), 10).to(placement.device)
    for module in model.modules():
        if hasattr(module, "train_bias"):
            module.train_bias(epoch)
    fmt = torch.channels_last if placement.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=placement.device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=placement.device)
    trained = batch if keep is None else kept_count(keep, batch)
    train_piece = min(piece, trained) if piece < batch else trained  # pieces as the engine cuts the kept images
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9, nesterov=True)

    def step():
        opt.zero_grad(set_to_none=True)
        if keep is not None:
            with torch.no_grad():
                for start in range(0, batch, piece):
                    with placement.autocast():
                        model(x[start:start + piece])
        for start in range(0, trained, train_piece):
            end = min(start + train_piece, trained)
            with placement.autocast():
                loss = F.cross_entropy(model(x[start:end]).float(), y[start:end])
            loss.backward()
        opt.step()
    return median_rate(step, batch, steps, repeats, placement), placement.describe()


def median_rate(step, batch: int, steps: int, repeats: int, placement) -> float:
    """Median images/s of `step` (one batch of `batch` images) over `repeats` timings of `steps` steps, after
    one untimed step."""
    step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if placement.device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def run_phases(cfg) -> list[tuple[tuple, int]]:
    """The run's epochs grouped by what a step does in them: (whitening bias trains, image size, share trained
    on) and how many epochs each lasts."""
    model = build_model(cfg.model, (3, 32, 32), 10)
    bias_epochs = min((m.bias_epochs for m in model.modules() if getattr(m, "bias_epochs", None) is not None),
                      default=cfg.epochs)
    phases: list[list] = []
    for epoch in range(cfg.epochs):
        size = cfg.resolution.pixels(32) if cfg.resolution and cfg.resolution.is_small(epoch, cfg.epochs) else 32
        keep = cfg.select.keep if cfg.select and cfg.select.keep < 1 and epoch >= cfg.select.after else None
        kind = (epoch < bias_epochs, size, keep)
        if phases and phases[-1][0] == kind:
            phases[-1][1] += 1
        else:
            phases.append([kind, 1])
    return [(kind, n) for kind, n in phases]


def seconds_at_peak(cfg, images: int, args) -> tuple[float, list[str]]:
    """The training images' time at the machine's peak, and lines that say how it was measured: each phase of
    the run (whitening bias training or frozen, a lower resolution, data filtering) timed on its own and
    weighted by its epochs."""
    placement = choose_placement(cfg.device, cfg.precision, cfg.channels_last)
    batch = cfg.batch_size
    piece = micro_batch_size(cfg.micro_batch, batch, placement)
    phases = run_phases(cfg)
    lines, seconds = [], 0.0
    for (bias_trains, size, keep), count in phases:
        epoch = 0 if bias_trains else cfg.epochs
        # the faster of the batch whole and in the recipe's pieces: the peak is the best this machine does
        ways = {piece: peak_images_per_second(cfg.model, batch, args.steps, args.repeats, piece, epoch, size, keep)}
        if piece < batch:
            ways[batch] = peak_images_per_second(cfg.model, batch, args.steps, args.repeats, None, epoch, size, keep)
        peak = max(rate for rate, _ in ways.values())
        how = ways[piece][1]
        what = [] if len(phases) == 1 else ["whitening bias training" if bias_trains else "whitening bias frozen"]
        what += [f"{size}x{size} images"] if size != 32 else []
        what += [f"training on the hardest {keep:.0%}"] if keep is not None else []
        rates = ", ".join(f"{'whole' if n == batch else f'in pieces of {n}'} {r:.0f}" for n, (r, _) in ways.items())
        lines.append(f"peak{' (' + ', '.join(what) + ')' if what else ''} ({how}, batch {batch}, median of "
                     f"{args.repeats}; {rates} img/s): {peak:.0f} img/s x {count} epochs")
        seconds += images * count / peak
    return seconds, lines


def release_memory() -> None:
    """Hand this process's freed heap back to the OS. The peak timings leave ~0.9 GB of it here (cnnlab keeps
    freed memory for the next step), and on a VM whose free memory goes back to the host a child that then
    starts faults its own pages in slowly: the start-up of a cifar10-90 run (imports, data, whitening,
    optimizer) took 5.5 s, then 3.5 s in a second run, with this process holding 0.9 GB; 3.7 and 2.6 s after
    malloc_trim."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def kept_run(keep: str, label: str, seed: int) -> Path:
    return Path(keep) / f"{label}-seed{seed}"


def run_seed(recipe: str, seed: int, data_dir: str, extra: list[str], keep: str | None = None,
             label: str | None = None, weights: bool = False) -> dict:
    """One `cnnlab train --recipe` in its own process, as a user runs it; wall time and peak memory around it."""
    release_memory()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "cnnlab", "train", "--recipe", recipe, "--seed", str(seed),
               "--data-dir", data_dir, "--run-dir", str(run_dir), "--no-store", "--quiet", *extra]
        log = Path(tmp) / "log"
        start = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            status = proc.wait()
        wall = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{log.read_text()}")
        result = json.loads((run_dir / "result.json").read_text())
        rows = (run_dir / "metrics.csv").read_text().splitlines()
        if keep:  # what the run wrote that a reader needs to check the figure (and with --keep-weights, the weights)
            dest = kept_run(keep, label or recipe, seed)
            dest.mkdir(parents=True, exist_ok=True)
            names = ("config.yaml", "metrics.csv", "result.json") + (("data.json", "model.safetensors") if weights else ())
            for name in names:
                shutil.copy(run_dir / name, dest / name)
    header = rows[0].split(",")
    epochs = [dict(zip(header, r.split(","))) for r in rows[1:]]
    peak_rss = result["peak_memory"]["host_bytes"]  # the run's own (its VmHWM), not this process's at the fork
    return {"seed": seed, "wall": wall, "result": result, "epochs": epochs, "peak_rss": peak_rss}


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f} (one seed)"
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f}"


def bench_recipe(name: str, args) -> None:
    b = budget(name, args.set)
    cfg = b["config"]
    images = b["images"] if not args.quick else args.quick_limit
    extra = [a for o in args.set for a in ("--set", o)] + ([] if not args.quick else ["--set", f"data.limit={images}"])
    # a variant's runs are kept apart from the recipe's, in a folder name without spaces or braces:
    # epochs=8 -> cifar10-fast-epochs8; resolution={size: 24, epochs: 7} -> cifar10-fast-resolution-size-24-epochs-7
    label = "-".join([name] + [re.sub(r"[^A-Za-z0-9]+", "-", o.replace("=", "")).strip("-") for o in args.set])
    train_images = images * b["epochs"]
    pflop = b["pflop"] * images / b["images"]  # --quick trains on fewer images than the budget's
    _, about = load_recipe(name)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    taken = [str(kept_run(args.keep, label, seed)) for seed in seeds if args.keep and kept_run(args.keep, label, seed).exists()]
    if taken:  # recorded runs are evidence: a new run (perhaps of a recipe changed since) never overwrites them
        raise SystemExit(f"--keep: {', '.join(taken)} already hold runs; keep these runs in another folder")
    print(f"\n== {name}: {about.get('description', '')}" + (f"\n   with {', '.join(args.set)}" if args.set else ""))
    print(f"network {json.dumps(cfg.model)}: {b['macs'] / 1e6:.1f} M MACs per image, "
          f"{b['flop_per_image'] / 1e9:.3f} GFLOP per training image at full size; {b['epochs']} epochs x "
          f"{images:,} images = {pflop:.4f} PFLOP" + (f" (epoch by epoch: {', '.join(f'{e * 1e3:.1f}' for e in b['epoch_pflop'])} "
          "TFLOP: lower resolution or data filtering)" if len(set(b['epoch_pflop'])) > 1 else "") + (f" (budget {TARGETS[name][1]} PFLOP)" if name in TARGETS and not args.quick else ""))
    ideal, lines = seconds_at_peak(cfg, images, args)
    peak = train_images / ideal
    for line in lines:
        print(line)
    print(f"at peak: {peak:.0f} img/s on average = {pflop * 1e6 / ideal:.0f} GFLOPS; "
          f"{train_images:,} training images at peak: {ideal:.0f} s")
    if args.peak_only:
        return
    # The machine's speed drifts (a shared host: the same step ran 20% slower an hour later), so the peak is
    # measured again after every run, and each run is held against the mean of the peaks just before and after it.
    accs, walls, ratios = [], [], []
    for seed in seeds:
        r = run_seed(name, seed, args.data_dir, extra, args.keep, label, args.keep_weights)
        after, _ = seconds_at_peak(cfg, images, args)
        at_peak = (ideal + after) / 2
        res = r["result"]
        acc = res.get("test_acc_tta", res["test_acc"])
        accs.append(acc)
        walls.append(r["wall"])
        ratios.append(r["wall"] / at_peak)
        per_epoch = "  ".join(f"{float(e['seconds']):.0f}s" + (f" {float(e['test_acc']):.4f}" if e.get("test_acc") else "")
                              for e in r["epochs"])
        print(f"seed {seed}: test {res['test_acc']:.4f}, with {res.get('tta', 'no')} TTA {acc:.4f}; wall {r['wall']:.0f} s "
              f"(training loop {res['wall_time_s']:.0f} s); peak before / after {train_images / ideal:.0f} / "
              f"{train_images / after:.0f} img/s, at peak {at_peak:.0f} s; wall / at-peak {ratios[-1]:.2f} (fraction "
              f"of peak {1 / ratios[-1]:.2f}); peak memory {r['peak_rss'] / 2**30:.2f} GB", flush=True)
        print(f"    epochs: {per_epoch}", flush=True)
        ideal = after
    wall_ratio = statistics.median(ratios)
    print(f"{name}: accuracy {mean_std(accs)} over {len(accs)} seeds; median wall {statistics.median(walls):.0f} s; "
          f"{pflop:.4f} PFLOP; wall / at-peak {wall_ratio:.2f} (median over seeds; "
          f"{min(ratios):.2f} .. {max(ratios):.2f})")
    if name in TARGETS and not args.quick:
        acc_target, flop_target = TARGETS[name]
        mean = statistics.mean(accs)
        print(f"targets: mean >= {acc_target:.2%}: {'met' if mean >= acc_target else 'NOT met'} ({mean:.2%}); "
              f"<= {flop_target} PFLOP: {'met' if pflop <= flop_target else 'NOT met'}; wall <= 1.2 x at-peak: "
              f"{'met' if wall_ratio <= 1.2 else 'NOT met'}; peak memory < 4 GB: "
              f"{'met' if r['peak_rss'] < 4 * 2**30 else 'NOT met'}")
        if name in AIMS:
            met = mean >= acc_target and pflop <= AIMS[name]
            print(f"aim: mean >= {acc_target:.2%} with <= {AIMS[name]} PFLOP: {'met' if met else 'not met'} "
                  f"({mean:.2%} with {pflop:.3f} PFLOP)")
    elif args.quick:
        print("(--quick: a fifth of the training set and one seed; the accuracy is not the recipe's figure)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--recipes", default="cifar10-90,cifar10-fast,cifar10-95,cifar10-96")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--quick", action="store_true", help="one seed on --quick-limit training images")
    parser.add_argument("--quick-limit", type=int, default=10_000)
    parser.add_argument("--keep", metavar="DIR", help="copy each run's config, metrics and result to DIR/RECIPE-seedS")
    parser.add_argument("--keep-weights", action="store_true",
                        help="with --keep, the weights too (to score them again, e.g. with another TTA; 8 MB a run)")
    parser.add_argument("--peak-only", action="store_true", help="budgets and peak only: train nothing")
    parser.add_argument("--steps", type=int, default=3, help="steps per peak timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the recipes (as cnnlab train --set does), budgets and runs alike")
    args = parser.parse_args()
    if args.keep_weights and not args.keep:
        parser.error("--keep-weights: name the folder with --keep DIR")
    if args.quick:
        args.seeds = 1
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}; command: python bench/fast.py {' '.join(sys.argv[1:])}")
    for name in args.recipes.split(","):
        bench_recipe(name.strip(), args)


if __name__ == "__main__":
    main()
