"""A controlled switchover through Sentinel, finished only when every sentinel names the new
master and the old master replicates from it."""
from __future__ import annotations

import time
from dataclasses import dataclass

from provision import rediscli, status
from provision.errors import ProvisionError
from provision.inventory import Group
from provision.plan import Plan
from provision.remote import Remote


@dataclass(frozen=True)
class FailoverResult:
    group: str
    old_master: str
    new_master: str
    seconds_to_switch: float      # until every sentinel names the new master
    seconds_to_rejoin: float      # until the old master replicates from it, link up


def wait_for_switch(plan: Plan, connections: dict[str, Remote], group: Group, old_master: str, started: float,
                    timeout: float = 90) -> FailoverResult:
    """Poll until every reachable sentinel names one master other than old_master, then until
    old_master is its replica with the link up."""
    old_address = plan.inventory.host(old_master).data_address
    switched_at, new_master = None, None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group_view = next(v for v in status.view(plan, connections) if v.group == group.name)
        answers = {s.master_address for s in group_view.sentinels if s.flags != "unreachable"}
        if switched_at is None and len(answers) == 1 and None not in answers and old_address not in answers:
            switched_at = time.monotonic()
            new_host = plan.host_by_data_address(answers.pop())
            new_master = new_host.name if new_host else "?"
        if switched_at is not None:
            old = next(n for n in group_view.nodes if n.host == old_master)
            if old.role == "slave" and old.master_host == new_master and old.link == "up":
                return FailoverResult(group.name, old_master, new_master, switched_at - started,
                                      time.monotonic() - started)
        time.sleep(0.1)
    state = "no new master agreed by all sentinels" if switched_at is None else \
        f"{old_master} has not rejoined {new_master} as a replica"
    raise ProvisionError(f"group {group.name}: {state} after {timeout:.0f}s")


def run(plan: Plan, group_name: str | None = None) -> FailoverResult:
    groups = {group.name: group for group in plan.inventory.groups}
    if group_name is None and len(groups) > 1:
        raise ProvisionError(f"several groups; name one with --group ({', '.join(groups)})")
    group = groups.get(group_name) if group_name else next(iter(groups.values()))
    if group is None:
        raise ProvisionError(f"no group {group_name!r} in the inventory ({', '.join(groups)})")
    connections, unreachable = status.open_connections(plan)
    try:
        current = next(v for v in status.view(plan, connections) if v.group == group.name)
        master_address = current.sentinel_master
        if master_address is None:
            raise ProvisionError(f"group {group.name}: the sentinels do not agree on a master; not failing over")
        old_master = plan.host_by_data_address(master_address).name
        if not any(node.role == "slave" and node.link == "up" for node in current.nodes):
            raise ProvisionError(f"group {group.name}: no replica with its link up to promote")
        sentinel_host = next(name for name in plan.inventory.sentinels if name in connections)
        host = plan.inventory.host(sentinel_host)
        started = time.monotonic()
        result = rediscli.sentinel_call(connections[sentinel_host], plan, host, ["SENTINEL", "FAILOVER", group.name])
        error = rediscli.reply_error(result)
        if error:
            raise ProvisionError(f"{sentinel_host}: SENTINEL FAILOVER {group.name}: {error}")
        return wait_for_switch(plan, connections, group, old_master, started)
    finally:
        for connection in connections.values():
            connection.close()
