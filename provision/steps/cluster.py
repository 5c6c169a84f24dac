"""A Redis Cluster node on its host (its redis.conf, the process), and forming the cluster once
every node runs (run once, on the controller, over the nodes' connections).

Forming is the one step that can destroy data: a node that holds keys, serves slots or knows
other nodes already belongs to a cluster, and ADDSLOTS/MEET over it would merge two clusters or
drop what it holds. So the cluster forms only when every node is empty and alone
(facts/cluster.creation_refusal, redis-cli --cluster create's own rule); a cluster that is
formed and agreed is left alone; anything in between is named and refused, nothing sent.
"""
from __future__ import annotations

from provision.base.errors import HostError
from provision.core import cluster as cluster_plan
from provision.base import directives
from provision.core import confparse, render
from provision.core.plan import ClusterNodePlan, Plan, cluster_nodes
from provision.facts import cluster as cluster_facts
from provision.facts.poll import poll
from provision.ssh.remote import Remote
from provision.steps import node as node_steps
from provision.steps import primitives, reshard, services
from provision.steps.hostrun import HostRun

#: seconds forming may take until every node has met the others and the state is ok
FORM_SECONDS = 60


def configure_node(run: HostRun, node: ClusterNodePlan) -> None:
    """redis.conf written whole when it does not exist; afterwards patched where it differs, for
    settings Redis changes live (then CONFIG SET); one that needs a restart is refused: rolling
    a cluster's nodes (replicas first, CLUSTER FAILOVER per shard) is a later step."""
    run.begin("cluster configure")
    systemd = services.uses_systemd(run)
    path = run.layout.redis_conf(node.port)
    current = primitives.read_file(run, path)
    if current is None:
        primitives.ensure_file(run, path, render.cluster_redis_conf(run.plan, node, systemd), 0o640, "redis", "redis")
        return
    wanted = render.cluster_owned_directives(run.plan, node, systemd)
    changed = confparse.differing_keys(current, wanted)
    restart = [key for key in changed if directives.redis_needs_restart(key)]
    if restart:
        raise HostError(run.name, run.step, f"compare {path}",
                        "the cluster node's file differs from the inventory in settings Redis cannot change live: "
                        + ", ".join(" ".join(key) for key in restart)
                        + "; restarting cluster nodes for a setting is not built yet: nothing was changed")
    if not changed:
        primitives.ensure_file(run, path, current, 0o640, "redis", "redis")   # mode and owner only
        return
    # Live settings (a shard's replica count in repl-diskless-sync-max-replicas, maxmemory …):
    # the file first, so a restart keeps them, then CONFIG SET on the running node.
    primitives.ensure_file(run, path, confparse.patch(current, wanted, list(changed)), 0o640, "redis", "redis")
    if services.running_pid(run, node.port) is not None:
        refused = node_steps.apply_live(run, node, tuple(changed), wanted)
        if refused:
            raise HostError(run.name, run.step, "CONFIG SET", "Redis refused to change live: "
                            + ", ".join(" ".join(key) for key in refused) + f"; {path} has the new value(s)")


def start_command(run: HostRun, node: ClusterNodePlan) -> str:
    """No start guard: Redis Cluster decides itself what a node is (its nodes-<port>.conf)."""
    if services.uses_systemd(run):
        return f"systemctl start {render.server_unit_name(node.port)}"
    return render.cluster_start_line(run.layout, node.port)


def ensure_running(run: HostRun, node: ClusterNodePlan) -> None:
    run.begin("cluster start")
    if services.running_pid(run, node.port) is not None:
        return
    if run.act(f"start cluster node redis-server :{node.port}", start_command(run, node)) is None:
        return      # --check
    with run.lock:
        run.restarts.append(f"redis-server:{node.port}")
    services.wait_until(run, f"redis-server :{node.port} to answer PING",
                        lambda: _answers(run.remote, run.plan, node), 30)


