"""The live topology of each group, as the nodes and the Sentinels report it right now.
Shared by `invoke status`, `invoke failover` and `invoke drill`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from provision.facts import rediscli, topology
from provision.core.plan import Plan
from provision.ssh.remote import Remote
from provision.base.table import format_table


@dataclass(frozen=True)
class NodeView:
    host: str
    group: str
    role: str            # master / slave / down
    master_host: str | None
    link: str | None
    offset: int | None
    lag: int | None      # seconds, as the master reports it


@dataclass(frozen=True)
class SentinelView:
    host: str
    group: str
    master_address: str | None
    flags: str
    replicas: int | None
    other_sentinels: int | None


@dataclass(frozen=True)
class GroupView:
    group: str
    nodes: tuple[NodeView, ...]
    sentinels: tuple[SentinelView, ...]

    @property
    def sentinel_master(self) -> str | None:
        """The address a majority of the group's sentinels name as master, if any."""
        said = topology.agreement([view.master_address for view in self.sentinels], len(self.sentinels))
        return said.address if said.has_majority else None


def view(plan: Plan, connections: dict[str, Remote]) -> tuple[GroupView, ...]:
    groups = []
    for group in plan.inventory.groups:
        nodes = []
        master_lags = {}
        for name in group.members:
            host = plan.inventory.host(name)
            connection = connections.get(name)
            if connection is None:
                nodes.append(NodeView(name, group.name, "unreachable", None, None, None, None))
                continue
            result = rediscli.call(connection, plan.layout, host.data_address, group.port, ["INFO", "replication"],
                                   user=plan.inventory.acl.admin, timeout=3)
            info = rediscli.parse_info(result.stdout)
            if "role" not in info:
                nodes.append(NodeView(name, group.name, "down", None, None, None, None))
                continue
            if info["role"] == "master":
                for address, replica in rediscli.replicas_in_info(info).items():
                    master_lags[address] = int(replica.get("lag", -1))
            master = plan.host_by_data_address(info.get("master_host", "")) if info.get("master_host") else None
            offset = info.get("slave_repl_offset") or info.get("master_repl_offset")
            nodes.append(NodeView(name, group.name, info["role"], master.name if master else info.get("master_host"),
                                  info.get("master_link_status"), int(offset) if offset else None, None))
        nodes = [NodeView(n.host, n.group, n.role, n.master_host, n.link, n.offset,
                          master_lags.get(plan.inventory.host(n.host).data_address)) for n in nodes]
        sentinels = []
        for name in plan.inventory.sentinels:
            host = plan.inventory.host(name)
            connection = connections.get(name)
            if connection is None:
                sentinels.append(SentinelView(name, group.name, None, "unreachable", None, None))
                continue
            result = rediscli.sentinel_call(connection, plan, host, ["SENTINEL", "MASTER", group.name], timeout=3)
            reply = rediscli.answer(result)
            state = rediscli.parse_pairs(reply) if reply is not None else {}
            sentinels.append(SentinelView(name, group.name, state.get("ip"), state.get("flags", "down"),
                                          int(state["num-slaves"]) if "num-slaves" in state else None,
                                          int(state["num-other-sentinels"]) if "num-other-sentinels" in state else None))
        groups.append(GroupView(group.name, tuple(nodes), tuple(sentinels)))
    return tuple(groups)


def format_view(plan: Plan, groups: tuple[GroupView, ...], unreachable: dict[str, str]) -> str:
    lines = []
    for group in groups:
        master_address = group.sentinel_master
        master = plan.host_by_data_address(master_address) if master_address else None
        lines.append(f"group {group.group}: master {master.name if master else '?'} ({master_address or 'no sentinel majority'})")
        lines += format_table(("NODE", "ROLE", "OF", "LINK", "OFFSET", "LAG"),
                              [(node.host, node.role, node.master_host, node.link, node.offset,
                                None if node.lag is None else f"{node.lag}s") for node in group.nodes],
                              right=frozenset({4, 5}), indent="  ")
        lines += format_table(("SENTINEL", "SEES MASTER", "FLAGS", "REPLICAS", "PEERS"),
                              [(sentinel.host, sentinel.master_address, sentinel.flags, sentinel.replicas,
                                sentinel.other_sentinels) for sentinel in group.sentinels],
                              right=frozenset({3, 4}), indent="  ")
    for name, reason in unreachable.items():
        lines.append(f"unreachable: {name}: {reason}")
    return "\n".join(lines)


def only_hosts(groups: tuple[GroupView, ...], hosts: set[str]) -> tuple[GroupView, ...]:
    """The nodes kept to some hosts (--limit); every sentinel stays, since the master is the word
    of a majority of all of them."""
    return tuple(GroupView(group.group, tuple(node for node in group.nodes if node.host in hosts), group.sentinels)
                 for group in groups)


def healthy(groups: tuple[GroupView, ...], unreachable: dict[str, str]) -> bool:
    """Every host answered and a sentinel majority names a master in every group."""
    return not unreachable and all(group.sentinel_master for group in groups)


