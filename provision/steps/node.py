"""A redis-server instance: its ACL file, its config, and making it run with that config.

redis.conf is written whole only when it does not exist. Afterwards only the directives the tool
owns are compared and patched, `replicaof` never (Sentinel owns it after the first start), and
changes go live with CONFIG SET; a restart happens only for settings Redis cannot change live.
"""
from __future__ import annotations

import difflib
import hashlib
import shlex
from dataclasses import dataclass

from provision.core import confparse, render
from provision.core.confparse import Directive
from provision.base import directives
from provision.steps import primitives
from provision.facts import rediscli, topology
from provision.facts import host as host_facts
from provision.core import state as host_state
from provision.base.errors import HostError
from provision.steps.hostrun import HostRun
from provision.inventory import Host
from provision.core.plan import ClusterNodePlan, NodePlan, node_redis, setting_places
from provision.steps import services


@dataclass(frozen=True)
class ConfigOutcome:
    created: bool
    previous_text: str | None
    live_keys: tuple[tuple[str, ...], ...]
    restart_keys: tuple[tuple[str, ...], ...]
    reverted: tuple[tuple[str, str], ...] = ()    # (setting, Redis's default): taken out of the inventory
    wanted: tuple[Directive, ...] = ()              # the owned directives, as configure compared them


def wanted_directives(run: HostRun, node: NodePlan) -> tuple[Directive, ...]:
    """What the tool owns in the node's redis.conf, rendered once per node and run: the restart
    prediction, the file patch and the live apply all compare against this one copy."""
    return tuple(render.redis_owned_directives(run.plan, node, services.uses_systemd(run)))


def version_restart_keys(run: HostRun, node: NodePlan) -> tuple[tuple[str, ...], ...]:
    """A running server on another release than the wanted one restarts onto it (the binaries are
    switched by the install step; a process keeps running the old ones until it restarts)."""
    process = run.facts.process_on(node.port) if run.facts is not None else None
    wanted = run.plan.inventory.redis.version
    if process is None or process.version(run.layout.install_dir) == wanted:
        return ()
    # The facts are from the start of the run: a node restarted since (recovered through its
    # guard) already runs the switched binaries.
    pid = services.running_pid(run, node.port)
    if pid is None:
        return ()
    exe = host_facts.process_exe(run.remote, pid) or process.exe
    running = host_facts.release_of(exe, run.layout.install_dir)
    return () if running == wanted else ((f"version {running or exe} -> {wanted}",),)


def removed_settings(run: HostRun, node: NodePlan) -> tuple[str, ...]:
    """Settings this tool wrote for the node (its state file says) that the inventory no longer
    has."""
    recorded = run.state.settings.get(node.port) if run.state is not None else None
    if recorded is None:
        return ()
    wanted = {name for name, _ in plan_settings(run, node)}
    return tuple(name for name in recorded if name not in wanted)


def _removed_present(run: HostRun, node: NodePlan, current: str) -> list[tuple[str, ...]]:
    """The keys of removed_settings that the node's current file still has."""
    present = confparse.values_by_key(current)
    return [(name,) for name in removed_settings(run, node) if (name,) in present]


def plan_settings(run: HostRun, node: NodePlan) -> tuple[tuple[str, str], ...]:
    return node_redis(run.plan.inventory, node).extra_settings


def ensure_acl_file(run: HostRun) -> bool:
    return primitives.ensure_file(run, run.layout.acl_file, render.acl_file(run.plan), 0o640, "redis", "redis")


def configure(run: HostRun, node: NodePlan, current_master: Host,
              wanted: tuple[Directive, ...] | None = None) -> ConfigOutcome:
    path = run.layout.redis_conf(node.port)
    current = primitives.read_file(run, path)
    if current is None:
        replicaof = None if current_master.name == node.host.name else current_master
        primitives.ensure_file(run, path, render.redis_conf(run.plan, node, replicaof, services.uses_systemd(run)), 0o640, "redis", "redis")
        return ConfigOutcome(True, None, (), ())
    wanted = wanted_directives(run, node) if wanted is None else wanted
    changed = confparse.differing_keys(current, wanted)
    removed = _removed_present(run, node, current)
    if changed or removed:
        primitives.ensure_file(run, path, confparse.patch(current, wanted, changed + removed), 0o640, "redis", "redis")
    else:
        primitives.ensure_file(run, path, current, 0o640, "redis", "redis")  # mode/owner only
    restart = tuple(key for key in changed if directives.redis_needs_restart(key)) + version_restart_keys(run, node)
    live = tuple(key for key in changed if not directives.redis_needs_restart(key))
    reverted = ()
    if removed:
        defaults = redis_defaults(run, [key[0] for key in removed])
        reverted = tuple((key[0], defaults.get(key[0], "")) for key in removed)
        restart += tuple(key for key in removed if directives.redis_needs_restart(key) or key[0] not in defaults)
    return ConfigOutcome(False, current, live, restart, reverted, wanted)


