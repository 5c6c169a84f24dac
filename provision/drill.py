"""A failover drill with numbers: a real client writes while the master fails.

A writer (redis-py through redis.sentinel.Sentinel, as applications connect) writes
sequence-numbered keys and confirms each with WAIT 1: a write counts as acknowledged only once a
replica has it. The master is then made to fail over plain SSH, so the same drill runs on real
hosts and lab hosts:
  kill       SIGKILL redis-server (a crash); it is started again afterwards
  stop       SIGSTOP, like `DEBUG SLEEP` (a hung process); SIGCONT is scheduled on the host itself
  partition  the host's data interface goes down; the host brings it back itself after --seconds,
             so the drill never depends on reaching a host it has cut off
Measured: time until every sentinel names a new master, the longest gap between acknowledged
writes, and acknowledged writes missing from the new master afterwards (must be 0).
"""
from __future__ import annotations

import secrets
import shlex
import threading
import time
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from provision import failover, status, verify
from provision.errors import ProvisionError
from provision.plan import Plan
from provision.steps import services

MODES = ("kill", "stop", "partition")
WAIT_TIMEOUT_MS = 500


@dataclass
class WriterLog:
    attempted: int = 0
    acknowledged: list[int] = field(default_factory=list)
    unacknowledged: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    success_times: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class DrillReport:
    mode: str
    group: str
    old_master: str
    new_master: str
    seconds_to_new_master: float
    unavailable_seconds: float
    attempted: int
    acknowledged: int
    lost: int
    old_master_rejoined_seconds: float
    verify_failures: tuple[str, ...]
    errors: dict

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.new_master != self.old_master and not self.verify_failures
                and self.unavailable_seconds != float("inf"))


