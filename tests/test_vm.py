"""The VM tier: what only real machines show, on 3 VMs under qemu's software emulation (real
kernel, systemd as PID 1). Opt-in: REDIS_PROVISION_VM=1 (`.ci/run vm`, or `invoke vm.test`). Prints its timings (pytest -s)."""
from __future__ import annotations

import os
import shutil
import time

import pytest
import yaml

from provision import cli
from provision.ops import drill
from provision.ssh import netns
from lab import golden, vm
from tests.labtools import client, master_per_sentinel, run_on, verify_failures, wait_for
from tests.test_restart_lab import assert_nothing_lost

pytestmark = [pytest.mark.vm, pytest.mark.skipif(os.environ.get("REDIS_PROVISION_VM") != "1",
                                                 reason="the VM tier is opt-in: REDIS_PROVISION_VM=1 or invoke vm.test")]

VMS = (1, 2, 3)
TIMINGS: dict[str, float] = {}


def timed(name: str, started: float) -> None:
    TIMINGS[name] = time.monotonic() - started
    print(f"vm tier: {name} {TIMINGS[name]:.1f}s", flush=True)


def artifact_is_warm(artifact_dir) -> bool:
    return any(artifact_dir.glob(f"redis-{golden.REDIS_SOURCE_VERSION}-debian-12-x86_64-*-systemd.tar.gz"))


@pytest.fixture(scope="module")
def vm_artifacts(request, artifact_dir, lab_paths):
    """The session's build cache with the release built: after the lab tier it is (the VMs never
    compile, a compile under emulation takes half an hour); run alone, the tier builds it once on
    the namespace lab. The namespace lab is taken down before the VMs boot: idle, it keeps most of
    a core busy, which the emulated VMs need."""
    from lab import hosts as lab_hosts
    if not artifact_is_warm(artifact_dir):
        lab = request.getfixturevalue("lab")
        print("vm tier: building the Redis artifact once on the namespace lab", flush=True)
        with netns.joined(lab_hosts.BRIDGE_NAMESPACE):
            report = cli.deploy(str(lab), artifact_dir=str(artifact_dir), say=lambda _: None)
        assert report.ok and artifact_is_warm(artifact_dir), "the namespace lab could not build the artifact"
    lab_hosts.down(lab_paths, log=lambda _: None)
    return artifact_dir