def _answers(remote: Remote, plan: Plan, node: ClusterNodePlan):
    result = cluster_facts.call(remote, plan, node, ["PING"])
    reply = result.stdout.strip()
    return reply == "PONG", reply or result.stderr.strip()


def form(plan: Plan, remotes: dict[str, Remote], record, check: bool, say=lambda text: None,
         not_started: frozenset[str] = frozenset()) -> reshard.Reshape:
    """Forms the cluster over empty nodes, leaves a formed one alone, or reshapes a formed one
    whose members or slot shares differ from the inventory's (steps/reshard.py). `remotes`: the
    members' and any retiring host's connections. `record(host, action)` notes each change;
    `check`: say what would be sent, send nothing; `not_started` (under check only): members a
    real run would start first, taken as the empty and alone nodes they would be."""
    cluster = plan.inventory.cluster
    nodes = cluster_nodes(plan.inventory)
    views = cluster_facts.views_of(remotes, plan, nodes, "cluster form",
                                   {name: cluster_facts.unstarted_view(nodes[name]) for name in not_started})
    problems = cluster_facts.formed_problems(plan, views)
    members = reshard.sort_out(plan, views)
    if not problems and not reshard.needed(plan, views, members):
        return reshard.Reshape(released=reshard.released_hosts(plan, views))
    refusals = {name: cluster_facts.creation_refusal(node.host.data_address, views[name].nodes, views[name].keys)
                for name, node in nodes.items()}
    blocking = {name: why for name, why in refusals.items() if why is not None}
    if blocking and members.core:
        return reshard.reshape(plan, remotes, views, record, check, say)
    if blocking:
        raise HostError(sorted(blocking)[0], "cluster form", "CLUSTER NODES on every node",
                        "the nodes are neither one formed cluster nor all empty and alone, so forming could merge "
                        "clusters or lose keys; nothing was sent:\n  - "
                        + "\n  - ".join(f"{name}: {why}" for name, why in sorted(blocking.items()))
                        + "\n  what is not yet the inventory's cluster:\n  - "
                        + "\n  - ".join(problems[:10]))
    ids = {name: cluster_facts.myself(view.nodes).node_id for name, view in views.items()}
    commands = cluster_plan.creation_commands(cluster, nodes, ids)
    replicate = [command for command in commands if command.words[1] == "REPLICATE"]
    for command in commands:
        if command in replicate:
            continue
        _send(plan, remotes, nodes[command.host], command, record, check)
    if check:
        for command in replicate:
            record(command.host, command.why)
        return reshard.Reshape()
    # A replica can only REPLICATE a master it knows: wait until every node has met every other.
    _wait(plan, remotes, nodes, "every node to know every other", lambda found: all(
        sum(known.met for known in view.nodes) >= len(nodes) for view in found.values()))
    for command in replicate:
        _send(plan, remotes, nodes[command.host], command, record, check)
    found = _wait(plan, remotes, nodes, "the cluster to be whole and agreed",
                  lambda found: not cluster_facts.formed_problems(plan, found))
    return reshard.Reshape(released=reshard.released_hosts(plan, found))


def _send(plan, remotes, node: ClusterNodePlan, command: cluster_plan.ClusterCommand, record, check: bool) -> None:
    record(command.host, command.why)
    if check:
        return
    cluster_facts.checked(remotes[command.host], plan, node, list(command.words), "cluster form")


def _wait(plan, remotes, nodes, what: str, reached) -> None:
    done, found = poll(lambda: cluster_facts.views_of(remotes, plan, nodes, "cluster form"), reached, FORM_SECONDS, 0.5)
    if not done:
        raise HostError(sorted(nodes)[0], "cluster form", f"wait for {what}",
                        f"not reached after {FORM_SECONDS}s; last seen:\n  - "
                        + "\n  - ".join(cluster_facts.formed_problems(plan, found)[:10]))
    return found

