"""The inventory `invoke lab.up` writes for the hosts it made, usable by `invoke deploy` as is.

Passwords are generated once per machine into files only root can read; the inventory names
the files, never the passwords.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from lab import golden
from lab.hosts import BRIDGE_NAMESPACE, LabHost
from lab.paths import LabPaths

SECRET_NAMES = ("admin", "replication", "sentinel", "app")


def ensure_secret_files(paths: LabPaths) -> dict[str, Path]:
    secret_dir = paths.cache_dir / "lab-secrets"
    secret_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {}
    for name in SECRET_NAMES:
        path = secret_dir / f"{name}.password"
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as stream:
                stream.write(secrets.token_urlsafe(24) + "\n")
        files[name] = path
    return files


def group_layout(names: list[str], groups: int, sentinels: int | None = None) -> tuple[dict, list[str]]:
    """The lab's shapes: `groups` replication groups over consecutive runs of hosts (the first of
    each run its master), and the sentinels on the first hosts: every host for a single group (as
    the lab always had), 3 for several unless told. Pure, so the shapes are unit tested."""
    if groups < 1 or groups > len(names):
        raise ValueError(f"--groups must be between 1 and the number of hosts ({len(names)}), not {groups}")
    count = sentinels if sentinels is not None else (len(names) if groups == 1 else 3)
    if not 1 <= count <= len(names):
        raise ValueError(f"--sentinels must be between 1 and the number of hosts ({len(names)}), not {count}")
    size, extra = divmod(len(names), groups)
    layout, start = {}, 0
    for index in range(groups):
        members = names[start:start + size + (1 if index < extra else 0)]
        start += len(members)
        name = "mymaster" if groups == 1 else f"group{index + 1}"
        layout[name] = {"master": members[0], "replicas": members[1:], "quorum": count // 2 + 1,
                        "down_after_milliseconds": 2000, "failover_timeout": 10000, "parallel_syncs": 1,
                        "min_replicas_to_write": 1 if members[1:] else 0, "min_replicas_max_lag": 1}
    return layout, names[:count]


#: the lab's cluster timing: failures found in 2 s, a cut-off master refusing writes after 1 s
CLUSTER_SETTINGS = {"node_timeout": 2000, "min_replicas_to_write": 1, "min_replicas_max_lag": 1}


def cluster_layout(names: list[str], shards: int) -> dict:
    """`lab.up --cluster N`: a cluster of N shards over every host, each master with
    len/N - 1 replicas on other hosts (6 hosts, 3 shards: one replica each; 9 hosts: two)."""
    if shards < 3:
        raise ValueError(f"--cluster needs at least 3 shards (Redis Cluster's minimum of masters), not {shards}")
    if len(names) % shards or len(names) < 2 * shards:
        raise ValueError(f"--cluster {shards} needs a number of hosts that is a multiple of {shards}, at least "
                         f"{2 * shards} (each shard a master and a replica), not {len(names)}")
    return {"hosts": list(names), "replicas_per_shard": len(names) // shards - 1, **CLUSTER_SETTINGS}


def lab_inventory(paths: LabPaths, hosts: list[LabHost], tarball: Path, groups: int = 1,
                  sentinels: int | None = None, cluster: int | None = None) -> dict:
    secret_files = ensure_secret_files(paths)
    names = [host.name for host in hosts]
    if cluster:
        group_specs, sentinel_names = {}, []
    else:
        group_specs, sentinel_names = group_layout(names, groups, sentinels)
    document = {
        # The lab's hosts share this machine's CPUs with the controller: past 10 in flight, more
        # only adds contention (benchmarks/run.py). A real fleet keeps the default.
        "controller": {"network_namespace": BRIDGE_NAMESPACE, "parallel": 10,
                       "known_hosts": str(paths.cache_dir / "lab_known_hosts")},
        "hosts": {host.name: {"address": host.address, "user": "root", "key": str(paths.ssh_key)}
                  for host in hosts},
        "redis": {
            "version": golden.REDIS_SOURCE_VERSION,
            "source": {"tarball": str(tarball), "sha256": golden.REDIS_SOURCE_SHA256},
            "install_dir": "/app/redis",
            "maxmemory": "128mb",
            "maxmemory_policy": "noeviction",
        },
        "groups": group_specs,
        "sentinels": sentinel_names,
        "acl": {
            "admin": {"name": "admin", "password_file": str(secret_files["admin"])},
            "replication": {"name": "replicator", "password_file": str(secret_files["replication"])},
            "sentinel": {"name": "sentinel", "password_file": str(secret_files["sentinel"])},
            "users": {"app": {"password_file": str(secret_files["app"]),
                              "rules": "~app:* &app:* +@read +@write +@connection -@dangerous"}},
        },
        "system": {"sysctl": {"net.core.somaxconn": 1024, "vm.overcommit_memory": 1,
                              "net.ipv4.tcp_max_syn_backlog": 1024},
                   "transparent_hugepage": "never"},
    }
    if cluster:
        del document["groups"], document["sentinels"]
        document["cluster"] = cluster_layout(names, cluster)
    return document


def write_lab_inventory(paths: LabPaths, hosts: list[LabHost], target: Path, groups: int = 1,
                        sentinels: int | None = None, cluster: int | None = None) -> Path:
    tarball = golden.fetch_redis_source(paths)
    document = lab_inventory(paths, hosts, tarball, groups, sentinels, cluster)
    header = ("# Written by `invoke lab.up` for the lab hosts it made. Regenerated on every lab.up.\n"
              "# The controller joins network namespace rplab, where the lab's bridge lives.\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(header + yaml.safe_dump(document, sort_keys=False))
    temporary.rename(target)
    return target



def write_cluster_variant(paths: LabPaths, hosts: list[LabHost], target: Path, shards: list[dict],
                          absent: tuple[str, ...] = ()) -> Path:
    """A lab cluster inventory with explicit `shards` (each {master, replicas}) over those of
    `hosts` they name, plus the `absent` ones kept with state: absent: how a user grows a
    cluster (a shard added) or shrinks it (a shard taken out, its hosts retired)."""
    document = lab_inventory(paths, hosts, golden.fetch_redis_source(paths))
    del document["groups"], document["sentinels"]
    used = {member for shard in shards for member in (shard["master"], *shard["replicas"])}
    document["hosts"] = {name: {**spec, **({"state": "absent"} if name in absent else {})}
                         for name, spec in document["hosts"].items() if name in used or name in absent}
    document["cluster"] = {**CLUSTER_SETTINGS, "shards": shards}
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text("# A lab cluster grown or shrunk: explicit shards.\n" + yaml.safe_dump(document, sort_keys=False))
    temporary.rename(target)
    return target