def _writer(plan: Plan, group_name: str, run_id: str, stop: threading.Event, log: WriterLog) -> None:
    admin = plan.inventory.acl.admin
    sentinel = Sentinel([(plan.inventory.host(name).data_address, plan.inventory.redis.sentinel_port)
                         for name in plan.inventory.sentinels],
                        # Explicit: redis-py builds sentinel connections from socket_* kwargs only,
                        # leaving them its default Retry (3 tries with backoff), which stalls the
                        # client for seconds on a partitioned sentinel.
                        sentinel_kwargs={"socket_timeout": 0.5, "socket_connect_timeout": 0.5,
                                         "retry": Retry(NoBackoff(), 0), "username": admin.name,
                                         "password": admin.password.value})
    master = sentinel.master_for(group_name, username=admin.name, password=admin.password.value,
                                 socket_timeout=1.0, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    sequence = 0
    while not stop.is_set():
        sequence += 1
        log.attempted += 1
        try:
            master.set(f"drill:{run_id}:{sequence}", sequence)
            replicas = master.wait(1, WAIT_TIMEOUT_MS)
        except (redis.RedisError, OSError) as error:
            name = type(error).__name__
            log.errors[name] = log.errors.get(name, 0) + 1
            time.sleep(0.05)
            continue
        if replicas >= 1:
            log.acknowledged.append(sequence)
            log.success_times.append(time.monotonic())
        else:
            log.unacknowledged += 1
        time.sleep(0.01)


def _inject(plan: Plan, connection, host_name: str, port: int, mode: str, seconds: float) -> None:
    """Make the master fail. Recovery for stop and partition is scheduled on the host itself."""
    pid = services.running_pid_on(connection, plan.layout, port)
    if pid is None:
        raise ProvisionError(f"{host_name}: no redis-server :{port} running to fail")
    if mode == "kill":
        connection.check("drill", f"kill -KILL {pid}")
    elif mode == "stop":
        connection.check("drill", f"kill -STOP {pid}; nohup sh -c 'sleep {seconds:.0f}; kill -CONT {pid}' "
                                  f">/dev/null 2>&1 &")
    elif mode == "partition":
        address = plan.inventory.host(host_name).data_address
        device = connection.check("drill", f"ip -o addr show | awk '$4 ~ /^{address}\\// {{print $2}}'").stdout.strip()
        if not device:
            raise ProvisionError(f"{host_name}: no interface carries {address}")
        connection.check("drill", f"nohup sh -c 'ip link set dev {shlex.quote(device)} down; sleep {seconds:.0f}; "
                                  f"ip link set dev {shlex.quote(device)} up' >/dev/null 2>&1 &")


def run(plan: Plan, mode: str = "kill", seconds: float = 10, group_name: str | None = None, say=print) -> DrillReport:
    if mode not in MODES:
        raise ProvisionError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    group = next((g for g in plan.inventory.groups if g.name == group_name), None) if group_name \
        else plan.inventory.groups[0]
    if group is None:
        raise ProvisionError(f"no group {group_name!r}")
    connections, unreachable = status.open_connections(plan)
    if unreachable:
        raise ProvisionError(f"hosts unreachable before the drill: {unreachable}")
    try:
        current = next(v for v in status.view(plan, connections) if v.group == group.name)
        if current.sentinel_master is None:
            raise ProvisionError(f"group {group.name}: sentinels do not agree on a master; not drilling")
        old_master = plan.host_by_data_address(current.sentinel_master).name
        run_id = secrets.token_hex(4)
        log, stop = WriterLog(), threading.Event()
        writer = threading.Thread(target=_writer, args=(plan, group.name, run_id, stop, log), daemon=True)
        writer.start()
        time.sleep(2)
        if not log.acknowledged:
            stop.set()
            raise ProvisionError(f"the writer got no acknowledged write in 2s before the fault: {log.errors}")
        say(f"drill {mode}: failing master {old_master} of {group.name} after {len(log.acknowledged)} acknowledged writes")
        fault_at = time.monotonic()
        last_ok_before = log.success_times[-1]
        watch = {name: c for name, c in connections.items() if name != old_master}
        _inject(plan, connections[old_master], old_master, group.port, mode, seconds)
        # Seconds until every sentinel names a new master (old master's own view excluded: it may be cut off).
        switched = failover.wait_for_new_master(plan, watch, group, old_master, fault_at)
        say(f"new master {switched[0]} after {switched[1]:.2f}s")
        switched_at = fault_at + switched[1]
        # Keep writing until the client has written through the new master, then 2s more.
        while not log.success_times or log.success_times[-1] < switched_at:
            if time.monotonic() - fault_at > seconds + 60:
                break
            time.sleep(0.1)
        time.sleep(2)
        stop.set()
        writer.join(timeout=5)
        recovered = bool(log.success_times) and log.success_times[-1] >= switched_at
        unavailable = longest_gap(log.success_times, last_ok_before) if recovered else float("inf")
        rejoin_started = time.monotonic()
        if mode == "kill":
            services.start_on(connections[old_master], plan.layout, group.port)
        remaining = max(0.0, fault_at + seconds - time.monotonic())
        if mode in ("stop", "partition") and remaining:
            say(f"waiting {remaining:.0f}s for {old_master} to come back (scheduled on the host)")
        for connection in connections.values():
            connection.close()
        connections, _ = _reconnect_when_back(plan, old_master, fault_at + seconds)
        rejoin = failover.wait_for_switch(plan, connections, group, old_master, rejoin_started)
        lost = _count_lost(plan, group, switched[0], run_id, log.acknowledged)
        failures = [f"{r.host} {r.check}: {r.detail}" for r in _verify_settled(plan)]
        return DrillReport(mode, group.name, old_master, switched[0], switched[1], unavailable, log.attempted,
                           len(log.acknowledged), lost, rejoin.seconds_to_rejoin, tuple(failures), dict(log.errors))
    finally:
        for connection in connections.values():
            connection.close()


def longest_gap(success_times: list[float], since: float) -> float:
    """The longest time without an acknowledged write, from `since` on (the fault takes effect
    some milliseconds after it is sent, so the first gap need not start at the fault)."""
    times = [t for t in success_times if t >= since]
    if len(times) < 2:
        return float("inf")
    return max(later - earlier for earlier, later in zip(times, times[1:]))


def _reconnect_when_back(plan, old_master, back_at):
    deadline = max(back_at, time.monotonic()) + 30
    while True:
        connections, unreachable = status.open_connections(plan)
        if not unreachable or time.monotonic() > deadline:
            return connections, unreachable
        for connection in connections.values():
            connection.close()
        time.sleep(0.5)


def _count_lost(plan: Plan, group, master_name: str, run_id: str, acknowledged: list[int]) -> int:
    host = plan.inventory.host(master_name)
    admin = plan.inventory.acl.admin
    client = redis.Redis(host=host.data_address, port=group.port, username=admin.name, password=admin.password.value,
                         socket_timeout=5)
    try:
        present = set()
        for start in range(0, len(acknowledged), 500):
            chunk = acknowledged[start:start + 500]
            values = client.mget([f"drill:{run_id}:{n}" for n in chunk])
            present.update(n for n, value in zip(chunk, values) if value is not None)
        lost = len(set(acknowledged) - present)
        for start in range(0, len(acknowledged), 500):
            client.delete(*[f"drill:{run_id}:{n}" for n in acknowledged[start:start + 500]])
        return lost
    finally:
        client.close()


def _verify_settled(plan: Plan, timeout: float = 30.0):
    """verify, given a few seconds for Sentinel's view of the rejoined node to settle."""
    deadline = time.monotonic() + timeout
    while True:
        failures = [r for r in verify.run(plan) if not r.ok]
        if not failures or time.monotonic() > deadline:
            return failures
        time.sleep(1)


def format_report(report: DrillReport) -> str:
    return "\n".join([
        f"DRILL {report.mode} on group {report.group}: {'PASS' if report.ok else 'FAIL'}",
        f"  old master {report.old_master} -> new master {report.new_master}",
        f"  time to new master (all sentinels agree): {report.seconds_to_new_master:.2f}s",
        f"  write-unavailability window:              {report.unavailable_seconds:.2f}s",
        f"  writes attempted / acknowledged / lost:   {report.attempted} / {report.acknowledged} / {report.lost}",
        f"  old master back as replica after:         {report.old_master_rejoined_seconds:.2f}s",
        f"  client errors during the drill:           {report.errors or 'none'}",
        f"  verify afterwards:                        {'pass' if not report.verify_failures else report.verify_failures}",
    ])
