"""The VM tier: real kernels and systemd, for what the namespace lab cannot show (sysctl in the
kernel, THP `[never]`, a real reboot, systemd units, a powered-off host).

KVM does not run on this machine kind, so the VMs run under qemu's software emulation. The box
is the lab's golden tree plus systemd and a kernel, built once into a qcow2 image; each VM boots
that kernel directly (no bootloader) from its own copy-on-write overlay of the image. The VMs sit
on a bridge in network namespace `rpvm`, which the controller joins, as with the lab's `rplab`.
A VM's address and name come from its kernel command line (`rp.ip=`, `rp.name=`), read by a
small unit at boot, so one image serves every VM.

Vagrant (vagrant-libvirt) is what users run; here it needs libvirtd started by hand and adds a
management network and minutes per VM. The tier boots qemu directly and says so.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from provision.ssh import netns
from lab import golden
from lab.paths import LabPaths

NAMESPACE = "rpvm"
BRIDGE = "rpvmbr0"
GATEWAY = "10.78.0.1"
VM_PACKAGES = ("systemd", "systemd-sysv", "linux-image-amd64", "initramfs-tools", "dbus")
IMAGE_SIZE = "4G"

NET_UNIT = """[Unit]
Description=Address and name from the kernel command line (redis-provision VM tier)
DefaultDependencies=no
Before=network.target ssh.service
After=systemd-udevd.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/rp-net

