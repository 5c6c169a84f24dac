"""A controlled switchover of one Redis Cluster shard: CLUSTER FAILOVER sent to its freshest
linked replica, finished only when every member's view names that replica as the shard's
master, the old master replicates it and the cluster is whole again.

CLUSTER FAILOVER without FORCE or TAKEOVER is the coordinated kind: the master stops taking
writes, the replica waits until it has applied the master's whole replication stream, and only
then takes the slots over (a new config epoch); so no write the old master acknowledged is left
behind. FORCE and TAKEOVER skip that wait and are never sent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from provision.base.errors import ProvisionError, UsageError
from provision.core.plan import Plan, cluster_nodes
from provision.facts import cluster as cluster_facts
from provision.facts import rediscli
from provision.facts.poll import poll
from provision.ssh import remote as remotes

STEP = "failover"
SWITCH_SECONDS = 60


@dataclass(frozen=True)
class ShardFailoverResult:
    shard: str
    old_master: str
    new_master: str
    candidates: tuple[str, ...]     # the shard's replicas whose link was up, freshest first
    seconds_to_switch: float        # until the replica says it is master with the shard's slots
    seconds_to_agree: float         # until every member agrees and the old master replicates it


def named_shard(plan: Plan, name: str | None):
    shards = plan.inventory.cluster.shards
    if name is None:
        return shards[0]
    for shard in shards:
        if shard.name == name:
            return shard
    raise UsageError(f"no shard {name!r} in the inventory's cluster (shards: {', '.join(s.name for s in shards)})")


def run(plan: Plan, shard_name: str | None, check: bool = False) -> ShardFailoverResult:
    shard = named_shard(plan, shard_name)
    nodes = cluster_nodes(plan.inventory)
    connections, failed = remotes.open_all(plan)
    try:
        if set(failed) & set(nodes):
            raise ProvisionError("cluster failover refused: " + "; ".join(
                f"{name}: {remotes.reason(error)}" for name, error in failed.items() if name in nodes))
        views = _views(plan, connections, nodes)
        problems = cluster_facts.formed_problems(plan, views)
        if problems:
            raise ProvisionError(f"{shard.name}: the cluster is not whole, so no failover was sent:\n  - "
                                 + "\n  - ".join(problems[:10]))
        master = next(name for name in shard.members if cluster_facts.myself(views[name].nodes).slots)
        offsets = {}
        for name in shard.members:
            if name == master:
                continue
            info = rediscli.parse_info(cluster_facts.checked(connections[name], plan, nodes[name],
                                                             ["INFO", "replication"], STEP))
            if info.get("master_link_status") == "up":
                offsets[name] = int(info.get("slave_repl_offset", 0))
        candidates = tuple(sorted(offsets, key=lambda name: -offsets[name]))
        if not candidates:
            raise ProvisionError(f"{shard.name}: no replica of {master} has its replication link up; nothing was sent")
        chosen = candidates[0]
        if check:
            return ShardFailoverResult(shard.name, master, chosen, candidates, 0.0, 0.0)
        started = time.monotonic()
        cluster_facts.checked(connections[chosen], plan, nodes[chosen], ["CLUSTER", "FAILOVER"], STEP)
        switched, _ = poll(lambda: cluster_facts.myself(_view(plan, connections, nodes, chosen).nodes),
                           lambda me: me is not None and me.is_master and bool(me.slots), SWITCH_SECONDS, 0.05)
        if not switched:
            raise ProvisionError(f"{shard.name}: {chosen} did not take over from {master} within {SWITCH_SECONDS}s "
                                 "(CLUSTER FAILOVER waits for the replica to catch up; its master keeps the slots)")
        seconds_to_switch = time.monotonic() - started
        agreed, seen = poll(lambda: _views(plan, connections, nodes),
                            lambda found: not cluster_facts.formed_problems(plan, found)
                            and cluster_facts.myself(found[master].nodes).master_id
                            == cluster_facts.myself(found[chosen].nodes).node_id, SWITCH_SECONDS, 0.2)
        if not agreed:
            raise ProvisionError(f"{shard.name}: {chosen} is master, but the cluster did not agree within "
                                 f"{SWITCH_SECONDS}s: " + "; ".join(cluster_facts.formed_problems(plan, seen)[:5]))
        return ShardFailoverResult(shard.name, master, chosen, candidates, seconds_to_switch,
                                   time.monotonic() - started)
    finally:
        remotes.close_all(connections)


def _view(plan, connections, nodes, name):
    return cluster_facts.view_of(connections[name], plan, nodes[name], STEP)


def _views(plan, connections, nodes):
    return cluster_facts.views_of(connections, plan, nodes, STEP)
