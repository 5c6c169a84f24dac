"""The plan: who is master, replica and sentinel, what --limit keeps, the lab's shapes."""
from __future__ import annotations

import pytest

from provision.core import plan as planner
from provision.facts import topology


def test_plan_marks_initial_master_replicas_and_sentinels(lab_like_plan):
    lab1, lab2 = lab_like_plan.host_plan("lab1"), lab_like_plan.host_plan("lab2")
    assert lab1.nodes[0].starts_as_master and not lab2.nodes[0].starts_as_master
    assert lab2.nodes[0].initial_master.name == "lab1"
    assert [h.name for h in lab_like_plan.sentinel_hosts] == ["lab1", "lab2", "lab3"]


def test_plan_limit_keeps_only_named_hosts_and_rejects_unknown(lab_like_plan):
    limited = planner.build(lab_like_plan.inventory, ("lab2",))
    assert [h.host.name for h in limited.hosts] == ["lab2"]
    with pytest.raises(KeyError):
        planner.build(lab_like_plan.inventory, ("nope",))


def test_limit_takes_group_names_and_globs_and_names_a_pattern_that_matches_nothing(lab_like_plan):
    inventory = lab_like_plan.inventory
    assert planner.limit_hosts(inventory, ("mymaster",)) == ("lab1", "lab2", "lab3")
    assert planner.limit_hosts(inventory, ("lab[23]",)) == ("lab2", "lab3")
    assert planner.limit_hosts(inventory, ("lab3", "lab1")) == ("lab1", "lab3")   # inventory order
    assert planner.limit_hosts(inventory, ("my*",)) == ("lab1", "lab2", "lab3")  # a glob over group names
    with pytest.raises(KeyError, match="db-\\* matches no host or group"):
        planner.limit_hosts(inventory, ("lab1", "db-*"))


def test_lab_shapes_spread_groups_over_hosts_with_a_sentinel_set():
    from lab.inventory_file import group_layout
    names = [f"lab{i}" for i in range(1, 31)]
    groups, sentinels = group_layout(names, 10)
    assert len(groups) == 10 and sentinels == ["lab1", "lab2", "lab3"]
    assert groups["group1"] == {**groups["group1"], "master": "lab1", "replicas": ["lab2", "lab3"], "quorum": 2}
    assert sorted(h for g in groups.values() for h in [g["master"], *g["replicas"]]) == sorted(names)
    one, every = group_layout(names, 1)
    assert one["mymaster"]["replicas"] == names[1:] and every == names and one["mymaster"]["quorum"] == 16
    _, five = group_layout(names, 10, sentinels=5)
    assert five == names[:5]
    with pytest.raises(ValueError, match="--groups"):
        group_layout(names[:3], 4)


def test_the_sentinel_majority_rule_counts_all_configured_sentinels_not_only_those_that_answered():
    two_of_five = topology.agreement(["10.0.0.1", "10.0.0.1", None, None, None], 5)
    assert two_of_five.address == "10.0.0.1" and not two_of_five.has_majority and two_of_five.unanimous
    three_of_five = topology.agreement(["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1"], 5)
    assert three_of_five.has_majority and not three_of_five.unanimous and not three_of_five.contested
    split = topology.agreement(["10.0.0.1", "10.0.0.2"], 3)
    assert split.contested and not split.has_majority
    assert topology.agreement([], 3).address is None
