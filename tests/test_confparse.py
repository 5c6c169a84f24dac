"""Comparing and patching files Redis and Sentinel rewrite, on files captured after a real
failover: only the tool's own settings count, runtime lines stay."""
from __future__ import annotations

from pathlib import Path

import pytest

from provision.core import confparse, plan as planner, render
from provision import inventory
from provision.steps import sentinel as sentinel_step


CAPTURED = Path(__file__).parent / "captured"


def test_redis_config_rewritten_after_failover_shows_no_owned_change(lab_like_plan):
    """The file Redis rewrote itself (CONFIG REWRITE at failover: save split in lines, quotes,
    a replicaof the tool never wrote) matches the tool's settings."""
    current = (CAPTURED / "redis-after-failover.conf").read_text()
    wanted = render.redis_owned_directives(lab_like_plan, lab_like_plan.host_plan("lab1").nodes[0])
    assert confparse.differing_keys(current, wanted) == []


def test_changed_setting_is_patched_in_place_keeping_runtime_lines(lab_like_plan):
    current = (CAPTURED / "redis-after-failover.conf").read_text()
    changed_plan = planner.build(inventory.Inventory(**{**lab_like_plan.inventory.__dict__,
        "redis": inventory.RedisSettings(**{**lab_like_plan.inventory.redis.__dict__, "maxmemory": "256mb"})}))
    wanted = render.redis_owned_directives(changed_plan, changed_plan.host_plan("lab1").nodes[0])
    keys = confparse.differing_keys(current, wanted)
    assert keys == [("maxmemory",)]
    patched = confparse.patch(current, wanted, keys)
    assert "maxmemory 256mb" in patched and "maxmemory 128mb" not in patched
    assert "replicaof 10.77.0.13 6379" in patched
    assert patched.count("\n") == current.count("\n")


def test_sentinel_state_file_matches_owned_settings_with_defaults_left_out(lab_like_plan):
    """Sentinel dropped `parallel-syncs 1` (its default) and moved the monitor to the new master."""
    current = render.sentinel_current_settings((CAPTURED / "sentinel-after-failover.conf").read_text())
    owned = render.sentinel_owned_directives(lab_like_plan, lab_like_plan.inventory.host("lab1"))
    assert sentinel_step._differs_all(current, owned) == [("user",), ("sentinel", "sentinel-user"), ("sentinel", "sentinel-pass")]


def test_sentinel_quorum_change_is_detected_but_monitor_address_is_not_owned(lab_like_plan):
    current = render.sentinel_current_settings((CAPTURED / "sentinel-after-failover.conf").read_text())
    group = lab_like_plan.inventory.groups[0]
    raised = planner.build(inventory.Inventory(**{**lab_like_plan.inventory.__dict__, "groups": (
        inventory.Group(**{**group.__dict__, "quorum": 3, "down_after_milliseconds": 2000}),)}))
    owned = render.sentinel_owned_directives(raised, raised.inventory.host("lab1"))
    assert ("sentinel", "quorum", "mymaster") in sentinel_step._differs_all(current, owned)


@pytest.mark.parametrize("line, key, values", [
    ("maxmemory 128mb", ("maxmemory",), ("128mb",)),
    ('save "3600 1 300 100"', ("save",), ("3600 1 300 100",)),
    ("sentinel monitor mymaster 10.0.0.1 6379 2", ("sentinel", "monitor", "mymaster"), ("10.0.0.1", "6379", "2")),
    ("sentinel myid abc", ("sentinel", "myid"), ("abc",)),
    ('logfile "/app/redis/logs/x.log"', ("logfile",), ("/app/redis/logs/x.log",)),
])
def test_directive_keys_identify_what_a_line_sets(line, key, values):
    [(_, directive)] = confparse.parse(line)
    assert (directive.key, directive.values) == (key, values)


def test_live_acl_comparison_notices_a_missing_user_and_an_open_default(lab_like_plan):
    from provision.steps.node import live_users_match
    users = lab_like_plan.inventory.acl.all_users
    good = "\n".join(["user default off resetchannels -@all"] +
                     [f"user {u.name} on #{render.password_hash(u.password.value)} ~* +@all" for u in users])
    assert live_users_match(good, users, render.password_hash)
    assert not live_users_match("\n".join(l for l in good.splitlines() if not l.startswith("user app ")), users,
                                render.password_hash)
    assert not live_users_match(good.replace("user default off", "user default on nopass"), users, render.password_hash)


@pytest.mark.parametrize("file_text, info, agrees", [
    ("port 6379\n", {"role": "master"}, True),
    ("replicaof no one\n", {"role": "master"}, True),
    ("replicaof 10.0.0.2 6379\n", {"role": "master"}, False),
    ("replicaof 10.0.0.2 6379\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, True),
    ('slaveof "10.0.0.2" 6379\n', {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, True),
    ("replicaof 10.0.0.3 6379\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, False),
    ("port 6379\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, False),
    ("replicaof no one\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, False),
])
def test_verify_compares_replicaof_in_the_file_with_the_running_role(file_text, info, agrees):
    from provision.checks.verify import replicaof_agrees
    assert replicaof_agrees(file_text, info)[0] is agrees
