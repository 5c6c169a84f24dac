"""Read-only checks of a deployment, in parallel over hosts; each answers ok/fail with a detail
that says what and where. Roles are checked against the CURRENT topology (the Sentinels' view),
not the inventory's initial master, so a deployment after a failover verifies clean.

The one write is verify's own key (set on the master, read on each replica, then deleted): the
only proof that replication carries data end to end.
"""
from __future__ import annotations

import json
import secrets
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from provision.checks import cluster as cluster_checks
from provision.core import confparse, render
from provision.facts import host as facts, rediscli, topology
from provision.facts.poll import poll
from provision.ssh import remote
from provision.base import defaults, table
from provision.inventory import Group, Host
from provision.core.plan import Plan
from provision.ssh.remote import Remote

LAG_LIMIT_SECONDS = 10
OFFSET_CONVERGE_SECONDS = 5.0


@dataclass(frozen=True)
class CheckResult:
    host: str
    check: str
    ok: bool
    detail: str = ""


class _Checks:
    """Collects results for one host."""

    def __init__(self, host: str):
        self.host, self.results = host, []

    def add(self, check: str, ok: bool, detail: str = "") -> bool:
        self.results.append(CheckResult(self.host, check, bool(ok), detail))
        return bool(ok)


def _admin_call(plan: Plan, connection: Remote, host: Host, port: int, args: list[str]):
    return rediscli.call(connection, plan.layout, host.data_address, port, args, user=plan.inventory.acl.admin,
                         timeout=10)


def _listening(connection: Remote, address: str, port: int) -> bool:
    result = connection.run(f"ss -ltnH {shlex.quote(f'sport = :{port}')}")
    return f"{address}:{port}" in result.stdout


def _check_system(plan: Plan, connection: Remote, checks: _Checks) -> None:
    layout, redis, system = plan.layout, plan.inventory.redis, plan.inventory.system
    result = connection.run(f"{shlex.quote(layout.binary('redis-server'))} --version; "
                            f"test -x {shlex.quote(layout.binary('redis-cli'))} && test -e {shlex.quote(layout.binary('redis-sentinel'))} && echo tools-ok")
    checks.add("binaries", f"v={redis.version}" in result.stdout and "tools-ok" in result.stdout,
               result.stdout.split(" sha=")[0].strip() or result.stderr.strip() or "absent")
    live = facts.sysctl_values(connection, [key for key, _ in system.sysctl])
    for key, wanted in system.sysctl:
        checks.add(f"sysctl {key}", live[key] == str(wanted), f"{live[key] or '?'} (want {wanted})")
    for path, mode in facts.thp_modes(connection).items():
        checks.add(f"thp {path.rsplit('/', 1)[1]}", mode == system.transparent_hugepage,
                   f"{mode} (want {system.transparent_hugepage})")
    rc_local = shlex.quote(plan.layout.rc_local)
    rc = connection.run(f"test -x {rc_local} && echo executable; cat {rc_local}")
    line = f"echo {system.transparent_hugepage} > /sys/kernel/mm/transparent_hugepage/enabled"
    checks.add("rc.local", rc.stdout.startswith("executable") and line in rc.stdout,
               "executable, disables THP" if rc.stdout.startswith("executable") and line in rc.stdout
               else ("not executable" if "executable" not in rc.stdout else f"missing line: {line}"))


def _check_file_modes(plan: Plan, connection: Remote, checks: _Checks, paths: list[str]) -> None:
    seen = facts.file_modes(connection, paths)
    for path in paths:
        mode, owner = seen.get(path, ("absent", "-"))
        private = mode != "absent" and int(mode, 8) & 0o007 == 0
        checks.add(f"file mode {path.rsplit('/', 1)[1]}", private and owner == "redis",
                   f"{mode} {owner} (want no access for others, owner redis)")


def _check_start_guard(plan: Plan, connection: Remote, checks: _Checks) -> None:
    """root runs start-redis at boot: it and its password must be root's alone."""
    layout = plan.layout
    wanted = {layout.boot_dir: ("700", "root"), layout.start_script: ("700", "root"),
              layout.boot_auth_file: ("600", "root")}
    seen = facts.file_modes(connection, wanted)
    wrong = [f"{path} {' '.join(seen.get(path, ('absent',)))}" for path, meta in wanted.items() if seen.get(path) != meta]
    checks.add("start guard (start-redis)", not wrong, ", ".join(wrong) or "present, root's alone")


