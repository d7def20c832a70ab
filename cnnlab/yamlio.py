"""YAML in, with the line of every key and list item kept, so errors can point at the file and line."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError


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


def parse_yaml(text: str, source: str = "<inline>") -> Located:
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{source}{line}: invalid YAML: {problem}") from None
    lines: dict = {}
    if node is not None:
        _record(node, (), lines)
    return Located(data, source, lines)


def load_yaml(path: str | Path) -> Located:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return parse_yaml(text, str(path))
