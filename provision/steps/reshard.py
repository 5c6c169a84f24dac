"""A formed cluster made the inventory's again when shards or replicas were added or taken out:
new nodes join (CLUSTER MEET, then REPLICATE), slots move until every shard serves an even
share, nodes taken out are forgotten by every member (CLUSTER FORGET) and left for the retire
wave to stop (their data stays on disk). A move an earlier run left open is finished first.

Why moves are safe for acknowledged writes: a slot is marked importing on the target, then
migrating on the source; from then on the source serves the keys it still holds and sends a
client asking for any other key to the target (ASK), so a key lives in one place at a time.
MIGRATE carries the keys (atomically per key, the source deleting its copy only once the target
has it); the slot changes owner (SETSLOT NODE, target first) only when the source holds none of
its keys, and the source refuses that itself while any is left. A run that stops half-way
leaves the markers, which the next run reads (facts/cluster.open_slots) and finishes.

Why the batches: redis-cli --cluster reshard moves one slot at a time, 10 keys a MIGRATE
(--cluster-pipeline), a round trip each. Here one pipelined write carries a batch of slots'
commands (BATCH_SLOTS) and a MIGRATE takes up to KEYS_PER_MIGRATE keys: the source is blocked
for one MIGRATE at a time, so the batch bounds how long a client waits behind it, while the
round trips, not the copying, were what made moves slow.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from provision.base.errors import HostError
from provision.core import cluster as cluster_plan
from provision.core.plan import Plan, cluster_nodes
from provision.facts import cluster as cluster_facts
from provision.facts import rediscli
from provision.facts.poll import poll
from provision.ssh import resp
from provision.ssh.remote import Remote

STEP = "cluster reshape"
BATCH_SLOTS = 64
KEYS_PER_MIGRATE = 500
MIGRATE_TIMEOUT_MS = 10_000
SETTLE_SECONDS = 60


@dataclass
class Reshape:
    """What a reshape did: the hosts whose nodes every member forgot (the retire wave may stop
    them), and the figures of the slot moves."""
    released: set[str] = field(default_factory=set)
    slots_moved: int = 0
    keys_moved: int = 0
    move_seconds: float = 0.0


@dataclass(frozen=True)
class Members:
    """The cluster as the run found it, sorted out against the inventory."""
    joining: tuple[str, ...]                      # members that are empty and alone: new
    core: tuple[str, ...]                         # members already in the cluster
    departing: dict[str, cluster_facts.ClusterNode]   # node id → node some member knows, not listed
    hosts_of: dict[str, str]                      # ip:port → host name (members and absent hosts)


def sort_out(plan: Plan, views: dict[str, cluster_facts.NodeView]) -> Members:
    members = cluster_facts.member_addresses(plan)
    alone = {name for name, view in views.items()
             if cluster_facts.creation_refusal(name, view.nodes, view.keys) is None}
    core = tuple(name for name in plan.inventory.cluster.members if name not in alone)
    hosts_of = dict(members)
    port = plan.inventory.cluster.port
    hosts_of.update({f"{host.data_address}:{port}": host.name for host in plan.inventory.hosts if host.absent})
    departing = cluster_facts.departing(plan, {name: views[name] for name in core})
    return Members(tuple(name for name in plan.inventory.cluster.members if name in alone), core,
                   departing, hosts_of)


def released_hosts(plan: Plan, views: dict[str, cluster_facts.NodeView]) -> set[str]:
    """Retiring hosts whose cluster node no member knows any more: the retire wave may stop
    them. One still known (its slots not moved, its forgetting not done) keeps running."""
    known = {node.address for view in views.values() for node in view.nodes}
    port = plan.inventory.cluster.port
    return {host.name for host in plan.inventory.hosts if host.absent and f"{host.data_address}:{port}" not in known}


def refusals(plan: Plan, views: dict[str, cluster_facts.NodeView], members: Members) -> list[str]:
    """Why this cluster cannot be reshaped into the inventory's, before anything is sent."""
    problems = []
    if not members.core:
        return ["no member belongs to a cluster yet"]
    core_views = {name: views[name] for name in members.core}
    addresses = cluster_facts.member_addresses(plan)
    for name, view in core_views.items():
        known = {node.address for node in view.nodes if node.met}
        missing = sorted(addresses[address] for address in addresses
                         if addresses[address] in members.core and address not in known)
        if missing:
            problems.append(f"{name} does not know {', '.join(missing)}")
        problems += [f"{name}: {problem}" for problem in cluster_facts.slot_problems(view.nodes)
                     if "open" not in problem]
    disagree = cluster_facts.views_disagree({name: view.nodes for name, view in core_views.items()})
    if disagree:
        problems.append(f"slot maps differ from {members.core[0]}'s on {', '.join(disagree)}")
    for name in members.joining:
        address = plan.inventory.host(name).data_address + f":{plan.inventory.cluster.port}"
        stale = [node for view in core_views.values() for node in view.nodes if node.address == address]
        if stale:
            problems.append(f"{name} is empty and alone, but the cluster still knows node {stale[0].node_id[:12]} "
                            f"at {address}: replacing a lost node is not built yet")
    for node_id, node in members.departing.items():
        host = members.hosts_of.get(node.address)
        if host is None:
            problems.append(f"{node.address} (node {node_id[:12]}) is in the cluster but in no host of the inventory: "
                            "to take it out, keep its host under hosts with state: absent")
        if node.slots and (node.failing or not node.connected):
            problems.append(f"{host or node.address} serves {node.slot_count} slot(s) but is failing: its slots "
                            "cannot be moved away; fail its shard over to a replica first")
        for name, view in core_views.items():
            own = cluster_facts.myself(view.nodes)
            if own is not None and own.master_id == node_id:
                problems.append(f"{name} replicates {host or node.address}, which leaves the cluster: give {name}'s "
                                "shard a master that stays first")
    if None in cluster_facts.serving_masters(plan, views) and not problems:
        problems.append("a shard has no master among its members, or more than one")
    return problems


