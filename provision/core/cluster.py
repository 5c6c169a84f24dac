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


# ---- growing and shrinking a formed cluster ------------------------------------------------

@dataclass(frozen=True)
class SlotMove:
    slot: int
    source: str                    # node id that serves it now
    target: str                    # node id that is to serve it


def even_counts(masters: int) -> list[int]:
    """How many slots each of `masters` serves when even: the split of slot_ranges, the larger
    counts first, so a formed cluster and a rebalanced one agree."""
    return [last - first + 1 for first, last in slot_ranges(masters)]


def balance_moves(masters: list[str], owners: dict[int, str]) -> list[SlotMove]:
    """The fewest slot moves that leave `masters` (node ids, in the inventory's shard order)
    serving even counts and every other owner (a departing shard) none. A donor gives its
    highest-numbered slots, a receiver takes the lowest of what is given, so ranges stay few.
    Empty when the counts are already even: slots are never moved for their own sake."""
    targets = dict(zip(masters, even_counts(len(masters))))
    held: dict[str, list[int]] = {}
    for slot, owner in sorted(owners.items()):
        held.setdefault(owner, []).append(slot)
    given: list[tuple[int, str]] = []
    for owner, slots in held.items():
        keep = targets.get(owner, 0)
        given += [(slot, owner) for slot in slots[keep:]]
    given.sort()
    moves: list[SlotMove] = []
    for master in masters:
        wanted = targets[master] - len(held.get(master, []))
        while wanted > 0 and given:
            slot, source = given.pop(0)
            moves.append(SlotMove(slot, source, master))
            wanted -= 1
    return moves


def pairs_of(moves: list[SlotMove]) -> dict[tuple[str, str], list[int]]:
    """(source, target) → the slots it moves, in the order of `moves`."""
    pairs: dict[tuple[str, str], list[int]] = {}
    for move in moves:
        pairs.setdefault((move.source, move.target), []).append(move.slot)
    return pairs


def grouped(moves: list[SlotMove], batch: int) -> list[tuple[str, str, list[int]]]:
    """(source, target, slots) batches of at most `batch` slots, one pair at a time."""
    return [(source, target, slots[index:index + batch]) for (source, target), slots in pairs_of(moves).items()
            for index in range(0, len(slots), batch)]


def ranges_of(slots: list[int]) -> str:
    """'0-5, 9, 12-13': how a run names the slots it moves."""
    spans: list[list[int]] = []
    for slot in sorted(slots):
        if spans and slot == spans[-1][1] + 1:
            spans[-1][1] = slot
        else:
            spans.append([slot, slot])
    return format_ranges(spans)


def format_ranges(spans) -> str:
    """Inclusive (first, last) ranges as '0-5, 9, 12-13' (CLUSTER NODES's own ranges too)."""
    return ", ".join(f"{first}-{last}" if first != last else str(first) for first, last in spans)
