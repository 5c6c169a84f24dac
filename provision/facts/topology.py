"""Who is master of each group RIGHT NOW: asked of the running Sentinels first, then of the
nodes' ROLE; the inventory's master is used only when nothing runs yet (a fresh deploy).

This is what keeps a re-run after a failover from pointing replicas back at the old master and
splitting the brain."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from provision.base import quorum
from provision.facts import rediscli
from provision.inventory import Group, Host
from provision.core.plan import Plan
from provision.ssh.remote import Remote


@dataclass(frozen=True)
class GroupMaster:
    group: str
    host: Host
    source: str   # "sentinels", "roles" or "inventory": how it was decided


class TopologyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Agreement:
    """What the sentinels that answered say about one group's master, against all configured
    sentinels: Sentinel's own rule is a majority of ALL of them, not of those that answered."""
    counts: dict[str, int]          # address → how many sentinels name it
    sentinel_count: int             # configured sentinels

    @property
    def address(self) -> str | None:
        """The address most sentinels name (None when none answered)."""
        return max(self.counts, key=self.counts.get) if self.counts else None

    @property
    def votes(self) -> int:
        return self.counts.get(self.address, 0) if self.address else 0

    @property
    def majority(self) -> int:
        return quorum.majority(self.sentinel_count)

    @property
    def has_majority(self) -> bool:
        return self.votes >= self.majority

    @property
    def unanimous(self) -> bool:
        """Every sentinel that answered names the same address."""
        return len(self.counts) == 1

    @property
    def contested(self) -> bool:
        """Answers split with no address named by more than half of them."""
        return len(self.counts) > 1 and self.votes * 2 <= sum(self.counts.values())


def agreement(answers: list[str | None], sentinel_count: int) -> Agreement:
    """The one place the majority rule lives (deploy, verify and status all use it)."""
    return Agreement(dict(Counter(answer for answer in answers if answer)), sentinel_count)


def parse_master_address(text: str) -> tuple[str, int] | None:
    """SENTINEL GET-MASTER-ADDR-BY-NAME reply (two lines, or nothing for an unknown name)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 2 and lines[1].isdigit():
        return lines[0], int(lines[1])
    return None


def parse_role(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines and lines[0] in ("master", "slave", "sentinel") else None


def sentinel_answers(plan: Plan, remotes: dict[str, Remote], group: Group) -> list[str]:
    answers = []
    for host in plan.sentinel_hosts:
        remote = remotes.get(host.name)
        if remote is None:
            continue
        result = rediscli.sentinel_call(remote, plan, host, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.name],
                                        timeout=5)
        address = parse_master_address(result.stdout) if result.ok else None
        if address:
            answers.append(address[0])
    return answers


def node_roles(plan: Plan, remotes: dict[str, Remote], group: Group) -> dict[str, str]:
    roles = {}
    for member in group.members:
        remote = remotes.get(member)
        if remote is None:
            continue
        host = plan.inventory.host(member)
        result = rediscli.call(remote, plan.layout, host.data_address, group.port, ["ROLE"],
                               user=plan.inventory.acl.admin, timeout=5)
        reply = rediscli.answer(result)
        role = parse_role(reply) if reply is not None else None
        if role:
            roles[member] = role
    return roles


def current_master(plan: Plan, remotes: dict[str, Remote], group: Group) -> GroupMaster:
    answers = sentinel_answers(plan, remotes, group)
    said = agreement(answers, len(plan.inventory.sentinels))
    if said.address:
        host = plan.host_by_data_address(said.address)
        if host is None:
            raise TopologyError(f"group {group.name}: sentinels name master {said.address}, which is no host of the "
                                "inventory")
        if said.contested:
            raise TopologyError(f"group {group.name}: sentinels disagree on the master ({said.counts}); "
                                "refusing to configure until they converge")
        return GroupMaster(group.name, host, "sentinels")
    roles = node_roles(plan, remotes, group)
    masters = [name for name, role in roles.items() if role == "master"]
    if len(masters) > 1:
        raise TopologyError(f"group {group.name}: several nodes say they are master ({', '.join(masters)}) and no "
                            "sentinel answers; refusing to pick one")
    if masters and len(roles) > 1 or (masters and masters[0] == group.master):
        return GroupMaster(group.name, plan.inventory.host(masters[0]), "roles")
    return GroupMaster(group.name, plan.inventory.host(group.master), "inventory")


def master_flags(plan: Plan, remotes: dict[str, Remote], group: Group) -> dict[str, str]:
    """sentinel host → the flags its SENTINEL MASTER reports for the group ("master",
    "master,s_down,o_down,failover_in_progress", ...), for the sentinels that answer."""
    flags = {}
    for host in plan.sentinel_hosts:
        remote = remotes.get(host.name)
        if remote is None:
            continue
        result = rediscli.sentinel_call(remote, plan, host, ["SENTINEL", "MASTER", group.name], timeout=5)
        lines = [line.strip() for line in result.stdout.splitlines()] if result.ok else []
        if "flags" in lines[:-1]:
            flags[host.name] = lines[lines.index("flags") + 1]
    return flags


def failovers_in_flight(plan: Plan, remotes: dict[str, Remote]) -> dict[str, list[str]]:
    """group → the sentinels that are failing it over right now (empty when none is)."""
    found = {}
    for group in plan.inventory.groups:
        busy = [name for name, flags in master_flags(plan, remotes, group).items() if "failover_in_progress" in flags]
        if busy:
            found[group.name] = busy
    return found


def discover(plan: Plan, remotes: dict[str, Remote]) -> dict[str, GroupMaster]:
    return {group.name: current_master(plan, remotes, group) for group in plan.inventory.groups}


@dataclass(frozen=True)
class Monitored:
    """One group as a sentinel monitors it: its master and the replicas it knows."""
    name: str
    master: tuple[str, int]
    replicas: tuple[tuple[str, int], ...]


def sentinel_view(plan: Plan, remotes: dict[str, Remote], running: set[str]) -> tuple[Monitored, ...]:
    """What the first sentinel that answers monitors (nothing when none runs). `running`: the
    sentinel hosts whose facts show a sentinel process."""
    for host in plan.sentinel_hosts:
        remote = remotes.get(host.name)
        if remote is None or host.name not in running:
            continue
        result = rediscli.sentinel_call(remote, plan, host, ["SENTINEL", "MASTERS"], timeout=5)
        if rediscli.answer(result) is None:
            continue
        view = []
        for master in rediscli.parse_records(result.stdout, "name"):
            replies = rediscli.sentinel_call(remote, plan, host, ["SENTINEL", "REPLICAS", master["name"]], timeout=5)
            replicas = tuple((record.get("ip", ""), int(record.get("port", 0) or 0))
                             for record in rediscli.parse_records(replies.stdout, "name"))
            view.append(Monitored(master["name"], (master.get("ip", ""), int(master.get("port", 0) or 0)), replicas))
        return tuple(view)
    return ()
