"""Checks across sections: hosts, groups and sentinels agree, and the quorum can authorise a failover."""
from __future__ import annotations

import difflib

from provision.base import quorum
from provision.inventory.model import Cluster, Group, Host, RedisSettings
from provision.inventory.sections import type_name
from provision.inventory.yamlsource import Problems


def unknown_host(name: str, host_names: set[str]) -> str:
    """The problem for a reference to a host the inventory does not have, with a did-you-mean."""
    close = difflib.get_close_matches(name, sorted(host_names), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; hosts are {', '.join(sorted(host_names))}"
    return f"unknown host {name!r}{hint}"


def check_topology(problems: Problems, hosts: tuple[Host, ...], groups: tuple[Group, ...],
                    sentinels: list, redis: RedisSettings | None) -> tuple[str, ...]:
    host_names = {host.name for host in hosts}
    absent = {host.name for host in hosts if host.absent}
    for group in groups:
        for index, member in enumerate(group.members):
            if member in absent:
                where = ("groups", group.name, "master") if index == 0 else ("groups", group.name, "replicas", index - 1)
                problems.add(where, f"{member!r} is state: absent (being retired); take it out of the group")
        if group.master not in host_names:
            problems.add(("groups", group.name, "master"), unknown_host(group.master, host_names))
        for index, replica in enumerate(group.replicas):
            if replica not in host_names:
                problems.add(("groups", group.name, "replicas", index), unknown_host(replica, host_names))
    used_ports: dict[tuple[str, int], str] = {}
    for group in groups:
        for member in group.members:
            if (member, group.port) in used_ports:
                problems.add(("groups", group.name, "port"),
                             f"host {member!r} already serves group {used_ports[(member, group.port)]!r} on port "
                             f"{group.port}; give one of the groups its own port")
            used_ports[(member, group.port)] = group.name
            if redis is not None and group.port == redis.sentinel_port:
                problems.add(("groups", group.name, "port"), f"{group.port} is the Sentinel port")
        for other in groups:
            if other is not group and group.master in other.replicas and group.port == other.port:
                problems.add(("groups", group.name, "master"),
                             f"{group.master!r} is also a replica in group {other.name!r} on the same port")
    sentinel_names: list[str] = []
    if not isinstance(sentinels, list):
        problems.add(("sentinels",), "expected a list of the hosts that run a Sentinel")
        return ()
    for index, name in enumerate(sentinels):
        if not isinstance(name, str):
            problems.add(("sentinels", index), f"expected a host name, got {type_name(name)}")
        elif name not in host_names:
            problems.add(("sentinels", index), unknown_host(name, host_names))
        elif name in absent:
            problems.add(("sentinels", index), f"{name!r} is state: absent (being retired); take it out of sentinels")
        elif name in sentinel_names:
            problems.add(("sentinels", index), f"{name!r} is listed twice")
        else:
            sentinel_names.append(name)
    count = len(sentinel_names)
    if not groups:
        # groups written but none read: each was refused already, and saying "there are none" would mislead
        if sentinel_names and ("groups",) not in problems.lines:
            problems.add(("sentinels",), "sentinels watch the groups, and there are none (a cluster fails over "
                                         "by itself); take sentinels out or add groups")
        return tuple(sentinel_names)
    if count < 3:
        problems.add(("sentinels",), f"{count} sentinel(s); at least 3 on separate hosts are needed so that a "
                                     "majority survives the loss of one")
        return tuple(sentinel_names)
    majority = quorum.majority(count)
    for group in groups:
        if group.quorum > count:
            problems.add(("groups", group.name, "quorum"),
                         f"quorum {group.quorum} is larger than the {count} sentinels: the master could never be "
                         "agreed down")
            continue
        surviving = count - sum(1 for name in sentinel_names if name == group.master)
        if surviving < max(group.quorum, majority):
            problems.add(("groups", group.name, "quorum"),
                         f"when {group.master!r} fails, {surviving} sentinel(s) remain; a failover needs the quorum "
                         f"({group.quorum}) and a majority of all sentinels ({majority}) to authorise it")
    return tuple(sentinel_names)


def check_cluster(problems: Problems, hosts: tuple[Host, ...], groups: tuple[Group, ...], sentinels: tuple[str, ...],
                  cluster: Cluster, redis: RedisSettings | None) -> None:
    """The cluster's hosts exist and serve one node each, its ports clash with no group or
    Sentinel on the same host, and nothing asks a cluster for what it cannot do."""
    host_names = {host.name for host in hosts}
    absent = {host.name for host in hosts if host.absent}
    placed: dict[str, str] = {}
    for index, shard in enumerate(cluster.shards):
        for position, member in enumerate(shard.members):
            where = ("cluster", "shards", index, "master") if position == 0 else \
                ("cluster", "shards", index, "replicas", position - 1)
            if member not in host_names:
                problems.add(where, unknown_host(member, host_names))
            elif member in absent:
                problems.add(where, f"{member!r} is state: absent (being retired); take it out of the cluster")
            elif member in placed:
                problems.add(where, f"{member!r} already serves {placed[member]}; a host carries one cluster node")
            placed.setdefault(member, shard.name)
    if redis is not None and tuple(int(part) for part in redis.version.split(".")[:2]) < (7, 0):
        problems.add(("redis", "version"), f"{redis.version}: the cluster needs Redis 7.0 or later (cluster-port, "
                                           "and the cluster's ACL and failover fixes)")
    ports = {cluster.port: "port", cluster.bus_port: "bus_port"}
    for group in groups:
        for member in set(group.members) & set(placed):
            if group.port in ports:
                problems.add(("cluster", ports[group.port]),
                             f"{group.port} is group {group.name!r}'s port on {member!r}, which is also a cluster node")
    if redis is not None and set(sentinels) & set(placed) and redis.sentinel_port in ports:
        problems.add(("cluster", ports[redis.sentinel_port]),
                     f"{redis.sentinel_port} is the Sentinel port, and a Sentinel runs on a cluster node's host")
    databases = [(("redis", "settings", "databases"), dict(redis.extra_settings).get("databases"))] if redis else []
    databases += [(("hosts", host.name, "redis", "settings", "databases"), dict(host.redis.settings).get("databases"))
                  for host in hosts if host.name in placed]
    for where, value in databases:
        if value is not None and value != "1":
            problems.add(where, f"Redis Cluster has database 0 only (SELECT is refused); {value} databases "
                                "cannot be given to its nodes")
