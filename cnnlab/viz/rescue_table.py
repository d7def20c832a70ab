"""A rescue's journal (rescue.json, cnnlab/rescue/loop.py) as a table: for the terminal, rescue.md, the
final run's report and the web page."""
from __future__ import annotations

TABLE_HEAD = ("step", "what", "architecture", "accuracy", "vs the floor", "status", "cost (epochs)", "PFLOP",
              "wall (s)")


def table_rows(journal: dict) -> list[list[str]]:
    """The journal as rows of TABLE_HEAD: one per step, the final one with its test accuracy."""
    per_epoch = journal["train_images"] * journal["flop_per_image"]
    floor = next((s["val_acc"] for s in journal["steps"] if s["name"].startswith("floor") and s["val_acc"]), None)
    rows = []
    for s in journal["steps"]:
        if s["test_acc"] is not None:
            acc, delta = f"test {s['test_acc']:.4f}", ""
        elif s["val_acc"] is not None:
            acc = f"val {s['val_acc']:.4f} (epoch {s['epoch']})"
            delta = "" if floor is None or s["name"].startswith("floor") else f"{s['val_acc'] - floor:+.4f}"
        else:
            acc, delta = "", ""
        rows.append([s["name"], s["label"], "yes" if s["architecture"] else "no", acc, delta, s["status"],
                     f"{s['flop'] / per_epoch:.2f}", f"{s['flop'] / 1e15:.3g}", f"{s['seconds']:.0f}"])
    return rows


def render_table(journal: dict) -> str:
    per_epoch = journal["train_images"] * journal["flop_per_image"]
    lines = ["| " + " | ".join(TABLE_HEAD) + " |", "|" + "---|" * len(TABLE_HEAD)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(journal)]
    steps = journal["steps"]
    spent = sum(s["flop"] for s in steps)
    total = journal["total_flop"]  # written by cnnlab/rescue/loop.py's Journal.save
    search = sum(s["flop"] for s in steps if s["status"] in ("dropped", "diverged", "forecast", "failed"))
    lines.append("")
    lines.append(f"spent {spent / per_epoch:.2f} of {total / per_epoch:.2f} epochs ({spent / 1e15:.3g} of "
                 f"{total / 1e15:.3g} PFLOP; the budget: {journal['budget']}), "
                 f"{sum(s['seconds'] for s in steps) / 60:.1f} min of training")
    won = next((s for s in steps if s["status"] == "won"), None)
    if won is not None:
        floor = next((s for s in steps if s["name"].startswith("floor") and s["val_acc"] is not None), None)
        bought = "the floor itself (no candidate beat it)" if won["name"].startswith("floor") else \
            f"{won['name']}: {won['label']}" + (f", {won['val_acc'] - floor['val_acc']:+.4f} over the floor at "
                                                f"epoch {won['epoch']}" if floor else "")
        lines.append(f"the search: {search / per_epoch:.2f} epochs ({100 * search / max(total, 1):.0f}% of the "
                     f"budget) on the candidates that lost; it bought {bought}")
    forecast = next((s for s in steps if s["status"] == "forecast"), None)
    if forecast is not None and forecast["val_acc"] is not None and won is not None:
        lead = forecast["val_acc"] - won["val_acc"]
        lines.append(f"forecast, not applied: {forecast['label']} — {lead * 100:+.1f} points at epoch "
                     f"{forecast['epoch']} on half the images ({'about that or more at the end; rerun with --change-architecture' if lead > 0 else 'no gain measured at this point'})")
    return "\n".join(lines)
