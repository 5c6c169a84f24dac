"""A failover drill with numbers: a real client writes while the master fails.

A writer (redis-py through redis.sentinel.Sentinel, as applications connect) writes
sequence-numbered keys and confirms each with WAIT 1: a write counts as acknowledged only once a
replica has it. The master is then made to fail over plain SSH, so the same drill runs on real
hosts and lab hosts:
  kill       SIGKILL redis-server (a crash); it is started again afterwards
  stop       SIGSTOP, like `DEBUG SLEEP` (a hung process); SIGCONT is scheduled on the host itself
  partition  the host's data interface goes down; the host brings it back itself after --seconds,
             so the drill never depends on reaching a host it has cut off
  restart    SIGKILL, then started again at once (before down-after-milliseconds), through the
             host's start guard, as a supervisor would
  reboot     the whole host: `lab.restart` on a lab host; on a real host `reboot` over SSH, only
             with allow_reboot (the CLI's --allow-reboot)
  cascade    every host of the group rebooted one after another, `spacing` seconds apart, in an
             order that names the master's place (replica,master,replica ...): a rack's power blip
             or a wave of kernel updates. The group must come back by itself, with every
             acknowledged write, on whichever node ends up master
The writer mixes plain SET, MULTI/EXEC, EVAL and FCALL writes (Redis replicates and persists the
last three as transactions). Measured: time until every sentinel names a new master, the longest
gap between acknowledged writes, acknowledged writes missing afterwards per kind, on the new
master and on every node, and how long two nodes accepted writes at once (rolewatch, must be 0).
"""
from __future__ import annotations

import contextlib
import secrets
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from provision.facts import host as facts
from provision.ops import failover, rolewatch
from provision.ssh import hostlock, remote
from provision.base import output
from provision.checks import status, verify
from provision.base.errors import ProvisionError, UsageError
from provision.core.plan import Plan
from provision.steps import services

MODES = ("kill", "stop", "partition", "restart", "reboot", "cascade")
CASCADE_ORDERS = ("replica,master,replica", "master,replica,replica", "replica,replica,master")
WRITE_KINDS = ("set", "multi", "eval", "fcall")
WAIT_TIMEOUT_MS = 500
FUNCTION_LIBRARY = """#!lua name=redis_provision_drill
redis.register_function('redis_provision_drill_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
"""


@dataclass
class WriterLog:
    attempted: int = 0
    acknowledged: list[int] = field(default_factory=list)
    unacknowledged: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    success_times: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)     # acknowledged, missing on the master (once counted)


def write_kind(sequence: int) -> str:
    return WRITE_KINDS[sequence % len(WRITE_KINDS)]


def drill_key(run_id: str, sequence: int) -> str:
    return f"drill:{run_id}:{write_kind(sequence)}:{sequence}"


@dataclass(frozen=True)
class KindCount:
    attempted: int
    acknowledged: int
    lost: int                  # acknowledged, missing on the master afterwards
    lost_on_some_node: int     # acknowledged, missing on at least one node once resynced


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
    kinds: dict = field(default_factory=dict)          # kind → KindCount
    two_master_seconds: float = 0.0
    role_watch: str = ""

    @property
    def lost_anywhere(self) -> int:
        return sum(count.lost_on_some_node for count in self.kinds.values())

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.lost_anywhere == 0
                and (self.new_master != self.old_master or self.mode.startswith("cascade"))
                and not self.verify_failures and self.unavailable_seconds != float("inf")
                and self.two_master_seconds == 0)


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
        key, kind = drill_key(run_id, sequence), write_kind(sequence)
        try:
            if kind == "set":
                master.set(key, sequence)
            elif kind == "multi":
                transaction = master.pipeline(transaction=True)
                transaction.set(key, sequence)
                transaction.incr(f"drill:{run_id}:multi-count")
                transaction.execute()
            elif kind == "eval":
                master.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, key, sequence)
            else:
                master.fcall("redis_provision_drill_set", 1, key, sequence)
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


