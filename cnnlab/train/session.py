"""Assembling a run in memory: config -> data on the device -> checked model -> augmenter -> trainer.

Nothing here writes files or prints: the job (job.py) decides where a run goes and who listens.
"""
from __future__ import annotations

import copy
import functools
import json
import re
import time
from pathlib import Path

import torch

from .. import config as config_mod
from ..data import SOURCES, ImageDataset, folder_facts, load_dataset, stratified_split, train_images
from ..data.split import first_images
from ..data.duplicates import test_in_train
from ..device import available_memory, choose_placement, should_compile
from ..errors import UserError
from ..events import Emitter, Listener
from ..fsutil import atomic_path, write_text
from ..models import build_model, resolve_spec
from ..models.summary import render, summarize
from ..models.pretrained import IMAGENET, PUBLISHED, model_name, published
from ..models.weights import load_weights
from ..rundir import write_metrics
from ..schema.config import AugmentConfig, TrainConfig
from ..yamlio import Located
from .augment import Augmenter
from . import distributed
from .engine import Trainer
from .. import faults


def _default_name(model) -> str:
    """The run's name from its model's, made safe for a directory name."""
    name = "model"
    if isinstance(model, str):
        name = Path(model).stem if model.endswith((".yaml", ".yml")) else model
    elif isinstance(model, dict):
        name = str(model.get("name") or model.get("model") or str(model.get("module", "model")).split(":")[-1])
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.")[:100] or "model"


def prepare(config=None, overrides: list | None = None) -> tuple[TrainConfig, Located]:
    """The config resolved completely, as a run records it (model inlined, name set, augmentation written out
    with every key), and the model as written, with its file and lines, so a layer's error points at the line
    that holds it. `overrides`: as cnnlab.config.resolve takes them."""
    cfg, located = config_mod.resolve(config, overrides)
    cfg, located = _lift_weights(cfg, located)
    model = cfg.model
    if isinstance(model, str) and (model.endswith((".yaml", ".yml")) or Path(model).is_file()):
        spec = resolve_spec(model, (1, 1, 1), 1)  # a model file: copied in, so the run directory stands alone
        model = spec.data
    elif isinstance(located.data, dict) and located.data.get("model") == model:
        spec = located.sub(("model",))  # written inline in the config file
    else:
        spec = Located(model, "model")
    return cfg.model_copy(update={"model": model, "name": cfg.name or _default_name(model),
                                  "augment": augmentation(cfg), "batch_size": _batch_size(cfg)}), spec


def _lift_weights(cfg: TrainConfig, located: Located) -> tuple[TrainConfig, Located]:
    """`model: {name: resnet18, weights: FILE}` is `weights: FILE` beside the model: the model is what is built,
    the weights where it starts. A run directory as the source is the run's parent (its lineage)."""
    model, weights = cfg.model, cfg.weights
    if isinstance(model, dict) and "weights" in model:
        if weights is not None and weights != model["weights"]:
            raise UserError(f"weights: given twice, {weights!r} and model.weights {model['weights']!r}; keep one")
        weights = model["weights"]
        if not isinstance(weights, str) or not weights:
            raise UserError(f"model.weights: a weights file or run directory, got {weights!r}")
        model = {k: v for k, v in model.items() if k != "weights"}
        if isinstance(located.data, dict) and isinstance(located.data.get("model"), dict):
            located = Located({**located.data, "model": model}, located.source, located.lines)
    update = {"model": model, "weights": weights}
    if weights == IMAGENET and cfg.data.image_size is None and cfg.data.name not in SOURCES:
        # an image folder is resized to the size the published weights were trained at (224), unless the
        # config names a size; a built-in set keeps its own (32x32 CIFAR at 224 would cost 49x the compute,
        # and the ImageNet nets pool adaptively, so they take any size)
        if model_name(model) in PUBLISHED:
            update["data"] = cfg.data.model_copy(update={"image_size": published(model_name(model)).input_size})
    if weights is not None and cfg.parent is None and Path(weights, "config.yaml").is_file():
        update["parent"] = Path(weights).resolve().name
    return cfg.model_copy(update=update), located


def augmentation(cfg: TrainConfig):
    """A built-in set's augmentation comes from its table; an image folder's flips from its content
    (cnnlab.data.mirror), read only where the table's flip would be used."""
    name = cfg.data.name
    kind = name if name in config_mod.AUGMENT_DEFAULTS else "imagefolder"
    choice = cfg.augment
    table_flip = kind == "imagefolder" and (
        (choice == "auto" and cfg.epochs >= config_mod.SHORT_RUN_EPOCHS)
        or (isinstance(choice, AugmentConfig) and choice.flip is None))
    facts = _folder_facts_or_none(cfg) if table_flip else None
    return config_mod.augment_settings(cfg, kind, facts.mirror.keeps_labels if facts else True)


