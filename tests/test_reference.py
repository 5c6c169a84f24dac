"""The inventory reference and JSON Schema are generated from the schema the validator reads, and
fail here when any of the three drifts from the others."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from provision import inventory
from provision.base.errors import InventoryError
from provision.inventory import reference, schema, sections

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_NAMES = {"<host>": "h1", "<group>": "g1", "<version>": "7.2.4", "<directive>": "timeout",
                "<user>": "app", "<sysctl>": "net.core.somaxconn", "<index>": 0}
SAMPLE_VALUES = {"string": "x", "integer": 1, "number": 1, "boolean": True, "size": "1mb", "scalar": "1",
                 "list": [], "mapping": {}}


def test_the_reference_document_is_the_one_generated_from_the_schema():
    assert (ROOT / "docs" / "inventory.md").read_text() == reference.markdown(), \
        "docs/inventory.md drifted: run python3 -m provision.inventory.reference"


def test_the_json_schema_file_is_the_one_generated_from_the_schema():
    assert reference.SCHEMA_FILE.read_text() == reference.schema_text(), \
        "inventory.schema.json drifted: run python3 -m provision.inventory.reference"
    assert (ROOT / "docs" / "inventory.schema.json").resolve() == reference.SCHEMA_FILE


def test_every_key_of_the_schema_is_in_the_reference_with_its_default():
    document = reference.markdown()
    for key in schema.KEYS:
        row = next((line for line in document.splitlines() if line.startswith(f"| `{key.path}` |")), None)
        assert row is not None, key.path
        if not key.segments[-1].startswith("<"):
            assert f"| {key.shown_default()} |" in row, row


def _every_key_document() -> dict:
    """An inventory holding every key of the schema (values of the right type, not a valid
    deployment): the readers meet each key once."""
    document: dict = {}
    for key in schema.KEYS:
        place = document
        names = [SAMPLE_NAMES.get(part, part) for part in key.segments]
        for name in names[:-1]:
            if isinstance(place, list):          # a list of mappings (cluster.shards): its first item
                place = place[0] if place else place.append({}) or place[0]
            else:
                place = place.setdefault(name, {})
        if isinstance(place, list):
            if not place:
                place.append({})
        elif key.type == "mapping":
            place.setdefault(names[-1], {})
        elif names[-1] not in place:
            place[names[-1]] = key.choices[0] if key.choices else copy.copy(SAMPLE_VALUES[key.type])
    return document


def test_the_validator_reads_every_key_of_the_schema_and_no_other(tmp_path, monkeypatch):
    read: set[str] = set()
    original = sections.Section.get

    def recording_get(self, key, *args, **kwargs):
        read.add(schema.lookup(self.key_path + (key,)).path)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(sections.Section, "get", recording_get)
    path = tmp_path / "every.yml"
    path.write_text(yaml.safe_dump(_every_key_document()))
    with pytest.raises(InventoryError):        # sample values make no valid deployment; every key is still read
        inventory.load(str(path), {})
    iterated = {key.path for key in schema.KEYS if key.segments[-1].startswith("<")}
    assert read == {key.path for key in schema.KEYS} - iterated


def test_a_reader_asking_for_a_key_the_schema_lacks_is_a_programming_error():
    from provision.inventory.yamlsource import Problems
    section = sections.Section(Problems("x.yml", {}), ("redis",), {"timout": 1})
    with pytest.raises(KeyError, match="redis.timout"):
        section.get("timout")


def test_a_key_the_schema_lacks_is_refused_with_the_schema_keys_as_the_allowed_ones(tmp_path):
    document = yaml.safe_load((ROOT / "inventory" / "prod.yml").read_text())
    document["redis"]["maxmemmory"] = "1gb"
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(document))
    environment = {f"REDIS_{name}_PASSWORD": "x" * 20 for name in ("ADMIN", "REPLICATION", "SENTINEL", "APP")}
    with pytest.raises(InventoryError) as raised:
        inventory.load(str(path), environment, resolve=lambda name: None)
    allowed = ", ".join(sorted(key.segments[-1] for key in schema.children(("redis",))))
    assert f"redis.maxmemmory: unknown key (did you mean 'maxmemory'?); allowed here: {allowed}" in str(raised.value)


def test_the_example_inventories_pass_the_json_schema():
    validator = jsonschema.Draft202012Validator(reference.json_schema())
    for name in ("prod.yml", "vagrant.yml", "cluster.yml"):
        document = yaml.safe_load((ROOT / "inventory" / name).read_text())
        assert [error.message for error in validator.iter_errors(document)] == [], name


@pytest.mark.parametrize("where, value, expected", [
    (("redis", "maxmemmory"), "1gb", "Additional properties"),
    (("redis", "port"), 70000, "greater than the maximum"),
    (("hosts", "redis-a", "sudo"), "yes", "is not of type 'boolean'"),
    (("redis", "maxmemory_policy"), "lru", "is not one of"),
    (("groups", "mymaster", "replicas"), [1], "is not of type 'string'"),
    (("hosts", "bad name!"), {"address": "192.0.2.1"}, "does not match any of the regexes"),
])
def test_the_json_schema_refuses_what_the_validator_refuses(where, value, expected):
    document = yaml.safe_load((ROOT / "inventory" / "prod.yml").read_text())
    place = document
    for part in where[:-1]:
        place = place[part]
    place[where[-1]] = value
    messages = [error.message for error in jsonschema.Draft202012Validator(reference.json_schema()).iter_errors(document)]
    assert any(expected in message for message in messages), messages


@pytest.mark.parametrize("example, section", [("prod.yml", None), ("cluster.yml", "cluster")])
def test_the_example_inventories_show_every_key_of_the_schema(example, section):
    """inventory/prod.yml (the file `init` writes) names every key but the cluster's, and
    inventory/cluster.yml every cluster key, set or commented out: a key added to the schema
    without it fails here."""
    text = (ROOT / "inventory" / example).read_text()
    shown = re.findall(r"(?:^\s*#?\s*-?\s*|[{,]\s*)([A-Za-z_][\w.-]*|\"[\d.]+\"):", text, re.M)
    names = {name.strip('"') for name in shown}
    missing = [key.path for key in schema.KEYS
               if not key.segments[-1].startswith("<") and key.segments[-1] not in names
               and (key.segments[0] == "cluster") == (section == "cluster")]
    assert not missing, missing


def test_the_example_inventory_names_its_json_schema_for_editors():
    first = (ROOT / "inventory" / "prod.yml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=inventory.schema.json"
    assert (reference.SCHEMA_FILE.parent / "prod.yml").is_file()
    json.loads(reference.SCHEMA_FILE.read_text())
