"""The forget wave's decision, on a sentinel whose answers are scripted: a group holding a stale
entry that still runs is never RESET (a RESET would find it again and the wait that follows
fails), even when other stale entries are down; check mode names what the run would forget,
counting what this run stops first as down."""
from __future__ import annotations

from provision.facts import rediscli
from provision.ssh.remote import CommandResult
from provision.steps import membership

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
