"""The pure core of changing a live deployment: what is refused up front (preflight), what the
state file remembers, how running processes and Redis's defaults are read, which members a
sentinel must forget, and when a switchover may go ahead."""
from __future__ import annotations

import pytest

from provision.facts import host as facts
from provision.ops import failover
from provision import inventory
from provision.core import plan as planner, render, state
from provision.deploy import preflight
from provision.facts import topology
from provision.base.errors import InventoryError
from provision.facts.host import HostFacts, RedisProcess
from provision.steps import membership
from tests.test_inventory import base, write

ENVIRONMENT = {"PA": "admin-password-1", "PR": "replication-password-1", "PS": "sentinel-password-1",
               "PP": "app-password-1"}


def host_facts(*processes: RedisProcess, active_bin: str | None = "versions/7.0.15/bin") -> HostFacts:
    return HostFacts(os_id="debian", os_version="12", arch="x86_64", init_system="bash", active_bin=active_bin,
                     installed_version="7.0.15", missing_build_tools=(), package_manager="apt-get",
                     has_redis_user=True, processes=processes)


def server(port=6379, version="7.0.15", address="10.77.0.11", install_dir="/app/redis", sentinel=False):
    return RedisProcess(100, f"{install_dir}/versions/{version}/bin/redis-server", address, port, sentinel)


def test_running_processes_parse_with_their_release_and_address():
    lines = ["812|/app/redis/versions/7.0.15/bin/redis-server|/app/redis/bin/redis-server 10.77.0.11:6379 ",
             "813|/app/redis/versions/7.0.99/bin/redis-server|/app/redis/bin/redis-sentinel 10.77.0.11:26379 [sentinel] ",
             "814|/opt/old/bin/redis-server (deleted)|redis-server *:6380", "garbage"]
    found = facts.parse_processes(lines)
    assert [(p.pid, p.port, p.sentinel, p.address) for p in found] == [
        (812, 6379, False, "10.77.0.11"), (813, 26379, True, "10.77.0.11"), (814, 6380, False, "*")]
    assert [p.version("/app/redis") for p in found] == ["7.0.15", "7.0.99", None]
    assert found[2].exe == "/opt/old/bin/redis-server"


def test_config_get_replies_read_as_a_mapping_keeping_empty_values():
    assert facts.parse_config_get("hz\n10\nunixsocket\n\nsave\n3600 1 300 100\n") == {
        "hz": "10", "unixsocket": "", "save": "3600 1 300 100"}


def test_state_file_round_trips_and_a_damaged_one_counts_as_none():
    kept = state.HostState(previous_version="7.0.15").with_settings(6379, ["hz", "databases"])
    assert state.parse(state.format_state(kept)) == kept
    assert kept.settings == {6379: ("databases", "hz")}
    assert state.parse("") is None and state.parse("{not json") is None and state.parse("[1, 2]") is None


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


def monitored(name="mymaster", port=6379, master="10.77.0.11", replicas=("10.77.0.12", "10.77.0.13")):
    return topology.Monitored(name, (master, port), tuple((address, port) for address in replicas))


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
    assert "hosts.c.state: expected present or absent, got 'gone'" in text
    assert "'b' is state: absent (being retired); take it out of the group" in text
    assert "take it out of sentinels" in text


def test_sentinel_forgets_only_departed_members_that_are_down(lab_like_plan):
    group = lab_like_plan.inventory.groups[0]
    replicas = [{"ip": "10.77.0.12", "port": "6379", "flags": "slave"},
                {"ip": "10.77.0.14", "port": "6379", "flags": "s_down,slave,disconnected"},
                {"ip": "10.77.0.15", "port": "6379", "flags": "slave"}]
    sentinels = [{"ip": "10.77.0.12", "flags": "sentinel"}, {"ip": "10.77.0.14", "flags": "sentinel,disconnected"}]
    down, up = membership.stale_entries(lab_like_plan, group, replicas, sentinels)
    assert down == ["replica 10.77.0.14:6379", "sentinel 10.77.0.14"]
    assert up == ["replica 10.77.0.15:6379"]


