"""Hosts behind a bastion, reached the way an OpenSSH user reaches them: ssh_config aliases with
ProxyJump through lab1. lab2 and lab3 cannot answer the controller at all during the test (a
prohibit route back to it), so a run that passes never made a direct connection."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager

import pytest

from provision import cli, inventory
from provision.ssh import remote
from lab.hosts import BRIDGE_ADDRESS
from tests.labtools import deploy, variant

pytestmark = pytest.mark.lab

BEHIND_BASTION = ("lab2", "lab3")


@contextmanager
def unreachable_from_controller(host_names):
    """The hosts drop every packet back to the controller's address (TCP to them from it can
    never complete), and get their route back afterwards."""
    for name in host_names:
        subprocess.run(["ip", "-n", f"rplab-{name}", "route", "add", "prohibit", f"{BRIDGE_ADDRESS}/32"], check=True)
    try:
        yield
    finally:
        for name in host_names:
            subprocess.run(["ip", "-n", f"rplab-{name}", "route", "del", "prohibit", f"{BRIDGE_ADDRESS}/32"],
                           check=False)


def test_deploy_and_verify_pass_through_a_proxyjump_alias_with_no_direct_connection(deployed_lab, lab, lab_inventory,
                                                                                   artifact_dir, tmp_path):
    key = lab_inventory.host("lab1").key
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host bastion\n  HostName {lab_inventory.host('lab1').address}\n  User root\n  IdentityFile {key}\n\n"
        + "".join(f"Host db-{name}\n  HostName {lab_inventory.host(name).address}\n  ProxyJump bastion\n\n"
                  for name in BEHIND_BASTION))

    def through_bastion(document):
        document["controller"]["ssh_config"] = str(ssh_config)
        for name in BEHIND_BASTION:
            document["hosts"][name] = {"address": f"db-{name}", "key": key}   # user, data address: from ssh_config
    path = variant(lab, tmp_path, through_bastion)
    loaded = inventory.load(path)
    assert loaded.host("lab2").data_address == lab_inventory.host("lab2").data_address

    with unreachable_from_controller(BEHIND_BASTION):
        with pytest.raises(Exception):       # the direct way really is closed
            remote.connect(lab_inventory.host("lab2"), lab_inventory.controller).close()

        report, output = deploy(path, artifact_dir)
        assert report.ok, output
        assert report.changed == 0, output

        lines: list[str] = []
        assert cli.verify(str(path), say=lines.append), "\n".join(lines)

        connection = remote.connect(loaded.host("lab2"), loaded.controller)
        try:
            peers = connection.check("probe", "ss -tnH state established '( sport = :22 )'").stdout
        finally:
            connection.close()
    remote_peers = {line.split()[-1].rsplit(":", 1)[0] for line in peers.splitlines() if line.strip()}
    assert remote_peers == {lab_inventory.host("lab1").address}, peers


def test_ssh_agent_is_used_when_the_inventory_names_no_key(lab_inventory, tmp_path, monkeypatch):
    from dataclasses import replace
    from provision.base.errors import HostError
    home = tmp_path / "home"                         # no ~/.ssh/id_* and no ~/.ssh/config to fall back on
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    host = replace(lab_inventory.host("lab1"), key=None)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(HostError, match="authentication failed"):
        remote.connect(host, lab_inventory.controller)
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if socket_path.exists():
                break
            __import__("time").sleep(0.05)
        subprocess.run(["ssh-add", "-q", lab_inventory.host("lab1").key], check=True,
                       env={"SSH_AUTH_SOCK": str(socket_path), "PATH": "/usr/bin:/bin"})
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        connection = remote.connect(host, lab_inventory.controller)
        try:
            assert connection.check("probe", "hostname").stdout.strip() == "lab1"
        finally:
            connection.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_a_command_that_outlives_command_timeout_is_stopped_and_named(lab_inventory):
    from dataclasses import replace
    controller = replace(lab_inventory.controller, command_timeout=1.0)
    connection = remote.connect(lab_inventory.host("lab1"), controller)
    try:
        result = connection.run("sleep 5")
    finally:
        connection.close()
    assert result.exit_code == 124 and "timed out after 1.0s; killed on the host" in result.stderr


def test_controller_gateway_reaches_every_host_through_the_jump_host(deployed_lab, lab, lab_inventory, tmp_path):
    """controller.gateway (no ssh_config at all): lab2 and lab3 still cannot answer the controller."""
    def through_gateway(document):
        document["controller"]["gateway"] = f"root@{lab_inventory.host('lab1').address}"
    path = variant(lab, tmp_path, through_gateway)       # the jump host uses each host's own key
    with unreachable_from_controller(BEHIND_BASTION):
        lines: list[str] = []
        assert cli.verify(str(path), say=lines.append), "\n".join(lines)


def test_the_persistent_shell_returns_output_byte_for_byte_and_keeps_commands_apart(lab_inventory):
    """Commands share one bash per host: exit codes, stdout without a final newline, stderr,
    stdin taken to the byte, an `exit` or `cd` that stays inside its command, and a command that
    reads stdin without being given any (EOF, not the next command)."""
    connection = remote.connect(lab_inventory.host("lab1"), lab_inventory.controller)
    try:
        assert connection.run("printf 'no newline'").stdout == "no newline"
        assert connection.run("printf 'two\\n\\n'").stdout == "two\n\n"
        failed = connection.run("echo out; echo err >&2; exit 3")
        assert (failed.exit_code, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
        assert connection.run("cd /tmp; exit 0").ok and connection.run("pwd").stdout.strip() != "/tmp"
        secret = "line one\nline two with 'quotes' and $HOME\n"
        assert connection.run("cat", stdin=secret).stdout == secret
        assert connection.run("cat", stdin="partial").stdout == "partial"
        assert connection.run("cat").stdout == ""                    # no stdin: EOF at once
        assert connection.run("echo still here").stdout == "still here\n"
        assert connection._shell is not None                           # all of it on the one session
    finally:
        connection.close()
