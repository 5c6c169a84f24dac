"""What a deploy does: the table of waves below, run in order by the engine (waves.py), each
wave's step on its hosts in parallel. A host that fails is named with its step, command and
stderr and sits out the later waves; the others finish theirs. A re-run converges.

Which node is master is the Sentinels' answer when the topology wave runs (the inventory's
`master` only for a group nothing runs yet), and every wave after it reads and updates that one
`Deploy.topology`. Within a group, a new group's master comes first (its replicas need it), and a
running group's master comes last (any restart takes the replicas first; a master that must
restart hands over to a replica first).
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from provision.facts import host as host_facts
from provision.ops import failover
from provision.ssh import hostlock, remote
from provision.base import output
from provision.deploy import preflight
from provision.facts import topology
from provision.core import state as host_state
from provision.base.errors import HostError, ProvisionError
from provision.steps.hostrun import Change, HostRun, RunOptions
from provision.inventory import Host, secret_masker
from provision.core.plan import NodePlan, Plan
from provision.steps import build, cluster, membership, node, sentinel, services, system
from provision.deploy.waves import Runner, Wave


@dataclass
class PlatformBuilds:
    """One build per platform: who builds it, and a failed build that the platform's other
    hosts must not repeat. A host holds its platform's lock while it asks and builds."""
    _locks: dict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    _builders: dict[str, str] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)

    def lock(self, platform: str) -> threading.Lock:
        return self._locks[platform]

    def builder(self, platform: str) -> str | None:
        return self._builders.get(platform)

    def failed_on(self, platform: str) -> str | None:
        return self._failed.get(platform)

    def claim(self, platform: str, host: str) -> None:
        self._builders[platform] = host

    def mark_failed(self, platform: str, host: str) -> None:
        self._failed[platform] = host


@dataclass
class Deploy:
    """The state waves share, changed only through its methods."""
    plan: Plan
    options: RunOptions
    runner: Runner
    topology: dict[str, topology.GroupMaster] = field(default_factory=dict)
    stopped_masters: set[str] = field(default_factory=set)   # groups whose named master is not running
    restart_locks: dict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    sentinel_restart_lock: threading.Lock = field(default_factory=threading.Lock)
    monitored: tuple[topology.Monitored, ...] = ()     # what the sentinels monitored when the run began
    departed_now: bool = False                           # the retire wave stopped something this run
    cluster_released: set[str] = field(default_factory=set)   # retiring hosts whose cluster node every member forgot
    builds: "PlatformBuilds" = field(default_factory=lambda: PlatformBuilds())
    refusals: list[str] = field(default_factory=list)   # inventory problems only the hosts' release can tell
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, problems: list[str]) -> None:
        with self._lock:
            self.refusals.extend(problem for problem in problems if problem not in self.refusals)

    def set_master(self, group: str, host: Host, source: str) -> None:
        with self._lock:
            self.topology[group] = topology.GroupMaster(group, host, source)

    def set_monitored(self, monitored: tuple[topology.Monitored, ...]) -> None:
        self.monitored = monitored

    def mark_master_stopped(self, group: str) -> None:
        with self._lock:
            self.stopped_masters.add(group)

    def mark_departed(self) -> None:
        self.departed_now = True

    def master_addresses(self) -> dict[str, str]:
        return {name: found.host.data_address for name, found in self.topology.items()}

    def role_of(self, node_plan: NodePlan) -> str:
        """new-master, running-master or replica: which node wave configures this node."""
        found = self.topology[node_plan.group.name]
        if found.host.name != node_plan.host.name:
            return "replica"
        return "new-master" if found.source == "inventory" else "running-master"


# ---- which hosts ---------------------------------------------------------------------------

def every_host(deploy: Deploy) -> list[HostRun]:
    return deploy.runner.alive()


def serving_hosts(deploy: Deploy) -> list[HostRun]:
    """Every host but those being retired (`state: absent`)."""
    return [run for run in deploy.runner.alive() if not run.host_plan.retiring]


def hosts_with_departures(deploy: Deploy) -> list[HostRun]:
    return [run for run in deploy.runner.alive() if membership.unwanted_processes(run, deploy.monitored)
            or (run.host_plan.retiring and run.facts is not None)]


