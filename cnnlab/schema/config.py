"""The training config's schema: every key, its type, range and default, with a comment saying why.

Config files, `--set` overrides, the Python API, sweeps and the web page all resolve through
`cnnlab.config.resolve`, which validates against `TrainConfig`; the TrainConfig itself then travels to the
trainer and every tool that reads a run. Defaults are what a strong practitioner would pick for a small CNN on
a CPU (docs/training.md, "Defaults").

A config as written may leave the run's name, the model's file and the augmentation to be worked out;
resolved as a run records it (cnnlab/train/session.py `prepare`, and every run's config.yaml), `name` is set,
`model` is inlined and `augment` is an AugmentConfig with every key set.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema,
                      model_validator)

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adadelta", "muon")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "warmup_linear", "warmup_cosine", "plateau")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MAX_EPOCHS = 100_000
MAX_BATCH = 1_000_000

Fraction = Annotated[float, Field(ge=0, lt=1)]
Count = Annotated[int, Field(ge=1, le=MAX_BATCH)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=True)


def _image_size(v):
    if v is None or (isinstance(v, int) and not isinstance(v, bool) and 4 <= v <= 4096):
        return v
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                            and 4 <= x <= 4096 for x in v):
        return list(v)
    raise ValueError("must be an integer from 4 to 4096 or a pair [h, w] of them (or null: the most common size)")


class DataConfig(Section):
    name: str = "cifar10"                 # cifar10 | cifar100 | mnist | fashion-mnist | imagefolder (or a folder path)
    dir: str | None = None                # folder holding <set>/ sub-folders; else CNNLAB_DATA_DIR, cache, download
    root: str | None = None               # imagefolder: ROOT/<class>/*.png or ROOT/train, ROOT/test
    image_size: Annotated[Any, BeforeValidator(_image_size), WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 4, "maximum": 4096}, {"type": "null"},
                   {"type": "array", "minItems": 2, "maxItems": 2,
                    "items": {"type": "integer", "minimum": 4, "maximum": 4096}}]})] = None  # imagefolder resize
    val_split: Fraction | None = 0.0      # fraction of training images held out (stratified, seeded) for validation
    download: bool = True
    limit: Annotated[int, Field(ge=1, le=100_000_000)] | None = None  # use only the first N training images
    # train on this fraction of the training images, the same share of every class (seeded): quick trials
    subset: Annotated[float, Field(gt=0, le=1)] | None = None
    strict: bool = False                  # imagefolder: a broken file fails the load (all listed) instead of skipped
    skip_empty: bool = False              # imagefolder: leave out an empty class folder instead of failing
    # the mean and std images are normalised with: auto is the weights' own where they carry them (weights:
    # imagenet, torchvision's 0.485/0.229 ...: the features were learned on those numbers), else the data's
    normalize: Literal["auto", "data", "weights"] = "auto"
    # imagefolder: each split's decoded images in memory (true), or read from their cache file on disk through
    # the page cache (false: sets larger than memory); auto: in memory when a split takes at most half of the
    # memory available (cnnlab/data/diskcache.py)
    in_memory: Literal["auto", True, False] = "auto"


def _betas(v):
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v):
        return [float(b) for b in v]
    raise ValueError("must be a pair [beta1, beta2] of numbers in [0, 1)")


class GroupConfig(Section):
    """Settings for one kind of parameter that differ from the optimizer's (fastai's discriminative rates).
    The schedule scales `lr` as it scales the main one."""
    lr: Annotated[float, Field(gt=0, le=1e6)] | None = None
    momentum: Fraction | None = None
    weight_decay: Annotated[float, Field(ge=0, le=1e3)] | None = None


class GroupsConfig(Section):
    conv: GroupConfig | None = None       # conv filters (4-D weights)
    dense: GroupConfig | None = None      # dense weights (2-D)
    bias: GroupConfig | None = None       # biases and BatchNorm shifts/scales (1-D)


class OptimizerConfig(Section):
    # muon: conv filters by Muon (Jordan 2024; orthogonalised momentum), every other parameter by Nesterov SGD
    name: Literal[OPTIMIZERS] = "sgd"
    lr: Annotated[float, Field(gt=0, le=1e6)] = 0.05       # peak learning rate (per batch of `batch_size`)
    momentum: Fraction = 0.9
    nesterov: bool = True
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 5e-4  # on conv/dense weights only, not BatchNorm or biases
    betas: Annotated[Any, BeforeValidator(_betas), WithJsonSchema(
        {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}}
    )] = [0.9, 0.999]
    eps: Annotated[float, Field(gt=0, le=1)] = 1e-8
    alpha: Fraction = 0.99                # rmsprop smoothing
    rho: Fraction = 0.9                   # adadelta
    groups: GroupsConfig = GroupsConfig()  # per kind of parameter: {conv|dense|bias: {lr, momentum, weight_decay}}
    normalize_filters: bool = False       # muon: hold each filter bank's norm fixed (it feeds BatchNorm)


class ScheduleConfig(Section):
    name: Literal[SCHEDULES] = "onecycle"
    warmup: Annotated[float, Field(ge=0, le=MAX_EPOCHS)] = 0.2   # a fraction of all epochs when < 1, else epochs
    step_size: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 10   # step: epochs between decays
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1             # step: decay factor
    min_lr: Annotated[float, Field(ge=0, le=1)] = 0.0            # floor, as a fraction of the peak
    patience: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 3     # plateau: epochs without val_loss improvement
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.2            # plateau: cut factor


class LossConfig(Section):
    label_smoothing: Fraction = 0.1
    reduction: Literal["mean", "sum"] = "mean"   # sum: the learning rate is per image, not per batch


class EarlyStoppingConfig(Section):
    patience: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None = None  # epochs without improvement; needs val_split
    monitor: Literal["val_loss"] = "val_loss"


class AugmentConfig(Section):
    """Keys left out take the data set's defaults (crop 4 + horizontal flip for natural images); resolved, every
    key is set (cnnlab.config.augment_settings)."""
    crop: Annotated[int, Field(ge=0, le=256)] | None = None          # random crop after padding by this many pixels
    crop_mode: Literal["reflect", "constant", "edge", "replicate"] | None = None
    translate: Annotated[int, Field(ge=0, le=256)] | None = None     # random shift of up to this many pixels
    # alternating: each image is flipped in every other epoch (half start flipped): more variety than random
    flip: Literal["none", "horizontal", "vertical", "both", "alternating"] | None = None
    rotate: Annotated[float, Field(ge=0, le=180)] | None = None      # random rotation of up to +-degrees
    scale: Fraction | None = None                                    # random zoom in [1 - scale, 1 + scale]
    fill: Literal["reflect", "constant", "edge", "replicate"] | None = None  # what rotate/translate/scale bring in
    brightness: Annotated[float, Field(ge=0, le=1)] | None = None    # random brightness shift of up to +- this
    channel_shift: Annotated[float, Field(ge=0, le=1)] | None = None
    cutout: Annotated[int, Field(ge=0, le=4096)] | None = None       # zero a random square of this many pixels


class AverageConfig(Section):
    """Averaged weights (airbench94's lookahead; Polyak/EMA averaging): every `every` steps the average moves
    toward the weights by (1 - d), d = decay x progress^ramp (0 at the start, `decay` at the end), BatchNorm's
    running statistics with them. lookahead: the weights are then set to the average (Zhang et al. 2019);
    ema: the average is kept apart and becomes the model's weights when training ends (so the epochs'
    evaluations before the last score the weights as trained, not the average). The run's last step always
    updates; with lookahead its weights are then the average, as in airbench94 when the steps divide by
    `every`."""
    mode: Literal["lookahead", "ema"] = "lookahead"
    every: Annotated[int, Field(ge=1, le=1_000_000)] = 5
    decay: Annotated[float, Field(ge=0, le=1)] = 0.774   # airbench94: 0.95 ** 5
    ramp: Annotated[float, Field(ge=0, le=100)] = 3.0


def _count_or_share(low: int, high: int, what: str, example: int, share: str, share_example: float):
    """A before-validator for a whole number from `low` to `high`, or a share strictly between 0 and 1."""
    def check(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):  # ranges first: NaN and inf fail them
            if 0 < v < 1:
                return float(v)
            if low <= v <= high and v == int(v):
                return int(v)
        raise ValueError(f"must be {what}, a whole number from {low} to {high} ({example}), or a share of {share} "
                         f"between 0 and 1 ({share_example})")
    return check


_resolution_size = _count_or_share(4, 4096, "the pixels of the first epochs' images", 24,
                                   "the images' height", 0.75)
_resolution_epochs = _count_or_share(1, MAX_EPOCHS, "how many of the first epochs train small", 7,
                                     "the run's epochs", 0.7)


class ResolutionConfig(Section):
    """Progressive resizing (fast.ai's DAWNBench entry): the first `epochs` epochs train on images resized to
    `size` pixels (bilinear, antialiased), a fraction of the FLOPs; the rest full size. Below 1, `size` is a
    share of the images' height (0.75: 24 of CIFAR's 32, 21 of MNIST's 28) and `epochs` a share of the run's
    (0.7: 7 of 10, 6 of 8; a share always leaves the last epoch at full size), so a recipe fits any data set and
    `--epochs`."""
    size: Annotated[Any, BeforeValidator(_resolution_size), WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 4, "maximum": 4096},
                   {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}]})]
    epochs: Annotated[Any, BeforeValidator(_resolution_epochs), WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_EPOCHS},
                   {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}]})]
    # once: the set resized at the phase's start, then cropped and flipped at the small size (a crop of 2 pixels
    # is 2 of 24); batch: each batch augmented at full size, then resized (2 of 32, 1.5 of 24, sub-pixel)
    resize: Literal["once", "batch"] = "once"

    def pixels(self, height: int) -> int:
        """The first epochs' image height for images `height` pixels high (a share rounded half up, at least the
        4 pixels a 3x3 convolution and a pool need)."""
        return self.size if isinstance(self.size, int) else max(4, math.floor(self.size * height + 0.5))

    def small_epochs(self, total: int) -> int:
        """How many of a run's `total` epochs train at the lower size. A share (rounded half up) always leaves
        the last epoch at full size, the size the network is evaluated at, whatever `--epochs` says; a count is
        taken as written, up to the run's length."""
        if isinstance(self.epochs, int):
            return min(self.epochs, total)
        return min(total - 1, math.floor(self.epochs * total + 0.5))

    def is_small(self, epoch: int, total: int) -> bool:
        """Whether epoch `epoch` (from 0) of `total` trains at the lower size."""
        return epoch < self.small_epochs(total)


