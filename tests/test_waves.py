"""The deploy as a table: a plan and a topology in, the hosts each wave takes out. Each row names
the situation; no SSH, no step runs (the waves' host choosers are pure over the shared state)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from provision.deploy import orchestrate
from provision.deploy.waves import Runner
from provision.steps.hostrun import HostRun, RunOptions
from tests.test_steps import FACTS


@dataclass(frozen=True)
class Row:
    situation: str
    master: str                          # who is master of mymaster
    source: str                          # how it was found: inventory (fresh), sentinels, roles
    stopped_master: bool = False         # the named master is not running
    expected: dict = None                # wave name → host names (waves not named take no host)


EVERYONE = ["lab1", "lab2", "lab3"]
ROWS = [
    Row("a fresh deploy configures the inventory's master first, then its replicas", "lab1", "inventory",
        expected={"new masters": ["lab1"], "replicas": ["lab2", "lab3"], "running masters": []}),
    Row("after a failover the sentinels' master is configured in place, never as new", "lab2", "sentinels",
        expected={"new masters": [], "replicas": ["lab1", "lab3"], "running masters": ["lab2"]}),
    Row("a stopped master is recovered after its replicas are started", "lab2", "sentinels", stopped_master=True,
        expected={"recover replicas": ["lab1", "lab3"], "recover": ["lab2"], "running masters": ["lab2"]}),
]


def deploy_state(plan, row: Row) -> orchestrate.Deploy:
    runner = Runner(1, lambda _: None, lambda text: text)
    for host_plan in plan.hosts:
        run = HostRun(None, plan, host_plan, RunOptions(), lambda _: None)
        run.facts = replace(FACTS, processes=())
        runner.runs[host_plan.host.name] = run
    state = orchestrate.Deploy(plan, RunOptions(), runner)
    state.set_master("mymaster", plan.inventory.host(row.master), row.source)
    if row.stopped_master:
        state.mark_master_stopped("mymaster")
    return state


@pytest.mark.parametrize("row", ROWS, ids=[row.situation for row in ROWS])
def test_each_wave_takes_the_hosts_its_row_says(row, lab_like_plan):
    state = deploy_state(lab_like_plan, row)
    try:
        taken = {wave.name: sorted(run.name for run in wave.hosts(state))
                 for wave in orchestrate.WAVES if wave.hosts is not None}
    finally:
        state.runner.pool.shutdown()
    for wave in ("facts", "layout", "install", "tune", "sentinel", "sentinel-wait"):
        assert taken[wave] == EVERYONE, wave
    for wave, hosts in row.expected.items():
        assert taken[wave] == hosts, (wave, taken)
    if not row.stopped_master:
        assert taken["recover"] == [] and taken["recover replicas"] == []
    assert taken["retire"] == []


def test_a_host_marked_absent_is_retired_and_serves_no_wave(lab_like_plan, tmp_path):
    from provision import inventory
    from provision.core import plan as planner
    from tests.conftest import base, write
    document = base()
    document["hosts"] = {f"lab{i}": {"address": f"10.77.0.1{i}"} for i in (1, 2, 3, 4)}
    document["hosts"]["lab4"]["state"] = "absent"
    document["groups"] = {"mymaster": {"master": "lab1", "replicas": ["lab2", "lab3"], "quorum": 2}}
    document["sentinels"] = ["lab1", "lab2", "lab3"]
    environment = {"PA": "admin-password-1", "PR": "replication-password-1", "PS": "sentinel-password-1",
                   "PP": "app-password-1"}
    plan = planner.build(inventory.load(write(tmp_path, document), environment))
    state = deploy_state(plan, Row("", "lab1", "sentinels"))
    try:
        assert [run.name for run in orchestrate.hosts_with_departures(state)] == ["lab4"]
        assert "lab4" not in [run.name for run in orchestrate.serving_hosts(state)]
        assert "lab4" not in [run.name for run in orchestrate.sentinel_hosts(state)]
    finally:
        state.runner.pool.shutdown()