def needed(plan: Plan, views: dict[str, cluster_facts.NodeView], members: Members) -> bool:
    """Whether the cluster differs from the inventory's in members, slot shares or open slots."""
    if members.joining or members.departing or cluster_facts.open_slots(views):
        return True
    masters = cluster_facts.serving_masters(plan, views)
    owners = cluster_facts.slot_owners(views[members.core[0]].nodes)
    return None not in masters and bool(cluster_plan.balance_moves(masters, owners))


class _Links:
    """One pipelined connection per node id, opened through the node's own host when the run
    has its connection, else through the first member's."""

    def __init__(self, plan: Plan, remotes: dict[str, Remote], hosts_of: dict[str, str]):
        self.plan, self.remotes, self.hosts_of = plan, remotes, hosts_of
        self.addresses: dict[str, str] = {}
        self.masters: set[str] = set()
        self._open: dict[str, resp.Link] = {}

    def learn(self, views: dict[str, cluster_facts.NodeView]) -> None:
        self.masters = set()
        for view in views.values():
            for node in view.nodes:
                if node.met:
                    self.addresses.setdefault(node.node_id, node.address)
                    if node.is_master:
                        self.masters.add(node.node_id)

    def host(self, node_id: str) -> str:
        return self.hosts_of.get(self.addresses[node_id], self.addresses[node_id])

    def __getitem__(self, node_id: str) -> resp.Link:
        if node_id not in self._open:
            address, port = self.addresses[node_id].rsplit(":", 1)
            remote = self.remotes.get(self.host(node_id)) or self.remotes[self.plan.inventory.cluster.members[0]]
            self._open[node_id] = resp.open_link(remote, address, int(port), self.plan.inventory.acl.admin, STEP)
        return self._open[node_id]

    def close(self) -> None:
        for link in self._open.values():
            link.close()


def reshape(plan: Plan, remotes: dict[str, Remote], views: dict[str, cluster_facts.NodeView], record,
            check: bool, say) -> Reshape:
    """Joins, finishes open moves, balances, forgets (see the module's docstring); under
    `check` records what it would do and sends nothing. `record(host, action)`; `say(text)`."""
    members = sort_out(plan, views)
    problems = refusals(plan, views, members)
    if problems:
        raise HostError(members.core[0] if members.core else plan.inventory.cluster.members[0], STEP,
                        "CLUSTER NODES on every member",
                        "the cluster cannot be made the inventory's; nothing was sent:\n  - " + "\n  - ".join(problems))
    links = _Links(plan, remotes, members.hosts_of)
    links.learn(views)
    done = Reshape()
    try:
        if _finish_open_moves(plan, links, views, record, check, done) and not check:
            views = _views(plan, remotes)       # the slots' new owners, for the balance
            links.learn(views)
        if members.joining:
            _join(plan, remotes, links, views, members, record, check)
            if not check:
                views = _views(plan, remotes)
                links.learn(views)
        _balance(plan, links, views, members, record, check, done)
        if members.departing:
            _forget(plan, links, members, record, check, done)
    finally:
        links.close()
    if not check:
        found = _wait(plan, remotes, "the cluster to be whole, agreed and without the departed nodes",
                      lambda found: not cluster_facts.formed_problems(plan, found))
        done.released = released_hosts(plan, found)
    if done.slots_moved:
        rate = done.keys_moved / done.move_seconds if done.move_seconds else 0.0
        say(f"cluster: moved {done.slots_moved} slot(s) with {done.keys_moved} key(s) in {done.move_seconds:.1f}s "
            f"({rate:,.0f} keys/s)")
    return done


