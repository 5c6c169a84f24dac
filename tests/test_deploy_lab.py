"""`invoke deploy` on three real lab hosts: fresh, again, with --check --diff, after a failover,
with a bad source, with a host gone, with a config Redis refuses."""
from __future__ import annotations

from pathlib import Path

import pytest
import redis

from provision import cli
from lab import hosts as lab_hosts
from tests.labtools import (run_on, sentinel_client, client, deploy, master_per_sentinel, settled_after_failover, start_times, variant,
                            verify_failures, wait_for)

pytestmark = pytest.mark.lab


def test_fresh_deploy_builds_once_and_gives_a_healthy_replicated_group(bare_lab, lab_inventory, artifact_dir):
    """Bare hosts and an empty artifact cache (the later tests of this module build on this
    deployment and reuse the cache)."""
    for stale in artifact_dir.iterdir():
        stale.unlink()
    lab = bare_lab
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    actions = {outcome.host: [change.action for change in outcome.changes] for outcome in report.outcomes}
    builders = [host for host, done in actions.items() if any(a.startswith("build Redis") for a in done)]
    shipped = [host for host, done in actions.items() if any("from the build cache" in a for a in done)]
    assert len(builders) == 1 and sorted(builders + shipped) == ["lab1", "lab2", "lab3"], actions
    assert len(list(artifact_dir.glob("*.tar.gz"))) == 1 and len(list(artifact_dir.glob("*.sha256"))) == 1

    assert client(lab_inventory, "lab1").info("replication")["role"] == "master"
    for replica in ("lab2", "lab3"):
        info = client(lab_inventory, replica).info("replication")
        assert info["role"] == "slave" and info["master_host"] == "10.77.0.11" and info["master_link_status"] == "up"
    wait_for(lambda: set(master_per_sentinel(lab_inventory).values()) == {"10.77.0.11"}, 30, "sentinels agree")
    assert verify_failures(lab) == []


def test_acl_users_work_as_granted_and_the_default_user_is_closed(lab_inventory):
    app = client(lab_inventory, "lab1", user="app")
    assert app.set("app:greeting", "hello") is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.set("other:key", "x")                      # outside the app's key pattern
    with pytest.raises(redis.exceptions.NoPermissionError):
        client(lab_inventory, "lab1", user="replicator").set("app:x", "1")
    with pytest.raises(redis.exceptions.AuthenticationError):
        client(lab_inventory, "lab1", user=None).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):   # sentinels too: no anonymous FAILOVER
        client(lab_inventory, "lab1", user=None, port=26379).ping()
    assert sentinel_client(lab_inventory, "lab1").ping()
    for replica in ("lab2", "lab3"):
        wait_for(lambda replica=replica: client(lab_inventory, replica, user="app").get("app:greeting") == "hello",
                 5, f"the key on {replica}")


def test_kernel_tuning_and_thp_are_set_live_and_persistently(lab_inventory):
    for host in ("lab1", "lab2", "lab3"):
        output = run_on(lab_inventory, host, "sysctl -n net.core.somaxconn vm.overcommit_memory net.ipv4.tcp_max_syn_backlog; "
                                            "cat /sys/kernel/mm/transparent_hugepage/enabled; test -x /etc/rc.local && echo rc-ok; "
                                            "cat /etc/sysctl.d/90-redis-provision.conf")
        assert output.split()[:6] == ["1024", "1", "1024", "never", "rc-ok", "#"], output