def settings_to_check(run: HostRun) -> dict[str, set[str]]:
    """Setting name → the key paths giving it, for the names this host's release has not yet
    taken: all of them after a change of release, else those not written on an earlier run."""
    same_release = run.facts is not None and run.facts.installed_version == run.plan.inventory.redis.version
    written = run.state.settings if run.state is not None and same_release else {}
    wanted: dict[str, set[str]] = {}
    for node in run.host_plan.nodes:
        for name, _ in plan_settings(run, node):
            if name in directives.CONFIG_FILE_ONLY or name in written.get(node.port, ()):
                continue
            wanted.setdefault(name, set()).update(setting_places(run.plan.inventory, node, name))
    return wanted


def unknown_setting_problems(run: HostRun) -> list[str]:
    """`redis.settings` names the installed release does not know, each at its key path with a
    did-you-mean from the release's own list (CONFIG GET * of a throwaway server): Redis refuses
    to start on an unknown directive, so a typo would otherwise surface as a node that does not
    come back after its restart. A read: the throwaway server has no TCP port and leaves nothing."""
    wanted = settings_to_check(run)
    version = run.plan.inventory.redis.version
    if not wanted:
        return []
    if run.facts is not None and run.facts.installed_version != version and run.options.check:
        run.record(f"check the settings' names against Redis {version} once it is installed")
        return []
    output = run.remote.check(run.step, host_facts.defaults_probe(run.layout, sorted(wanted) + ["*"])).stdout
    known = sorted(host_facts.parse_config_get(output))
    problems = []
    for name in sorted(wanted):
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems += [f"{place}: Redis {version} has no directive {name!r}{hint}" for place in sorted(wanted[name])]
    return problems


def redis_defaults(run: HostRun, names: list[str]) -> dict[str, str]:
    """Redis's own default of each setting, asked of a throwaway server of the installed release
    (no TCP port, a private socket in a temporary directory): Redis has no way to reset a
    setting, and a table of defaults in this tool would drift from the release it runs. A name
    the release does not know is left out."""
    if run.options.check:
        return {name: "" for name in names}      # known once applied: the probe starts a server
    output = run.remote.check(run.step, host_facts.defaults_probe(run.layout, names)).stdout
    return host_facts.parse_config_get(output)


def record_settings(run: HostRun, node: NodePlan) -> None:
    """Remember which settings the node now has from the inventory (state.py)."""
    names = [name for name, _ in plan_settings(run, node)]
    run.state = (run.state or host_state.HostState()).with_settings(node.port, names)
    save_state(run)


def save_state(run: HostRun) -> None:
    """Write the host's state file when it differs from what the facts read at the start."""
    text = host_state.format_state(run.state)
    if run.options.check or (run.facts is not None and run.facts.state_text.strip() == text.strip()):
        return
    primitives.ensure_file(run, run.layout.state_file, text, 0o600, "root", "root")


def live_users_match(acl_list: str, users, hash_of) -> bool:
    """ACL LIST output has every wanted user, enabled, with its password hash, and the default
    user disabled (rules are compared by verify; a changed rule also changes users.acl)."""
    lines = acl_list.splitlines()
    for user in users:
        line = next((entry for entry in lines if entry.startswith(f"user {user.name} ")), "")
        if " on " not in f" {line} " or "#" + hash_of(user.password.value) not in line:
            return False
    default = next((entry for entry in lines if entry.startswith("user default ")), "")
    return " off " in f" {default} "


def live_acl_matches(run: HostRun, node: NodePlan) -> bool:
    acl_list = rediscli.answer(rediscli.call(run.remote, run.layout, node.host.data_address, node.port,
                                             ["ACL", "LIST"], user=run.plan.inventory.acl.admin))
    return acl_list is not None and live_users_match(acl_list, run.plan.inventory.acl.all_users, render.password_hash)