def test_retired_host_loses_only_the_tools_rc_local_block():
    text = "#!/bin/sh\necho mine\n" + render.RC_LOCAL_BEGIN + "\nstart redis\n" + render.RC_LOCAL_END + "\nexit 0\n"
    assert render.without_rc_local_block(text) == "#!/bin/sh\necho mine\nexit 0\n"
    assert render.without_rc_local_block("#!/bin/sh\nexit 0\n") == "#!/bin/sh\nexit 0\n"


def test_switchover_waits_until_every_replica_has_the_whole_stream():
    behind = {"role": "master", "master_repl_offset": "900",
              "slave0": "ip=10.77.0.12,port=6379,state=online,offset=900,lag=0",
              "slave1": "ip=10.77.0.13,port=6379,state=online,offset=850,lag=0"}
    assert not failover.caught_up(behind)
    assert failover.caught_up({**behind, "slave1": "ip=10.77.0.13,port=6379,state=online,offset=900,lag=0"})
    assert not failover.caught_up({"role": "master", "master_repl_offset": "900"})       # no replica at all
    assert not failover.caught_up({**behind, "role": "slave"})


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


def test_sentinel_users_as_sentinel_writes_them_back_match_the_wanted_ones(lab_like_plan):
    """Sentinel rewrites its user lines with sanitize-payload and single commands in its own
    order: still the same users, so no ACL SETUSER on every run."""
    from provision.core import confparse
    from provision.steps import sentinel as sentinel_step
    host = lab_like_plan.inventory.host("lab1")
    wanted_text = render.sentinel_conf(lab_like_plan, host, {"mymaster": "10.77.0.11"})
    owned = render.sentinel_owned_directives(lab_like_plan, host)
    rewritten = []
    for line in wanted_text.splitlines():
        if line.startswith("user sentinel "):
            line = line.replace(render.SENTINEL_PEER_RULES, "+client|setname +publish +ping +sentinel|is-master-down-by-addr")
        elif line.startswith("user default "):
            line = line.replace("user default off", "user default off sanitize-payload")
        rewritten.append(line)
    current = render.sentinel_current_settings("\n".join(rewritten))
    assert ("user",) not in sentinel_step._differs_all(current, owned)
    changed = render.sentinel_current_settings("\n".join(rewritten).replace("+ping ", ""))
    assert ("user",) in sentinel_step._differs_all(changed, owned)
    assert confparse.parse(wanted_text)


def test_what_must_stop_on_a_host_follows_the_inventory_and_the_sentinels(tmp_path):
    from types import SimpleNamespace
    document = base()
    document["hosts"] = {f"lab{i}": {"address": f"10.77.0.1{i}"} for i in range(1, 6)}
    document["hosts"]["lab5"]["state"] = "absent"
    document["groups"] = {"mymaster": {"master": "lab1", "replicas": ["lab2"], "quorum": 2}}
    document["sentinels"] = ["lab1", "lab2", "lab3"]
    plan = planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))
    view = (monitored(replicas=("10.77.0.12", "10.77.0.13")), monitored(name="dropped", port=6380, master="10.77.0.13"))

    def run_on(name, *processes):
        return SimpleNamespace(facts=host_facts(*processes), host_plan=plan.host_plan(name), plan=plan)
    sentinel = server(port=26379, sentinel=True)
    # lab3: out of mymaster (stops), master of a group the inventory dropped (left), still a sentinel
    lab3 = run_on("lab3", server(address="10.77.0.13"), server(port=6380, address="10.77.0.13"), sentinel)
    assert membership.unwanted_processes(lab3, view) == [(6379, "no longer a member of group mymaster")]
    lab5 = run_on("lab5", server(address="10.77.0.15"), sentinel)
    assert membership.unwanted_processes(lab5, view) == [(6379, "the host is state: absent"),
                                                         (None, "the host is state: absent")]
    lab2 = run_on("lab2", server(address="10.77.0.12"), sentinel)
    assert membership.unwanted_processes(lab2, view) == []
