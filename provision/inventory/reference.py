"""The inventory reference (Markdown) and its JSON Schema, both generated from inventory/schema.py,
the table the validator reads. `python3 -m provision.inventory.reference` rewrites the files;
tests/test_reference.py fails when they drift from the schema."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from provision.inventory import schema

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SCHEMA_FILE = PACKAGE_DIR / "examples" / "inventory.schema.json"     # shipped beside the example inventory
REFERENCE_FILE = PACKAGE_DIR.parent / "docs" / "inventory.md"         # a clone's docs

_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
               "size": ["string", "integer"], "mapping": "object", "list": "array", "scalar": ["string", "integer"]}


def type_text(key: schema.Key) -> str:
    """How the reference names a key's type."""
    if key.choices:
        return "one of " + ", ".join(f"`{choice}`" for choice in key.choices)
    text = {"size": "size (string or integer)", "scalar": "string or integer", "list": f"list of {key.items}s"
            if key.items else "list"}.get(key.type, key.type)
    if key.type == "integer" and (key.minimum is not None or key.maximum is not None):
        low = key.minimum if key.minimum is not None else ""
        text += f" {low}..{key.maximum if key.maximum is not None else ''}"
    if key.type == "number" and key.maximum is not None:
        text += f" above 0, at most {key.maximum:g}"
    return text


def markdown() -> str:
    lines = ["# Inventory reference", "",
             "Generated from `provision/inventory/schema.py`, the table the validator reads: do not edit by hand",
             "(`python3 -m provision.inventory.reference` writes it, and the JSON Schema",
             "`provision/examples/inventory.schema.json` for editors and CI). `<host>`, `<group>` and the like are",
             "names you choose. `inventory/prod.yml` shows every key.", ""]
    for top in schema.TOP_LEVEL:
        head = schema.lookup((top,))
        lines += [f"## `{top}`", "", head.meaning[:1].upper() + head.meaning[1:] + f" ({'required' if head.required else 'optional'}).", "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        for key in schema.KEYS:
            if key.segments[0] != top:
                continue
            meaning = key.meaning.replace("|", "\\|")
            shown = "" if key.segments[-1].startswith("<") else key.shown_default()
            lines.append(f"| `{key.path}` | {type_text(key)} | {shown} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def _node(key: schema.Key) -> dict[str, Any]:
    node: dict[str, Any] = {"description": key.meaning}
    json_type = _JSON_TYPES[key.type]
    if key.yaml_boolean:
        json_type = ["string", "boolean"]
    node["type"] = json_type
    if key.choices:
        node["enum"] = list(key.choices) + ([True, False] if key.yaml_boolean else [])
    if key.type == "integer":
        if key.minimum is not None:
            node["minimum"] = key.minimum
        if key.maximum is not None:
            node["maximum"] = key.maximum
    if key.type == "number":
        node["exclusiveMinimum"] = 0
        if key.maximum is not None:
            node["maximum"] = key.maximum
    item = next((child for child in schema.KEYS if child.segments == key.segments + ("<index>",)), None)
    if key.type == "list" and item is not None:
        node["items"] = _node(item)
    elif key.type == "list" and key.items:
        node["items"] = {"type": _JSON_TYPES[key.items]}
    if not key.required and key.default is not None and key.default_text is None \
            and not isinstance(key.default, (dict, list, tuple)):
        node["default"] = key.default
    if key.type == "mapping":
        below = [child for child in schema.KEYS if child.segments[:-1] == key.segments]
        literal = [child for child in below if not child.segments[-1].startswith("<")]
        named = [child for child in below if child.segments[-1].startswith("<") and child.segments[-1] != "<index>"]
        if literal:
            node["properties"] = {child.segments[-1]: _node(child) for child in literal}
            required = [child.segments[-1] for child in literal if child.required]
            if required:
                node["required"] = required
        if named:
            node["patternProperties"] = {schema.NAME_PATTERNS[child.segments[-1]]: _node(child) for child in named}
        node["additionalProperties"] = False
    return node


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the inventory's shape: types, bounds, choices and names.
    Checks across keys (a group's master is a host, quorum against sentinels) stay the validator's."""
    top = [key for key in schema.KEYS if len(key.segments) == 1]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://redis-provision.invalid/inventory.schema.json",
            "title": "redis-provision inventory", "type": "object",
            "properties": {key.path: _node(key) for key in top},
            "required": [key.path for key in top if key.required],
            "additionalProperties": False}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    SCHEMA_FILE.write_text(schema_text())
    REFERENCE_FILE.write_text(markdown())
    print(f"wrote {SCHEMA_FILE} and {REFERENCE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
