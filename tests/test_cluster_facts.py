"""The parsers of CLUSTER NODES and CLUSTER INFO and the judgements made from them, on output in
the format cluster.c writes (7.0: `id ip:port@cport[,hostname] flags master ping pong epoch link
slots...`, open slots only in the node's own line)."""
from __future__ import annotations

from provision.facts import cluster

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)

FORMED = f"""\
{A} 10.77.0.11:6379@16379 myself,master - 0 0 1 connected 0-5461
{B} 10.77.0.12:6379@16379 master - 0 1700000000000 2 connected 5462-10922
{C} 10.77.0.13:6379@16379 master - 0 1700000000000 3 connected 10923-16383
{D} 10.77.0.14:6379@16379,lab4 slave {A} 0 1700000000000 1 connected
"""

FRESH = f"{A} :6379@16379 myself,master - 0 0 0 connected\n"


def test_cluster_nodes_is_read_with_roles_slots_and_the_bus_port():
    nodes = cluster.parse_nodes(FORMED)
    assert [node.address for node in nodes] == ["10.77.0.11:6379", "10.77.0.12:6379", "10.77.0.13:6379", "10.77.0.14:6379"]
    first, replica = nodes[0], nodes[3]
    assert first.myself and first.is_master and first.slots == ((0, 5461),) and first.slot_count == 5462
    assert replica.master_id == A and not replica.is_master and replica.bus_port == 16379 and replica.connected
    assert cluster.myself(nodes) is first
    assert cluster.slot_problems(nodes) == []


def test_open_single_and_failing_slots_are_read():
    text = (f"{A} 10.77.0.11:6379@16379 myself,master - 0 0 1 connected 0-5460 5462 [5461->-{B}] [100-<-{C}]\n"
            f"{B} 10.77.0.12:6379@16379 master,fail - 0 0 2 disconnected 5463-16383\n")
    own, other = cluster.parse_nodes(text)
    assert own.slots == ((0, 5460), (5462, 5462)) and own.migrating == ((5461, B),) and own.importing == ((100, C),)
    assert other.failing and not other.connected
    problems = cluster.slot_problems((own, other))
    assert problems == ["1 slot(s) served by no master (first: 5461)",
                        "10.77.0.11:6379 has 2 slot(s) open (migrating or importing; first: 100)"]


def test_a_slot_two_masters_claim_is_named():
    text = (f"{A} 10.77.0.11:6379@16379 myself,master - 0 0 1 connected 0-8191\n"
            f"{B} 10.77.0.12:6379@16379 master - 0 0 2 connected 8000-16383\n")
    assert cluster.slot_problems(cluster.parse_nodes(text)) == [
        "192 slot(s) claimed by two masters (first: 8000: 10.77.0.11:6379, 10.77.0.12:6379)"]


def test_a_cluster_is_created_only_over_empty_nodes_that_know_only_themselves():
    assert cluster.creation_refusal("lab1", cluster.parse_nodes(FRESH), 0) is None
    assert "holds 3 key(s)" in cluster.creation_refusal("lab1", cluster.parse_nodes(FRESH), 3)
    assert "already knows 3 other node(s): it belongs to a cluster" in \
        cluster.creation_refusal("lab1", cluster.parse_nodes(FORMED), 0)
    lone_with_slots = f"{A} :6379@16379 myself,master - 0 0 0 connected 0-10\n"
    assert "already serves 11 slot(s)" in cluster.creation_refusal("lab1", cluster.parse_nodes(lone_with_slots), 0)
    assert "did not list itself" in cluster.creation_refusal("lab1", (), 0)


def test_views_that_disagree_on_the_slot_map_are_named():
    nodes = cluster.parse_nodes(FORMED)
    moved = cluster.parse_nodes(FORMED.replace("0-5461", "0-5460").replace("5462-10922", "5461-10922"))
    assert cluster.views_disagree({"lab1": nodes, "lab2": nodes}) == []
    assert cluster.views_disagree({"lab1": nodes, "lab2": nodes, "lab3": moved}) == ["lab3"]


def test_cluster_info_is_read_as_fields():
    info = cluster.parse_info("cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_known_nodes:6\r\n")
    assert info == {"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_known_nodes": "6"}


def test_forming_a_cluster_gives_each_master_its_slots_and_epoch_meets_all_then_attaches_replicas(tmp_path):
    from provision import inventory
    from provision.core import cluster as forming, plan as planner
    from tests.test_cluster_inventory import ENVIRONMENT, cluster_document
    from tests.test_inventory import write
    plan = planner.build(inventory.load(write(tmp_path, cluster_document()), ENVIRONMENT))
    nodes = {item.host.name: item.cluster_node for item in plan.hosts}
    ids = {name: name[-1] * 40 for name in nodes}
    commands = forming.creation_commands(plan.inventory.cluster, nodes, ids)
    sent = [(command.host, " ".join(command.words)) for command in commands]
    assert sent[:6] == [("n1", "CLUSTER ADDSLOTSRANGE 0 5461"), ("n1", "CLUSTER SET-CONFIG-EPOCH 1"),
                        ("n2", "CLUSTER ADDSLOTSRANGE 5462 10922"), ("n2", "CLUSTER SET-CONFIG-EPOCH 2"),
                        ("n3", "CLUSTER ADDSLOTSRANGE 10923 16383"), ("n3", "CLUSTER SET-CONFIG-EPOCH 3")]
    meets = [words for host, words in sent if "MEET" in words]
    assert all(host == "n1" for host, words in sent if "MEET" in words)
    assert sorted(meets) == sorted(f"CLUSTER MEET 10.0.0.{i} 6379 16379" for i in range(2, 7))
    assert sent[-3:] == [("n4", f"CLUSTER REPLICATE {'1' * 40}"), ("n5", f"CLUSTER REPLICATE {'2' * 40}"),
                         ("n6", f"CLUSTER REPLICATE {'3' * 40}")]
    assert max(i for i, (_, words) in enumerate(sent) if "MEET" in words) < min(
        i for i, (_, words) in enumerate(sent) if "REPLICATE" in words)


