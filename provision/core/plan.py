"""Who runs what, where, with which files: derived once from a validated inventory.

The plan holds the inventory's INITIAL topology. Which node is master right now is a runtime
fact asked of the running Sentinels (see topology.py); the plan never overrides it.
"""
from __future__ import annotations

import difflib
import fnmatch
import posixpath
from dataclasses import dataclass, replace

from provision.inventory import Cluster, Group, Host, Inventory, RedisSettings, Shard


@dataclass(frozen=True)
class Layout:
    """Paths on a host: the tool's own under the install dir, and the system files it edits.
    Every step, probe and template takes a path from here, none writes its own."""
    install_dir: str
    version: str
    rc_local: str = "/etc/rc.local"
    sysctl_file: str = "/etc/sysctl.d/90-redis-provision.conf"
    unit_dir: str = "/etc/systemd/system"

    @property
    def version_dir(self) -> str:
        return posixpath.join(self.install_dir, "versions", self.version)

    @property
    def bin_link(self) -> str:
        return posixpath.join(self.install_dir, "bin")

    @property
    def conf_dir(self) -> str:
        return posixpath.join(self.install_dir, "conf")

    @property
    def data_dir(self) -> str:
        return posixpath.join(self.install_dir, "data")

    @property
    def log_dir(self) -> str:
        return posixpath.join(self.install_dir, "logs")

    @property
    def run_dir(self) -> str:
        return posixpath.join(self.install_dir, "run")

    @property
    def build_dir(self) -> str:
        return posixpath.join(self.install_dir, "build")

    @property
    def boot_dir(self) -> str:
        """Root's own: the start guard, its sentinel password, its logs. Never in a directory the
        redis user can write, since root runs what is here."""
        return posixpath.join(self.install_dir, "boot")

    @property
    def start_script(self) -> str:
        return posixpath.join(self.boot_dir, "start-redis")

    @property
    def state_file(self) -> str:
        """What the tool remembers on the host (provision/state.py): root's, beside the guard."""
        return posixpath.join(self.boot_dir, "state.json")

    @property
    def boot_auth_file(self) -> str:
        return posixpath.join(self.boot_dir, "sentinel.auth")

    def start_log(self, port: int) -> str:
        return posixpath.join(self.boot_dir, f"start-redis-{port}.log")

    def keeper_lock(self, port: int) -> str:
        """Held by the node's keeper (start-redis --keep) for as long as it runs."""
        return posixpath.join(self.boot_dir, f"keep-redis-{port}.lock")

    def keeper_script_digest(self, port: int) -> str:
        """The sha256 of the start-redis the node's keeper runs, written by the keeper as it starts."""
        return posixpath.join(self.boot_dir, f"keep-redis-{port}.sha256")

    @property
    def acl_file(self) -> str:
        return posixpath.join(self.conf_dir, "users.acl")

    @property
    def sentinel_conf(self) -> str:
        return posixpath.join(self.conf_dir, "sentinel.conf")

    @property
    def sentinel_data_dir(self) -> str:
        return posixpath.join(self.data_dir, "sentinel")

    def binary(self, name: str) -> str:
        return posixpath.join(self.bin_link, name)

    def pidfile(self, port: int | None) -> str:
        """redis-server's for a port; the sentinel's for None."""
        return posixpath.join(self.run_dir, "sentinel.pid" if port is None else f"redis-{port}.pid")

    def log_file(self, port: int | None) -> str:
        """redis-server's for a port; the sentinel's for None."""
        return posixpath.join(self.log_dir, "sentinel.log" if port is None else f"redis-{port}.log")

    def unit_file(self, name: str) -> str:
        return posixpath.join(self.unit_dir, name)

    def redis_conf(self, port: int) -> str:
        return posixpath.join(self.conf_dir, f"redis-{port}.conf")

    def node_data_dir(self, port: int) -> str:
        return posixpath.join(self.data_dir, str(port))

    def cluster_file(self, port: int) -> str:
        """Redis's own cluster state file (cluster-config-file), in the node's data directory:
        a relative name is taken from `dir`."""
        return f"nodes-{port}.conf"


