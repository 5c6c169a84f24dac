"""The lab's promises, proven on real hosts over real SSH."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from provision.ssh import netns
from lab import golden, hosts as lab_hosts

pytestmark = pytest.mark.lab


def test_each_host_answers_ssh_with_its_own_hostname(connections):
    for name, connection in connections.items():
        result = connection.check("probe", "hostname; uname -s; id -u")
        assert result.stdout.split() == [name, "Linux", "0"]


def test_deploy_user_has_passwordless_sudo(lab_inventory):
    from dataclasses import replace
    from provision.ssh import remote
    host = replace(lab_inventory.hosts[0], user="ops", sudo=True)
    connection = remote.connect(host, lab_inventory.controller)
    try:
        assert connection.check("probe", "id -un").stdout.strip() == "root"   # through sudo -n
    finally:
        connection.close()


def test_hosts_reach_each_other_on_private_addresses_and_nothing_else(connections, lab_inventory):
    addresses = [host.address for host in lab_inventory.hosts]
    for name, connection in connections.items():
        for address in addresses:
            result = connection.run(f"timeout 2 bash -c 'exec 3<>/dev/tcp/{address}/22'")
            assert result.ok, f"{name} cannot reach {address}:22: {result.stderr}"
        routes = connection.check("probe", "ip route").stdout
        assert "default" not in routes, f"{name} has a way out of the lab: {routes}"


def test_overcommit_write_on_one_host_changes_no_other_host_nor_the_machine(bare_lab, connections):
    machine_before = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
    wanted = "2" if machine_before != "2" else "1"
    connections["lab1"].check("probe", f"sysctl -w vm.overcommit_memory={wanted}")
    try:
        assert connections["lab1"].check("probe", "cat /proc/sys/vm/overcommit_memory").stdout.strip() == wanted
        assert connections["lab2"].check("probe", "cat /proc/sys/vm/overcommit_memory").stdout.strip() == machine_before
        assert Path("/proc/sys/vm/overcommit_memory").read_text().strip() == machine_before
    finally:
        connections["lab1"].check("probe", f"sysctl -w vm.overcommit_memory={machine_before}")


def test_thp_write_on_one_host_changes_no_other_host_nor_the_machine(bare_lab, connections):
    machine_before = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    connections["lab2"].check("probe", "echo never > /sys/kernel/mm/transparent_hugepage/enabled")
    assert connections["lab2"].check("probe", "cat /sys/kernel/mm/transparent_hugepage/enabled").stdout.strip() == "never"
    assert connections["lab3"].check("probe", "cat /sys/kernel/mm/transparent_hugepage/enabled").stdout == machine_before
    assert Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text() == machine_before


def test_somaxconn_is_real_and_per_host(connections):
    connections["lab1"].check("probe", "sysctl -w net.core.somaxconn=3333")
    assert connections["lab1"].check("probe", "sysctl -n net.core.somaxconn").stdout.strip() == "3333"
    assert connections["lab2"].check("probe", "sysctl -n net.core.somaxconn").stdout.strip() != "3333"
    assert Path("/proc/sys/net/core/somaxconn").read_text().strip() != "3333"


def test_other_kernel_knobs_are_refused_on_a_host(connections):
    result = connections["lab3"].run("sysctl -w kernel.pid_max=40000")
    assert not result.ok


def test_restart_keeps_files_and_runs_rc_local_again(bare_lab, lab_paths, lab_inventory):
    from provision.ssh import remote
    host = lab_inventory.host("lab3")
    connection = remote.connect(host, lab_inventory.controller)
    connection.check("probe", "echo kept > /root/marker && printf '#!/bin/sh\\necho boot >> /root/boots\\n' > /etc/rc.local "
                              "&& chmod +x /etc/rc.local && echo 1 > /proc/sys/vm/overcommit_memory")
    connection.close()
    lab_hosts.restart(lab_paths, "lab3", log=lambda _: None)
    connection = remote.connect(host, lab_inventory.controller)
    try:
        assert connection.check("probe", "cat /root/marker").stdout.strip() == "kept"
        assert connection.check("probe", "cat /root/boots").stdout.split() == ["boot"]
        # A reboot starts the emulated global knobs from the kernel's value again.
        machine_value = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        assert connection.check("probe", "cat /proc/sys/vm/overcommit_memory").stdout.strip() == machine_value
        connection.check("probe", "rm -f /etc/rc.local /root/boots /root/marker")
    finally:
        connection.close()


def test_fault_helpers_stop_continue_kill_and_cut_network(lab_paths, connections):
    connection = connections["lab2"]
    connection.check("probe", "setsid sleep 1000 < /dev/null > /dev/null 2>&1 & "
                              "for i in $(seq 50); do pgrep -fx 'sleep 1000' >/dev/null && break; sleep 0.1; done")
    assert lab_hosts.signal_process(lab_paths, "lab2", "sleep 1000", "STOP") == 1
    sleeper_state = "ps -eo stat=,args= | grep '[s]leep 1000'"
    assert connection.check("probe", sleeper_state).stdout.strip().startswith("T")
    lab_hosts.signal_process(lab_paths, "lab2", "sleep 1000", "CONT")
    assert not connection.check("probe", sleeper_state).stdout.strip().startswith("T")
    lab_hosts.signal_process(lab_paths, "lab2", "sleep 1000", "KILL")
    time.sleep(0.1)
    assert connection.run(sleeper_state).exit_code == 1

    lab_hosts.cut_network(lab_paths, "lab2")
    try:
        probe = connections["lab1"].run("timeout 2 bash -c 'exec 3<>/dev/tcp/10.77.0.12/22'")
        assert not probe.ok
    finally:
        lab_hosts.restore_network(lab_paths, "lab2")
    probe = connections["lab1"].run("timeout 5 bash -c 'exec 3<>/dev/tcp/10.77.0.12/22'")
    assert probe.ok, probe.stderr


def test_redis_source_is_cached_with_its_known_sha256(lab_paths):
    tarball = golden.fetch_redis_source(lab_paths)
    assert golden.sha256_of(tarball) == golden.REDIS_SOURCE_SHA256


def _lab_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if "host_boot.sh" in command or "lab-init" in command or "rplab-" in command:
            found.append(f"{proc.name}: {command}")
    return found


@pytest.mark.lab_teardown
def test_down_leaves_no_process_mount_namespace_or_interface(lab, lab_paths):
    assert not netns.current_is(lab_hosts.BRIDGE_NAMESPACE)
    lab_hosts.down(lab_paths, log=lambda _: None)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "rplab" not in namespaces
    assert _lab_processes() == []
    assert str(lab_paths.state_dir) not in Path("/proc/self/mountinfo").read_text()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "br0" not in links and " v1@" not in links
    assert not lab_paths.hosts_dir.exists()


def test_host_keys_are_checked_like_openssh(lab_inventory, tmp_path):
    """known_hosts as OpenSSH keeps it: a new host is one appended line (comments, unknown key
    types, markers and the mode stay); hashed names match; a changed key names the offending
    line; @revoked refuses; checking yes refuses an unknown host; markers never crash."""
    import base64
    import hashlib
    import hmac
    import os
    from dataclasses import replace as replaced

    import paramiko

    from provision.ssh import remote
    from provision.base.errors import HostError
    host = lab_inventory.host("lab1")

    def connect(path, checking="accept-new"):
        controller = replaced(lab_inventory.controller, known_hosts=str(path), host_key_checking=checking)
        remote.connect(host, controller).close()

    learned = tmp_path / "learned"
    connect(learned)
    name, key_type, key_data = learned.read_text().split()
    assert name == host.address

    kept = ("# managed by hand: keep this comment\n"
            "other.example sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIA==\n"
            "@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    known = tmp_path / "known_hosts"
    known.write_text(kept)
    os.chmod(known, 0o600)
    connect(known)
    assert known.read_text() == kept + f"{host.address} {key_type} {key_data}\n"
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    connect(known)                                            # known now: nothing appended
    assert known.read_text().count(key_data) == 1

    salt = os.urandom(20)
    digest = hmac.new(salt, host.address.encode(), hashlib.sha1).digest()
    hashed = tmp_path / "hashed"
    hashed.write_text(f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()} {key_type} {key_data}\n")
    connect(hashed, checking="yes")                           # a hashed entry is recognised
    assert hashed.read_text().count("\n") == 1

    with pytest.raises(HostError, match=f"no {key_type} host key is known for {host.address} .* host_key_checking is yes"):
        connect(tmp_path / "empty", checking="yes")

    impostor = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    other_key = impostor.get_base64() if impostor else paramiko.Ed25519Key.from_private_key_file(
        str(host.key)).get_base64()
    changed = tmp_path / "changed"
    changed.write_text(f"# line 1\n{host.address} ssh-ed25519 {other_key}\n")
    with pytest.raises(HostError, match=f"REMOTE HOST IDENTIFICATION HAS CHANGED .* Offending key in {changed}:2"):
        connect(changed)
    assert changed.read_text() == f"# line 1\n{host.address} ssh-ed25519 {other_key}\n"   # untouched

    revoked = tmp_path / "revoked"
    revoked.write_text(f"@revoked * {key_type} {key_data}\n")
    with pytest.raises(HostError, match="marked @revoked"):
        connect(revoked)
