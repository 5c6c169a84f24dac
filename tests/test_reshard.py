"""The pure parts of growing and shrinking a formed cluster: the RESP codec the slot moves talk
through, the balance plan (which slots go where), and how a run sorts the nodes it finds into
joining, staying and departing, and what it refuses before sending anything."""
from __future__ import annotations

import pytest

from provision import inventory
from provision.core import cluster as forming
from provision.core import plan as planner
from provision.facts import cluster
from provision.ssh import resp
from provision.steps import reshard
from tests.test_cluster_inventory import ENVIRONMENT, cluster_document
from tests.test_inventory import write

# ---- RESP ----------------------------------------------------------------------------------


def test_a_command_is_encoded_as_an_array_of_bulk_strings_whatever_bytes_its_words_hold():
    assert resp.encode(("SET", b"k\r\n\x00", 5)) == b"*3\r\n$3\r\nSET\r\n$4\r\nk\r\n\x00\r\n$1\r\n5\r\n"


@pytest.mark.parametrize("wire, reply", [
    (b"+OK\r\n", "OK"),
    (b"-ERR no such slot\r\n", resp.ReplyError("ERR no such slot")),
    (b":42\r\n", 42),
    (b"$-1\r\n", None),
    (b"$5\r\na\r\nbc\r\n", b"a\r\nbc"),
    (b"*2\r\n$1\r\nx\r\n*1\r\n:1\r\n", [b"x", [1]]),
    (b"*0\r\n", []),
])
def test_every_reply_kind_is_parsed_and_key_names_stay_bytes(wire, reply):
    assert resp.parse(wire) == (reply, len(wire))


@pytest.mark.parametrize("cut", [b"+O", b"$5\r\nab", b"*2\r\n$1\r\nx\r\n", b""])
def test_a_reply_cut_short_asks_for_more_bytes(cut):
    with pytest.raises(resp.IncompleteReply):
        resp.parse(cut)


class _Channel:
    """Hands the replies back a few bytes at a time, as a network does."""

    def __init__(self, wire: bytes):
        self.wire, self.sent = wire, b""

    def settimeout(self, _):
        pass

    def sendall(self, data):
        self.sent += data

    def recv(self, _):
        chunk, self.wire = self.wire[:3], self.wire[3:]
        return chunk


def test_a_pipeline_sends_every_command_at_once_and_reads_the_replies_in_order():
    link = resp.Link(_Channel(b"+OK\r\n-ERR busy\r\n*1\r\n$2\r\nk1\r\n"), "lab1", "10.0.0.1:6379", "test")
    replies = link.pipeline([("A",), ("B",), ("C",)], "three")
    assert replies == ["OK", resp.ReplyError("ERR busy"), [b"k1"]]
    assert link._channel.sent == b"*1\r\n$1\r\nA\r\n*1\r\n$1\r\nB\r\n*1\r\n$1\r\nC\r\n"


def test_an_error_reply_in_a_checked_pipeline_names_host_node_and_batch_but_no_command():
    link = resp.Link(_Channel(b"+OK\r\n-ERR Target instance replied with error: NOAUTH\r\n"), "lab1", "10.0.0.1:6379",
                     "cluster reshape")
    with pytest.raises(Exception) as raised:
        link.checked([("MIGRATE", "secret-password"), ("MIGRATE", "secret-password")], "MIGRATE")
    text = str(raised.value)
    assert "lab1" in text and "MIGRATE on 10.0.0.1:6379" in text and "NOAUTH" in text
    assert "secret-password" not in text


# ---- the balance plan ----------------------------------------------------------------------

def owners_of(ranges: dict[str, tuple[int, int]]) -> dict[int, str]:
    return {slot: owner for owner, (first, last) in ranges.items() for slot in range(first, last + 1)}


THREE = {"a": (0, 5461), "b": (5462, 10922), "c": (10923, 16383)}


def counts_after(owners: dict[int, str], moves) -> dict[str, int]:
    after = dict(owners)
    for move in moves:
        assert after[move.slot] == move.source
        after[move.slot] = move.target
    found: dict[str, int] = {}
    for owner in after.values():
        found[owner] = found.get(owner, 0) + 1
    return found


def test_a_fourth_shard_takes_the_top_of_each_shares_slots_until_all_four_are_even():
    owners = owners_of(THREE)
    moves = forming.balance_moves(["a", "b", "c", "d"], owners)
    assert len(moves) == 4096 and {move.target for move in moves} == {"d"}
    assert counts_after(owners, moves) == {"a": 4096, "b": 4096, "c": 4096, "d": 4096}
    assert forming.ranges_of([move.slot for move in moves if move.source == "a"]) == "4096-5461"


