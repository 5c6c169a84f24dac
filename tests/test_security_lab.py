"""Secrets on real hosts: a password rotation goes live (CONFIG SET masterauth, SENTINEL SET
auth-pass, ACL LOAD) with no password in any command the tool sends, so none reaches an argv
on a host or sudo's log."""
from __future__ import annotations

import secrets

import pytest

from provision.ssh import remote
from tests.labtools import client, deploy, variant, verify_failures, wait_for

pytestmark = pytest.mark.lab


def test_password_rotation_goes_live_without_a_password_in_any_command(deployed_lab, lab, lab_inventory, artifact_dir,
                                                                       tmp_path, monkeypatch):
    sent: list[str] = []
    original_run = remote.Remote.run

    def recording_run(self, command, stdin=None, timeout=None):
        sent.append(command)
        return original_run(self, command, stdin=stdin, timeout=timeout)
    monkeypatch.setattr(remote.Remote, "run", recording_run)
    new_files = {}
    for role in ("replication", "sentinel"):
        path = tmp_path / f"{role}.password"
        path.write_text(secrets.token_urlsafe(18) + "\n")
        path.chmod(0o600)
        new_files[role] = path
    rotated = variant(lab, tmp_path, lambda document: [document["acl"][role].update(password_file=str(path))
                                                       for role, path in new_files.items()])
    every_password = [user.password.value for user in lab_inventory.acl.all_users] + \
        [path.read_text().strip() for path in new_files.values()]
    try:
        report, output = deploy(rotated, artifact_dir)
        assert report.ok, output
        assert "CONFIG SET masterauth on the running server" in output
        assert "SENTINEL SET mymaster auth-pass <secret>" in output
        leaked = [command for command in sent if any(password in command for password in every_password)]
        assert leaked == []
        # The replicas log in again with the new password when their link is cut.
        replica = next(n for n in ("lab1", "lab2", "lab3") if client(lab_inventory, n).info("replication")["role"] == "slave")
        client(lab_inventory, replica).client_kill_filter(_type="master")
        wait_for(lambda: not verify_failures(rotated), 60, "verify to pass with the rotated passwords", interval=1)
    finally:
        monkeypatch.undo()
        report, output = deploy(lab, artifact_dir)
        assert report.ok, output
        wait_for(lambda: not verify_failures(lab), 60, "verify to pass after rotating back", interval=1)


def peer_logins(lab_inventory) -> set[str]:
    """The users the sentinels' peers are logged in as, seen from every sentinel."""
    from tests.labtools import sentinel_client
    users = set()
    for name in ("lab1", "lab2", "lab3"):
        for connection in sentinel_client(lab_inventory, name).client_list():
            if connection.get("name", "").startswith("sentinel-"):
                users.add(connection.get("user"))
    return users


def test_sentinels_log_in_to_each_other_as_the_sentinel_user_switched_live_on_an_older_deployment(
        deployed_lab, lab, lab_inventory, artifact_dir):
    from provision import cli
    from tests.labtools import sentinel_client, start_times
    wait_for(lambda: peer_logins(lab_inventory) == {"sentinel"}, 20, "peers logged in as the sentinel user")
    # As this tool left sentinels before: peers logged in as admin, and no sentinel user.
    admin = lab_inventory.acl.admin
    for name in ("lab1", "lab2", "lab3"):
        sentinel = sentinel_client(lab_inventory, name)
        sentinel.execute_command("SENTINEL", "CONFIG", "SET", "sentinel-user", admin.name)
        sentinel.execute_command("SENTINEL", "CONFIG", "SET", "sentinel-pass", admin.password.value)
    for name in ("lab1", "lab2", "lab3"):
        sentinel = sentinel_client(lab_inventory, name)
        sentinel.execute_command("ACL", "DELUSER", "sentinel")
        sentinel.execute_command("SENTINEL", "FLUSHCONFIG")
        sentinel.execute_command("ACL", "LOG", "RESET")
    wait_for(lambda: peer_logins(lab_inventory) == {admin.name}, 20, "peers logged in as admin")
    before = start_times(lab_inventory)
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    assert output.count("ACL SETUSER sentinel on the running sentinel") == 3, output
    assert output.count("SENTINEL CONFIG SET sentinel-user sentinel") == 3, output
    assert start_times(lab_inventory) == before, "switched live, nothing restarted"
    wait_for(lambda: peer_logins(lab_inventory) == {"sentinel"}, 20, "peers logged in as the sentinel user again")
    # The user and the password are two SENTINEL CONFIG SETs (7.0 takes one at a time): a peer
    # link that reconnects between them may fail one AUTH, once. From here on, none may.
    for name in ("lab1", "lab2", "lab3"):
        sentinel_client(lab_inventory, name).execute_command("ACL", "LOG", "RESET")
    result = cli.failover(str(lab), say=lambda _: None)
    assert result.new_master != result.old_master
    for name in ("lab1", "lab2", "lab3"):
        assert sentinel_client(lab_inventory, name).execute_command("ACL", "LOG") == [], f"{name} refused a peer"
    wait_for(lambda: not verify_failures(lab), 60, "verify to pass", interval=1)
    again, output = deploy(lab, artifact_dir)
    assert again.ok and again.changed == 0, output
