"""Run a deploy across hosts in parallel waves.

wave 1 (all hosts): facts, layout, build or ship binaries, tune the kernel
wave 2: the CURRENT master of each group (configure, start, wait ready)
wave 3: replicas (configure, start, wait for master_link_status:up)
wave 4: sentinels (configure, start, wait until each sees every replica and peer)

A host that fails is named with its step, command and stderr, and sits out the later waves;
the other hosts finish theirs. A re-run converges.
"""
from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from provision import facts as host_facts
from provision import failover, netns, remote, topology
from provision.errors import HostError, ProvisionError
from provision.hostrun import Change, HostRun, RunOptions
from provision.inventory import Host
from provision.plan import Plan
from provision.render import password_hash
from provision.steps import build, node, sentinel, services, system

HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True)
class HostOutcome:
    host: str
    changes: tuple[Change, ...]
    restarts: tuple[str, ...]
    seconds: float
    error: ProvisionError | None = None
    unreachable: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.unreachable


@dataclass(frozen=True)
class DeployReport:
    outcomes: tuple[HostOutcome, ...]
    seconds: float
    check: bool
    masters: dict[str, str]

    @property
    def ok(self) -> bool:
        """Every reachable host converged. A host that cannot be reached is skipped, named in the
        recap, and does not fail the run (its group carries on without it), unless no host at all
        could be reached."""
        reachable = [outcome for outcome in self.outcomes if not outcome.unreachable]
        return bool(reachable) and not any(outcome.failed for outcome in reachable)

    @property
    def unreachable(self) -> tuple[str, ...]:
        return tuple(outcome.host for outcome in self.outcomes if outcome.unreachable)

    @property
    def changed(self) -> int:
        return sum(len(outcome.changes) for outcome in self.outcomes)


def secret_masker(plan: Plan) -> Callable[[str], str]:
    """Replace every password (and its ACL hash) with a placeholder in anything printed."""
    values = []
    for user in plan.inventory.acl.all_users:
        values += [user.password.value, password_hash(user.password.value)]

    def mask(text: str) -> str:
        for value in values:
            text = text.replace(value, "********")
        return text
    return mask


def enter_controller_namespace(plan: Plan) -> None:
    namespace = plan.inventory.controller.network_namespace
    if namespace and not netns.current_is(namespace):
        netns.enter(namespace)


class _Runner:
    """The shared state of one deploy: host runs, errors, the pool."""

    def __init__(self, plan: Plan, options: RunOptions, say: Callable[[str], None]):
        self.plan, self.options = plan, options
        mask = secret_masker(plan)
        self.print_lock = threading.Lock()

        def locked_say(message: str) -> None:
            with self.print_lock:
                say(mask(message))
        self.say = locked_say
        self.runs: dict[str, HostRun] = {}
        self.errors: dict[str, ProvisionError] = {}
        self.unreachable: set[str] = set()
        self.facts: dict[str, host_facts.HostFacts] = {}
        self.pool = ThreadPoolExecutor(max_workers=max(1, plan.inventory.controller.parallel))
        self.step_started: dict[str, float] = {}

    def alive(self, names=None) -> list[HostRun]:
        names = names if names is not None else list(self.runs)
        return [self.runs[name] for name in names if name in self.runs and name not in self.errors]

    def each(self, runs: list[HostRun], step: str, function) -> None:
        """Run function(run) on every run in parallel; record failures per host."""
        def guarded(run: HostRun) -> None:
            run.begin(step)
            self.step_started[run.name] = time.monotonic()
            try:
                function(run)
            except ProvisionError as error:
                self.fail(run.name, error)
            except Exception as error:  # an unexpected bug still names the host and step
                self.fail(run.name, HostError(run.name, run.step, "(internal)", f"{type(error).__name__}: {error}"))
            finally:
                self.step_started.pop(run.name, None)
        list(self.pool.map(guarded, runs))

    def fail(self, name: str, error: ProvisionError) -> None:
        self.errors[name] = error
        self.say(f"FAILED {error}")