def test_a_departing_shard_gives_all_its_slots_to_the_staying_ones_evenly():
    owners = owners_of({"a": (0, 4095), "b": (4096, 8191), "c": (8192, 12287), "d": (12288, 16383)})
    moves = forming.balance_moves(["a", "b", "c"], owners)
    assert {move.source for move in moves} == {"d"}
    assert counts_after(owners, moves) == {"a": 5462, "b": 5461, "c": 5461}


def test_even_shares_move_nothing_whoever_is_master_after_a_failover():
    assert forming.balance_moves(["a", "b", "c"], owners_of(THREE)) == []
    swapped = owners_of({"a2": (0, 5461), "b": (5462, 10922), "c": (10923, 16383)})
    assert forming.balance_moves(["a2", "b", "c"], swapped) == []


def test_moves_are_batched_per_pair_and_named_as_ranges():
    moves = [forming.SlotMove(slot, "a", "d") for slot in range(0, 5)] + [forming.SlotMove(9, "b", "d")]
    assert forming.grouped(moves, 2) == [("a", "d", [0, 1]), ("a", "d", [2, 3]), ("a", "d", [4]), ("b", "d", [9])]
    assert forming.ranges_of([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"


# ---- sorting the nodes out ------------------------------------------------------------------

IDS = {f"n{i}": str(i) * 40 for i in range(1, 9)}


def plan_of(tmp_path, shards, absent=()):
    document = cluster_document(shards=shards)
    document["hosts"] = {f"n{i}": {"address": f"10.0.0.{i}", **({"state": "absent"} if f"n{i}" in absent else {})}
                         for i in range(1, 9)}
    return planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))


THREE_SHARDS = [{"master": f"n{i}", "replicas": [f"n{i + 3}"]} for i in (1, 2, 3)]
FOURTH = {"master": "n7", "replicas": ["n8"]}


def view(me: str, roles: dict[str, str | None], slots: dict[str, str], opened: str = "") -> cluster.NodeView:
    """`me`'s view of the nodes in `roles` (name → its master's name, None for a master)."""
    lines = []
    for name, master in roles.items():
        flags = ("myself," if name == me else "") + ("slave" if master else "master")
        extra = (" " + opened) if name == me and opened else ""
        lines.append(f"{IDS[name]} 10.0.0.{name[1]}:6379@16379 {flags} {IDS[master] if master else '-'} 0 0 1 "
                     f"connected {slots.get(name, '')}{extra}".rstrip())
    return cluster.NodeView(cluster.parse_nodes("\n".join(lines)), {"cluster_state": "ok"}, 0)


FORMED_ROLES = {"n1": None, "n2": None, "n3": None, "n4": "n1", "n5": "n2", "n6": "n3"}
FORMED_SLOTS = {"n1": "0-5461", "n2": "5462-10922", "n3": "10923-16383"}


def test_new_empty_nodes_join_and_their_shard_master_is_named_before_it_has_slots(tmp_path):
    plan = plan_of(tmp_path, THREE_SHARDS + [FOURTH])
    views = {name: view(name, FORMED_ROLES, FORMED_SLOTS) for name in FORMED_ROLES}
    views |= {name: view(name, {name: None}, {}) for name in ("n7", "n8")}
    members = reshard.sort_out(plan, views)
    assert members.joining == ("n7", "n8") and sorted(members.core) == [f"n{i}" for i in range(1, 7)]
    assert members.departing == {}
    assert reshard.refusals(plan, views, members) == []
    assert reshard.needed(plan, views, members)
    assert cluster.serving_masters(plan, views) == [IDS["n1"], IDS["n2"], IDS["n3"], IDS["n7"]]