def _check_release(checks: _Checks, name: str, plan: Plan, info_server: str) -> None:
    """The process runs the inventory's release (not only has it installed: a process keeps its
    old binaries until it restarts)."""
    running, wanted = rediscli.parse_info(info_server).get("redis_version"), plan.inventory.redis.version
    checks.add(name, running == wanted, f"runs {running}" + ("" if running == wanted else f", want {wanted}"))


def _check_server(plan: Plan, connection: Remote, checks: _Checks, label: str, port: int) -> bool:
    """A redis-server of this host: running, listening on the data address, closed to the
    default user, on the inventory's release. False when it does not run."""
    host = connection.host
    pid = facts.running_pid(connection, plan.layout, port)
    if not checks.add(f"{label} running", pid is not None, f"pid {pid}" if pid else "not running"):
        return False
    checks.add(f"{label} listening", _listening(connection, host.data_address, port), f"{host.data_address}:{port}")
    unauthenticated = rediscli.call(connection, plan.layout, host.data_address, port, ["PING"], timeout=5)
    checks.add(f"{label} default user closed", unauthenticated.stdout.strip() != "PONG",
               "unauthenticated PING refused" if unauthenticated.stdout.strip() != "PONG" else "PONG without a password")
    _check_release(checks, f"{label} release", plan, _admin_call(plan, connection, host, port, ["INFO", "server"]).stdout)
    return True


def _check_cluster_node(plan: Plan, connection: Remote, checks: _Checks, port: int) -> bool:
    """True when the node runs in cluster mode, so the cluster-wide checks can ask it."""
    if not _check_server(plan, connection, checks, f"cluster node :{port}", port):
        return False
    enabled = rediscli.parse_info(_admin_call(plan, connection, connection.host, port, ["INFO", "cluster"]).stdout)
    return checks.add(f"cluster node :{port} cluster mode", enabled.get("cluster_enabled") == "1",
                      f"cluster_enabled:{enabled.get('cluster_enabled')}")


def _check_node(plan: Plan, connection: Remote, checks: _Checks, group: Group, master: Host | None) -> None:
    host = connection.host
    port = group.port
    if not _check_server(plan, connection, checks, f"redis :{port}", port):
        return
    info = rediscli.parse_info(_admin_call(plan, connection, host, port, ["INFO", "replication"]).stdout)
    if master is None:
        checks.add(f"redis :{port} role", False, "no current master known for the group")
    elif master.name == host.name:
        checks.add(f"redis :{port} role", info.get("role") == "master",
                   f"{info.get('role')} (current master of {group.name})")
    else:
        pointed = info.get("master_host")
        checks.add(f"redis :{port} role", info.get("role") == "slave" and pointed == master.data_address,
                   f"{info.get('role')} of {pointed} (want replica of {master.data_address}, {master.name})")
        checks.add(f"redis :{port} link", info.get("master_link_status") == "up",
                   f"master_link_status:{info.get('master_link_status')}")
    if group.replicas:
        priority = _admin_call(plan, connection, host, port, ["CONFIG", "GET", "replica-priority"]).stdout.split()
        ok, detail = fence_as_wanted(info, priority[1] if len(priority) > 1 else None)
        checks.add(f"redis :{port} promotion fence", ok, detail)
    acl = _admin_call(plan, connection, host, port, ["ACL", "LIST"]).stdout.splitlines()
    for user in plan.inventory.acl.all_users:
        line = next((entry for entry in acl if entry.startswith(f"user {user.name} ")), None)
        wanted_tokens = [{"allchannels": "&*", "allkeys": "~*", "allcommands": "+@all"}.get(token, token)
                         for token in user.rules.split()]
        problems = [] if line else ["absent"]
        if line:
            if " on " not in f" {line} ":
                problems.append("disabled")
            if "#" + render.password_hash(user.password.value) not in line:
                problems.append("password differs")
            # Redis expands +@category rules into command lists, so those are left to the
            # DRYRUN probe below; key/channel patterns and single commands must appear as given.
            problems += [f"lacks {token}" for token in wanted_tokens
                         if "@" not in token and token not in line.split()]
        checks.add(f"acl user {user.name}", not problems, ", ".join(problems) or "present, on, password and patterns as wanted")
    replication = plan.inventory.acl.replication.name
    dry = _admin_call(plan, connection, host, port, ["ACL", "DRYRUN", replication, "SET", "k", "v"]).stdout.strip()
    checks.add("acl replication user cannot write", dry != "OK", dry[:80])
    default = next((entry for entry in acl if entry.startswith("user default ")), "")
    words = default.split()
    closed = "off" in words and "nopass" not in words and not any(w.startswith(("#", ">")) for w in words)
    checks.add("acl default user off", closed, default or "absent")
    quoted = shlex.quote(plan.layout.redis_conf(port))
    config_file = connection.run(remote.as_user_command(defaults.REDIS_USER,
                                                        remote.refuse_unless_plain_file(quoted) + f"cat {quoted}"))
    agrees, detail = replicaof_agrees(config_file.stdout if config_file.ok else None, info)
    checks.add(f"redis :{port} replicaof in file", agrees, detail)


