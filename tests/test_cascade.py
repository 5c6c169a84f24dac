"""The pure parts of the freshness fence and the cascade drill: which node promote picks, the
order a cascade reboots hosts in, and what the start guard is rendered with."""
from __future__ import annotations

import pytest

from provision.base import directives
from provision.ops import drill
from provision.core import render
from provision.base.errors import ProvisionError, UsageError
from provision.ops.promote import Candidate, choose, last_append_time


def candidate(host, last_append):
    return Candidate(host, "slave", "down", "0", last_append)


def test_promote_picks_the_node_that_appended_to_its_aof_last():
    assert choose([candidate("lab2", 100.0), candidate("lab3", 104.0)], None, False).host == "lab3"


def test_promote_refuses_a_named_node_that_is_staler_than_another():
    with pytest.raises(ProvisionError, match="lab2 is not the freshest reachable node: lab3"):
        choose([candidate("lab2", 100.0), candidate("lab3", 104.0)], "lab2", False)
    assert choose([candidate("lab2", 100.0), candidate("lab3", 104.0)], "lab2", True).host == "lab2"


def test_promote_will_not_guess_between_nodes_that_stopped_at_the_same_moment():
    with pytest.raises(ProvisionError, match="name the node to promote with --host"):
        choose([candidate("lab2", 100.0), candidate("lab3", 100.2)], None, False)
    assert choose([candidate("lab2", 100.0), candidate("lab3", 100.2)], "lab2", False).host == "lab2"


def test_promote_refuses_when_no_node_shows_its_freshness_or_the_host_is_unknown():
    with pytest.raises(ProvisionError, match="name one with --host"):
        choose([candidate("lab2", None)], None, False)
    with pytest.raises(UsageError, match="--host lab9"):
        choose([candidate("lab2", 1.0)], "lab9", False)


def test_last_append_time_is_the_newest_aof_file():
    assert last_append_time("1700000000.250000000\n1700000004.500000000\n") == 1700000004.5
    assert last_append_time("") is None


class FakeGroup:
    name = "mymaster"
    members = ("lab1", "lab2", "lab3")


@pytest.mark.parametrize("order, expected", [
    ("replica,master,replica", ["lab2", "lab1", "lab3"]),
    ("master,replica,replica", ["lab1", "lab2", "lab3"]),
    ("replica,replica,master", ["lab2", "lab3", "lab1"]),
])
def test_cascade_reboots_the_master_at_the_place_the_order_names(order, expected):
    assert drill.cascade_hosts(FakeGroup(), "lab1", order) == expected


def test_cascade_refuses_an_order_it_does_not_know():
    with pytest.raises(UsageError, match="--order must be one of"):
        drill.cascade_hosts(FakeGroup(), "lab1", "master,master,replica")


def test_start_guard_fences_every_start_and_knows_the_other_nodes(lab_like_plan):
    script = render.start_script(lab_like_plan, lab_like_plan.hosts[0])
    assert 'printf "replica-priority 0\\n"' in script
    assert "others='10.77.0.12 10.77.0.13'" in script
    assert f"promotable_priority={render.PROMOTABLE_PRIORITY}" in script
    assert "none_promotable; then" in script


def test_systemd_unit_starts_the_keeper_after_the_server(lab_like_plan):
    unit = render.unit_files(lab_like_plan, lab_like_plan.hosts[0])["redis-6379.service"]
    assert "ExecStartPost=+/app/redis/boot/start-redis 6379 --keep" in unit


def test_the_fence_is_the_tools_own_setting():
    assert {"replica-priority", "slave-priority"} <= directives.reserved_settings()
    assert directives.redis_runtime_owned(("replica-priority",))


def test_verify_wants_linked_replicas_promotable_and_masters_fenced():
    from provision.checks.verify import fence_as_wanted
    assert fence_as_wanted({"role": "master"}, "0")[0]
    assert not fence_as_wanted({"role": "master"}, "100")[0]
    assert fence_as_wanted({"role": "slave", "master_link_status": "up"}, "100")[0]
    ok, detail = fence_as_wanted({"role": "slave", "master_link_status": "up"}, "0")
    assert not ok and "keeper" in detail
    assert fence_as_wanted({"role": "slave", "master_link_status": "down"}, "0")[0]


def test_a_handover_waits_for_sentinel_to_see_a_replica_it_may_promote():
    from provision.ops.failover import promotable
    linked = {"name": "10.77.0.12:6379", "flags": "slave", "master-link-status": "ok", "slave-priority": "100"}
    assert promotable(linked)
    assert not promotable({**linked, "slave-priority": "0"})                 # fenced, or seen fenced
    assert not promotable({**linked, "master-link-status": "err"})
    assert not promotable({**linked, "flags": "s_down,slave,disconnected"})


def test_a_partition_drill_on_a_host_outside_the_lab_needs_its_own_allowance(lab_like_plan):
    from provision.ops.drill import _require_rebootable
    with pytest.raises(UsageError, match="--mode partition cuts its network for real; pass --allow-partition"):
        _require_rebootable(lab_like_plan, "lab1", False, None, "--mode partition cuts its network", "--allow-partition")
    _require_rebootable(lab_like_plan, "lab1", True, None, "--mode partition cuts its network", "--allow-partition")
