"""The inventory's `cluster` section: shards given or placed, and every mistake refused at its key
path before any host is touched."""
from __future__ import annotations

import pytest

from provision import inventory
from provision.base.errors import InventoryError
from tests.test_inventory import ENVIRONMENT, SHA, write

ROOT_ENVIRONMENT = {"REDIS_ADMIN_PASSWORD": "admin-password-1", "REDIS_REPLICATION_PASSWORD": "replica-password-1",
                    "REDIS_SENTINEL_PASSWORD": "sentinel-password-1"}


def cluster_document(**cluster) -> dict:
    return {
        "hosts": {f"n{i}": {"address": f"10.0.0.{i}"} for i in range(1, 7)},
        "redis": {"version": "7.0.15", "source": {"url": "https://example.invalid/redis-7.0.15.tar.gz", "sha256": SHA}},
        "cluster": cluster or {"shards": [{"master": f"n{i}", "replicas": [f"n{i + 3}"]} for i in (1, 2, 3)]},
        "acl": {"admin": {"password_env": "PA"}, "replication": {"password_env": "PR"},
                "sentinel": {"password_env": "PS"}},
    }


def problems_of(tmp_path, document) -> str:
    with pytest.raises(InventoryError) as raised:
        inventory.load(write(tmp_path, document), ENVIRONMENT)
    return "\n".join(raised.value.problems)


def test_a_cluster_only_inventory_loads_with_its_defaults(tmp_path):
    loaded = inventory.load(write(tmp_path, cluster_document()), ENVIRONMENT)
    assert loaded.groups == () and loaded.sentinels == ()
    cluster = loaded.cluster
    assert [(shard.name, shard.master, shard.replicas) for shard in cluster.shards] == [
        ("shard-1", "n1", ("n4",)), ("shard-2", "n2", ("n5",)), ("shard-3", "n3", ("n6",))]
    assert (cluster.port, cluster.bus_port, cluster.node_timeout) == (6379, 16379, 5000)
    assert (cluster.require_full_coverage, cluster.allow_reads_when_down) == (True, False)
    assert (cluster.min_replicas_to_write, cluster.min_replicas_max_lag) == (1, 2)


def test_a_host_list_is_placed_so_that_no_replica_shares_its_masters_host(tmp_path):
    document = cluster_document(hosts=[f"n{i}" for i in range(1, 7)], replicas_per_shard=1, port=7000)
    cluster = inventory.load(write(tmp_path, document), ENVIRONMENT).cluster
    assert [(shard.master, shard.replicas) for shard in cluster.shards] == [("n1", ("n4",)), ("n2", ("n5",)),
                                                                          ("n3", ("n6",))]
    assert cluster.bus_port == 17000
    document["hosts"].update({f"n{i}": {"address": f"10.0.0.{i}"} for i in range(7, 10)})
    document["cluster"] = {"hosts": [f"n{i}" for i in range(1, 10)], "replicas_per_shard": 2}
    cluster = inventory.load(write(tmp_path, document), ENVIRONMENT).cluster
    assert [(shard.master, shard.replicas) for shard in cluster.shards] == [
        ("n1", ("n4", "n5")), ("n2", ("n6", "n7")), ("n3", ("n8", "n9"))]
    for shard in cluster.shards:
        assert shard.master not in shard.replicas


def test_the_example_cluster_inventory_loads(tmp_path):
    from pathlib import Path
    example = Path(__file__).resolve().parent.parent / "inventory" / "cluster.yml"
    loaded = inventory.load(str(example), ROOT_ENVIRONMENT)
    assert len(loaded.cluster.shards) == 3 and loaded.groups == ()


