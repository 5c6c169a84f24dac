"""The live topology of each group, as the nodes and the Sentinels report it right now.
Shared by `invoke status`, `invoke failover` and `invoke drill`."""
from __future__ import annotations

from dataclasses import dataclass

from provision import rediscli
from provision.plan import Plan
from provision.remote import Remote


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
        answers = [view.master_address for view in self.sentinels if view.master_address]
        for address in set(answers):
            if answers.count(address) * 2 > len(self.sentinels):
                return address
        return None


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
            state = rediscli.parse_pairs(result.stdout) if result.ok and not rediscli.reply_error(result) else {}
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
        lines.append(f"  {'NODE':12} {'ROLE':8} {'OF':12} {'LINK':6} {'OFFSET':>12} {'LAG':>5}")
        for node in group.nodes:
            lines.append(f"  {node.host:12} {node.role:8} {node.master_host or '-':12} {node.link or '-':6} "
                         f"{node.offset if node.offset is not None else '-':>12} "
                         f"{str(node.lag) + 's' if node.lag is not None else '-':>5}")
        lines.append(f"  {'SENTINEL':12} {'SEES MASTER':16} {'FLAGS':14} {'REPLICAS':>8} {'PEERS':>6}")
        for sentinel in group.sentinels:
            lines.append(f"  {sentinel.host:12} {sentinel.master_address or '-':16} {sentinel.flags:14} "
                         f"{sentinel.replicas if sentinel.replicas is not None else '-':>8} "
                         f"{sentinel.other_sentinels if sentinel.other_sentinels is not None else '-':>6}")
    for name, reason in unreachable.items():
        lines.append(f"unreachable: {name}: {reason}")
    return "\n".join(lines)
