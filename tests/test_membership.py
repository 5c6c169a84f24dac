"""Membership without the lab: what must stop on a host, what a sentinel must forget, and the
forget wave's decision on a sentinel whose answers are scripted: a group holding a stale entry
that still runs is never RESET (a RESET would find it again and the wait that follows fails),
even when other stale entries are down; check mode names what the run would forget, counting
what this run stops first as down."""
from __future__ import annotations

from provision import inventory
from provision.core import plan as planner, render
from provision.facts import rediscli, topology
from provision.facts.host import HostFacts, RedisProcess
from provision.ssh.remote import CommandResult
from provision.steps import membership
from tests.test_inventory import base, write

DEPARTED_DOWN = {"name": "10.77.0.14:6379", "ip": "10.77.0.14", "port": "6379", "flags": "s_down,slave,disconnected"}
STRANGER_UP = {"name": "10.77.0.99:6379", "ip": "10.77.0.99", "port": "6379", "flags": "slave"}
LAB2 = {"name": "10.77.0.12:6379", "ip": "10.77.0.12", "port": "6379", "flags": "slave"}
LAB3 = {"name": "10.77.0.13:6379", "ip": "10.77.0.13", "port": "6379", "flags": "slave"}


def records(*items: dict) -> str:
    return "\n".join(f"{key}\n{value}" for item in items for key, value in item.items())


def scripted_sentinel(monkeypatch, replicas: list[dict]) -> list[list[str]]:
    """Every sentinel answers with these replicas and the two peers; returns the calls made."""
    calls = []
    peers = [{"name": "a", "ip": "10.77.0.12", "flags": "sentinel"}, {"name": "b", "ip": "10.77.0.13", "flags": "sentinel"}]

    def answer(remote, plan, host, args, timeout=None, secret_args=False):
        calls.append([host.name, *args])
        if args[1] == "MASTER":
            text = records({"name": "mymaster", "num-slaves": str(len(replicas)), "num-other-sentinels": "2"})
        elif args[1] == "REPLICAS":
            text = records(*replicas)
        elif args[1] == "SENTINELS":
            text = records(*peers)
        elif args[1] == "RESET":
            text = "1"
        else:
            raise AssertionError(f"unexpected sentinel command {args}")
        return CommandResult(" ".join(args), 0, text + "\n", "")
    monkeypatch.setattr(rediscli, "sentinel_call", answer)
    return calls


def test_a_group_with_a_stale_entry_still_running_is_named_and_not_reset(lab_like_plan, monkeypatch):
    calls = scripted_sentinel(monkeypatch, [LAB2, LAB3, DEPARTED_DOWN, STRANGER_UP])
    said = []
    forgotten = membership.forget_departed(lab_like_plan, {h.name: object() for h in lab_like_plan.inventory.hosts},
                                           said.append, check=False, settle_seconds=0)
    assert forgotten == []
    assert not [call for call in calls if "RESET" in call]
    assert len(said) == 3 and all("replica 10.77.0.99:6379" in line and "still running" in line for line in said)


def test_a_group_whose_stale_entries_are_all_down_is_reset_and_waited_for(lab_like_plan, monkeypatch):
    replicas = [LAB2, LAB3, DEPARTED_DOWN]
    calls = scripted_sentinel(monkeypatch, replicas)

    def after_reset(remote, plan, host, args, timeout=None, secret_args=False):
        result = answer(remote, plan, host, args, timeout, secret_args)
        if args[1] == "RESET":
            replicas.remove(DEPARTED_DOWN)
        return result
    answer = rediscli.sentinel_call
    monkeypatch.setattr(rediscli, "sentinel_call", after_reset)
    said = []
    forgotten = membership.forget_departed(lab_like_plan, {h.name: object() for h in lab_like_plan.inventory.hosts},
                                           said.append, check=False, settle_seconds=0)
    assert [f.stale for f in forgotten] == [("replica 10.77.0.14:6379",)]     # the first reset fixes every view here
    assert sum("RESET" in call for call in calls) == 1


def test_check_mode_names_what_it_would_forget_counting_what_this_run_stops(lab_like_plan, monkeypatch):
    running_on_lab3 = {**LAB3, "name": "10.77.0.13:6380", "port": "6380"}     # an inventory host: retire stops it
    calls = scripted_sentinel(monkeypatch, [LAB2, LAB3, DEPARTED_DOWN, running_on_lab3])
    said = []
    forgotten = membership.forget_departed(lab_like_plan, {h.name: object() for h in lab_like_plan.inventory.hosts},
                                           said.append, check=True, settle_seconds=0)
    assert [f.stale for f in forgotten][0] == ("replica 10.77.0.14:6379", "replica 10.77.0.13:6380")
    assert all("would SENTINEL RESET mymaster" in line for line in said) and said
    assert not [call for call in calls if "RESET" in call]


def test_check_mode_still_names_a_running_stranger_instead_of_an_empty_list(lab_like_plan, monkeypatch):
    scripted_sentinel(monkeypatch, [LAB2, LAB3, STRANGER_UP])
    said = []
    membership.forget_departed(lab_like_plan, {h.name: object() for h in lab_like_plan.inventory.hosts},
                               said.append, check=True, settle_seconds=0)
    assert said and all("knows replica 10.77.0.99:6379 in group mymaster" in line for line in said)


ENVIRONMENT = {"PA": "admin-password-1", "PR": "replication-password-1", "PS": "sentinel-password-1",
               "PP": "app-password-1"}


