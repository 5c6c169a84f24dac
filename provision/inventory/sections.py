"""The typed readers of each inventory section: every problem is collected with its file:line
and key path, none stops the reading."""
from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any, Callable

from provision.base import defaults, directives

from provision.inventory.model import (Acl, AclUser, Cluster, Controller, Group, HOST_KEY_CHECKING, Host,
                                       RedisOverrides, RedisSettings, Secret, Shard, Source, System)
from provision.inventory import schema
from provision.inventory.sshconfig import ssh_config_hostname
from provision.inventory.values import (CONTROL_CHARACTERS, GATEWAY_PATTERN, MAXMEMORY_POLICIES, MIN_VERSION,
                                        NAME_PATTERN, PASSWORD_PATTERN, SHA256_PATTERN, THP_MODES,
                                        VERSION_PATTERN, acl_name_problem, acl_rules_problem, address_problem,
                                        maxmemory_problem, path_problem, setting_value_problem,
                                        unicast_problem)
from provision.inventory.yamlsource import Problems


_MISSING = object()


_FROM_SCHEMA = object()


class Section:
    """A mapping being read: typed getters that take each key's type, bounds and default from
    the schema (inventory/schema.py) and record a problem instead of raising, and a check that
    nothing the schema does not have was left over."""

    def __init__(self, problems: Problems, key_path: tuple, data: Any, what: str = ""):
        self.problems, self.key_path, self.known = problems, key_path, set()
        self.allowed = sorted(key.segments[-1] for key in schema.children(key_path))
        if not isinstance(data, dict):
            problems.add(key_path, f"expected a mapping ({what or ', '.join(self.allowed)}), got {type_name(data)}")
            data = {}
        self.data = data

    def get(self, key: str, default: Any = _FROM_SCHEMA) -> Any:
        """The key's value, or its default; a value of the wrong type or out of bounds is a
        problem and reads as the default. Only a key whose default depends on other keys (the
        schema's default_text) takes its default from the caller."""
        spec = schema.lookup(self.key_path + (key,))
        if default is _FROM_SCHEMA:
            default = _MISSING if spec.required else spec.default
        elif spec.default_text is None:
            raise AssertionError(f"{spec.path}: the schema has its default; the reader must not give another")
        self.known.add(key)
        value = self.data.get(key, _MISSING)
        if spec.yaml_boolean and isinstance(value, bool):
            value = "yes" if value else "no"       # YAML reads an unquoted yes/no as a boolean
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.problems.add(self.key_path + (key,), f"is required: {spec.meaning}")
                return None
            return copy.copy(default)          # the schema's {} or [] is never handed out to be changed
        kinds = schema.PYTHON_TYPES[spec.type]
        if bool not in kinds and isinstance(value, bool) or not isinstance(value, kinds):
            expected = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            self.problems.add(self.key_path + (key,), f"expected {expected}, got {type_name(value)} {value!r}")
            return None if default is _MISSING else default
        if spec.type == "integer" and (spec.minimum is not None and value < spec.minimum
                                       or spec.maximum is not None and value > spec.maximum):
            upper = f" and at most {spec.maximum}" if spec.maximum is not None else ""
            self.problems.add(self.key_path + (key,),
                              f"expected an integer of at least {spec.minimum}{upper}, got {value}")
            return None
        if spec.type == "number" and not 0 < value <= (spec.maximum or float("inf")):
            self.problems.add(self.key_path + (key,), f"expected seconds above 0 and at most {spec.maximum:g}, "
                                                      f"got {value!r}")
            return default
        if spec.choices and value not in spec.choices:
            self.problems.add(self.key_path + (key,), f"expected one of {', '.join(spec.choices)}, got {value!r}")
            return None if default is _MISSING else default
        return value

    def finish(self) -> None:
        for key in self.data:
            if key not in self.allowed:
                close = difflib.get_close_matches(str(key).lower().replace("-", "_"), self.allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problems.add(self.key_path + (key,),
                                  f"unknown key{hint}; allowed here: {', '.join(self.allowed)}")


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
               dict: "a mapping", float: "a number"}


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", str: "a string", list: "a list", dict: "a mapping",
            float: "a number"}.get(type(value), type(value).__name__)


