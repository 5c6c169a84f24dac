"""A Sentinel: its config, written once, then managed live.

Sentinel owns its file after the first start (myid, epochs, known replicas and sentinels, the
monitor line's CURRENT master). The tool compares only its own settings; per-group ones change
live with SENTINEL SET, which Sentinel itself persists. The file is patched (and the sentinel
restarted) only for process settings Sentinel cannot change live. A sentinel is never restarted
just because a run happened: a restart loses nothing, but every unneeded one is a window.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from provision.core import confparse, render
from provision.base import defaults, directives
from provision.steps import primitives
from provision.facts import rediscli
from provision.core.confparse import Directive
from provision.base.errors import HostError
from provision.steps.hostrun import HostRun
from provision.steps import services

OTHER_MASTER_GRACE_SECONDS = 10.0
_REMOVED_NOTE = "the group is no longer in the inventory; its nodes keep running with their data"


@dataclass(frozen=True)
class SentinelOutcome:
    live: tuple[Directive, ...]          # SENTINEL SET group option value
    new_groups: tuple[str, ...]          # groups this sentinel does not monitor yet
    restart: bool
    removed_groups: tuple[str, ...] = () # monitored here, no longer in the inventory: SENTINEL REMOVE
    users: tuple[Directive, ...] = ()    # ACL SETUSER on the running sentinel (its users changed)
    peer_auth: bool = False              # sentinel-user/pass changed: SENTINEL CONFIG SET, once all have the user
    new_group_options: tuple[Directive, ...] = ()   # the new groups' per-group options, set with the monitor


def group_options(owned: list[Directive], group: str) -> tuple[Directive, ...]:
    """A group's options a running sentinel takes live (SENTINEL SET), as the template writes
    them: the directive table decides which, no list kept here."""
    return tuple(directive for directive in owned if len(directive.key) == 3 and directive.key[2] == group
                 and directive.key[1] != "quorum" and directives.sentinel_live(directive.key[1]))


#: Process settings a running sentinel takes live: its users (ACL SETUSER, then SENTINEL
#: FLUSHCONFIG writes them back) and the login it uses with its peers (SENTINEL CONFIG SET).
LIVE_PROCESS_KEYS = frozenset({("user",), ("sentinel", "sentinel-user"), ("sentinel", "sentinel-pass")})


def _differs(current: dict, directive: Directive) -> bool:
    lines = current.get(directive.key, [])
    # Sentinel leaves out of its rewritten file every per-group option at its default value.
    default = directives.sentinel_default(directive.key[1]) if len(directive.key) == 3 else None
    if not lines and default is not None:
        lines = [(default,)]
    have = [tuple(v.lower() for v in line) for line in lines]
    return have != [tuple(v.lower() for v in directive.values)]


def _differs_all(current: dict, owned: list[Directive]) -> list[tuple[str, ...]]:
    """Keys whose owned values differ. `user` lines compare as a set: Sentinel writes its users
    back in its own (name) order."""
    changed = []

    def normal(line) -> tuple[str, ...]:
        # Sentinel adds its default payload-sanitizing flag when it writes users back, and lists
        # single commands (+ping, +client|setname) in its own order, after the categories.
        words = [v.lower() for v in line if v.lower() != "sanitize-payload"]
        commands = sorted(w for w in words if w[:1] in "+-" and "@" not in w)
        return tuple(w for w in words if not (w[:1] in "+-" and "@" not in w)) + tuple(commands)
    users = sorted(normal(d.values) for d in owned if d.key == ("user",))
    if users and sorted(normal(line) for line in current.get(("user",), [])) != users:
        changed.append(("user",))
    for directive in owned:
        if directive.key != ("user",) and _differs(current, directive) and directive.key not in changed:
            changed.append(directive.key)
    return changed


def configure(run: HostRun, master_addresses: dict[str, str], new_peers: tuple = ()) -> SentinelOutcome:
    """new_peers: the sentinel hosts whose sentinel.conf this run creates (render.sentinel_conf)."""
    host = run.host_plan.host
    path = run.layout.sentinel_conf
    text = primitives.read_file(run, path)
    if text is None:
        primitives.ensure_file(run, path, render.sentinel_conf(run.plan, host, master_addresses, new_peers, services.uses_systemd(run)), 0o640,
                               "redis", "redis")
        return SentinelOutcome((), (), False)
    current = render.sentinel_current_settings(text)
    monitored = {key[2] for key in current if key[:2] == ("sentinel", "monitor")}
    owned = render.sentinel_owned_directives(run.plan, host, services.uses_systemd(run))
    new_groups = tuple(group.name for group in run.plan.inventory.groups if group.name not in monitored)
    removed_groups = tuple(sorted(monitored - {group.name for group in run.plan.inventory.groups}))
    live, file_changes, process_live = [], [], []
    by_key = {directive.key: directive for directive in owned}
    running = services.running_pid(run, None) is not None
    for key in _differs_all(current, owned):
        is_group_option = len(key) == 3
        if is_group_option and key[2] in new_groups:
            continue  # set together with SENTINEL MONITOR
        if is_group_option and directives.sentinel_live(key[1]):
            live.append(by_key[key])
        elif running and key in LIVE_PROCESS_KEYS:
            process_live.append(key)
        else:
            file_changes.append(key)
    if file_changes:
        new_text = confparse.patch(text, owned, file_changes)
        primitives.ensure_file(run, path, new_text, 0o640, "redis", "redis")
    else:
        primitives.ensure_file(run, path, text, 0o640, "redis", "redis")  # mode/owner only
    users = tuple(directive for directive in owned if directive.key == ("user",)) if ("user",) in process_live else ()
    peer_auth = any(key[:2] == ("sentinel", "sentinel-user") or key[:2] == ("sentinel", "sentinel-pass")
                    for key in process_live)
    new_group_options = tuple(directive for name in new_groups for directive in group_options(owned, name))
    return SentinelOutcome(tuple(live), new_groups, bool(file_changes) or runs_old_version(run), removed_groups,
                           users, peer_auth, new_group_options)


def runs_old_version(run: HostRun) -> bool:
    """The running sentinel's binary is another release than the wanted one."""
    sentinel_port = run.plan.inventory.redis.sentinel_port
    process = run.facts.process_on(sentinel_port) if run.facts is not None else None
    return process is not None and process.version(run.layout.install_dir) != run.plan.inventory.redis.version


