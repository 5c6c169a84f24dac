"""Crashes, restarts and reboots on three real lab hosts, measured with the drill's mixed writer
(SET, MULTI/EXEC, EVAL, FCALL, each acknowledged by WAIT 1) and a 100 ms role watch: no
acknowledged write is lost on any node, and no node ever accepts writes next to the master the
Sentinels name."""
from __future__ import annotations

import threading
import time

import pytest

from provision.ops import drill, rolewatch
from lab import hosts as lab_hosts
from tests.labtools import client, deploy, master_per_sentinel, run_on, verify_failures, wait_for

pytestmark = pytest.mark.lab

AOF_EXEC_ERROR = "sending an error to its AOF-loading-client"


def master_now(lab_inventory) -> str:
    answers = set(master_per_sentinel(lab_inventory).values())
    assert len(answers) == 1, answers
    address = answers.pop()
    return next(h.name for h in lab_inventory.hosts if h.data_address == address)


def kill_redis(lab_inventory, host: str) -> None:
    run_on(lab_inventory, host, "kill -KILL $(cat /app/redis/run/redis-6379.pid)")


def assert_nothing_lost(plan, group, run_id, log):
    kinds = drill.count_lost(plan, group, run_id, log)
    assert all(count.acknowledged > 10 for count in kinds.values()), kinds
    assert {kind: (count.lost, count.lost_on_some_node) for kind, count in kinds.items()} == \
        {kind: (0, 0) for kind in drill.WRITE_KINDS}, kinds


def assert_aof_loaded_every_transaction(lab_inventory):
    for host in ("lab1", "lab2", "lab3"):
        log = run_on(lab_inventory, host, "cat /app/redis/logs/redis-6379.log")
        assert AOF_EXEC_ERROR not in log, f"{host} dropped MULTI/EXEC while loading its AOF"


def test_master_killed_then_deploy_brings_it_back_as_a_replica_never_writable(deployed_lab, lab, lab_inventory,
                                                                              artifact_dir):
    """The issue's case: the sentinels elect another node; deploy must not start the old one
    from its stale file as a second master."""
    group = deployed_lab.inventory.groups[0]
    old = master_now(lab_inventory)
    old_address = lab_inventory.host(old).data_address
    with rolewatch.RoleWatch(deployed_lab, group) as watch:
        time.sleep(0.5)
        kill_redis(lab_inventory, old)
        killed_at = time.monotonic()       # the kill has happened when the command returns
        wait_for(lambda: old_address not in master_per_sentinel(lab_inventory).values()
                 and None not in master_per_sentinel(lab_inventory).values(), 30, "the sentinels to fail over")
        new = master_now(lab_inventory)
        report, output = deploy(lab, artifact_dir)
        info = wait_for(lambda: (i := client(lab_inventory, old).info("replication"))["master_link_status"] == "up"
                        and i, 30, f"{old} linked")
    print(output, watch.summary(), sep="\n")
    assert report.ok, output
    assert f"set replicaof in /app/redis/conf/redis-6379.conf: none (master) -> " \
           f"{lab_inventory.host(new).data_address} 6379" in output
    assert "promoted it during this run" not in output
    assert info["role"] == "slave" and info["master_host"] == lab_inventory.host(new).data_address
    assert old not in watch.writable_nodes_seen(since=killed_at), watch.summary()
    assert watch.two_master_seconds == 0, watch.summary()
    assert verify_failures(lab) == []


def test_master_killed_and_deploy_at_once_hands_over_before_starting_it(deployed_lab, lab, lab_inventory, artifact_dir):
    """Deploy right after the crash, while the sentinels still name the dead master: it has a
    replica promoted by the sentinels first, then starts the old master as its replica (never with
    only its AOF)."""
    group = deployed_lab.inventory.groups[0]
    old = master_now(lab_inventory)
    with drill.writing(deployed_lab, group) as (run_id, log), rolewatch.RoleWatch(deployed_lab, group) as watch:
        time.sleep(1)
        kill_redis(lab_inventory, old)
        killed_at = time.monotonic()       # the kill has happened when the command returns
        report, output = deploy(lab, artifact_dir)
        wait_for(lambda: client(lab_inventory, old).info("replication")["master_link_status"] == "up", 30,
                 f"{old} linked")
        time.sleep(1)
    print(output, watch.summary(), sep="\n")
    assert report.ok, output
    assert report.masters[group.name] != old
    assert client(lab_inventory, old).info("replication")["role"] == "slave"
    assert old not in watch.writable_nodes_seen(since=killed_at), watch.summary()
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(deployed_lab, group, run_id, log)