def controller_file(base_dir: Path, value: str) -> Path:
    """A file on the controller named in the inventory: ~ expanded, and a relative path taken
    from the inventory's own folder, never from the current directory."""
    return base_dir / os.path.expanduser(value)      # joining an absolute path keeps it as it is


def read_hosts(problems: Problems, data: Any, base_dir: Path, ssh_config: Any,   # paramiko.SSHConfig or None (sshconfig)
                resolve: Callable[[str], str | None]) -> tuple[Host, ...]:
    hosts = []
    if data is None:
        return ()          # missing: the schema's "is required" said so
    if not isinstance(data, dict) or not data:
        problems.add(("hosts",), "expected a mapping of host name to its SSH address, with at least one host")
        return ()
    seen_ssh: dict[tuple, str] = {}
    seen_data: dict[str, str] = {}
    for name, spec in data.items():
        key_path = ("hosts", name)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            problems.add(key_path, "host names are letters, digits, '-', '_' and '.'")
            continue
        section = Section(problems, key_path, spec)
        address = section.get("address")
        data_given = "data_address" in section.data if isinstance(section.data, dict) else False
        data_address = section.get("data_address", address)
        user = section.get("user", None)
        port = section.get("port", None)
        key = section.get("key")
        sudo = section.get("sudo")
        overrides = _read_overrides(problems, key_path + ("redis",), section.get("redis"))
        host_state = section.get("state")
        section.finish()
        if address is None:
            continue
        for field_name, value in (("address", address), ("data_address", data_address)):
            problem = address_problem(value) if isinstance(value, str) else None
            if problem:
                problems.add(key_path + (field_name,), problem)
                data_address = None
        if isinstance(data_address, str) and address_problem(data_address, must_be_ip=True):
            # Redis binds to the data address and Sentinel announces it, so a name is resolved
            # here, once, on the controller: every config file then carries the same IP.
            looked_up = data_address if data_given else ssh_config_hostname(ssh_config, address)
            resolved = looked_up if not address_problem(looked_up, must_be_ip=True) else resolve(looked_up)
            if resolved is None:
                where = "data_address" if data_given else "address"
                problems.add(key_path + (where,),
                             f"{looked_up!r} does not resolve to an IPv4 address on this controller; Redis binds to "
                             "the data address and Sentinel announces it, so give data_address as an IP address")
            data_address = resolved
            if resolved is not None and unicast_problem(resolved, data=True):
                problems.add(key_path + ("data_address" if data_given else "address",),
                             f"{looked_up!r} resolves to {unicast_problem(resolved, data=True)}")
                data_address = None
        if user is not None and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
            problems.add(key_path + ("user",), f"expected a login name, got {user!r}")
        if key is not None and CONTROL_CHARACTERS.search(key):
            problems.add(key_path + ("key",), "control characters in a key path")
            key = None
        if key is not None:
            key = str(controller_file(base_dir, key))
            if not os.path.isfile(key) or not os.access(key, os.R_OK):
                problems.add(key_path + ("key",), f"{key} is not a readable file (a private key; a relative path "
                                                  "is taken from the inventory's folder)")
        if (address, port) in seen_ssh:
            problems.add(key_path + ("address",),
                         f"{address}:{port or 22} is also the SSH address of host {seen_ssh[(address, port)]!r}")
        seen_ssh[(address, port)] = name
        if data_address is not None and data_address in seen_data:
            problems.add(key_path + ("data_address",),
                         f"{data_address} is also the data address of host {seen_data[data_address]!r}")
        seen_data[data_address] = name
        hosts.append(Host(name=name, address=address, data_address=data_address or address, user=user,
                          port=port, key=key, sudo=bool(sudo), redis=overrides, absent=host_state == "absent"))
    return tuple(hosts)


