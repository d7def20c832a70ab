"""The training loop. It tells what happens as the run's events (cnnlab/events.py: epoch_start, batch_end,
evaluation, epoch_end, and a log line when it compiles), into the Emitter it is given: listeners hook in there.

The whole data set sits on the device as uint8; each batch is indexed, augmented and normalised there.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time

import torch
import torch.nn.functional as F

from .. import faults
from ..data.diskcache import note, on_disk, take
from ..events import Emitter
from ..device import Placement, grad_scaler, micro_batch_size, should_compile, synchronize
from .distributed import World, all_sum, any_rank, shard
from ..errors import UserError
from ..schema.config import TrainConfig
from .augment import Augmenter, BatchResizer, resized_images
from .averaging import WeightAverage
from .filtering import hardest
from .finetune import Finetune, rate_scales
from .optim import Plateau, apply_constraints, group_lr, lr_factor, make_optimizer


BATCH_EVENT_INTERVAL = 0.2  # seconds between batch_end events
# batch_end's images/s is over the last batches that trained for this long, across epochs: one batch's figure
# fell from ~3,600 to ~160 at each epoch's first batch (course-net on the digit sample in the page, issue 36)
THROUGHPUT_WINDOW = 2.0  # seconds


class Throughput:
    """Images per second over the last `window` seconds of training batches (at least the last batch): a
    figure that a slow batch (an epoch's first) moves a little, not to a tenth."""

    def __init__(self, window: float):
        self.window, self.batches = window, []  # [(images, seconds)], newest last

    def add(self, images: int, seconds: float) -> None:
        self.batches.append((images, seconds))
        total = 0.0
        for i in range(len(self.batches) - 1, -1, -1):
            total += self.batches[i][1]
            if total >= self.window:
                del self.batches[:i]
                break

    def rate(self) -> float | None:
        seconds = sum(s for _, s in self.batches)
        return sum(n for n, _ in self.batches) / seconds if seconds > 0 else None


class Diverged(UserError):
    """The loss became NaN or infinite."""


class StopRequested(Exception):
    """Someone asked the run to stop (Job.stop, `cnnlab stop`, SIGTERM); raised between batches."""


def classification_loss(output: torch.Tensor, target: torch.Tensor, smoothing: float, probabilities: bool,
                        reduction: str = "mean"):
    output = output.float()
    if not probabilities:
        return F.cross_entropy(output, target, label_smoothing=smoothing, reduction=reduction)
    # The model ends in softmax: take the log of its probabilities, as Keras does with from_logits=False.
    logp = output.clamp_min(1e-7).log()
    nll = F.nll_loss(logp, target)
    loss = (1 - smoothing) * nll - smoothing * logp.mean(dim=1).mean() if smoothing else nll
    return loss * len(target) if reduction == "sum" else loss


# Test-time views beyond the image and its mirror: (down, right) pixel shifts with their weights, each shift
# taken with its mirror too; the image and its mirror weigh what the shifts leave. The edge is reflected.
TTA_SHIFTS = {
    # the image and its mirror weigh half; one pixel up-left and down-right a quarter each (Jordan 2024)
    "flip_translate": (((-1, -1), 0.25), ((1, 1), 0.25)),
    # the image and its mirror weigh half, the 8 one-pixel neighbours 1/16 each: 18 views; for cifar10-fast at
    # 24x24, +0.11 points over flip_translate on held-out images (bench/tta_choice.py) but none on the test set
    # (bench/tta_test.py: 0.9369 against 0.9370, docs/recipes.md), so no recipe uses it
    "flip_neighbours": tuple(((dy, dx), 1 / 16) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx),
}


def _shifts(tta) -> tuple:
    """The shift table of a truthy `tta`: true (image and mirror only), a name in TTA_SHIFTS, or a table."""
    return TTA_SHIFTS[tta] if isinstance(tta, str) else () if tta is True else tuple(tta)


def view_count(tta) -> int:
    """Forwards per image that `tta` costs."""
    return 2 * (1 + len(_shifts(tta))) if tta else 1


def _views(model, xb: torch.Tensor, tta, probabilities: bool, plain: torch.Tensor | None = None) -> torch.Tensor:
    """Class probabilities of a batch, averaged over the test-time views `tta` asks for (false, true: the image
    and its mirror, a name in TTA_SHIFTS, or such a table itself); `plain`, where given, is the batch's
    probabilities as it is (no view), already computed."""
    def predict(v):
        out = model(v).float()
        return out if probabilities else out.softmax(1)

    def mirrored(v, known=None):
        return 0.5 * ((predict(v) if known is None else known) + predict(v.flip(3)))
    if not tta:
        return predict(xb) if plain is None else plain
    shifts = _shifts(tta)
    rest = 1.0 - sum(weight for _, weight in shifts)
    total = rest * mirrored(xb, plain)
    reach = max((max(abs(dy), abs(dx)) for (dy, dx), _ in shifts), default=0)
    if reach:
        padded = F.pad(xb, (reach,) * 4, mode="reflect")
        h, w = xb.shape[2:]
        for (dy, dx), weight in shifts:  # content moved by (dy, dx): the window starts at reach - (dy, dx)
            top, left = reach - dy, reach - dx
            total = total + weight * mirrored(padded[:, :, top:top + h, left:left + w])
    return total


def eval_batch_size(cfg: TrainConfig, placement: Placement) -> int:
    """Images per evaluation forward: `eval_batch_size`, in `micro_batch`'s pieces (on the 2-core Xeon a forward
    of the cifar10-90 net ran at 7200 img/s at batch 2000 and 8300 at 250; the full airbench net, 4900 and 4600)."""
    return micro_batch_size(cfg.micro_batch, cfg.eval_batch_size, placement)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, augmenter: Augmenter, placement: Placement,
             batch_size: int = 1000, tta=False, probabilities: bool = False, plain: torch.Tensor | None = None) -> dict:
    """Loss and accuracy over (x, y); with `tta` (true, a name in TTA_SHIFTS or a shift table), averaged over
    test-time views.
    `plain`: the probabilities of x as it is, from an evaluation of the same weights (`probs` of an earlier
    call), so that a test-time augmentation does not compute that view again."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    all_probs = []
    try:
        for start in range(0, len(x), batch_size):
            xb = augmenter.eval_batch(x[start:start + batch_size])
            note(x, xb.shape[0] * x[0].nbytes)  # a memory-mapped set's pages are handed back as it is read
            yb = y[start:start + batch_size].to(placement.device)
            known = None if plain is None else plain[start:start + batch_size].to(placement.device)
            with placement.autocast():
                probs = _views(model, xb, tta, probabilities, known)
            total_loss += F.nll_loss(probs.clamp_min(1e-7).log(), yb, reduction="sum").item()
            correct += (probs.argmax(1) == yb).sum().item()
            count += len(yb)
            all_probs.append(probs.cpu())
    finally:
        model.train(was_training)
    return {"loss": total_loss / max(count, 1), "acc": correct / max(count, 1), "probs": torch.cat(all_probs)}


@contextlib.contextmanager
def _running_stats_per_batch(norms: list, pieces: int):
    """BatchNorm's running statistics forget as fast per batch when it comes in `pieces`: each piece's momentum
    m' = 1 - (1 - m)^(1/pieces), so k updates keep the old statistics' weight (1 - m) of one update."""
    if pieces <= 1 or not norms:
        yield
        return
    saved = [bn.momentum for bn in norms]
    try:
        for bn in norms:
            if bn.momentum is not None:
                bn.momentum = 1 - (1 - bn.momentum) ** (1 / pieces)
        yield
    finally:
        for bn, momentum in zip(norms, saved):
            bn.momentum = momentum


class Trainer:
    def __init__(self, model, dataset, config: TrainConfig, augmenter: Augmenter, placement: Placement,
                 events: Emitter | None = None, should_stop=lambda: False, world: World = World(), wrapped=None):
        self.model, self.data, self.config = model, dataset, config
        self.world = world
        self.forward_model = wrapped if wrapped is not None else model  # DDP's wrapper trains; the model is saved
        self.norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        self.augmenter, self.placement = augmenter, placement
        self.events = events if events is not None else Emitter()
        self._last_batch_event = 0.0
        self.throughput = Throughput(THROUGHPUT_WINDOW)
        self.should_stop = should_stop  # asked after every batch
        self.epochs = config.epochs
        self.batch_size = config.batch_size
        # made before anything is frozen: every parameter has its group, and a frozen one simply gets no gradient
        self.finetune = Finetune(model, config.finetune, config.epochs) if config.finetune else None
        self.optimizer = make_optimizer(model, config.optimizer,
                                        rate_scales(model, config.finetune) if config.finetune else None)
        if self.finetune is not None:
            self.finetune.apply(0)
        self.base_lr = config.optimizer.lr
        self.scaler = grad_scaler(placement)
        self.plateau = Plateau(config.schedule.patience, config.schedule.factor)
        self.generator = torch.Generator().manual_seed(config.seed)
        # Ranks share the batch order but draw their own augmentations; one process keeps one generator.
        self.order_generator = torch.Generator().manual_seed(config.seed) if world.distributed else self.generator
        if world.distributed:
            self.generator.manual_seed(config.seed + 1 + world.rank)
        n = len(dataset.train_x)
        # Drop a last batch of 1: BatchNorm cannot normalise a single image.
        self.batches_per_epoch = n // self.batch_size + (1 if n % self.batch_size > 1 else 0)
        self.epoch = 0            # epochs completed
        self.step = 0
        self.history: list[dict] = []
        self.elapsed = 0.0        # training wall time so far, across resumes
        self.stop_reason = None
        self.best = {"val_loss": math.inf, "epoch": 0, "state": None, "bad_epochs": 0}
        self.last_evaluation = None  # {"split", "step", "probs"} of the latest epoch-end evaluation
        self._compile_checked = False  # compile: auto decides once, after the first epoch (see fit)
        self.compiled_after = None     # {"epoch", "remaining_s"} where that decided to compile
        self.probabilities = getattr(model, "outputs_probabilities", False)
        # a memory-mapped set (larger than memory) stays where it is: each batch goes to the device (`take`)
        self.train_x = dataset.train_x if on_disk(dataset.train_x) else dataset.train_x.to(placement.device)
        self.train_y = dataset.train_y.to(placement.device)
        self.total_steps = self.epochs * self.batches_per_epoch
        self._small_images = None  # the training set at `resolution`'s size, while its epochs last
        self.average = WeightAverage(model, config.average) if config.average else None
        if self.average is not None and config.average.mode == "ema" and config.early_stopping.patience:
            # early stopping keeps the best epoch's raw weights, while an EMA stands for the end of training
            raise UserError("average: {mode: ema} and early_stopping cannot go together (the average becomes "
                            "the weights only when training ends); use average: {mode: lookahead}, or one of them")

    # ------------------------------------------------------------------ state for checkpoints
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "history": self.history, "elapsed": self.elapsed,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "plateau": dict(self.plateau.state),
                "rng_torch": torch.get_rng_state(), "rng_generator": self.generator.get_state(),
                "rng_order": self.order_generator.get_state(), "world_size": self.world.size,
                "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "best": {k: v for k, v in self.best.items()},
                "average": self.average.state_dict() if self.average else None,
                "finetune_new": self.finetune.new_names if self.finetune else None}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.finetune is not None and state.get("finetune_new"):  # as the weights left them, at the start
            self.finetune.leave_trainable(state["finetune_new"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, IndexError) as exc:
            raise UserError(f"the checkpoint's optimizer state does not fit this run's optimizer ({exc}); it was "
                            "written by another cnnlab version or optimizer config: start the run again, or resume "
                            "it with the version that wrote it") from None
        self.scaler.load_state_dict(state["scaler"])
        self.plateau.state = dict(state["plateau"])
        torch.set_rng_state(state["rng_torch"])
        self.generator.set_state(state["rng_generator"])
        if self.world.distributed and state.get("world_size") == self.world.size and state.get("rng_order") is not None:
            self.order_generator.set_state(state["rng_order"])
        elif self.world.distributed:  # resumed on another number of ranks: the order goes on from the epoch's seed
            self.order_generator.manual_seed(self.config.seed + 1_000_003 * state["epoch"])
            self.generator.manual_seed(self.config.seed + 1 + self.world.rank + 1_000_003 * state["epoch"])
        if state.get("rng_cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.history, self.elapsed = list(state["history"]), state["elapsed"]
        self.best = dict(state["best"])
        if self.average is not None:
            if state.get("average") is None:
                raise UserError("the checkpoint was written without `average`: resume it with the config it "
                                "started with, or start the run again")
            self.average.load_state_dict(state["average"])

    # ------------------------------------------------------------------ the loop
    def _tell_batch(self) -> None:
        """batch_end at most every BATCH_EVENT_INTERVAL s, at each epoch's last batch and at the steps a logger
        asks for: live curves without a float() (a GPU sync) every step; nothing where nobody listens (ranks
        above 0)."""
        now = time.perf_counter()
        if not self.events.listeners:
            return
        due = now - self._last_batch_event >= BATCH_EVENT_INTERVAL or self.batch_index + 1 == self.batches_per_epoch
        if not due and not self.events.wants_step(self.step):
            return
        self._last_batch_event = now
        self.events.emit("batch_end", {"epoch": self.epoch + 1, "batch": self.batch_index + 1,
                                       "batches": self.batches_per_epoch, "step": self.step,
                                       "lr": self.optimizer.param_groups[0]["lr"], **self.running_stats()})

    def current_lr(self, progress: float) -> float:
        return self.base_lr * lr_factor(self.config.schedule, progress, self.epochs) * self.plateau.state["scale"]

    def running_stats(self) -> dict:
        seen = max(self._seen, 1)
        elapsed = max(time.perf_counter() - self._epoch_start, 1e-9)
        rate = self.throughput.rate()
        return {"loss": float(self._loss_sum) / seen, "acc": float(self._correct) / seen,
                "img_per_s": rate if rate is not None else self._seen / elapsed}

    def _train_epoch(self) -> dict:
        model, placement, cfg = self.forward_model, self.placement, self.config
        model.train()
        if self.finetune is not None:
            self.finetune.apply(self.epoch)
        n = len(self.train_x)
        order = torch.randperm(n, generator=self.order_generator).to(placement.device)
        smoothing, reduction = cfg.loss.label_smoothing, cfg.loss.reduction
        clip = cfg.grad_clip
        for module in self.model.modules():  # e.g. a whitening layer's bias trains for its first epochs only
            if hasattr(module, "train_bias"):
                module.train_bias(self.epoch)
        # a CPU .item() costs nothing, a GPU one stalls; with several ranks the check is collective, at epoch end
        check_every_step = placement.device.type == "cpu" and not self.world.distributed
        self._loss_sum = torch.zeros((), device=placement.device)
        self._correct = torch.zeros((), device=placement.device, dtype=torch.long)
        self._seen = 0
        self._epoch_start = batch_started = time.perf_counter()
        lr = self.current_lr(self.epoch)
        images = self._training_images(self.epoch)
        resize = self._batch_resizer(self.epoch)
        for self.batch_index in range(self.batches_per_epoch):
            idx = shard(order[self.batch_index * self.batch_size:(self.batch_index + 1) * self.batch_size], self.world)
            # a memory-mapped set (cnnlab/data/diskcache.py) is read here, through the page cache
            xb = self.augmenter.train_batch(take(images, idx), self.generator, idx, self.epoch)
            if resize is not None:
                xb = resize(xb)
            yb = self.train_y[idx]
            progress = self.epoch + self.batch_index / self.batches_per_epoch
            lr = self.current_lr(progress)
            for group in self.optimizer.param_groups:
                group["lr"] = group_lr(group, lr, self.base_lr, progress)
            self.optimizer.zero_grad(set_to_none=True)
            loss, correct = self._forward_backward(model, xb, yb, smoothing, reduction)
            if check_every_step and not math.isfinite(loss.item()):
                self._diverged(loss.item())
            if clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            apply_constraints(model)
            self.step += 1
            if self.average is not None:
                last = self.step == self.total_steps
                self.average.update(self.step, self.step / self.total_steps, last)
                if last and self.average.cfg.mode == "ema":
                    self.average.finish()  # before the last evaluation, which then scores the final weights
            self._loss_sum += loss * (1 if reduction == "sum" else len(yb))
            self._correct += correct
            self._seen += len(yb)
            now = time.perf_counter()
            self.throughput.add(len(yb), now - batch_started)
            batch_started = now
            self._tell_batch()
            faults.hit("batch")
            if self._stop_now():
                raise StopRequested(f"stopped by request during epoch {self.epoch + 1}")
        synchronize(placement.device)
        seconds = time.perf_counter() - self._epoch_start
        if self.world.distributed:  # the epoch's numbers are over all ranks' shares
            loss_sum, correct, seen = all_sum([float(self._loss_sum), float(self._correct), self._seen],
                                              placement.device)
            self._loss_sum, self._correct, self._seen = torch.tensor(loss_sum), torch.tensor(correct), int(seen)
        stats = self.running_stats()
        if not math.isfinite(stats["loss"]):
            self._diverged(stats["loss"])
        return {"lr": lr, "loss": stats["loss"], "acc": stats["acc"], "train_seconds": seconds,
                "img_per_s": self._seen / seconds}

    def input_size(self, epoch: int) -> int | None:
        """The training images' height in this epoch where `resolution` lowers it, else None (as they are)."""
        res = self.config.resolution
        return res.pixels(self.train_x.shape[2]) if res is not None and res.is_small(epoch, self.epochs) else None

    def _training_images(self, epoch: int) -> torch.Tensor:
        """The training set as this epoch sees it: resized once for a `resolution` phase and kept for its
        epochs, dropped after it (with `resize: batch` the full-size set: each batch is resized instead)."""
        size = self.input_size(epoch)
        if size is None or self.config.resolution.resize == "batch":
            self._small_images = None
            return self.train_x
        if self._small_images is None or self._small_images.shape[2] != size:
            self._small_images = resized_images(self.train_x, size)
        return self._small_images

    def _batch_resizer(self, epoch: int) -> BatchResizer | None:
        """For `resolution: {resize: batch}`, what resizes each augmented batch in this epoch; else None."""
        size = self.input_size(epoch)
        if size is None or self.config.resolution.resize != "batch":
            return None
        return BatchResizer(*self.train_x.shape[2:], size, self.placement.device)

    def selects(self, epoch: int) -> bool:
        select = self.config.select
        return select is not None and select.keep < 1 and epoch >= select.after

    def _forward_backward(self, model, xb, yb, smoothing: float, reduction: str):
        """Gradients of the batch's loss, in pieces of `micro_batch` images; (the loss, correct predictions)."""
        if self.selects(self.epoch):
            piece = micro_batch_size(self.config.micro_batch, len(yb), self.placement)
            xb, yb, losses, correct = hardest(model, xb, yb, self.config.select.keep, piece, self.norms,
                                              self.placement.autocast, smoothing, self.probabilities)
            self._forward_backward_all(model, xb, yb, smoothing, reduction)
            return (losses.sum() if reduction == "sum" else losses.mean()), correct
        return self._forward_backward_all(model, xb, yb, smoothing, reduction)

    def _forward_backward_all(self, model, xb, yb, smoothing: float, reduction: str):
        n = len(yb)
        piece = micro_batch_size(self.config.micro_batch, n, self.placement)
        loss_total = torch.zeros((), device=yb.device)
        correct = torch.zeros((), device=yb.device, dtype=torch.long)
        with _running_stats_per_batch(self.norms, -(-n // piece)):
            for start in range(0, n, piece):
                x, y = xb[start:start + piece], yb[start:start + piece]
                last = start + piece >= n
                # DDP averages gradients over ranks at each backward: only the batch's last piece needs that
                sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
                with sync:
                    with self.placement.autocast():
                        out = model(x)
                    loss = classification_loss(out, y, smoothing, self.probabilities, reduction)
                    share = loss if reduction == "sum" else loss * (len(y) / n)  # a mean over the whole batch
                    self.scaler.scale(share).backward()
                loss_total += share.detach()
                correct += (out.detach().argmax(1) == y).sum()
        return loss_total, correct

    def _stop_now(self) -> bool:
        if not self.world.distributed:
            return self.should_stop()
        if self.batch_index % 10:  # every rank asks at the same batches: the answer is a collective
            return False
        return any_rank(self.should_stop(), self.placement.device)

    def _diverged(self, value: float) -> None:
        where = f"epoch {self.epoch + 1}, step {self.batch_index + 1}/{self.batches_per_epoch}"
        self.history.append({"epoch": self.epoch + 1, "lr": self.current_lr(self.epoch), "loss": value,
                             "acc": None, "seconds": time.perf_counter() - self._epoch_start, "img_per_s": None})
        self.events.emit("epoch_end", {"row": dict(self.history[-1]), "epochs": self.epochs, "eta_s": None,
                                       "diverged": True})
        raise Diverged(f"the training loss became {value} at {where} (lr {self.current_lr(self.epoch):.3g}). "
                       "Try a lower learning rate (--lr), gradient clipping (--set grad_clip=1.0), or BatchNorm "
                       f"after the convolutions. The last good checkpoint (epoch {self.epoch}) is kept.")

    def _evaluate_epoch(self) -> dict:
        data, cfg = self.data, self.config
        if data.val_x is not None:
            x, y, prefix = data.val_x, data.val_y, "val"
        elif not cfg.evaluate_test:
            raise UserError("evaluate_test: false keeps the test set unread, so the epochs need a validation "
                            "split to be scored on: set data.val_split (e.g. 0.1)")
        else:
            x, y, prefix = data.test_x, data.test_y, "test"
        if self.world.distributed:  # each rank scores its share; the sums make the whole set's figures
            part = shard(torch.arange(len(x)), self.world)
            r = evaluate(self.model, x[part], y[part], self.augmenter, self.placement, eval_batch_size(cfg, self.placement),
                         probabilities=self.probabilities)
            loss, correct, count = all_sum([r["loss"] * len(part), r["acc"] * len(part), len(part)],
                                           self.placement.device)
            return {f"{prefix}_loss": loss / count, f"{prefix}_acc": correct / count}
        result = evaluate(self.model, x, y, self.augmenter, self.placement, eval_batch_size(cfg, self.placement),
                          probabilities=self.probabilities)
        # the final test-time augmentation of these weights reuses their plain view (cnnlab/train/finish.py)
        self.last_evaluation = {"split": prefix, "step": self.step, "probs": result["probs"]}
        return {f"{prefix}_loss": result["loss"], f"{prefix}_acc": result["acc"]}

    def _early_stop(self, row: dict) -> bool:
        patience = self.config.early_stopping.patience
        if row.get("val_loss") is None:
            return False
        if row["val_loss"] < self.best["val_loss"] - 1e-4:
            self.best.update(val_loss=row["val_loss"], epoch=row["epoch"], bad_epochs=0,
                             state=copy.deepcopy(self.model.state_dict()) if patience else None)
        else:
            self.best["bad_epochs"] += 1
        return bool(patience) and self.best["bad_epochs"] >= patience

    def _compile_if_it_pays(self, epoch_seconds: float) -> None:
        """`compile: auto`: after the first epoch this process trains, compile the training forward when the
        epochs left would take long enough, eager, to pay for compiling (cnnlab/device.py should_compile)."""
        if self._compile_checked:
            return
        self._compile_checked = True
        if self.config.compile != "auto" or self.epoch >= self.epochs:
            return
        remaining = epoch_seconds * (self.epochs - self.epoch)
        if should_compile("auto", self.placement, remaining):
            self.forward_model = torch.compile(self.forward_model)
            self.compiled_after = {"epoch": self.epoch, "remaining_s": remaining}
            self.events.emit("log", {"text": f"compile: auto: the {self.epochs - self.epoch} epochs left would take "
                                             f"{remaining / 60:.0f} min eager; compiling the model for them "
                                             "(the next step waits for it)"})

    def fit(self) -> None:
        while self.epoch < self.epochs:
            start = time.perf_counter()
            self.events.emit("epoch_start", {"epoch": self.epoch + 1, "epochs": self.epochs})
            stats = self._train_epoch()
            row = {"epoch": self.epoch + 1, "lr": stats["lr"], "loss": stats["loss"], "acc": stats["acc"]}
            every = self.config.eval_every
            if (self.epoch + 1) % every == 0 or self.epoch + 1 == self.epochs:
                scores = self._evaluate_epoch()
                row.update(scores)
                split = next(iter(scores)).split("_")[0]
                self.events.emit("evaluation", {"epoch": self.epoch + 1, "split": split,
                                                "loss": scores[f"{split}_loss"], "acc": scores[f"{split}_acc"]})
            row["seconds"] = time.perf_counter() - start
            row["img_per_s"] = stats["img_per_s"]
            self.elapsed += row["seconds"]
            self.history.append(row)
            self.epoch += 1
            if self.config.schedule.name == "plateau" and row.get("val_loss") is not None:
                self.plateau.update(row["val_loss"])
            stop = self._early_stop(row)
            self._compile_if_it_pays(row["seconds"])
            per_epoch = sum(r["seconds"] for r in self.history) / len(self.history)
            self.events.emit("epoch_end", {"row": dict(row), "epochs": self.epochs,
                                           "eta_s": per_epoch * (self.epochs - self.epoch)})
            if stop:
                self.stop_reason = (f"early stopping: val_loss has not improved for "
                                    f"{self.config.early_stopping.patience} epochs; restored the weights "
                                    f"of epoch {self.best['epoch']}")
                self.model.load_state_dict(self.best["state"])
                self.last_evaluation = None  # it scored weights that were just replaced
                break
