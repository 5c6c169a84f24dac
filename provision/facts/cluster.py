"""Redis Cluster as one node sees it: parsers of CLUSTER NODES and CLUSTER INFO (their formats
as cluster.c's clusterGenNodeDescription writes them, 7.0), and the judgements every cluster
step and check makes from them: may a cluster be created here, is the slot map whole and agreed,
is a slot left open. Pure: the commands go through facts/rediscli."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from provision.core.plan import ClusterNodePlan, Plan
from provision.facts import rediscli
from provision.ssh.remote import Remote

SLOTS = 16384

_OPEN_SLOT = re.compile(r"\[(\d+)-([<>])-([0-9a-f]{40})\]")


@dataclass(frozen=True)
class ClusterNode:
    node_id: str
    address: str                  # ip:port (the client port)
    bus_port: int
    flags: frozenset[str]         # myself, master, slave, fail?, fail, handshake, noaddr, nofailover
    master_id: str | None         # for a replica
    config_epoch: int
    connected: bool
    slots: tuple[tuple[int, int], ...]           # inclusive ranges
    migrating: tuple[tuple[int, str], ...] = ()  # (slot, to node id): only in the node's own line
    importing: tuple[tuple[int, str], ...] = ()

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def myself(self) -> bool:
        return "myself" in self.flags

    @property
    def met(self) -> bool:
        """Known past the handshake, with an address."""
        return not {"handshake", "noaddr"} & self.flags

    @property
    def failing(self) -> bool:
        return bool({"fail", "fail?"} & self.flags)

    @property
    def slot_count(self) -> int:
        return sum(last - first + 1 for first, last in self.slots)


def parse_nodes(text: str) -> tuple[ClusterNode, ...]:
    """CLUSTER NODES: one line per known node."""
    nodes = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 8:
            continue
        address, _, rest = words[1].partition("@")
        bus = rest.split(",", 1)[0]
        slots, migrating, importing = [], [], []
        for word in words[8:]:
            opened = _OPEN_SLOT.fullmatch(word)
            if opened:
                (migrating if opened.group(2) == ">" else importing).append((int(opened.group(1)), opened.group(3)))
            elif "-" in word:
                first, last = word.split("-", 1)
                slots.append((int(first), int(last)))
            else:
                slots.append((int(word), int(word)))
        nodes.append(ClusterNode(node_id=words[0], address=address, bus_port=int(bus) if bus.isdigit() else 0,
                                 flags=frozenset(words[2].split(",")), master_id=None if words[3] == "-" else words[3],
                                 config_epoch=int(words[6]), connected=words[7] == "connected",
                                 slots=tuple(slots), migrating=tuple(migrating), importing=tuple(importing)))
    return tuple(nodes)


def parse_info(text: str) -> dict[str, str]:
    """CLUSTER INFO: `key:value` lines."""
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def myself(nodes: tuple[ClusterNode, ...]) -> ClusterNode | None:
    return next((node for node in nodes if node.myself), None)


def creation_refusal(address: str, nodes: tuple[ClusterNode, ...], key_count: int) -> str | None:
    """Why a new cluster may not be formed with this node, or None: it must hold no key and know
    only itself with no slot (`redis-cli --cluster create`'s own rule; anything else is a member of
    some cluster already, and forming over it would lose what it holds)."""
    if key_count:
        return f"{address} holds {key_count} key(s); a new cluster forms only over empty nodes"
    own = myself(nodes)
    if own is None:
        return f"{address} did not list itself in CLUSTER NODES (is cluster-enabled on?)"
    if len(nodes) > 1:
        return f"{address} already knows {len(nodes) - 1} other node(s): it belongs to a cluster"
    if own.slots or own.migrating or own.importing:
        return f"{address} already serves {own.slot_count} slot(s)"
    return None


def slot_owners(nodes: tuple[ClusterNode, ...]) -> dict[int, str]:
    """slot → the node id serving it, as this node's view says."""
    owners: dict[int, str] = {}
    for node in nodes:
        if node.is_master:
            for first, last in node.slots:
                for slot in range(first, last + 1):
                    owners[slot] = node.node_id
    return owners


