"""Everything the tool knows about a redis.conf or sentinel.conf directive, in one table.

Who owns it decides what the tool does with a running file:
  tool     the tool's templates write it; compared by value and patched when it differs
  runtime  Redis or Sentinel writes it (replicaof after a failover, epochs, known peers); never
           compared, never patched after the file's first write
  user     not in the templates; set through `redis.settings` when the inventory wants it
How it changes on a running process: `live` (CONFIG SET / SENTINEL SET) or `restart`.
`secret` values are masked in everything printed; `reserved` names are refused in
`redis.settings` (the tool sets them through their own inventory keys, or never).
A directive not in the table is a user setting tried live first (Redis refuses what it cannot
change live, and the tool then restarts).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DirectiveInfo:
    name: str                      # "maxmemory"; Sentinel's as "sentinel down-after-milliseconds"
    owner: str                     # tool | runtime | user
    change: str = "live"           # live | restart
    secret: bool = False
    reserved: bool = False
    per_group: bool = False        # a Sentinel line whose 3rd word is the group: `sentinel X <group> ...`
    sentinel_default: str | None = None   # Sentinel leaves the line out of its file at this value

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.split())


def _tool(name, change="live", **flags) -> DirectiveInfo:
    return DirectiveInfo(name, "tool", change, reserved=True, **flags)


REDIS = (
    _tool("bind", "restart"), _tool("port", "restart"), _tool("protected-mode"), _tool("daemonize", "restart"),
    _tool("supervised", "restart"),
    _tool("pidfile", "restart"), _tool("dir", "restart"), _tool("logfile", "restart"),
    _tool("tcp-backlog", "restart"), _tool("disable-thp", "restart"), _tool("aclfile", "restart"),
    _tool("masteruser"), _tool("masterauth", secret=True), _tool("replica-announce-ip"), _tool("maxmemory"),
    _tool("maxmemory-policy"), _tool("appendonly"), _tool("save"), _tool("min-replicas-to-write"),
    _tool("min-replicas-max-lag"), _tool("repl-diskless-sync-max-replicas"),
    DirectiveInfo("replicaof", "runtime", reserved=True), DirectiveInfo("slaveof", "runtime", reserved=True),
    # The promotion fence: start-redis writes 0 at every start, the node's keeper raises it.
    DirectiveInfo("replica-priority", "runtime", reserved=True),
    DirectiveInfo("slave-priority", "runtime", reserved=True),
    DirectiveInfo("requirepass", "user", secret=True, reserved=True),
    DirectiveInfo("user", "user", reserved=True), DirectiveInfo("include", "user", "restart", reserved=True),
    DirectiveInfo("rename-command", "user", "restart", reserved=True),
    # Old names of settings the tool owns, and modules (code loaded into Redis): refused in settings.
    *(DirectiveInfo(name, "user", "restart", reserved=True) for name in (
        "min-slaves-to-write", "min-slaves-max-lag", "slave-announce-ip", "slave-announce-port",
        "replica-announce-port", "loadmodule", "masterauth-user")),
    # Redis Cluster (the cluster section): enabling it, its file and its bus port need a restart.
    _tool("cluster-enabled", "restart"), _tool("cluster-config-file", "restart"), _tool("cluster-port", "restart"),
    _tool("cluster-node-timeout"), _tool("cluster-announce-ip"), _tool("cluster-require-full-coverage"),
    _tool("cluster-allow-reads-when-down"),
    *(DirectiveInfo(name, "user", "restart", reserved=True) for name in (
        "cluster-announce-port", "cluster-announce-bus-port", "cluster-announce-tls-port")),
    DirectiveInfo("databases", "user", "restart"), DirectiveInfo("io-threads", "user", "restart"),
    DirectiveInfo("unixsocket", "user", "restart"),
)

SENTINEL = (
    _tool("bind", "restart"), _tool("port", "restart"), _tool("daemonize", "restart"), _tool("pidfile", "restart"),
    _tool("supervised", "restart"),
    _tool("logfile", "restart"), _tool("dir", "restart"), _tool("sentinel announce-ip", "restart"),
    _tool("sentinel resolve-hostnames", "restart"), _tool("user", secret=True),
    _tool("sentinel sentinel-user"), _tool("sentinel sentinel-pass", secret=True),
    # Per group: the monitor line's address follows failovers (Sentinel's); its quorum is the tool's.
    DirectiveInfo("sentinel monitor", "runtime", per_group=True),
    _tool("sentinel quorum", per_group=True),
    _tool("sentinel auth-user", per_group=True), _tool("sentinel auth-pass", per_group=True, secret=True),
    _tool("sentinel down-after-milliseconds", per_group=True, sentinel_default="30000"),
    _tool("sentinel failover-timeout", per_group=True, sentinel_default="180000"),
    _tool("sentinel parallel-syncs", per_group=True, sentinel_default="1"),
    *(DirectiveInfo(f"sentinel {name}", "runtime", per_group=True) for name in (
        "config-epoch", "leader-epoch", "known-replica", "known-slave", "known-sentinel")),
    *(DirectiveInfo(f"sentinel {name}", "user", per_group=True) for name in (
        "notification-script", "client-reconfig-script", "rename-command", "master-reboot-down-after-period")),
    *(DirectiveInfo(f"sentinel {name}", "runtime") for name in ("myid", "current-epoch")),
)

_REDIS = {info.name: info for info in REDIS}
_SENTINEL = {info.name: info for info in SENTINEL}


def redis_info(key: tuple[str, ...]) -> DirectiveInfo:
    """The table's entry for a redis.conf key (as confparse keys it), or a user setting."""
    return _REDIS.get(key[0], DirectiveInfo(key[0], "user"))