def format_json(plan: Plan, groups: tuple[GroupView, ...], unreachable: dict[str, str]) -> str:
    """The same view for a program: groups in inventory order, hosts in inventory order."""
    order = [host.name for host in plan.inventory.hosts]
    document = {"schema_version": 1, "ok": healthy(groups, unreachable), "groups": [],
                "unreachable": {name: unreachable[name] for name in order if name in unreachable}}
    for group in groups:
        master_address = group.sentinel_master
        master = plan.host_by_data_address(master_address) if master_address else None
        document["groups"].append({"group": group.group, "master": master.name if master else None,
                                   "master_address": master_address,
                                   "nodes": [asdict(node) for node in group.nodes],
                                   "sentinels": [asdict(sentinel) for sentinel in group.sentinels]})
    return json.dumps(document, indent=2)


# ---- a Redis Cluster: its shards, their slots, keys and replication lag ------------------

@dataclass(frozen=True)
class ClusterNodeStatus:
    host: str
    shard: str
    role: str              # master / slave / down / unreachable
    master_host: str | None
    slots: str             # the ranges it serves ("0-4095"), "" for a replica
    slot_count: int
    keys: int | None
    link: str | None       # a replica's master_link_status
    lag: int | None        # seconds, as its master reports it
    behind: int | None     # bytes of replication stream not yet applied (master offset - its own)


def cluster_view(plan: Plan, connections: dict[str, Remote]) -> tuple[tuple[ClusterNodeStatus, ...], list[str]]:
    """(a row per member, in shard order; what keeps the cluster from being whole, as verify says it)."""
    from provision.core.cluster import format_ranges
    from provision.core.plan import cluster_nodes
    from provision.facts import cluster as cluster_facts
    nodes = cluster_nodes(plan.inventory)
    views, infos = {}, {}
    for name, node in nodes.items():
        connection = connections.get(name)
        if connection is None:
            continue
        try:
            views[name] = cluster_facts.view_of(connection, plan, node, "status")
        except Exception:        # a node that does not answer is a row saying so, not a failed status
            continue
        infos[name] = rediscli.parse_info(cluster_facts.call(connection, plan, node, ["INFO", "replication"]).stdout)
    lags: dict[str, int] = {}
    offsets: dict[str, int] = {}
    for info in infos.values():
        if info.get("role") == "master":
            for address, replica in rediscli.replicas_in_info(info).items():
                lags[address] = int(replica.get("lag", -1))
                offsets[address] = int(info.get("master_repl_offset", 0)) - int(replica.get("offset", 0))
    hosts_by_id = {}
    for name, found in views.items():
        me = cluster_facts.myself(found.nodes)
        if me is not None:
            hosts_by_id[me.node_id] = name
    rows = []
    for name, node in nodes.items():
        if name not in connections:
            rows.append(ClusterNodeStatus(name, node.shard.name, "unreachable", None, "", 0, None, None, None, None))
            continue
        if name not in views:
            rows.append(ClusterNodeStatus(name, node.shard.name, "down", None, "", 0, None, None, None, None))
            continue
        me = cluster_facts.myself(views[name].nodes)
        info = infos[name]
        role = "master" if me.is_master else "slave"
        rows.append(ClusterNodeStatus(name, node.shard.name, role, hosts_by_id.get(me.master_id or "", me.master_id),
                                      format_ranges(me.slots), me.slot_count, views[name].keys,
                                      info.get("master_link_status"), lags.get(node.host.data_address),
                                      offsets.get(node.host.data_address)))
    problems = cluster_facts.formed_problems(plan, views) if len(views) == len(nodes) else \
        [f"{name} did not answer" for name in nodes if name not in views]
    return tuple(rows), problems


def format_cluster_view(rows: tuple[ClusterNodeStatus, ...], problems: list[str], unreachable: dict[str, str]) -> str:
    shards = {row.shard for row in rows}
    masters = [row for row in rows if row.role == "master"]
    lines = [f"cluster: {len(shards)} shards, {sum(row.slot_count for row in masters)} of 16384 slots served, "
             f"{sum(row.keys or 0 for row in masters)} keys; {'whole and agreed' if not problems else 'NOT whole'}"]
    lines += format_table(("SHARD", "NODE", "ROLE", "OF", "SLOTS", "COUNT", "KEYS", "LINK", "LAG", "BEHIND"),
                          [(row.shard, row.host, row.role, row.master_host, row.slots or None,
                            row.slot_count or None, row.keys, row.link, None if row.lag is None else f"{row.lag}s",
                            None if row.behind is None else f"{row.behind}B") for row in rows],
                          right=frozenset({5, 6, 8, 9}), indent="  ")
    lines += [f"  problem: {problem}" for problem in problems]
    lines += [f"unreachable: {name}: {reason}" for name, reason in unreachable.items()]
    return "\n".join(lines)


def format_cluster_json(rows: tuple[ClusterNodeStatus, ...], problems: list[str], unreachable: dict[str, str]) -> str:
    return json.dumps({"schema_version": 1, "ok": not problems and not unreachable,
                       "cluster": {"nodes": [asdict(row) for row in rows], "problems": problems},
                       "unreachable": unreachable}, indent=2)
