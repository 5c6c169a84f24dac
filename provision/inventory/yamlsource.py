"""YAML with line numbers: every key path maps to its line, duplicate keys are found, and a
hostile file (depth, size, aliases) is refused before it costs memory."""
from __future__ import annotations

import re
from typing import Any
import yaml

from provision.base.errors import InventoryError


class Problems:
    """Collects problems with the file name and the YAML line of each key path."""

    def __init__(self, path: str, lines: dict[tuple, int]):
        self.path, self.lines, self.items = path, lines, []

    def add(self, key_path: tuple, message: str) -> None:
        line = self.lines.get(key_path)
        probe = key_path
        while line is None and probe:
            probe = probe[:-1]
            line = self.lines.get(probe)
        where = f"{self.path}:{line}" if line else self.path
        dotted = ".".join(str(part) for part in key_path) or "(top level)"
        self.items.append(f"{where}: {dotted}: {message}")


MAX_INVENTORY_BYTES = 1024 * 1024


MAX_NODES = 20_000           # an inventory of hundreds of hosts has a few thousand


MAX_DEPTH = 32


class _Budget:
    """Bounds the walk: YAML aliases can expand a small file into billions of nodes."""

    def __init__(self, path: str):
        self.path, self.nodes = path, 0

    def take(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise InventoryError([f"{self.path}:{node.start_mark.line + 1}: more than {MAX_NODES} values (YAML "
                                  "aliases expanding?); an inventory is refused beyond that"])
        if depth > MAX_DEPTH:
            raise InventoryError([f"{self.path}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} deep"])


_CONSTRUCTOR = yaml.SafeLoader("")


_COLLECTION_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _scalar(node: yaml.Node, path: str) -> Any:
    """A scalar as the safe loader reads it; an unknown tag (!vault, !!python/…) is a problem at
    its line, not a traceback."""
    try:
        return _CONSTRUCTOR.construct_object(node)
    except yaml.YAMLError as error:
        raise InventoryError([f"{path}:{node.start_mark.line + 1}: cannot read this value: "
                              f"{getattr(error, 'problem', None) or error}"]) from None


def _check_tag(node: yaml.Node, path: str) -> None:
    wanted = _COLLECTION_TAGS.get(type(node))
    if wanted and node.tag != wanted:
        raise InventoryError([f"{path}:{node.start_mark.line + 1}: cannot read this value: unknown tag {node.tag!r}"])


def _to_data(node: yaml.Node, key_path: tuple, lines: dict, duplicates: list, budget: _Budget,
             depth: int = 0) -> Any:
    budget.take(node, depth)
    _check_tag(node, budget.path)
    lines.setdefault(key_path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise InventoryError([f"{budget.path}:{key_node.start_mark.line + 1}: a key must be a plain "
                                      "name, not a list or mapping"])
            key = _scalar(key_node, budget.path)
            if isinstance(key, (list, dict)) or key is None:
                raise InventoryError([f"{budget.path}:{key_node.start_mark.line + 1}: a key must be a plain name"])
            if key in result:
                duplicates.append((key_path + (key,), key_node.start_mark.line + 1))
            lines[key_path + (key,)] = key_node.start_mark.line + 1
            result[key] = _to_data(value_node, key_path + (key,), lines, duplicates, budget, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, key_path + (index,), lines, duplicates, budget, depth + 1)
                for index, item in enumerate(node.value)]
    return _scalar(node, budget.path)


#: PyYAML's words for the usual slips, and what they mean to someone editing an inventory.
_PLAIN_WORDS = (
    ("expected <block end>", "this line's indentation matches no key above it: indent it exactly like the keys "
                             "it belongs with"),
    ("mapping values are not allowed here", "a ': ' where no key can start: quote a value that holds ': ', or "
                                            "indent this line like the keys it belongs with"),
    ("found character '\\t'", "a tab: YAML indents with spaces only"),
    ("could not find expected ':'", "a key without ':' after it"),
)


def yaml_problem(path: str, error: yaml.YAMLError) -> str:
    """The line to fix and what is wrong there in plain words. An unclosed quote or bracket is
    named where it was opened (the context), not at the end of the file where the parser gave
    up; an indentation slip where the parser found it, not where the enclosing mapping began."""
    context = getattr(error, "context", None) or ""
    problem = str(getattr(error, "problem", None) or error)
    opened = context.startswith(("while scanning a quoted", "while parsing a flow", "while scanning a simple key"))
    mark = (getattr(error, "context_mark", None) if opened else None) or getattr(error, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark else path
    plain = next((words for known, words in _PLAIN_WORDS if known in problem), None)
    if plain:
        return f"{where}: not valid YAML: {plain} (YAML: {problem})"
    return f"{where}: not valid YAML: {context + ': ' if context else ''}{problem}"


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def parse_yaml(path: str, text: str) -> tuple[Any, dict, list]:
    control = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if control:
        raise InventoryError([f"{path}:{_line_of(text, control.start())}: control character "
                              f"{control.group()!r} in the file; an inventory is plain text"])
    depth = 0
    for index, character in enumerate(text):   # the parser recurses per level: bound it first
        depth += 1 if character in "[{" else -1 if character in "]}" else 0
        if depth > MAX_DEPTH:
            raise InventoryError([f"{path}:{_line_of(text, index)}: nested more than {MAX_DEPTH} deep"])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise InventoryError([yaml_problem(path, error)]) from None
    except RecursionError:
        raise InventoryError([f"{path}: nested too deep to be an inventory"]) from None
    if node is None:
        raise InventoryError([f"{path}: the file is empty; expected a mapping with hosts, redis, groups, "
                              "sentinels and acl"])
    lines: dict = {}
    duplicates: list = []
    data = _to_data(node, (), lines, duplicates, _Budget(path))
    return data, lines, duplicates