@pytest.mark.parametrize("behaviour, change, expected", [
    ("two masters", lambda d: d["cluster"]["shards"].pop(),
     "cluster.shards: 2 master(s); Redis Cluster needs at least 3"),
    ("a replica on its master's host", lambda d: d["cluster"]["shards"][0]["replicas"].append("n1"),
     "cluster.shards.0.replicas.1: 'n1' is this shard's master"),
    ("a host in two shards", lambda d: d["cluster"]["shards"][1]["replicas"].__setitem__(0, "n4"),
     "cluster.shards.1.replicas.0: 'n4' already serves shard-1; a host carries one cluster node"),
    ("an unknown host", lambda d: d["cluster"]["shards"][2].__setitem__("master", "n33"),
     "cluster.shards.2.master: unknown host 'n33'; did you mean 'n3'?"),
    ("shards and hosts both", lambda d: d["cluster"].__setitem__("hosts", ["n1"]),
     "cluster: give exactly one of shards"),
    ("hosts that do not split", lambda d: d.__setitem__("cluster", {"hosts": ["n1", "n2", "n3", "n4", "n5"]}),
     "cluster.hosts: 5 hosts do not split into shards of a master and 1 replica(s)"),
    ("a Sentinel key in a shard", lambda d: d["cluster"]["shards"][0].__setitem__("quorum", 2),
     "cluster.shards.0.quorum: unknown key; allowed here: master, replicas"),
    ("several databases", lambda d: d["redis"].__setitem__("settings", {"databases": 16}),
     "redis.settings.databases: Redis Cluster has database 0 only"),
    ("the bus port on the port", lambda d: d["cluster"].__setitem__("bus_port", 6379),
     "cluster.bus_port: must differ from the cluster's port (6379)"),
    ("a lag not under node_timeout", lambda d: d["cluster"].update(node_timeout=2000, min_replicas_max_lag=2),
     "cluster.min_replicas_max_lag: 2s is not shorter than node_timeout (2000ms)"),
    ("more replicas to write than a shard has", lambda d: d["cluster"].__setitem__("min_replicas_to_write", 2),
     "cluster.min_replicas_to_write: 2 is more than the replicas of the smallest shard"),
    ("a port clash with a Sentinel group on the same host",
     lambda d: d.update(groups={"g": {"master": "n1", "replicas": ["n2"], "quorum": 2}}, sentinels=["n1", "n2", "n3"]),
     "cluster.port: 6379 is group 'g''s port on"),
    ("a bus port on the Sentinel port", lambda d: d["cluster"].__setitem__("bus_port", 26379) or
     d.update(groups={"g": {"master": "n1", "replicas": ["n2"], "quorum": 2, "port": 6400}},
              sentinels=["n1", "n2", "n3"]),
     "cluster.bus_port: 26379 is the Sentinel port, and a Sentinel runs on a cluster node's host"),
    ("sentinels with no groups", lambda d: d.__setitem__("sentinels", ["n1", "n2", "n3"]),
     "sentinels: sentinels watch the groups, and there are none"),
    ("neither groups nor a cluster", lambda d: d.pop("cluster"),
     "groups: give groups (Sentinel replication groups), a cluster, or both"),
])
def test_a_bad_cluster_section_is_refused_at_its_key_path(tmp_path, behaviour, change, expected):
    document = cluster_document()
    change(document)
    assert expected in problems_of(tmp_path, document)


def test_slots_split_evenly_over_the_masters_each_slot_once():
    from provision.core.plan import slot_ranges
    for masters in (3, 4, 7, 10):
        ranges = slot_ranges(masters)
        sizes = [last - first + 1 for first, last in ranges]
        assert sum(sizes) == 16384 and max(sizes) - min(sizes) <= 1
        assert ranges[0][0] == 0 and ranges[-1][1] == 16383
        assert all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(masters - 1))


def test_plan_shows_each_host_its_shard_and_slots_and_the_tasks_without_cluster_support_refuse_it(tmp_path):
    from tests.test_cli import offline
    from pathlib import Path
    path = str(Path(__file__).resolve().parent.parent / "inventory" / "cluster.yml")
    shown = offline("plan", "-i", path)
    assert shown.returncode == 0, shown.stderr
    assert "cluster master of shard-1 (slots 0-5461) :6379 bus :16379" in shown.stdout
    assert "cluster replica in shard-3 :6379" in shown.stdout
    for task in ("drill", "upgrade"):
        refused = offline(task, "-i", path, *(("--version", "7.2.4") if task == "upgrade" else ()))
        assert refused.returncode == 2 and "does not handle Redis Cluster yet" in refused.stderr, refused.stderr


def test_a_cluster_node_gets_the_cluster_directives_and_no_replicaof(tmp_path):
    from provision.base import directives
    from provision.core import confparse, plan as planner, render
    document = cluster_document()
    document["cluster"].update(node_timeout=4000, bus_port=17000, allow_reads_when_down=True)
    document["hosts"]["n4"]["redis"] = {"maxmemory": "1gb", "settings": {"hz": 20}}
    plan = planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))
    text = render.cluster_redis_conf(plan, plan.host_plan("n4").cluster_node, systemd=True)
    lines = {directive.key[0]: " ".join(directive.values) for _, directive in confparse.parse(text)}
    assert lines["cluster-enabled"] == "yes" and lines["cluster-config-file"] == "nodes-6379.conf"
    assert (lines["cluster-port"], lines["cluster-node-timeout"]) == ("17000", "4000")
    assert lines["cluster-announce-ip"] == "10.0.0.4" and lines["bind"] == "10.0.0.4 127.0.0.1"
    assert (lines["cluster-require-full-coverage"], lines["cluster-allow-reads-when-down"]) == ("yes", "yes")
    assert (lines["maxmemory"], lines["hz"], lines["repl-diskless-sync-max-replicas"]) == ("1gb", "20", "1")
    assert "replicaof" not in lines
    assert all(directives.redis_info((name,)).reserved for name in lines if name.startswith("cluster-"))