def _read_settings(problems: Problems, key_path: tuple, extra: dict) -> list[tuple[str, str]]:
    """Extra redis.conf directives (global, per group or per host); each problem is named at its
    own key path, so a wrong override says where it came from."""
    extra_settings = []
    for key, value in extra.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            problems.add(key_path + (key,), "expected a redis.conf directive name (lowercase, dashes)")
            continue
        if key in directives.reserved_settings():
            problems.add(key_path + (key,), f"{key} is managed by the tool; set it through its own key")
            continue
        if not isinstance(value, (str, int)):
            problems.add(key_path + (key,), f"expected a string or number, got {type_name(value)}")
            continue
        if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
            problems.add(key_path + (key,), "a newline or control character would start another "
                                            "directive in redis.conf; give one value on one line")
            continue
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        problem = setting_value_problem(text)
        if problem:
            problems.add(key_path + (key,), problem)
            continue
        extra_settings.append((key, text))
    return extra_settings


#: settings that open Redis to code or to changing its protected settings at run time; refused
#: unless redis.allow_dangerous_settings names them (loadmodule itself is always refused)
DANGEROUS_SETTINGS = frozenset({"enable-protected-configs", "enable-debug-command", "enable-module-command"})


def dangerous_problems(problems: Problems, data: dict) -> None:
    """Every setting of DANGEROUS_SETTINGS turned on anywhere (global, group, host) that
    redis.allow_dangerous_settings does not name, at its own key path."""
    redis = data.get("redis") if isinstance(data.get("redis"), dict) else {}
    allowed = redis.get("allow_dangerous_settings", [])
    if not isinstance(allowed, list) or not all(name in DANGEROUS_SETTINGS for name in allowed):
        problems.add(("redis", "allow_dangerous_settings"),
                     f"expected a list of some of {', '.join(sorted(DANGEROUS_SETTINGS))}, got {allowed!r}")
        allowed = []
    places = [(("redis", "settings"), redis.get("settings"))]
    for section in ("groups", "hosts"):
        for name, spec in (data.get(section) or {}).items() if isinstance(data.get(section), dict) else ():
            if isinstance(spec, dict) and isinstance(spec.get("redis"), dict):
                places.append(((section, name, "redis", "settings"), spec["redis"].get("settings")))
    for key_path, settings in places:
        for key, value in (settings or {}).items() if isinstance(settings, dict) else ():
            if key in DANGEROUS_SETTINGS and key not in allowed and str(value).lower() not in ("no", "false"):
                problems.add(key_path + (key,), f"{key} lets a client load code or change protected settings; "
                                                f"name it in redis.allow_dangerous_settings to turn it on anyway")


def _read_overrides(problems: Problems, key_path: tuple, data: Any) -> RedisOverrides:
    """`redis: {maxmemory, settings}` under a host or a group."""
    if data is None:
        return RedisOverrides()
    section = Section(problems, key_path, data)
    maxmemory = section.get("maxmemory", None)
    if maxmemory is not None:
        maxmemory = str(maxmemory)
        problem = maxmemory_problem(maxmemory)
        if problem:
            problems.add(key_path + ("maxmemory",), problem)
    settings = _read_settings(problems, key_path + ("settings",), section.get("settings"))
    section.finish()
    return RedisOverrides(maxmemory=maxmemory, settings=tuple(sorted(settings)))