class SelectConfig(Section):
    """Data filtering by loss (selective backprop, Jiang et al. 2019; airbench96_faster ranks with a proxy
    network): a forward pass without gradients scores the whole batch, and only its `keep` share with the
    highest loss is trained on. Costs a forward of every image (1/3 of a training step) to save the backward
    of the rest; from epoch `after` on (earlier epochs train on every image)."""
    keep: Annotated[float, Field(gt=0, le=1)]
    after: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 0


def _run_name(v):
    if v is None or (isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", v)):
        return v
    raise ValueError("must be a name of letters, digits, '.', '_', '+' or '-' (at most 100, no '/'), "
                     "used in the run directory's name")


def _model(v):
    if isinstance(v, (str, list, dict)) and v not in ("", [], {}):
        return v
    raise ValueError("must be a registered name, a model YAML file, a layer list, {layers: [...]} "
                     "or {module: 'package.module:Class'}")


LOGGERS = ("mlflow", "wandb", "tensorboard", "csv")   # cnnlab/track/loggers registers one listener for each


class LoggerConfig(Section):
    """A logger with options; a bare name (`loggers: [mlflow]`) takes the defaults."""
    name: Literal[LOGGERS]
    # also log the running training loss/accuracy every this many steps (batch_end events), not only per epoch
    every_n_steps: Count | None = None
    # MLflow: a tracking server, database or folder (default: MLFLOW_TRACKING_URI, else MLflow's default)
    tracking_uri: Annotated[str, Field(max_length=2000)] | None = None
    # MLflow experiment / W&B project (default: MLFLOW_EXPERIMENT_NAME / WANDB_PROJECT, else "cnnlab")
    experiment: Annotated[str, Field(max_length=200)] | None = None
    # W&B: the folder its offline files go to (default: the run directory)
    dir: Annotated[str, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _its_own_options(self):
        allowed = LOGGER_OPTIONS[self.name]
        given = [k for k in ("tracking_uri", "experiment", "dir", "every_n_steps") if getattr(self, k) is not None]
        for key in given:
            if key not in allowed:
                raise ValueError(f"{key} is not an option of the {self.name} logger; its options: "
                                 f"{', '.join(allowed)}")
        return self


def _logger_entry(v):
    """A bare name is the logger with its defaults: `mlflow` is `{name: mlflow}`."""
    return {"name": v} if isinstance(v, str) else v


def _logger_dump(logger: LoggerConfig):
    """As written: the bare name where no option is set, else the options that are."""
    options = {k: v for k, v in logger.__dict__.items() if v is not None}
    return logger.name if list(options) == ["name"] else options


LOGGER_OPTIONS = {"mlflow": ("every_n_steps", "tracking_uri", "experiment"),
                  "wandb": ("every_n_steps", "experiment", "dir"),
                  "tensorboard": ("every_n_steps",), "csv": ("every_n_steps",)}


def _device(v):
    if isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,2})?", v):
        return v
    raise ValueError("must be auto, cpu, cuda, cuda:N or mps")


