"""Lab hosts: bring up, reboot, fault-inject and tear down.

Each host labN is: network namespace rplab-labN (eth0 = 10.77.0.(10+N)/24 on bridge br0 in
namespace rplab, nothing added to the machine's root namespace), fresh pid/mount/uts/ipc
namespaces whose PID 1 builds an overlayfs root over the golden tree and runs sshd.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from provision.ssh import netns
from lab.paths import LabPaths

BRIDGE_NAMESPACE = "rplab"
HOST_NAMESPACE_PREFIX = "rplab-"
BRIDGE_ADDRESS = "10.77.0.1"
SUBNET_PREFIX = 24
HOST_BOOT = Path(__file__).with_name("host_boot.sh")
BOOT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class LabHost:
    name: str
    index: int
    address: str
    namespace: str


class LabError(RuntimeError):
    pass


def lab_host(index: int) -> LabHost:
    name = f"lab{index}"
    return LabHost(name=name, index=index, address=f"10.77.0.{10 + index}",
                   namespace=HOST_NAMESPACE_PREFIX + name)


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(argv)}: {result.stderr.strip()}")
    return result


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):   # gone between open and read: ProcessLookupError
        return False


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return found


def _pid_file(paths: LabPaths, name: str) -> Path:
    return paths.host_dir(name) / "unshare.pid"


def launcher_pid(paths: LabPaths, name: str) -> int | None:
    """PID of the `unshare` that holds the host's namespaces, if the host is running."""
    try:
        pid = int(_pid_file(paths, name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def init_pid(paths: LabPaths, name: str) -> int | None:
    """PID (as the machine sees it) of the host's PID 1, for nsenter."""
    launcher = launcher_pid(paths, name)
    if launcher is None:
        return None
    children = _children(launcher)
    return children[0] if children else None


def running_hosts(paths: LabPaths) -> list[LabHost]:
    if not paths.hosts_dir.exists():
        return []
    indexes = sorted(int(d.name[3:]) for d in paths.hosts_dir.glob("lab*") if d.name[3:].isdigit())
    return [lab_host(i) for i in indexes if launcher_pid(paths, f"lab{i}") is not None]


def _ensure_bridge() -> None:
    if netns.namespace_exists(BRIDGE_NAMESPACE):
        return
    _ip("netns", "add", BRIDGE_NAMESPACE)
    _ip("-n", BRIDGE_NAMESPACE, "link", "set", "lo", "up")
    _ip("-n", BRIDGE_NAMESPACE, "link", "add", "br0", "type", "bridge")
    _ip("-n", BRIDGE_NAMESPACE, "addr", "add", f"{BRIDGE_ADDRESS}/{SUBNET_PREFIX}", "dev", "br0")
    _ip("-n", BRIDGE_NAMESPACE, "link", "set", "br0", "up")


def _wire_host(host: LabHost) -> None:
    """A fresh network namespace with eth0 plugged into the lab bridge. No default route:
    a lab host can reach the other lab hosts and nothing else."""
    _ip("netns", "del", host.namespace, check=False)
    _ip("-n", BRIDGE_NAMESPACE, "link", "del", f"v{host.index}", check=False)
    _ip("netns", "add", host.namespace)
    _ip("-n", BRIDGE_NAMESPACE, "link", "add", f"v{host.index}", "type", "veth",
        "peer", "name", "eth0", "netns", host.namespace)
    _ip("-n", BRIDGE_NAMESPACE, "link", "set", f"v{host.index}", "master", "br0", "up")
    _ip("-n", host.namespace, "link", "set", "lo", "up")
    _ip("-n", host.namespace, "link", "set", "eth0", "address", f"52:54:00:77:00:{10 + host.index:02x}")
    _ip("-n", host.namespace, "addr", "add", f"{host.address}/{SUBNET_PREFIX}", "dev", "eth0")
    _ip("-n", host.namespace, "link", "set", "eth0", "up")


def _ssh_port_open(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=0.3):
            return True
    except OSError:
        return False


def _boot(paths: LabPaths, host: LabHost) -> float:
    """Start the host's PID 1 and wait until its sshd accepts connections; returns seconds."""
    started = time.monotonic()
    host_dir = paths.host_dir(host.name)
    for sub in ("upper", "work", "merged", "knobs"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True)
    log = open(host_dir / "boot.log", "w")
    process = subprocess.Popen(
        ["ip", "netns", "exec", host.namespace, "unshare", "--mount", "--pid", "--uts", "--ipc",
         "--fork", "--kill-child=SIGKILL", "bash", str(HOST_BOOT), host.name,
         str(paths.golden_tree), str(host_dir)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    _pid_file(paths, host.name).write_text(str(process.pid))
    while not netns.call_in(host.namespace, _ssh_port_open, host.address):
        if process.poll() is not None:
            raise LabError(f"{host.name} died while booting:\n{(host_dir / 'boot.log').read_text()}")
        if time.monotonic() - started > BOOT_TIMEOUT_SECONDS:
            raise LabError(f"{host.name}: sshd not up after {BOOT_TIMEOUT_SECONDS:.0f}s")
        time.sleep(0.05)
    return time.monotonic() - started


def _kill_host(paths: LabPaths, name: str) -> None:
    """SIGKILL the host's PID 1 and its launcher: the kernel then kills every process of the
    host's pid namespace, and its private mounts go with its mount namespace."""
    launcher = launcher_pid(paths, name)
    if launcher is None:
        return
    for child in _children(launcher):
        os.kill(child, signal.SIGKILL)
    os.kill(launcher, signal.SIGKILL)  # unshare --fork ignores SIGTERM
    deadline = time.monotonic() + 5
    while _alive(launcher) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        os.waitpid(launcher, os.WNOHANG)
    except ChildProcessError:
        pass
    if _alive(launcher):
        raise LabError(f"{name}: launcher pid {launcher} survived SIGKILL")
    # The kernel tears the host's pid namespace down asynchronously: until its last process
    # (sshd, redis) is gone, a reboot's "is sshd up?" probe could be answered by the old one.
    namespace = HOST_NAMESPACE_PREFIX + name
    while time.monotonic() < deadline:
        remaining = _ip("netns", "pids", namespace, check=False).stdout.split()
        if not any(_alive(int(pid)) for pid in remaining if pid.isdigit()):
            return
        time.sleep(0.02)
    raise LabError(f"{name}: processes still alive in {namespace} after SIGKILL of its init")


def up(paths: LabPaths, count: int, log=print) -> list[LabHost]:
    """Bring up hosts lab1..labN (those already running are kept as they are)."""
    if not (paths.golden_tree / "usr" / "local" / "sbin" / "lab-init").exists():
        raise LabError(f"no golden tree at {paths.golden_tree}; build it first (invoke lab.build)")
    _ensure_bridge()
    hosts = [lab_host(index) for index in range(1, count + 1)]
    for host in hosts:
        if launcher_pid(paths, host.name) is not None:
            log(f"{host.name} already up at {host.address}")
            continue
        host_dir = paths.host_dir(host.name)
        subprocess.run(["rm", "-rf", str(host_dir)], check=True)
        _wire_host(host)
        seconds = _boot(paths, host)
        log(f"{host.name} up at {host.address} in {seconds:.2f}s")
    return hosts


def reinstall(paths: LabPaths, name: str, log=print) -> float:
    """A re-imaged machine: every process dies, every file written since the golden tree goes,
    and the host boots fresh on the same address (the lab's network is left as it is)."""
    host = lab_host(int(name.removeprefix("lab")))
    if not paths.host_dir(name).exists():
        raise LabError(f"{name} is not a lab host")
    _kill_host(paths, name)
    subprocess.run(["rm", "-rf", str(paths.host_dir(name))], check=True)
    seconds = _boot(paths, host)
    log(f"{name} reinstalled in {seconds:.2f}s")
    return seconds


def restart(paths: LabPaths, name: str, log=print) -> float:
    """A reboot: kill every process of the host, keep its files, boot again (sysctl.conf and
    rc.local are applied again by the host's init)."""
    index = int(name.removeprefix("lab"))
    host = lab_host(index)
    if not paths.host_dir(name).exists():
        raise LabError(f"{name} is not a lab host")
    _kill_host(paths, name)
    seconds = _boot(paths, host)
    log(f"{name} rebooted in {seconds:.2f}s")
    return seconds


def down(paths: LabPaths, log=print) -> None:
    """Stop every host and remove every namespace, interface and host directory of the lab."""
    if paths.hosts_dir.exists():
        for host_dir in sorted(paths.hosts_dir.iterdir()):
            _kill_host(paths, host_dir.name)
    listing = _ip("netns", "list", check=False).stdout.split("\n")
    for line in listing:
        name = line.split(" ")[0]
        if name.startswith(HOST_NAMESPACE_PREFIX):
            _ip("netns", "del", name)
    if netns.namespace_exists(BRIDGE_NAMESPACE):
        _ip("netns", "del", BRIDGE_NAMESPACE)
    subprocess.run(["rm", "-rf", str(paths.hosts_dir)], check=True)
    log("lab down")


def status(paths: LabPaths) -> list[tuple[LabHost, int | None]]:
    if not paths.hosts_dir.exists():
        return []
    rows = []
    for host_dir in sorted(paths.hosts_dir.iterdir(), key=lambda d: int(d.name[3:])):
        host = lab_host(int(host_dir.name[3:]))
        rows.append((host, init_pid(paths, host.name)))
    return rows


# --- fault helpers for drills --------------------------------------------------------------

def run_on_host(paths: LabPaths, name: str, *argv: str) -> subprocess.CompletedProcess:
    """Run a program inside a host's namespaces without SSH (works when its network is cut)."""
    pid = init_pid(paths, name)
    if pid is None:
        raise LabError(f"{name} is not running")
    return subprocess.run(["nsenter", "-t", str(pid), "-a", *argv], capture_output=True, text=True)


def signal_process(paths: LabPaths, name: str, pattern: str, signal_name: str) -> int:
    """Send a signal (STOP, CONT, KILL, TERM…) to the processes of a host whose command line
    matches pattern. Returns how many were signalled. pgrep is exec'd directly, not through a
    shell, because a shell's own command line would match the pattern and be signalled too."""
    found = run_on_host(paths, name, "pgrep", "-f", pattern).stdout.split()
    if found:
        result = run_on_host(paths, name, "kill", f"-{signal_name}", *found)
        if result.returncode != 0:
            raise LabError(f"{name}: kill -{signal_name} {' '.join(found)}: {result.stderr.strip()}")
    return len(found)


def cut_network(paths: LabPaths, name: str) -> None:
    """Unplug the host's cable at the bridge: no packet in or out, processes keep running."""
    index = int(name.removeprefix("lab"))
    _ip("-n", BRIDGE_NAMESPACE, "link", "set", f"v{index}", "down")


def restore_network(paths: LabPaths, name: str) -> None:
    index = int(name.removeprefix("lab"))
    _ip("-n", BRIDGE_NAMESPACE, "link", "set", f"v{index}", "master", "br0", "up")