@contextlib.contextmanager
def writing(plan: Plan, group):
    """The drill's mixed writer running for the length of a `with` block (tests measure reboots
    and deploys with it). Yields (run_id, log); the writer has stopped when the block ends."""
    master = status_master(plan, group)
    _load_function(plan, master, group)
    run_id, log, stop = secrets.token_hex(4), WriterLog(), threading.Event()
    writer = threading.Thread(target=_writer, args=(plan, group.name, run_id, stop, log), daemon=True)
    writer.start()
    try:
        yield run_id, log
    finally:
        stop.set()
        writer.join(timeout=5)


def status_master(plan: Plan, group) -> str:
    """The host the sentinels agree is the group's master now, over connections of its own."""
    connections, _ = remote.open_all(plan)
    try:
        return _agreed_master(plan, connections, group)
    finally:
        remote.close_all(connections)


def _agreed_master(plan: Plan, connections, group) -> str:
    current = next(v for v in status.view(plan, connections) if v.group == group.name)
    if current.sentinel_master is None:
        raise ProvisionError(f"group {group.name}: sentinels do not agree on a master; not drilling")
    return plan.host_by_data_address(current.sentinel_master).name


def count_lost(plan: Plan, group, run_id: str, log: WriterLog) -> dict[str, "KindCount"]:
    """count of lost writes per kind against the master the sentinels name now."""
    return _count_lost(plan, group, status_master(plan, group), run_id, log)


def _client(plan: Plan, group, host_name: str) -> redis.Redis:
    """A plain redis-py client to one node, logged in as the tool's admin."""
    host, admin = plan.inventory.host(host_name), plan.inventory.acl.admin
    return redis.Redis(host=host.data_address, port=group.port, username=admin.name, password=admin.password.value,
                       socket_timeout=5)


def _load_function(plan: Plan, master_name: str, group) -> None:
    """The FCALL writes' function, loaded on the master (replicated and persisted from there)."""
    client = _client(plan, group, master_name)
    try:
        client.function_load(FUNCTION_LIBRARY, replace=True)
    finally:
        client.close()


@dataclass(frozen=True)
class HostReboot:
    """How a test lab reboots its own hosts, handed in by whoever has the lab (a clone's tasks.py,
    the tests): the package never imports the lab, and a pip install has none."""
    owns: Callable[[Plan, str], bool]      # is this one of the lab's running hosts
    reboot: Callable[[str], None]


@dataclass(frozen=True)
class RebootRules:
    allow_reboot: bool = False             # the operator lets the drill reboot real hosts
    host_reboot: HostReboot | None = None


def _is_lab_host(plan: Plan, host_name: str, host_reboot: HostReboot | None) -> bool:
    return host_reboot is not None and host_reboot.owns(plan, host_name)


def _require_rebootable(plan: Plan, host_name: str, allowed: bool, host_reboot: HostReboot | None,
                        what: str = "--mode reboot reboots it", flag: str = "--allow-reboot") -> None:
    if not allowed and not _is_lab_host(plan, host_name, host_reboot):
        raise UsageError(f"{host_name} is not a lab host: {what} for real; pass {flag} to do that")


def _reboot(plan: Plan, connection, host_name: str, rules: RebootRules) -> None:
    """A lab host reboots through the lab; a real one only when the operator allowed it."""
    if _is_lab_host(plan, host_name, rules.host_reboot):
        rules.host_reboot.reboot(host_name)
        return
    _require_rebootable(plan, host_name, rules.allow_reboot, rules.host_reboot)
    connection.check("drill", "nohup sh -c 'sleep 1; systemctl reboot || reboot' >/dev/null 2>&1 &")