def slot_problems(nodes: tuple[ClusterNode, ...]) -> list[str]:
    """What is wrong with one node's slot map: slots no master serves, slots two masters claim,
    and slots this node has left migrating or importing."""
    problems = []
    claimed: dict[int, list[str]] = {}
    for node in nodes:
        if node.is_master:
            for first, last in node.slots:
                for slot in range(first, last + 1):
                    claimed.setdefault(slot, []).append(node.address)
    missing = SLOTS - len(claimed)
    if missing:
        problems.append(f"{missing} slot(s) served by no master (first: {first_missing(claimed)})")
    twice = sorted(slot for slot, owners in claimed.items() if len(owners) > 1)
    if twice:
        problems.append(f"{len(twice)} slot(s) claimed by two masters (first: {twice[0]}: "
                        f"{', '.join(claimed[twice[0]])})")
    own = myself(nodes)
    if own is not None and (own.migrating or own.importing):
        opened = [slot for slot, _ in own.migrating + own.importing]
        problems.append(f"{own.address} has {len(opened)} slot(s) open (migrating or importing; first: "
                        f"{min(opened)})")
    return problems


def first_missing(claimed: dict[int, list[str]]) -> int:
    return next(slot for slot in range(SLOTS) if slot not in claimed)


def views_disagree(views: dict[str, tuple[ClusterNode, ...]]) -> list[str]:
    """Nodes whose slot map differs from the first node's (each view: one node's CLUSTER NODES)."""
    if not views:
        return []
    names = sorted(views)
    reference = slot_owners(views[names[0]])
    return [name for name in names[1:] if slot_owners(views[name]) != reference]


# ---- one node's view, read over its host's connection, and the judgement over all of them ----

def call(remote: Remote, plan: Plan, node: ClusterNodePlan, words: list[str]):
    return rediscli.call(remote, plan.layout, node.host.data_address, node.port, words, user=plan.inventory.acl.admin)


def checked(remote: Remote, plan: Plan, node: ClusterNodePlan, words: list[str], step: str) -> str:
    return rediscli.checked(call(remote, plan, node, words), node.host.name, step, "redis-cli " + " ".join(words))


@dataclass(frozen=True)
class NodeView:
    """What one node says of the cluster."""
    nodes: tuple[ClusterNode, ...]
    info: dict[str, str]
    keys: int


QUESTIONS = (["CLUSTER", "NODES"], ["CLUSTER", "INFO"], ["DBSIZE"])


def view_of(remote: Remote, plan: Plan, node: ClusterNodePlan, step: str) -> NodeView:
    """The node's CLUSTER NODES, CLUSTER INFO and DBSIZE, asked in one round trip."""
    results = rediscli.call_several(remote, plan.layout, node.host.data_address, node.port, list(QUESTIONS),
                                    user=plan.inventory.acl.admin)
    nodes_text, info_text, keys = (rediscli.checked(result, node.host.name, step, "redis-cli " + " ".join(words))
                                   for result, words in zip(results, QUESTIONS))
    keys = keys.strip()
    return NodeView(parse_nodes(nodes_text), parse_info(info_text), int(keys) if keys.isdigit() else 0)


def views_of(remotes: dict[str, Remote], plan: Plan, nodes: dict[str, ClusterNodePlan], step: str,
             stand_ins: dict[str, NodeView] | None = None) -> dict[str, NodeView]:
    """Every node's view, asked of all at once (a thread per node: each host its own connection),
    so a cluster's round of questions costs one round trip, not one per node. `stand_ins`: views
    not to ask for (unstarted nodes under --check)."""
    stand_ins = stand_ins or {}
    asked = [name for name in nodes if name not in stand_ins]
    with ThreadPoolExecutor(max_workers=max(1, len(asked))) as pool:
        futures = {name: pool.submit(view_of, remotes[name], plan, nodes[name], step) for name in asked}
        found = {name: future.result() for name, future in futures.items()}
    return {name: found[name] if name in found else stand_ins[name] for name in nodes}


