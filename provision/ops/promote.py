"""When the master's host never comes back: promote the freshest reachable node, explicitly.

Normally a group heals by itself (start-redis.sh.j2): a node that restarted is fenced at
replica-priority 0 until it has synced, and the master the Sentinels name comes back as master
with its own data. If that master's host is gone for good while every other node is fenced, the
group waits for it: nothing the Sentinels could promote shows what it holds (Redis 7.0 keeps no
replication offset across a restart with AOF). This is the operator's way out. It compares what
each reachable node can show of its freshness, the time of its last append to its AOF (the node
that went down last received writes last), refuses a node that is not the freshest unless told
to take it anyway, lifts that one node's fence and has the Sentinels fail over to it.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from provision.ssh import hostlock, remote
from provision.facts import rediscli
from provision.core import render
from provision.checks import status
from provision.base.errors import ProvisionError, UsageError
from provision.ops.failover import FailoverResult, named_group, wait_for_new_master
from provision.core.plan import Plan

#: two nodes whose last AOF appends are closer than this cannot be told apart by them
SAME_MOMENT_SECONDS = 0.5


@dataclass(frozen=True)
class Candidate:
    host: str
    role: str
    link: str | None
    priority: str | None
    last_append: float | None     # seconds since the epoch of the newest AOF file's mtime


def last_append_time(stat_output: str) -> float | None:
    """The newest mtime in `stat -c %Y.%N`-like output: one `SECONDS` float per line."""
    times = []
    for line in stat_output.split():
        try:
            times.append(float(line))
        except ValueError:
            continue
    return max(times) if times else None


def choose(candidates: list[Candidate], wanted: str | None, allow_stale: bool) -> Candidate:
    """The node to promote: the named one, or the freshest; refused when freshness cannot tell."""
    known = [c for c in candidates if c.last_append is not None]
    if not known:
        raise ProvisionError("no reachable node shows when it last appended to its AOF; name one with --host")
    freshest = max(known, key=lambda c: c.last_append)
    ties = [c.host for c in known if c is not freshest and freshest.last_append - c.last_append < SAME_MOMENT_SECONDS]
    if wanted is None:
        if ties:
            raise ProvisionError(f"{freshest.host} and {', '.join(ties)} last appended to their AOF within "
                                 f"{SAME_MOMENT_SECONDS}s of each other; name the node to promote with --host")
        return freshest
    chosen = next((c for c in candidates if c.host == wanted), None)
    if chosen is None:
        raise UsageError(f"--host {wanted}: not a reachable node of the group ({', '.join(c.host for c in candidates)})")
    if chosen is not freshest and chosen.host not in ties and not allow_stale:
        raise ProvisionError(f"{wanted} is not the freshest reachable node: {freshest.host} appended to its AOF "
                             f"{freshest.last_append - (chosen.last_append or 0):.1f}s later; promoting {wanted} would "
                             "lose those writes (--allow-stale to do it anyway)")
    return chosen


def run(plan: Plan, group_name: str | None, wanted: str | None = None, allow_stale: bool = False,
        check: bool = False, say=print) -> FailoverResult | None:
    group = named_group(plan, group_name)
    connections, _ = remote.open_all(plan) if check else hostlock.open_locked(plan, "promote")
    try:
        view = next(v for v in status.view(plan, connections) if v.group == group.name)
        named = plan.host_by_data_address(view.sentinel_master) if view.sentinel_master else None
        if named is None:
            raise ProvisionError(f"group {group.name}: the sentinels do not agree on a master; nothing to promote from")
        if any(node.host == named.name and node.role == "master" for node in view.nodes):
            raise ProvisionError(f"group {group.name}: its master {named.name} is up; for a switchover use "
                                 "`invoke failover`")
        candidates = [_candidate(plan, connections[name], name, group) for name in group.members
                      if name != named.name and name in connections]
        candidates = [c for c in candidates if c.role == "slave"]
        for c in candidates:
            when = time.strftime("%H:%M:%S", time.localtime(c.last_append)) if c.last_append else "unknown"
            say(f"  {c.host}: {c.role}, link {c.link}, replica-priority {c.priority}, last AOF append {when}"
                + (f".{int(c.last_append % 1 * 1000):03d}" if c.last_append else ""))
        chosen = choose(candidates, wanted, allow_stale)
        say(f"group {group.name}: {named.name} (named master) is down; promoting {chosen.host}")
        if check:
            return None
        address = plan.inventory.host(chosen.host).data_address
        error = rediscli.reply_error(rediscli.call(
            connections[chosen.host], plan.layout, address, group.port,
            ["CONFIG", "SET", "replica-priority", str(render.PROMOTABLE_PRIORITY)], user=plan.inventory.acl.admin))
        if error:
            raise ProvisionError(f"{chosen.host}: CONFIG SET replica-priority: {error}")
        started = time.monotonic()
        _fail_over(plan, connections, group)
        new_master, seconds = wait_for_new_master(plan, connections, group, named.name, started)
        return FailoverResult(group.name, named.name, new_master, seconds, seconds)
    finally:
        remote.close_all(connections)


def _candidate(plan: Plan, connection, name: str, group) -> Candidate:
    address = plan.inventory.host(name).data_address
    info = rediscli.parse_info(rediscli.call(connection, plan.layout, address, group.port, ["INFO", "replication"],
                                             user=plan.inventory.acl.admin, timeout=5).stdout)
    aof_dir = shlex.quote(plan.layout.node_data_dir(group.port) + "/appendonlydir")
    stat = connection.run(f"stat -c %.9Y {aof_dir}/*.aof 2>/dev/null")
    return Candidate(name, info.get("role", "down"), info.get("master_link_status"), info.get("slave_priority"),
                     last_append_time(stat.stdout))


def _fail_over(plan: Plan, connections, group, seconds: float = 15) -> None:
    """SENTINEL FAILOVER, again while the Sentinel has not yet seen the lifted fence (it reads a
    replica's priority from INFO, at most a second old once the master is down)."""
    sentinel = next((name for name in plan.inventory.sentinels if name in connections), None)
    if sentinel is None:
        raise ProvisionError(f"group {group.name}: no reachable sentinel to fail over through")
    deadline = time.monotonic() + seconds
    while True:
        error = rediscli.reply_error(rediscli.sentinel_call(connections[sentinel], plan, plan.inventory.host(sentinel),
                                                            ["SENTINEL", "FAILOVER", group.name]))
        if not error:
            return
        if "NOGOODSLAVE" not in error or time.monotonic() > deadline:
            raise ProvisionError(f"{sentinel}: SENTINEL FAILOVER {group.name}: {error}")
        time.sleep(0.5)
