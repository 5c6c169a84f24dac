"""Every inventory key, its type, default and meaning: the one table the section readers read a
key's type, bounds and default from (sections.Section), and the inventory reference and JSON
Schema are generated from (inventory/reference.py), so the three cannot tell different stories.

A path is dotted; a segment in <angle brackets> is a name the user chooses (a host, a group, a
release, a redis.conf directive)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision.base import defaults

#: a Key's type → the Python types YAML gives for it
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "size": (str, int), "mapping": (dict,), "list": (list,), "scalar": (str, int),
}

#: what a user-chosen segment may be, as a regular expression (JSON Schema's patternProperties)
NAME_PATTERNS = {
    "<host>": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    "<group>": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    "<version>": r"^\d+\.\d+\.\d+$",
    "<directive>": r"^[a-z][a-z0-9-]*$",
    "<user>": r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$",
    "<sysctl>": r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$",
    "<index>": r"^\d+$",          # a list item (JSON Schema: items)
}

REQUIRED = object()       # a Key's default when the key must be given


@dataclass(frozen=True)
class Key:
    path: str
    type: str
    meaning: str
    default: Any = None               # the value taken when the key is left out; REQUIRED: must be given
    default_text: str | None = None   # how the reference shows a default that depends on other keys
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    items: str | None = None          # a list's item type
    yaml_boolean: bool = False        # an unquoted yes/no (YAML's booleans) reads as the word

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("."))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def shown_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if self.required:
            return "required"
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return "`true`" if self.default else "`false`"
        if isinstance(self.default, (dict, list)):
            return "`{}`" if isinstance(self.default, dict) else "`[]`"
        return f"`{self.default:g}`" if isinstance(self.default, float) else f"`{self.default}`"


def _source(prefix: str, required: bool) -> tuple[Key, ...]:
    return (
        Key(prefix, "mapping", "where the release's source comes from: url or tarball, and sha256",
            REQUIRED if required else None),
        Key(f"{prefix}.url", "string", "an http(s) URL the hosts download the source tarball from; its file name "
                                       "must name the release", None, "none (give url or tarball)"),
        Key(f"{prefix}.tarball", "string", "instead of url: a tarball on the controller (relative to the inventory's "
                                           "folder), uploaded to the hosts", None, "none (give url or tarball)"),
        Key(f"{prefix}.sha256", "string", "the tarball's sha256 (64 lowercase hex digits); checked on the host "
                                          "before it is unpacked", REQUIRED),
    )


def _overrides(prefix: str, where: str) -> tuple[Key, ...]:
    return (
        Key(prefix, "mapping", f"what differs for this {where} from the global redis section "
                               "(host beats group beats global)"),
        Key(f"{prefix}.maxmemory", "size", f"maxmemory for this {where}'s nodes", None, "redis.maxmemory"),
        Key(f"{prefix}.settings", "mapping", f"redis.conf directives for this {where}'s nodes, over the global ones",
            {}),
        Key(f"{prefix}.settings.<directive>", "scalar", "a redis.conf directive and its value"),
    )


def _secret(prefix: str, role: str, default_name: str | None) -> tuple[Key, ...]:
    keys = (
        Key(prefix, "mapping", role, REQUIRED if default_name else None),
        Key(f"{prefix}.password_env", "string", "the environment variable on the controller holding the password "
                                                "(give this or password_file)", None, "none"),
        Key(f"{prefix}.password_file", "string", "a file on the controller holding the password on one line, mode "
                                                 "0600 (refused if others can read it)", None, "none"),
    )
    if default_name:
        return keys + (Key(f"{prefix}.name", "string", "the ACL user name", default_name),)
    return keys


KEYS: tuple[Key, ...] = (
    Key("controller", "mapping", "how the controller (the machine running the tool) reaches the hosts", {}),
    Key("controller.network_namespace", "string", "run the controller's connections inside this network namespace "
                                                  "(/run/netns/NAME; the test lab's)", None),
    Key("controller.parallel", "integer", "hosts worked on at once", defaults.PARALLEL, minimum=1, maximum=256),
    Key("controller.connect_timeout", "number", "seconds an SSH connection may take", defaults.CONNECT_TIMEOUT,
        maximum=600),
    Key("controller.command_timeout", "number", "seconds one remote command may run (a compile is the longest)",
        defaults.COMMAND_TIMEOUT, maximum=86400),
    Key("controller.keepalive", "integer", "seconds between SSH keepalives", defaults.KEEPALIVE, minimum=1,
        maximum=3600),
    Key("controller.known_hosts", "string", "the known_hosts file host keys are checked against and added to",
        defaults.KNOWN_HOSTS),
    Key("controller.host_key_checking", "string", "as OpenSSH's StrictHostKeyChecking", defaults.HOST_KEY_CHECKING,
        choices=("accept-new", "yes", "no"), yaml_boolean=True),
    Key("controller.ssh_config", "string", "an OpenSSH client config whose Host aliases, HostName, User, Port, "
                                           "IdentityFile and ProxyJump are honoured", None,
        f"{defaults.USER_SSH_CONFIG} when it exists"),
    Key("controller.gateway", "string", "a jump host for every host: [user@]host[:port] or an ssh_config alias",
        None),

    Key("hosts", "mapping", "the machines, by name", REQUIRED),
    Key("hosts.<host>", "mapping", "one machine"),
    Key("hosts.<host>.address", "string", "where SSH reaches the host: an IP address, host name or ssh_config "
                                          "alias", REQUIRED),
    Key("hosts.<host>.data_address", "string", "the IPv4 address Redis and Sentinel bind to and announce (a name "
                                               "is resolved once, on the controller)", None, "the address"),
    Key("hosts.<host>.user", "string", "the SSH login", None, f"ssh_config's User, else {defaults.SSH_USER}"),
    Key("hosts.<host>.port", "integer", "the SSH port", None, f"ssh_config's Port, else {defaults.SSH_PORT}",
        minimum=1, maximum=65535),
    Key("hosts.<host>.key", "string", "a private key file on the controller (ssh-agent and ssh_config's "
                                      "IdentityFile are used as well)", None),
    Key("hosts.<host>.sudo", "boolean", "run as root through `sudo -n` (NOPASSWD sudo for this user)", False),
    Key("hosts.<host>.state", "string", "absent retires the host: its processes stop (its data stays)", "present",
        choices=("present", "absent")),
    *_overrides("hosts.<host>.redis", "host"),

    Key("redis", "mapping", "the release and the settings every node gets", REQUIRED),
    Key("redis.version", "string", 'the release to install, quoted ("7.0.15"); 6.2 or later', REQUIRED),
    *_source("redis.source", True),
    Key("redis.releases", "mapping", "other releases `upgrade --version` may roll onto, each with its source", {}),
    Key("redis.releases.<version>", "mapping", "one release's source: url or tarball, and sha256"),
    *_source("redis.releases.<version>", False)[1:],
    Key("redis.install_dir", "string", "where releases, config, data and logs live on each host (an absolute "
                                       "directory of its own)", defaults.INSTALL_DIR),
    Key("redis.port", "integer", "the Redis port (a group's own port beats it)", defaults.REDIS_PORT, minimum=1,
        maximum=65535),
    Key("redis.sentinel_port", "integer", "the Sentinel port", defaults.SENTINEL_PORT, minimum=1, maximum=65535),
    Key("redis.maxmemory", "size", "maxmemory: 0 (no limit), or a size such as 256mb or 4gb", defaults.MAXMEMORY),
    Key("redis.maxmemory_policy", "string", "what Redis does at maxmemory", defaults.MAXMEMORY_POLICY,
        choices=("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
                 "volatile-random", "volatile-ttl")),
    Key("redis.appendonly", "boolean", "the append-only file, fsynced every second", defaults.APPENDONLY),
    Key("redis.save", "string", 'RDB snapshots as pairs of "seconds changes", or "" for none', defaults.SAVE),
    Key("redis.settings", "mapping", "any other redis.conf directive, checked against the release's own list", {}),
    Key("redis.settings.<directive>", "scalar", "a redis.conf directive and its value"),
    Key("redis.allow_dangerous_settings", "list", "settings refused unless named here (enable-debug-command, "
                                                  "enable-module-command, enable-protected-configs)", [],
        items="string"),

    Key("groups", "mapping", "Sentinel replication groups, by name (the Sentinel master name); give groups, "
                             "cluster or both", {}),
    Key("groups.<group>", "mapping", "one group: its initial master, its replicas, its Sentinel settings"),
    Key("groups.<group>.master", "string", "the host that starts as master (after a failover the tool keeps the "
                                           "current one)", REQUIRED),
    Key("groups.<group>.replicas", "list", "the hosts that replicate it", [], items="string"),
    Key("groups.<group>.quorum", "integer", "sentinels that must agree the master is down", REQUIRED, minimum=1),
    Key("groups.<group>.port", "integer", "the group's Redis port", None, "redis.port", minimum=1, maximum=65535),
    Key("groups.<group>.down_after_milliseconds", "integer", "how long a master may not answer before it is "
                                                             "thought down; at least 1500: a master's keeper kills it when it has not answered for 500 ms less",
        defaults.DOWN_AFTER_MILLISECONDS, minimum=defaults.MIN_DOWN_AFTER_MILLISECONDS),
    Key("groups.<group>.failover_timeout", "integer", "Sentinel's failover-timeout, in milliseconds",
        defaults.FAILOVER_TIMEOUT, minimum=1000),
    Key("groups.<group>.parallel_syncs", "integer", "replicas re-pointed at a new master at once",
        defaults.PARALLEL_SYNCS, minimum=1),
    Key("groups.<group>.min_replicas_to_write", "integer", "a master takes writes only with this many replicas "
                                                           "linked", None, "1 when the group has replicas, else 0",
        minimum=0),
    Key("groups.<group>.min_replicas_max_lag", "integer", "seconds a replica may lag and still count; under "
                                                          "down_after_milliseconds", None,
        "down_after_milliseconds / 2000, at least 1", minimum=1),
    *_overrides("groups.<group>.redis", "group"),

    Key("sentinels", "list", "the hosts that run a Sentinel: at least 3 when there are groups", [],
        items="string"),

    Key("cluster", "mapping", "a Redis Cluster: hash slots over several masters, each with its replicas; "
                              "failover built in, no Sentinel", None),
    Key("cluster.shards", "list", "the shards, each a master host and its replica hosts (give this or hosts)",
        None, "none (give shards or hosts)", items="mapping"),
    Key("cluster.shards.<index>", "mapping", "one shard"),
    Key("cluster.shards.<index>.master", "string", "the host that starts as the shard's master", REQUIRED),
    Key("cluster.shards.<index>.replicas", "list", "the hosts that replicate it (never its master's host)", [],
        items="string"),
    Key("cluster.hosts", "list", "instead of shards: the cluster's hosts, placed by the tool (the first "
                                 "len/(1+replicas_per_shard) are masters)", None, "none (give shards or hosts)",
        items="string"),
    Key("cluster.replicas_per_shard", "integer", "with hosts: replicas each master gets", 1, minimum=0, maximum=5),
    Key("cluster.port", "integer", "the cluster nodes' Redis port", None, "redis.port", minimum=1, maximum=55535),
    Key("cluster.bus_port", "integer", "the cluster bus port (node to node)", None, "port + 10000", minimum=1,
        maximum=65535),
    Key("cluster.node_timeout", "integer", "milliseconds a node may not answer before it is thought failing "
                                           "(cluster-node-timeout)", defaults.CLUSTER_NODE_TIMEOUT, minimum=100),
    Key("cluster.require_full_coverage", "boolean", "refuse every query while some slot has no master "
                                                    "(cluster-require-full-coverage)", True),
    Key("cluster.allow_reads_when_down", "boolean", "serve reads while the cluster is down "
                                                    "(cluster-allow-reads-when-down)", False),
    Key("cluster.min_replicas_to_write", "integer", "a master takes writes only with this many replicas linked",
        None, "1 when shards have replicas, else 0", minimum=0),
    Key("cluster.min_replicas_max_lag", "integer", "seconds a replica may lag and still count; under "
                                                   "node_timeout", None, "node_timeout / 2000, at least 1",
        minimum=1),

    Key("acl", "mapping", "the users: the tool's three and the applications'", REQUIRED),
    *_secret("acl.admin", "the tool's own user (+@all)", defaults.ADMIN_USER),
    *_secret("acl.replication", "the user replicas authenticate as (+psync +replconf +ping)",
             defaults.REPLICATION_USER),
    *_secret("acl.sentinel", "the user sentinels authenticate as (the Redis docs' Sentinel command list)",
             defaults.SENTINEL_USER),
    Key("acl.users", "mapping", "application users, by name", {}),
    *_secret("acl.users.<user>", "one application user", None),
    Key("acl.users.<user>.rules", "string", 'its ACL rules, such as "~app:* +@read +@write" (no passwords, no '
                                            "on/off/reset)", REQUIRED),

    Key("system", "mapping", "kernel settings every host gets", {}),
    Key("system.sysctl", "mapping", "sysctl keys and integer values, over the tool's defaults",
        {}, ", ".join(f"{key}={value}" for key, value in defaults.SYSCTL)),
    Key("system.sysctl.<sysctl>", "integer", "a sysctl key and its value"),
    Key("system.transparent_hugepage", "string", "transparent huge pages, set at boot and now",
        defaults.TRANSPARENT_HUGEPAGE, choices=("never", "madvise", "always")),
)

TOP_LEVEL = tuple(key.path for key in KEYS if len(key.segments) == 1)

_BY_PATH = {key.segments: key for key in KEYS}


def _matches(pattern: tuple[str, ...], key_path: tuple) -> bool:
    return len(pattern) == len(key_path) and all(
        part.startswith("<") or part == str(actual) for part, actual in zip(pattern, key_path))


def lookup(key_path: tuple) -> Key:
    """The Key for a concrete path such as ("hosts", "redis-a", "port"); a literal segment beats a
    placeholder. KeyError: the schema does not have it (a reader reading an undeclared key)."""
    exact = _BY_PATH.get(tuple(map(str, key_path)))
    if exact is not None:
        return exact
    for key in KEYS:
        if _matches(key.segments, key_path):
            return key
    raise KeyError(".".join(map(str, key_path)))


def children(key_path: tuple) -> tuple[Key, ...]:
    """The keys a mapping at this concrete path may hold (literal names only)."""
    depth = len(key_path) + 1
    return tuple(key for key in KEYS if len(key.segments) == depth and not key.segments[-1].startswith("<")
                 and _matches(key.segments[:-1], key_path))