def fence_as_wanted(info: dict[str, str], priority: str | None) -> tuple[bool, str]:
    """The keeper's work (start-redis.sh.j2): a linked replica can be promoted, a master is fenced
    (priority 0) so that it is not promoted before it has resynced once demoted."""
    if info.get("role") == "master":
        return priority == "0", f"master, replica-priority {priority}" + ("" if priority == "0" else ", want 0 (is its keeper running?)")
    if info.get("master_link_status") == "up":
        wanted = str(render.PROMOTABLE_PRIORITY)
        return priority == wanted, f"linked replica, replica-priority {priority}" + \
            ("" if priority == wanted else f", want {wanted}: Sentinel cannot promote it (is its keeper running?)")
    return True, f"replica not linked, replica-priority {priority} (fenced until it has synced)"


def replicaof_agrees(file_text: str | None, info: dict[str, str]) -> tuple[bool, str]:
    """The file says what the running server is: a restart (or a boot) must bring the node back
    as the same thing, never as a master the Sentinels do not name."""
    if file_text is None:
        return False, "config file unreadable"
    values = confparse.values_by_key(file_text)
    lines = values.get(("replicaof",)) or values.get(("slaveof",)) or []
    in_file = tuple(v.lower() for v in lines[-1]) if lines else ()
    says_master = not in_file or in_file == ("no", "one")
    if info.get("role") == "master":
        return says_master, "master, file has no replicaof" if says_master else \
            f"running as master but the file says replicaof {' '.join(in_file)}"
    running = (info.get("master_host", ""), info.get("master_port", ""))
    if says_master:
        return False, (f"replica of {':'.join(running)} but the file makes it a master "
                       f"({'replicaof no one' if in_file else 'no replicaof'}): a restart would start a second master")
    return in_file == running, f"file replicaof {' '.join(in_file)}, running replica of {' '.join(running)}"


def _check_sentinel(plan: Plan, connection: Remote, checks: _Checks, agreed: dict[str, str]) -> None:
    host, port = connection.host, plan.inventory.redis.sentinel_port
    pid = facts.running_pid(connection, plan.layout, None)
    if not checks.add("sentinel running", pid is not None, f"pid {pid}" if pid else "not running"):
        return
    checks.add("sentinel listening", _listening(connection, host.data_address, port), f"{host.data_address}:{port}")

    def ask(args):
        return rediscli.sentinel_call(connection, plan, host, args, timeout=10).stdout
    _check_release(checks, "sentinel release", plan, ask(["INFO", "server"]))

    unauthenticated = rediscli.call(connection, plan.layout, host.data_address, port, ["PING"], timeout=5)
    closed = unauthenticated.stdout.strip() != "PONG"
    checks.add("sentinel default user closed", closed,
               "unauthenticated PING refused" if closed else "PONG without a password")

    debug = rediscli.parse_sentinel_debug(ask(["SENTINEL", "DEBUG"]))
    if "info-period" in debug:       # Redis 7.0+ (6.2 has no SENTINEL DEBUG)
        wanted = str(defaults.SENTINEL_INFO_PERIOD_MS)
        checks.add("sentinel info-period", debug["info-period"] == wanted,
                   f"{debug['info-period']} ms (want {wanted}: a failover chooses from fresh INFO)")
    info = rediscli.parse_info(ask(["INFO", "sentinel"]))
    checks.add("sentinel not in TILT", info.get("sentinel_tilt") == "0", f"sentinel_tilt:{info.get('sentinel_tilt')}")
    sentinel_count = len(plan.inventory.sentinels)
    for group in plan.inventory.groups:
        state = rediscli.parse_pairs(ask(["SENTINEL", "MASTER", group.name]))
        checks.add(f"sentinel {group.name} master", state.get("ip") == agreed.get(group.name) and "s_down" not in state.get("flags", "") + "",
                   f"{state.get('ip')}:{state.get('port')} flags={state.get('flags')} (agreed: {agreed.get(group.name)})")
        checks.add(f"sentinel {group.name} replicas", state.get("num-slaves") == str(len(group.replicas)),
                   f"sees {state.get('num-slaves')} (want {len(group.replicas)})")
        checks.add(f"sentinel {group.name} peers", state.get("num-other-sentinels") == str(sentinel_count - 1),
                   f"sees {state.get('num-other-sentinels')} other sentinels (want {sentinel_count - 1})")
        quorum = ask(["SENTINEL", "CKQUORUM", group.name]).strip()
        checks.add(f"sentinel {group.name} ckquorum", quorum.startswith("OK"), quorum)