def host_facts(*processes: RedisProcess, active_bin: str | None = "versions/7.0.15/bin") -> HostFacts:
    return HostFacts(os_id="debian", os_version="12", arch="x86_64", init_system="bash", active_bin=active_bin,
                     installed_version="7.0.15", missing_build_tools=(), package_manager="apt-get",
                     has_redis_user=True, processes=processes)


def server(port=6379, version="7.0.15", address="10.77.0.11", install_dir="/app/redis", sentinel=False):
    return RedisProcess(100, f"{install_dir}/versions/{version}/bin/redis-server", address, port, sentinel)


def monitored(name="mymaster", port=6379, master="10.77.0.11", replicas=("10.77.0.12", "10.77.0.13")):
    return topology.Monitored(name, (master, port), tuple((address, port) for address in replicas))


def test_sentinel_forgets_only_departed_members_that_are_down(lab_like_plan):
    group = lab_like_plan.inventory.groups[0]
    replicas = [{"ip": "10.77.0.12", "port": "6379", "flags": "slave"},
                {"ip": "10.77.0.14", "port": "6379", "flags": "s_down,slave,disconnected"},
                {"ip": "10.77.0.15", "port": "6379", "flags": "slave"}]
    sentinels = [{"ip": "10.77.0.12", "flags": "sentinel"}, {"ip": "10.77.0.14", "flags": "sentinel,disconnected"}]
    down, up = membership.stale_entries(lab_like_plan, group, replicas, sentinels)
    assert down == ["replica 10.77.0.14:6379", "sentinel 10.77.0.14"]
    assert up == ["replica 10.77.0.15:6379"]


def test_retired_host_loses_only_the_tools_rc_local_block():
    text = "#!/bin/sh\necho mine\n" + render.RC_LOCAL_BEGIN + "\nstart redis\n" + render.RC_LOCAL_END + "\nexit 0\n"
    assert render.without_rc_local_block(text) == "#!/bin/sh\necho mine\nexit 0\n"
    assert render.without_rc_local_block("#!/bin/sh\nexit 0\n") == "#!/bin/sh\nexit 0\n"


def five_hosts_lab5_absent(tmp_path):
    """lab1..lab5, group mymaster on lab1 and lab2, sentinels on lab1-3, lab5 state: absent."""
    document = base()
    document["hosts"] = {f"lab{i}": {"address": f"10.77.0.1{i}"} for i in range(1, 6)}
    document["hosts"]["lab5"]["state"] = "absent"
    document["groups"] = {"mymaster": {"master": "lab1", "replicas": ["lab2"], "quorum": 2}}
    document["sentinels"] = ["lab1", "lab2", "lab3"]
    return planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))


def test_what_must_stop_on_a_host_follows_the_inventory_and_the_sentinels(tmp_path):
    from types import SimpleNamespace
    plan = five_hosts_lab5_absent(tmp_path)
    view = (monitored(replicas=("10.77.0.12", "10.77.0.13")), monitored(name="dropped", port=6380, master="10.77.0.13"))

    def run_on(name, *processes):
        return SimpleNamespace(facts=host_facts(*processes), host_plan=plan.host_plan(name), plan=plan)
    sentinel = server(port=26379, sentinel=True)
    # lab3: out of mymaster (stops), master of a group the inventory dropped (left), still a sentinel
    lab3 = run_on("lab3", server(address="10.77.0.13"), server(port=6380, address="10.77.0.13"), sentinel)
    assert membership.unwanted_processes(lab3, view) == [(6379, "no longer a member of group mymaster")]
    lab5 = run_on("lab5", server(address="10.77.0.15"), sentinel)
    assert membership.unwanted_processes(lab5, view) == [(6379, "the host is state: absent"),
                                                         (None, "the host is state: absent")]
    lab2 = run_on("lab2", server(address="10.77.0.12"), sentinel)
    assert membership.unwanted_processes(lab2, view) == []


def test_a_retiring_hosts_cluster_node_its_cluster_still_counts_on_keeps_running_with_its_boot_entry(tmp_path):
    """The cluster's reshape failed before every member forgot lab5's node: the retire wave
    stops lab5's other processes but not that node, and leaves rc.local as it is."""
    from provision.steps.hostrun import HostRun, RunOptions
    from tests.fakeremote import FakeFile, FakeRemote
    plan = five_hosts_lab5_absent(tmp_path)
    host_plan = plan.host_plan("lab5")
    rc_local = render.with_rc_local_block(None, "start redis\n")
    fake = FakeRemote(host_plan.host, answers=[(r"kill -TERM 100$", "", 0), (r"kill -0 100", "", 1),
                                               (r"cat /app/redis/run/redis-sentinel.pid", "100\n", 0),
                                               (r"cat /app/redis/run/redis-\d+.pid", "200\n", 0),
                                               (r"kill -0 ", "", 0), (r"/proc/", "", 0), (r"systemctl", "", 1)],
                      files={plan.layout.rc_local: FakeFile(rc_local, 0o755)})
    said: list[str] = []
    run = HostRun(fake, plan, host_plan, RunOptions(), said.append)
    run.facts = host_facts(server(address="10.77.0.15"), server(port=26379, sentinel=True))
    membership.retire(run, (), keep_ports=frozenset({6379}))
    assert any("redis-server :6379 left running: the cluster still counts it as a member" in line for line in said)
    assert not any("kill -TERM 200" in command for command in fake.commands), fake.commands
    assert fake.files[plan.layout.rc_local].content == rc_local
