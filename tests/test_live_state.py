"""What a running deployment tells the tool: running processes and their release, Redis's
defaults, the state file, the sentinel's users as it writes them back, and when a switchover
may go ahead."""
from __future__ import annotations

from provision.facts import host as facts
from provision.ops import failover
from provision.core import render, state
from provision.facts.host import RedisProcess


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


def test_switchover_waits_until_every_replica_has_the_whole_stream():
    behind = {"role": "master", "master_repl_offset": "900",
              "slave0": "ip=10.77.0.12,port=6379,state=online,offset=900,lag=0",
              "slave1": "ip=10.77.0.13,port=6379,state=online,offset=850,lag=0"}
    assert not failover.caught_up(behind)
    assert failover.caught_up({**behind, "slave1": "ip=10.77.0.13,port=6379,state=online,offset=900,lag=0"})
    assert not failover.caught_up({"role": "master", "master_repl_offset": "900"})       # no replica at all
    assert not failover.caught_up({**behind, "role": "slave"})


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
