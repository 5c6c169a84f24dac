"""redis.settings names are checked against the installed release's own list (CONFIG GET of a
throwaway server) before any config is written; unit tests of which names are asked and how a
miss is worded. The lab proof: test_change_lab.py (a mistyped name refused on every host)."""
from __future__ import annotations

from dataclasses import replace

from provision.core import plan as planner
from provision.core.state import HostState
from provision.steps import node
from provision.steps.hostrun import HostRun, RunOptions
from tests.fakeremote import FakeRemote
from tests.test_steps import FACTS

# What the probe prints: each asked name's CONFIG GET, then CONFIG GET * (an excerpt).
RELEASE_LIST = "hz\n10\ntimeout\n0\nmaxmemory-policy\nnoeviction\nhz\n10\nslaveof\n\nreplicaof\n\n"
PROBE = (r"CONFIG GET", RELEASE_LIST, 0)


def with_settings(lab_like_plan, global_settings=(), host_settings=()):
    inventory = lab_like_plan.inventory
    redis = replace(inventory.redis, extra_settings=tuple(global_settings))
    hosts = tuple(replace(host, redis=replace(host.redis, settings=tuple(host_settings))) if host.name == "lab2" else host
                  for host in inventory.hosts)
    return planner.build(replace(inventory, redis=redis, hosts=hosts))


def run_for(plan, facts=FACTS, state=None, check=False):
    fake = FakeRemote(plan.inventory.host("lab2"), answers=[PROBE])
    said: list[str] = []
    run = HostRun(fake, plan, plan.host_plan("lab2"), RunOptions(check=check), said.append)
    run.facts, run.state = facts, state
    return run, fake


def test_a_name_the_release_lacks_is_named_at_each_key_path_with_a_did_you_mean(lab_like_plan):
    plan = with_settings(lab_like_plan, [("hz", "25"), ("timout", "300")], [("timout", "600")])
    run, fake = run_for(plan)
    assert node.unknown_setting_problems(run) == [
        "hosts.lab2.redis.settings.timout: Redis 7.0.15 has no directive 'timout'; did you mean 'timeout'?",
        "redis.settings.timout: Redis 7.0.15 has no directive 'timout'; did you mean 'timeout'?"]
    assert len(fake.commands) == 1 and "'*'" in fake.commands[0] and "hz timout" in fake.commands[0]


def test_an_alias_and_a_config_file_only_directive_are_known(lab_like_plan):
    plan = with_settings(lab_like_plan, [("slaveof", "10.0.0.1 6379"), ("rename-command", "FLUSHALL ''")])
    run, fake = run_for(plan)
    assert node.unknown_setting_problems(run) == []
    assert "rename-command" not in fake.commands[0]


def test_names_written_on_an_earlier_run_of_the_same_release_are_not_asked_again(lab_like_plan):
    plan = with_settings(lab_like_plan, [("hz", "25")])
    run, fake = run_for(plan, state=HostState(settings={6379: ("hz",)}))
    assert node.unknown_setting_problems(run) == [] and fake.commands == []


def test_after_a_change_of_release_every_name_is_asked_again(lab_like_plan):
    plan = with_settings(lab_like_plan, [("hz", "25")])
    run, fake = run_for(plan, facts=replace(FACTS, installed_version="6.2.14"),
                        state=HostState(settings={6379: ("hz",)}))
    assert node.unknown_setting_problems(run) == [] and len(fake.commands) == 1


def test_check_mode_before_the_release_is_installed_asks_nothing_and_says_so(lab_like_plan):
    plan = with_settings(lab_like_plan, [("timout", "300")])
    run, fake = run_for(plan, facts=replace(FACTS, installed_version=None), check=True)
    assert node.unknown_setting_problems(run) == [] and fake.commands == []
    assert any("once it is installed" in change.action for change in run.changes)