class FinetuneConfig(Section):
    """Fine-tuning as a schedule (fastai's fine_tune): the new head alone first, then everything."""
    # what is frozen in the first `head_epochs`: `body` (every layer but the classifier) or the first N layers
    freeze: Literal["body"] | Annotated[int, Field(ge=1, le=10_000)] = "body"
    # epochs with `freeze` in place (BatchNorm statistics of the frozen part frozen too); `all`: the whole run
    head_epochs: Literal["all"] | Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 1
    # after them: `discriminative` rates, from lr/spread at the first layer rising geometrically to lr at the
    # head (fastai's slice(lr/100, lr)), or `uniform` (one rate)
    rates: Literal["discriminative", "uniform"] = "discriminative"
    spread: Annotated[float, Field(ge=1, le=1e6)] = 100.0


class TrainConfig(Section):
    recipe: str | None = None                 # start from a shipped recipe (`cnnlab recipes`) instead of the defaults
    name: Annotated[Any, BeforeValidator(_run_name), WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"}, {"type": "null"}]})] = None
    # the run id this run was derived from (the page sends it when a doctor's prescription for that run was
    # applied), so Runs can show a run's lineage; recorded only, never read by training
    parent: Annotated[str, Field(max_length=200)] | None = None
    # the sweep or rescue the run is a trial of (`sweep:NAME`, `rescue:NAME`): loggers nest it under that parent
    group: Annotated[str, Field(max_length=200)] | None = None
    # start from trained weights: a .safetensors or PyTorch weights file, a training script's checkpoint, or a
    # cnnlab run directory (also written `model: {name: ..., weights: ...}`; docs/training.md "Starting from weights")
    weights: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    weights_partial: bool = False             # body tensors whose shapes differ are left new instead of an error
    finetune: FinetuneConfig | None = None    # freeze, train the head, unfreeze with layer-wise rates
    # score the final weights on the test set; false for a search's trials, which must not read it (needs a
    # validation split: data.val_split)
    evaluate_test: bool = True
    model: Annotated[Any, BeforeValidator(_model), WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]})] = "tutorial"
    data: DataConfig = DataConfig()
    # auto: the data set's defaults, or none in a run of fewer than 5 epochs (cnnlab/config.py)
    augment: Literal["auto", "none"] | AugmentConfig | None = "auto"
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    loss: LossConfig = LossConfig()
    grad_clip: Annotated[float, Field(gt=0, le=1e6)] | None = None    # max global gradient norm
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 10
    # left out: 128, or smaller (down to 32) where the run would make fewer than 1,000 steps (cnnlab/config.py)
    batch_size: Count | None = None
    eval_batch_size: Count = 1000
    # forward/backward each batch in pieces of this many images, summing their gradients into one step
    # (BatchNorm then normalises each piece: "ghost" batch norm); auto: pieces on a CPU, the whole batch on a GPU
    micro_batch: Literal["auto"] | Count | None = None
    seed: Annotated[int, Field(ge=0, le=2 ** 63 - 1)] = 0
    precision: Literal[PRECISIONS] = "auto"   # auto: bf16 where the CPU/GPU has it
    device: Annotated[Any, BeforeValidator(_device), WithJsonSchema(
        {"type": "string", "pattern": r"^(auto|cpu|mps|cuda(:\d{1,2})?)$"})] = "auto"
    channels_last: Literal["auto"] | bool = "auto"
    # torch.compile the training forward/backward; auto: on CUDA, once the first epoch shows that the rest
    # of the run takes 5 minutes or more (on a 2-core CPU it compiled in 18 s and then ran slower than eager;
    # cnnlab/device.py)
    compile: Literal["auto"] | bool = "auto"
    # test-time augmentation where training flips horizontally: true = the image and its mirror;
    # flip_translate = those and both shifted by one pixel up-left and down-right (6 views, Jordan 2024);
    # flip_neighbours = those and the 8 one-pixel shifts (18 views; cnnlab/train/engine.py TTA_SHIFTS)
    tta: bool | Literal["flip_translate", "flip_neighbours"] = True
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None  # torch CPU threads; default: what torch picks
    sync_batchnorm: bool = False              # data-parallel runs: BatchNorm statistics over all ranks' images
    tensorboard: bool = False                 # also log scalars to <run>/tensorboard (as loggers: [tensorboard])
    # where else the run is logged, by name or with options: [mlflow, wandb, tensorboard, csv] (docs/loggers.md)
    loggers: list[Annotated[LoggerConfig, BeforeValidator(_logger_entry), PlainSerializer(_logger_dump),
                            WithJsonSchema({"anyOf": [{"enum": list(LOGGERS)}, LoggerConfig.model_json_schema()]})]] = []
    eval_every: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 1  # epochs between evaluations; the last always is
    average: AverageConfig | None = None         # lookahead / EMA of the weights
    resolution: ResolutionConfig | None = None   # lower resolution in the first epochs
    select: SelectConfig | None = None           # train on the hardest share of each batch


def section_of(owner: type[BaseModel], key: str) -> type[Section] | None:
    """The section a field of `owner` holds (`X` or `X | None`), else None: what `--set a.b=...` may walk into
    where the default is None (`resolution`, `select`, `optimizer.groups.conv`)."""
    annotation = owner.model_fields[key].annotation
    for kind in (annotation, *get_args(annotation)):
        if isinstance(kind, type) and issubclass(kind, Section):
            return kind
    return None


def defaults() -> dict:
    """Every key with its default, as plain data (what a config file may override)."""
    return TrainConfig().model_dump()


AUGMENT_KEYS = {  # what "no augmentation" means for each key
    "crop": 0, "crop_mode": "reflect", "translate": 0, "flip": "none", "rotate": 0, "scale": 0.0,
    "fill": "reflect", "brightness": 0.0, "channel_shift": 0.0, "cutout": 0,
}
assert set(AUGMENT_KEYS) == set(AugmentConfig.model_fields)
