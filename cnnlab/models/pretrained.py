"""`weights: imagenet`: torchvision's published ImageNet weights for a named architecture, fetched once into the
cache with the data sets' download code and checksum check, and the data config they were trained with (input
size, mean, std), which the run then uses, as timm's `pretrained_cfg` and torchvision's weights enums carry it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..data.catalog import Download
from ..data.download import DownloadFailed, fetch
from ..errors import UserError

IMAGENET = "imagenet"  # the keyword in `weights:`; a file of that name is written ./imagenet
BASE_URL = "https://download.pytorch.org/models/"
URL_ENV = "CNNLAB_WEIGHTS_URL"  # another base URL for the files (a mirror, or the tests' server on 127.0.0.1)
IMAGENET_INPUT, IMAGENET_CLASSES = (3, 224, 224), 1000  # what `cnnlab summary` shows these models at
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageClassification preset, in 0..1 units
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Published:
    """One published file and how its images were prepared (torchvision's `transforms` preset)."""
    filename: str          # name-<first 8 hex digits of its SHA-256>.pth
    input_size: int = 224  # the centre crop
    resize: int = 256      # torchvision's shorter side before the crop (recorded; cnnlab resizes to input_size)
    classes: int = IMAGENET_CLASSES

    @property
    def sha256_prefix(self) -> str:
        # torchvision publishes no full SHA-256 beside its files; the 8 hex digits in the name are what its own
        # loader checks (torch.hub's check_hash), so those are checked here: a truncated or other file fails
        return self.filename.rsplit("-", 1)[1].split(".")[0]

    def data_config(self) -> dict:
        return {"weights": self.filename, "input_size": [3, self.input_size, self.input_size], "resize": self.resize,
                "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "classes": self.classes}


# The IMAGENET1K_V1 files of torchvision 0.29 (torchvision/models/resnet.py, ...), the ones its
# `weights="DEFAULT"` gave for ResNet-18/34 and what most papers' "ImageNet-pretrained ResNet-50" means.
PUBLISHED: dict[str, Published] = {
    "resnet18-imagenet": Published("resnet18-f37072fd.pth"),
    "resnet34-imagenet": Published("resnet34-b627a593.pth"),
    "resnet50-imagenet": Published("resnet50-0676ba61.pth"),
    "mobilenet-v3-large-imagenet": Published("mobilenet_v3_large-8738ca79.pth"),
    # ported from timm (rwightman); torchvision resizes its images bicubically, cnnlab's image folders bilinearly
    "efficientnet-b0-imagenet": Published("efficientnet_b0_rwightman-7f5810bc.pth"),
}


def model_name(model) -> str:
    """A config's `model` as the registry names it: `resnet18-imagenet` or {name: resnet18-imagenet}."""
    if isinstance(model, dict):
        model = model.get("name", model.get("model"))
    return str(model).replace("_", "-") if isinstance(model, str) else type(model).__name__


def published(model_name: str) -> Published:
    if model_name not in PUBLISHED:
        raise UserError(f"weights: imagenet: model '{model_name}' has no published ImageNet weights in cnnlab; "
                        f"those that have: {', '.join(PUBLISHED)}")
    return PUBLISHED[model_name]


def weights_cache() -> Path:
    from ..data.dataset import default_cache_dir  # the data sets' cache (CNNLAB_CACHE_DIR), a folder beside them
    return default_cache_dir() / "weights"


def imagenet_file(model_name: str, cache_dir: Path | None = None) -> Path:
    """The published file for `model_name`, downloaded on first use and checked; UserError when it cannot be."""
    item = published(model_name)
    base = os.environ.get(URL_ENV) or BASE_URL
    url = base.rstrip("/") + "/" + item.filename
    folder = cache_dir or weights_cache()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return fetch(Download(item.filename, (url,), sha256=item.sha256_prefix), folder)
    except DownloadFailed as exc:
        raise UserError(f"weights: imagenet: {item.filename} could not be fetched and checked ({exc}), so nothing "
                        f"was kept; download it yourself into {folder} or give its path as weights") from None
