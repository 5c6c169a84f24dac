"""Members joining and leaving a live deployment on the real lab hosts: a 4th host added as
replica + sentinel and retired again (nothing else restarts: run_ids compared), regrouping 6
hosts refused before any host is touched, a second group on the same sentinels added and then
taken out of the inventory."""
from __future__ import annotations

import time

import pytest
import yaml

from provision import cli
from lab import hosts as lab_hosts
from tests.labtools import client, deploy, reload, run_on, sentinel_client, start_times, verify_failures, wait_for

pytestmark = pytest.mark.lab


def with_hosts(lab, tmp_path, names, change, file_name="members.yml"):
    """The lab inventory with extra lab hosts (same key and user as lab1) and `change` applied."""
    document = yaml.safe_load(open(lab))
    template = document["hosts"]["lab1"]
    for name in names:
        index = int(name.removeprefix("lab"))
        document["hosts"].setdefault(name, {**template, "address": f"10.77.0.{10 + index}"})
    change(document)
    target = tmp_path / file_name
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def run_ids(inventory, hosts=("lab1", "lab2", "lab3")) -> dict[str, str]:
    ids = {}
    for host in hosts:
        ids[f"{host}:redis"] = client(inventory, host).info("server")["run_id"]
        ids[f"{host}:sentinel"] = sentinel_client(inventory, host).info("server")["run_id"]
    return ids


def sentinel_counts(inventory, group="mymaster") -> dict[str, tuple[int, int]]:
    counts = {}
    for name in inventory.sentinels:
        state = sentinel_client(inventory, name).execute_command("SENTINEL", "MASTER", group)
        fields = dict(zip(state[0::2], state[1::2])) if isinstance(state, list) else state
        counts[name] = (int(fields["num-slaves"]), int(fields["num-other-sentinels"]))
    return counts


def test_a_fourth_host_joins_and_leaves_without_restarting_the_others(deployed_lab, lab, lab_paths, six_hosts,
                                                                    lab_inventory, artifact_dir, tmp_path):
    lab_hosts.reinstall(lab_paths, "lab4", log=lambda _: None)
    before = run_ids(lab_inventory)

    def add(document):
        document["groups"]["mymaster"]["replicas"].append("lab4")
        document["sentinels"].append("lab4")
    joined = with_hosts(lab, tmp_path, ["lab4"], add)
    started = time.monotonic()
    report, output = deploy(joined, artifact_dir)
    join_seconds = time.monotonic() - started
    assert report.ok, output
    inventory = reload(joined)
    assert run_ids(lab_inventory) == before, "joining restarted nothing on the other hosts"
    assert client(inventory, "lab4").info("replication")["master_link_status"] == "up"
    wait_for(lambda: set(sentinel_counts(inventory).values()) == {(3, 3)}, 30, "4 sentinels seeing 3 replicas")
    assert not verify_failures(joined)

    def retire(document):
        document["hosts"]["lab4"]["state"] = "absent"
    left = with_hosts(lab, tmp_path, ["lab4"], retire, "left.yml")
    started = time.monotonic()
    report, output = deploy(left, artifact_dir)
    leave_seconds = time.monotonic() - started
    assert report.ok, output
    assert "lab4: retire: stop redis-server :6379 (the host is state: absent; its data stays in /app/redis/data/6379)" \
        in output
    assert output.count("SENTINEL RESET mymaster") == 3, output
    print(f"membership: join {join_seconds:.1f}s, leave (stop + 3 sentinel resets) {leave_seconds:.1f}s")
    assert set(sentinel_counts(reload(left)).values()) == {(2, 2)}, "the sentinels forgot lab4 at once"
    assert run_ids(lab_inventory) == before, "leaving restarted nothing on the other hosts"
    lab4 = reload(left)
    assert "redis-server" not in run_on(lab4, "lab4", "ps -eo comm") and \
        run_on(lab4, "lab4", "test -d /app/redis/data/6379 && echo kept").strip() == "kept"
    assert not verify_failures(left)
    again, output = deploy(left, artifact_dir)
    assert again.ok and again.changed == 0, output


def test_regrouping_six_hosts_is_refused_before_any_host_is_touched(deployed_lab, lab, lab_paths, six_hosts,
                                                                   lab_inventory, artifact_dir, tmp_path):
    for name in ("lab4", "lab5", "lab6"):
        lab_hosts.reinstall(lab_paths, name, log=lambda _: None)
    extra = ["lab4", "lab5", "lab6"]
    one_group = with_hosts(lab, tmp_path, extra, lambda d: d["groups"]["mymaster"]["replicas"].extend(extra), "one.yml")
    report, output = deploy(one_group, artifact_dir)
    assert report.ok, output

    def split(document):
        document["groups"]["mymaster"]["replicas"] = ["lab2", "lab3"]
        document["groups"]["group2"] = {**document["groups"]["mymaster"], "master": "lab4", "replicas": ["lab5", "lab6"]}
    two_groups = with_hosts(lab, tmp_path, extra, split, "two.yml")
    before = start_times(reload(one_group))
    started = time.monotonic()
    report, output = deploy(two_groups, artifact_dir)
    assert not report.ok and time.monotonic() - started < 15, output
    assert report.changed == 0 and {getattr(o.error, "step", None) for o in report.outcomes} == {"preflight"}, output
    assert "lab4:6379 is a member of group mymaster (the sentinels say), the inventory puts it in group2" in output
    assert start_times(reload(one_group)) == before

    # What the message says to do instead: retire them (data kept), wipe, and add them as a new group.
    retired = with_hosts(lab, tmp_path, extra, lambda d: [d["hosts"][n].__setitem__("state", "absent") for n in extra],
                         "retired.yml")
    report, output = deploy(retired, artifact_dir)
    assert report.ok, output
    for name in extra:
        lab_hosts.reinstall(lab_paths, name, log=lambda _: None)

    def second_group(document):
        document["groups"]["group2"] = {**document["groups"]["mymaster"], "master": "lab4", "replicas": ["lab5", "lab6"]}
    both = with_hosts(lab, tmp_path, extra, second_group, "both.yml")
    report, output = deploy(both, artifact_dir)
    assert report.ok, output
    assert "SENTINEL MONITOR group2 10.77.0.14" in output
    wait_for(lambda: not verify_failures(both), 60, "verify to pass with two groups", interval=1)
    again, output = deploy(both, artifact_dir)
    assert again.ok and again.changed == 0, output

    # group2 taken out of the inventory (and its hosts retired): unmonitored, its data kept.
    report, output = deploy(retired, artifact_dir)
    assert report.ok, output
    assert output.count("SENTINEL REMOVE group2") == 3, output
    for name in ("lab1", "lab2", "lab3"):
        masters = sentinel_client(lab_inventory, name).execute_command("SENTINEL", "MASTERS")
        assert [dict(zip(m[0::2], m[1::2]))["name"] if isinstance(m, list) else m["name"] for m in masters] == ["mymaster"]
    assert not verify_failures(retired)
    assert cli.load_plan(str(retired)).inventory.host("lab5").absent