def _read_source(problems: Problems, key_path: tuple[str, ...], data: Any, base_dir: Path,
                 version: str | None = None) -> Source | None:
    """A release's source: a URL the host downloads or a tarball uploaded from here, and its sha256.
    A file name that names another release than `version` is refused (a 7.2.4 copied with the
    7.0.15 URL and sha256 would build 7.0.15 and call it 7.2.4)."""
    if data is None:
        problems.add(key_path, "expected a mapping with url or tarball, and sha256")
        return None
    source_section = Section(problems, key_path, data)
    url = source_section.get("url", None)
    tarball = source_section.get("tarball", None)
    sha256 = source_section.get("sha256")
    source_section.finish()
    if sha256 is not None and not SHA256_PATTERN.fullmatch(sha256):
        problems.add(key_path + ("sha256",), f"expected 64 lowercase hex digits, got {sha256!r} ({len(sha256)} characters)")
    if (url is None) == (tarball is None):
        problems.add(key_path, "give exactly one of url (downloaded on the host) or tarball "
                               "(a local file uploaded from this machine)")
    if url is not None and not re.match(r"https?://[^\s]+\Z", url):
        problems.add(key_path + ("url",), f"expected an http(s) URL, got {url!r}")
    for key, value in (("url", url), ("tarball", tarball)):
        named = release_in_file_name(value) if value else None
        if named and version and named != version:
            problems.add(key_path + (key,), f"names release {named}, not {version}: the source must be the "
                                             "release's own (check its url and sha256)")
    if tarball is not None:
        tarball_path = controller_file(base_dir, tarball)
        if not tarball_path.is_file():
            problems.add(key_path + ("tarball",), f"no such file: {tarball_path}")
        tarball = str(tarball_path)
    if sha256 is None or not SHA256_PATTERN.fullmatch(sha256):
        return None
    return Source(sha256=sha256, url=url, tarball=tarball)


def release_in_file_name(location: str) -> str | None:
    """The release a source's file name names (redis-7.0.15.tar.gz, valkey-8.1.1.tgz), if any."""
    found = re.search(r"(\d+\.\d+\.\d+)(?:\.tar\.gz|\.tgz|\.tar\.xz|\.tar)?$", location.rsplit("/", 1)[-1])
    return found.group(1) if found else None


def read_redis(problems: Problems, data: Any, base_dir: Path) -> RedisSettings | None:
    section = Section(problems, ("redis",), data)
    version = section.get("version")
    if version is not None and not VERSION_PATTERN.fullmatch(version):
        problems.add(("redis", "version"), f"expected a release such as \"7.0.15\", got {version!r}")
    elif version is not None and tuple(int(part) for part in version.split(".")[:2]) < MIN_VERSION:
        problems.add(("redis", "version"), f"{version} is too old: the tool's ACL users (channel rules, the "
                                           "sentinel's own user) need Redis 6.2 or later")
    source = _read_source(problems, ("redis", "source"), section.get("source"), base_dir, version)
    releases = []
    for release, spec in section.get("releases").items():
        if not isinstance(release, str) or not VERSION_PATTERN.fullmatch(release):
            problems.add(("redis", "releases", str(release)), f"expected a release such as \"7.2.4\" (quoted) as the key, "
                                                                f"got {release!r}")
            continue
        found = _read_source(problems, ("redis", "releases", release),
                             spec if isinstance(spec, dict) else None, base_dir, release)
        if found is not None:
            releases.append((release, found))
    install_dir = section.get("install_dir")
    install_problem = install_dir is not None and path_problem(install_dir)
    if install_problem:
        problems.add(("redis", "install_dir"), install_problem)
    port = section.get("port")
    sentinel_port = section.get("sentinel_port")
    if port is not None and port == sentinel_port:
        problems.add(("redis", "sentinel_port"), f"must differ from redis.port ({port})")
    maxmemory = str(section.get("maxmemory"))
    policy = section.get("maxmemory_policy")
    appendonly = section.get("appendonly")
    save = section.get("save")
    if save and not re.fullmatch(r"(\d+ \d+)( \d+ \d+)*", save.strip()):
        problems.add(("redis", "save"), f'expected pairs of "seconds changes", or "" to disable, got {save!r}')
    if appendonly is False and save is not None and not save.strip():
        problems.add(("redis", "appendonly"), 'appendonly: false with save: "" leaves no persistence: a master that '
                     "restarts comes back empty and its replicas copy the empty dataset (Redis docs, \"Safety of "
                     "replication when master has persistence turned off\"); keep appendonly: true or set save")
    memory_problem = maxmemory_problem(maxmemory)
    if memory_problem:
        problems.add(("redis", "maxmemory"), memory_problem)
    extra_settings = _read_settings(problems, ("redis", "settings"), section.get("settings"))
    section.get("allow_dangerous_settings")        # checked with every setting (dangerous_problems)
    section.finish()
    if None in (version, source, port, sentinel_port):
        return None
    return RedisSettings(version=version, source=source, releases=tuple(releases),
                         install_dir=install_dir.rstrip("/"), port=port, sentinel_port=sentinel_port,
                         maxmemory=maxmemory, maxmemory_policy=policy, appendonly=appendonly, save=save.strip(),
                         extra_settings=tuple(sorted(extra_settings)))


