"""Training images/s of cnnlab's engine against the plain PyTorch-tutorial loop, same model, same run.

    python bench/engine_vs_plain.py [--config examples/keras-cifar10.yaml | --recipe cifar10-fast]
                                    [--data-dir ../shared/datasets]
                                    [--images 3840] [--repeats 3]

The plain loop is what tutorials teach: a Dataset whose __getitem__ turns one uint8 image into a normalised
float tensor and crops (reflect padding 4) and flips it, a DataLoader (batch 128, shuffled), fp32, default
memory layout. It is timed with num_workers=0 and 2 and the faster is kept. cnnlab's engine trains the same
model on the same images with its defaults (batched augmentation on the device, channels_last, bf16 autocast
where the hardware has it). Prints the median training img/s of each and their ratio; evaluation excluded.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.models import build_model
from cnnlab.train.session import prepare_config

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)


class TutorialDataset(torch.utils.data.Dataset):
    """Per-sample transforms, as torchvision's ToTensor/Normalize/RandomCrop/RandomHorizontalFlip do them."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = (self.images[i].float() / 255 - MEAN) / STD
        x = F.pad(x.unsqueeze(0), (4, 4, 4, 4), mode="reflect")[0]
        top, left = torch.randint(0, 9, (2,)).tolist()
        x = x[:, top:top + 32, left:left + 32]
        if torch.rand(()) < 0.5:
            x = x.flip(2)
        return x, int(self.labels[i])


def plain_loop(model_spec, images, labels, workers):
    model = build_model(model_spec, input_shape=(3, 32, 32), num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(TutorialDataset(images, labels), batch_size=128, shuffle=True,
                                         num_workers=workers)
    model.train()
    start, seen = None, 0
    for step, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:  # the first step warms oneDNN up; time from the second
            start = time.perf_counter()
        else:
            seen += len(y)
    return seen / (time.perf_counter() - start)


def engine(config_file, data_dir, n):
    with tempfile.TemporaryDirectory() as tmp:
        run = cnnlab.train(config_file, overrides=[f"data.dir={data_dir}", f"data.limit={n}", "epochs=1",
                                                   "batch_size=128"],
                           run_dir=Path(tmp) / "run", quiet=True, store=False)
        return run.metrics[-1]["img_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="examples/keras-cifar10.yaml", help="a cifar10 config with a model")
    parser.add_argument("--recipe", help="time a recipe's network and settings instead (e.g. cifar10-fast)")
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--images", type=int, default=3840)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.recipe:
        args.config = {"recipe": args.recipe}
    spec = prepare_config(args.config).model
    data = load_dataset("cifar10", args.data_dir)
    images, labels = data.train_x[:args.images], data.train_y[:args.images]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; config {args.config}; {args.images} CIFAR-10 images per timing")
    timings = {"plain, num_workers=0": [], "plain, num_workers=2": [], "cnnlab engine": []}
    for _ in range(args.repeats):  # interleaved, so a noisy neighbour hits every setting alike
        timings["plain, num_workers=0"].append(plain_loop(spec, images, labels, 0))
        timings["plain, num_workers=2"].append(plain_loop(spec, images, labels, 2))
        timings["cnnlab engine"].append(engine(args.config, args.data_dir, args.images))
    medians = {k: statistics.median(v) for k, v in timings.items()}
    plain = max(medians["plain, num_workers=0"], medians["plain, num_workers=2"])
    for name, value in medians.items():
        runs = ", ".join(f"{v:.0f}" for v in timings[name])
        print(f"{name:24s} {value:7.0f} img/s   x{value / plain:.2f} of the faster plain loop   (runs: {runs})")


if __name__ == "__main__":
    main()
