"""The data doctor's findings as the Start page's Data panel draws them: pictures, not lines of paths.

Each finding becomes a section with the doctor's own message and its sentence on what it means for training,
and what to draw: a leak or a conflicting label as the pair side by side, duplicates as groups (pairs that share
an image joined), label suspects one by one with the class they look like, odd sizes and colour modes by
example files, and the imbalance as counts. Files are named relative to the folder that was read, the form
the thumbnail route (cnnlab.app.thumbnails) takes; an image outside it (none in an image folder) is named but
not drawn (file None)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

SHOW = 24        # pairs, groups or suspects drawn per section (`cnnlab data doctor --json` lists all)
EXAMPLES = 3     # files drawn per size or colour mode


def panel(doctor: dict, root: str, scanned: dict | None = None) -> list[dict]:
    """Sections for the findings of `doctor` (DataReport.as_dict()) on the folder `root`; `scanned`: the
    folder's usable images per split as cnnlab.data.ingest.scan_folder lists them, (path, label, (h, w), mode),
    where the size and mode examples come from."""
    base = Path(root).resolve()
    examples = _examples(scanned or {}, base)
    sections = []
    for finding in doctor.get("findings", []):
        check, items = finding["check"], finding["items"]
        if check in ("empty classes", "unusable files"):
            continue  # the ingestion report above the panel lists these, file by file
        section = {key: finding[key] for key in ("check", "severity", "message", "meaning")}
        if check in ("leakage", "conflicting labels"):
            drawn = [_pair(p, base) for p in items[:SHOW]]
            section.update(kind="pairs", pairs=drawn, total=len(items),
                           sides=["training image", "test image"] if check == "leakage" else None)
        elif check == "duplicates":
            groups = duplicate_groups(items)
            section.update(kind="groups", groups=[[{"file": _relative(name, base), "name": _short(name, base),
                                                    "label": label} for name, label in group]
                                                  for group in groups[:SHOW]], total=len(groups))
        elif check == "label suspects":
            section.update(kind="suspects", total=len(items), suspects=[
                {"file": _relative(s["file"], base), "name": _short(s["file"], base), "label": s["label"],
                 "suggested": s["suggested"], "confidence": s["confidence"]} for s in items[:SHOW]])
        elif check in ("sizes", "modes"):
            key = "size" if check == "sizes" else "mode"
            section.update(kind="examples", total=len(items), examples=[
                {"what": item[key], "images": item["images"], "files": examples[key].get(item[key], [])}
                for item in items])
        else:  # imbalance: the counts per class
            section.update(kind="counts", counts=items, total=len(items))
        sections.append(section)
    return sections


def duplicate_groups(pairs: list[dict]) -> list[list[tuple[str, str]]]:
    """Pairs {a, b, labels} joined into groups of images that are all copies of each other (a chain a~b, b~c
    is one group of three), each [(name, label)] in name order, the largest groups first."""
    parent: dict[str, str] = {}
    labels: dict[str, str] = {}

    def find(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]  # path halving: chains stay short
            name = parent[name]
        return name

    for pair in pairs:
        labels[pair["a"]], labels[pair["b"]] = pair["labels"]
        parent[find(pair["a"])] = find(pair["b"])
    groups = defaultdict(list)
    for name in parent:
        groups[find(name)].append(name)
    ordered = sorted((sorted(members) for members in groups.values()), key=lambda g: (-len(g), g[0]))
    return [[(name, labels[name]) for name in group] for group in ordered]


def _pair(pair: dict, base: Path) -> dict:
    how = "identical" if pair.get("exact") else f"{pair['bits']} bits apart"
    return {"a": _relative(pair["a"], base), "b": _relative(pair["b"], base), "name_a": _short(pair["a"], base),
            "name_b": _short(pair["b"], base), "labels": pair["labels"], "how": how}


def _examples(scanned: dict, base: Path) -> dict:
    """{"size": {"WxH": [files]}, "mode": {mode: [files]}}: the first EXAMPLES files of each."""
    found = {"size": defaultdict(list), "mode": defaultdict(list)}
    for split in scanned.values():
        for path, _, (h, w), mode in split:
            for key, value in (("size", f"{w}x{h}"), ("mode", mode)):
                if len(found[key][value]) < EXAMPLES:
                    found[key][value].append({"file": _relative(path, base), "name": _short(path, base)})
    return found


def _relative(path: str, base: Path) -> str | None:
    """`path` relative to the folder (as the thumbnail route takes it), or None outside it ("train[3]")."""
    if not Path(path).is_absolute():
        return None
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return None


def _short(path: str, base: Path) -> str:
    return _relative(path, base) or path