def test_no_secret_in_any_process_argv_on_the_hosts(lab_inventory):
    passwords = [user.password.value for user in lab_inventory.acl.all_users]
    for host in ("lab1", "lab2", "lab3"):
        argv = run_on(lab_inventory, host, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
        assert not any(password in argv for password in passwords)


def test_second_deploy_changes_nothing_and_restarts_nothing(lab, lab_inventory, artifact_dir):
    before = start_times(lab_inventory)
    assert len(before) == 6
    report, output = deploy(lab, artifact_dir)
    assert report.ok and report.changed == 0, output
    assert "changed=" not in output
    assert start_times(lab_inventory) == before


def keeper_state(lab_inventory, host: str) -> tuple[str, str, str]:
    """(keeper pid, the digest it says it runs, the digest of start-redis now) on a host."""
    found = run_on(lab_inventory, host,
                   "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null | "
                   "grep -qx -- '.* /app/redis/boot/start-redis 6379 --keeper ' && echo ${d#/proc/}; done; "
                   "cat /app/redis/boot/keep-redis-6379.sha256; sha256sum < /app/redis/boot/start-redis")
    pid, said, now = (line.split()[0] for line in found.split("\n") if line.strip())
    return pid, said, now


def test_deploy_replaces_a_keeper_that_runs_an_older_start_redis_without_restarting_redis(
        lab, lab_inventory, artifact_dir):
    """A running shell keeps the code it started with: a keeper started from an earlier
    start-redis would miss what deploy brings it (the stall watch, mending a split sentinel)."""
    host = "lab2"
    run_on(lab_inventory, host,
           "echo '# an earlier start-redis' >> /app/redis/boot/start-redis; "
           "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null | "
           "grep -qx -- '.* /app/redis/boot/start-redis 6379 --keeper ' && kill ${d#/proc/}; done; "
           "sleep 1.5; /app/redis/boot/start-redis 6379 --keep; sleep 1")
    old_pid, said, now = keeper_state(lab_inventory, host)
    assert said == now
    before = start_times(lab_inventory)
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    assert "replace the keeper of redis-server :6379: it runs an older start-redis" in output
    pid, said, now = keeper_state(lab_inventory, host)
    assert pid != old_pid and said == now
    assert start_times(lab_inventory) == before
    report, output = deploy(lab, artifact_dir)
    assert report.ok and report.changed == 0, output


def test_deploy_as_a_sudo_user_converges_and_changes_live(lab, lab_inventory, artifact_dir, tmp_path):
    """The same deployment driven by the unprivileged `ops` user through `sudo -n`."""
    def as_ops(document, maxmemory="128mb"):
        for host in document["hosts"].values():
            host.update(user="ops", sudo=True)
        document["redis"]["maxmemory"] = maxmemory
    before = start_times(lab_inventory)
    report, output = deploy(variant(lab, tmp_path, as_ops), artifact_dir)
    assert report.ok and report.changed == 0, output
    report, output = deploy(variant(lab, tmp_path, lambda d: as_ops(d, "192mb")), artifact_dir)
    assert report.ok and "CONFIG SET maxmemory" in output, output
    assert client(lab_inventory, "lab2").config_get("maxmemory")["maxmemory"] == str(192 * 1024 * 1024)
    report, output = deploy(lab, artifact_dir)
    assert report.ok and start_times(lab_inventory) == before, output
    from dataclasses import replace
    from provision.ssh import remote
    ops = remote.connect(replace(lab_inventory.host("lab1"), user="ops", sudo=True), lab_inventory.controller)
    try:
        local = tmp_path / "users.acl"
        ops.download("probe", "/app/redis/conf/users.acl", str(local))   # root-only dir, redis-owned 0640 file
        assert local.read_text().startswith("user default off")
        assert ops.run("ls /tmp/.provision-download-* 2>/dev/null").stdout == ""
    finally:
        ops.close()


def test_check_diff_after_editing_a_setting_shows_the_diff_and_changes_nothing(lab, lab_inventory, artifact_dir, tmp_path):
    edited = variant(lab, tmp_path, lambda d: d["redis"].__setitem__("maxmemory", "256mb"))
    report, output = deploy(edited, artifact_dir, check=True, diff=True)
    # per host: the file written and the CONFIG SET that follows, as a real run records them
    assert report.ok and report.changed == 6, output
    assert output.count("would CONFIG SET maxmemory on the running server") == 3, output
    assert "-maxmemory 128mb" in output and "+maxmemory 256mb" in output
    assert "check mode: nothing was changed" in output
    assert not any(user.password.value in output for user in lab_inventory.acl.all_users)
    for host in ("lab1", "lab2", "lab3"):
        assert "maxmemory 128mb" in run_on(lab_inventory, host, "cat /app/redis/conf/redis-6379.conf")
        assert client(lab_inventory, host).config_get("maxmemory")["maxmemory"] == str(128 * 1024 * 1024)


def test_live_settable_change_is_applied_without_a_restart(lab, lab_inventory, artifact_dir, tmp_path):
    before = start_times(lab_inventory)
    edited = variant(lab, tmp_path, lambda d: d["redis"].__setitem__("maxmemory", "256mb"))
    report, output = deploy(edited, artifact_dir)
    assert report.ok and "CONFIG SET maxmemory" in output, output
    for host in ("lab1", "lab2", "lab3"):
        assert client(lab_inventory, host).config_get("maxmemory")["maxmemory"] == str(256 * 1024 * 1024)
    assert start_times(lab_inventory) == before
    report, output = deploy(lab, artifact_dir)
    assert report.ok and report.changed == 6 and start_times(lab_inventory) == before, output


def test_a_host_override_changes_only_that_host_live_and_a_rerun_changes_nothing(deployed_lab, lab, lab_inventory,
                                                                                artifact_dir, tmp_path):
    """hosts.lab2.redis.maxmemory and a group setting beat the global section, live."""
    before = start_times(lab_inventory)

    def bigger_lab2(document):
        document["hosts"]["lab2"]["redis"] = {"maxmemory": "256mb"}
        document["groups"]["mymaster"]["redis"] = {"settings": {"maxclients": 9000}}
    edited = variant(lab, tmp_path, bigger_lab2)
    report, output = deploy(edited, artifact_dir)
    assert report.ok, output
    sizes = {host: client(lab_inventory, host).config_get("maxmemory")["maxmemory"] for host in ("lab1", "lab2", "lab3")}
    assert sizes == {"lab1": str(128 * 1024 * 1024), "lab2": str(256 * 1024 * 1024), "lab3": str(128 * 1024 * 1024)}
    assert {client(lab_inventory, host).config_get("maxclients")["maxclients"] for host in ("lab1", "lab2", "lab3")} \
        == {"9000"}
    assert start_times(lab_inventory) == before                  # all of it live, nothing restarted
    again, output = deploy(edited, artifact_dir)
    assert again.ok and again.changed == 0, output
    lines: list[str] = []
    assert cli.verify(str(edited), say=lines.append), "\n".join(lines)
    restored, output = deploy(lab, artifact_dir)                 # back to the lab's own inventory
    assert restored.ok, output


def test_rerun_after_failover_keeps_the_new_master_and_restarts_nothing(lab, lab_inventory, artifact_dir):
    sentinel = sentinel_client(lab_inventory, "lab2")
    assert sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster") in ("OK", b"OK", True)
    new_master = settled_after_failover(lab_inventory, "lab1")
    before = start_times(lab_inventory)
    replicaof_before = {h: run_on(lab_inventory, h, "grep '^replicaof' /app/redis/conf/redis-6379.conf || true")
                        for h in ("lab1", "lab2", "lab3")}
    report, output = deploy(lab, artifact_dir)
    assert report.ok and report.masters == {"mymaster": new_master}, output
    assert report.changed == 0, output
    assert start_times(lab_inventory) == before
    assert {h: run_on(lab_inventory, h, "grep '^replicaof' /app/redis/conf/redis-6379.conf || true")
            for h in ("lab1", "lab2", "lab3")} == replicaof_before
    assert client(lab_inventory, new_master).info("replication")["role"] == "master"
    assert [n for n in ("lab1", "lab2", "lab3") if client(lab_inventory, n).info("replication")["role"] == "master"] == [new_master]
    assert verify_failures(lab) == []


def test_sha256_mismatch_is_refused_and_the_installed_version_stays(lab, lab_inventory, artifact_dir, tmp_path):
    def bad_source(document):
        # A source named for its release (validation refuses one named for another), whose
        # sha256 is wrong: the host must refuse it.
        source = document["redis"]["source"]
        if "tarball" in source:
            named = tmp_path / "redis-7.0.16.tar.gz"
            named.symlink_to(Path(lab).parent / source["tarball"])     # an absolute path stays as it is
            source["tarball"] = str(named)
        else:
            source["url"] = source["url"].replace("7.0.15", "7.0.16")
        document["redis"]["version"] = "7.0.16"
        source["sha256"] = "0" * 64
    report, output = deploy(variant(lab, tmp_path, bad_source), artifact_dir)
    assert not report.ok
    failed = {outcome.host: outcome.error for outcome in report.outcomes if outcome.failed}
    assert set(failed) == {"lab1", "lab2", "lab3"}
    assert any("sha256 mismatch" in str(error) and "untouched" in str(error) for error in failed.values()), output
    for host in ("lab1", "lab2", "lab3"):
        assert run_on(lab_inventory, host, "readlink /app/redis/bin").strip() == "versions/7.0.15/bin"
        assert not run_on(lab_inventory, host, "ls /app/redis/versions").split() == []
        assert "7.0.16" not in run_on(lab_inventory, host, "ls /app/redis/versions")
    assert verify_failures(lab) == []


def test_unreachable_host_is_named_and_the_others_finish(lab, lab_paths, lab_inventory, artifact_dir, tmp_path):
    """A replica's host goes away (cutting the master would rightly start a failover)."""
    replica = next(n for n in ("lab3", "lab2", "lab1") if client(lab_inventory, n).info("replication")["role"] == "slave")
    quick = variant(lab, tmp_path, lambda d: d["controller"].__setitem__("connect_timeout", 2))
    lab_hosts.cut_network(lab_paths, replica)
    try:
        report, output = deploy(quick, artifact_dir)
    finally:
        lab_hosts.restore_network(lab_paths, replica)
    # Skipped and named, not a failure: the reachable hosts converge and the run exits 0.
    assert report.ok and report.unreachable == (replica,), output
    skipped = next(outcome for outcome in report.outcomes if outcome.host == replica)
    assert skipped.error.step == "connect" and lab_inventory.host(replica).address in str(skipped.error)
    assert f"UNREACHABLE {replica}" in output and "UNREACHABLE (skipped)" in output
    report, output = deploy(lab, artifact_dir)
    assert report.ok and report.changed == 0, output


def test_config_that_keeps_redis_from_starting_is_rolled_back(lab, lab_inventory, artifact_dir, tmp_path):
    """A setting Redis cannot take live, with a value it refuses at start: the node gets its
    previous config back and runs again, and the failure is reported with Redis's own words."""
    replica = next(n for n in ("lab2", "lab3") if client(lab_inventory, n).info("replication")["role"] == "slave")
    broken = variant(lab, tmp_path, lambda d: d["redis"].__setitem__("settings", {"databases": 0}))
    report, output = deploy(broken, artifact_dir, limit=replica)
    assert not report.ok
    error = str(next(outcome.error for outcome in report.outcomes if outcome.failed))
    assert "rolled back" in error and "runs with the previous config" in error, error
    assert "databases 0" not in run_on(lab_inventory, replica, "cat /app/redis/conf/redis-6379.conf")
    wait_for(lambda: client(lab_inventory, replica).info("replication")["master_link_status"] == "up", 30, "link up")
    report, output = deploy(lab, artifact_dir)
    assert report.ok and report.changed == 0, output


def test_setting_that_needs_a_restart_restarts_replicas_first_then_hands_the_master_over(lab, lab_inventory, artifact_dir, tmp_path):
    master = next(n for n in ("lab1", "lab2", "lab3") if client(lab_inventory, n).info("replication")["role"] == "master")
    before = start_times(lab_inventory)
    report, output = deploy(variant(lab, tmp_path, lambda d: d["redis"].__setitem__("settings", {"databases": 32})),
                            artifact_dir)
    assert report.ok, output
    # The master hands over through Sentinel before its own restart, then comes back as a replica.
    assert "SENTINEL FAILOVER mymaster before restarting this master (databases cannot change live)" in output
    assert report.masters["mymaster"] != master
    info = client(lab_inventory, master).info("replication")
    assert info["role"] == "slave" and info["master_link_status"] == "up"
    after = start_times(lab_inventory)
    restarted = {key: int(after[key]) for key in after if key.endswith("redis-6379.pid") and after[key] != before[key]}
    assert len(restarted) == 3, (before, after)
    replicas = [key for key in restarted if not key.startswith(master)]
    assert all(restarted[key] < restarted[f"{master}:redis-6379.pid"] for key in replicas), restarted
    assert restarted[replicas[0]] != restarted[replicas[1]]
    assert all(after[k] == before[k] for k in after if k.endswith("sentinel.pid"))
    for host in ("lab1", "lab2", "lab3"):
        assert client(lab_inventory, host).config_get("databases")["databases"] == "32"
    # Taken out of the inventory, it goes back to Redis's default: a restart again, the same way.
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    assert "SENTINEL FAILOVER mymaster before restarting this master (databases cannot change live)" in output
    for host in ("lab1", "lab2", "lab3"):
        assert client(lab_inventory, host).config_get("databases")["databases"] == "16"
    wait_for(lambda: not verify_failures(lab), 60, "verify to pass", interval=1)


def test_reboot_keeps_tuning_and_brings_redis_back(lab, lab_paths, lab_inventory):
    lab_hosts.restart(lab_paths, "lab2", log=lambda _: None)
    output = run_on(lab_inventory, "lab2", "sysctl -n net.core.somaxconn vm.overcommit_memory; "
                                         "cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag")
    assert output.split() == ["1024", "1", "never", "never"], output
    wait_for(lambda: client(lab_inventory, "lab2").ping(), 20, "redis back on lab2")
    wait_for(lambda: not verify_failures(lab), 60, "verify to pass after the reboot", interval=1)
