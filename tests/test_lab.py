"""The lab's promises, proven on real hosts over real SSH."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from provision import netns
from provision.lab import golden, hosts as lab_hosts

pytestmark = pytest.mark.lab


def test_each_host_answers_ssh_with_its_own_hostname(connections):
    for name, connection in connections.items():
        result = connection.check("probe", "hostname; uname -s; id -u")
        assert result.stdout.split() == [name, "Linux", "0"]


def test_deploy_user_has_passwordless_sudo(lab_inventory):
    from dataclasses import replace
    from provision import remote
    host = replace(lab_inventory.hosts[0], user="ops", sudo=True)
    connection = remote.connect_for(host, lab_inventory.controller)
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
    from provision import remote
    host = lab_inventory.host("lab3")
    connection = remote.connect_for(host, lab_inventory.controller)
    connection.check("probe", "echo kept > /root/marker && printf '#!/bin/sh\\necho boot >> /root/boots\\n' > /etc/rc.local "
                              "&& chmod +x /etc/rc.local && echo 1 > /proc/sys/vm/overcommit_memory")
    connection.close()
    lab_hosts.restart(lab_paths, "lab3", log=lambda _: None)
    connection = remote.connect_for(host, lab_inventory.controller)
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
    """accept-new records a new host; a changed key is refused; strict refuses an unknown host."""
    from provision import remote
    from provision.errors import HostError
    host = lab_inventory.host("lab1")
    known = tmp_path / "known_hosts"
    remote.connect(host, known_hosts=str(known), host_key_checking="accept-new").close()
    recorded = known.read_text()
    assert recorded.startswith(host.address + " ")
    with pytest.raises(HostError, match="not found in known_hosts|Server .* not found"):
        remote.connect(host, known_hosts=str(tmp_path / "empty"), host_key_checking="yes")
    import paramiko
    impostor = paramiko.Ed25519Key.from_private_key_file(str(lab_inventory.host("lab1").key))
    known.write_text(f"{host.address} ssh-ed25519 {impostor.get_base64()}\n")
    with pytest.raises(HostError, match="host key differs"):
        remote.connect(host, known_hosts=str(known), host_key_checking="accept-new")
