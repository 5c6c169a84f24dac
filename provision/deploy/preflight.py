"""Changes a deploy refuses before it touches any host: what the inventory asks for would move a
running instance, or cross a major release, and doing it by rewriting files in place would leave
two instances behind, lose the data or split a group.

The checks are pure: the facts every host reported and what the sentinels monitor
(topology.sentinel_view).
"""
from __future__ import annotations

from provision.facts.topology import Monitored
from provision.facts.host import HostFacts, active_version
from provision.core.plan import Plan


def major(version: str) -> int:
    return int(version.split(".")[0])


def version_problems(plan: Plan, facts: dict[str, HostFacts], allow_major: bool) -> list[str]:
    """A release of another major than the one running is refused without --allow-major: the
    on-disk formats and replication protocol are only promised to work one way within a major,
    and a replica of a newer major cannot feed an older master's replicas."""
    if allow_major:
        return []
    wanted = plan.inventory.redis.version
    install_dir = plan.layout.install_dir
    problems = []
    for name, host_facts in facts.items():
        running = {process.version(install_dir) for process in host_facts.processes} - {None}
        active = active_version(host_facts.active_bin)
        for version in sorted(running | ({active} if active else set())):
            if major(version) != major(wanted):
                problems.append(f"{name} runs Redis {version}; {wanted} is another major release. A cross-major "
                                "change is refused unless asked for with --allow-major: read the release notes "
                                "(config, ACL and persistence changes), take a backup of every master's data, and "
                                "upgrade replicas before masters (an older replica cannot read a newer master's "
                                "stream); a downgrade to an older major cannot load the newer RDB/AOF files")
                break
    return problems


def move_problems(plan: Plan, facts: dict[str, HostFacts]) -> list[str]:
    """A running process the new inventory would leave behind: from another install_dir, or
    listening on an address that is no longer the host's data address."""
    install_dir = plan.layout.install_dir
    problems = []
    for host_plan in plan.hosts:
        host = host_plan.host
        host_facts = facts.get(host.name)
        if host_facts is None:
            continue
        for process in host_facts.processes:
            what = f"redis-sentinel :{process.port}" if process.sentinel else f"redis-server :{process.port}"
            if not process.exe.startswith(install_dir + "/"):
                problems.append(f"{host.name}: {what} runs {process.exe}, outside install_dir {install_dir}: moving "
                                "an install is not done live. Keep the old install_dir, or move it by hand: stop the "
                                "process (replicas first, the master after SENTINEL FAILOVER), move the directory, "
                                "then deploy")
            elif process.address not in (host.data_address, "127.0.0.1", "*", ""):
                problems.append(f"{host.name}: {what} listens on {process.address}, but the inventory's data address "
                                f"is {host.data_address}: an address change is not done live. Keep the old "
                                "address, or remove the host (state: absent), deploy, then add it back with the new one")
    return problems


def group_problems(plan: Plan, view: tuple[Monitored, ...]) -> list[str]:
    """What the sentinels monitor against the inventory's groups: a node the sentinels know in
    one group that the inventory puts in another (regrouping), or a group on a new port."""
    problems = []
    member_of: dict[tuple[str, int], str] = {}
    for monitored in view:
        for address in (monitored.master, *monitored.replicas):
            member_of[address] = monitored.name
    by_name = {monitored.name: monitored for monitored in view}
    for group in plan.inventory.groups:
        monitored = by_name.get(group.name)
        if monitored is not None and monitored.master[1] != group.port:
            problems.append(f"group {group.name}: runs on port {monitored.master[1]} (the sentinels monitor it there), "
                            f"the inventory says {group.port}: a port change is a migration this tool does not do "
                            f"live. Keep port {monitored.master[1]}, or add a new group on {group.port}, move the "
                            f"data with your application (or MIGRATE/replication), then remove {group.name}")
        for member in group.members:
            address = (plan.inventory.host(member).data_address, group.port)
            current = member_of.get(address)
            if current is not None and current != group.name:
                problems.append(f"{member}:{group.port} is a member of group {current} (the sentinels say), the "
                                f"inventory puts it in {group.name}: moving nodes between groups is not done live "
                                f"(its data is {current}'s). Keep it in {current}, or first take it out of "
                                f"{current} (drop it from the group, mark the host `state: absent`, deploy), remove "
                                f"{plan.layout.node_data_dir(group.port)} on it, then add it to {group.name} and "
                                "deploy")
    return problems


def departing_master_problems(plan: Plan, view: tuple[Monitored, ...]) -> list[str]:
    """A group's current master that the inventory takes out of the group (or retires) is not
    stopped: the group would be without a master until Sentinel noticed. Hand over first."""
    problems = []
    by_name = {monitored.name: monitored for monitored in view}
    for group in plan.inventory.groups:
        monitored = by_name.get(group.name)
        if monitored is None:
            continue
        host = plan.host_by_data_address(monitored.master[0])
        if host is not None and host.name not in group.members:
            state = "is state: absent" if host.absent else f"is no longer in group {group.name}"
            problems.append(f"{host.name} {state}, but it is {group.name}'s master now (the sentinels say): hand "
                            f"over first with `invoke failover --group {group.name}`, then deploy again")
    return problems
