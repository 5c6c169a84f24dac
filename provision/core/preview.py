"""What a deploy would write on a new host, computed offline (no SSH): `redis-provision render`.
Files Redis and Sentinel rewrite later are shown as deploy first writes them."""
from __future__ import annotations

from provision.core import render
from provision.core.plan import HostPlan, Plan


def files_for_new_host(plan: Plan, host_plan: HostPlan, systemd: bool = False) -> dict[str, str]:
    """path on the host → text, in the order deploy writes them. Unmasked: the caller masks."""
    layout = plan.layout
    masters = {group.name: plan.inventory.host(group.master).data_address for group in plan.inventory.groups}
    files: dict[str, str] = {layout.sysctl_file: render.sysctl_file(plan),
                             layout.rc_local: render.with_rc_local_block(None, render.rc_local_block(plan, host_plan,
                                                                                                     systemd))}
    if systemd:
        for name, text in render.unit_files(plan, host_plan).items():
            files[layout.unit_file(name)] = text
    if host_plan.nodes:
        files[layout.start_script] = render.start_script(plan, host_plan)
    if host_plan.nodes or host_plan.cluster_node:
        files[layout.acl_file] = render.acl_file(plan)
    if host_plan.cluster_node:
        node = host_plan.cluster_node
        files[layout.redis_conf(node.port)] = render.cluster_redis_conf(plan, node, systemd)
    for node in host_plan.nodes:
        replicaof = None if node.starts_as_master else node.initial_master
        files[layout.redis_conf(node.port)] = render.redis_conf(plan, node, replicaof, systemd)
    if host_plan.runs_sentinel:
        peers = tuple(other.host for other in plan.hosts if other.runs_sentinel and other.host.name != host_plan.host.name)
        files[layout.sentinel_conf] = render.sentinel_conf(plan, host_plan.host, masters, peers, systemd)
    return files


def matching(files: dict[str, str], wanted: str | None) -> dict[str, str]:
    """The files whose path or base name is `wanted` (all of them for None)."""
    if wanted is None:
        return files
    return {path: text for path, text in files.items() if path == wanted or path.rsplit("/", 1)[-1] == wanted}
