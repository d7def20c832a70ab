"""A rescue's compute budget and how a race of candidates shares it.

The budget is compute: FLOP of what is trained, 6 per MAC per image (forward and backward, as recipes count it:
cnnlab/app/recipes.py), on the images the user's config names (`data.limit` kept). `--budget 15` means 15 epochs
of the start model (the user's layers after lint's corrections) on that set; a candidate twice as wide costs
twice as much per image, so it gets fewer epochs for the same budget. Evaluations are left out (each is ~2% of
an epoch on these sets).

The race (cnnlab/rescue/loop.py): every candidate is planned for the whole budget as if it wins, minus what the
others cost up to the rung where they are dropped; the winner then trains on to the end of its own schedule,
on every training image (the validation split is needed only to judge the race).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import UserError
from ..schema.config import MAX_EPOCHS


@dataclass(frozen=True)
class Budget:
    amount: float
    unit: str                   # "epochs" | "pflop"

    def __str__(self) -> str:
        return f"{self.amount:g} {'epochs' if self.unit == 'epochs' else 'PFLOP'}"


def parse_budget(text: str | float | int) -> Budget:
    """'15', '15ep', '15 epochs' -> 15 epochs; '0.2pflop', '0.2 PFLOP' -> 0.2 PFLOP."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ep|epochs?|pflops?)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--budget {text}: give epochs of the training set (15, 15ep) or PFLOP (0.2pflop)")
    unit = "pflop" if (match.group(2) or "").lower().startswith("pflop") else "epochs"
    return Budget(float(match.group(1)), unit)


def val_fraction(train_images: int) -> float:
    """The share held out to judge the race: about 2,500 images (an accuracy to +-0.9 points, and every candidate
    is judged on the same images), 5-10% of the set. Only until the rung: the winner then trains on them too."""
    return min(0.1, max(0.05, 2500 / max(1, train_images)))


def rung_epochs(budget_epochs: float) -> int:
    """Epochs every candidate trains before the race is decided: 5% of the budget, 1 to 3. Early, but each
    candidate is planned for the whole budget, so all are at the same point of the same schedule."""
    return int(min(3, max(1, round(0.05 * budget_epochs))))


@dataclass(frozen=True)
class Meter:
    """The budget in FLOP for one data set, and what training costs there."""
    train_images: int           # the images the user's config trains on (after `data.limit`)
    flop_per_image: float       # 6 x MACs of the start model

    def flop(self, budget: Budget) -> float:
        return budget.amount * 1e15 if budget.unit == "pflop" else budget.amount * self.train_images * \
            self.flop_per_image

    def epochs(self, flop: float) -> float:
        """FLOP as epochs of the start model on the full set: the unit the user gave."""
        return flop / (self.train_images * self.flop_per_image)


@dataclass(frozen=True)
class Entrant:
    name: str
    flop_per_image: float
    race_images: float          # the images one epoch trains on in the race (the train split, or a forecast's share)
    promotable: bool            # a forecast is measured, never continued


def plan_epochs(total_flop: float, entrants: list[Entrant], rung: int, final_images: int) -> dict[str, int]:
    """Each promotable entrant's schedule length (whole epochs) if it wins: what the budget leaves once the
    others have trained to the rung, its own rung paid for on the train split, and the rest on all
    `final_images` (the winner trains on with the validation images folded back in)."""
    plan = {}
    for e in entrants:
        if not e.promotable:
            continue
        others = sum(rung * o.race_images * o.flop_per_image for o in entrants if o is not e)
        own = rung * e.race_images * e.flop_per_image
        after = math.floor((total_flop - others - own) / (final_images * e.flop_per_image) + 1e-9)
        if after < 1:
            raise UserError(f"a budget of {total_flop / 1e15:.3g} PFLOP leaves {e.name} no epoch after the race's "
                            f"{rung}-epoch rung; give a larger budget")
        plan[e.name] = check_epochs(rung + after, e.name)
    return plan


def check_epochs(epochs: int, name: str) -> int:
    """A plan a run can hold: the schema's limit on epochs, said before anything trains."""
    if epochs > MAX_EPOCHS:
        raise UserError(f"the budget gives {name} {epochs:,} epochs, over cnnlab's limit of {MAX_EPOCHS:,}; give a "
                        "smaller budget")
    return epochs