def _views(plan: Plan, remotes: dict[str, Remote]) -> dict[str, cluster_facts.NodeView]:
    return cluster_facts.views_of(remotes, plan, cluster_nodes(plan.inventory), STEP)


def _wait(plan: Plan, remotes: dict[str, Remote], what: str, reached) -> dict[str, cluster_facts.NodeView]:
    done, found = poll(lambda: _views(plan, remotes), reached, SETTLE_SECONDS, 0.5)
    if not done:
        raise HostError(plan.inventory.cluster.members[0], STEP, f"wait for {what}",
                        f"not reached after {SETTLE_SECONDS}s; last seen:\n  - "
                        + "\n  - ".join(cluster_facts.formed_problems(plan, found)[:10]))
    return found


def _finish_open_moves(plan, links: _Links, views, record, check: bool, done: Reshape) -> bool:
    """A slot left migrating or importing: moved on to the target it was going to, as the
    markers name it (the target may already hold some of its keys and take new ones)."""
    opened = cluster_facts.open_slots(views)
    if not opened:
        return False
    moves = [cluster_plan.SlotMove(slot, source, target) for slot, (source, target) in sorted(opened.items())]
    for (source, target), slots in cluster_plan.pairs_of(moves).items():
        record(links.host(target), f"finish the move of slot(s) {cluster_plan.ranges_of(slots)} from "
                                   f"{links.host(source)}, left open by an earlier run")
        if not check:
            owned = _owned_by_itself(views, source)
            _move(plan, links, source, target, slots, done, source_owns=[slot in owned for slot in slots])
    return True


def _owned_by_itself(views, node_id: str) -> set[int]:
    for view in views.values():
        own = cluster_facts.myself(view.nodes)
        if own is not None and own.node_id == node_id:
            return {slot for first, last in own.slots for slot in range(first, last + 1)}
    return set()


def _join(plan, remotes, links: _Links, views, members: Members, record, check: bool) -> None:
    nodes = cluster_nodes(plan.inventory)
    introducer = next(name for name in members.core if cluster_facts.myself(views[name].nodes).is_master)
    for name in members.joining:
        node = nodes[name]
        record(name, f"joins the cluster (CLUSTER MEET from {introducer})")
        if not check:
            cluster_facts.checked(remotes[introducer], plan, nodes[introducer],
                                  ["CLUSTER", "MEET", node.host.data_address, str(node.port),
                                   str(plan.inventory.cluster.bus_port)], STEP)
    if check:
        for name, master in _new_replicas(plan, views, members):
            record(name, f"{nodes[name].shard.name}: replicates its shard's master (CLUSTER REPLICATE)")
        return
    everyone = set(cluster_facts.member_addresses(plan)) | {node.address for node in members.departing.values()}
    found = _wait(plan, remotes, "every node to know every other",
                  lambda seen: all(everyone <= {node.address for node in view.nodes if node.met} for view in seen.values()))
    links.learn(found)
    replicas = _new_replicas(plan, found, members)
    for name, master in replicas:
        record(name, f"{nodes[name].shard.name}: replicates {links.host(master)}")
        cluster_facts.checked(remotes[name], plan, nodes[name], ["CLUSTER", "REPLICATE", master], STEP)
    _wait(plan, remotes, "the new replicas to be known as such",
          lambda seen: all(cluster_facts.myself(seen[name].nodes).master_id is not None for name, _ in replicas))
    # A master with min-replicas-to-write refuses writes, MIGRATE's RESTORE among them, until its
    # replica has synced: moves to a new shard would fail (NOREPLICAS) until then.
    done, links_seen = poll(lambda: {name: _link_status(remotes[name], plan, nodes[name]) for name, _ in replicas},
                            lambda seen: all(status == "up" for status in seen.values()), SETTLE_SECONDS, 0.5)
    if not done:
        raise HostError(sorted(name for name, status in links_seen.items() if status != "up")[0], STEP,
                        "INFO replication", f"the new replicas' links are not up after {SETTLE_SECONDS}s: "
                        + ", ".join(f"{name} {status}" for name, status in sorted(links_seen.items())))


def _link_status(remote: Remote, plan: Plan, node) -> str:
    info = rediscli.parse_info(cluster_facts.checked(remote, plan, node, ["INFO", "replication"], STEP))
    return info.get("master_link_status", info.get("role", "unknown"))


