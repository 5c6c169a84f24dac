"""Changing a live deployment on the real lab hosts: a release upgrade together with a setting
that needs a restart, and the rollback, both under the drill's writer (0 acknowledged writes
lost, never two writable masters); a setting taken out of the inventory goes back to Redis's
default, live."""
from __future__ import annotations

import time

import pytest

from provision import cli
from provision.ops import drill, rolewatch
from lab import golden
from tests.labtools import client, deploy, run_on, start_times, variant, verify_failures, wait_for
from tests.test_restart_lab import assert_nothing_lost, master_now

pytestmark = pytest.mark.lab

SECOND_RELEASE = "7.0.99"     # the lab's 7.0.15 source, rebuilt saying another version


def running_versions(lab_inventory) -> dict[str, str]:
    return {host: client(lab_inventory, host).info("server")["redis_version"] for host in ("lab1", "lab2", "lab3")}


def sentinel_versions(lab_inventory) -> dict[str, str]:
    from tests.labtools import sentinel_client
    return {host: sentinel_client(lab_inventory, host).info("server")["redis_version"] for host in ("lab1", "lab2", "lab3")}


def upgraded_inventory(lab, lab_paths, tmp_path):
    tarball, digest = golden.patched_release(lab_paths, SECOND_RELEASE)

    def change(document):
        document["redis"]["version"] = SECOND_RELEASE
        document["redis"]["source"] = {"tarball": str(tarball), "sha256": digest}
        document["redis"]["settings"] = {"databases": 32}          # cannot change live
    return variant(lab, tmp_path, change)


def restarted_in_order(before, after, master) -> list[str]:
    """The hosts whose redis-server restarted, in the order they started again."""
    restarted = {key.split(":")[0]: int(after[key]) for key in after
                 if key.endswith("redis-6379.pid") and after[key] != before.get(key)}
    return sorted(restarted, key=restarted.get)


def test_upgrade_with_a_restart_setting_rolls_one_node_at_a_time_losing_nothing(deployed_lab, lab, lab_paths,
                                                                              lab_inventory, artifact_dir, tmp_path):
    upgraded = upgraded_inventory(lab, lab_paths, tmp_path)
    group = deployed_lab.inventory.groups[0]
    master = master_now(lab_inventory)
    before = start_times(lab_inventory)
    with drill.writing(deployed_lab, group) as (run_id, log), rolewatch.RoleWatch(deployed_lab, group) as watch:
        time.sleep(1)
        started = time.monotonic()
        report, output = deploy(upgraded, artifact_dir)
        seconds = time.monotonic() - started
        time.sleep(1)
    assert report.ok, output
    print(f"upgrade to {SECOND_RELEASE} under writes: {seconds:.1f}s, {len(log.acknowledged)} acknowledged, "
          f"longest gap {drill.longest_gap(log.success_times, 0):.1f}s")
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(deployed_lab, group, run_id, log)
    assert running_versions(lab_inventory) == dict.fromkeys(("lab1", "lab2", "lab3"), SECOND_RELEASE)
    assert sentinel_versions(lab_inventory) == dict.fromkeys(("lab1", "lab2", "lab3"), SECOND_RELEASE)
    # One node at a time, the master last, after handing over through Sentinel.
    order = restarted_in_order(before, start_times(lab_inventory), master)
    assert len(order) == 3 and order[-1] == master, (order, output)
    assert output.index("SENTINEL FAILOVER mymaster before restarting this master") < output.index(
        f"{master}: start: restart redis-server")
    assert report.masters["mymaster"] != master
    assert all(client(lab_inventory, host).config_get("databases")["databases"] == "32" for host in ("lab1", "lab2", "lab3"))
    wait_for(lambda: not verify_failures(upgraded), 60, "verify to pass on the new release", interval=1)
    stale = {(result.host, result.check) for result in verify_failures(lab)}       # the old inventory
    assert {("lab1", "redis :6379 release"), ("lab2", "sentinel release")} <= stale, stale
    again, output = deploy(upgraded, artifact_dir)
    assert again.ok and again.changed == 0, output


