"""Secrets on real hosts: a password rotation goes live (CONFIG SET masterauth, SENTINEL SET
auth-pass, ACL LOAD) with no password in any command the tool sends, so none reaches an argv
on a host or sudo's log."""
from __future__ import annotations

import secrets

import pytest

from provision import remote
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