def _new_replicas(plan: Plan, views, members: Members) -> list[tuple[str, str]]:
    """(joining member, the node id it is to replicate): every joining member but the master of
    its own shard, which is one of the shards' serving masters."""
    masters = cluster_facts.serving_masters(plan, views)
    return [(name, masters[index]) for index, shard in enumerate(plan.inventory.cluster.shards)
            for name in shard.members
            if name in members.joining and cluster_facts.myself(views[name].nodes).node_id != masters[index]]


def _balance(plan, links: _Links, views, members: Members, record, check: bool, done: Reshape) -> None:
    # Under --check a new shard's master has its stand-in id (facts/cluster.unstarted_view).
    masters = cluster_facts.serving_masters(plan, views)
    owners = cluster_facts.slot_owners(views[members.core[0]].nodes)
    moves = cluster_plan.balance_moves(masters, owners)
    for (source, target), slots in cluster_plan.pairs_of(moves).items():
        record(links.host(target), f"move {len(slots)} slot(s) {cluster_plan.ranges_of(slots)} from {links.host(source)}")
    if check:
        return
    for source, target, slots in cluster_plan.grouped(moves, BATCH_SLOTS):
        _move(plan, links, source, target, slots, done)


def _move(plan, links: _Links, source: str, target: str, slots: list[int], done: Reshape,
          source_owns: list[bool] | None = None) -> None:
    """One batch of slots from source to target, keys and owner; see the module's docstring."""
    started = time.monotonic()
    source_link, target_link = links[source], links[target]
    owns = source_owns if source_owns is not None else [True] * len(slots)
    moving = [slot for slot, owned in zip(slots, owns) if owned]
    target_link.checked([("CLUSTER", "SETSLOT", slot, "IMPORTING", source) for slot in moving], "CLUSTER SETSLOT IMPORTING")
    source_link.checked([("CLUSTER", "SETSLOT", slot, "MIGRATING", target) for slot in moving], "CLUSTER SETSLOT MIGRATING")
    address, port = links.addresses[target].rsplit(":", 1)
    admin = plan.inventory.acl.admin
    pending = list(slots)
    while pending:
        found = source_link.checked([("CLUSTER", "GETKEYSINSLOT", slot, KEYS_PER_MIGRATE) for slot in pending],
                                    "CLUSTER GETKEYSINSLOT")
        batches = [(slot, keys) for slot, keys in zip(pending, found) if keys]
        if not batches:
            break
        # REPLACE: while a slot migrates the source serves every key it still holds, so its copy is
        # the newest; a copy on the target is what an interrupted MIGRATE left there.
        source_link.checked([("MIGRATE", address, port, "", 0, MIGRATE_TIMEOUT_MS, "REPLACE", "AUTH2", admin.name,
                              admin.password.value, "KEYS", *keys) for _, keys in batches], "MIGRATE")
        done.keys_moved += sum(len(keys) for _, keys in batches)
        pending = [slot for slot, _ in batches]
    target_link.checked([("CLUSTER", "SETSLOT", slot, "NODE", target) for slot in slots], "CLUSTER SETSLOT NODE")
    # The source's last slot gone, Redis 7 makes it a replica of the target at once, and a
    # replica refuses SETSLOT: the target's claim (a higher epoch) already reached it.
    for reply in source_link.pipeline([("CLUSTER", "SETSLOT", slot, "NODE", target) for slot in slots],
                                      "CLUSTER SETSLOT NODE"):
        if isinstance(reply, resp.ReplyError) and "only with masters" not in reply.message:
            raise HostError(source_link.host, STEP, f"CLUSTER SETSLOT NODE on {source_link.name}", reply.message)
    for node_id in sorted(links.masters - {source, target}):     # only to spread the news sooner
        links[node_id].checked([("CLUSTER", "SETSLOT", slot, "NODE", target) for slot in slots], "CLUSTER SETSLOT NODE",
                               allowed=("ERR",))
    done.slots_moved += len(slots)
    done.move_seconds += time.monotonic() - started


def _forget(plan, links: _Links, members: Members, record, check: bool, done: Reshape) -> None:
    """CLUSTER FORGET of every departing node on every member, as close together as a pipeline
    allows: a node forgotten by some members only comes back through the others' gossip after
    the 60 s that FORGET bans it for."""
    for node_id, node in members.departing.items():
        record(members.hosts_of.get(node.address, node.address),
               f"leaves the cluster: every member forgets node {node_id[:12]} (CLUSTER FORGET); its data stays")
    if check:
        return
    member_ids = {}
    for node_id, address in links.addresses.items():
        if address in cluster_facts.member_addresses(plan):
            member_ids[node_id] = address
    for node_id in member_ids:
        links[node_id].checked([("CLUSTER", "FORGET", departing) for departing in members.departing], "CLUSTER FORGET",
                               allowed=("ERR",))