def _batch_size(cfg: TrainConfig) -> int:
    if cfg.batch_size:
        return cfg.batch_size
    if cfg.data.name not in SOURCES and _folder_facts_or_none(cfg) is None:
        return config_mod.LARGEST_AUTO_BATCH
    return config_mod.auto_batch_size(train_images(cfg.data), cfg.epochs)


def _folder_facts_or_none(cfg: TrainConfig):
    """An image folder's facts, or None where it cannot be read: the run then fails on it as it starts, with
    its reason recorded where the user looks for runs (Runs, the store), not only in this caller's reply."""
    d = cfg.data
    try:
        return folder_facts(d.name, d.dir, d.root, d.image_size, d.skip_empty)
    except UserError:
        return None


def prepare_config(config=None, overrides: list | None = None) -> TrainConfig:
    return prepare(config, overrides)[0]


def prepare_data(cfg: TrainConfig) -> ImageDataset:
    d = cfg.data
    dataset = load_dataset(d.name, d.dir, d.val_split or None, cfg.seed, d.root, d.image_size, d.download,
                           strict=d.strict, skip_empty=d.skip_empty, in_memory=d.in_memory)
    if d.limit:  # the user's set first (the first N images; every class's first in a folder), then a share of it
        kept = first_images(dataset.train_y.numpy(), d.limit)
        if len(kept) < len(dataset.train_y) and kept[-1] == len(kept) - 1:  # a prefix: a view, nothing copied
            dataset.train_x, dataset.train_y = dataset.train_x[:len(kept)], dataset.train_y[:len(kept)]
        elif len(kept) < len(dataset.train_y):
            dataset.train_x, dataset.train_y = dataset.train_x[kept], dataset.train_y[kept]
    if d.subset and d.subset < 1:
        _, kept = stratified_split(dataset.train_y.numpy(), d.subset, cfg.seed)
        dataset.train_x, dataset.train_y = dataset.train_x[kept], dataset.train_y[kept]
    return dataset


def _check_memory(summary, cfg: TrainConfig, placement) -> None:
    free = available_memory(placement.device)
    params = summary.total
    # weights + gradients + two optimizer slots (Adam), and activations kept for backward in the batch
    need = params * 4 * 4 + summary.activations_per_image * cfg.batch_size * 4 * 3
    if free is not None and need > 0.9 * free:
        raise UserError(f"the model needs about {need / 2**30:.1f} GB for batch_size {cfg.batch_size} "
                        f"({params:,} parameters), but only {free / 2**30:.1f} GB is free on "
                        f"{placement.device.type}; lower batch_size, narrow the layers, or pool earlier")


def check_resolution(spec, cfg: TrainConfig, input_shape: tuple, num_classes: int) -> None:
    """`resolution` must lower the images' size, and the network must take the smaller images (one that
    flattens into a dense layer takes one size only)."""
    if cfg.resolution is None or cfg.resolution.small_epochs(cfg.epochs) == 0:
        return  # no epoch trains small (a one-epoch run of a recipe): nothing to check
    c, h, w = input_shape
    size = cfg.resolution.pixels(h)
    from_recipe = f" (recipe {cfg.recipe}'s)" if cfg.recipe else ""
    if size >= h:
        asked = size if isinstance(cfg.resolution.size, int) else f"{cfg.resolution.size} of {h} pixels is {size}"
        raise UserError(f"resolution.size{from_recipe}: {asked}, not below the images' height ({h}x{w}); it sets "
                        f"the size of the first epochs' images to save FLOPs, so give a smaller size (e.g. "
                        f"{max(4, h * 3 // 4)}, or 0.75 for three quarters of any image's height), or --set "
                        "resolution=null to train every epoch at full size")
    try:  # called on the meta device: shapes only
        build_model(spec, input_shape, num_classes).train()(
            torch.zeros(2, c, size, max(1, round(w * size / h))))
    except (UserError, RuntimeError) as exc:
        raise UserError(f"resolution.size{from_recipe}: the model does not take {size}-pixel images ({exc}): a "
                        "network that flattens into a dense layer takes one size only (end its convolutions with "
                        "global_avgpool or global_maxpool), and one that pools many times needs images that stay "
                        f"above 1 pixel; or --set resolution=null to train every epoch at {h}x{w}") from None


def init_from_data(model, train_x: torch.Tensor, augmenter: Augmenter, images: int = 5000) -> None:
    """Layers set from the training images before the first step (a whitening layer's filters): from the first
    `images` of them, normalised as training normalises them."""
    layers = [m for m in model.modules() if hasattr(m, "init_from_images")]
    if layers:
        x = augmenter.eval_batch(train_x[:images])
        for layer in layers:
            layer.init_from_images(x)


