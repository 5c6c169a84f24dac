"""Forming a Redis Cluster, as a plan of commands: which node gets which slots, which config
epoch, whom it meets and whom it replicates. Pure (node ids in, commands out); the step that
sends them (steps/cluster.py) asks facts/cluster.creation_refusal of every node first."""
from __future__ import annotations

from dataclasses import dataclass

from provision.core.plan import ClusterNodePlan, slot_ranges
from provision.inventory import Cluster


@dataclass(frozen=True)
class ClusterCommand:
    host: str                      # the node's host that is sent the command
    words: tuple[str, ...]         # the Redis command (redis-cli arguments)
    why: str                       # as the run's record shows it


def creation_commands(cluster: Cluster, nodes: dict[str, ClusterNodePlan], ids: dict[str, str]) -> list[ClusterCommand]:
    """In order: each master its slot range and its own config epoch (distinct epochs, as
    redis-cli --cluster create sets them, so no two masters start with the same one and none
    has to bump), every other node met from the first master, then each replica attached to
    its shard's master. `nodes` and `ids`: host name → its node plan and CLUSTER MYID."""
    commands: list[ClusterCommand] = []
    masters = [shard.master for shard in cluster.shards]
    for epoch, (shard, (first, last)) in enumerate(zip(cluster.shards, slot_ranges(len(cluster.shards))), 1):
        commands.append(ClusterCommand(shard.master, ("CLUSTER", "ADDSLOTSRANGE", str(first), str(last)),
                                       f"{shard.name}: slots {first}-{last} to {shard.master}"))
        commands.append(ClusterCommand(shard.master, ("CLUSTER", "SET-CONFIG-EPOCH", str(epoch)),
                                       f"{shard.name}: config epoch {epoch}"))
    introducer = masters[0]
    for shard in cluster.shards:
        for name in shard.members:
            if name == introducer:
                continue
            node = nodes[name]
            commands.append(ClusterCommand(introducer, ("CLUSTER", "MEET", node.host.data_address, str(node.port),
                                                        str(cluster.bus_port)),
                                           f"{introducer} meets {name}"))
    for shard in cluster.shards:
        for replica in shard.replicas:
            commands.append(ClusterCommand(replica, ("CLUSTER", "REPLICATE", ids[shard.master]),
                                           f"{shard.name}: {replica} replicates {shard.master}"))
    return commands
