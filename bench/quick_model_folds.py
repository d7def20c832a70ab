"""The data doctor's quick model on the planted benchmark's training labels, without the files (issue 34): the
same 5,000 CIFAR-10 images and 100 flipped labels as bench/data_doctor_planted.py at the same seed (not its 45
planted copies), so a variant of the quick model is tried one fold at a time. Prints each fold's agreement with
the given and the true labels and its seconds; with all five folds, the share of flipped labels among the top
100 by each ranking. `--set` overrides the quick model's config (a JSON object of cnnlab config keys).

    python bench/quick_model_folds.py --data-dir ../shared/datasets --set '{"batch_size": 64}' --folds-run 0
    python bench/quick_model_folds.py --data-dir ../shared/datasets --save probs.npz     # all five folds
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def planted_labels(data_dir: Path, seed: int, n_train: int = 5000, n_test: int = 1000):
    """The images, given labels, true labels and flipped indices of data_doctor_planted.write_planted."""
    from cnnlab.data.readers import read_cifar10
    (tx, ty), _, _ = read_cifar10(data_dir / "cifar-10-batches-py")
    rng = np.random.default_rng(seed)  # the same draws, in the same order, as write_planted
    train_idx = rng.choice(len(tx), n_train, replace=False)
    rng.choice(10_000, n_test, replace=False)
    labels = ty[train_idx].copy()
    n_flip = round(0.02 * n_train)
    flipped = rng.permutation(n_train)[:n_flip]
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, n_flip)) % 10
    return tx[train_idx], labels, ty[train_idx], flipped


def merged(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged(base[key], value)
        else:
            base[key] = value
    return base


def rankings(probs: np.ndarray, labels: np.ndarray, flipped: np.ndarray) -> dict:
    """Share of the flipped labels among the top len(flipped) of each ranking."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from cnnlab.diagnose.data_doctor import label_suspects
    k, truth = len(flipped), set(flipped.tolist())
    out = {"doctor (calibrated count, self-confidence)": label_suspects(labels, probs)}
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        out[f"quality score {method}"] = np.argsort(get_label_quality_scores(labels, probs, method=method))
    out["find_label_issues prune_by_noise_rate"] = find_label_issues(labels, probs,
                                                                     return_indices_ranked_by="self_confidence")
    return {name: len(set(r[:k].tolist()) & truth) / k for name, r in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", default="{}", help="config changes, JSON")
    parser.add_argument("--folds-run", default="0,1,2,3,4", help="which of the 5 folds to train")
    parser.add_argument("--save", help="the out-of-fold probabilities, labels and truth (.npz)")
    args = parser.parse_args()
    import torch
    from cnnlab.diagnose import quick_model as qm
    from cnnlab.train.session import prepare_config
    x, labels, truth, flipped = planted_labels(Path(args.data_dir), args.seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(0)  # the doctor's folds: stratified, seed 0
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold_of[members] = np.arange(len(members)) % 5
    base = qm.quick_config(int((fold_of != 0).sum())).model_dump(mode="json")
    cfg = prepare_config(merged({"recipe": "cifar10-90", "model": {"name": "airbench", "widths": qm.WIDTHS},
                                 "data": {"name": "cifar10"}, "epochs": base["epochs"], "eval_every": base["epochs"],
                                 "batch_size": base["batch_size"], "seed": 0, "resolution": None},
                                json.loads(args.set)))
    print(f"epochs {cfg.epochs}, batch {cfg.batch_size}, model {cfg.model}", flush=True)
    images, given = qm.shrink(torch.from_numpy(np.ascontiguousarray(x))), torch.from_numpy(labels.astype(np.int64))
    probs = np.zeros((len(labels), 10), dtype=np.float32)
    folds = [int(k) for k in args.folds_run.split(",")]
    for k in folds:
        held, kept = np.flatnonzero(fold_of == k), np.flatnonzero(fold_of != k)
        start = time.perf_counter()
        probs[held], agree = qm.fold_probs(images, given, kept, held, 10, cfg.model_copy(update={"seed": k}))
        right = float((probs[held].argmax(1) == truth[held]).mean())
        print(f"fold {k}: {agree:.1%} agree with the given labels, {right:.1%} with the true ones, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    if args.save:
        np.savez(args.save, probs=probs, labels=labels, flipped=flipped, fold_of=fold_of, truth=truth)
    if len(folds) == 5:
        print(f"out of fold: {np.mean(probs.argmax(1) == labels):.1%} agree; flipped labels among the top "
              f"{len(flipped)}:", json.dumps(rankings(probs, labels, flipped), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
