"""A formed cluster grown and shrunk by deploy on eight lab hosts: three shards on lab1-lab6,
holding 20,000 keys, then a fourth shard (lab7, its replica lab8) added, a slot move left open
by hand finished, and the shard taken out again (lab7 and lab8 `state: absent`), each under the
cluster writer: 0 acknowledged writes lost, no slot left open, even shares, verify passing. One
deployed cluster for the module; its hosts are re-imaged before and after."""
from __future__ import annotations

import time

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from lab import hosts as lab_hosts
from lab import inventory_file
from provision import inventory
from provision.ssh import netns
from tests.clusterwriter import KINDS, ClusterWriter, fill, intact
from tests.labtools import deploy, run_on, verify_failures

pytestmark = pytest.mark.lab

HOSTS = [f"lab{index}" for index in range(1, 9)]
FIRST_SIX = HOSTS[:6]
KEY_COUNT = 20_000
THREE_SHARDS = [{"master": "lab1", "replicas": ["lab4"]}, {"master": "lab2", "replicas": ["lab5"]},
                {"master": "lab3", "replicas": ["lab6"]}]
FOURTH_SHARD = {"master": "lab7", "replicas": ["lab8"]}


@pytest.fixture(scope="module")
def reshape_lab(lab, lab_paths, tmp_path_factory):
    """(the lab paths, the eight hosts, a directory for the inventories) over freshly imaged
    hosts; all eight re-imaged after."""
    made = lab_hosts.up(lab_paths, len(HOSTS), log=lambda _: None)
    for name in HOSTS:
        lab_hosts.reinstall(lab_paths, name, log=lambda _: None)
    yield lab_paths, made, tmp_path_factory.mktemp("reshape")
    for name in HOSTS:
        lab_hosts.reinstall(lab_paths, name, log=lambda _: None)


def variant(reshape_lab, name: str, shards: list[dict], absent: tuple[str, ...] = ()):
    paths, made, directory = reshape_lab
    return inventory_file.write_cluster_variant(paths, made, directory / f"{name}.yml", shards, absent)


@pytest.fixture(scope="module")
def three_shards(reshape_lab, artifact_dir):
    """The three-shard cluster deployed and filled with KEY_COUNT keys: (path, inventory)."""
    path = variant(reshape_lab, "three-shards-explicit", THREE_SHARDS)
    report, output = deploy(path, artifact_dir)
    assert report.ok, output
    loaded = inventory.load(path)
    with netns.joined(lab_hosts.BRIDGE_NAMESPACE):     # module fixtures run before lab_network joins it
        client = cluster_client(loaded)
        try:
            fill(client, KEY_COUNT)
        finally:
            client.close()
    return path, loaded


def cluster_client(loaded) -> RedisCluster:
    admin = loaded.acl.admin
    first = loaded.host("lab1")
    return RedisCluster(startup_nodes=[ClusterNode(first.data_address, 6379)], username=admin.name,
                        password=admin.password.value, decode_responses=True, socket_timeout=3)


def node_client(loaded, name: str) -> redis.Redis:
    admin = loaded.acl.admin
    return redis.Redis(host=loaded.host(name).data_address, port=6379, username=admin.name,
                       password=admin.password.value, decode_responses=True, socket_timeout=3)


def shares(loaded, names) -> dict[str, int]:
    """master host → slots it serves, as lab1 sees it (hosts by address)."""
    by_address = {f"{loaded.host(name).data_address}:6379": name for name in names}
    node = node_client(loaded, "lab1")
    try:
        text = node.execute_command("CLUSTER", "NODES")
    finally:
        node.close()
    found = {}
    for line in text.splitlines():
        words = line.split()
        if "master" in words[2]:
            count = 0
            for word in words[8:]:
                first, _, last = word.partition("-")
                count += int(last or first) - int(first) + 1
            found[by_address.get(words[1].split("@")[0], words[1])] = count
    return found


def keys_intact(loaded) -> int:
    client = cluster_client(loaded)
    try:
        return intact(client, KEY_COUNT)
    finally:
        client.close()


