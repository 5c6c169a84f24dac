"""Reading and patching redis.conf / sentinel.conf as directives, not as text.

Redis (CONFIG REWRITE) and Sentinel rewrite their own files: reorder, requote, add their state.
A byte comparison against a template would then see a change on every run and clobber runtime
state. So the tool compares only the directives it owns, by value, and patches just those lines.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from provision.base import directives


@dataclass(frozen=True)
class Directive:
    """One setting line. `key` identifies what it sets: ("maxmemory",) for plain directives,
    ("sentinel", "down-after-milliseconds", "mymaster") for per-group Sentinel lines."""
    key: tuple[str, ...]
    values: tuple[str, ...]

    def line(self) -> str:
        return " ".join(_quote(word) for word in (*self.key, *self.values))


def _quote(word: str) -> str:
    if word and all(c.isalnum() or c in "-_.:/@#~*&+|%<>!^=,[]" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Sentinel options whose 3rd word is the group name, so the group is part of the key.
_SENTINEL_GROUP_OPTIONS = directives.sentinel_group_options()


def _split(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        return line.split()


def directive_of(words: list[str]) -> Directive:
    words = [words[0].lower(), *words[1:]]
    if words[0] == "sentinel" and len(words) >= 3 and words[1].lower() in _SENTINEL_GROUP_OPTIONS:
        return Directive(key=("sentinel", words[1].lower(), words[2]), values=tuple(words[3:]))
    if words[0] == "sentinel" and len(words) >= 2:
        return Directive(key=("sentinel", words[1].lower()), values=tuple(words[2:]))
    return Directive(key=(words[0],), values=tuple(words[1:]))


def parse(text: str) -> list[tuple[int, Directive]]:
    """(line index, directive) for every setting line; comments and blanks are skipped."""
    found = []
    for index, raw in enumerate(text.splitlines()):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = _split(stripped)
        if words:
            found.append((index, directive_of(words)))
    return found


def values_by_key(text: str) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    table: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for _, directive in parse(text):
        table.setdefault(directive.key, []).append(directive.values)
    return table


def _normal(values: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Values as Redis considers them equal: case-insensitive."""
    return [tuple(word.lower() for word in line) for line in values]


def differing_keys(current_text: str, wanted: list[Directive]) -> list[tuple[str, ...]]:
    """Keys of wanted directives whose values differ from the current file's."""
    current = values_by_key(current_text)
    wanted_table: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for directive in wanted:
        wanted_table.setdefault(directive.key, []).append(directive.values)
    return [key for key, values in wanted_table.items()
            if _normal(_flatten_multi(key, current.get(key, []))) != _normal(_flatten_multi(key, values))]


def _flatten_multi(key: tuple[str, ...], values: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    if key in (("save",), ("bind",)):
        # CONFIG REWRITE writes `save "3600 1 300 100"` back as one `save S N` line per pair.
        return [tuple(part for line in values for word in line for part in word.split())]
    return values


def patch(current_text: str, wanted: list[Directive], keys: list[tuple[str, ...]]) -> str:
    """Replace the lines of the given keys with the wanted ones, in place of the first old line
    (appended at the end when the key was absent); every other line is kept as it was."""
    lines = current_text.splitlines()
    positions: dict[tuple[str, ...], list[int]] = {}
    for index, directive in parse(current_text):
        positions.setdefault(directive.key, []).append(index)
    replacement: dict[int, list[str]] = {}
    drop: set[int] = set()
    appended: list[str] = []
    for key in keys:
        new_lines = [directive.line() for directive in wanted if directive.key == key]
        old = positions.get(key, [])
        if old:
            replacement[old[0]] = new_lines
            drop.update(old[1:])
        else:
            appended.extend(new_lines)
    result = []
    for index, line in enumerate(lines):
        if index in replacement:
            result.extend(replacement[index])
        elif index not in drop:
            result.append(line)
    result.extend(appended)
    return "\n".join(result) + "\n"