def _host_names(problems: Problems, key_path: tuple, names: list) -> list[str]:
    """A list of host names: each a string, none twice (references are checked in topology.py)."""
    found: list[str] = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            problems.add(key_path + (index,), f"expected a host name, got {type_name(name)}")
        elif name in found:
            problems.add(key_path + (index,), f"{name!r} is listed twice")
        else:
            found.append(name)
    return found


def _placed_shards(problems: Problems, hosts: list[str], replicas_per_shard: int) -> list[Shard]:
    """`hosts` + `replicas_per_shard`: the first len/(1+r) hosts are masters, and each takes the
    next r of the rest, so that no replica is on a master's host."""
    size = 1 + replicas_per_shard
    if len(hosts) % size:
        problems.add(("cluster", "hosts"), f"{len(hosts)} hosts do not split into shards of a master and "
                                           f"{replicas_per_shard} replica(s) ({size} hosts each)")
        return []
    count = len(hosts) // size
    rest = hosts[count:]
    return [Shard(f"shard-{index + 1}", master,
                  tuple(rest[index * replicas_per_shard:(index + 1) * replicas_per_shard]))
            for index, master in enumerate(hosts[:count])]


def read_cluster(problems: Problems, data: Any, default_port: int | None) -> Cluster | None:
    if data is None:
        return None
    section = Section(problems, ("cluster",), data)
    shards_data = section.get("shards", None)
    hosts = section.get("hosts", None)
    replicas_per_shard = section.get("replicas_per_shard")
    port = section.get("port", default_port or defaults.REDIS_PORT)
    bus_port = section.get("bus_port", (port or defaults.REDIS_PORT) + defaults.CLUSTER_BUS_OFFSET)
    node_timeout = section.get("node_timeout")
    full_coverage = section.get("require_full_coverage")
    reads_when_down = section.get("allow_reads_when_down")
    shards: list[Shard] = []
    if (shards_data is None) == (hosts is None):
        problems.add(("cluster",), "give exactly one of shards (each a master and its replicas) or hosts "
                                   "(with replicas_per_shard)")
    if shards_data is not None:
        for index, spec in enumerate(shards_data):
            key_path = ("cluster", "shards", index)
            shard_section = Section(problems, key_path, spec)
            master = shard_section.get("master")
            replicas = _host_names(problems, key_path + ("replicas",), shard_section.get("replicas"))
            shard_section.finish()
            for replica_index, replica in enumerate(replicas):
                if replica == master:
                    problems.add(key_path + ("replicas", replica_index),
                                 f"{replica!r} is this shard's master; a replica on its master's host is lost with it")
            if isinstance(master, str):
                shards.append(Shard(f"shard-{index + 1}", master, tuple(r for r in replicas if r != master)))
    elif hosts is not None and replicas_per_shard is not None:
        shards = _placed_shards(problems, _host_names(problems, ("cluster", "hosts"), hosts), replicas_per_shard)
    with_replicas = any(shard.replicas for shard in shards)
    min_to_write = section.get("min_replicas_to_write", 1 if with_replicas else 0)
    max_lag = section.get("min_replicas_max_lag",
                          defaults.min_replicas_max_lag(node_timeout or defaults.CLUSTER_NODE_TIMEOUT))
    section.finish()
    if len(shards) < 3 and (shards_data is not None or hosts is not None):
        problems.add(("cluster", "shards" if shards_data is not None else "hosts"),
                     f"{len(shards)} master(s); Redis Cluster needs at least 3, so that a majority of masters "
                     "survives the loss of one and can elect its replacement")
    if port is not None and bus_port is not None and port == bus_port:
        problems.add(("cluster", "bus_port"), f"must differ from the cluster's port ({port})")
    if min_to_write and max_lag and node_timeout and max_lag * 1000 >= node_timeout:
        problems.add(("cluster", "min_replicas_max_lag"),
                     f"{max_lag}s is not shorter than node_timeout ({node_timeout}ms): a master cut off from its "
                     "replicas would keep accepting writes after its replica is promoted")
    if min_to_write is not None and shards and min_to_write > min(len(shard.replicas) for shard in shards):
        problems.add(("cluster", "min_replicas_to_write"),
                     f"{min_to_write} is more than the replicas of the smallest shard: its master would refuse every "
                     "write")
    if None in (port, bus_port, node_timeout, min_to_write, max_lag) or not shards:
        return None
    return Cluster(shards=tuple(shards), port=port, bus_port=bus_port, node_timeout=node_timeout,
                   require_full_coverage=full_coverage, allow_reads_when_down=reads_when_down,
                   min_replicas_to_write=min_to_write, min_replicas_max_lag=max_lag)


