"""Inside a trained network: an image — drawn, uploaded, from the test set, or a script's file or array — through
every layer of a finished run, with the models and test sets kept loaded so that each stroke on the page costs
one pass; then, on a click, one unit (its receptive field and what feeds it) or a class's evidence (saliency
and Grad-CAM: which pixels made it say 7)."""
from __future__ import annotations

import numbers
import os
import threading

from ..errors import UserError
from ..rundir import Run
from .runs import final_weights, open_run
from .uploads import open_upload


class SeeCache:
    """Loaded models and test sets of the runs a page looks inside, so each stroke costs one forward pass.
    Thread-safe: See hooks the shared model's layers, so one look at a time per cache."""

    def __init__(self, runs: int = 4):
        self.runs = runs
        self._models: dict[str, tuple[float, object]] = {}   # run id -> (weights mtime, its TrainedModel)
        self._test: dict[str, object] = {}
        self.lock = threading.Lock()

    def model(self, run: Run):
        from ..train.trained import TrainedModel
        weights = final_weights(run).dir / "model.safetensors"
        key, mtime = run.dir.name, weights.stat().st_mtime
        if key not in self._models or self._models[key][0] != mtime:
            if len(self._models) >= self.runs:
                self._models.pop(next(iter(self._models)))
            self._models[key] = (mtime, TrainedModel.load(run, device="cpu"))
        return self._models[key][1]

    def test_image(self, run: Run, index: int):
        return self.test_item(run, index)[0]

    def test_item(self, run: Run, index: int) -> tuple:
        """(uint8 image, its true label's index) of the run's test set."""
        from ..train.session import prepare_data
        if run.dir.name not in self._test:
            self._test.clear()
            data = prepare_data(run.config)
            self._test[run.dir.name] = (data.test_x, data.test_y)
        test_x, test_y = self._test[run.dir.name]
        if not 0 <= index < len(test_x):
            raise UserError(f"test_index: the test set has {len(test_x)} images (0 to {len(test_x) - 1})")
        return test_x[index], int(test_y[index])


def see(run: Run, image: str | None = None, test_index: int | None = None, top_k: int = 5,
        cache: SeeCache | None = None) -> dict:
    """The top-k classes and every layer's maps for a drawn or uploaded image (a data: URL) or a test image
    (then `label` too: its true class, so the page can say "test image 3, a 7")."""
    from ..viz.activations import see as look
    cache = cache or SeeCache(1)
    seen = _looking(run, image, test_index, cache, lambda trained, x: look(trained, x, top_k))
    if image is None and test_index is not None:
        with cache.lock:
            seen["label"] = seen["classes"][cache.test_item(run, test_index)[1]]
    return seen


def see_inline(run: Run | str | os.PathLike, image, top_k: int = 5):
    """For a script or a notebook (`cnnlab.see(run, image)`): `see`'s answer, shown in a notebook as the top
    classes and every layer's maps. `image`: a path to an image file, a uint8 numpy array (H x W, H x W x C or
    C x H x W; resized to the run's input) or an int, an index into the run's test set."""
    import torch
    from ..viz.activations import Seen, see as look
    run = run if isinstance(run, Run) else open_run(str(run))
    if isinstance(image, numbers.Integral) and not isinstance(image, bool):
        return Seen(see(run, test_index=int(image), top_k=top_k))
    trained = SeeCache(1).model(run)
    return Seen(look(trained, torch.from_numpy(picture(image, trained.input_shape)), top_k))


def layer(run: Run, layer: str, image: str | None = None, test_index: int | None = None,
          cache: SeeCache | None = None) -> dict:
    """One layer's entry as `see` gives it, with all of its channels (the first answer carries 32 a layer)."""
    from ..viz.activations import see as look
    return _looking(run, image, test_index, cache, lambda trained, x: look(trained, x, layer=layer))


def unit(run: Run, layer: str, channel: int, y: int | None = None, x: int | None = None, image: str | None = None,
         test_index: int | None = None, cache: SeeCache | None = None) -> dict:
    """One unit of top-level layer `layer` for the image: its value, receptive field on the input, and the
    previous layer's channels that feed it, strongest first, with the filter's weights."""
    from ..viz.evidence import unit as look_at_unit
    return _looking(run, image, test_index, cache,
                    lambda trained, picture: look_at_unit(trained, picture, layer, channel, y, x))


def evidence(run: Run, class_index: int, image: str | None = None, test_index: int | None = None,
             cache: SeeCache | None = None) -> dict:
    """Which pixels speak for class `class_index`: saliency and Grad-CAM overlays on the image."""
    from ..viz.evidence import class_evidence
    return _looking(run, image, test_index, cache, lambda trained, x: class_evidence(trained, x, class_index))


def _looking(run: Run, image: str | None, test_index: int | None, cache: SeeCache | None, look):
    """`look(trained model, uint8 image)` for the run's loaded model and the image sent (or test image)."""
    cache = cache or SeeCache(1)
    with cache.lock:
        trained = cache.model(run)
        return look(trained, _image(cache, run, trained, image, test_index))


def _image(cache: SeeCache, run: Run, trained, image: str | None, test_index: int | None):
    import torch
    if image is not None:
        return torch.from_numpy(decode_upload(image, trained.input_shape))
    if test_index is not None:
        return cache.test_image(run, test_index)
    raise UserError("send image (a data: URL) or test_index")


def decode_upload(data_url: str, input_shape) -> "np.ndarray":  # noqa: F821
    """A data: URL image -> uint8 (C, H, W) of the model's input size (cnnlab/app/uploads.py: its limits)."""
    channels = input_shape[0]
    img = open_upload(data_url, "image", "L" if channels == 1 else "RGB",
                      (255, 255, 255, 255) if channels == 3 else (0, 0, 0, 255))
    return fit_to_input(img, input_shape)


def picture(image, input_shape) -> "np.ndarray":  # noqa: F821
    """A path to an image file, or a uint8 array (H x W, H x W x C or C x H x W) -> uint8 (C, H, W) of the
    model's input size. A script's or notebook's image: read from this machine's disk, so never a server's."""
    import numpy as np
    from PIL import Image
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as img:
                img.load()
        except (OSError, Image.DecompressionBombError) as exc:
            raise UserError(f"{image}: cannot be read as an image ({exc})") from None
        return fit_to_input(img, input_shape)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise UserError(f"image: expected a uint8 array (0..255), got {array.dtype}; or pass a path or a test "
                        "set index")
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # C x H x W, as the data sets hold images
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise UserError(f"image: expected H x W, H x W x C or C x H x W with 1, 3 or 4 channels, got shape "
                        f"{tuple(np.asarray(image).shape)}")
    return fit_to_input(Image.fromarray(np.ascontiguousarray(array)), input_shape)


def fit_to_input(img, input_shape) -> "np.ndarray":  # noqa: F821
    """A PIL image -> uint8 (C, H, W) of the model's input: grey or RGB, resized bilinearly."""
    import numpy as np
    from PIL import Image
    channels, h, w = input_shape
    img = img.convert("L" if channels == 1 else "RGB")
    array = np.array(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)  # a copy torch may write to
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()