class Session:
    """Everything a run needs in memory: config, data, model, placement, augmenter, trainer."""

    def __init__(self, cfg: TrainConfig, resume_state: dict | None = None, events: Emitter | None = None, spec=None):
        self.cfg = cfg
        spec = cfg.model if spec is None else spec  # the model as written (a Located keeps its lines)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.placement = choose_placement(cfg.device, cfg.precision, cfg.channels_last)
        self.data = prepare_data(cfg)
        with torch.device("meta"):  # sizes first, allocating nothing: a model too big for memory fails here
            _check_memory(summarize(build_model(spec, self.data.input_shape, self.data.num_classes)),
                          cfg, self.placement)
            check_resolution(spec, cfg, self.data.input_shape, self.data.num_classes)
        self.model = build_model(spec, self.data.input_shape, self.data.num_classes)
        self.summary = summarize(self.model)
        self.model.to(self.placement.device)
        if self.placement.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.mean, self.std = self.data.channel_stats()
        self.normalized_by = "data"  # whose mean and std: the data's, or the weights' (data.normalize)
        stats = _weights_stats(cfg)
        if stats is not None:
            (self.mean, self.std), self.normalized_by = stats, f"weights {cfg.weights}"
        self.augmenter = Augmenter(cfg.augment, self.mean, self.std, self.placement.device,
                                   self.placement.channels_last, cfg.seed)
        self.weights = None  # what `weights` loaded (LoadedWeights), for the run's log and result
        if resume_state is None:
            init_from_data(self.model, self.data.train_x, self.augmenter)
            if cfg.weights:
                self.weights = load_weights(self.model, cfg.weights, _weights_names(self.model), cfg.weights_partial)
        self.world = distributed.init(self.placement.device)
        wrapped = self._data_parallel(cfg) if self.world.distributed else None
        if should_compile(cfg.compile, self.placement):
            # training steps go through the compiled module; evaluation and saving use the model itself,
            # whose parameters it shares
            wrapped = torch.compile(wrapped if wrapped is not None else self.model)
        self.trainer = Trainer(self.model, self.data, cfg, self.augmenter, self.placement, events=events,
                               world=self.world, wrapped=wrapped)
        if resume_state is not None:
            self.trainer.load_state_dict(resume_state)
        elif self.weights is not None and self.trainer.finetune is not None:
            self.trainer.finetune.leave_trainable([name for name, _, _ in self.weights.mismatched] + self.weights.new)
        if self.trainer.finetune is not None:  # the frozen layers, as they start
            self.trainer.finetune.apply(self.trainer.epoch)
            self.summary = summarize(self.model)

    def _data_parallel(self, cfg: TrainConfig):
        """DDP around the model (the model itself is what is saved, evaluated and linted)."""
        from torch.nn.parallel import DistributedDataParallel
        if cfg.sync_batchnorm:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        device_ids = [self.placement.device.index] if self.placement.device.type == "cuda" else None
        # a layer whose bias stops training part-way (whitening), or a fine-tune's frozen body, leaves parameters
        # without a gradient in some steps: DDP must look for them, or it waits for their gradients forever
        partly_frozen = cfg.finetune is not None or any(hasattr(m, "train_bias") for m in self.model.modules())
        return DistributedDataParallel(self.model, device_ids=device_ids, find_unused_parameters=partly_frozen)

    def data_info(self) -> dict:
        """What data.json holds: enough to predict without the data set."""
        d = self.data
        return {"name": d.name, "classes": d.classes, "input_shape": list(d.input_shape), "mean": self.mean,
                "std": self.std, "normalized_by": self.normalized_by, "train": len(d.train_x), "test": len(d.test_x),
                "val": 0 if d.val_x is None else len(d.val_x),
                # test images that are training images too: the run doctor says the test accuracy is optimistic
                "test_in_train": self.test_in_train}

    @functools.cached_property
    def test_in_train(self) -> int:
        """Test images that are, pixel for pixel, training or validation images too (0.3 s for CIFAR-10)."""
        d = self.data
        return test_in_train(d.train_x.numpy(), d.test_x.numpy(), None if d.val_x is None else d.val_x.numpy())

    def write_start_files(self, run_dir: Path, config: bool = True) -> None:
        """config.yaml (unless `config` is False: a run directory's own, kept byte for byte), data.json and
        summary.txt."""
        if config:
            write_text(run_dir / "config.yaml", config_mod.dump(self.cfg))
        write_text(run_dir / "data.json", json.dumps(self.data_info(), indent=2))
        write_text(run_dir / "summary.txt", render(self.summary, self.cfg.batch_size) + "\n")
        if self.data.ingest is not None and self.data.ingest.skipped:
            write_text(run_dir / "skipped.txt", self.data.ingest.skipped_text())