def _connect_all(runner: _Runner) -> None:

    def open_one(host_plan):
        started = time.monotonic()
        try:
            connection = remote.connect_for(host_plan.host, runner.plan.inventory.controller)
        except ProvisionError as error:
            runner.errors[host_plan.host.name] = error
            runner.unreachable.add(host_plan.host.name)
            runner.say(f"UNREACHABLE {error}\n  skipping {host_plan.host.name}; the other hosts carry on. "
                       "Re-run deploy when it is back: its redis-server starts as the Sentinels say (start-redis).")
            return
        runner.runs[host_plan.host.name] = HostRun(connection, runner.plan, host_plan, runner.options, runner.say,
                                                   started=started)
    list(runner.pool.map(open_one, runner.plan.hosts))


def _heartbeat(runner: _Runner, stop: threading.Event) -> None:
    """A long step (a compile) says it is alive, so a quiet terminal is not a hung one."""
    while not stop.wait(HEARTBEAT_SECONDS):
        now = time.monotonic()
        for name, since in list(runner.step_started.items()):
            if now - since >= HEARTBEAT_SECONDS and name in runner.runs:
                runner.say(f"{name}: {runner.runs[name].step} still running ({now - since:.0f}s)")


def _install_binaries(runner: _Runner) -> None:
    """Build once per platform (or reuse the artifact cache), then ship to the other hosts."""
    runs = runner.alive()
    needing = [run for run in runs if build.needs_install(run, runner.facts[run.name])]
    by_platform: dict[str, list[HostRun]] = {}
    for run in needing:
        by_platform.setdefault(runner.facts[run.name].platform, []).append(run)

    def one_platform(platform_runs: list[HostRun]) -> None:
        first = platform_runs[0]
        artifact = build.artifact_path(first, runner.facts[first.name])
        rest = platform_runs
        if not artifact.exists():
            runner.each([first], "build", lambda run: build.compile_on_host(run, runner.facts[run.name]))
            rest = platform_runs[1:]
            if runner.options.check:
                for run in rest:
                    run.begin("build")
                    run.record(f"install Redis binaries built on {first.name}")
                return
            if first.name in runner.errors or not artifact.exists():
                for run in rest:
                    runner.fail(run.name, HostError(run.name, "build", f"build on {first.name}",
                                                    f"the build for platform {runner.facts[run.name].platform} failed "
                                                    f"on {first.name}; nothing was installed here"))
                return
        runner.each(rest, "install", lambda run: build.ship_to_host(run, runner.facts[run.name]))

    # Platforms build side by side, each in its own thread (the pool is for per-host work).
    threads = [threading.Thread(target=one_platform, args=(group,)) for group in by_platform.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runner.alive():
        if not runner.options.check or not build.needs_install(run, runner.facts[run.name]):
            run.begin("install")
            build.activate(run, runner.facts[run.name])


def _recover_stopped_masters(runner: _Runner, current: dict[str, topology.GroupMaster]) -> None:
    """A group whose Sentinels still name a master that is not running (it crashed, and they
    have not failed over yet) gets that node started first, through its start guard: the guard
    has a replica promoted (SENTINEL FAILOVER) and starts the node as its replica, so it never
    comes back as a master with only what its AOF held. The other waves then see the new master."""
    stopped = []
    for name, found in current.items():
        run = runner.runs.get(found.host.name)
        if found.source != "sentinels" or run is None or found.host.name in runner.errors:
            continue
        node_plan = next((n for n in run.host_plan.nodes if n.group.name == name), None)
        if node_plan is not None and services.running_pid(run, node_plan.port) is None:
            stopped.append((run, node_plan))
    if not stopped:
        return

    def recover(run: HostRun, node_plan) -> None:
        run.begin("recover")
        group = node_plan.group.name
        if runner.options.check:
            run.record(f"start redis-server :{node_plan.port} (down, still named master of {group}): the sentinels "
                       "fail over first, then it starts as a replica")
            return
        run.record(f"redis-server :{node_plan.port} is down and the sentinels still name it master of {group}: "
                   "start it through its guard (failover first, then as a replica)")
        failure = services.start(run, node_plan.port, node_plan.host.data_address)
        if failure:
            raise HostError(run.name, run.step, services.start_command(run, node_plan.port), failure)
        with run.lock:
            run.restarts.append(f"redis-server:{node_plan.port}")
        role, master_address = run.started_as.get(node_plan.port, ("unknown", None))
        new_master = runner.plan.host_by_data_address(master_address or "")
        if role == "replica" and new_master is not None:
            current[group] = topology.GroupMaster(group, new_master, "sentinels")
            run.record(f"{group}: {new_master.name} is master now; {run.name} started as its replica")

    runner.each([run for run, _ in stopped], "recover",
                lambda run: [recover(run, n) for r, n in stopped if r is run])


def deploy(plan: Plan, options: RunOptions, say: Callable[[str], None] = print) -> DeployReport:
    started = time.monotonic()
    enter_controller_namespace(plan)
    runner = _Runner(plan, options, say)
    stop_heartbeat = threading.Event()
    heartbeat = threading.Thread(target=_heartbeat, args=(runner, stop_heartbeat), daemon=True)
    heartbeat.start()
    current: dict[str, topology.GroupMaster] = {}
    try:
        _connect_all(runner)
        runner.each(runner.alive(), "facts",
                    lambda run: runner.facts.__setitem__(run.name, host_facts.gather(run.remote, run.layout)))
        runner.each(runner.alive(), "layout", system.layout)
        _install_binaries(runner)
        runner.each(runner.alive(), "tune", system.tune)

        remotes = {name: run.remote for name, run in runner.runs.items() if name not in runner.errors}
        try:
            current = topology.discover(plan, remotes)
        except topology.TopologyError as error:
            for run in runner.alive():
                runner.fail(run.name, HostError(run.name, "topology", "ask sentinels and ROLE", str(error)))
            current = {}
        initial_masters = {group.name: group.master for group in plan.inventory.groups}
        for name, found in current.items():
            if found.host.name != initial_masters[name]:
                runner.say(f"group {name}: current master is {found.host.name} (from {found.source}), "
                           f"not the inventory's initial {initial_masters[name]}; keeping it")
        acl_changed: dict[str, bool] = {}

        def configure_nodes(run: HostRun, masters_wave: bool) -> None:
            run.begin("configure")
            if run.name not in acl_changed:
                acl_changed[run.name] = node.ensure_acl_file(run)
            for node_plan in run.host_plan.nodes:
                master_host = current[node_plan.group.name].host
                if (master_host.name == run.name) != masters_wave:
                    continue
                if masters_wave and current[node_plan.group.name].source != "inventory" and node_plan.group.replicas:
                    restart_keys = node.predicted_restart_keys(run, node_plan)
                    if restart_keys:
                        master_host = _switch_master_away(run, node_plan, restart_keys)
                        masters_wave_for_node = master_host.name == run.name
                    else:
                        masters_wave_for_node = True
                else:
                    masters_wave_for_node = masters_wave
                outcome = node.configure(run, node_plan, master_host)
                run.begin("start")
                # The guard asks the Sentinels itself; only a group they do not monitor yet (a
                # fresh one, or sentinels all down) is told its master.
                known_master = master_host.data_address if current[node_plan.group.name].source in (
                    "inventory", "roles") else None
                # Restarts within a group happen one node at a time (the node back and linked
                # before the next goes), so the group never loses more than one member.
                lock = restart_locks[node_plan.group.name] if outcome.restart_keys else contextlib.nullcontext()
                with lock:
                    node.ensure_running(run, node_plan, outcome, acl_changed[run.name], known_master)
                    role, _ = run.started_as.get(node_plan.port, ("", None))
                    if masters_wave_for_node and role != "replica":
                        node.wait_master_ready(run, node_plan)
                    else:
                        node.wait_replica_linked(run, node_plan)

        def _switch_master_away(run: HostRun, node_plan, restart_keys) -> Host:
            """A master about to restart first hands over to a replica through Sentinel, so the
            restart costs a switchover (a few seconds) and not an outage, or an unplanned
            failover if the restart outlasts down-after-milliseconds. Returns the new master."""
            group = node_plan.group
            names = ", ".join(key[0] for key in restart_keys)
            run.begin("switchover")
            run.record(f"SENTINEL FAILOVER {group.name} before restarting this master ({names} cannot change live)")
            if runner.options.check:
                return current[group.name].host
            remotes_now = {name: r.remote for name, r in runner.runs.items() if name not in runner.errors}
            try:
                switched = failover.hand_over(plan, remotes_now, group, run.name)
            except ProvisionError as failure:
                raise HostError(run.name, run.step, f"SENTINEL FAILOVER {group.name}", str(failure)) from None
            new_master = plan.inventory.host(switched.new_master)
            current[group.name] = topology.GroupMaster(group.name, new_master, "switchover")
            run.record(f"{group.name}: {switched.new_master} is master after {switched.seconds_to_switch:.1f}s; "
                       f"{run.name} replicates from it")
            return new_master

        if current:
            _recover_stopped_masters(runner, current)
            restart_locks = {group.name: threading.Lock() for group in plan.inventory.groups}
            master_names = {found.host.name for found in current.values()}
            replica_names = [run.name for run in runner.alive() if any(
                current[n.group.name].host.name != run.name for n in run.host_plan.nodes)]
            masters_wave = lambda: runner.each(runner.alive(sorted(master_names)), "masters",  # noqa: E731
                                               lambda run: configure_nodes(run, True))
            replicas_wave = lambda: runner.each(runner.alive(replica_names), "replicas",  # noqa: E731
                                                lambda run: configure_nodes(run, False))
            if all(found.source == "inventory" for found in current.values()):
                masters_wave()      # a fresh group: replicas need their master up first
                replicas_wave()
            else:
                replicas_wave()     # a running group: any restart takes replicas before the master
                masters_wave()
            sentinel_runs = [run for run in runner.alive() if run.host_plan.runs_sentinel]
            # After the node waves: a hand-over before a master's restart may have moved a master.
            master_addresses = {name: found.host.data_address for name, found in current.items()}

            def sentinel_wave(run: HostRun) -> None:
                run.begin("sentinel")
                outcome = sentinel.configure(run, master_addresses)
                sentinel.ensure_running(run, outcome, master_addresses)

            runner.each(sentinel_runs, "sentinel", sentinel_wave)
            runner.each([run for run in sentinel_runs if run.name not in runner.errors], "sentinel-wait",
                        lambda run: sentinel.wait_converged(run, master_addresses))
    finally:
        stop_heartbeat.set()
        runner.pool.shutdown(wait=True)
        for run in runner.runs.values():
            run.remote.close()
    outcomes = []
    for host_plan in plan.hosts:
        name = host_plan.host.name
        run = runner.runs.get(name)
        outcomes.append(HostOutcome(
            host=name, changes=tuple(run.changes) if run else (), restarts=tuple(run.restarts) if run else (),
            seconds=(time.monotonic() - run.started) if run else 0.0, error=runner.errors.get(name),
            unreachable=name in runner.unreachable))
    masters = {name: found.host.name for name, found in current.items()}
    return DeployReport(tuple(outcomes), time.monotonic() - started, options.check, masters)


def format_recap(report: DeployReport, plan: Plan, show_diff: bool) -> str:
    mask = secret_masker(plan)
    lines = []
    if show_diff:
        for outcome in report.outcomes:
            for change in outcome.changes:
                if change.diff:
                    lines.append(mask(change.diff.rstrip("\n")))
    title = "RECAP (check mode: nothing was changed)" if report.check else "RECAP"
    lines.append(title)
    for outcome in report.outcomes:
        if outcome.unreachable:
            state = "UNREACHABLE (skipped)"
        elif outcome.failed:
            step = getattr(outcome.error, "step", "?")
            state = f"FAILED   step={step}"
        elif outcome.changes:
            state = f"changed={len(outcome.changes)}"
        else:
            state = "unchanged"
        restarts = f"  started/restarted: {', '.join(outcome.restarts)}" if outcome.restarts else ""
        lines.append(f"  {outcome.host:16} {state:24} {outcome.seconds:6.1f}s{restarts}")
    if report.masters:
        lines.append("  masters: " + ", ".join(f"{group}={host}" for group, host in report.masters.items()))
    unreachable = f", {len(report.unreachable)} unreachable ({', '.join(report.unreachable)})" \
        if report.unreachable else ""
    lines.append(f"  total {report.seconds:.1f}s, {report.changed} change(s), "
                 f"{sum(o.failed for o in report.outcomes)} failed host(s){unreachable}")
    return mask("\n".join(lines))
