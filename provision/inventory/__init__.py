"""Load and validate an inventory file, before any host is touched.

Every problem is reported at once, each as `file:line: key.path: what was expected`, because an
operator fixing a 200-line inventory one error per run is the failure mode this prevents.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from provision.base.errors import InventoryError
from provision.inventory import schema
from provision.inventory.masking import secret_masker
from provision.inventory.model import (Acl, AclUser, Cluster, Controller, Group, Host, Inventory, RedisOverrides,
                                       RedisSettings, Secret, Shard, Source, System, password_hash)
from provision.inventory.sections import (Section, dangerous_problems, read_acl, read_cluster, read_controller,
                                          read_groups, read_hosts, read_redis, read_system)
from provision.inventory.sshconfig import load_ssh_config, resolve_ipv4
from provision.inventory.topology import check_cluster, check_topology
from provision.inventory.values import VERSION_PATTERN, setting_value_problem
from provision.inventory.yamlsource import MAX_INVENTORY_BYTES, Problems, parse_yaml

__all__ = ["structured_problem", "Acl", "AclUser", "Controller", "Group", "Host", "Inventory", "RedisOverrides", "RedisSettings",
           "Secret", "Shard", "Source", "System", "Cluster", "VERSION_PATTERN", "load", "password_hash", "secret_masker",
           "setting_value_problem"]


def structured_problem(problem: str, path: str) -> dict:
    """One problem as a program reads it: {file, line, path, message} (line and path None when
    the problem has none)."""
    rest, file = problem, None
    if problem.startswith(path):
        file, rest = path, problem[len(path):]
    line = None
    if rest.startswith(":") and rest[1:].split(":", 1)[0].isdigit():
        number, rest = rest[1:].split(":", 1)
        line, rest = int(number), ":" + rest
    rest = rest.removeprefix(":").strip()
    key_path = None
    first, _, after = rest.partition(": ")
    if after and first and " " not in first and (first[0].isalpha() or first == "(top level)"):
        key_path, rest = first, after
    return {"file": file, "line": line, "path": key_path, "message": rest}


TOP_LEVEL_KEYS = schema.TOP_LEVEL


def load(path: str | os.PathLike, environment: dict[str, str] | None = None,
         resolve: Callable[[str], str | None] | None = None) -> Inventory:
    """Read and validate an inventory; raise InventoryError listing every problem."""
    path = str(path)
    environment = dict(os.environ) if environment is None else environment
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise InventoryError([f"{path}: cannot read the inventory: {error.strerror}"]) from None
    if len(raw) > MAX_INVENTORY_BYTES:
        raise InventoryError([f"{path}: {len(raw)} bytes; an inventory is refused above {MAX_INVENTORY_BYTES}"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise InventoryError([f"{path}:{line}: not UTF-8 text (byte {raw[error.start]:#04x})"]) from None
    data, lines, duplicates = parse_yaml(path, text)
    problems = Problems(path, lines)
    for key_path, line in duplicates:
        problems.items.append(f"{path}:{line}: {'.'.join(map(str, key_path))}: duplicate key (YAML would silently "
                              "keep only the last one)")
    top = Section(problems, (), data, "the inventory")
    base_dir = Path(path).resolve().parent
    controller = read_controller(problems, top.get("controller"), base_dir)
    hosts = read_hosts(problems, top.get("hosts"), base_dir, load_ssh_config(controller),
                        resolve or resolve_ipv4)
    redis = read_redis(problems, top.get("redis"), base_dir)
    groups = read_groups(problems, top.get("groups"), redis.port if redis else None)
    sentinels = check_topology(problems, hosts, groups, top.get("sentinels"), redis)
    cluster = read_cluster(problems, top.get("cluster"), redis.port if redis else None)
    if cluster is not None:
        check_cluster(problems, hosts, groups, sentinels, cluster, redis)
    if isinstance(data, dict) and not data.get("groups") and data.get("cluster") is None:
        problems.add(("groups",), "give groups (Sentinel replication groups), a cluster, or both")
    acl = read_acl(problems, top.get("acl"), base_dir,
                    environment)
    system = read_system(problems, top.get("system"))
    dangerous_problems(problems, data)
    top.finish()
    if problems.items:
        raise InventoryError(problems.items)
    return Inventory(path=path, hosts=hosts, redis=redis, groups=groups, sentinels=sentinels, acl=acl,
                     system=system, controller=controller, cluster=cluster)