def deploy_under_writes(path, loaded, artifact_dir):
    """deploy while the writer writes; (report, output, writer, lost per kind)."""
    admin = loaded.acl.admin
    addresses = [loaded.host(name).data_address for name in HOSTS if name in {host.name for host in loaded.hosts}]
    with ClusterWriter(addresses, admin.name, admin.password.value) as writer:
        time.sleep(1)
        report, output = deploy(path, artifact_dir)
        time.sleep(2)
    print(output)
    lost = writer.lost_now()
    print(f"{writer.summary()}; lost {lost}")
    return report, output, writer, lost


def assert_no_write_lost(writer: ClusterWriter, lost: dict[str, int], loaded) -> None:
    """Every kind written and acknowledged many times, none lost, the client refused only with
    redirects (or by a node that left), and every key of the fill still there."""
    assert all(len(written) > 20 for written in writer.acknowledged.values()), writer.summary()
    assert lost == dict.fromkeys(KINDS, 0), writer.summary()
    departed = tuple(host.data_address for host in loaded.hosts if host.absent)
    assert refused_only_by_redirects(writer, departed) == [], writer.summary()
    assert keys_intact(loaded) == KEY_COUNT


def refused_only_by_redirects(writer: ClusterWriter, departed: tuple[str, ...] = ()) -> list[str]:
    """The writer's refusals that are not a slot on the move (MOVED, ASK, TRYAGAIN) or a
    transaction refused under ASK: what a client should never see during a move. A node that
    left (`departed`: its addresses) is stopped once every slot has moved off it; a client whose
    map still names it for a slot moved in the last batches is refused the connection and
    refreshes its map (seen once in CI), as with any node that goes away: that is allowed."""
    expected = ("ASK", "MOVED", "TRYAGAIN", "ResponseError: ASK", "ResponseError: MOVED", "ResponseError: TRYAGAIN",
                "MovedError", "AskError", "TryAgainError")
    gone = tuple(f"ConnectionError: Error 111 connecting to {address}:6379" for address in departed)
    return [kind for kind in writer.refused if not any(kind.startswith(prefix) or prefix in kind for prefix in expected)
            and not kind.startswith(gone or ("\0",))]


def test_check_names_the_new_shard_and_its_slot_moves_and_sends_nothing(three_shards, reshape_lab, artifact_dir):
    path, loaded = three_shards
    grown = variant(reshape_lab, "four-shards", THREE_SHARDS + [FOURTH_SHARD])
    before = shares(loaded, FIRST_SIX)
    report, output = deploy(grown, artifact_dir, check=True)
    assert report.ok, output
    assert "joins the cluster (CLUSTER MEET from lab1)" in output, output
    assert "move 1366 slot(s) 4096-5461 from lab1" in output, output
    assert shares(loaded, FIRST_SIX) == before


def test_a_shard_added_under_writes_takes_an_even_share_and_loses_no_acknowledged_write(
        three_shards, reshape_lab, artifact_dir):
    path, _ = three_shards
    grown = variant(reshape_lab, "four-shards", THREE_SHARDS + [FOURTH_SHARD])
    loaded = inventory.load(grown)
    report, output, writer, lost = deploy_under_writes(grown, loaded, artifact_dir)
    assert report.ok, output
    assert "cluster: moved 4096 slot(s)" in output, output
    assert shares(loaded, HOSTS) == {"lab1": 4096, "lab2": 4096, "lab3": 4096, "lab7": 4096}
    assert_no_write_lost(writer, lost, loaded)
    failures = verify_failures(grown)
    assert failures == [], failures
    report, output = deploy(grown, artifact_dir)
    assert report.ok and report.changed == 0, output


