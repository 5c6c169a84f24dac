"""A controlled switchover through Sentinel, finished only when every sentinel names the new
master and the old master replicates from it."""
from __future__ import annotations

import time
from dataclasses import dataclass

from provision.ssh import hostlock, remote as remotes
from provision.facts import rediscli
from provision.facts.poll import poll
from provision.checks import status
from provision.base.errors import ProvisionError, UsageError
from provision.inventory import Group
from provision.core.plan import Plan
from provision.ssh.remote import Remote


@dataclass(frozen=True)
class FailoverResult:
    group: str
    old_master: str
    new_master: str
    seconds_to_switch: float      # until every sentinel names the new master
    seconds_to_rejoin: float      # until the old master replicates from it, link up


def wait_for_new_master(plan: Plan, connections: dict[str, Remote], group: Group, old_master: str, started: float,
                        timeout: float = 90, interval: float = 0.05) -> tuple[str, float]:
    """Poll until every sentinel that answers names one master other than old_master; returns
    (its host name, seconds since `started`). Sentinels that cannot be reached or answer nothing
    (one on a failed or partitioned host) are left out, as Sentinel's own majority leaves them."""
    old_address = plan.inventory.host(old_master).data_address
    seen = "nothing"
    while time.monotonic() - started < timeout:
        group_view = next(v for v in status.view(plan, connections) if v.group == group.name)
        answers = {s.master_address for s in group_view.sentinels if s.flags not in ("unreachable", "down")}
        if len(answers) == 1 and None not in answers and old_address not in answers:
            new_host = plan.host_by_data_address(answers.pop())
            return (new_host.name if new_host else "?"), time.monotonic() - started
        seen = "; ".join(f"sentinel {s.host} names {s.master_address} ({s.flags})" for s in group_view.sentinels)
        time.sleep(interval)
    raise ProvisionError(f"group {group.name}: no new master (other than {old_master}) agreed by the sentinels after "
                         f"{timeout:.0f}s; last seen: {seen}")


def wait_for_switch(plan: Plan, connections: dict[str, Remote], group: Group, old_master: str, started: float,
                    timeout: float = 90) -> FailoverResult:
    """Until the sentinels name a new master, then until old_master is its replica, link up."""
    new_master, seconds_to_switch = wait_for_new_master(plan, connections, group, old_master, started, timeout)
    while time.monotonic() - started < timeout:
        group_view = next(v for v in status.view(plan, connections) if v.group == group.name)
        old = next(n for n in group_view.nodes if n.host == old_master)
        if old.role == "slave" and old.master_host == new_master and old.link == "up":
            return FailoverResult(group.name, old_master, new_master, seconds_to_switch, time.monotonic() - started)
        time.sleep(0.1)
    raise ProvisionError(f"group {group.name}: {old_master} has not rejoined {new_master} as a replica "
                         f"after {timeout:.0f}s")


#: how long the old master's writes may stay paused at most (unpaused as soon as it is a replica;
#: the pause ends by itself if this tool dies halfway)
PAUSE_MILLISECONDS = 60_000
CATCH_UP_SECONDS = 10


def hand_over(plan: Plan, connections: dict[str, Remote], group: Group, old_master: str) -> FailoverResult:
    """A switchover that loses no acknowledged write. SENTINEL FAILOVER alone does not wait for
    replicas to catch up: a write acknowledged by one replica (WAIT 1) is lost when Sentinel
    promotes another that had not received it yet. So the old master's writes are paused first
    (CLIENT PAUSE WRITE: writers block, nothing is refused or lost), every replica is waited for
    until it has the master's whole stream, and only then does Sentinel pick one. The pause ends
    once the old master is a replica (the writers it held then get READONLY and follow Sentinel
    to the new master), or when anything goes wrong, before the error is raised."""
    sentinel_host = next((name for name in plan.inventory.sentinels if name in connections), None)
    if sentinel_host is None:
        raise ProvisionError(f"group {group.name}: no reachable sentinel to fail over through")
    if old_master not in connections:
        raise ProvisionError(f"group {group.name}: {old_master} (its master) cannot be reached to pause its writes")
    master = plan.inventory.host(old_master)

    def on_master(args: list[str]):
        return rediscli.call(connections[old_master], plan.layout, master.data_address, group.port, args,
                             user=plan.inventory.acl.admin, timeout=10)
    _wait_sentinel_sees_a_promotable_replica(plan, connections[sentinel_host], plan.inventory.host(sentinel_host),
                                             group)
    started = time.monotonic()
    paused = on_master(["CLIENT", "PAUSE", str(PAUSE_MILLISECONDS), "WRITE"])
    error = rediscli.reply_error(paused)
    if error:
        raise ProvisionError(f"{old_master}: CLIENT PAUSE WRITE: {error}")
    try:
        _wait_replicas_caught_up(group, old_master, lambda: on_master(["INFO", "replication"]))
        result = rediscli.sentinel_call(connections[sentinel_host], plan, plan.inventory.host(sentinel_host),
                                        ["SENTINEL", "FAILOVER", group.name])
        error = rediscli.reply_error(result)
        if error:
            raise ProvisionError(f"{sentinel_host}: SENTINEL FAILOVER {group.name}: {error}")
        new_master, _ = wait_for_new_master(plan, connections, group, old_master, started)
        # Sentinel's own reconfiguration of the old master (a MULTI/EXEC) waits for the pause to
        # end; REPLICAOF alone is not held by a write pause, so the old master is made a replica
        # here, before its writers are let go: none of them can write to it as a master again.
        # CONFIG REWRITE too: Sentinel, finding it already a replica of the right master, does
        # not rewrite its file, which would otherwise still make it a master at its next start.
        for command in (["REPLICAOF", plan.inventory.host(new_master).data_address, str(group.port)],
                        ["CONFIG", "REWRITE"]):
            error = rediscli.reply_error(on_master(command))
            if error:
                raise ProvisionError(f"{old_master}: {' '.join(command[:2])} (to follow {new_master}): {error}")
    finally:
        on_master(["CLIENT", "UNPAUSE"])
    return wait_for_switch(plan, connections, group, old_master, started)