def read_groups(problems: Problems, data: Any, default_port: int | None) -> tuple[Group, ...]:
    if data is None or data == {}:
        return ()              # no Sentinel groups: load() asks for groups or a cluster
    if not isinstance(data, dict):
        problems.add(("groups",), "expected a mapping of replication group name (the Sentinel master name) "
                                  "to its master, replicas and quorum")
        return ()
    groups = []
    for name, spec in data.items():
        key_path = ("groups", name)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            problems.add(key_path, "group names are letters, digits, '-', '_' and '.'")
            continue
        section = Section(problems, key_path, spec)
        master = section.get("master")
        replicas = section.get("replicas")
        replica_names = []
        for index, replica in enumerate(replicas):
            if not isinstance(replica, str):
                problems.add(key_path + ("replicas", index), f"expected a host name, got {type_name(replica)}")
            elif replica in replica_names:
                problems.add(key_path + ("replicas", index), f"{replica!r} is listed twice")
            elif replica == master:
                problems.add(key_path + ("replicas", index), f"{replica!r} is this group's master; a host cannot "
                                                             "be master and replica of the same group")
            else:
                replica_names.append(replica)
        quorum = section.get("quorum")
        port = section.get("port", default_port or defaults.REDIS_PORT)
        down_after = section.get("down_after_milliseconds")
        failover_timeout = section.get("failover_timeout")
        parallel_syncs = section.get("parallel_syncs")
        min_to_write = section.get("min_replicas_to_write", defaults.min_replicas_to_write(replica_names))
        max_lag = section.get("min_replicas_max_lag",
                              defaults.min_replicas_max_lag(down_after or defaults.DOWN_AFTER_MILLISECONDS))
        overrides = _read_overrides(problems, key_path + ("redis",), section.get("redis"))
        section.finish()
        if min_to_write and max_lag and down_after and max_lag * 1000 >= down_after:
            problems.add(key_path + ("min_replicas_max_lag",),
                         f"{max_lag}s is not shorter than down_after_milliseconds ({down_after}ms): a master cut off "
                         "from its replicas would keep accepting writes after the sentinels promote another node, and "
                         "those writes are lost when it rejoins; use at most "
                         f"{max(1, (down_after - 1) // 1000)}")
        if min_to_write is not None and min_to_write > len(replica_names):
            problems.add(key_path + ("min_replicas_to_write",),
                         f"{min_to_write} is more than the group's {len(replica_names)} replicas: the master "
                         "would refuse every write")
        if None in (master, quorum, port, down_after, failover_timeout, parallel_syncs, min_to_write, max_lag):
            continue
        groups.append(Group(name=name, master=master, replicas=tuple(replica_names), quorum=quorum, port=port,
                            down_after_milliseconds=down_after, failover_timeout=failover_timeout,
                            parallel_syncs=parallel_syncs, min_replicas_to_write=min_to_write,
                            min_replicas_max_lag=max_lag, redis=overrides))
    return tuple(groups)