def test_a_shard_taken_out_with_its_hosts_absent_is_departing_and_released_only_once_forgotten(tmp_path):
    plan = plan_of(tmp_path, THREE_SHARDS, absent=("n7", "n8"))
    roles = FORMED_ROLES | {"n7": None, "n8": "n7"}
    slots = {"n1": "0-4095", "n2": "4096-8191", "n3": "8192-12287", "n7": "12288-16383"}
    views = {name: view(name, roles, slots) for name in FORMED_ROLES}
    members = reshard.sort_out(plan, views)
    assert sorted(members.departing) == [IDS["n7"], IDS["n8"]] and members.joining == ()
    assert reshard.refusals(plan, views, members) == []
    assert any("knows 10.0.0.7:6379, 10.0.0.8:6379, not in the inventory's cluster" in problem
               for problem in cluster.formed_problems(plan, views))
    assert reshard.released_hosts(plan, views) == set()
    forgotten = {name: view(name, FORMED_ROLES, FORMED_SLOTS) for name in FORMED_ROLES}
    assert reshard.released_hosts(plan, forgotten) == {"n7", "n8"}


def test_a_member_the_inventory_does_not_list_at_all_is_refused_before_anything_is_sent(tmp_path):
    plan = plan_of(tmp_path, THREE_SHARDS)          # n7 and n8 present, in no shard
    document_hosts = {host.name for host in plan.inventory.hosts}
    assert "n7" in document_hosts
    roles = FORMED_ROLES | {"n7": None}
    slots = {"n1": "0-4095", "n2": "4096-8191", "n3": "8192-12287", "n7": "12288-16383"}
    views = {name: view(name, roles, slots) for name in FORMED_ROLES}
    problems = reshard.refusals(plan, views, reshard.sort_out(plan, views))
    assert problems == ["10.0.0.7:6379 (node 777777777777) is in the cluster but in no host of the inventory: "
                        "to take it out, keep its host under hosts with state: absent"]


def test_a_departing_master_that_is_failing_or_still_replicated_by_a_member_is_refused(tmp_path):
    plan = plan_of(tmp_path, THREE_SHARDS, absent=("n7", "n8"))
    roles = {"n1": None, "n2": None, "n3": None, "n7": None, "n4": "n7", "n5": "n2", "n6": "n3"}
    slots = {"n1": "0-4095", "n2": "4096-8191", "n3": "8192-12287", "n7": "12288-16383"}
    views = {name: view(name, roles, slots) for name in FORMED_ROLES}
    for name in views:
        text = "\n".join(line.replace("master - 0 0 1 connected 12288", "master,fail - 0 0 1 disconnected 12288")
                         for line in _lines(views[name]))
        views[name] = cluster.NodeView(cluster.parse_nodes(text), {"cluster_state": "ok"}, 0)
    problems = reshard.refusals(plan, views, reshard.sort_out(plan, views))
    assert "n7 serves 4096 slot(s) but is failing: its slots cannot be moved away; fail its shard over to a replica " \
           "first" in problems
    assert any(problem.startswith("n4 replicates n7, which leaves the cluster") for problem in problems)


def _lines(node_view: cluster.NodeView) -> list[str]:
    lines = []
    for node in node_view.nodes:
        flags = ",".join(sorted(node.flags, key=lambda flag: flag != "myself"))
        served = " ".join(f"{first}-{last}" for first, last in node.slots)
        lines.append(f"{node.node_id} {node.address}@{node.bus_port} {flags} {node.master_id or '-'} 0 0 "
                     f"{node.config_epoch} {'connected' if node.connected else 'disconnected'} {served}".rstrip())
    return lines


def test_a_node_reimaged_at_a_known_address_is_not_taken_for_a_new_one(tmp_path):
    plan = plan_of(tmp_path, THREE_SHARDS)
    views = {name: view(name, FORMED_ROLES, FORMED_SLOTS) for name in FORMED_ROLES if name != "n6"}
    views["n6"] = cluster.NodeView(cluster.parse_nodes(f"{'9' * 40} :6379@16379 myself,master - 0 0 0 connected"),
                                   {"cluster_state": "fail"}, 0)
    problems = reshard.refusals(plan, views, reshard.sort_out(plan, views))
    assert any("n6 is empty and alone, but the cluster still knows node 666666666666 at 10.0.0.6:6379: replacing a "
               "lost node is not built yet" in problem for problem in problems), problems


def test_slots_left_migrating_or_importing_are_found_with_their_source_and_target(tmp_path):
    views = {"n1": view("n1", FORMED_ROLES, FORMED_SLOTS, opened=f"[5->-{IDS['n2']}]"),
             "n2": view("n2", FORMED_ROLES, FORMED_SLOTS, opened=f"[5-<-{IDS['n1']}] [7-<-{IDS['n1']}]")}
    assert cluster.open_slots(views) == {5: (IDS["n1"], IDS["n2"]), 7: (IDS["n1"], IDS["n2"])}