def test_a_slot_move_left_open_is_finished_by_the_next_deploy(three_shards, reshape_lab, artifact_dir):
    """Slot 0 (lab1's) marked importing on lab7 and migrating on lab1, as an interrupted move
    leaves it, with one of its keys already carried over."""
    grown = variant(reshape_lab, "four-shards", THREE_SHARDS + [FOURTH_SHARD])
    loaded = inventory.load(grown)
    ids = {name: node_id(loaded, name) for name in ("lab1", "lab7")}
    source, target = node_client(loaded, "lab1"), node_client(loaded, "lab7")
    try:
        keys = source.execute_command("CLUSTER", "GETKEYSINSLOT", 0, 10)
        assert target.execute_command("CLUSTER", "SETSLOT", 0, "IMPORTING", ids["lab1"]) == "OK"
        assert source.execute_command("CLUSTER", "SETSLOT", 0, "MIGRATING", ids["lab7"]) == "OK"
        admin = loaded.acl.admin
        if keys:
            source.execute_command("MIGRATE", loaded.host("lab7").data_address, 6379, "", 0, 5000, "AUTH2",
                                   admin.name, admin.password.value, "KEYS", keys[0])
    finally:
        source.close()
        target.close()
    assert verify_failures(grown), "verify should see the open slot"
    report, output = deploy(grown, artifact_dir)
    assert report.ok, output
    assert "finish the move of slot(s) 0 from lab1, left open by an earlier run" in output, output
    failures = verify_failures(grown)
    assert failures == [], failures
    assert shares(loaded, HOSTS) == {"lab1": 4096, "lab2": 4096, "lab3": 4096, "lab7": 4096}
    assert keys_intact(loaded) == KEY_COUNT


def node_id(loaded, name: str) -> str:
    node = node_client(loaded, name)
    try:
        return node.execute_command("CLUSTER", "MYID")
    finally:
        node.close()


def test_a_shard_taken_out_under_writes_hands_its_slots_back_and_stops_keeping_its_data(
        three_shards, reshape_lab, artifact_dir):
    shrunk = variant(reshape_lab, "three-shards-lab7-lab8-absent", THREE_SHARDS, absent=("lab7", "lab8"))
    loaded = inventory.load(shrunk)
    report, output, writer, lost = deploy_under_writes(shrunk, loaded, artifact_dir)
    assert report.ok, output
    assert "leaves the cluster: every member forgets node" in output, output
    assert "lab7: retire: stop redis-server :6379" in output, output
    assert shares(loaded, FIRST_SIX) == {"lab1": 5462, "lab2": 5461, "lab3": 5461}
    assert_no_write_lost(writer, lost, loaded)
    failures = verify_failures(shrunk)
    assert failures == [], failures
    assert run_on(loaded, "lab7", "ls /app/redis/data/6379").strip(), "lab7's data should stay on disk"
    report, output = deploy(shrunk, artifact_dir)
    assert report.ok and report.changed == 0, output


def test_a_replica_added_to_a_shard_and_taken_out_again_under_writes_loses_nothing(
        three_shards, reshape_lab, artifact_dir, lab_paths):
    """lab7 (re-imaged: a retired host keeps its old cluster identity on disk) becomes shard-1's
    second replica, then leaves again; the slots never move."""
    lab_hosts.reinstall(lab_paths, "lab7", log=lambda _: None)
    two_replicas = [{"master": "lab1", "replicas": ["lab4", "lab7"]}] + THREE_SHARDS[1:]
    grown = variant(reshape_lab, "shard-1-two-replicas", two_replicas, absent=("lab8",))
    loaded = inventory.load(grown)
    before = shares(loaded, FIRST_SIX)
    report, output, writer, lost = deploy_under_writes(grown, loaded, artifact_dir)
    assert report.ok, output
    assert "lab7: cluster form: joins the cluster (CLUSTER MEET from lab1)" in output, output
    assert "lab7: cluster form: shard-1: replicates lab1" in output and "cluster form: move" not in output, output
    assert shares(loaded, FIRST_SIX) == before
    replica = node_client(loaded, "lab7")
    try:
        info = replica.info("replication")
        assert info["role"] == "slave" and info["master_link_status"] == "up", info
        assert replica.dbsize() > 0
    finally:
        replica.close()
    assert_no_write_lost(writer, lost, loaded)
    assert verify_failures(grown) == []
    shrunk = variant(reshape_lab, "shard-1-one-replica", THREE_SHARDS, absent=("lab7", "lab8"))
    loaded = inventory.load(shrunk)
    report, output, writer, lost = deploy_under_writes(shrunk, loaded, artifact_dir)
    assert report.ok, output
    assert "lab7: cluster form: leaves the cluster" in output and "lab7: retire: stop redis-server :6379" in output
    assert "cluster form: move" not in output, output
    assert_no_write_lost(writer, lost, loaded)
    assert verify_failures(shrunk) == []
