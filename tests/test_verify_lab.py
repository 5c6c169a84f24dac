"""verify catches each way a deployment goes wrong, naming the host and the check; a deploy
re-run repairs it. Also status and a controlled failover."""
from __future__ import annotations

import pytest

from provision import cli
from lab import hosts as lab_hosts
from tests.labtools import run_on, client, deploy, verify_failures, wait_for

pytestmark = pytest.mark.lab


def _replica(lab_inventory) -> str:
    return next(n for n in ("lab3", "lab2", "lab1") if client(lab_inventory, n).info("replication")["role"] == "slave")


def _failed(lab) -> set[tuple[str, str]]:
    return {(result.host, result.check) for result in verify_failures(lab)}


@pytest.fixture
def repaired(lab, artifact_dir):
    """After each breakage, a deploy must bring verify back to clean."""
    yield
    wait_for(lambda: deploy(lab, artifact_dir)[0].ok, 60, "deploy to repair", interval=1)
    wait_for(lambda: not verify_failures(lab), 60, "verify to pass after repair", interval=1)


def test_verify_passes_on_the_deployment(lab, lab_inventory, artifact_dir):
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    wait_for(lambda: not verify_failures(lab), 30, "verify to pass")


def test_verify_json_output_is_machine_readable(deployed_lab, lab, lab_inventory, capsys):
    """One JSON document on stdout (progress would go elsewhere), hosts in inventory order."""
    import json
    assert cli.verify(str(lab), as_json=True, say=lambda _: None)
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True and document["failed"] == 0 and len(document["checks"]) > 50
    host_order = [check["host"] for check in document["checks"] if check["host"].startswith("lab")]
    first_seen = list(dict.fromkeys(host_order))
    assert first_seen == [host.name for host in lab_inventory.hosts]


def test_stopped_replica_redis_is_named(lab, lab_paths, lab_inventory, repaired):
    replica = _replica(lab_inventory)
    lab_hosts.signal_process(lab_paths, replica, "redis-server", "KILL")
    assert (replica, "redis :6379 running") in _failed(lab)


def test_stopped_sentinel_is_named(lab, lab_paths, lab_inventory, repaired):
    lab_hosts.signal_process(lab_paths, "lab2", "redis-sentinel", "KILL")
    failed = _failed(lab)
    assert ("lab2", "sentinel running") in failed
    assert ("lab1", "sentinel mymaster peers") in failed or ("lab3", "sentinel mymaster peers") in failed or \
        ("lab2", "sentinel running") in failed


def test_reverted_sysctl_is_named(lab, lab_inventory, repaired):
    run_on(lab_inventory, "lab1", "sysctl -q -w net.core.somaxconn=128")
    assert ("lab1", "sysctl net.core.somaxconn") in _failed(lab)


def test_thp_back_to_always_is_named(lab, lab_inventory, repaired):
    run_on(lab_inventory, "lab3", "echo always > /sys/kernel/mm/transparent_hugepage/enabled")
    assert ("lab3", "thp enabled") in _failed(lab)


def test_replica_pointed_at_the_wrong_master_is_named(lab, lab_inventory, repaired):
    replicas = [n for n in ("lab1", "lab2", "lab3") if client(lab_inventory, n).info("replication")["role"] == "slave"]
    wrong, other = replicas[0], replicas[1]
    client(lab_inventory, wrong).execute_command("REPLICAOF", lab_inventory.host(other).data_address, "6379")
    assert (wrong, "redis :6379 role") in _failed(lab)


def test_removed_acl_user_is_named(lab, lab_inventory, repaired):
    replica = _replica(lab_inventory)
    client(lab_inventory, replica).execute_command("ACL", "DELUSER", "app")
    assert (replica, "acl user app") in _failed(lab)


def test_world_readable_secret_file_is_named(lab, lab_inventory, repaired):
    run_on(lab_inventory, "lab2", "chmod 644 /app/redis/conf/redis-6379.conf")
    assert ("lab2", "file mode redis-6379.conf") in _failed(lab)


def test_status_shows_the_live_topology(lab):
    lines = []
    assert cli.status(str(lab), say=lines.append)
    table = lines[0]
    assert "group mymaster: master lab" in table and table.count(" slave ") == 2 and "PEERS" in table


def test_failover_switches_master_and_verify_accepts_the_new_one(lab, lab_inventory):
    before = next(n for n in ("lab1", "lab2", "lab3") if client(lab_inventory, n).info("replication")["role"] == "master")
    result = cli.failover(str(lab), say=lambda _: None)
    assert result.old_master == before and result.new_master != before
    assert client(lab_inventory, result.new_master).info("replication")["role"] == "master"
    assert client(lab_inventory, before).info("replication")["master_link_status"] == "up"
    assert 0 < result.seconds_to_switch <= result.seconds_to_rejoin < 90
    wait_for(lambda: not verify_failures(lab), 30, "verify to pass after the failover")
