"""What an inventory is once loaded: frozen dataclasses, no I/O."""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace, dataclass, field

from provision.base import defaults


@dataclass(frozen=True)
class Secret:
    """A password and where it came from; the value never appears in a repr or a log line."""
    origin: str
    value: str = field(repr=False)

    def __str__(self) -> str:
        return f"<secret from {self.origin}>"


def password_hash(password: str) -> str:
    """The form Redis ACL accepts as `#<hash>`: hex sha256 of the password."""
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass(frozen=True)
class RedisOverrides:
    """`redis:` under a host or a group: what differs there from the global redis section
    (Ansible's host_vars/group_vars, inside the one file). A host's value beats its group's."""
    maxmemory: str | None = None
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    data_address: str
    user: str | None = None      # None: ssh_config's User, else defaults.SSH_USER
    port: int | None = None      # None: ssh_config's Port, else 22
    key: str | None = None       # absolute (resolved against the inventory's folder)
    sudo: bool = False
    redis: RedisOverrides = RedisOverrides()
    absent: bool = False         # `state: absent`: retired; deploy stops what runs there, keeps its data


@dataclass(frozen=True)
class Source:
    sha256: str
    url: str | None = None
    tarball: str | None = None


@dataclass(frozen=True)
class RedisSettings:
    version: str
    source: Source | None      # None only for a release `upgrade`/`rollback` finds installed on the hosts
    install_dir: str = defaults.INSTALL_DIR
    port: int = defaults.REDIS_PORT
    sentinel_port: int = defaults.SENTINEL_PORT
    maxmemory: str = defaults.MAXMEMORY
    maxmemory_policy: str = defaults.MAXMEMORY_POLICY
    appendonly: bool = defaults.APPENDONLY
    save: str = defaults.SAVE
    extra_settings: tuple[tuple[str, str], ...] = ()
    releases: tuple[tuple[str, Source], ...] = ()    # other releases `upgrade --version` may install

    def with_release(self, version: str) -> "RedisSettings":
        """The same settings for another release (`upgrade --version`, `rollback`)."""
        return replace(self, version=version, source=self.source_of(version))

    def source_of(self, version: str) -> Source | None:
        """Where a release comes from: `source` for `version`, else `releases`."""
        if version == self.version:
            return self.source
        return dict(self.releases).get(version)


@dataclass(frozen=True)
class Group:
    name: str
    master: str
    replicas: tuple[str, ...]
    quorum: int
    port: int
    down_after_milliseconds: int = defaults.DOWN_AFTER_MILLISECONDS
    failover_timeout: int = defaults.FAILOVER_TIMEOUT
    parallel_syncs: int = defaults.PARALLEL_SYNCS
    min_replicas_to_write: int = 1
    min_replicas_max_lag: int = defaults.min_replicas_max_lag(defaults.DOWN_AFTER_MILLISECONDS)
    redis: RedisOverrides = RedisOverrides()

    @property
    def members(self) -> tuple[str, ...]:
        return (self.master, *self.replicas)


@dataclass(frozen=True)
class Shard:
    """One Redis Cluster shard: the host that starts as its master, and its replicas' hosts."""
    name: str          # shard-1, shard-2…: its place in the inventory, for messages and status
    master: str
    replicas: tuple[str, ...]

    @property
    def members(self) -> tuple[str, ...]:
        return (self.master, *self.replicas)


@dataclass(frozen=True)
class Cluster:
    shards: tuple[Shard, ...]
    port: int
    bus_port: int
    node_timeout: int = defaults.CLUSTER_NODE_TIMEOUT
    require_full_coverage: bool = True
    allow_reads_when_down: bool = False
    min_replicas_to_write: int = 1
    min_replicas_max_lag: int = defaults.min_replicas_max_lag(defaults.CLUSTER_NODE_TIMEOUT)

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(name for shard in self.shards for name in shard.members)


@dataclass(frozen=True)
class AclUser:
    name: str
    password: Secret
    rules: str


@dataclass(frozen=True)
class Acl:
    admin: AclUser
    replication: AclUser
    sentinel: AclUser
    users: tuple[AclUser, ...] = ()

    @property
    def all_users(self) -> tuple[AclUser, ...]:
        return (self.admin, self.replication, self.sentinel, *self.users)


@dataclass(frozen=True)
class System:
    sysctl: tuple[tuple[str, int], ...] = defaults.SYSCTL
    transparent_hugepage: str = defaults.TRANSPARENT_HUGEPAGE


HOST_KEY_CHECKING = ("accept-new", "yes", "no")


@dataclass(frozen=True)
class Controller:
    network_namespace: str | None = None
    parallel: int = defaults.PARALLEL
    connect_timeout: float = defaults.CONNECT_TIMEOUT
    command_timeout: float = defaults.COMMAND_TIMEOUT
    keepalive: int = defaults.KEEPALIVE
    known_hosts: str = os.path.expanduser(defaults.KNOWN_HOSTS)
    host_key_checking: str = defaults.HOST_KEY_CHECKING
    ssh_config: str | None = None     # None: ~/.ssh/config when it exists
    gateway: str | None = None        # [user@]host[:port] or an ssh_config alias: the jump host for all hosts


@dataclass(frozen=True)
class Inventory:
    path: str
    hosts: tuple[Host, ...]
    redis: RedisSettings
    groups: tuple[Group, ...]
    sentinels: tuple[str, ...]
    acl: Acl
    system: System
    controller: Controller
    cluster: Cluster | None = None

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)
