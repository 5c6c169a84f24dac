"""Invoke tasks for the lab (`invoke lab.up`, `lab.down`, …): flags in, library calls out."""
from __future__ import annotations

import time
from pathlib import Path

from invoke import Collection, Exit, task

from lab import golden, inventory_file
from lab import hosts as lab_hosts
from lab.paths import default_paths

LAB_INVENTORY = Path("inventory/lab.yml")


@task
def build(c):
    """Build (once, then cached) the golden Debian tree and fetch the Redis source."""
    paths = default_paths()
    started = time.monotonic()
    golden.build_golden_tree(paths)
    golden.fetch_redis_source(paths)
    print(f"lab cache ready in {time.monotonic() - started:.1f}s: {paths.cache_dir}")


@task(help={"hosts": "how many hosts (lab1..labN), default 3",
            "groups": "replication groups spread over the hosts (default 1)",
            "sentinels": "how many hosts run a sentinel (default: all for one group, 3 for several)",
            "cluster": "instead of groups: a Redis Cluster of N shards over the hosts (--hosts 6 --cluster 3)",
            "inventory": "where to write the lab inventory (default inventory/lab.yml)"})
def up(c, hosts=3, groups=1, sentinels=None, cluster=None, inventory=str(LAB_INVENTORY)):
    """Bring up N lab hosts (building the golden tree first if needed) and write their inventory
    (with --cluster N: a Redis Cluster of N shards over them, no Sentinel groups)."""
    paths = default_paths()
    started = time.monotonic()
    try:
        count, group_count = int(hosts), int(groups)
        sentinel_count = int(sentinels) if sentinels is not None else None
        shard_count = int(cluster) if cluster is not None else None
        names = [f"lab{i}" for i in range(1, count + 1)]
        if shard_count is not None:
            inventory_file.cluster_layout(names, shard_count)
        else:
            inventory_file.group_layout(names, group_count, sentinel_count)
    except ValueError as error:
        raise Exit(f"error: {error}", 2)
    golden.build_golden_tree(paths)
    try:
        made = lab_hosts.up(paths, count)
    except lab_hosts.LabError as error:
        raise Exit(f"lab.up failed: {error}", 1)
    written = inventory_file.write_lab_inventory(paths, made, Path(inventory), group_count, sentinel_count,
                                                 shard_count)
    print(f"{len(made)} lab hosts up in {time.monotonic() - started:.2f}s; inventory: {written}")


@task
def down(c):
    """Stop every lab host; remove its processes, mounts, namespaces and interfaces."""
    started = time.monotonic()
    lab_hosts.down(default_paths())
    print(f"lab down in {time.monotonic() - started:.2f}s")


@task
def status(c):
    """List lab hosts and whether they run."""
    rows = lab_hosts.status(default_paths())
    if not rows:
        print("no lab hosts")
    for host, pid in rows:
        print(f"{host.name:8} {host.address:12} {'up (init pid ' + str(pid) + ')' if pid else 'DOWN'}")


@task
def restart(c, host):
    """Reboot a lab host: its files stay, sysctl.conf and /etc/rc.local run again."""
    lab_hosts.restart(default_paths(), host)


@task(help={"signal": "STOP, CONT, KILL, TERM …", "pattern": "pkill -f pattern, e.g. 'redis-server.*:6379'"})
def signal(c, host, pattern, signal="KILL"):
    """Send a signal to processes on a lab host (stop / continue / kill a process)."""
    count = lab_hosts.signal_process(default_paths(), host, pattern, signal)
    print(f"{host}: SIG{signal} to {count} process(es) matching {pattern!r}")


@task
def cut(c, host):
    """Cut a lab host's network (its processes keep running)."""
    lab_hosts.cut_network(default_paths(), host)


@task
def heal(c, host):
    """Restore a lab host's network after `lab.cut`."""
    lab_hosts.restore_network(default_paths(), host)


lab = Collection("lab", build, up, down, status, restart, signal, cut, heal)


@task(name="test")
def vm_test(c):
    """The VM tier (real kernels, systemd, reboots, power-off) on 3 VMs under software emulation:
    builds the box once, boots the VMs, deploys with the artifact cache warm, checks, tears down.
    Needs one deploy to the namespace lab first (the VMs never compile)."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "pytest", "-v", "-s", "-m", "vm", "tests/test_vm.py"],
                            env={**__import__("os").environ, "REDIS_PROVISION_VM": "1"})
    if result.returncode:
        raise Exit(code=result.returncode)


@task(name="down")
def vm_down(c):
    """Power off every VM of the VM tier and remove its network namespace."""
    from lab import vm
    vm.down(default_paths())


vm_collection = Collection("vm", vm_test, vm_down)