@pytest.fixture(scope="module")
def vms(lab_paths, tmp_path_factory, vm_artifacts):
    if os.geteuid() != 0:
        pytest.fail("the VM tier needs root (namespaces, taps)")
    if shutil.which("vagrant") and not os.path.exists("/run/libvirt/libvirt-sock"):
        print("vm tier: vagrant-libvirt needs libvirtd, which is not running here (PID 1 is not systemd): "
              "booting the VMs with qemu directly", flush=True)
    elif not shutil.which("vagrant"):
        print("vm tier: no vagrant here: booting the VMs with qemu directly", flush=True)
    started = time.monotonic()
    vm.down(lab_paths)
    vm.build_box(lab_paths)
    timed("box (cached after the first build)", started)
    started = time.monotonic()
    for index in VMS:
        vm.start(lab_paths, index, fresh=True)
    for index in VMS:
        vm.wait_ssh(index)
    timed("boot 3 VMs to SSH", started)
    document = vm.inventory_document(lab_paths, len(VMS), golden.fetch_redis_source(lab_paths))
    path = tmp_path_factory.mktemp("vm") / "vm.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    yield path
    vm.down(lab_paths)
    print("vm tier timings: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in TIMINGS.items()), flush=True)


@pytest.fixture
def vm_network():
    with netns.joined(vm.NAMESPACE):
        yield


def master_of(inventory) -> str:
    answers = set(master_per_sentinel(inventory).values())
    assert len(answers) == 1 and None not in answers, answers
    address = answers.pop()
    return next(host.name for host in inventory.hosts if host.data_address == address)


def test_deploy_with_a_warm_cache_runs_redis_as_systemd_units(vms, vm_network, vm_artifacts):
    started = time.monotonic()
    lines: list[str] = []
    report = cli.deploy(str(vms), artifact_dir=str(vm_artifacts), say=lines.append)
    timed("deploy (artifact shipped, nothing compiled)", started)
    assert report.ok, "\n".join(lines)
    assert not any("build Redis" in line for line in lines), "a VM compiled"
    inventory = cli.load_plan(str(vms)).inventory
    for host in ("vm1", "vm2", "vm3"):
        states = run_on(inventory, host, "systemctl is-active redis-6379 redis-sentinel redis-provision-thp; "
                                         "systemctl is-enabled redis-6379 redis-sentinel redis-provision-thp").split()
        assert states == ["active"] * 3 + ["enabled"] * 3, (host, states)
        assert run_on(inventory, host, "systemctl show -p MainPID --value redis-6379").strip() == \
            run_on(inventory, host, "cat /app/redis/run/redis-6379.pid").strip()
    again = cli.deploy(str(vms), artifact_dir=str(vm_artifacts), say=lambda _: None)
    assert again.ok and again.changed == 0
    wait_for(lambda: not verify_failures(vms), 120, "verify to pass on the VMs", interval=2)


def test_the_real_kernel_has_the_sysctls_and_thp_off(vms, vm_network):
    inventory = cli.load_plan(str(vms)).inventory
    wanted = dict(inventory.system.sysctl)
    for host in ("vm1", "vm2", "vm3"):
        values = run_on(inventory, host, "sysctl -n " + " ".join(wanted)).split()
        assert dict(zip(wanted, map(int, values))) == wanted, host
        assert run_on(inventory, host, "cat /sys/kernel/mm/transparent_hugepage/enabled").strip() == \
            "always madvise [never]"
        assert run_on(inventory, host, "uname -r").strip().startswith("6.1"), "a real kernel of its own"


def reboot(inventory, lab_paths, host: str) -> float:
    index = int(host.removeprefix("vm"))
    run_on(inventory, host, "nohup sh -c 'sleep 1; systemctl reboot' > /dev/null 2>&1 &")
    time.sleep(5)
    return vm.wait_ssh(index)


def linked(inventory, host: str) -> bool:
    info = client(inventory, host).info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def test_a_real_reboot_of_a_replica_then_of_the_master_loses_nothing(vms, vm_network, lab_paths):
    plan = cli.load_plan(str(vms))
    inventory, group = plan.inventory, plan.inventory.groups[0]
    with drill.writing(plan, group) as (run_id, log):
        time.sleep(2)
        replica = next(host for host in ("vm3", "vm2") if host != master_of(inventory))
        started = time.monotonic()
        reboot(inventory, lab_paths, replica)
        wait_for(lambda: linked(inventory, replica), 180, f"{replica} back as a replica", interval=1)
        timed(f"reboot of replica {replica} until linked", started)
        master = master_of(inventory)
        started = time.monotonic()
        reboot(inventory, lab_paths, master)
        wait_for(lambda: linked(inventory, master), 240, f"{master} back as a replica", interval=1)
        timed(f"reboot of master {master} until back as a replica", started)
        time.sleep(2)
    assert master_of(inventory) != master
    assert_nothing_lost(plan, group, run_id, log)
    wait_for(lambda: not verify_failures(vms), 120, "verify to pass after the reboots", interval=2)


def test_a_crashed_master_is_restarted_by_systemd_only_as_a_replica(vms, vm_network):
    """Restart=on-failure brings the process back through the start guard (ExecStartPre): the
    sentinels fail it over first, and it never serves as a master beside the new one."""
    from provision.ops import rolewatch
    plan = cli.load_plan(str(vms))
    inventory, group = plan.inventory, plan.inventory.groups[0]
    master = master_of(inventory)
    with drill.writing(plan, group) as (run_id, log), rolewatch.RoleWatch(plan, group) as watch:
        time.sleep(2)
        started = time.monotonic()
        run_on(inventory, master, "kill -KILL $(cat /app/redis/run/redis-6379.pid)")
        wait_for(lambda: linked(inventory, master), 240, f"{master} restarted by systemd as a replica", interval=1)
        timed(f"kill -9 of master {master} until systemd had it back as a replica", started)
        time.sleep(2)
    assert master_of(inventory) != master
    assert watch.two_master_seconds == 0, watch.summary()
    assert_nothing_lost(plan, group, run_id, log)
    journal = run_on(inventory, master, "journalctl -u redis-6379 --no-pager | tail -n 30")
    assert "prepared as replica of" in journal, journal      # the guard ran before the restart


def test_sentinels_fail_over_when_the_master_vm_is_powered_off(vms, vm_network, lab_paths):
    plan = cli.load_plan(str(vms))
    inventory = plan.inventory
    master = master_of(inventory)
    index = int(master.removeprefix("vm"))
    started = time.monotonic()
    vm.power_off(lab_paths, index)
    others = [name for name in ("vm1", "vm2", "vm3") if name != master]

    def new_master():
        answers = {name: address for name, address in master_per_sentinel(inventory).items() if name in others}
        addresses = set(answers.values())
        return len(addresses) == 1 and None not in addresses and \
            inventory.host(master).data_address not in addresses and addresses.pop()
    wait_for(new_master, 120, "the other sentinels to promote a replica", interval=0.5)
    timed(f"power-off of master {master} until a new master", started)
    started = time.monotonic()
    vm.start(lab_paths, index)
    vm.wait_ssh(index)
    wait_for(lambda: linked(inventory, master), 240, f"{master} back as a replica after power-on", interval=1)
    timed(f"power-on of {master} until linked as a replica", started)
    wait_for(lambda: not verify_failures(vms), 120, "verify to pass at the end", interval=2)


def test_a_cascade_of_real_reboots_one_second_apart_loses_nothing(vms, vm_network):
    """The cascade issue's restart paths on real systemd hosts: replica, master and replica
    rebooted 1 s apart under the writer; every node comes back fenced through the unit's
    ExecStartPre, the old master as master with its own AOF, and the keepers (ExecStartPost)
    lift the fences once the replicas have synced."""
    plan = cli.load_plan(str(vms))
    started = time.monotonic()
    report = drill.run(plan, mode="cascade", order="replica,master,replica", spacing=1.0, allow_reboot=True,
                       settle_seconds=900, say=print)
    timed("cascade of 3 real reboots 1 s apart until settled", started)
    print(drill.format_report(report))
    assert report.two_master_seconds == 0, report.role_watch
    assert {kind: (count.lost, count.lost_on_some_node) for kind, count in report.kinds.items()} == \
        {kind: (0, 0) for kind in drill.WRITE_KINDS}, report.kinds
    assert report.ok, drill.format_report(report)
    inventory = plan.inventory
    for host in ("vm1", "vm2", "vm3"):
        log = run_on(inventory, host, "cat /app/redis/boot/start-redis-6379.log")
        assert "keeper:" in log or host == report.new_master, log