def _sentinel(run: HostRun, args: list[str]) -> str:
    host = run.host_plan.host
    secret = directives.sentinel_command_secret(args)
    result = rediscli.sentinel_call(run.remote, run.plan, host, args, secret_args=secret)
    shown = args[:3] + (["<secret>"] if secret else args[3:])
    return rediscli.checked(result, run.name, run.step, "redis-cli -p sentinel " + " ".join(shown))


def _shown(args: list[str]) -> str:
    """A sentinel command as the run records it: a secret one up to its first secret word."""
    if not directives.sentinel_command_secret(args):
        return " ".join(args)
    secret_options = {"auth-pass", "sentinel-pass"}
    shown = []
    for word in args:
        shown.append(word)
        if word in secret_options or word.upper() == "SETUSER":
            break
    return " ".join(shown) + " <secret>"


def _restart_reason(run: HostRun) -> str:
    if runs_old_version(run):
        return f"onto Redis {run.plan.inventory.redis.version}"
    return "a setting that cannot change live changed"


def ensure_running(run: HostRun, outcome: SentinelOutcome, master_addresses: dict[str, str]) -> None:
    host = run.host_plan.host
    pid = services.running_pid(run, None)
    restart_pid = pid if pid is not None and outcome.restart else None

    def start() -> None:
        started = services.start(run, None, host.data_address, restart_pid=restart_pid)
        if not started.ok:
            raise HostError(run.name, run.step, services.start_command(run, None), started.failure)
        with run.lock:
            run.restarts.append("redis-sentinel")
    if restart_pid is not None:
        run.act(f"restart redis-sentinel ({_restart_reason(run)})", start)
    elif pid is None:
        run.act("start redis-sentinel", start)

    def sentinel_act(args: list[str], action: str | None = None) -> None:
        run.act(action or _shown(args), lambda: _sentinel(run, args))
    for directive in outcome.live:
        sentinel_act(["SENTINEL", "SET", directive.key[2], directive.key[1], *directive.values])
    if outcome.users:
        for directive in outcome.users:
            # The rules carry the password's hash: sent on stdin like a password.
            sentinel_act(["ACL", "SETUSER", directive.values[0], "reset", *directive.values[1:]],
                         f"ACL SETUSER {directive.values[0]} on the running sentinel")
        run.act_quietly(lambda: _sentinel(run, ["SENTINEL", "FLUSHCONFIG"]))
    if outcome.peer_auth:
        # after every sentinel has the user (the next wave); under --check, said now
        if run.options.check:
            run.record(f"SENTINEL CONFIG SET sentinel-user {run.plan.inventory.acl.sentinel.name} (and its password)")
        else:
            run.sentinel_auth_pending = True
    for name in outcome.removed_groups:
        sentinel_act(["SENTINEL", "REMOVE", name], f"SENTINEL REMOVE {name} ({_REMOVED_NOTE})")
    groups = {group.name: group for group in run.plan.inventory.groups}
    for name in outcome.new_groups:
        group = groups[name]
        monitor = ["SENTINEL", "MONITOR", name, master_addresses[name], str(group.port), str(group.quorum)]
        options = ["SENTINEL", "SET", name] + [word for directive in outcome.new_group_options
                                               if directive.key[2] == name
                                               for word in (directive.key[1], *directive.values)]
        run.act(" ".join(monitor), lambda monitor=monitor, options=options: (
            _sentinel(run, monitor), len(options) > 3 and _sentinel(run, options)))