#: Sentinel reads a replica's priority from its INFO every 10 s (sentinel_info_period)
PRIORITY_SEEN_SECONDS = 25


def promotable(replica: dict[str, str]) -> bool:
    """A SENTINEL REPLICAS record Sentinel would pick from: up, linked, not fenced."""
    flags = replica.get("flags", "").split(",")
    return replica.get("slave-priority", "0") != "0" and replica.get("master-link-status") == "ok" and \
        not {"s_down", "o_down", "disconnected"} & set(flags)


def _wait_sentinel_sees_a_promotable_replica(plan: Plan, connection: Remote, sentinel, group: Group) -> None:
    """Before the master's writes are paused: a replica whose fence its keeper lifted moments ago
    (one just restarted in the same rolling run) still looks fenced to Sentinel until its next
    INFO, and SENTINEL FAILOVER would answer NOGOODSLAVE with the writes held."""
    def replicas_seen() -> list[dict[str, str]]:
        reply = rediscli.sentinel_call(connection, plan, sentinel, ["SENTINEL", "REPLICAS", group.name], timeout=5)
        return rediscli.parse_records(reply.stdout, "name") if reply.ok else []
    seen_one, records = poll(replicas_seen, lambda found: any(promotable(record) for record in found),
                             PRIORITY_SEEN_SECONDS, 0.5)
    if seen_one:
        return
    seen = ", ".join(f"{r.get('name')} priority {r.get('slave-priority')} {r.get('flags')}" for r in records)
    raise ProvisionError(f"group {group.name}: sentinel {sentinel.name} sees no replica it could promote after "
                         f"{PRIORITY_SEEN_SECONDS}s ({seen or 'none'}); not failing over")


def caught_up(info: dict[str, str]) -> bool:
    """Every replica the master lists is online and has acknowledged its whole stream (Sentinel
    promotes only a replica connected to the master), and there is one at least."""
    replicas = rediscli.replicas_in_info(info)
    offset = info.get("master_repl_offset")
    return (info.get("role") == "master" and replicas and offset is not None
            and all(replica.get("state") == "online" and replica.get("offset") == offset
                    for replica in replicas.values()))


def _wait_replicas_caught_up(group: Group, old_master: str, read_info) -> None:
    done, info = poll(lambda: rediscli.parse_info(read_info().stdout), caught_up, CATCH_UP_SECONDS, 0.05)
    if done:
        return
    seen = {address: replica.get("offset") for address, replica in rediscli.replicas_in_info(info).items()}
    raise ProvisionError(f"group {group.name}: the replicas of {old_master} did not catch up with its writes "
                         f"paused within {CATCH_UP_SECONDS}s (master offset {info.get('master_repl_offset')}, "
                         f"replicas {seen}); not failing over, writes resumed")


def named_group(plan: Plan, group_name: str | None) -> Group:
    """The group --group names, or the only one; UsageError otherwise."""
    groups = {group.name: group for group in plan.inventory.groups}
    if group_name is None and len(groups) > 1:
        raise UsageError(f"several groups; name one with --group ({', '.join(groups)})")
    group = groups.get(group_name) if group_name else next(iter(groups.values()))
    if group is None:
        raise UsageError(f"no group {group_name!r} in the inventory ({', '.join(groups)})")
    return group


@dataclass(frozen=True)
class FailoverPlan:
    """What a failover would do, found read-only: --check prints it, a real run acts on it."""
    group: str
    old_master: str
    linked_replicas: tuple[str, ...]      # replicas with their link up: Sentinel promotes one of them


def planned(plan: Plan, connections: dict[str, Remote], group: Group) -> FailoverPlan:
    current = next(v for v in status.view(plan, connections) if v.group == group.name)
    master_address = current.sentinel_master
    if master_address is None:
        raise ProvisionError(f"group {group.name}: the sentinels do not agree on a master; not failing over")
    old_master = plan.host_by_data_address(master_address).name
    linked = tuple(node.host for node in current.nodes if node.role == "slave" and node.link == "up")
    if not linked:
        raise ProvisionError(f"group {group.name}: no replica with its link up to promote")
    return FailoverPlan(group.name, old_master, linked)


def run(plan: Plan, group_name: str | None = None, check: bool = False) -> FailoverResult | FailoverPlan:
    """The switchover, or under --check what it would do (no lock, nothing paused)."""
    group = named_group(plan, group_name)
    connections, _ = remotes.open_all(plan) if check else hostlock.open_locked(plan, "failover")
    try:
        found = planned(plan, connections, group)
        if check:
            return found
        return hand_over(plan, connections, group, found.old_master)
    finally:
        for connection in connections.values():
            connection.close()
