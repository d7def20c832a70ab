"""Top-k predictions of a trained run for image files of any size."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..data.readers import decode_image
from ..errors import UserError
from .trained import TrainedModel


def load_images(paths, input_shape) -> torch.Tensor:
    """uint8 (N, C, H, W): each file decoded, converted to the model's channels and resized to its input."""
    channels, h, w = input_shape
    arrays = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: no such image file")
        arrays.append(decode_image(path, (h, w), grayscale=channels == 1))
    return torch.from_numpy(np.stack(arrays))


def predict(run_dir: str | os.PathLike, images, top_k: int = 3) -> list[dict]:
    """[{file, top: [(class, probability), ...]}] for each image, most likely first."""
    trained = TrainedModel.load(run_dir, device="cpu")
    probs = trained.probabilities(load_images(images, trained.input_shape))
    k = max(1, min(top_k, probs.shape[1]))
    values, indices = probs.topk(k, dim=1)
    return [{"file": str(path), "top": [(trained.classes[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())]}
            for path, vs, ix in zip(images, values, indices)]