def _read_secret(problems: Problems, key_path: tuple, section: Section, base_dir: Path,
                 environment: dict[str, str]) -> Secret | None:
    variable = section.get("password_env")
    file_name = section.get("password_file")
    if (variable is None) == (file_name is None):
        problems.add(key_path, "give exactly one of password_env (an environment variable) or password_file; "
                               "passwords are never written inline")
        return None
    if variable is not None:
        value = environment.get(variable)
        if not value:
            problems.add(key_path + ("password_env",), f"environment variable {variable} is not set or empty")
            return None
        return Secret(origin=f"${variable}", value=value)
    path = controller_file(base_dir, file_name)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        problems.add(key_path + ("password_file",), f"cannot read {path}: {error.strerror}")
        return None
    if mode & 0o077:
        problems.add(key_path + ("password_file",), f"{path} is readable or writable by others (mode "
                                                    f"{mode & 0o777:o}); chmod 600 it, as OpenSSH wants of a key")
        return None
    try:
        value = path.read_text().strip()
    except OSError as error:
        problems.add(key_path + ("password_file",), f"cannot read {path}: {error.strerror}")
        return None
    except UnicodeDecodeError:
        problems.add(key_path + ("password_file",), f"{path} is not text (a password file holds one line)")
        return None
    if not value:
        problems.add(key_path + ("password_file",), f"{path} is empty")
        return None
    return Secret(origin=str(path), value=value)


def _check_password(problems: Problems, key_path: tuple, secret: Secret | None) -> None:
    if secret is not None and not PASSWORD_PATTERN.fullmatch(secret.value):
        problems.add(key_path, f"the password from {secret.origin} must be 12 to 256 printable ASCII characters "
                               "without spaces, quotes or backslashes (it is written into redis.conf)")


def read_acl(problems: Problems, data: Any, base_dir: Path, environment: dict[str, str]) -> Acl | None:
    section = Section(problems, ("acl",), data)
    built_in = {}
    default_names = {"admin": defaults.ADMIN_USER, "replication": defaults.REPLICATION_USER,
                     "sentinel": defaults.SENTINEL_USER}
    for role, default_name in default_names.items():
        key_path = ("acl", role)
        role_section = Section(problems, key_path, section.get(role))
        name = role_section.get("name")
        if name is not None and (name_problem := acl_name_problem(name)):
            problems.add(key_path + ("name",), name_problem)
        secret = _read_secret(problems, key_path, role_section, base_dir, environment)
        _check_password(problems, key_path, secret)
        role_section.finish()
        built_in[role] = (name, secret)
    users = []
    for name, spec in section.get("users").items():
        key_path = ("acl", "users", name)
        user_section = Section(problems, key_path, spec)
        rules = user_section.get("rules")
        secret = _read_secret(problems, key_path, user_section, base_dir, environment)
        _check_password(problems, key_path, secret)
        user_section.finish()
        if rules is not None and (rules_problem := acl_rules_problem(rules)):
            problems.add(key_path + ("rules",), rules_problem)
        if name_problem := acl_name_problem(name):
            problems.add(key_path, name_problem)
        if secret is not None and rules is not None:
            users.append(AclUser(name=str(name), password=secret, rules=rules.strip()))
    section.finish()
    names = [name for name, _ in built_in.values()] + [user.name for user in users]
    for name in set(names):
        if names.count(name) > 1:
            problems.add(("acl",), f"user name {name!r} is used twice")
    if "default" in names:
        problems.add(("acl",), "the default user is disabled by the tool; do not define it")
    if any(secret is None for _, secret in built_in.values()):
        return None
    admin_name, admin_secret = built_in["admin"]
    replication_name, replication_secret = built_in["replication"]
    sentinel_name, sentinel_secret = built_in["sentinel"]
    return Acl(
        admin=AclUser(admin_name, admin_secret, "~* &* +@all"),
        replication=AclUser(replication_name, replication_secret, "+psync +replconf +ping"),
        # The command list Redis's Sentinel documentation gives for a Sentinel user.
        sentinel=AclUser(sentinel_name, sentinel_secret,
                         "allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite +role "
                         "+publish +info +client|setname +client|kill +script|kill"),
        users=tuple(users))


