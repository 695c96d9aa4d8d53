"""Read one YAML document from bytes, safely, remembering where every key and value stood.

Limits keep hostile input cheap: the size is checked by the caller, nesting is bounded, and the
*expanded* node count is bounded while walking the node graph, so an alias bomb ("billion laughs")
is rejected after at most ``max_nodes`` steps and never constructed. Duplicate keys are errors
(PyYAML would silently keep the last one). Merge keys (``<<: *defaults``) work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
import yaml.reader

Path = tuple[str | int, ...]
MAX_NODES = 20_000
MAX_DEPTH = 64


@dataclass(frozen=True)
class Mark:
    line: int
    col: int


@dataclass
class YamlDoc:
    """The constructed data plus the 1-based position of each value and each mapping key."""

    data: Any
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> Mark:
        """The position of ``path``, or of its nearest ancestor that exists."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if key and end == len(path) and prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return Mark(1, 1)


class YamlError(Exception):
    """The document cannot be read; ``mark`` says where."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _mark(node_or_mark: Any) -> Mark:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    if mark is None:
        return Mark(1, 1)
    return Mark(mark.line + 1, mark.column + 1)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlError("file is not valid UTF-8", Mark(line, col)) from None


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]  # CSafeLoader is chosen at run time
    """SafeLoader (libyaml when present) with YAML 1.2 booleans: only true/false, so `on:`,
    `yes` and `no` stay strings (the "Norway problem")."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class _Walker:
    """Walks the composed node graph once, counting expanded nodes (aliases count every time)."""

    def __init__(self, loader: _Loader, max_nodes: int) -> None:
        self.loader = loader
        self.budget = max_nodes
        self.doc = YamlDoc(data=None)

    def walk(self, node: yaml.Node, path: Path, depth: int) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise YamlError(
                "document expands to too many nodes (anchors and aliases); refusing to read it",
                _mark(node),
            )
        if depth > MAX_DEPTH:
            raise YamlError(f"document is nested deeper than {MAX_DEPTH} levels", _mark(node))
        self.doc.values.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            self._walk_mapping(node, path, depth)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index), depth + 1)

    def _walk_mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> None:
        try:
            self.loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            raise YamlError(str(exc.problem), _mark(exc.problem_mark)) from None
        seen: set[str] = set()
        for key_node, value_node in _pairs(node):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":null"):
                raise YamlError("mapping keys must be plain strings", _mark(key_node))
            key = str(key_node.value)
            if key in seen:
                raise YamlError(f"duplicate key {key!r}", _mark(key_node))
            seen.add(key)
            self.doc.keys.setdefault((*path, key), _mark(key_node))
            self.walk(value_node, (*path, key), depth + 1)


def _pairs(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    yield from node.value


def _stringify_keys(data: Any) -> Any:
    # `1: x` has an int key; positions are keyed by the source text, so the data must be too.
    if isinstance(data, dict):
        return {str(k): _stringify_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_stringify_keys(v) for v in data]
    return data


def read_yaml(raw: bytes, *, max_nodes: int = MAX_NODES) -> YamlDoc:
    """Parse one YAML document; raises ``YamlError`` with a position for anything wrong."""
    text = _decode(raw)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(data=None)
        walker = _Walker(loader, max_nodes)
        walker.walk(node, (), 0)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        message = ": ".join(filter(None, [exc.context, exc.problem])) or "invalid YAML"
        raise YamlError(message, _mark(exc.problem_mark or exc.context_mark)) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        mark = Mark(before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character or "?")
        raise YamlError(f"character U+{char:04X} is not allowed in YAML", mark) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", Mark(1, 1)) from None
    except RecursionError:
        raise YamlError("document is nested too deeply", Mark(1, 1)) from None
    finally:
        loader.dispose()
    walker.doc.data = _stringify_keys(data)
    return walker.doc