def test_rollback_goes_back_the_same_way_losing_nothing(lab, lab_paths, lab_inventory, artifact_dir, tmp_path):
    upgraded = upgraded_inventory(lab, lab_paths, tmp_path)
    assert running_versions(lab_inventory) == dict.fromkeys(("lab1", "lab2", "lab3"), SECOND_RELEASE), \
        "runs after the upgrade test"
    plan = cli.load_plan(str(upgraded))
    group = plan.inventory.groups[0]
    master = master_now(lab_inventory)
    before = start_times(lab_inventory)
    assert cli.previous_release(str(upgraded)) == golden.REDIS_SOURCE_VERSION
    with drill.writing(plan, group) as (run_id, log), rolewatch.RoleWatch(plan, group) as watch:
        time.sleep(1)
        started = time.monotonic()
        lines: list[str] = []
        report = cli.deploy(str(upgraded), artifact_dir=str(artifact_dir), say=lines.append,
                            version=cli.previous_release(str(upgraded)))
        seconds = time.monotonic() - started
        time.sleep(1)
    output = "\n".join(lines)
    assert report.ok, output
    print(f"rollback to {golden.REDIS_SOURCE_VERSION} under writes: {seconds:.1f}s, {len(log.acknowledged)} "
          f"acknowledged, longest gap {drill.longest_gap(log.success_times, 0):.1f}s")
    assert not any("build Redis" in change.action for outcome in report.outcomes for change in outcome.changes), \
        "the previous release's binaries are still on the hosts"
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(plan, group, run_id, log)
    assert running_versions(lab_inventory) == dict.fromkeys(("lab1", "lab2", "lab3"), golden.REDIS_SOURCE_VERSION)
    order = restarted_in_order(before, start_times(lab_inventory), master)
    assert len(order) == 3 and order[-1] == master, (order, output)
    assert "note: the inventory still says redis.version 7.0.99" in output
    # Back on the lab's inventory: `databases` was taken out of it, and needs a restart to revert.
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    assert all(client(lab_inventory, host).config_get("databases")["databases"] == "16" for host in ("lab1", "lab2", "lab3"))
    wait_for(lambda: not verify_failures(lab), 60, "verify to pass", interval=1)


def test_a_setting_taken_out_of_the_inventory_goes_back_to_the_default_live(deployed_lab, lab, lab_inventory,
                                                                          artifact_dir, tmp_path):
    def add(document):
        document["redis"]["settings"] = {"hz": 25, "lazyfree-lazy-eviction": "yes"}
        document["acl"]["users"]["reporting"] = {"password_file": document["acl"]["users"]["app"]["password_file"],
                                                 "rules": "~report:* +@read"}
    with_settings = variant(lab, tmp_path, add)
    report, output = deploy(with_settings, artifact_dir)
    assert report.ok, output
    assert client(lab_inventory, "lab2").config_get("hz")["hz"] == "25"
    assert client(lab_inventory, "lab2").acl_getuser("reporting") is not None
    before = start_times(lab_inventory)
    check, output = deploy(lab, artifact_dir, check=True, diff=True)
    assert check.ok and "would CONFIG SET hz back to Redis's default" in output and "-hz 25" in output, output
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    for host in ("lab1", "lab2", "lab3"):
        assert client(lab_inventory, host).config_get("hz")["hz"] == "10"
        assert client(lab_inventory, host).config_get("lazyfree-lazy-eviction")["lazyfree-lazy-eviction"] == "no"
        assert client(lab_inventory, host).acl_getuser("reporting") is None       # ACL LOAD dropped it
    assert start_times(lab_inventory) == before, "reverted live, nothing restarted"
    again, output = deploy(lab, artifact_dir)
    assert again.ok and again.changed == 0, output


def test_a_port_change_is_refused_before_any_host_is_touched(deployed_lab, lab, lab_inventory, artifact_dir, tmp_path):
    moved = variant(lab, tmp_path, lambda d: [group.__setitem__("port", 6380) for group in d["groups"].values()])
    before = start_times(lab_inventory)
    report, output = deploy(moved, artifact_dir)
    assert not report.ok and report.changed == 0, output
    assert {getattr(outcome.error, "step", None) for outcome in report.outcomes} == {"preflight"}
    assert "group mymaster: runs on port 6379 (the sentinels monitor it there), the inventory says 6380" in output
    assert start_times(lab_inventory) == before


def test_a_setting_the_release_does_not_know_is_refused_before_any_config_is_written(deployed_lab, lab, lab_inventory,
                                                                                      artifact_dir, tmp_path):
    """`timout` passes the offline validation (any directive-shaped name does) and would stop
    Redis at its next start; the release's own list refuses it on every host first."""
    def mistype(document):
        document["redis"]["settings"] = {"timout": 300, "hz": 25}
        document["hosts"]["lab2"].setdefault("redis", {})["settings"] = {"maxmemory-polcy": "noeviction"}
    mistyped = variant(lab, tmp_path, mistype)
    before = start_times(lab_inventory)
    conf_before = {host: run_on(lab_inventory, host, "cat /app/redis/conf/redis-6379.conf") for host in ("lab1", "lab2", "lab3")}
    check, output = deploy(mistyped, artifact_dir, check=True)
    assert not check.ok and "redis.settings.timout: Redis 7.0.15 has no directive 'timout'; did you mean 'timeout'?" \
        in output, output
    report, output = deploy(mistyped, artifact_dir)
    assert not report.ok and report.changed == 0, output
    assert {getattr(outcome.error, "step", None) for outcome in report.outcomes} == {"settings"}
    assert "hosts.lab2.redis.settings.maxmemory-polcy: Redis 7.0.15 has no directive 'maxmemory-polcy'; did you mean " \
           "'maxmemory-policy'?" in output, output
    assert "'hz'" not in output
    assert start_times(lab_inventory) == before
    assert {host: run_on(lab_inventory, host, "cat /app/redis/conf/redis-6379.conf") for host in ("lab1", "lab2", "lab3")} \
        == conf_before