def predicted_restart_keys(run: HostRun, node: NodePlan, wanted: tuple[Directive, ...]) -> tuple[tuple[str, ...], ...]:
    """Owned settings that differ in the node's current file and need a restart: read only."""
    current = primitives.read_file(run, run.layout.redis_conf(node.port))
    if current is None:
        return ()
    removed = tuple(key for key in _removed_present(run, node, current) if directives.redis_needs_restart(key))
    return tuple(key for key in confparse.differing_keys(current, wanted)
                 if directives.redis_needs_restart(key)) + removed + version_restart_keys(run, node)


def apply_live(run: HostRun, node: NodePlan | ClusterNodePlan, keys: tuple[tuple[str, ...], ...],
                wanted_directives: tuple[Directive, ...]) -> list[tuple[str, ...]]:
    """CONFIG SET each changed setting; returns the keys Redis refused live (they need a restart)."""
    wanted = {directive.key: directive for directive in wanted_directives}
    refused = []
    for key in keys:
        value = " ".join(wanted[key].values)

        def config_set(key=key, value=value) -> bool:
            result = rediscli.call(run.remote, run.layout, node.host.data_address, node.port,
                                   ["CONFIG", "SET", key[0], value], user=run.plan.inventory.acl.admin,
                                   secret_args=directives.redis_info(key).secret)
            return not rediscli.reply_error(result)
        if run.act(f"CONFIG SET {key[0]} on the running server", config_set) is False:
            refused.append(key)      # Redis refused it live: a restart follows
    return refused


def _revert_live(run: HostRun, node: NodePlan, reverted) -> list[tuple[str, ...]]:
    """CONFIG SET each removed setting back to Redis's default; returns those Redis refused."""
    refused = []
    for name, default in reverted:
        def config_set(name=name, default=default) -> bool:
            result = rediscli.call(run.remote, run.layout, node.host.data_address, node.port,
                                   ["CONFIG", "SET", name, default], user=run.plan.inventory.acl.admin)
            return not rediscli.reply_error(result)
        known = f" {default!r}" if default else ""
        if run.act(f"CONFIG SET {name} back to Redis's default{known} on the running server (the setting was "
                   "taken out of the inventory)", config_set) is False:
            refused.append((name,))
    return refused


def ensure_keeper(run: HostRun, node: NodePlan) -> None:
    """A running node without its keeper (started by an older release of this tool, or its keeper
    killed) gets one: without it the node stays fenced at replica-priority 0 and cannot be promoted.
    A keeper running another start-redis than the one deploy just wrote is replaced: a running
    shell keeps the code it started with, so a fix to the keeper (the stall watch, mending a
    split sentinel) would otherwise wait for the node's next restart."""
    running = host_facts.keeper_script(run.remote, run.layout, node.port)
    start = f"{shlex.quote(run.layout.start_script)} {node.port} --keep"
    if running is None:
        run.act(f"start the keeper of redis-server :{node.port} (lifts its promotion fence once it has synced)",
                start)
        return
    if running == hashlib.sha256(render.start_script(run.plan, run.host_plan).encode()).hexdigest():
        return
    run.act(f"replace the keeper of redis-server :{node.port}: it runs "
            f"{'an older start-redis' if running else 'a start-redis of an earlier release'}",
            replace_keeper_command(run.layout, node.port))


def replace_keeper_command(layout, port: int) -> str:
    """Ends the port's keeper (found by its command line: a keeper of an earlier release wrote no
    pid), waits until its lock is free, and starts one from the current script."""
    lock = shlex.quote(layout.keeper_lock(port))
    # the whole command line, so that neither this command's shell nor its grep matches
    pattern = shlex.quote(f".* {layout.start_script} {port} --keeper ")
    return (f"for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null | grep -qx -- {pattern} && "
            f"kill -TERM ${{d#/proc/}} 2>/dev/null; done; "
            f"for _ in $(seq 50); do flock -n {lock} true && break; sleep 0.1; done; "
            f"{shlex.quote(layout.start_script)} {port} --keep")


