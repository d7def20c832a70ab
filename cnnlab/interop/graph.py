"""From a dataflow graph (a Keras functional model, a torch.fx trace) to the model language.

A chain of layers stays a chain. Where a tensor branches, the branches must join again in one Add or
Concatenate that takes only them: that stretch becomes one block, `residual` for an Add (the branch with
more layers is the block's body; the other, when it has layers, its `shortcut`) and `concat` for a
Concatenate (one branch each, in the merge's order; a branch that is the tensor itself is `[]`). Blocks
nest: a branch may branch again, and the block that closes it is a layer of that branch. An activation right
after the merge becomes the block's `activation`, as cnnlab's own ResNets write it.

A graph that does not fall into such blocks (a tensor whose uses join with something from elsewhere, or
never join at all) is refused, naming the use that does not fit.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..errors import UserError
from ..schema.layers import ACTIVATIONS
from .imported import Layer, block

MERGES = ("add", "concat")
FOLDED = tuple(a for a in ACTIVATIONS if a != "softmax")  # what a block's `activation` takes over


@dataclass
class Node:
    """One tensor and the operation that made it. `inputs` are the ids of the nodes it reads (in order)."""
    id: int
    op: str                      # "input", "layer", or a merge: "add", "concat"
    inputs: list[int] = field(default_factory=list)
    layer: Layer | None = None   # the converted layer ("layer"); the merge's line and code (merges)
    where: str = ""              # how an error starts: "net.py line 12: y = Add()([x, y])"
    ref: str = ""                # how a message refers to it: "line 12 (`y = Add()([x, y])`)"


@dataclass
class _Path:
    layers: list[Layer]
    end: int                     # the tensor the path has reached
    merge: int | None            # the merge it stopped at (None: the model's output)
    first: int                   # the node that began it, for naming it


def ancestors(nodes: dict[int, Node], output: int) -> set[int]:
    seen, stack = set(), [output]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(nodes[n].inputs)
    return seen


class _Walk:
    def __init__(self, nodes: dict[int, Node], keep: set[int]):
        self.nodes = nodes
        self.consumers: dict[int, list[int]] = {n: [] for n in keep}
        for n in sorted(keep):
            for t in nodes[n].inputs:
                self.consumers[t].append(n)  # twice when a node reads a tensor twice (x + x)

    def follow(self, t: int, layers: list[Layer], first: int) -> _Path:
        """Walk forward from tensor `t` until the output, or a merge that needs more than this path. A chain of
        blocks is walked in this loop, not by recursion: only blocks inside blocks go deeper."""
        while True:
            uses = self.consumers[t]
            if not uses:
                return _Path(layers, t, None, first)
            if len(uses) > 1:
                made, t = self.fork(t)
                layers.append(made)
                continue
            node = self.nodes[uses[0]]
            if node.op in MERGES:
                return _Path(layers, t, node.id, first)
            layers.append(node.layer)
            t = node.id

    def fork(self, t: int) -> tuple[Layer, int]:
        """The block that starts where tensor `t` branches, and the tensor it ends at."""
        paths = []
        for use in self.consumers[t]:
            node = self.nodes[use]
            paths.append(_Path([], t, use, use) if node.op in MERGES else self.follow(use, [node.layer], use))
        while True:
            closing = self._closing(paths)
            if closing is None:
                raise self._misfit(t, paths)
            merge, members = closing
            made, start = self._block(merge, members)
            rest = [p for p in paths if p not in members]
            if not rest:
                return made, start
            paths = rest + [self.follow(start, [made], min(p.first for p in members))]

    def _closing(self, paths: list[_Path]):
        """(a merge, the paths it closes in its input order) for the first merge all of whose inputs are
        ends of these paths, else None."""
        for merge in sorted({p.merge for p in paths if p.merge is not None}):
            members = [p for p in paths if p.merge == merge]
            wanted = self.nodes[merge].inputs
            if Counter(p.end for p in members) == Counter(wanted):
                ordered, left = [], list(members)
                for t in wanted:
                    ordered.append(left.pop(next(i for i, p in enumerate(left) if p.end == t)))
                return merge, ordered
        return None

    def _block(self, merge: int, members: list[_Path]) -> tuple[Layer, int]:
        node = self.nodes[merge]
        start, activation = merge, None
        uses = self.consumers[merge]
        if len(uses) == 1:
            after = self.nodes[uses[0]]
            if after.op == "layer" and isinstance(after.layer.entry, str) and after.layer.entry in FOLDED:
                start, activation = after.id, after.layer
        lists = [p.layers for p in members]
        if node.op == "concat":
            parts = {"branches": lists}
        else:
            if len(lists) != 2:
                raise UserError(f"{node.where}: adds {len(lists)} tensors; cnnlab's residual block adds two (a "
                                "block's input, or its shortcut, and its output)")
            has_layers = [any(layer.entry is not None for layer in path) for path in lists]
            if not any(has_layers):
                raise UserError(f"{node.where}: adds a tensor to itself; cnnlab's residual block adds a block's "
                                "input (or its shortcut) to the block's output")
            # the body is the longer path (the first given on a tie); the other, if it has layers, the shortcut
            body = max((0, 1), key=lambda i: (sum(layer.entry is not None for layer in lists[i]), -i))
            parts = {"layers": lists[body]}
            if has_layers[1 - body]:
                parts["shortcut"] = lists[1 - body]
        return block("residual" if node.op == "add" else "concat", parts, node.layer.line, node.layer.source,
                     activation), start

    def _misfit(self, t: int, paths: list[_Path]) -> UserError:
        culprit = max(paths, key=lambda p: p.first)
        others = [self.nodes[p.first].ref for p in paths if p is not culprit]
        source = self.nodes[t]
        what = "the model's input" if source.op == "input" else f"the output of {source.ref}"
        return UserError(
            f"{self.nodes[culprit.first].where}: does not fit cnnlab's model language: it uses {what}, which "
            f"{', '.join(others)} also use{'s' if len(others) == 1 else ''}, and these uses do not join again in "
            "one Add or Concatenate that takes only them; cnnlab writes branches as a `residual` block (an Add "
            "of a block's input, or its shortcut, and its output) or a `concat` block (a Concatenate of "
            "branches from one tensor); nothing was written")


def to_layers(nodes: dict[int, Node], output: int) -> list[Layer]:
    """The model language's layers (blocks where the graph branches) from the graph's one input to `output`.
    Nodes that do not lead to the output are left out, as the source framework leaves them out."""
    keep = ancestors(nodes, output)
    inputs = sorted(n for n in keep if nodes[n].op == "input")
    if len(inputs) != 1:
        raise UserError(f"{nodes[output].where}: the model has {len(inputs)} inputs; cnnlab's models take one "
                        "image")
    walk = _Walk(nodes, keep)
    path = walk.follow(inputs[0], [], inputs[0])
    return path.layers
