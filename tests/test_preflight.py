"""What a deploy refuses before it touches a host: a major release, a moved install dir or
address, a regrouping, a departing master, an absent host still named."""
from __future__ import annotations

import pytest

from provision import inventory
from provision.core import plan as planner
from provision.deploy import preflight
from provision.facts import topology
from provision.base.errors import InventoryError
from provision.facts.host import HostFacts, RedisProcess
from tests.test_inventory import base, write


ENVIRONMENT = {"PA": "admin-password-1", "PR": "replication-password-1", "PS": "sentinel-password-1",
               "PP": "app-password-1"}


def host_facts(*processes: RedisProcess, active_bin: str | None = "versions/7.0.15/bin") -> HostFacts:
    return HostFacts(os_id="debian", os_version="12", arch="x86_64", init_system="bash", active_bin=active_bin,
                     installed_version="7.0.15", missing_build_tools=(), package_manager="apt-get",
                     has_redis_user=True, processes=processes)


def server(port=6379, version="7.0.15", address="10.77.0.11", install_dir="/app/redis", sentinel=False):
    return RedisProcess(100, f"{install_dir}/versions/{version}/bin/redis-server", address, port, sentinel)


def monitored(name="mymaster", port=6379, master="10.77.0.11", replicas=("10.77.0.12", "10.77.0.13")):
    return topology.Monitored(name, (master, port), tuple((address, port) for address in replicas))


def test_cross_major_release_is_refused_unless_allowed(lab_like_plan):
    from dataclasses import replace
    plan = replace(lab_like_plan, inventory=replace(lab_like_plan.inventory,
                                                    redis=replace(lab_like_plan.inventory.redis, version="7.2.4")))
    same_major = {"lab1": host_facts(server())}
    assert preflight.version_problems(plan, same_major, allow_major=False) == []
    older = {"lab1": host_facts(server(version="6.2.14"), active_bin="versions/6.2.14/bin")}
    problems = preflight.version_problems(plan, older, allow_major=False)
    assert len(problems) == 1 and "lab1 runs Redis 6.2.14" in problems[0] and "--allow-major" in problems[0]
    assert preflight.version_problems(plan, older, allow_major=True) == []


def test_moving_install_dir_or_address_is_refused_naming_the_process(lab_like_plan):
    moved = {"lab1": host_facts(server(install_dir="/opt/redis")),
             "lab2": host_facts(server(address="10.9.9.9")),
             "lab3": host_facts(server(address="10.77.0.13"))}
    problems = preflight.move_problems(lab_like_plan, moved)
    assert len(problems) == 2
    assert problems[0].startswith("lab1: redis-server :6379 runs /opt/redis/versions/7.0.15/bin/redis-server, "
                                  "outside install_dir /app/redis")
    assert problems[1].startswith("lab2: redis-server :6379 listens on 10.9.9.9")


def test_regrouping_and_port_changes_are_refused_before_anything_runs(tmp_path):
    document = base()
    document["hosts"] = {f"lab{i}": {"address": f"10.77.0.1{i}"} for i in range(1, 7)}
    document["groups"] = {"mymaster": {"master": "lab1", "replicas": ["lab2", "lab3"], "quorum": 2},
                          "second": {"master": "lab4", "replicas": ["lab5", "lab6"], "quorum": 2}}
    document["sentinels"] = ["lab1", "lab2", "lab3"]
    plan = planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))
    one_group = monitored(replicas=("10.77.0.12", "10.77.0.13", "10.77.0.14", "10.77.0.15", "10.77.0.16"))
    problems = preflight.group_problems(plan, (one_group,))
    assert [problem.split(" ")[0] for problem in problems] == ["lab4:6379", "lab5:6379", "lab6:6379"]
    assert "is a member of group mymaster (the sentinels say), the inventory puts it in second" in problems[0]
    assert preflight.group_problems(plan, (monitored(),)) == []
    moved_port = preflight.group_problems(plan, (monitored(port=6380),))
    assert len(moved_port) == 1 and "group mymaster: runs on port 6380" in moved_port[0]


def test_a_departing_master_is_refused_until_handed_over(tmp_path):
    document = base()
    document["hosts"] = {f"lab{i}": {"address": f"10.77.0.1{i}"} for i in range(1, 5)}
    document["hosts"]["lab4"]["state"] = "absent"
    document["groups"] = {"mymaster": {"master": "lab1", "replicas": ["lab2", "lab3"], "quorum": 2}}
    document["sentinels"] = ["lab1", "lab2", "lab3"]
    plan = planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))
    assert [host_plan.host.name for host_plan in plan.hosts if host_plan.retiring] == ["lab4"]
    problems = preflight.departing_master_problems(plan, (monitored(master="10.77.0.14"),))
    assert len(problems) == 1 and problems[0].startswith("lab4 is state: absent, but it is mymaster's master now")
    assert preflight.departing_master_problems(plan, (monitored(),)) == []


def test_an_absent_host_still_named_in_a_group_or_sentinels_is_an_inventory_error(tmp_path):
    document = base()
    document["hosts"]["b"]["state"] = "absent"
    document["hosts"]["c"]["state"] = "gone"
    with pytest.raises(InventoryError) as raised:
        inventory.load(write(tmp_path, document), ENVIRONMENT)
    text = str(raised.value)
    assert "hosts.c.state: expected one of present, absent, got 'gone'" in text
    assert "'b' is state: absent (being retired); take it out of the group" in text
    assert "take it out of sentinels" in text


def test_upgrade_takes_its_source_from_the_release_table(tmp_path):
    document = base()
    document["redis"]["releases"] = {"7.2.4": {"url": "https://example.invalid/redis-7.2.4.tar.gz", "sha256": "b" * 64}}
    loaded = inventory.load(write(tmp_path, document), ENVIRONMENT)
    assert loaded.redis.with_release("7.2.4").source.url.endswith("redis-7.2.4.tar.gz")
    assert loaded.redis.with_release("7.0.15").source == loaded.redis.source
    assert loaded.redis.with_release("7.0.11").source is None
    document["redis"]["releases"] = {"7.2": {"url": "ftp://x", "sha256": "short"}}
    with pytest.raises(InventoryError) as raised:
        inventory.load(write(tmp_path, document), ENVIRONMENT)
    assert "redis.releases.7.2: expected a release such as" in str(raised.value)
