"""Redis Cluster on six lab hosts (three shards, a master and a replica each): deploy builds,
starts and forms it over empty nodes, verify checks it whole, a client writes through it, a
re-run changes nothing, and forming is refused over a node that is not empty and alone. One
deployed cluster for the module; its hosts are re-imaged afterwards so that the Sentinel-mode
modules find them fresh."""
from __future__ import annotations

import time

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from lab import hosts as lab_hosts
from lab import inventory_file
from provision import inventory
from tests.clusterwriter import KINDS, ClusterWriter, fill, intact
from tests.labtools import deploy, run_on, start_times, verify_failures, wait_for

pytestmark = pytest.mark.lab

HOSTS = [f"lab{index}" for index in range(1, 7)]


@pytest.fixture(scope="module")
def cluster_lab(lab, lab_paths, tmp_path_factory):
    """The inventory path of a six-host cluster over freshly imaged hosts; re-imaged after."""
    made = lab_hosts.up(lab_paths, len(HOSTS), log=lambda _: None)
    for name in HOSTS:
        lab_hosts.reinstall(lab_paths, name, log=lambda _: None)
    path = inventory_file.write_lab_inventory(lab_paths, made, tmp_path_factory.mktemp("cluster") / "cluster.yml",
                                              cluster=3)
    yield path
    for name in HOSTS:
        lab_hosts.reinstall(lab_paths, name, log=lambda _: None)


@pytest.fixture(scope="module")
def cluster_inventory(cluster_lab):
    return inventory.load(cluster_lab)


@pytest.fixture(scope="module")
def formed(cluster_lab, artifact_dir):
    """The first deploy's report and output."""
    report, output = deploy(cluster_lab, artifact_dir)
    print(output)
    return report, output


def cluster_client(cluster_inventory) -> RedisCluster:
    admin = cluster_inventory.acl.admin
    first = cluster_inventory.host(HOSTS[0])
    return RedisCluster(startup_nodes=[ClusterNode(first.data_address, 6379)], username=admin.name,
                        password=admin.password.value, decode_responses=True, socket_timeout=3)


def test_deploy_forms_the_cluster_over_empty_nodes_and_verify_passes(formed, cluster_lab, cluster_inventory):
    report, output = formed
    assert report.ok, output
    for first, last, master in ((0, 5461, "lab1"), (5462, 10922, "lab2"), (10923, 16383, "lab3")):
        assert f"{master}: cluster form: shard-" in output and f"slots {first}-{last} to {master}" in output, output
    assert "replicates" in output
    failures = verify_failures(cluster_lab)
    assert failures == [], failures


KEY_COUNT = 10_000


