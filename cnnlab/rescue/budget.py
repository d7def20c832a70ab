"""A rescue's compute budget, in epochs of the full training set or in PFLOP, and what each run spent of it.

Cost counts training only, as recipes' budgets do (cnnlab/app/recipes.py): 6 FLOP per MAC per image (forward
and backward) times the images trained on. Evaluations are left out (each is ~2% of an epoch on these sets).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError

# The final model gets this share of the budget and the search the rest: with 15 epochs, 8 for the final run
# and room for 7 trials (a baseline, cnnlab's settings, four learning rates and one change of the doctor's).
FINAL_SHARE = 0.55


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


@dataclass(frozen=True)
class Meter:
    """Converts images trained on into the budget's unit, for one model on one data set."""
    train_images: int           # the full training set's
    flop_per_image: float       # 6 x MACs

    def epochs(self, images: float) -> float:
        return images / self.train_images

    def pflop(self, images: float) -> float:
        return images * self.flop_per_image / 1e15

    def spent(self, images: float, unit: str) -> float:
        return self.epochs(images) if unit == "epochs" else self.pflop(images)

    def in_epochs(self, budget: Budget) -> float:
        return budget.amount if budget.unit == "epochs" else budget.amount * 1e15 / self.flop_per_image / \
            self.train_images


def final_epochs(budget_epochs: float) -> int:
    """How long the final model trains (whole epochs of the full training set): at least one, and room left
    for the baseline trial (0.9 of an epoch: cnnlab/rescue/loop.py)."""
    final = int(budget_epochs * FINAL_SHARE)
    if final < 1 or budget_epochs - final < 0.9:
        raise UserError(f"a budget of {budget_epochs:.3g} epochs leaves no room for a final run and a search; "
                        "give at least 2 epochs")
    return final