def _hosts_with_node_role(deploy: Deploy, role: str) -> list[HostRun]:
    return [run for run in deploy.runner.alive()
            if any(deploy.role_of(node_plan) == role for node_plan in run.host_plan.nodes)]


def new_group_masters(deploy: Deploy) -> list[HostRun]:
    return _hosts_with_node_role(deploy, "new-master")


def replicas(deploy: Deploy) -> list[HostRun]:
    return _hosts_with_node_role(deploy, "replica")


def running_group_masters(deploy: Deploy) -> list[HostRun]:
    return _hosts_with_node_role(deploy, "running-master")


def stopped_group_masters(deploy: Deploy) -> list[HostRun]:
    return [run for run in deploy.runner.alive()
            if any(deploy.topology[node.group.name].host.name == run.name for node in run.host_plan.nodes
                   if node.group.name in deploy.stopped_masters)]


def replicas_of_stopped_masters(deploy: Deploy) -> list[HostRun]:
    return [run for run in deploy.runner.alive()
            if any(deploy.role_of(node) == "replica" and node.group.name in deploy.stopped_masters
                   for node in run.host_plan.nodes)]


def sentinel_hosts(deploy: Deploy) -> list[HostRun]:
    return [run for run in deploy.runner.alive() if run.host_plan.runs_sentinel]


def cluster_hosts(deploy: Deploy) -> list[HostRun]:
    return [run for run in deploy.runner.alive() if run.host_plan.cluster_node is not None]


# ---- what each does ------------------------------------------------------------------------

def gather_facts(run: HostRun, deploy: Deploy) -> None:
    run.facts = host_facts.gather(run.remote, run.layout)
    run.state = host_state.parse(run.facts.state_text)


def lay_out(run: HostRun, deploy: Deploy) -> None:
    system.layout(run)


def install_binaries(run: HostRun, deploy: Deploy) -> None:
    """Build once per platform (or take the artifact cache), ship to the other hosts, switch bin.
    The first host of a platform builds while the others wait for its artifact."""
    if build.needs_install(run, run.facts):
        _build_or_ship(run, deploy)
    if not run.options.check or not build.needs_install(run, run.facts):
        run.begin("install")
        build.activate(run, run.facts)


def _build_or_ship(run: HostRun, deploy: Deploy) -> None:
    redis = run.plan.inventory.redis
    if redis.source is None:
        raise HostError(run.name, "install", f"install Redis {redis.version}",
                        f"Redis {redis.version} is not installed on this host and the inventory has no source for it: "
                        f"add it under redis.releases (\"{redis.version}\": {{url or tarball, sha256}})")
    platform = run.facts.platform
    builds = deploy.builds
    with builds.lock(platform):
        if builds.failed_on(platform) is not None:
            builder = builds.failed_on(platform)
            raise HostError(run.name, "build", f"build on {builder}", f"the build for platform {platform} failed "
                                                                     f"on {builder}; nothing was installed here")
        if not build.is_cached(build.artifact_path(run, run.facts)):
            if run.options.check and builds.builder(platform) is not None:
                run.begin("build")
                run.record(f"install Redis binaries built on {builds.builder(platform)}")
                return
            builds.claim(platform, run.name)
            run.begin("build")
            try:
                build.compile_on_host(run, run.facts)
            except ProvisionError:
                builds.mark_failed(platform, run.name)
                raise
            return
    run.begin("install")
    build.ship_to_host(run, run.facts)


def tune(run: HostRun, deploy: Deploy) -> None:
    system.tune(run)


#: seconds a deploy waits for a Sentinel failover in flight to end before it asks who is master
FAILOVER_IN_FLIGHT_SECONDS = 60


def _wait_failovers(deploy: Deploy, remotes) -> None:
    """A failover in flight decides who is master: the run waits for it to end (promoted, or
    aborted) rather than configure against the master that is being replaced."""
    deadline = time.monotonic() + FAILOVER_IN_FLIGHT_SECONDS
    said = False
    while (busy := topology.failovers_in_flight(deploy.plan, remotes)) and time.monotonic() < deadline:
        if not said:
            deploy.runner.say("waiting for the Sentinel failover in flight to end: " + "; ".join(
                f"group {group} (sentinel {', '.join(names)})" for group, names in busy.items()))
            said = True
        time.sleep(0.5)