def _agreed_masters(plan: Plan, connections: dict[str, Remote]) -> tuple[dict[str, str], list[CheckResult]]:
    """group → master address the sentinels agree on (majority of all sentinels)."""
    agreed, results = {}, []
    for group in plan.inventory.groups:
        said = topology.agreement(topology.sentinel_answers(plan, connections, group), len(plan.inventory.sentinels))
        results.append(CheckResult("(all)", f"sentinels agree on {group.name}", said.has_majority and said.unanimous,
                                   f"{said.counts or 'no answer'} (need {said.majority} of {said.sentinel_count} on "
                                   "one address)"))
        if said.address:
            agreed[group.name] = said.address
    return agreed, results


def _check_data_path(plan: Plan, connections: dict[str, Remote], group: Group, master: Host) -> list[CheckResult]:
    """A verify-owned key written on the master must appear on every replica; lag and offsets."""
    results = []
    master_connection = connections.get(master.name)
    if master_connection is None:
        return [CheckResult(master.name, f"{group.name} write", False, "no connection to the master")]
    key = defaults.VERIFY_KEY_PREFIX + secrets.token_hex(6)
    value = secrets.token_hex(8)
    written = _admin_call(plan, master_connection, master, group.port, ["SET", key, value, "EX", "60"])
    if written.stdout.strip() != "OK":
        return [CheckResult(master.name, f"{group.name} write", False, (written.stdout + written.stderr).strip())]
    info = rediscli.parse_info(_admin_call(plan, master_connection, master, group.port, ["INFO", "replication"]).stdout)
    replicas_seen = rediscli.replicas_in_info(info)
    try:
        for name in group.members:
            if name == master.name or name not in connections:
                continue
            replica = plan.inventory.host(name)
            seen = replicas_seen.get(replica.data_address, {})
            lag = int(seen.get("lag", "-1")) if seen else -1
            results.append(CheckResult(name, f"{group.name} lag", 0 <= lag <= LAG_LIMIT_SECONDS,
                                       f"lag {lag}s, state {seen.get('state', 'not connected')} (limit {LAG_LIMIT_SECONDS}s)"))
            _, got = poll(lambda: _admin_call(plan, connections[name], replica, group.port, ["GET", key]).stdout.strip(),
                          lambda got: got == value, OFFSET_CONVERGE_SECONDS, 0.1)
            results.append(CheckResult(name, f"{group.name} replicated write", got == value,
                                       "verify key read back" if got == value else
                                       f"verify key not seen after {OFFSET_CONVERGE_SECONDS:.0f}s"))
    finally:
        _admin_call(plan, master_connection, master, group.port, ["DEL", key])
    return results


def _check_units(plan: Plan, host_plan, connection, checks) -> None:
    """Where systemd is PID 1: every unit the tool writes is enabled, and active."""
    if not facts.runs_systemd(connection):
        return
    from provision.core import render
    names = list(render.unit_files(plan, host_plan))
    quoted = " ".join(shlex.quote(name) for name in names)
    active = connection.run(f"systemctl is-active {quoted}").stdout.split()
    enabled = connection.run(f"systemctl is-enabled {quoted}").stdout.split()
    for name, is_active, is_enabled in zip(names, active + [""] * len(names), enabled + [""] * len(names)):
        checks.add(f"unit {name}", is_active == "active" and is_enabled == "enabled", f"{is_active}, {is_enabled}")


