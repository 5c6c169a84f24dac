"""Members leaving: a host marked `state: absent`, a host taken out of a group or out of
`sentinels`. What ran there is stopped (its data stays where it is), and then the sentinels are
made to forget it: SENTINEL RESET, one sentinel at a time, each waited for until it has found
the remaining replicas and sentinels again, so a majority always knows the group.

A group taken out of the inventory is only unmonitored (SENTINEL REMOVE, steps/sentinel.py); its
nodes keep running with their data until the user stops them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from provision.steps import primitives
from provision.facts import rediscli
from provision.core import render
from provision.base.errors import HostError
from provision.steps.hostrun import HostRun
from provision.core.plan import Plan
from provision.facts.poll import poll
from provision.facts.topology import Monitored
from provision.ssh.remote import Remote
from provision.steps import services

DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})


def unwanted_processes(run: HostRun, monitored: tuple[Monitored, ...]):
    """(port or None for the sentinel, why) of what runs on the host and should not: everything
    on a retiring host; a sentinel the inventory no longer lists; a node of a group that no
    longer has this host. A node of a group the inventory dropped is left running."""
    if run.facts is None:
        return []
    host_plan = run.host_plan
    address = host_plan.host.data_address
    wanted_ports = {node.port for node in host_plan.nodes}
    sentinel_port = run.plan.inventory.redis.sentinel_port
    groups = {group.name for group in run.plan.inventory.groups}
    member_of = {member: item.name for item in monitored for member in (item.master, *item.replicas)}
    found = []
    for process in run.facts.processes:
        if process.sentinel or process.port == sentinel_port:
            if host_plan.retiring or not host_plan.runs_sentinel:
                found.append((None, "the host is state: absent" if host_plan.retiring else "no longer in sentinels"))
        elif host_plan.retiring:
            found.append((process.port, "the host is state: absent"))
        elif process.port not in wanted_ports and member_of.get((address, process.port)) in groups:
            found.append((process.port, f"no longer a member of group {member_of[(address, process.port)]}"))
    return found


def retire(run: HostRun, monitored: tuple[Monitored, ...], keep_ports: frozenset[int] = frozenset()) -> None:
    """Stop what should not run here (replicas first is the caller's order: a master is refused
    before this, preflight), and take a retiring host out of rc.local. Data stays. A port in
    `keep_ports` (a cluster node its cluster still counts on) is left running, and said so."""
    run.begin("retire")
    for port in sorted(keep_ports):
        run.say(f"{run.name}: redis-server :{port} left running: the cluster still counts it as a member "
                 "(its slots or its forgetting did not happen this run); the next deploy retries")
    for port, why in unwanted_processes(run, monitored):
        if port in keep_ports:
            continue
        what = "redis-sentinel" if port is None else f"redis-server :{port}"
        kept = "" if port is None else f"; its data stays in {run.layout.node_data_dir(port)}"
        run.act(f"stop {what} ({why}{kept})", lambda port=port: services.stop(run, port))
    if keep_ports:
        return      # its boot entries stay while its node does
    if run.host_plan.retiring and services.uses_systemd(run):
        units = [render.SENTINEL_UNIT] + [render.server_unit_name(process.port) for process in run.facts.processes
                                          if not process.sentinel]
        run.act(f"systemctl disable {' '.join(units)} (data stays)",
                lambda: run.remote.run("systemctl disable --quiet " + " ".join(units)))
    if run.host_plan.retiring:
        current = primitives.read_file(run, run.layout.rc_local)
        if current is not None and render.RC_LOCAL_BEGIN in current:
            primitives.ensure_file(run, run.layout.rc_local, render.without_rc_local_block(current), 0o755)


@dataclass(frozen=True)
class Forgotten:
    sentinel: str
    group: str
    stale: tuple[str, ...]       # what it knew that is gone: "replica 10.0.0.4:6379", "sentinel 10.0.0.4"
    seconds: float


def stale_entries(plan: Plan, group, replicas: list[dict], sentinels: list[dict]) -> tuple[list[str], list[str]]:
    """(down, up): what a sentinel knows of a group beyond the inventory, split by whether it is
    down (safe to forget) or still running (a RESET would find it again)."""
    members = {(plan.inventory.host(name).data_address, str(group.port)) for name in group.members}
    sentinel_addresses = {plan.inventory.host(name).data_address for name in plan.inventory.sentinels}
    down, up = [], []
    for record in replicas:
        if (record.get("ip"), record.get("port")) not in members:
            flags = set(record.get("flags", "").split(","))
            (down if flags & DOWN_FLAGS else up).append(f"replica {record.get('ip')}:{record.get('port')}")
    for record in sentinels:
        if record.get("ip") not in sentinel_addresses:
            flags = set(record.get("flags", "").split(","))
            (down if flags & DOWN_FLAGS else up).append(f"sentinel {record.get('ip')}")
    return down, up


def entry_address(entry: str) -> str:
    """The address in a stale entry ("replica 10.0.0.4:6379", "sentinel 10.0.0.4")."""
    where = entry.split(" ", 1)[1]
    return where.rsplit(":", 1)[0] if entry.startswith("replica ") else where


def what_to_forget(plan: Plan, down: list[str], up: list[str], check: bool) -> tuple[list[str], list[str]]:
    """(to forget by a RESET, still running): a group is reset on a sentinel only when nothing
    stale there still runs, since a RESET would find a running one again and the wait for the
    inventory's counts would fail. In check mode, what runs on one of the inventory's hosts
    counts as down: this run's retire wave stops it before the forget wave."""
    if check:
        addresses = {host.data_address for host in plan.inventory.hosts}
        stopped = [entry for entry in up if entry_address(entry) in addresses]
        down, up = down + stopped, [entry for entry in up if entry not in stopped]
    return ([] if up else down), up