def check_setting_names(run: HostRun, deploy: Deploy) -> None:
    run.begin("settings")
    deploy.refuse(node.unknown_setting_problems(run))


def refuse_unknown_settings(deploy: Deploy) -> None:
    """Once, on the controller, after every host's check and before any config is written: one
    host's unknown setting stops every host, as an inventory problem does."""
    if not deploy.refusals:
        return
    reason = ("refused before writing any config: the installed release does not know these settings:\n  - "
              + "\n  - ".join(sorted(deploy.refusals)))
    for run in deploy.runner.alive():
        deploy.runner.fail(run.name, HostError(run.name, "settings", "check redis.settings names", reason))


def discover_topology(deploy: Deploy) -> None:
    """Once, on the controller, before any host is changed: what the inventory asks for that is
    refused (preflight.py), then the current master of every group."""
    remotes = {run.name: run.remote for run in deploy.runner.alive()}
    facts = {run.name: run.facts for run in deploy.runner.alive()}
    sentinel_port = deploy.plan.inventory.redis.sentinel_port
    running_sentinels = {name for name, found in facts.items() if found.process_on(sentinel_port)}
    deploy.set_monitored(topology.sentinel_view(deploy.plan, remotes, running_sentinels))
    problems = preflight.version_problems(deploy.plan, facts, deploy.options.allow_major) + \
        preflight.move_problems(deploy.plan, facts) + preflight.group_problems(deploy.plan, deploy.monitored) + \
        preflight.departing_master_problems(deploy.plan, deploy.monitored)
    if problems:
        reason = "refused before changing anything:\n  - " + "\n  - ".join(problems)
        for run in deploy.runner.alive():
            deploy.runner.fail(run.name, HostError(run.name, "preflight", "compare the inventory with what runs", reason))
        return
    _wait_failovers(deploy, remotes)
    try:
        found = topology.discover(deploy.plan, remotes)
    except topology.TopologyError as error:
        for run in deploy.runner.alive():
            deploy.runner.fail(run.name, HostError(run.name, "topology", "ask sentinels and ROLE", str(error)))
        return
    for group in deploy.plan.inventory.groups:
        master = found[group.name]
        deploy.set_master(group.name, master.host, master.source)
        run = deploy.runner.runs.get(master.host.name)
        if master.source == "sentinels" and run is not None and master.host.name not in deploy.runner.errors \
                and services.running_pid(run, group.port) is None:
            deploy.mark_master_stopped(group.name)
        if master.host.name != group.master:
            deploy.runner.say(f"group {group.name}: current master is {master.host.name} (from {master.source}), "
                              f"not the inventory's initial {group.master}; keeping it")


def start_stopped_replicas(run: HostRun, deploy: Deploy) -> None:
    """The replicas of a group whose named master is down are started first (as replicas, through
    their guard, without waiting for a link): the Sentinels can only fail the master over to a
    replica that runs."""
    for node_plan in run.host_plan.nodes:
        if deploy.role_of(node_plan) != "replica" or node_plan.group.name not in deploy.stopped_masters \
                or services.running_pid(run, node_plan.port) is not None:
            continue
        run.act(f"start redis-server :{node_plan.port} (its group's master is down too) through its guard",
                lambda node_plan=node_plan: _start_through_guard(run, node_plan))


def _start_through_guard(run: HostRun, node_plan: NodePlan) -> tuple[str, str | None]:
    """Start a stopped node through start-redis; returns the guard's RESULT (role, master)."""
    started = services.start(run, node_plan.port, node_plan.host.data_address)
    if not started.ok:
        raise HostError(run.name, run.step, services.start_command(run, node_plan.port), started.failure)
    with run.lock:
        run.restarts.append(f"redis-server:{node_plan.port}")
    return started.role or "unknown", started.master