def _check_retired(plan: Plan, connection, checks) -> None:
    """A host marked `state: absent` runs no redis-server or sentinel and rc.local starts none."""
    from provision.facts import host as host_facts
    from provision.core import render
    running = host_facts.parse_processes(connection.run(host_facts.PROCESS_PROBE).stdout.splitlines())
    checks.add("retired", not running, "nothing of Redis runs" if not running else
               "still running: " + ", ".join(f"{'sentinel' if p.sentinel else 'redis-server'} :{p.port}" for p in running))
    rc_local = connection.run(f"cat {shlex.quote(plan.layout.rc_local)} 2>/dev/null").stdout
    checks.add("rc.local", render.RC_LOCAL_BEGIN not in rc_local,
               "no redis-provision block" if render.RC_LOCAL_BEGIN not in rc_local else "its block still starts Redis")


def run(plan: Plan) -> list[CheckResult]:
    connections, failed = remote.open_all(plan)
    # In inventory order, not in the order the connection attempts gave up: --json is diffed.
    results: list[CheckResult] = [CheckResult(name, "ssh", False, remote.reason(failed[name]))
                                  for name in (host_plan.host.name for host_plan in plan.hosts) if name in failed]
    with ThreadPoolExecutor(max_workers=plan.inventory.controller.parallel) as pool:
        try:
            agreed, agreement = _agreed_masters(plan, connections)
            results += agreement
            current = {group.name: plan.host_by_data_address(agreed[group.name]) if group.name in agreed else None
                       for group in plan.inventory.groups}

            def host_checks(host_plan) -> list[CheckResult]:
                if host_plan.host.name not in connections:
                    return []
                connection = connections[host_plan.host.name]
                checks = _Checks(host_plan.host.name)
                if host_plan.retiring:
                    _check_retired(plan, connection, checks)
                    return checks.results
                _check_system(plan, connection, checks)
                secret_files = [plan.layout.acl_file] + [plan.layout.redis_conf(n.port) for n in host_plan.nodes]
                if host_plan.cluster_node is not None:
                    secret_files.append(plan.layout.redis_conf(host_plan.cluster_node.port))
                if host_plan.runs_sentinel:
                    secret_files.append(plan.layout.sentinel_conf)
                _check_file_modes(plan, connection, checks, secret_files)
                if host_plan.nodes:
                    _check_start_guard(plan, connection, checks)
                _check_units(plan, host_plan, connection, checks)
                for node in host_plan.nodes:
                    _check_node(plan, connection, checks, node.group, current[node.group.name])
                if host_plan.runs_sentinel:
                    _check_sentinel(plan, connection, checks, agreed)
                if host_plan.cluster_node is not None and _check_cluster_node(
                        plan, connection, checks, host_plan.cluster_node.port):
                    answering_cluster_nodes.append(host_plan.host.name)
                return checks.results

            answering_cluster_nodes: list[str] = []
            for host_results in pool.map(host_checks, plan.hosts):
                results += host_results
            if plan.inventory.cluster is not None:
                results += [CheckResult(*row) for row in
                            cluster_checks.cluster_checks(plan, connections, set(answering_cluster_nodes))]
            # Groups are independent: their write-then-read checks run side by side (a host in
            # two groups is still safe: its connection serves two commands at once).
            checked = [group for group in plan.inventory.groups if current[group.name] is not None]
            for group_results in pool.map(lambda group: _check_data_path(plan, connections, group, current[group.name]),
                                          checked):
                results += group_results
        finally:
            for connection in connections.values():
                connection.close()
    return results


def format_table(results: list[CheckResult]) -> str:
    lines = table.format_table(("HOST", "CHECK", "RESULT", "DETAIL"),
                               [(r.host, r.check, "ok" if r.ok else "FAIL", r.detail) for r in results])
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results)} checks, {len(results) - failed} ok, {failed} failed")
    return "\n".join(lines)


def format_json(results: list[CheckResult]) -> str:
    failed = sum(not r.ok for r in results)
    return json.dumps({"schema_version": 1, "ok": failed == 0, "failed": failed,
                       "checks": [asdict(r) for r in results]}, indent=2)