def test_cluster_settings_are_the_tools_and_refused_in_redis_settings(tmp_path):
    document = cluster_document()
    document["redis"]["settings"] = {"cluster-node-timeout": 100}
    assert "redis.settings.cluster-node-timeout: cluster-node-timeout is managed by the tool" in problems_of(tmp_path, document)


def test_a_cluster_needs_redis_7(tmp_path):
    document = cluster_document()
    document["redis"]["version"] = "6.2.14"
    document["redis"]["source"]["url"] = "https://example.invalid/redis-6.2.14.tar.gz"
    assert "redis.version: 6.2.14: the cluster needs Redis 7.0 or later" in problems_of(tmp_path, document)


def test_render_shows_a_cluster_hosts_files_offline():
    from pathlib import Path
    from tests.test_cli import offline
    path = str(Path(__file__).resolve().parent.parent / "inventory" / "cluster.yml")
    shown = offline("render", "redis-5", "--file", "redis-6379.conf", "-i", path)
    assert shown.returncode == 0, shown.stderr
    assert "cluster-enabled yes" in shown.stdout and "cluster-announce-ip 10.20.0.25" in shown.stdout
    assert "replica-password-1" not in shown.stdout and "replication-password-1" not in shown.stdout


@pytest.mark.parametrize("host_count, replicas", [(6, 1), (9, 2)])
def test_the_lab_writes_a_cluster_inventory_that_validates(tmp_path, host_count, replicas):
    """`lab.up --hosts 6 --cluster 3` and `--hosts 9 --cluster 3` (the inventory half; no hosts)."""
    from types import SimpleNamespace
    from lab import inventory_file
    paths = SimpleNamespace(cache_dir=tmp_path, ssh_key=tmp_path / "key")
    (tmp_path / "key").write_text("not a key, only a readable file\n")
    hosts = [SimpleNamespace(name=f"lab{i}", address=f"10.77.0.{10 + i}") for i in range(1, host_count + 1)]
    tarball = tmp_path / "redis-7.0.15.tar.gz"
    tarball.write_bytes(b"")
    document = inventory_file.lab_inventory(paths, hosts, tarball, cluster=3)
    loaded = inventory.load(write(tmp_path, document), {})
    assert loaded.groups == () and loaded.sentinels == ()
    assert [len(shard.replicas) for shard in loaded.cluster.shards] == [replicas] * 3
    assert [shard.master for shard in loaded.cluster.shards] == ["lab1", "lab2", "lab3"]
    with pytest.raises(ValueError, match="multiple of 3"):
        inventory_file.cluster_layout([f"lab{i}" for i in range(1, 8)], 3)
    with pytest.raises(ValueError, match="at least 3 shards"):
        inventory_file.cluster_layout([f"lab{i}" for i in range(1, 7)], 2)


def test_a_cluster_node_starts_without_the_sentinel_guard_at_boot_and_under_systemd(tmp_path):
    from provision.core import plan as planner, render
    plan = planner.build(inventory.load(write(tmp_path, cluster_document()), ENVIRONMENT))
    host_plan = plan.host_plan("n4")
    block = render.rc_local_block(plan, host_plan, systemd=False)
    assert "runuser -u redis -- /app/redis/bin/redis-server /app/redis/conf/redis-6379.conf" in block
    assert "start-redis" not in block and "redis-sentinel" not in block
    unit = render.unit_files(plan, host_plan)["redis-6379.service"]
    assert "ExecStart=/app/redis/bin/redis-server /app/redis/conf/redis-6379.conf" in unit
    assert "ExecStartPre" not in unit and "--keep" not in unit and "cluster shard-1" in unit
    assert "redis-sentinel.service" not in render.unit_files(plan, host_plan)


def test_failover_names_a_shard_only_of_a_cluster_and_an_unknown_shard_is_refused(tmp_path):
    from tests.test_cli import offline
    from pathlib import Path
    top = Path(__file__).resolve().parent.parent / "inventory"
    refused = offline("failover", "-i", str(top / "prod.yml"), "--shard", "shard-1", "--check")
    assert refused.returncode == 2 and "--shard names a cluster shard" in refused.stderr, refused.stderr
    refused = offline("failover", "-i", str(top / "cluster.yml"), "--shard", "shard-9", "--check")
    assert refused.returncode == 2 and "no shard 'shard-9'" in refused.stderr and "shard-1, shard-2, shard-3" \
        in refused.stderr, refused.stderr
