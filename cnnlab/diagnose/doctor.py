"""The run doctor: classify a run from its metrics table and prescribe the next experiment.

`diagnose(rows, num_classes, facts)` is a pure function of the per-epoch rows that `metrics.csv` holds (and,
when given, the model's regularisers and recipe from `facts.run_facts`, so prescriptions name this model's
layers), so it is tested on made-up curves as well as on real runs. The evaluation curve is the validation split when the run
had one, else the per-epoch test evaluation (used here only to describe the run, never to choose anything).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..htmlrepr import block, esc


@dataclass
class Verdict:
    regime: str                 # diverged | chance | lr-too-high | lr-too-low | overfitting | underfitting |
                                # still-improving | good-fit | too-short | unknown | no-data
    headline: str               # one sentence with the run's own numbers
    prescriptions: list[str] = field(default_factory=list)  # next experiments, most promising first
    details: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"Diagnosis: {self.regime} — {self.headline}"]
        lines += [f"  {d}" for d in self.details]
        if self.prescriptions:
            lines.append("Next, in order of expected gain:")
            lines += [f"  {n}. {p}" for n, p in enumerate(self.prescriptions, 1)]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"regime": self.regime, "headline": self.headline, "prescriptions": self.prescriptions,
                "details": self.details}

    def _repr_html_(self) -> str:
        """What `render` says, as a notebook shows it: the regime in bold, the next experiments numbered."""
        details = "".join(f"<li>{esc(d)}</li>" for d in self.details)
        steps = "".join(f"<li>{esc(p)}</li>" for p in self.prescriptions)
        return block(f"<b>Diagnosis: {esc(self.regime)}</b> \u2014 {esc(self.headline)}",
                     f"<ul>{details}</ul>" if details else "",
                     f"<div>Next, in order of expected gain:</div><ol>{steps}</ol>" if steps else "")


def _eval_prefix(rows: list[dict]) -> str | None:
    """The validation curve, unless it stops before the test curve does: a rescue's final run is judged on a
    validation split in the race, then folds those images back into training and is evaluated on the test set
    (its one validation point, read against the last epoch's training accuracy, looked like overfitting)."""
    last = {p: max((i for i, r in enumerate(rows) if r.get(f"{p}_acc") is not None), default=-1)
            for p in ("val", "test")}
    if max(last.values()) < 0:
        return None
    return "val" if last["val"] >= last["test"] else "test"


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


# verdicts whose remedy is more compute (a bigger model, more epochs): a recipe's run is small on purpose
_MORE_COMPUTE = ("underfitting", "still-improving", "good-fit", "too-short")


def diagnose(rows: list[dict], num_classes: int = 10, facts: dict | None = None) -> Verdict:
    verdict = _diagnose(rows, num_classes, facts)
    pretrained = (facts or {}).get("pretrained")
    if pretrained:
        verdict = _from_weights(verdict, pretrained)
    recipe = (facts or {}).get("recipe")
    if recipe and verdict.regime in _MORE_COMPUTE:
        verdict = _within_budget(verdict, recipe)
    return _leaky(verdict, facts or {})


def _leaky(verdict: Verdict, facts: dict) -> Verdict:
    """A test set with training images in it scores the model on what it memorised: say so first."""
    leaks, tests = facts.get("test_in_train") or 0, facts.get("test_images") or 0
    if not leaks:
        return verdict
    share = f" ({leaks / tests:.1%})" if tests else ""
    which = f"{leaks:,} test images{share} are training images" if leaks != 1 else f"1 test image{share} is a training image"
    note = (f"the test accuracy is optimistic: {which} too, so the "
            "model is scored partly on images it trained on")
    fix = ("remove the test images' copies from the training set — `cnnlab data doctor DATA` lists them, and "
           "near copies (resized, re-encoded) too — then train again for an honest test accuracy")
    return Verdict(verdict.regime, verdict.headline, [fix] + verdict.prescriptions, [note] + verdict.details)


def _from_weights(verdict: Verdict, pretrained: dict) -> Verdict:
    """A run that started from trained weights is tuned differently: the body is what holds it back or
    forgets, so what comes first is how much of it trains and how fast."""
    ft = pretrained.get("finetune")
    frozen_all = ft is not None and ft["head_epochs"] == "all"
    if verdict.regime in ("underfitting", "still-improving", "too-short", "lr-too-low"):
        first = ["unfreeze more: the frozen body cannot adapt to these images (finetune: {head_epochs: 2}, then "
                 "every layer trains)"] if frozen_all else \
            ["train the body faster: a smaller spread between the head's rate and the first layer's "
             "(finetune.spread 10), or more epochs after the head's"] if ft else \
            ["fine-tune as a schedule: finetune: {freeze: body, head_epochs: 1} (the new head first, then every "
             "layer at lower rates for the early layers)"]
    elif verdict.regime in ("overfitting", "diverged", "lr-too-high"):
        first = ["lower the body's rate: finetune: {spread: 1000} keeps the early layers closer to the weights, "
                 "or keep the body frozen longer (finetune.head_epochs)"] if ft else \
            ["fine-tune as a schedule rather than at a from-scratch rate: finetune: {freeze: body, head_epochs: 1} "
             "and a lower --lr"]
    else:
        return verdict
    source = str(pretrained["weights"])
    # as written (runs/a); an absolute path, as a web run's is, by its last part: a page never shows the folders
    note = f"this run started from the weights of {Path(source).name if Path(source).is_absolute() else source}"
    return Verdict(verdict.regime, verdict.headline, first + verdict.prescriptions, [note] + verdict.details)


def _within_budget(verdict: Verdict, recipe: dict) -> Verdict:
    """A recipe trains to a FLOP budget: say so before prescribing more compute, and offer first the shipped
    recipe that aims higher on the same data (its cost and accuracy are measured)."""
    what = f" — {recipe['description']}" if recipe.get("description") else ""
    note = (f"this run is recipe {recipe['name']}{what}. Its model size and epochs are its budget: each "
            "step below spends more compute than the recipe does")
    higher = [f"for more accuracy at a measured cost: --recipe {r['name']} — {r['description']}"
              for r in recipe.get("stronger", [])]
    return Verdict(verdict.regime, verdict.headline, higher + verdict.prescriptions, [note] + verdict.details)


def _diagnose(rows: list[dict], num_classes: int, facts: dict | None) -> Verdict:
    if not rows:
        return Verdict("no-data", "the run has no finished epoch to read", ["train at least one epoch"])
    bad = next((r for r in rows if not _finite(r.get("loss"))), None)
    if bad is not None:
        return Verdict("diverged", f"the training loss became {bad.get('loss')} in epoch {bad['epoch']}",
                       ["lower the learning rate 3-10x (run `cnnlab lr-find` to pick one)",
                        "add gradient clipping: --set grad_clip=1.0",
                        "add `batchnorm` after the convolutions, and check the inputs are normalised"])
    prefix = _eval_prefix(rows)
    ev = f"{prefix}_acc" if prefix else None
    evl = f"{prefix}_loss" if prefix else None
    label = {"val": "validation", "test": "test"}.get(prefix, "evaluation")
    losses = [r["loss"] for r in rows]
    accs = [r["acc"] for r in rows if r.get("acc") is not None]
    last = rows[-1]
    chance = 1 / num_classes
    ln_c = math.log(num_classes)
    n = len(rows)
    lrs = [r["lr"] for r in rows if _finite(r.get("lr"))]

    # 1. stuck at chance. Three causes leave that same flat curve; the epochs around it tell them apart.
    final_eval = last.get(ev) if ev else None
    if accs[-1] < 1.5 * chance and (final_eval is None or final_eval < 1.5 * chance) and losses[-1] > 0.9 * ln_c:
        lr_note = f" (learning rate {max(lrs):.3g})" if lrs else ""
        # a network knocked dead by a huge step: early on the loss jumped well above ln(C) or the accuracy was
        # above chance, then it fell back to a constant guess (seen with SGD lr 0.9 on Fashion-MNIST)
        spiked = max(losses[:2]) > 1.1 * ln_c
        learned_then_lost = max(accs) > 2 * chance
        if n >= 2 and (spiked or learned_then_lost):
            what = (f"the training loss jumped to {max(losses[:2]):.3f} (above ln({num_classes}) = {ln_c:.3f}) "
                    if spiked else f"training accuracy reached {max(accs):.3f} ")
            return Verdict("lr-too-high", f"{what}early on, then the network fell back to chance level "
                           f"(accuracy {accs[-1]:.3f}, loss {losses[-1]:.3f}): a step this large{lr_note} "
                           "knocked it into a state where every image gets the same guess",
                           ["lower the learning rate 10x (run `cnnlab lr-find` to pick one)",
                            "use a warm-up schedule (schedule.name: onecycle or warmup_cosine)",
                            "add gradient clipping (--set grad_clip=1.0) and `batchnorm` after the convolutions",
                            "if a 10x lower rate stays at chance too, run `cnnlab sanity CONFIG`"])
        # a healthy network with a tiny step: the loss is still at ln(C) but falls in every single epoch;
        # a dead or broken one wanders (seen: lr 1e-5 fell 2.30814 -> 2.30770 in 5 straight steps; a
        # saturated-sigmoid net went 2.30464 -> 2.30458 -> 2.30460)
        steady = n >= 3 and all(losses[i] < losses[i - 1] for i in range(1, n))
        if steady:
            return Verdict("lr-too-low", f"the training loss fell in every one of {n} epochs, but only from "
                           f"{losses[0]:.4f} to {losses[-1]:.4f}, still at ln({num_classes}) = {ln_c:.3f}: the "
                           f"network learns, far too slowly{lr_note}",
                           ["raise the learning rate 10-100x (run `cnnlab lr-find` to pick one)",
                            "if a 10x higher rate leaves the loss at ln(C) too, run `cnnlab sanity CONFIG`: "
                            "the model or the pipeline is broken",
                            "use SGD with momentum 0.9 or Adam, with a one-cycle schedule"])
        return Verdict("chance", f"accuracy {accs[-1]:.3f} ({label} {final_eval if final_eval is not None else 'n/a'}) "
                       f"is chance level (1/{num_classes} = {chance:.3f}) and the loss {losses[-1]:.3f} sits at "
                       f"ln({num_classes}) = {ln_c:.3f}: the network outputs the same guess for every image",
                       ["run `cnnlab sanity CONFIG`: if one batch cannot be memorised, the model or pipeline is broken",
                        "check labels match images (`cnnlab data show NAME`) and inputs are normalised",
                        "check for a dead network: a final sigmoid/softmax, a huge learning rate, or no activations "
                        "(`cnnlab lint`)"])

    # 2. learning rate too high: training loss rises or oscillates
    # (rises must also be large in absolute terms: a loss near zero wobbles by ratios that mean nothing)
    rises = [i for i in range(1, n) if losses[i] > losses[i - 1] * 1.02 and losses[i] - losses[i - 1] > 0.02]
    ended_high = losses[-1] > min(losses) * 1.15 and losses[-1] - min(losses) > 0.05
    if n >= 3 and (ended_high or len(rises) >= max(2, (n - 1) // 2)):
        worst = max(rises, key=lambda i: losses[i] - losses[i - 1]) if rises else n - 1
        return Verdict("lr-too-high", f"the training loss rose in {len(rises)} of {n - 1} epochs (e.g. "
                       f"{losses[worst - 1]:.3f} -> {losses[worst]:.3f} at epoch {rows[worst]['epoch']}) and ends at "
                       f"{losses[-1]:.3f}, above its best {min(losses):.3f}",
                       ["lower the learning rate 3x (or run `cnnlab lr-find`)",
                        "use a warm-up schedule (schedule.name: onecycle or warmup_cosine)",
                        "add gradient clipping: --set grad_clip=1.0"])

    # 3. learning rate too low: loss barely moves
    drop = (losses[0] - losses[-1]) / max(losses[0], 1e-12)
    if n >= 3 and drop < 0.05 and accs[-1] < 0.9:
        return Verdict("lr-too-low", f"the training loss moved only {drop:.1%} in {n} epochs "
                       f"({losses[0]:.3f} -> {losses[-1]:.3f})",
                       ["raise the learning rate 3-10x (run `cnnlab lr-find` to pick one)",
                        "use SGD with momentum 0.9 or Adam, with a one-cycle schedule",
                        "add `batchnorm` after the convolutions so higher learning rates are stable"])

    if not ev:
        return Verdict("unknown", "the run has no validation or test curve to compare against", [])
    if n < 3:  # one or two points make no trend: calling under- or overfitting here would be a guess
        return Verdict("too-short", f"{n} epoch{'s' if n > 1 else ''} cannot show a trend (training accuracy "
                       f"{accs[-1]:.3f}, {label} {f'{last[ev]:.4f}' if last.get(ev) is not None else 'n/a'})",
                       [f"train at least 5 epochs (--epochs {max(5, 2 * n)}), then ask again"])
    ev_rows = [r for r in rows if r.get(ev) is not None]
    ev_acc = [r[ev] for r in ev_rows]
    ev_loss = [r[evl] for r in ev_rows]
    best_i = max(range(len(ev_acc)), key=lambda i: ev_acc[i])
    best_loss_i = min(range(len(ev_loss)), key=lambda i: ev_loss[i])
    gap = accs[-1] - ev_acc[-1]

    # 4. a rate that never decays: training creeps on but the evaluation curve wobbles instead of settling
    # (seen: Fashion-MNIST at a constant 0.2 ends at 0.76 test, against 0.89 for the default one-cycle)
    jumps = [i for i in range(max(1, len(ev_loss) - 2), len(ev_loss)) if ev_loss[i] > ev_loss[i - 1] * 1.02]
    wobbles = bool(jumps)
    if (len(lrs) == n and n >= 4 and max(lrs) > 0 and lrs[-1] >= 0.5 * max(lrs) and wobbles
            and losses[-1] <= min(losses) * 1.01 and accs[-1] < 0.95 and gap < 0.05):  # a wide gap: overfitting
        return Verdict("lr-too-high", f"the learning rate stayed at {lrs[-1]:.3g} to the end: training loss still "
                       f"creeps down ({losses[-1]:.3f}) but {label} loss still jumps between epochs "
                       f"({ev_loss[jumps[-1] - 1]:.3f} -> {ev_loss[jumps[-1]]:.3f} at epoch {ev_rows[jumps[-1]]['epoch']}) "
                       "instead of settling",
                       ["decay the learning rate: schedule.name onecycle or cosine (the last epochs at a small rate "
                        "settle the weights; that is usually worth several points)",
                        "or lower the learning rate 3x (run `cnnlab lr-find` to pick one)"],
                       [f"{label} accuracy {ev_acc[-1]:.3f} at the end, best {ev_acc[best_i]:.3f} at epoch "
                        f"{ev_rows[best_i]['epoch']}"])

    # 5. overfitting: the evaluation curve turned while training kept improving
    turned = best_loss_i < len(ev_loss) - 1 and ev_loss[-1] > ev_loss[best_loss_i] * 1.05
    if (turned and gap > 0.05) or gap > 0.15:
        since = ev_rows[best_loss_i]["epoch"] if turned else ev_rows[best_i]["epoch"]
        train_trend = "rising" if accs[-1] > accs[max(0, since - 1)] else "flat"
        ev_trend = "falling" if ev_acc[-1] < ev_acc[best_i] - 0.005 else "flat"
        return Verdict("overfitting", f"overfitting since epoch {since}: training accuracy {accs[-1]:.2f} and "
                       f"{train_trend}, {label} {ev_acc[-1]:.2f} and {ev_trend}; gap {gap:.2f}",
                       _overfitting_prescriptions(facts),
                       [f"best {label} accuracy {ev_acc[best_i]:.3f} at epoch {ev_rows[best_i]['epoch']}; "
                        f"{label} loss lowest ({ev_loss[best_loss_i]:.3f}) at epoch {ev_rows[best_loss_i]['epoch']}"])

    # 6. still improving: the evaluation curve was still climbing at the end
    tail = max(1, n // 5)
    if len(ev_acc) > tail:
        slope = (ev_acc[-1] - ev_acc[-1 - tail]) / tail
        # a model that fits few of its own training images and creeps up slowly is too small first, short second
        too_small = accs[-1] < 0.7 and gap < 0.03 and slope < 0.015
        if slope > 0.004 and best_i >= len(ev_acc) - 2 and not too_small:
            return Verdict("still-improving", f"{label} accuracy rose {slope * 100:.1f} points "
                           + (f"per epoch over the last {tail} epochs" if tail > 1 else "in the last epoch")
                           + f", to {ev_acc[-1]:.3f}, and had not levelled off",
                           [f"train longer: --epochs {int(n * 2)} (the schedule stretches with it)",
                            "then check again for over- or underfitting"])

    # 7. underfitting: training itself is not good, and the gap is small
    if accs[-1] < 0.95 and gap < 0.03:
        still_rising = len(ev_acc) > tail and ev_acc[-1] - ev_acc[-1 - tail] > 0.004 * tail
        return Verdict("underfitting", f"training accuracy {accs[-1]:.2f} is close to {label} accuracy "
                       f"{ev_acc[-1]:.2f} (gap {gap:+.2f}): the model does not fit even the training images",
                       _underfitting_prescriptions(facts, still_rising),
                       [f"best {label} accuracy {ev_acc[best_i]:.3f} at epoch {ev_rows[best_i]['epoch']}"])

    return Verdict("good-fit", f"training {accs[-1]:.2f} and {label} {ev_acc[-1]:.2f} accuracy (gap {gap:+.2f}); "
                   f"the {label} curve levelled off without turning",
                   ["for more accuracy: a wider or deeper model (e.g. resnet9), with the same recipe",
                    "or more epochs with stronger augmentation (cutout, scale)"])


def _layers(items: list[dict]) -> str:
    """[{'layer': '21', 'rate': 0.5}, {'layer': '23', 'rate': 0.5}] -> '0.5 at layers 21 and 23'."""
    by_rate: dict[float, list[str]] = {}
    for d in items:
        by_rate.setdefault(d["rate"], []).append(d["layer"])
    parts = []
    for rate, where in by_rate.items():
        names = where[0] if len(where) == 1 else ", ".join(where[:-1]) + " and " + where[-1]
        parts.append(f"{rate:g} at layer{'s' if len(where) > 1 else ''} {names}")
    return ", ".join(parts)


def _underfitting_prescriptions(facts: dict | None, still_rising: bool) -> list[str]:
    longer = ("train longer (the curve was still rising)" if still_rising
              else "train longer, or with a higher learning rate")
    if facts is None:
        return ["make the model bigger: more filters per conv (double them), or another conv block", longer,
                "remove excess regularisation: dropout above 0.3 in conv blocks, heavy weight decay or augmentation",
                "add `batchnorm` after the convolutions"]
    out = []
    # the model's own regularisers come first when they are heavy: they hold training accuracy down for free
    heavy = [d for d in facts["dropout"] if d["rate"] >= 0.3]
    if heavy:
        out.append(f"halve the heavy dropout ({_layers(heavy)}): the model cannot fit its training images "
                   "through it, and it costs nothing to try")
    if facts["weight_decay"] > 1e-3:
        out.append(f"lower the weight decay ({facts['weight_decay']:g}) to 5e-4")
    strong = [k for k in facts["augment"] if k in ("rotate", "scale", "cutout", "translate", "brightness",
                                                   "channel_shift")]
    if strong:
        out.append(f"lighten the augmentation ({', '.join(strong)}): keep crop and flip")
    filters = list(dict.fromkeys(facts["conv_filters"]))
    if filters:
        now = "-".join(str(f) for f in filters)
        out.append(f"make the model bigger: double the filters of every conv ({now} -> "
                   f"{'-'.join(str(2 * f) for f in filters)}; about 4x the compute), or add a conv block")
    else:
        out.append("make the model bigger: more filters per conv, or another conv block")
    out.append(longer)
    if not facts["batchnorm"] and facts["dropout"]:  # the rescue's prescription too (cnnlab/rescue/prior.py)
        out.append("add `batchnorm` after the convolutions and take the dropout out: batchnorm regularises in its "
                   "place (beside it, halved dropout cost the Keras CIFAR-10 net 3 points: docs/rescue.md)")
    elif not facts["batchnorm"]:
        out.append("add `batchnorm` after the convolutions")
    return out


def _overfitting_prescriptions(facts: dict | None) -> list[str]:
    if facts is None:
        return ["add data augmentation (augment: crop 4 + flip horizontal for natural images; rotate/scale for more)",
                "add weight decay (optimizer.weight_decay: 5e-4) or dropout before the dense head",
                "shrink the dense head: `global_avgpool` instead of `flatten`, or fewer units",
                "use a validation split with early stopping (data.val_split 0.1, early_stopping.patience 5)"]
    out = []
    if not facts["augment"]:
        out.append("add data augmentation: the run used none (augment: crop 4 + flip horizontal for natural "
                   "images, crop 2 for digits)")
    elif "cutout" not in facts["augment"] and "scale" not in facts["augment"]:
        out.append(f"strengthen the augmentation (now {', '.join(facts['augment'])}): add augment.cutout 8 "
                   "or augment.scale 0.1")
    head = facts.get("dense_head")
    if head:
        out.append(f"shrink the dense head: layer {head['layer']} (dense {head['units']}) holds "
                   f"{head['share']:.0%} of the parameters; use `global_avgpool` instead of `flatten`, or fewer units")
    if facts["weight_decay"] == 0:
        out.append("add weight decay: optimizer.weight_decay 5e-4 (the run used none)")
    if not facts["dropout"]:
        out.append("add dropout (0.3-0.5) before the dense layers")
    if facts["label_smoothing"] == 0:
        out.append("add label smoothing: loss.label_smoothing 0.1")
    out.append("use a validation split with early stopping (data.val_split 0.1, early_stopping.patience 5)")
    return out