def forget_departed(plan: Plan, remotes: dict[str, Remote], say, check: bool = False,
                    settle_seconds: float = 15) -> list[Forgotten]:
    """For each sentinel in turn, each group: when it knows a replica or sentinel the inventory
    no longer has, and that one is down, SENTINEL RESET the group there and wait until it sees
    exactly the inventory's replicas and sentinels again. One that still runs is named, not
    reset (it would be found again); stale entries that are not down yet get `settle_seconds`
    (Sentinel marks a stopped peer when its link drops)."""
    done = []
    expected_sentinels = len(plan.inventory.sentinels) - 1
    for host in plan.sentinel_hosts:
        remote = remotes.get(host.name)
        if remote is None:
            continue
        for group in plan.inventory.groups:
            def call(args, host=host, remote=remote):
                return rediscli.checked(rediscli.sentinel_call(remote, plan, host, args, timeout=10), host.name,
                                        "forget", " ".join(args[:3]))
            state = rediscli.parse_pairs(call(["SENTINEL", "MASTER", group.name]))
            if int(state.get("num-slaves", 0)) <= len(group.replicas) and \
                    int(state.get("num-other-sentinels", 0)) <= expected_sentinels:
                continue
            deadline = time.monotonic() + settle_seconds
            while True:
                down, up = stale_entries(plan, group, rediscli.parse_records(call(["SENTINEL", "REPLICAS", group.name]), "name"),
                                         rediscli.parse_records(call(["SENTINEL", "SENTINELS", group.name]), "name"))
                if not up or check or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            forget, running = what_to_forget(plan, down, up, check)
            if running:
                say(f"{host.name}: forget: sentinel knows {', '.join(running)} in group {group.name}, not in the "
                    "inventory and still running: mark its host `state: absent` (or stop it) and deploy again; "
                    "nothing reset there (a RESET would find it again)")
                continue
            if not forget:
                continue
            say(f"{host.name}: forget: {'would ' if check else ''}SENTINEL RESET {group.name} (forgets {', '.join(forget)})")
            if check:
                done.append(Forgotten(host.name, group.name, tuple(forget), 0.0))
                continue
            started = time.monotonic()
            call(["SENTINEL", "RESET", group.name])
            _wait_rediscovered(host.name, group, expected_sentinels, lambda: rediscli.parse_pairs(
                call(["SENTINEL", "MASTER", group.name])))
            done.append(Forgotten(host.name, group.name, tuple(forget), time.monotonic() - started))
    return done


def _wait_rediscovered(name: str, group, expected_sentinels: int, read, seconds: float = 60) -> None:
    done, state = poll(read, lambda state: int(state.get("num-slaves", -1)) == len(group.replicas) and
                       int(state.get("num-other-sentinels", -1)) == expected_sentinels, seconds, 0.2)
    if done:
        return
    raise HostError(name, "forget", f"SENTINEL RESET {group.name}",
                    f"after {seconds:.0f}s the sentinel sees {state.get('num-slaves')} replica(s) and "
                    f"{state.get('num-other-sentinels')} other sentinel(s), not {len(group.replicas)} and "
                    f"{expected_sentinels}")