[Install]
WantedBy=multi-user.target
"""

NET_SCRIPT = """#!/bin/sh
# eth0's address and the host name, from rp.ip= and rp.name= on the kernel command line.
for word in $(cat /proc/cmdline); do
  case $word in
    rp.ip=*) address=${word#rp.ip=} ;;
    rp.gw=*) gateway=${word#rp.gw=} ;;
    rp.name=*) name=${word#rp.name=} ;;
  esac
done
ip link set lo up
ip link set eth0 up
[ -n "$address" ] && ip addr add "$address" dev eth0
[ -n "$gateway" ] && ip route add default via "$gateway"
[ -n "$name" ] && hostname "$name" && echo "$name" > /etc/hostname
exit 0
"""


@dataclass(frozen=True)
class VmPaths:
    root: Path

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def image(self) -> Path:
        return self.root / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.root / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.root / "initrd.img"

    def disk(self, index: int) -> Path:
        return self.root / "vms" / f"vm{index}.qcow2"

    def pid_file(self, index: int) -> Path:
        return self.root / "vms" / f"vm{index}.pid"

    def console(self, index: int) -> Path:
        return self.root / "vms" / f"vm{index}.console"


def vm_paths(paths: LabPaths) -> VmPaths:
    return VmPaths(paths.cache_dir / "vm")


def address(index: int) -> str:
    return f"10.78.0.{10 + index}"


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


#: what the tier runs on this machine, and the Debian package that brings it
HOST_TOOLS = (("qemu-img", "qemu-utils"), ("qemu-system-x86_64", "qemu-system-x86"), ("mkfs.ext4", "e2fsprogs"))


def ensure_host_tools(log=print) -> None:
    """Install what the tier needs on this machine from Debian's packages when it is missing,
    as setup.sh installs debootstrap for the lab: a fresh machine has no qemu."""
    missing = sorted({package for tool, package in HOST_TOOLS if shutil.which(tool) is None})
    if not missing:
        return
    log(f"vm tier: installing {', '.join(missing)} (Debian packages) for the VMs")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, env=environment)
    _run(["apt-get", "install", "-y", "-qq", *missing], stdout=subprocess.DEVNULL, env=environment)


def build_box(paths: LabPaths, log=print) -> VmPaths:
    """Golden tree + systemd + kernel → one qcow2 image, plus the kernel and initrd to boot it
    with. Built once (a few minutes: package installs and an initramfs); later calls reuse it."""
    ensure_host_tools(log)
    vm = vm_paths(paths)
    golden.build_golden_tree(paths, log)
    recipe = vm.root / "golden-recipe"
    if vm.image.exists() and vm.kernel.exists() and vm.initrd.exists() and recipe.exists() \
            and recipe.read_text() == golden.golden_recipe():
        return vm
    vm.image.unlink(missing_ok=True)
    vm.root.mkdir(parents=True, exist_ok=True)
    building = vm.root / "tree.partial"
    if building.exists():
        shutil.rmtree(building)
    log("VM box: copying the golden tree")
    _run(["cp", "-a", str(paths.golden_tree), str(building)])
    log(f"VM box: installing {', '.join(VM_PACKAGES)} (from the machine's Debian mirror)")
    script = (f"mount -t proc proc {building}/proc && mount --rbind /dev {building}/dev && "
              f"mount -t sysfs sys {building}/sys && "
              f"cp /etc/resolv.conf {building}/etc/resolv.conf 2>/dev/null; "
              f"chroot {building} sh -c 'DEBIAN_FRONTEND=noninteractive apt-get update -qq && "
              f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {' '.join(VM_PACKAGES)} "
              f"> /var/log/vm-box-install.log 2>&1 || {{ tail -n 30 /var/log/vm-box-install.log; exit 1; }}; "
              f"apt-get clean'")
    _run(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
    (building / "usr" / "local" / "sbin" / "rp-net").write_text(NET_SCRIPT)
    (building / "usr" / "local" / "sbin" / "rp-net").chmod(0o755)
    (building / "etc" / "systemd" / "system" / "rp-net.service").write_text(NET_UNIT)
    wants = building / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit, target in (("rp-net.service", "/etc/systemd/system/rp-net.service"),
                         ("ssh.service", "/lib/systemd/system/ssh.service")):
        link = wants / unit
        if not os.path.lexists(link):     # absolute targets dangle from outside the tree
            link.symlink_to(target)
    (building / "etc" / "fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (building / "etc" / "hostname").write_text("vm\n")
    kernels = sorted((building / "boot").glob("vmlinuz-*"))
    initrds = sorted((building / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"no kernel or initrd in {building}/boot after installing linux-image-amd64")
    shutil.copy(kernels[-1], vm.kernel)
    shutil.copy(initrds[-1], vm.initrd)
    log("VM box: making the disk image")
    raw = vm.root / "base.raw"
    raw.unlink(missing_ok=True)
    _run(["truncate", "-s", IMAGE_SIZE, str(raw)])
    _run(["mkfs.ext4", "-q", "-F", "-L", "rproot", "-d", str(building), str(raw)])
    partial = vm.root / "base.qcow2.partial"
    _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(partial)])
    raw.unlink()
    partial.rename(vm.image)
    if vm.tree.exists():
        shutil.rmtree(vm.tree)
    building.rename(vm.tree)
    recipe.write_text(golden.golden_recipe())
    log(f"VM box ready: {vm.image}")
    return vm


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *argv], check=check, capture_output=True, text=True)


def _ensure_network() -> None:
    if not netns.namespace_exists(NAMESPACE):
        _ip("netns", "add", NAMESPACE)
    if _ip("-n", NAMESPACE, "link", "show", BRIDGE, check=False).returncode != 0:
        _ip("-n", NAMESPACE, "link", "add", BRIDGE, "type", "bridge")
        _ip("-n", NAMESPACE, "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _ip("-n", NAMESPACE, "link", "set", BRIDGE, "up")
        _ip("-n", NAMESPACE, "link", "set", "lo", "up")


def running(vm: VmPaths, index: int) -> int | None:
    try:
        pid = int(vm.pid_file(index).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(paths: LabPaths, index: int, memory_mb: int = 768, fresh: bool = False) -> None:
    """Boot VM `index` (its disk kept across boots unless `fresh`); returns at once."""
    vm = vm_paths(paths)
    _ensure_network()
    disk = vm.disk(index)
    disk.parent.mkdir(parents=True, exist_ok=True)
    if fresh or not disk.exists():
        disk.unlink(missing_ok=True)
        _run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(vm.image), "-F", "qcow2", str(disk)])
    tap = f"rpvmtap{index}"
    if _ip("-n", NAMESPACE, "link", "show", tap, check=False).returncode != 0:
        _ip("-n", NAMESPACE, "tuntap", "add", "dev", tap, "mode", "tap")
        _ip("-n", NAMESPACE, "link", "set", tap, "master", BRIDGE)
        _ip("-n", NAMESPACE, "link", "set", tap, "up")
    append = (f"root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet rp.ip={address(index)}/24 rp.gw={GATEWAY} "
              f"rp.name=vm{index}")
    _run(["ip", "netns", "exec", NAMESPACE, "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64",
          "-smp", "1", "-m", str(memory_mb), "-display", "none", "-daemonize",
          "-pidfile", str(vm.pid_file(index)), "-serial", f"file:{vm.console(index)}",
          "-kernel", str(vm.kernel), "-initrd", str(vm.initrd), "-append", append,
          "-drive", f"file={disk},if=virtio,format=qcow2,cache=unsafe",
          "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
          "-device", f"virtio-net-pci,netdev=net0,mac=52:54:00:78:00:{10 + index:02x}"])


def power_off(paths: LabPaths, index: int) -> None:
    """Pull the plug: the qemu process dies, the guest gets no shutdown."""
    pid = running(vm_paths(paths), index)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)


def wait_ssh(index: int, seconds: float = 600) -> float:
    """Seconds until the VM's sshd answers with its banner (from inside the VM network)."""
    started = time.monotonic()
    with netns.joined(NAMESPACE):
        while time.monotonic() - started < seconds:
            try:
                with socket.create_connection((address(index), 22), timeout=2) as connection:
                    connection.settimeout(5)
                    if connection.recv(16).startswith(b"SSH-"):
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(1)
    raise TimeoutError(f"vm{index} ({address(index)}): no SSH banner after {seconds:.0f}s")


def down(paths: LabPaths, count: int = 9) -> None:
    for index in range(1, count + 1):
        power_off(paths, index)
    if netns.namespace_exists(NAMESPACE):
        _ip("netns", "del", NAMESPACE)
    shutil.rmtree(vm_paths(paths).root / "vms", ignore_errors=True)


def inventory_document(paths: LabPaths, count: int, tarball: Path) -> dict:
    """The lab inventory's shape for the VMs: same secrets and source, the VMs' addresses."""
    from lab import inventory_file
    from lab.hosts import LabHost
    hosts = [LabHost(f"vm{index}", index, address(index), NAMESPACE) for index in range(1, count + 1)]
    document = inventory_file.lab_inventory(paths, hosts, tarball)
    document["controller"]["network_namespace"] = NAMESPACE
    document["controller"]["known_hosts"] = str(paths.cache_dir / "vm_known_hosts")
    document["controller"]["connect_timeout"] = 30
    document["controller"]["command_timeout"] = 900
    for group in document["groups"].values():
        # Emulated CPUs stall for seconds under load: a 2 s down-after would fail over by mistake.
        group["down_after_milliseconds"] = 5000
        group["failover_timeout"] = 10000
        group["min_replicas_max_lag"] = 3
    return document