def _weights_stats(cfg: TrainConfig) -> tuple[list, list] | None:
    """The mean and std the weights were trained with, where they carry them and data.normalize lets them."""
    if cfg.data.normalize == "data" or cfg.weights != IMAGENET:
        if cfg.data.normalize == "weights":
            raise UserError(f"data.normalize: weights: the weights ({cfg.weights or 'none'}) carry no mean and std; "
                            "valid with weights: imagenet, else auto or data")
        return None
    config = published(model_name(cfg.model)).data_config()
    return config["mean"], config["std"]


def _weights_names(model) -> dict | None:
    """An imported model's map from its tensor names to the original module's (cnnlab/models/weights.py)."""
    spec = getattr(model, "spec", None)
    return spec.get("weights_names") if isinstance(spec, dict) else None


# A checkpoint costs its write: resnet18's 90 MB (weights and momentum) took 0.55 s on the 2-core EPYC VM, 14% of
# an epoch of 1,000 CIFAR images. Where a write takes over MIN_SLOW_WRITE_S and over WRITE_SHARE of the training
# since the last one, the epoch's state is kept in memory instead (a copy into the same buffers: milliseconds)
# and written at the next epoch that is due, at the last, and when the run stops, diverges or fails (`flush`).
# A SIGKILL then loses at most about 1 / WRITE_SHARE write-times of training; resume stays bit-identical.
WRITE_SHARE = 0.05
MIN_SLOW_WRITE_S = 0.2


class CheckpointWriter(Listener):
    """metrics.csv after every epoch and checkpoint.pt after every epoch whose write is cheap (atomically), so a
    killed run resumes; then says so with a `checkpoint` event. The first listener of a job's events: the
    checkpoint is on disk before anyone else hears of the epoch. Required: a checkpoint that cannot be written
    (a full disk) fails the run."""
    required = True

    def __init__(self, run_dir: Path, trainer, events: Emitter):
        self.dir, self.trainer, self.events = run_dir, trainer, events
        self.write_s, self.written_at = 0.0, time.perf_counter()
        self.kept = None  # the state of an epoch not yet written, in buffers reused from epoch to epoch

    def on_fit_start(self, d, event) -> None:
        write_metrics(self.dir / "metrics.csv", self.trainer.history)
        self.written_at = time.perf_counter()

    def on_epoch_end(self, d, event) -> None:
        if d.get("diverged"):  # the NaN row, for the doctor; the last good checkpoint is kept
            write_metrics(self.dir / "metrics.csv", self.trainer.history)
            return
        faults.hit("epoch-end")
        write_metrics(self.dir / "metrics.csv", self.trainer.history)
        slow = self.write_s > MIN_SLOW_WRITE_S and self.write_s > WRITE_SHARE * (time.perf_counter() - self.written_at)
        if slow and self.trainer.epoch < self.trainer.epochs:
            self.kept = kept_copy(self.kept, self.trainer.state_dict())
        else:
            self._write(self.trainer.state_dict())

    def flush(self) -> None:
        """Write the kept epoch, if one is waiting (the run is ending: stopped, diverged, failed or finished)."""
        if self.kept is not None:
            self._write(self.kept)

    def _write(self, state: dict) -> None:
        start = time.perf_counter()
        with atomic_path(self.dir / "checkpoint.pt") as tmp:
            torch.save(state, tmp)
            faults.hit("checkpoint-write")
        faults.hit("checkpoint-written")
        self.kept, self.written_at = None, time.perf_counter()
        self.write_s = self.written_at - start
        self.events.emit("checkpoint", {"epoch": state["epoch"], "path": str(self.dir / "checkpoint.pt")})


def kept_copy(into, state):
    """A copy of `state` (tensors, dicts, lists, values), its tensors copied into `into`'s where they match, so
    keeping an epoch's state allocates memory only the first time."""
    if isinstance(state, torch.Tensor):
        if (isinstance(into, torch.Tensor) and into.shape == state.shape and into.dtype == state.dtype
                and into.device == state.device):
            return into.copy_(state)
        return state.detach().clone()
    if isinstance(state, dict):
        into = into if isinstance(into, dict) else {}
        return {k: kept_copy(into.get(k), v) for k, v in state.items()}
    if type(state) in (list, tuple):
        into = into if type(into) is type(state) and len(into) == len(state) else [None] * len(state)
        return type(state)(kept_copy(a, b) for a, b in zip(into, state))
    return copy.deepcopy(state)