def recover_stopped_master(run: HostRun, deploy: Deploy) -> None:
    """A node the Sentinels still name master but that is not running (it crashed and they have
    not failed over yet) starts through its guard, which waits for their failover and starts it as
    the new master's replica: it never comes back a master with only what its AOF held."""
    for node_plan in run.host_plan.nodes:
        group = node_plan.group.name
        if group not in deploy.stopped_masters or deploy.topology[group].host.name != run.name:
            continue
        started = run.act(f"redis-server :{node_plan.port} is down and the sentinels still name it master of "
                          f"{group}: start it through its guard (after their failover, as a replica)",
                          lambda node_plan=node_plan: _start_through_guard(run, node_plan))
        if started is None:
            continue
        role, master_address = started
        new_master = deploy.plan.host_by_data_address(master_address or "")
        if role == "replica" and new_master is not None:
            deploy.set_master(group, new_master, "sentinels")
            run.record(f"{group}: {new_master.name} is master now; {run.name} started as its replica")


def configure_new_masters(run: HostRun, deploy: Deploy) -> None:
    _configure_nodes(run, deploy, "new-master")


def configure_replicas(run: HostRun, deploy: Deploy) -> None:
    _configure_nodes(run, deploy, "replica")


def configure_running_masters(run: HostRun, deploy: Deploy) -> None:
    _configure_nodes(run, deploy, "running-master")


def _configure_nodes(run: HostRun, deploy: Deploy, role: str) -> None:
    run.begin("configure")
    if run.acl_changed is None:
        run.acl_changed = node.ensure_acl_file(run)
    for node_plan in run.host_plan.nodes:
        if deploy.role_of(node_plan) != role:
            continue
        group = node_plan.group.name
        master_host = deploy.topology[group].host
        wanted = node.wanted_directives(run, node_plan)
        if role == "running-master" and node_plan.group.replicas:
            restart_keys = node.predicted_restart_keys(run, node_plan, wanted)
            if restart_keys:
                master_host = _hand_over_before_restart(run, deploy, node_plan, restart_keys)
        outcome = node.configure(run, node_plan, master_host, wanted)
        run.begin("start")
        # The guard asks the Sentinels itself; only a group they do not monitor yet (a fresh one,
        # or sentinels all down) is told its master.
        known_master = master_host.data_address if deploy.topology[group].source in ("inventory", "roles") else None
        # Restarts within a group happen one node at a time (the node back and linked before the
        # next goes), so the group never loses more than one member.
        lock = deploy.restart_locks[group] if outcome.restart_keys else contextlib.nullcontext()
        with lock:
            started = node.ensure_running(run, node_plan, outcome, run.acl_changed, known_master)
            node.record_settings(run, node_plan)
            if master_host.name == run.name and (started is None or started.role != "replica"):
                node.wait_master_ready(run, node_plan)
            elif outcome.restart_keys:
                node.wait_replica_linked(run, node_plan)      # linked before the group's next restart
            else:
                # Waited for in the next wave, not while holding one of the pool's slots: every
                # replica of a large group then connects at once and the master serves them all
                # with one transfer (repl-diskless-sync-max-replicas), not one batch per slot.
                run.pending_links.append(node_plan)


def wait_replica_links(run: HostRun, deploy: Deploy) -> None:
    run.begin("start")
    while run.pending_links:
        node.wait_replica_linked(run, run.pending_links.pop(0))


def hosts_with_pending_links(deploy: Deploy) -> list[HostRun]:
    return [run for run in deploy.runner.alive() if run.pending_links]


def _hand_over_before_restart(run: HostRun, deploy: Deploy, node_plan: NodePlan, restart_keys) -> Host:
    """A master about to restart first hands over to a replica through Sentinel, so the restart
    costs a switchover (a few seconds) and not an outage, or an unplanned failover if it outlasts
    down-after-milliseconds. Returns the new master."""
    group = node_plan.group
    names = ", ".join(key[0] for key in restart_keys)
    run.begin("switchover")
    def hand_over():
        remotes = {alive.name: alive.remote for alive in deploy.runner.alive()}
        try:
            return failover.hand_over(deploy.plan, remotes, group, run.name)
        except ProvisionError as failure:
            raise HostError(run.name, run.step, f"SENTINEL FAILOVER {group.name}", str(failure)) from None
    switched = run.act(f"SENTINEL FAILOVER {group.name} before restarting this master ({names} cannot change live)",
                       hand_over)
    if switched is None:                   # --check: the master stays where it is
        return deploy.topology[group.name].host
    new_master = deploy.plan.inventory.host(switched.new_master)
    deploy.set_master(group.name, new_master, "switchover")
    run.record(f"{group.name}: {switched.new_master} is master after {switched.seconds_to_switch:.1f}s; "
               f"{run.name} replicates from it")
    return new_master


