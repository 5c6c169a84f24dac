"""verify's checks of a Redis Cluster as a whole (each node's own are in verify.py): every node
knows every member, the slot map whole and agreed, one serving master per shard with its
replicas, cluster_state ok; then a write on each shard's master that its replicas acknowledge (WAIT).
Read-only but for that key, deleted again."""
from __future__ import annotations

import secrets

from provision.base import defaults
from provision.core.plan import ClusterNodePlan, Plan, cluster_nodes
from provision.facts import cluster as cluster_facts
from provision.ssh.remote import Remote

WAIT_MILLISECONDS = 5000


def cluster_checks(plan: Plan, connections: dict[str, Remote], answering: set[str]) -> list[tuple[str, str, bool, str]]:
    """(host, check, ok, detail) rows for the cluster as a whole, then each shard's write."""
    cluster = plan.inventory.cluster
    nodes = cluster_nodes(plan.inventory)
    first = cluster.members[0]
    silent = sorted(set(nodes) - answering)
    if silent:
        return [(first, "cluster", False, f"not checked: {', '.join(silent)} did not answer")]
    views = cluster_facts.views_of(connections, plan, nodes, "verify")
    problems = cluster_facts.formed_problems(plan, views)
    rows = [(first, "cluster formed", not problems, "; ".join(problems[:5]) or
             f"{len(cluster.shards)} shards, 16384 slots served and agreed by {len(nodes)} nodes, state ok")]
    if problems:
        return rows
    for shard in cluster.shards:
        master = next(name for name in shard.members if cluster_facts.myself(views[name].nodes).slots)
        rows.append(_shard_write(plan, connections[master], nodes[master], views[master], shard))
    return rows


def _shard_write(plan: Plan, connection: Remote, node: ClusterNodePlan, view: cluster_facts.NodeView, shard):
    """A key of a slot this master serves, written and acknowledged by every replica (WAIT)."""
    own = cluster_facts.myself(view.nodes)
    served = {slot for first, last in own.slots for slot in range(first, last + 1)}
    check = f"{shard.name} replicated write"
    for attempt in range(64):
        key = f"{{{defaults.VERIFY_KEY_PREFIX}{attempt}}}:{secrets.token_hex(4)}"
        slot = cluster_facts.call(connection, plan, node, ["CLUSTER", "KEYSLOT", key]).stdout.strip()
        if slot.isdigit() and int(slot) in served:
            break
    else:
        return node.host.name, check, False, "found no key of a slot this master serves"
    try:
        written = cluster_facts.call(connection, plan, node, ["SET", key, secrets.token_hex(8), "EX", "60"])
        if written.stdout.strip() != "OK":
            return node.host.name, check, False, (written.stdout + written.stderr).strip()[:200]
        acked = cluster_facts.call(connection, plan, node, ["WAIT", str(len(shard.replicas)),
                                                            str(WAIT_MILLISECONDS)]).stdout.strip()
        ok = acked.isdigit() and int(acked) >= len(shard.replicas)
        return (node.host.name, check, ok,
                f"acknowledged by {acked} of {len(shard.replicas)} replica(s) (WAIT, {WAIT_MILLISECONDS} ms)")
    finally:
        cluster_facts.call(connection, plan, node, ["DEL", key])