def ensure_running(run: HostRun, node: NodePlan, outcome: ConfigOutcome, acl_changed: bool,
                   known_master: str | None = None) -> services.StartResult | None:
    """Start if not running; apply changes live; restart only when a setting needs it; if the
    new config keeps Redis from starting, put the previous config back and report.
    Every start goes through the host's start guard, which asks the Sentinels what the node is
    (and sets `replicaof` in its file to match) unless `known_master` is given: the address of
    the master of a group that no sentinel monitors yet."""
    pid = services.running_pid(run, node.port)
    restart_keys = list(outcome.restart_keys)
    if pid is not None and not restart_keys:
        ensure_keeper(run, node)
    if pid is not None:
        reload_reason = "users.acl changed" if acl_changed else \
            None if live_acl_matches(run, node) else "its live users differ from users.acl"
        if reload_reason:
            run.act(f"ACL LOAD on redis-server :{node.port} ({reload_reason})", lambda: acl_load(run, node))
        restart_keys += apply_live(run, node, outcome.live_keys, outcome.wanted)
        restart_keys += _revert_live(run, node, [item for item in outcome.reverted if (item[0],) not in restart_keys])
        if not restart_keys:
            return None
        action = f"restart redis-server :{node.port} ({', '.join(k[0] for k in restart_keys)} cannot change live)"
    else:
        action = f"start redis-server :{node.port}"
    return run.act(action, lambda: _start_or_roll_back(run, node, outcome, known_master, pid))


def acl_load(run: HostRun, node: NodePlan | ClusterNodePlan) -> None:
    rediscli.checked(rediscli.call(run.remote, run.layout, node.host.data_address, node.port, ["ACL", "LOAD"],
                                   user=run.plan.inventory.acl.admin), run.name, run.step, "redis-cli ACL LOAD")


def _start_or_roll_back(run: HostRun, node: NodePlan, outcome: ConfigOutcome, known_master: str | None,
                        restart_pid: int | None) -> services.StartResult:
    """Start (or restart, in one host-side unit) through the start guard; a config Redis rejects
    is replaced by the previous one, started again, and reported."""
    address = node.host.data_address
    started = services.start(run, node.port, address, master=known_master, restart_pid=restart_pid)
    if started.ok:
        with run.lock:
            run.restarts.append(f"redis-server:{node.port}")
        return started
    failure = started.failure
    if outcome.previous_text is not None:
        path = run.layout.redis_conf(node.port)
        primitives.install_file(run, path, outcome.previous_text, 0o640, "redis", "redis")
        again = services.start(run, node.port, address, master=known_master)
        state = "it runs with the previous config" if again.ok else f"and it failed with it too: {again.failure}"
        raise HostError(run.name, run.step, services.start_command(run, node.port),
                        f"new config rejected; rolled back {path} to the previous version, {state}.\n{failure}")
    raise HostError(run.name, run.step, services.start_command(run, node.port), failure)


def wait_master_ready(run: HostRun, node: NodePlan) -> None:
    if run.options.check:
        return

    def probe():
        result = rediscli.call(run.remote, run.layout, node.host.data_address, node.port, ["ROLE"],
                               user=run.plan.inventory.acl.admin, timeout=5)
        return result.stdout.startswith("master"), (result.stdout + result.stderr).strip()[:200]
    services.wait_until(run, f"redis-server :{node.port} to serve as master", probe, 30)


def _sentinels_name(run: HostRun, node: NodePlan) -> bool:
    """A majority of the group's sentinels names this node master (asked from this host)."""
    plan = run.plan
    answers = []
    for host in plan.sentinel_hosts:
        result = rediscli.sentinel_call(run.remote, plan, host, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                                                 node.group.name], timeout=3)
        address = topology.parse_master_address(result.stdout) if result.ok else None
        answers.append(address[0] if address else None)
    said = topology.agreement(answers, len(plan.inventory.sentinels))
    return said.has_majority and said.address == node.host.data_address


def wait_replica_linked(run: HostRun, node: NodePlan) -> None:
    if run.options.check:
        return

    def probe():
        result = rediscli.call(run.remote, run.layout, node.host.data_address, node.port, ["INFO", "replication"],
                               user=run.plan.inventory.acl.admin, timeout=5)
        info = rediscli.parse_info(result.stdout)
        if info.get("role") == "master":
            if _sentinels_name(run, node):
                run.record(f"redis-server :{node.port}: a Sentinel failover promoted it during this run; "
                           "it serves as the group's master")
                return True, info
            return False, {k: info.get(k) for k in ("role", "master_host", "master_link_status")}
        return info.get("master_link_status") == "up", {k: info.get(k) for k in ("role", "master_host", "master_link_status")}
    services.wait_until(run, f"redis-server :{node.port} master_link_status:up", probe, 60)