def _inject(plan: Plan, connection, host_name: str, port: int, mode: str, seconds: float,
            rules: RebootRules = RebootRules()) -> None:
    """Make the master fail. Recovery for stop and partition is scheduled on the host itself."""
    pid = facts.running_pid(connection, plan.layout, port)
    if pid is None:
        raise ProvisionError(f"{host_name}: no redis-server :{port} running to fail")
    if mode == "kill":
        connection.check("drill", f"kill -KILL {pid}")
    elif mode == "restart":
        guard = shlex.quote(plan.layout.start_script)
        connection.check("drill", f"kill -KILL {pid}; nohup {guard} {port} >> {shlex.quote(plan.layout.start_log(port))}"
                                  " 2>&1 < /dev/null &")
    elif mode == "reboot":
        _reboot(plan, connection, host_name, rules)
    elif mode == "stop":
        # setsid: the recovery is the host's own, whatever becomes of this SSH session
        connection.check("drill", f"kill -STOP {pid}; setsid sh -c 'sleep {seconds:.0f}; kill -CONT {pid}' "
                                  f">/dev/null 2>&1 < /dev/null &")
    elif mode == "partition":
        address = plan.inventory.host(host_name).data_address
        prefix = shlex.quote(address + "/")
        device = connection.check("drill", f"ip -o addr show | awk -v p={prefix} 'index($4, p) == 1 {{print $2}}'"
                                  ).stdout.strip()
        if not device:
            raise ProvisionError(f"{host_name}: no interface carries {address}")
        connection.check("drill", f"setsid sh -c 'ip link set dev {shlex.quote(device)} down; sleep {seconds:.0f}; "
                                  f"ip link set dev {shlex.quote(device)} up' >/dev/null 2>&1 < /dev/null &")


def cascade_hosts(group, master: str, order: str) -> list[str]:
    """The group's hosts in the order a cascade reboots them; `order` names the master's place
    among them (the replicas take the other places in inventory order)."""
    if order not in CASCADE_ORDERS:
        raise UsageError(f"--order must be one of {', '.join(CASCADE_ORDERS)}, not {order!r}")
    replicas = [name for name in group.members if name != master]
    places = order.split(",")
    if len(replicas) < places.count("replica"):
        raise UsageError(f"group {group.name} has {len(replicas)} replica(s); --order {order} needs "
                         f"{places.count('replica')}")
    return [master if place == "master" else replicas.pop(0) for place in places]


def settled_master(plan: Plan, group) -> str | None:
    """The group's master once it has settled: every sentinel names it, it is a master, and every
    other node replicates from it with its link up; None before that."""
    address = plan.inventory.host
    admin = plan.inventory.acl.admin
    named = set()
    for name in plan.inventory.sentinels:
        sentinel = redis.Redis(host=address(name).data_address, port=plan.inventory.redis.sentinel_port,
                               username=admin.name, password=admin.password.value, socket_timeout=1,
                               socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            reply = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.name)
        except (redis.RedisError, OSError):
            return None
        finally:
            sentinel.close()
        named.add(reply[0].decode() if reply else None)
    if len(named) != 1 or None in named:
        return None
    master = plan.host_by_data_address(named.pop())
    if master is None:
        return None
    for name in group.members:
        client = _client(plan, group, name)
        try:
            info = client.info("replication")
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()
        if name == master.name and info.get("role") != "master":
            return None
        if name != master.name and (info.get("role") != "slave" or info.get("master_host") != master.data_address
                                    or info.get("master_link_status") != "up"):
            return None
    return master.name