@dataclass(frozen=True)
class NodePlan:
    """One redis-server instance: a host serving one replication group."""
    host: Host
    group: Group
    initial_master: Host

    @property
    def port(self) -> int:
        return self.group.port

    @property
    def starts_as_master(self) -> bool:
        return self.host.name == self.initial_master.name

    @property
    def label(self) -> str:
        return f"{self.host.name}:{self.port}"


@dataclass(frozen=True)
class ClusterNodePlan:
    """One redis-server instance in the Redis Cluster: a host's place in its shard."""
    host: Host
    shard: Shard
    cluster: Cluster

    @property
    def port(self) -> int:
        return self.cluster.port

    @property
    def starts_as_master(self) -> bool:
        return self.host.name == self.shard.master

    @property
    def label(self) -> str:
        return f"{self.host.name}:{self.port}"


@dataclass(frozen=True)
class HostPlan:
    host: Host
    nodes: tuple[NodePlan, ...]
    runs_sentinel: bool
    cluster_node: ClusterNodePlan | None = None

    @property
    def retiring(self) -> bool:
        """`state: absent`: the deploy stops its processes and takes it out of rc.local."""
        return self.host.absent


@dataclass(frozen=True)
class Plan:
    inventory: Inventory
    layout: Layout
    hosts: tuple[HostPlan, ...]

    @property
    def sentinel_hosts(self) -> tuple[Host, ...]:
        return tuple(plan.host for plan in self.hosts if plan.runs_sentinel)

    def host_plan(self, name: str) -> HostPlan:
        for plan in self.hosts:
            if plan.host.name == name:
                return plan
        raise KeyError(name)

    def nodes_of(self, group: Group) -> tuple[NodePlan, ...]:
        return tuple(node for plan in self.hosts for node in plan.nodes if node.group.name == group.name)

    def host_by_data_address(self, address: str) -> Host | None:
        for host in self.inventory.hosts:
            if host.data_address == address:
                return host
        return None


def node_redis(inventory: Inventory, node: "NodePlan") -> RedisSettings:
    """The redis settings one node runs with: the global section, then its group's `redis:`,
    then its host's (the more specific wins, key by key for settings)."""
    redis = inventory.redis
    maxmemory = redis.maxmemory
    settings = dict(redis.extra_settings)
    for overrides in (node.group.redis, node.host.redis):
        maxmemory = overrides.maxmemory or maxmemory
        settings.update(overrides.settings)
    return replace(redis, maxmemory=maxmemory, extra_settings=tuple(sorted(settings.items())))


def setting_places(inventory: Inventory, node: "NodePlan", name: str) -> tuple[str, ...]:
    """The inventory key paths that give this node the setting `name` (global, group, host)."""
    places = ((inventory.redis.extra_settings, "redis.settings"),
              (node.group.redis.settings, f"groups.{node.group.name}.redis.settings"),
              (node.host.redis.settings, f"hosts.{node.host.name}.redis.settings"))
    return tuple(f"{prefix}.{name}" for settings, prefix in places if name in dict(settings))


def cluster_node_of(inventory: Inventory, host: Host) -> ClusterNodePlan | None:
    cluster = inventory.cluster
    shard = next((shard for shard in cluster.shards if host.name in shard.members), None) if cluster else None
    return ClusterNodePlan(host, shard, cluster) if shard is not None else None


def cluster_nodes(inventory: Inventory) -> dict[str, ClusterNodePlan]:
    """Host name → its cluster node, for every member of the inventory's cluster."""
    cluster = inventory.cluster
    return {name: ClusterNodePlan(inventory.host(name), shard, cluster) for shard in cluster.shards
            for name in shard.members}