def ensure_info_period(run: HostRun) -> None:
    """The sentinel refreshes each replica's INFO every SENTINEL_INFO_PERIOD_MS (defaults.py says
    why). Runtime only: the nodes' keepers say it again after a sentinel restarts. A release
    without SENTINEL DEBUG (6.2) keeps Sentinel's 10 s."""
    if services.running_pid(run, None) is None:
        return
    wanted = str(defaults.SENTINEL_INFO_PERIOD_MS)
    result = rediscli.sentinel_call(run.remote, run.plan, run.host_plan.host, ["SENTINEL", "DEBUG"], timeout=10)
    reply = rediscli.answer(result)
    if reply is None:
        return
    current = rediscli.parse_sentinel_debug(reply).get("info-period")
    if current != wanted:
        run.act(f"SENTINEL DEBUG info-period {wanted} (was {current}): replicas' INFO every second, so a "
                "failover chooses from fresh offsets and fences",
                lambda: _sentinel(run, ["SENTINEL", "DEBUG", "info-period", wanted]))


def switch_peer_auth(run: HostRun) -> None:
    """Log in to the other sentinels as the sentinel user from now on. Done once every sentinel
    has that user (the wave before), so no sentinel is refused by a peer that lacks it."""
    if not run.sentinel_auth_pending:
        return
    acl = run.plan.inventory.acl
    run.act(f"SENTINEL CONFIG SET sentinel-user {acl.sentinel.name} (and its password): the sentinels log in to "
            "each other as the sentinel user",
            lambda: (_sentinel(run, ["SENTINEL", "CONFIG", "SET", "sentinel-user", acl.sentinel.name]),
                     _sentinel(run, ["SENTINEL", "CONFIG", "SET", "sentinel-pass", acl.sentinel.password.value])))
    run.sentinel_auth_pending = False


def wait_converged(run: HostRun, master_addresses: dict[str, str]) -> None:
    """Until this sentinel sees the current master of each group, all its replicas and all the
    other sentinels (what a failover will need)."""
    if run.options.check:
        return
    sentinel_count = len(run.plan.inventory.sentinels)
    started_now = "redis-sentinel" in run.restarts
    for group in run.plan.inventory.groups:
        other_since: float | None = None   # since when this sentinel names another master

        def probe(group=group):
            nonlocal other_since
            state = rediscli.parse_pairs(_sentinel(run, ["SENTINEL", "MASTER", group.name]))
            names_another = bool(state.get("ip")) and state.get("ip") != master_addresses[group.name]
            if not names_another:
                other_since = None
            elif other_since is None:
                other_since = time.monotonic()
            # A sentinel learns a failover from its peers' hellos (every 2 s): one that still names
            # the master from before this run's own recovery gets a few seconds to catch up.
            if names_another and time.monotonic() - other_since > OTHER_MASTER_GRACE_SECONDS:
                raise HostError(run.name, run.step, f"SENTINEL MASTER {group.name}",
                                f"the sentinel now names {state.get('ip')} as master, not {master_addresses[group.name]} "
                                "as when this run started: a failover happened during the run; re-run deploy")
            ok = (state.get("ip") == master_addresses[group.name]
                  and int(state.get("num-slaves", 0)) >= len(group.replicas)
                  and int(state.get("num-other-sentinels", 0)) >= sentinel_count - 1)
            seen = {k: state.get(k) for k in ("ip", "flags", "num-slaves", "num-other-sentinels")}
            if ok and started_now:
                # Its peers may come from known-sentinel lines written at creation: counted at
                # once, so each must also be connected, i.e. really up and reachable.
                peers = rediscli.parse_records(_sentinel(run, ["SENTINEL", "SENTINELS", group.name]), "name")
                connected = [peer for peer in peers if not {"disconnected", "s_down", "o_down"}
                             & set(peer.get("flags", "").split(","))]
                seen["connected-sentinels"] = len(connected)
                ok = len(connected) >= sentinel_count - 1
            return ok, seen
        services.wait_until(run, f"sentinel to see group {group.name} complete", probe, 60)