def read_system(problems: Problems, data: Any) -> System:
    section = Section(problems, ("system",), data)
    sysctl = dict(defaults.SYSCTL)
    for key, value in section.get("sysctl").items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_-]+)+", key):
            problems.add(("system", "sysctl", key), "expected a dotted sysctl key such as net.core.somaxconn")
        elif not isinstance(value, int) or isinstance(value, bool):
            problems.add(("system", "sysctl", key), f"expected an integer, got {type_name(value)} {value!r}")
        else:
            sysctl[key] = value
    if sysctl.get("vm.overcommit_memory") not in (None, 0, 1, 2):
        problems.add(("system", "sysctl", "vm.overcommit_memory"), "expected 0, 1 or 2 (Redis wants 1)")
    thp = section.get("transparent_hugepage")
    section.finish()
    return System(sysctl=tuple(sorted(sysctl.items())), transparent_hugepage=thp)


def _controller_path(problems: Problems, section: "Section", key: str, base_dir: Path,
                     must_exist: bool) -> str | None:
    """A controller-side file: ~ expanded, a relative path taken from the inventory's folder."""
    value = section.get(key)
    if value is None:
        return None
    if CONTROL_CHARACTERS.search(value):
        problems.add(("controller", key), "control characters in a path")
        return None
    path = str(controller_file(base_dir, value))
    if must_exist and not os.path.isfile(path):
        problems.add(("controller", key), f"{path} does not exist (a relative path is taken from the inventory's "
                                          "folder)")
        return None
    return path


def read_controller(problems: Problems, data: Any, base_dir: Path) -> Controller:
    section = Section(problems, ("controller",), data)
    namespace = section.get("network_namespace")
    if namespace is not None and not NAME_PATTERN.fullmatch(namespace):
        # it names /run/netns/<name>: a plain name, never a path
        problems.add(("controller", "network_namespace"), f"expected a plain name (letters, digits, '-', '_', '.'), "
                                                          f"got {namespace!r}")
        namespace = None
    parallel = section.get("parallel")
    timeout = float(section.get("connect_timeout"))
    command_timeout = float(section.get("command_timeout"))
    keepalive = section.get("keepalive")
    known_hosts = _controller_path(problems, section, "known_hosts", base_dir, False)
    ssh_config = _controller_path(problems, section, "ssh_config", base_dir, True)
    gateway = section.get("gateway")
    if gateway is not None and not GATEWAY_PATTERN.fullmatch(gateway):
        problems.add(("controller", "gateway"), f"expected [user@]host[:port] or an ssh_config alias, got {gateway!r}")
        gateway = None
    checking = section.get("host_key_checking")
    section.finish()
    return Controller(network_namespace=namespace, parallel=parallel or defaults.PARALLEL, connect_timeout=timeout,
                      command_timeout=command_timeout, keepalive=keepalive or defaults.KEEPALIVE,
                      known_hosts=known_hosts or os.path.expanduser(defaults.KNOWN_HOSTS), host_key_checking=checking,
                      ssh_config=ssh_config, gateway=gateway)