def unstarted_view(node: ClusterNodePlan) -> NodeView:
    """What a node not started yet will say once it is (a --check run's stand-in): empty, alone,
    a master; its id names its host, as no real one exists yet."""
    line = (f"new:{node.host.name} {node.host.data_address}:{node.port}@{node.cluster.bus_port} "
            "myself,master - 0 0 0 connected")
    return NodeView(parse_nodes(line), {"cluster_state": "fail"}, 0)


def formed_problems(plan: Plan, views: dict[str, NodeView]) -> list[str]:
    """What keeps the cluster from being the inventory's, formed: each node knows every member,
    its slot map is whole and agrees with the others', each shard's master serves slots and its
    replicas replicate it, and cluster_state is ok. Empty when it is."""
    cluster = plan.inventory.cluster
    problems = []
    addresses = member_addresses(plan)
    for name, view in sorted(views.items()):
        known = {node.address for node in view.nodes if node.met}
        missing = sorted(addresses[address] for address in set(addresses) - known)
        if missing:
            problems.append(f"{name} does not know {', '.join(missing)}")
        extra = sorted({node.address for node in view.nodes} - set(addresses))
        if extra:
            problems.append(f"{name} knows {', '.join(extra)}, not in the inventory's cluster")
        problems += [f"{name}: {problem}" for problem in slot_problems(view.nodes)]
        if view.info.get("cluster_state") != "ok":
            problems.append(f"{name}: cluster_state is {view.info.get('cluster_state', 'unknown')}")
    disagree = views_disagree({name: view.nodes for name, view in views.items()})
    if disagree:
        problems.append(f"slot maps differ from {sorted(views)[0]}'s on {', '.join(disagree)}")
    for shard in cluster.shards:
        own = {name: myself(views[name].nodes) for name in shard.members if name in views}
        serving = [name for name, me in own.items() if me is not None and me.is_master and me.slots]
        if len(serving) != 1:
            problems.append(f"{shard.name}: {len(serving)} of its nodes serve slots "
                            f"({', '.join(serving) or 'none'}), not one")
            continue
        master_id = own[serving[0]].node_id
        problems += [f"{shard.name}: {name} does not replicate {serving[0]}" for name, me in own.items()
                     if name != serving[0] and (me is None or me.master_id != master_id)]
    return problems


# ---- what a formed cluster has that the inventory does not, and the reverse ----------------

def member_addresses(plan: Plan) -> dict[str, str]:
    """ip:port (as CLUSTER NODES names a node) → the inventory's member host."""
    cluster = plan.inventory.cluster
    return {f"{plan.inventory.host(name).data_address}:{cluster.port}": name for name in cluster.members}


def departing(plan: Plan, views: dict[str, NodeView]) -> dict[str, ClusterNode]:
    """node id → the node, for every node some member knows that is no inventory member:
    a shard or replica taken out of the inventory (or one nobody listed)."""
    members = member_addresses(plan)
    found: dict[str, ClusterNode] = {}
    for view in views.values():
        for node in view.nodes:
            if node.address not in members and node.node_id not in found:
                found[node.node_id] = node
    return found


def open_slots(views: dict[str, NodeView]) -> dict[int, tuple[str, str]]:
    """slot → (source id, target id) of every slot some node has left migrating or importing
    (a move in flight, or one a run did not finish)."""
    found: dict[int, tuple[str, str]] = {}
    for view in views.values():
        own = myself(view.nodes)
        if own is None:
            continue
        for slot, target in own.migrating:
            found.setdefault(slot, (own.node_id, target))
        for slot, source in own.importing:
            found.setdefault(slot, (source, own.node_id))
    return found


def serving_masters(plan: Plan, views: dict[str, NodeView]) -> list[str | None]:
    """Per inventory shard, in order: the node id of the member that serves its slots now (for a
    shard that has none yet, the inventory's master), or None when that is not one node."""
    found = []
    for shard in plan.inventory.cluster.shards:
        own = {name: myself(views[name].nodes) for name in shard.members if name in views}
        with_slots = [me for me in own.values() if me is not None and me.is_master and me.slots]
        named = own.get(shard.master)
        if not with_slots and named is not None and named.is_master:
            with_slots = [named]          # a new shard: the inventory's master, before it has slots
        found.append(with_slots[0].node_id if len(with_slots) == 1 else None)
    return found
