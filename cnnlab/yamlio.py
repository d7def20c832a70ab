"""YAML in, with the line of every key and list item kept, so errors can point at the file and line.

The text is composed into YAML's node graph once, and both the data and the line table are made from that
graph. While composing, aliases are checked before anything expands them: one that refers to itself
(`&a [*a]`) makes a recursive list that every later walk recurses into until Python gives up, and nested
aliases (nine of nine of nine ...) expand a few hundred bytes into 10^9 values. Both are refused with the
alias's line, as is nesting deep enough to exhaust Python's recursion (limits: cnnlab/schema/limits.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.events import AliasEvent

from .errors import UserError
from .schema.limits import MAX_YAML_DEPTH, MAX_YAML_NODES


@dataclass
class Located:
    """Parsed YAML plus where each part came from: `lines[(key, 0, key2)]` is a 1-based line number."""
    data: object
    source: str = "<inline>"
    lines: dict = field(default_factory=dict)

    def where(self, path: tuple) -> str:
        """'file.yaml line 7' for the deepest known prefix of `path`, else just the file name."""
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                return f"{self.source} line {self.lines[path[:cut]]}"
        return self.source

    def sub(self, prefix: tuple) -> "Located":
        """The part under `prefix`, keeping line numbers (so a model inside a config still points at its line)."""
        node = self.data
        for key in prefix:
            node = node[key]
        n = len(prefix)
        return Located(node, self.source, {k[n:]: v for k, v in self.lines.items() if k[:n] == prefix})


def _record(node, path: tuple, lines: dict) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, path + (index,), lines)


class _Refused(Exception):
    """Valid YAML that cnnlab will not read: (the event's mark, why)."""


class _LimitedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that counts, while composing, the values the document holds with every alias written
    out, and refuses a self-referencing alias, a document past MAX_YAML_NODES values, or nesting past
    MAX_YAML_DEPTH. An alias is the anchored node object itself, so its expanded size is remembered once
    per anchor (when the anchored node is finished) and each alias adds that number: counting a bomb costs
    one step per alias written, not per value it would expand to."""

    def __init__(self, stream):
        super().__init__(stream)
        self._total = 0      # values so far, aliases expanded
        self._depth = 0
        self._sizes = {}     # anchor -> expanded size of the finished node it names

    def _count(self, size: int, event, what: str) -> None:
        self._total += size
        if self._total > MAX_YAML_NODES:
            raise _Refused(event.start_mark, f"{what} takes the document past {MAX_YAML_NODES:,} values (aliases "
                                             "expanded), more than cnnlab reads")

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self.anchors:  # else PyYAML's own "found undefined alias"
                if event.anchor not in self._sizes:  # its node is still being composed: we are inside it
                    raise _Refused(event.start_mark, f"the alias '*{event.anchor}' refers to itself (it is "
                                                     f"inside the value anchored '&{event.anchor}'), which never ends")
                size = self._sizes[event.anchor]
                self._count(size, event, f"the alias '*{event.anchor}' ({size:,} values)")
            return super().compose_node(parent, index)
        if self._depth >= MAX_YAML_DEPTH:
            raise _Refused(event.start_mark, f"nested more than {MAX_YAML_DEPTH} levels deep; cnnlab reads at "
                                             f"most {MAX_YAML_DEPTH}")
        start = self._total
        self._count(1, event, "this value")
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[event.anchor] = self._total - start
        return node


def _load(text: str):
    """(node graph, data) from one composition; raises yaml.YAMLError (invalid) or _Refused (past a limit)."""
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)  # what yaml.safe_load does
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str = "<inline>") -> Located:
    try:
        node, data = _load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{source}{line}: invalid YAML: {problem}") from None
    except _Refused as exc:
        mark, why = exc.args
        raise UserError(f"{source} line {mark.line + 1}: {why}") from None
    lines: dict = {}
    if node is not None:
        _record(node, (), lines)
    return Located(data, source, lines)


def safe_load(text: str, source: str) -> object:
    """yaml.safe_load within the same limits, for a one-line value (`--set key=VALUE`): YAML it cannot read
    still raises yaml.YAMLError (the caller may take the text as a plain string); past a limit, UserError."""
    try:
        return _load(text)[1]
    except _Refused as exc:
        raise UserError(f"{source}: {exc.args[1]}") from None


def load_yaml(path: str | Path) -> Located:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return parse_yaml(text, str(path))