def _wait_settled(plan: Plan, group, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        master = settled_master(plan, group)
        if master:
            return master
        time.sleep(0.2)
    raise ProvisionError(f"group {group.name} did not settle (one master all sentinels name, every node linked to "
                         f"it) within {timeout:.0f}s after the cascade")


def _cascade(plan: Plan, connections, group, old_master: str, order: str, spacing: float, say,
             rules: RebootRules, settle_timeout: float = 240) -> DrillReport:
    """Reboot the group's hosts `spacing` seconds apart under the writer, then wait, touching
    nothing, until the group has settled by itself."""
    hosts = cascade_hosts(group, old_master, order)
    for name in hosts:
        _require_rebootable(plan, name, rules.allow_reboot, rules.host_reboot)
    _load_function(plan, old_master, group)
    run_id, log, stop = secrets.token_hex(4), WriterLog(), threading.Event()
    with rolewatch.RoleWatch(plan, group) as watch:
        writer = threading.Thread(target=_writer, args=(plan, group.name, run_id, stop, log), daemon=True)
        writer.start()
        try:
            time.sleep(2)
            if not log.acknowledged:
                raise ProvisionError(f"the writer got no acknowledged write in 2s before the cascade: {log.errors}")
            say(f"drill cascade: rebooting {', '.join(hosts)} ({order}) {spacing:g}s apart after "
                f"{len(log.acknowledged)} acknowledged writes")
            fault_at = time.monotonic()
            last_ok_before = log.success_times[-1]

            def reboot_at(delay: float, name: str) -> None:
                time.sleep(max(0.0, fault_at + delay - time.monotonic()))
                _reboot(plan, connections[name], name, rules)
            faults = [threading.Thread(target=reboot_at, args=(index * spacing, name), daemon=True)
                      for index, name in enumerate(hosts)]
            for fault in faults:
                fault.start()
            for fault in faults:
                fault.join()
            master_fault_at = fault_at + hosts.index(old_master) * spacing
            new_master = _wait_settled(plan, group, settle_timeout)
            settled_at = time.monotonic()
            say(f"settled: {new_master} is master, every node linked, "
                f"{settled_at - master_fault_at:.2f}s after the master's reboot")
            while (not log.success_times or log.success_times[-1] < settled_at) and \
                    time.monotonic() < settled_at + 30:
                time.sleep(0.1)
            time.sleep(2)
        finally:
            stop.set()
            writer.join(timeout=5)
    recovered = bool(log.success_times) and log.success_times[-1] >= settled_at
    kinds = _count_lost(plan, group, new_master, run_id, log)
    failures = [f"{r.host} {r.check}: {r.detail}" for r in _verify_settled(plan, timeout=settle_timeout / 2)]
    return DrillReport(f"cascade {order} {spacing:g}s", group.name, old_master, new_master,
                       settled_at - master_fault_at,
                       longest_gap(log.success_times, last_ok_before) if recovered else float("inf"),
                       log.attempted, len(log.acknowledged), sum(count.lost for count in kinds.values()),
                       settled_at - fault_at, tuple(failures), dict(log.errors), kinds,
                       watch.two_master_seconds, watch.summary())


def run(plan: Plan, mode: str = "kill", seconds: float = 10, group_name: str | None = None, say=output.say,
        allow_reboot: bool = False, order: str = CASCADE_ORDERS[0], spacing: float = 1.0,
        allow_partition: bool = False, settle_seconds: float = 240,
        host_reboot: HostReboot | None = None) -> DrillReport:
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    group = next((g for g in plan.inventory.groups if g.name == group_name), None) if group_name \
        else plan.inventory.groups[0]
    if group is None:
        raise UsageError(f"no group {group_name!r}")
    connections, unreachable = hostlock.open_locked(plan, "drill")
    if unreachable:
        remote.close_all(connections)
        raise ProvisionError(f"hosts unreachable before the drill: {unreachable}")
    watch = None
    try:
        old_master = _agreed_master(plan, connections, group)
        rules = RebootRules(allow_reboot, host_reboot)
        if mode == "cascade":
            return _cascade(plan, connections, group, old_master, order, spacing, say, rules, settle_seconds)
        if mode == "reboot":
            _require_rebootable(plan, old_master, allow_reboot, host_reboot)
        if mode == "partition":
            _require_rebootable(plan, old_master, allow_partition, host_reboot, "--mode partition cuts its network",
                                "--allow-partition")
        _load_function(plan, old_master, group)
        run_id = secrets.token_hex(4)
        log, stop = WriterLog(), threading.Event()
        watch = rolewatch.RoleWatch(plan, group).__enter__()
        writer = threading.Thread(target=_writer, args=(plan, group.name, run_id, stop, log), daemon=True)
        writer.start()
        time.sleep(2)
        if not log.acknowledged:
            stop.set()
            raise ProvisionError(f"the writer got no acknowledged write in 2s before the fault: {log.errors}")
        say(f"drill {mode}: failing master {old_master} of {group.name} after {len(log.acknowledged)} acknowledged writes")
        fault_at = time.monotonic()
        last_ok_before = log.success_times[-1]
        others = {name: c for name, c in connections.items() if name != old_master}
        _inject(plan, connections[old_master], old_master, group.port, mode, seconds, rules)
        # Seconds until every sentinel names a new master (old master's own view excluded: it may be cut off).
        switched = failover.wait_for_new_master(plan, others, group, old_master, fault_at)
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
        watch.__exit__(None, None, None)
        kinds = _count_lost(plan, group, switched[0], run_id, log)
        failures = [f"{r.host} {r.check}: {r.detail}" for r in _verify_settled(plan)]
        lost = sum(count.lost for count in kinds.values())
        return DrillReport(mode, group.name, old_master, switched[0], switched[1], unavailable, log.attempted,
                           len(log.acknowledged), lost, rejoin.seconds_to_rejoin, tuple(failures), dict(log.errors),
                           kinds, watch.two_master_seconds, watch.summary())
    finally:
        if watch is not None:
            watch.__exit__(None, None, None)
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
        connections, unreachable = hostlock.open_locked(plan, "drill")
        if not unreachable or time.monotonic() > deadline:
            return connections, unreachable
        for connection in connections.values():
            connection.close()
        time.sleep(0.5)


def _present(client: redis.Redis, run_id: str, sequences: list[int]) -> set[int]:
    present = set()
    for start in range(0, len(sequences), 500):
        chunk = sequences[start:start + 500]
        values = client.mget([drill_key(run_id, n) for n in chunk])
        present.update(n for n, value in zip(chunk, values) if value is not None)
    return present


def _count_lost(plan: Plan, group, master_name: str, run_id: str, log: WriterLog) -> dict[str, KindCount]:
    """Per kind: acknowledged writes missing on the master, and on any node once every replica
    has caught up with the master (then the drill's keys are deleted)."""
    # The group may have moved on since the caller looked (a late failover): count on the node
    # that is master now, once it has settled.
    deadline = time.monotonic() + 60
    while (now := settled_master(plan, group)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    master_name = now or master_name
    clients = {name: _client(plan, group, name) for name in group.members}
    try:
        master = clients[master_name]
        master.wait(len(group.replicas), 10000)   # every replica has the master's data before we look
        acknowledged = set(log.acknowledged)
        on_master = _present(master, run_id, log.acknowledged)
        missing_somewhere = set(acknowledged - on_master)
        for name, client in clients.items():
            if name != master_name:
                missing_somewhere |= acknowledged - _present(client, run_id, log.acknowledged)
        log.lost = sorted(acknowledged - on_master)
        attempted = [write_kind(n) for n in range(1, log.attempted + 1)]
        kinds = {kind: KindCount(attempted=attempted.count(kind),
                                 acknowledged=sum(1 for n in acknowledged if write_kind(n) == kind),
                                 lost=sum(1 for n in acknowledged - on_master if write_kind(n) == kind),
                                 lost_on_some_node=sum(1 for n in missing_somewhere if write_kind(n) == kind))
                 for kind in WRITE_KINDS}
        keys = [drill_key(run_id, n) for n in log.acknowledged] + [f"drill:{run_id}:multi-count"]
        for start in range(0, len(keys), 500):
            master.delete(*keys[start:start + 500])
        return kinds
    finally:
        for client in clients.values():
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
        *[f"    {kind:6} {count.attempted:5} / {count.acknowledged:5} / {count.lost} lost on the master, "
          f"{count.lost_on_some_node} missing on some node" for kind, count in report.kinds.items()],
        f"  two writable masters at once:             {report.two_master_seconds:.2f}s",
        f"  role watch:                               {report.role_watch}",
        f"  old master back as replica after:         {report.old_master_rejoined_seconds:.2f}s",
        f"  client errors during the drill:           {report.errors or 'none'}",
        f"  verify afterwards:                        {'pass' if not report.verify_failures else report.verify_failures}",
    ])
