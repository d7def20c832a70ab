"""Write tests/fixtures/imagenet/<arch>.npz from torchvision: its tensor names and shapes, the input and its
logits, for the weights tests/imagenet_fill.py makes. Run once, in an environment with torchvision (never
the project's own; the measured versions are recorded in each file):

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tv/bin/python scripts/imagenet_fixtures.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from imagenet_fill import filled, image  # noqa: E402

ARCHS = ("resnet18", "resnet34", "resnet50", "mobilenet_v3_large", "efficientnet_b0")


def main() -> None:
    torch.set_num_threads(1)
    out_dir = ROOT / "tests" / "fixtures" / "imagenet"
    out_dir.mkdir(parents=True, exist_ok=True)
    for arch in ARCHS:
        model = getattr(torchvision.models, arch)(weights=None).eval()
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        model.load_state_dict({k: torch.from_numpy(v) for k, v in filled(shapes).items()})
        x = image()
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).numpy()
        meta = {"arch": arch, "torch": torch.__version__, "torchvision": torchvision.__version__,
                "params": sum(p.numel() for p in model.parameters()), "shapes": shapes}
        np.savez_compressed(out_dir / f"{arch}.npz", input=x, logits=logits, meta=np.array(json.dumps(meta)))
        print(arch, meta["params"], float(np.abs(logits).max()))


if __name__ == "__main__":
    main()