def test_replica_reboot_under_writes_heals_by_itself_losing_nothing(deployed_lab, lab, lab_paths, lab_inventory):
    group = deployed_lab.inventory.groups[0]
    replica = next(name for name in ("lab3", "lab2", "lab1") if name != master_now(lab_inventory))
    with drill.writing(deployed_lab, group) as (run_id, log), rolewatch.RoleWatch(deployed_lab, group) as watch:
        time.sleep(1)
        lab_hosts.restart(lab_paths, replica, log=lambda _: None)
        wait_for(lambda: client(lab_inventory, replica).info("replication")["master_link_status"] == "up", 30,
                 f"{replica} linked again")
        time.sleep(1)
    wait_for(lambda: not verify_failures(lab), 60, "verify to pass by itself", interval=1)
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(deployed_lab, group, run_id, log)
    assert_aof_loaded_every_transaction(lab_inventory)


def test_each_host_rebooted_in_turn_under_writes_heals_by_itself_losing_nothing(deployed_lab, lab, lab_paths,
                                                                                lab_inventory):
    """Every host, sentinel and all, reboots in turn; the master's waits for the failover first."""
    group = deployed_lab.inventory.groups[0]
    with drill.writing(deployed_lab, group) as (run_id, log), rolewatch.RoleWatch(deployed_lab, group) as watch:
        for host in ("lab1", "lab2", "lab3"):
            time.sleep(1)
            lab_hosts.restart(lab_paths, host, log=lambda _: None)
            wait_for(lambda: not verify_failures(lab), 60, f"verify to pass after {host} rebooted", interval=1)
        time.sleep(1)
    print(watch.summary())
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(deployed_lab, group, run_id, log)
    assert_aof_loaded_every_transaction(lab_inventory)


def test_all_hosts_rebooted_at_once_keep_every_acknowledged_transaction(deployed_lab, lab, lab_paths, lab_inventory):
    """A power cut of the whole group: every node loads its own AOF, whichever is promoted must
    hold the MULTI/EXEC, EVAL and FCALL writes (the default user's ACL must not drop them)."""
    group = deployed_lab.inventory.groups[0]
    with drill.writing(deployed_lab, group) as (run_id, log):
        time.sleep(3)
    with rolewatch.RoleWatch(deployed_lab, group) as watch:
        threads = [threading.Thread(target=lab_hosts.restart, args=(lab_paths, host), kwargs={"log": lambda _: None})
                   for host in ("lab1", "lab2", "lab3")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_for(lambda: not verify_failures(lab), 90, "verify to pass after the whole lab rebooted", interval=1)
    print(watch.summary())
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(deployed_lab, group, run_id, log)
    assert_aof_loaded_every_transaction(lab_inventory)


def test_every_node_of_the_group_crashed_then_deploy_brings_it_back_losing_nothing(deployed_lab, lab, lab_inventory,
                                                                                    artifact_dir):
    """All three redis-servers killed (the sentinels keep running and still name the dead master):
    deploy starts the replicas first, fenced (restarted from their AOF they cannot show what they
    hold, so Sentinel must not promote one), then the old master as master with its own AOF, and
    the replicas resync from it; never two writable masters, no acknowledged write lost."""
    group = deployed_lab.inventory.groups[0]
    old = master_now(lab_inventory)
    with drill.writing(deployed_lab, group) as (run_id, log):
        time.sleep(2)
    with rolewatch.RoleWatch(deployed_lab, group) as watch:
        for host in ("lab1", "lab2", "lab3"):
            kill_redis(lab_inventory, host)
        report, output = deploy(lab, artifact_dir)
        wait_for(lambda: not verify_failures(lab), 60, "verify to pass after the recovery", interval=1)
    print(output, watch.summary(), sep="\n")
    assert report.ok, output
    assert "its group's master is down too" in output and "no other node of mymaster can be promoted" in output
    assert report.masters[group.name] == old
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(deployed_lab, group, run_id, log)