def configure_sentinel(run: HostRun, deploy: Deploy) -> None:
    run.begin("sentinel")
    new_peers = tuple(other.host_plan.host for other in sentinel_hosts(deploy)
                      if other.facts is not None and not other.facts.has_sentinel_conf)
    outcome = sentinel.configure(run, deploy.master_addresses(), new_peers)
    if not outcome.restart or services.running_pid(run, None) is None:
        sentinel.ensure_running(run, outcome, deploy.master_addresses())
        return
    # Running sentinels restart one at a time, each back and seeing its groups complete before
    # the next goes: the others keep a majority for a failover throughout.
    with deploy.sentinel_restart_lock:
        sentinel.ensure_running(run, outcome, deploy.master_addresses())
        sentinel.wait_converged(run, deploy.master_addresses())


def configure_cluster_node(run: HostRun, deploy: Deploy) -> None:
    run.begin("cluster configure")
    cluster_node = run.host_plan.cluster_node
    if run.acl_changed is None:
        run.acl_changed = node.ensure_acl_file(run)
    cluster.configure_node(run, cluster_node)
    if run.acl_changed and services.running_pid(run, cluster_node.port) is not None:
        run.act(f"ACL LOAD on redis-server :{cluster_node.port} (users.acl changed)",
                lambda: node.acl_load(run, cluster_node))
    cluster.ensure_running(run, cluster_node)


def form_cluster(deploy: Deploy) -> None:
    """Once, on the controller, when every cluster node is up: form it over empty nodes, leave
    a formed one alone, refuse anything in between (steps/cluster.py)."""
    if deploy.plan.inventory.cluster is None:
        return
    members = deploy.plan.inventory.cluster.members
    runs = {run.name: run for run in cluster_hosts(deploy)}
    runs.update({run.name: run for run in deploy.runner.alive() if run.host_plan.retiring})
    if set(members) - set(runs):
        deploy.runner.say("cluster: not formed or checked this run: "
                          f"{', '.join(sorted(set(members) - set(runs)))} failed or could not be reached")
        return
    first = runs[members[0]]

    def record(host: str, action: str) -> None:
        run = runs[host]
        run.begin("cluster form")
        run.record(action)

    not_started = frozenset(name for name, run in runs.items() if deploy.options.check
                            and run.host_plan.cluster_node is not None
                            and services.running_pid(run, run.host_plan.cluster_node.port) is None)
    if not_started == set(members):
        first.begin("cluster form")
        first.record("form the cluster once every node runs (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE)")
        return
    try:
        reshaped = cluster.form(deploy.plan, {name: run.remote for name, run in runs.items()}, record,
                                deploy.options.check, deploy.runner.say, not_started)
    except HostError as error:
        deploy.runner.fail(error.host, error)
        return
    deploy.cluster_released |= reshaped.released


def wait_sentinel(run: HostRun, deploy: Deploy) -> None:
    sentinel.switch_peer_auth(run)
    sentinel.ensure_info_period(run)
    sentinel.wait_converged(run, deploy.master_addresses())


def retire_departed(run: HostRun, deploy: Deploy) -> None:
    deploy.mark_departed()
    membership.retire(run, deploy.monitored, keep_ports=cluster_ports_kept(run, deploy))


def cluster_ports_kept(run: HostRun, deploy: Deploy) -> frozenset[int]:
    """A retiring host's cluster node keeps running until every member has forgotten it (the
    reshape moved its slots away first): stopped earlier, its slots would have no master."""
    cluster_section = deploy.plan.inventory.cluster
    if cluster_section is None or not run.host_plan.retiring or run.name in deploy.cluster_released:
        return frozenset()
    if not any(process.port == cluster_section.port and not process.sentinel for process in run.facts.processes):
        return frozenset()
    if deploy.options.check:
        return frozenset()       # the reshape's record says what would happen first
    return frozenset({cluster_section.port})


