"""The data doctor on planted problems (issue 34): a CIFAR-10 subset written as an image folder, with
2% of the training labels flipped, 1% of the test images copied into training, and near-duplicates made by
resizing and re-encoding as JPEG, both within training and from test into training. Measures the precision and
recall of the duplicates and leaks found, and the share of the flipped labels among the top suspects (as many
suspects as flipped labels).

    python bench/data_doctor_planted.py --data-dir ../shared/datasets [--train 5000 --test 1000] [--no-labels]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_planted(root: Path, data_dir: Path, n_train: int, n_test: int, seed: int) -> dict:
    """The folder, and the truth: flipped files, planted duplicate pairs (within train) and leak pairs."""
    from PIL import Image
    from cnnlab.data.readers import read_cifar10
    (tx, ty), (vx, vy), names = read_cifar10(data_dir / "cifar-10-batches-py")
    rng = np.random.default_rng(seed)
    train_idx = rng.choice(len(tx), n_train, replace=False)
    test_idx = rng.choice(len(vx), n_test, replace=False)
    labels = ty[train_idx].copy()
    order = rng.permutation(n_train)
    n_flip, n_near = round(0.02 * n_train), round(0.005 * n_train)
    flipped, near_sources = order[:n_flip], order[n_flip:n_flip + n_near]  # disjoint: one problem per image
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, n_flip)) % 10
    test_order = rng.permutation(n_test)
    n_leak = round(0.01 * n_test)
    exact_leaks, near_leaks = test_order[:n_leak], test_order[n_leak:2 * n_leak]

    def save(img: np.ndarray, path: Path, near: bool = False) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(img.transpose(1, 2, 0))
        if near:  # resized and re-encoded, as a copy saved from a web page is
            buffer = io.BytesIO()
            picture.resize((48, 48), Image.BICUBIC).save(buffer, "JPEG", quality=90)
            path.with_suffix(".jpg").write_bytes(buffer.getvalue())
            return str(path.with_suffix(".jpg"))
        picture.save(path)
        return str(path)

    train_files = [save(tx[i], root / "train" / names[labels[k]] / f"t{k:05d}.png") for k, i in enumerate(train_idx)]
    test_files = [save(vx[i], root / "test" / names[vy[i]] / f"v{k:05d}.png") for k, i in enumerate(test_idx)]
    pairs, leaks = set(), set()
    for k in near_sources:
        copy = save(tx[train_idx[k]], root / "train" / names[labels[k]] / f"near-t{k:05d}.png", near=True)
        pairs.add(frozenset((train_files[k], copy)))
    for k in exact_leaks:
        copy = save(vx[test_idx[k]], root / "train" / names[vy[test_idx[k]]] / f"leak-v{k:05d}.png")
        leaks.add(frozenset((copy, test_files[k])))
    for k in near_leaks:
        copy = save(vx[test_idx[k]], root / "train" / names[vy[test_idx[k]]] / f"nearleak-v{k:05d}.png", near=True)
        leaks.add(frozenset((copy, test_files[k])))
    return {"flipped": {train_files[k] for k in flipped}, "pairs": pairs, "leaks": leaks}


def precision_recall(found: set, truth: set) -> tuple[float, float]:
    hit = len(found & truth)
    return (hit / len(found) if found else 1.0), (hit / len(truth) if truth else 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--no-labels", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--save-probs", help="write the out-of-fold probabilities, labels and truth here (.npz)")
    args = parser.parse_args()
    from cnnlab.app import datasets
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "planted"
        start = time.perf_counter()
        truth = write_planted(root, Path(args.data_dir), args.train, args.test, args.seed)
        print(f"wrote {root} in {time.perf_counter() - start:.0f} s: {len(truth['flipped'])} flipped labels, "
              f"{len(truth['pairs'])} near-duplicate pairs in train, {len(truth['leaks'])} leaks "
              f"({len(truth['leaks']) // 2} exact, {len(truth['leaks']) - len(truth['leaks']) // 2} near)", flush=True)
        start = time.perf_counter()
        report = datasets.doctor(str(root), labels=not args.no_labels, folds=args.folds, epochs=args.epochs,
                                 progress=lambda text: print(f"  {text}", flush=True))
        seconds = time.perf_counter() - start
        print(report.render())

        def found(check):
            f = report.finding(check)
            return {frozenset((p["a"], p["b"])) for p in f.items} if f else set()
        dup_p, dup_r = precision_recall(found("duplicates"), truth["pairs"])
        leak_p, leak_r = precision_recall(found("leakage"), truth["leaks"])
        both_p, both_r = precision_recall(found("duplicates") | found("leakage"), truth["pairs"] | truth["leaks"])
        figures = {"train": args.train, "test": args.test, "seed": args.seed, "doctor_seconds": round(seconds, 1),
                   "check_seconds": {k: round(v, 1) for k, v in report.seconds.items()},
                   "duplicates": {"precision": dup_p, "recall": dup_r, "found": len(found("duplicates"))},
                   "leaks": {"precision": leak_p, "recall": leak_r, "found": len(found("leakage"))},
                   "duplicates_and_leaks": {"precision": both_p, "recall": both_r}}
        suspects = report.finding("label suspects")
        if suspects is not None:
            n = len(truth["flipped"])
            top = {p["file"] for p in suspects.items[:n]}
            figures["labels"] = {"flipped": n, "suspects": len(suspects.items),
                                 "flipped_in_top": len(top & truth["flipped"]) / n,
                                 "flipped_among_all_suspects": len({p["file"] for p in suspects.items}
                                                                   & truth["flipped"]) / n,
                                 "message": suspects.message}
        print(json.dumps(figures, indent=1))
        if args.save_probs and report.pred_probs is not None:
            suspects_files = [p["file"] for p in suspects.items] if suspects else []
            np.savez(args.save_probs, probs=report.pred_probs, flipped=sorted(truth["flipped"]),
                     suspects=suspects_files, files=report.train_files, labels=report.train_labels)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