def test_a_cluster_client_writes_ten_thousand_keys_over_every_shard_and_reads_them_back(formed, cluster_inventory):
    client = cluster_client(cluster_inventory)
    try:
        fill(client, KEY_COUNT)
        assert read_back(client) == KEY_COUNT
        assert len(client.get_primaries()) == 3
    finally:
        client.close()
    roles = node_roles(cluster_inventory)
    assert sorted(role for role, _ in roles.values()) == ["master"] * 3 + ["slave"] * 3, roles
    assert sum(keys for role, keys in roles.values() if role == "master") == KEY_COUNT, roles
    assert all(keys > KEY_COUNT // 6 for _, keys in roles.values()), roles   # every shard, replicas too


def read_back(client) -> int:
    return intact(client, KEY_COUNT)


def node_roles(cluster_inventory) -> dict[str, tuple[str, int]]:
    """host → (role, DBSIZE)."""
    found = {}
    for name in HOSTS:
        node = node_client(cluster_inventory, name)
        try:
            found[name] = (node.info("replication")["role"], node.dbsize())
        finally:
            node.close()
    return found


def node_client(cluster_inventory, name: str) -> redis.Redis:
    admin = cluster_inventory.acl.admin
    return redis.Redis(host=cluster_inventory.host(name).data_address, port=6379, username=admin.name,
                       password=admin.password.value, decode_responses=True, socket_timeout=3)


def test_a_second_deploy_changes_nothing_and_restarts_nothing(formed, cluster_lab, cluster_inventory, artifact_dir):
    before = start_times(cluster_inventory)
    assert len(before) == len(HOSTS), before
    report, output = deploy(cluster_lab, artifact_dir)
    assert report.ok and report.changed == 0, output
    assert start_times(cluster_inventory) == before


def test_a_rerun_after_an_outside_cluster_failover_keeps_the_new_roles_and_changes_nothing(
        formed, cluster_lab, cluster_inventory, artifact_dir):
    """lab4 (shard-1's replica) takes over with CLUSTER FAILOVER, as an operator would."""
    replica = node_client(cluster_inventory, "lab4")
    try:
        assert replica.execute_command("CLUSTER", "FAILOVER") == "OK"
    finally:
        replica.close()
    wait_for(lambda: node_roles(cluster_inventory)["lab4"][0] == "master"
             and node_roles(cluster_inventory)["lab1"][0] == "slave", 30, "lab4 to be shard-1's master")
    wait_for(lambda: not verify_failures(cluster_lab), 60, "verify to pass after the failover", interval=1)
    before = start_times(cluster_inventory)
    report, output = deploy(cluster_lab, artifact_dir)
    assert report.ok and report.changed == 0, output
    assert start_times(cluster_inventory) == before
    assert node_roles(cluster_inventory)["lab4"][0] == "master"


def test_every_host_rebooted_at_once_comes_back_as_the_same_cluster_with_every_key(
        formed, cluster_lab, cluster_inventory, lab_paths):
    ids_before = {name: _ids(cluster_nodes(cluster_inventory, name)) for name in HOSTS}
    for name in HOSTS:
        lab_hosts.restart(lab_paths, name, log=lambda _: None)
    wait_for(lambda: not verify_failures(cluster_lab), 90, "verify to pass after the reboots", interval=1)
    # the same nodes, each with the identity it had (nodes-6379.conf), every one knowing all six
    assert {name: _ids(cluster_nodes(cluster_inventory, name)) for name in HOSTS} == ids_before
    assert all(len(ids) == len(HOSTS) for ids in ids_before.values())
    client = cluster_client(cluster_inventory)
    try:
        assert read_back(client) == KEY_COUNT
    finally:
        client.close()


CLUSTER_START = "umask 0027; runuser -u redis -- /app/redis/bin/redis-server /app/redis/conf/redis-6379.conf"


@pytest.mark.parametrize("fault", ["kill", "reboot", "cascade"])
def test_a_shard_master_killed_or_its_host_rebooted_under_writes_loses_no_acknowledged_write(
        fault, formed, cluster_lab, cluster_inventory, lab_paths):
    """kill: kill -9, the cluster fails the shard over to its replica, the old master started
    again comes back as its replica. reboot: the host's every process killed, rc.local starts
    the node again at once (before node_timeout: no failover). cascade: the master's host
    rebooted, then its replica's 1 s later. The writer's SET, MULTI/EXEC and
    EVAL writes, each acknowledged by WAIT 1, must all be on their slot's master afterwards."""
    shard = cluster_inventory.cluster.shards[1]
    roles = node_roles(cluster_inventory)
    master = next(name for name in shard.members if roles[name][0] == "master")
    replica = next(name for name in shard.members if name != master)
    admin = cluster_inventory.acl.admin
    addresses = [cluster_inventory.host(name).data_address for name in HOSTS]
    with ClusterWriter(addresses, admin.name, admin.password.value) as writer:
        time.sleep(2)
        faulted = time.monotonic()
        if fault == "kill":
            run_on(cluster_inventory, master, "kill -KILL $(cat /app/redis/run/redis-6379.pid)")
            wait_for(lambda: node_roles_of(cluster_inventory, replica) == "master", 30, f"{replica} to take over")
            promoted = time.monotonic() - faulted
            run_on(cluster_inventory, master, CLUSTER_START)
        else:
            lab_hosts.restart(lab_paths, master, log=lambda _: None)
            if fault == "cascade":
                time.sleep(1)
                lab_hosts.restart(lab_paths, replica, log=lambda _: None)
            promoted = None
        wait_for(lambda: not verify_failures(cluster_lab), 90, "verify to pass after the fault", interval=1)
        time.sleep(2)
    roles_after = node_roles(cluster_inventory)
    print(f"{fault} {master}: replica {replica} master after "
          f"{'-' if promoted is None else f'{promoted:.2f}s'}; roles now {master}={roles_after[master][0]}, "
          f"{replica}={roles_after[replica][0]}; {writer.summary()}")
    lost = writer.lost_now()
    print(f"lost {lost}")
    assert all(len(written) > 20 for written in writer.acknowledged.values()), writer.summary()
    assert lost == dict.fromkeys(KINDS, 0), writer.summary()
    if fault == "kill":
        assert (roles_after[master][0], roles_after[replica][0]) == ("slave", "master")


def node_roles_of(cluster_inventory, name: str) -> str | None:
    node = node_client(cluster_inventory, name)
    try:
        return node.info("replication")["role"]
    except redis.RedisError:
        return None
    finally:
        node.close()


def test_status_shows_each_shard_with_its_slots_keys_and_replication_lag(formed, cluster_lab):
    from provision import cli
    lines: list[str] = []
    verdict = cli.status(str(cluster_lab), say=lines.append)
    shown = "\n".join(lines)
    print(shown)
    assert verdict.ok, shown
    assert "cluster: 3 shards, 16384 of 16384 slots served" in shown and "whole and agreed" in shown, shown
    rows = {line.split()[1]: line.split() for line in shown.splitlines()[2:] if line.startswith("  shard-")}
    assert sorted(rows) == HOSTS, shown
    masters = [row for row in rows.values() if row[2] == "master"]
    assert len(masters) == 3 and sum(int(row[5]) for row in masters) == 16384, shown
    replicas = [row for row in rows.values() if row[2] == "slave"]
    assert len(replicas) == 3 and all("up" in row and row[-1].endswith("B") for row in replicas), shown


def test_failover_of_a_shard_under_writes_hands_it_to_its_replica_and_loses_no_acknowledged_write(
        formed, cluster_lab, cluster_inventory):
    from provision import cli
    shard = cluster_inventory.cluster.shards[2]
    roles = node_roles(cluster_inventory)
    master = next(name for name in shard.members if roles[name][0] == "master")
    replica = next(name for name in shard.members if name != master)
    lines: list[str] = []
    planned = cli.failover(str(cluster_lab), shard=shard.name, check=True, say=lines.append)
    assert planned.new_master == replica and node_roles(cluster_inventory)[master][0] == "master", lines
    admin = cluster_inventory.acl.admin
    addresses = [cluster_inventory.host(name).data_address for name in HOSTS]
    with ClusterWriter(addresses, admin.name, admin.password.value) as writer:
        time.sleep(1)
        result = cli.failover(str(cluster_lab), shard=shard.name, say=lines.append, confirm=lambda _: True)
        time.sleep(1)
    print("\n".join(lines), writer.summary(), sep="\n")
    assert (result.old_master, result.new_master) == (master, replica)
    roles_after = node_roles(cluster_inventory)
    assert (roles_after[master][0], roles_after[replica][0]) == ("slave", "master")
    assert writer.lost_now() == dict.fromkeys(KINDS, 0), writer.summary()
    assert verify_failures(cluster_lab) == []


def test_forming_is_refused_over_nodes_that_already_belong_to_a_cluster(formed, cluster_lab, cluster_inventory,
                                                                         lab_paths, artifact_dir):
    """lab6 re-imaged: it comes back empty and alone while the five others still know its old
    self. Forming over them would merge clusters, and joining it as a new node would leave its
    old self behind; deploy names why and sends nothing."""
    nodes_before = {name: cluster_nodes(cluster_inventory, name) for name in HOSTS[:5]}
    lab_hosts.reinstall(lab_paths, "lab6", log=lambda _: None)
    report, output = deploy(cluster_lab, artifact_dir)
    assert not report.ok, output
    assert "the cluster cannot be made the inventory's; nothing was sent" in output, output
    assert "lab6 is empty and alone, but the cluster still knows node" in output, output
    assert "replacing a lost node is not built yet" in output, output
    assert "CLUSTER MEET" not in output and "ADDSLOTS" not in output
    for name, before in nodes_before.items():
        after = cluster_nodes(cluster_inventory, name)
        assert _ids_and_slots(after) == _ids_and_slots(before), name


def cluster_nodes(cluster_inventory, name: str) -> str:
    admin = cluster_inventory.acl.admin
    node = redis.Redis(host=cluster_inventory.host(name).data_address, port=6379, username=admin.name,
                       password=admin.password.value, decode_responses=True, socket_timeout=3)
    try:
        return node.execute_command("CLUSTER", "NODES")
    finally:
        node.close()


def _ids_and_slots(text: str) -> set[tuple[str, str]]:
    return {(line.split()[0], " ".join(line.split()[8:])) for line in text.splitlines() if line.strip()}


def _ids(text: str) -> frozenset[str]:
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())