def cluster_redis(inventory: Inventory, node: ClusterNodePlan) -> RedisSettings:
    """The redis settings a cluster node runs with: the global section, then its host's."""
    maxmemory = node.host.redis.maxmemory or inventory.redis.maxmemory
    settings = {**dict(inventory.redis.extra_settings), **dict(node.host.redis.settings)}
    return replace(inventory.redis, maxmemory=maxmemory, extra_settings=tuple(sorted(settings.items())))


def cluster_roles(inventory: Inventory) -> dict[str, list[str]]:
    """Host name → its part in the cluster, as `plan` shows it (the slots are split evenly over the
    masters when the cluster is created)."""
    cluster = inventory.cluster
    if cluster is None:
        return {}
    roles: dict[str, list[str]] = {}
    ranges = slot_ranges(len(cluster.shards))
    for shard, (first, last) in zip(cluster.shards, ranges):
        roles.setdefault(shard.master, []).append(
            f"cluster master of {shard.name} (slots {first}-{last}) :{cluster.port} bus :{cluster.bus_port}")
        for replica in shard.replicas:
            roles.setdefault(replica, []).append(f"cluster replica in {shard.name} :{cluster.port}")
    return roles


CLUSTER_SLOTS = 16384


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """The 16384 hash slots split into `masters` contiguous ranges differing by one slot at most,
    the larger ones first."""
    ranges, start = [], 0
    for index in range(masters):
        size = CLUSTER_SLOTS // masters + (1 if index < CLUSTER_SLOTS % masters else 0)
        ranges.append((start, start + size - 1))
        start += size
    return ranges


def limit_hosts(inventory: Inventory, patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Ansible's --limit: each pattern is a host name, a group name (its master and replicas) or
    a shell glob over host names (`lab[12]`, `db-*`); a pattern that matches nothing is an error,
    so a typo never quietly runs on no host."""
    host_names = [host.name for host in inventory.hosts]
    groups = {group.name: group.members for group in inventory.groups}
    chosen: set[str] = set()
    unmatched = []
    for pattern in patterns:
        matched = set(fnmatch.filter(host_names, pattern)) | set(groups.get(pattern, ()))
        for group_name in fnmatch.filter(groups, pattern):
            matched |= set(groups[group_name])
        if not matched:
            unmatched.append(pattern)
        chosen |= matched
    if unmatched:
        close = [match for pattern in unmatched
                 for match in difflib.get_close_matches(pattern, host_names + list(groups), n=1, cutoff=0.6)]
        if close:
            raise KeyError(f"--limit: {', '.join(unmatched)} matches no host or group; did you mean "
                           f"{', '.join(close)}?")
        raise KeyError(f"--limit: {', '.join(unmatched)} matches no host or group (hosts: {', '.join(host_names)}; "
                       f"groups: {', '.join(groups)})")
    return tuple(name for name in host_names if name in chosen)


def build(inventory: Inventory, limit: tuple[str, ...] = ()) -> Plan:
    """Derive the plan; `limit` (limit_hosts patterns) restricts it to some hosts (the others are
    still known, for addresses and topology, but nothing is done on them)."""
    limit = limit_hosts(inventory, limit) if limit else ()
    host_plans = []
    for host in inventory.hosts:
        if limit and host.name not in limit:
            continue
        nodes = tuple(
            NodePlan(host=host, group=group, initial_master=inventory.host(group.master))
            for group in inventory.groups if host.name in group.members)
        runs_sentinel = host.name in inventory.sentinels
        cluster_node = cluster_node_of(inventory, host)
        if nodes or runs_sentinel or host.absent or cluster_node:
            host_plans.append(HostPlan(host=host, nodes=nodes, runs_sentinel=runs_sentinel, cluster_node=cluster_node))
    layout = Layout(install_dir=inventory.redis.install_dir, version=inventory.redis.version)
    return Plan(inventory=inventory, layout=layout, hosts=tuple(host_plans))