def six_node_plan(tmp_path):
    from provision import inventory
    from provision.core import plan as planner
    from tests.test_cluster_inventory import ENVIRONMENT, cluster_document
    from tests.test_inventory import write
    return planner.build(inventory.load(write(tmp_path, cluster_document()), ENVIRONMENT))


IDS = {f"n{i}": str(i) * 40 for i in range(1, 7)}
SLOTS = {"n1": "0-5461", "n2": "5462-10922", "n3": "10923-16383"}


def view_from(me: str, masters_of: dict[str, str], state: str = "ok", known=None, slots=None) -> cluster.NodeView:
    """`me`'s CLUSTER NODES and INFO in a cluster where masters_of maps each replica to its master."""
    lines = []
    for name in known or IDS:
        flags = ("myself," if name == me else "") + ("slave" if name in masters_of else "master")
        master = IDS[masters_of[name]] if name in masters_of else "-"
        served = (slots or SLOTS).get(name, "") if name not in masters_of else ""
        lines.append(f"{IDS[name]} 10.0.0.{name[1]}:6379@16379 {flags} {master} 0 0 1 connected {served}".rstrip())
    return cluster.NodeView(cluster.parse_nodes("\n".join(lines)), {"cluster_state": state}, 0)


FORMED_AS_PLANNED = {"n4": "n1", "n5": "n2", "n6": "n3"}


def test_a_cluster_formed_as_the_inventory_says_has_no_problem(tmp_path):
    plan = six_node_plan(tmp_path)
    views = {name: view_from(name, FORMED_AS_PLANNED) for name in IDS}
    assert cluster.formed_problems(plan, views) == []


def test_a_shard_failed_over_to_its_replica_is_still_whole(tmp_path):
    plan = six_node_plan(tmp_path)
    swapped = {"n1": "n4", "n5": "n2", "n6": "n3"}
    slots = {"n4": "0-5461", "n2": "5462-10922", "n3": "10923-16383"}
    views = {name: view_from(name, swapped, slots=slots) for name in IDS}
    assert cluster.formed_problems(plan, views) == []


def test_what_keeps_a_cluster_from_being_formed_is_named(tmp_path):
    plan = six_node_plan(tmp_path)
    views = {name: view_from(name, FORMED_AS_PLANNED) for name in IDS}
    views["n6"] = view_from("n6", {}, state="fail", known=["n6"])   # alone, an empty master
    problems = cluster.formed_problems(plan, views)
    assert "n6 does not know n1, n2, n3, n4, n5" in problems
    assert "n6: cluster_state is fail" in problems
    assert any(problem.startswith("n6: 16384 slot(s) served by no master") for problem in problems)
    assert "shard-3: n6 does not replicate n3" in problems
    assert any(problem.startswith("slot maps differ from n1's on") and "n6" in problem for problem in problems)


def test_several_questions_to_a_node_go_in_one_round_trip_with_one_login_and_keep_their_own_answers(tmp_path):
    import re
    from provision.facts import rediscli
    from provision.ssh.remote import CommandResult
    plan = six_node_plan(tmp_path)
    sent = []

    class OneHost:
        name = "n1"

        def run(self, command, stdin=None, timeout=None):
            sent.append((command, stdin))
            marker = re.search(r"--redis-provision-part-[0-9a-f]+--", command).group(0)
            return CommandResult(command, 0, f"line 1\nline 2\n{marker} 0\nERR unknown\n{marker} 0\n"
                                             f"Could not connect to Redis at 10.0.0.1:6379\n{marker} 1\n", "")
    results = rediscli.call_several(OneHost(), plan.layout, "10.0.0.1", 6379,
                                    [["CLUSTER", "NODES"], ["BOGUS"], ["DBSIZE"]], user=plan.inventory.acl.admin)
    (command, stdin), = sent
    assert command.count("read -r REDISCLI_AUTH") == 1 and command.count("redis-cli") == 3
    assert stdin == plan.inventory.acl.admin.password.value + "\n"
    assert plan.inventory.acl.admin.password.value not in command
    assert [result.stdout for result in results] == ["line 1\nline 2\n", "ERR unknown\n", ""]
    assert rediscli.reply_error(results[1]) == "ERR unknown"
    assert not results[2].ok and "Could not connect" in results[2].stderr