def sentinel_info(key: tuple[str, ...]) -> DirectiveInfo | None:
    """The entry for a sentinel.conf key: ("sentinel", option, group) or ("port",)."""
    name = " ".join(key[:2]) if key[0] == "sentinel" else key[0]
    return _SENTINEL.get(name)


def redis_needs_restart(key: tuple[str, ...]) -> bool:
    return redis_info(key).change == "restart"


def redis_runtime_owned(key: tuple[str, ...]) -> bool:
    return redis_info(key).owner == "runtime"


def reserved_settings() -> frozenset[str]:
    """redis.settings names the tool refuses (it sets them itself, or never)."""
    return frozenset(info.name for info in REDIS if info.reserved)


#: what redis.conf may hold besides the settings CONFIG GET knows: Redis's config loader reads
#: these itself (config.c, loadServerConfigFromString), and CONFIG GET never lists them
CONFIG_FILE_ONLY = frozenset({"include", "rename-command", "user", "loadmodule", "sentinel"})


def sentinel_group_options() -> frozenset[str]:
    """Sentinel options written as `sentinel <option> <group> ...`."""
    return frozenset(info.words[1] for info in SENTINEL if info.per_group)


def sentinel_live(option: str) -> bool:
    """A per-group option SENTINEL SET changes on a running sentinel."""
    info = _SENTINEL.get(f"sentinel {option}")
    return info is not None and info.per_group and info.owner == "tool" and info.change == "live"


def sentinel_default(option: str) -> str | None:
    info = _SENTINEL.get(f"sentinel {option}")
    return info.sentinel_default if info else None


def sentinel_command_secret(args: list[str]) -> bool:
    """A command to a sentinel that carries a secret: SENTINEL SET or CONFIG SET of an option the
    table marks secret, or ACL SETUSER (its rules hold the password's hash)."""
    if [word.upper() for word in args[:2]] == ["ACL", "SETUSER"]:
        return True
    secret_options = {info.words[1] for info in SENTINEL if info.secret and len(info.words) == 2}
    return any(word in secret_options for word in args[2:])


def secret_names() -> tuple[tuple[str, ...], ...]:
    """Leading words of the lines whose value is a secret, in either file."""
    return tuple(sorted({info.words for info in (*REDIS, *SENTINEL) if info.secret and info.name != "user"}))