def forget_departed(deploy: Deploy) -> None:
    """Once, on the controller, one sentinel at a time (membership.py)."""
    remotes = {run.name: run.remote for run in deploy.runner.alive()}
    try:
        # Peers stopped this run get a few seconds to show as down; on other runs a stale entry
        # that still runs is only named (it is not this run's to stop).
        forgotten = membership.forget_departed(deploy.plan, remotes, deploy.runner.say, deploy.options.check,
                                               settle_seconds=15 if deploy.departed_now else 0)
    except HostError as error:
        deploy.runner.fail(error.host, error)
        return
    for item in forgotten:
        run = deploy.runner.runs.get(item.sentinel)
        if run is not None:
            with run.lock:
                run.changes.append(Change(run.name, "forget", f"SENTINEL RESET {item.group} "
                                                              f"(forgot {', '.join(item.stale)}) in {item.seconds:.1f}s"))


WAVES = (
    #    name                which hosts                   step
    Wave("facts",            every_host,                   gather_facts),
    Wave("topology",         None,                         discover_topology),     # once, on the controller
    Wave("layout",           serving_hosts,                lay_out),
    Wave("install",          serving_hosts,                install_binaries),
    Wave("settings",         serving_hosts,                check_setting_names),   # names the release knows,
    Wave("settings check",   None,                         refuse_unknown_settings),   # else stop every host
    Wave("tune",             serving_hosts,                tune),
    Wave("recover replicas", replicas_of_stopped_masters,  start_stopped_replicas),
    Wave("recover",          stopped_group_masters,        recover_stopped_master),
    Wave("new masters",      new_group_masters,            configure_new_masters),
    Wave("replicas",         replicas,                     configure_replicas),
    Wave("replica links",    hosts_with_pending_links,     wait_replica_links),
    Wave("running masters",  running_group_masters,        configure_running_masters),
    Wave("replica links",    hosts_with_pending_links,     wait_replica_links),    # a master that came back a replica
    Wave("cluster nodes",    cluster_hosts,                configure_cluster_node),
    Wave("cluster form",     None,                         form_cluster),          # once, on the controller
    Wave("sentinel",         sentinel_hosts,               configure_sentinel),    # SENTINEL REMOVE first,
    Wave("retire",           hosts_with_departures,        retire_departed),       # then stop (data stays)
    Wave("sentinel-wait",    sentinel_hosts,               wait_sentinel),
    Wave("forget",           None,                         forget_departed),       # one sentinel at a time
)


# ---- the run and its report ----------------------------------------------------------------

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


def deploy(plan: Plan, options: RunOptions, say: Callable[[str], None] = output.say) -> DeployReport:
    """Run WAVES over the plan's hosts. The caller has joined the controller's network namespace
    (cli.controller_network)."""
    started = time.monotonic()
    runner = Runner(plan.inventory.controller.parallel, say, secret_masker(plan.inventory))
    state = Deploy(plan, options, runner)
    connect_seconds: dict[str, float] = {}
    try:
        connections, unreachable = remote.open_all(plan, connect_seconds) if options.check else \
            hostlock.open_locked(plan, "deploy", connect_seconds)
        for host_plan in plan.hosts:
            name = host_plan.host.name
            if name in connections:
                runner.runs[name] = HostRun(connections[name], plan, host_plan, options, runner.say, started=started)
            else:
                runner.errors[name] = unreachable[name]
                runner.unreachable.add(name)
                runner.say(f"UNREACHABLE {unreachable[name]}\n  skipping {name}; the other hosts carry on. Re-run "
                           "deploy when it is back: its redis-server starts as the Sentinels say (start-redis).")
        runner.run(WAVES, state)
    finally:
        runner.close()
    finished = time.monotonic()
    outcomes = []
    for host_plan in plan.hosts:
        name = host_plan.host.name
        run = runner.runs.get(name)
        outcomes.append(HostOutcome(
            host=name, changes=tuple(run.changes) if run else (), restarts=tuple(run.restarts) if run else (),
            seconds=(runner.ended.get(name, finished) - run.started) if run else connect_seconds.get(name, 0.0),
            error=runner.errors.get(name), unreachable=name in runner.unreachable))
    # Only what a reached host showed: a group none of whose hosts answered has no known master.
    masters = {name: found.host.name for name, found in state.topology.items() if found.host.name in runner.runs}
    return DeployReport(tuple(outcomes), time.monotonic() - started, options.check, masters)
