"""Load and validate an inventory file, before any host is touched.

Every problem is reported at once, each as `file:line: key.path: what was expected`, because an
operator fixing a 200-line inventory one error per run is the failure mode this prevents.
"""
from __future__ import annotations

import difflib
import hashlib
import ipaddress
import posixpath
import os
import re
import socket
from dataclasses import replace, dataclass, field
from pathlib import Path
from typing import Any, Callable

import paramiko
import yaml

from provision import defaults, directives
from provision.errors import InventoryError

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SIZE_PATTERN = re.compile(r"^\d+(b|kb|mb|gb|k|m|g)?$", re.I)
THP_MODES = ("never", "madvise", "always")
ACL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
HOSTNAME_PATTERN = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
PATH_PATTERN = re.compile(r"/[A-Za-z0-9._/-]*")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# Printable ASCII without whitespace, quotes or backslash: a password goes into redis.conf and
# sentinel.conf (masterauth, auth-pass), where Redis's quoting would otherwise change it.
PASSWORD_PATTERN = re.compile(r"[!#-&(-\[\]-~]{12,256}")
# ACL rule words that set a password or enable, disable or reset a user: the tool's alone.
ACL_TOOL_WORDS = {"on", "off", "nopass", "resetpass", "reset"}
MIN_VERSION = (6, 2)     # ACL channel rules (&pattern, resetchannels) and sentinel-user/pass
MAXMEMORY_POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
                      "volatile-lfu", "volatile-random", "volatile-ttl")


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


def _secret_line_pattern(words: tuple[str, ...], per_group: bool) -> re.Pattern:
    """A config line (or a diff line of one) whose value is a secret: the value is group 2."""
    lead = r"\s+".join(re.escape(word) for word in words) + (r"\s+\S+" if per_group else "")
    return re.compile(rf"^([-+ ]?\s*{lead}\s+)(\S+)", re.MULTILINE | re.IGNORECASE)


def secret_masker(inventory: "Inventory") -> Callable[[str], str]:
    """Hide every secret in text the tool prints (diffs, errors, recaps): each password and its
    ACL hash wherever they appear, and the value of every secret directive in the directive table
    (masterauth, sentinel auth-pass …) whatever it holds."""
    values = []
    for user in inventory.acl.all_users:
        values += [user.password.value, password_hash(user.password.value)]
    patterns = [_secret_line_pattern(info.words, info.per_group)
                for info in (*directives.REDIS, *directives.SENTINEL) if info.secret and info.name != "user"]
    # ACL `user` lines (users.acl, sentinel.conf, ACL LIST): a >password or #hash word.
    acl_passwords = re.compile(r"(?<=\s)([>#<])(?:\S+)")

    def mask(text: str) -> str:
        for value in values:
            text = text.replace(value, "********")
        for pattern in patterns:
            text = pattern.sub(lambda found: found.group(1) + "********", text)
        return "\n".join(acl_passwords.sub(lambda found: found.group(1) + "********", line)
                         if re.match(r"[-+ ]?\s*user\s", line, re.IGNORECASE) else line
                         for line in text.split("\n"))
    return mask


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

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


# --- YAML with line numbers ---------------------------------------------------------------

class _Problems:
    """Collects problems with the file name and the YAML line of each key path."""

    def __init__(self, path: str, lines: dict[tuple, int]):
        self.path, self.lines, self.items = path, lines, []

    def add(self, key_path: tuple, message: str) -> None:
        line = self.lines.get(key_path)
        probe = key_path
        while line is None and probe:
            probe = probe[:-1]
            line = self.lines.get(probe)
        where = f"{self.path}:{line}" if line else self.path
        dotted = ".".join(str(part) for part in key_path) or "(top level)"
        self.items.append(f"{where}: {dotted}: {message}")


MAX_INVENTORY_BYTES = 1024 * 1024
MAX_NODES = 20_000           # an inventory of hundreds of hosts has a few thousand
MAX_DEPTH = 32


class _Budget:
    """Bounds the walk: YAML aliases can expand a small file into billions of nodes."""

    def __init__(self, path: str):
        self.path, self.nodes = path, 0

    def take(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise InventoryError([f"{self.path}:{node.start_mark.line + 1}: more than {MAX_NODES} values (YAML "
                                  "aliases expanding?); an inventory is refused beyond that"])
        if depth > MAX_DEPTH:
            raise InventoryError([f"{self.path}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} deep"])


_CONSTRUCTOR = yaml.SafeLoader("")
_COLLECTION_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _scalar(node: yaml.Node, path: str) -> Any:
    """A scalar as the safe loader reads it; an unknown tag (!vault, !!python/…) is a problem at
    its line, not a traceback."""
    try:
        return _CONSTRUCTOR.construct_object(node)
    except yaml.YAMLError as error:
        raise InventoryError([f"{path}:{node.start_mark.line + 1}: cannot read this value: "
                              f"{getattr(error, 'problem', None) or error}"]) from None


def _check_tag(node: yaml.Node, path: str) -> None:
    wanted = _COLLECTION_TAGS.get(type(node))
    if wanted and node.tag != wanted:
        raise InventoryError([f"{path}:{node.start_mark.line + 1}: cannot read this value: unknown tag {node.tag!r}"])


def _to_data(node: yaml.Node, key_path: tuple, lines: dict, duplicates: list, budget: _Budget,
             depth: int = 0) -> Any:
    budget.take(node, depth)
    _check_tag(node, budget.path)
    lines.setdefault(key_path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise InventoryError([f"{budget.path}:{key_node.start_mark.line + 1}: a key must be a plain "
                                      "name, not a list or mapping"])
            key = _scalar(key_node, budget.path)
            if isinstance(key, (list, dict)) or key is None:
                raise InventoryError([f"{budget.path}:{key_node.start_mark.line + 1}: a key must be a plain name"])
            if key in result:
                duplicates.append((key_path + (key,), key_node.start_mark.line + 1))
            lines[key_path + (key,)] = key_node.start_mark.line + 1
            result[key] = _to_data(value_node, key_path + (key,), lines, duplicates, budget, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, key_path + (index,), lines, duplicates, budget, depth + 1)
                for index, item in enumerate(node.value)]
    return _scalar(node, budget.path)


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _parse_yaml(path: str, text: str) -> tuple[Any, dict, list]:
    control = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if control:
        raise InventoryError([f"{path}:{_line_of(text, control.start())}: control character "
                              f"{control.group()!r} in the file; an inventory is plain text"])
    depth = 0
    for index, character in enumerate(text):   # the parser recurses per level: bound it first
        depth += 1 if character in "[{" else -1 if character in "]}" else 0
        if depth > MAX_DEPTH:
            raise InventoryError([f"{path}:{_line_of(text, index)}: nested more than {MAX_DEPTH} deep"])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        # An unclosed quote or bracket is reported where it was opened (the context), not at
        # the end of the file where the parser gave up.
        mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        context = getattr(error, "context", None)
        problem = getattr(error, "problem", None) or error
        raise InventoryError([f"{where}: not valid YAML: {context + ': ' if context else ''}{problem}"]) from None
    except RecursionError:
        raise InventoryError([f"{path}: nested too deep to be an inventory"]) from None
    if node is None:
        raise InventoryError([f"{path}: the file is empty; expected a mapping with hosts, redis, groups, "
                              "sentinels and acl"])
    lines: dict = {}
    duplicates: list = []
    data = _to_data(node, (), lines, duplicates, _Budget(path))
    return data, lines, duplicates


# --- typed readers ------------------------------------------------------------------------

_MISSING = object()


class _Section:
    """A mapping being read: typed getters that record a problem instead of raising, and a
    check that nothing unknown was left over."""

    def __init__(self, problems: _Problems, key_path: tuple, data: Any, what: str):
        self.problems, self.key_path, self.known = problems, key_path, set()
        if not isinstance(data, dict):
            problems.add(key_path, f"expected a mapping ({what}), got {_type_name(data)}")
            data = {}
        self.data = data

    def get(self, key: str, kind: type | tuple, default: Any = _MISSING, what: str = "") -> Any:
        self.known.add(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.problems.add(self.key_path + (key,), f"is required{': ' + what if what else ''}")
                return None
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if bool not in kinds and isinstance(value, bool) or not isinstance(value, kinds):
            expected = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            self.problems.add(self.key_path + (key,),
                              f"expected {expected}{' (' + what + ')' if what else ''}, got {_type_name(value)} {value!r}")
            return None if default is _MISSING else default
        return value

    def positive_int(self, key: str, default: Any = _MISSING, minimum: int = 1, maximum: int | None = None) -> Any:
        value = self.get(key, int, default)
        if isinstance(value, int) and (value < minimum or (maximum is not None and value > maximum)):
            upper = f" and at most {maximum}" if maximum is not None else ""
            self.problems.add(self.key_path + (key,), f"expected an integer of at least {minimum}{upper}, got {value}")
            return None
        return value

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                close = difflib.get_close_matches(str(key).lower().replace("-", "_"), sorted(self.known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                allowed = ", ".join(sorted(self.known))
                self.problems.add(self.key_path + (key,), f"unknown key{hint}; allowed here: {allowed}")


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
               dict: "a mapping", float: "a number"}


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", str: "a string", list: "a list", dict: "a mapping",
            float: "a number"}.get(type(value), type(value).__name__)


# --- sections -----------------------------------------------------------------------------

def unicast_problem(value: str, data: bool = False) -> str | None:
    """Why an IP address is not one host's unicast address: the wildcard, a multicast, broadcast,
    reserved or (as a data address, which the group's nodes connect to) loopback address, or the
    network or broadcast address of the /24 it sits in. None for a host name."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if ip.is_unspecified:
        return f"{value} is the wildcard address, not a host's"
    if ip.is_multicast:
        return f"{value} is a multicast address, not a host's"
    if ip.version == 4 and (ip == ipaddress.IPv4Address("255.255.255.255") or ip.is_reserved):
        return f"{value} is a broadcast or reserved address, not a host's"
    if data and ip.is_loopback:
        return f"{value} is a loopback address: the other nodes and the sentinels would reach themselves"
    if ip.version == 4 and int(ip) & 0xFF in (0, 255):
        return (f"{value} ends in .{int(ip) & 0xFF}: the network or broadcast address of its /24, not a host's "
                "(give the host's own address)")
    return None


def address_problem(value: str, must_be_ip: bool = False) -> str | None:
    """Why `value` is not an IP address (or, unless must_be_ip, a host name); None if it is."""
    try:
        ipaddress.ip_address(value)
        return unicast_problem(value, data=must_be_ip)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", value):
        return f"{value!r} is not a valid IPv4 address"
    if must_be_ip:
        return f"expected an IP address (Redis binds to it and Sentinel announces it), got {value!r}"
    if ":" in value:
        return f"expected an address or host name without a port (use the port key), got {value!r}"
    if not HOSTNAME_PATTERN.fullmatch(value):
        return f"expected an IP address or host name (letters, digits, '-' and '.'), got {value!r}"
    return None


def controller_file(base_dir: Path, value: str) -> Path:
    """A file on the controller named in the inventory: ~ expanded, and a relative path taken
    from the inventory's own folder, never from the current directory."""
    return base_dir / os.path.expanduser(value)      # joining an absolute path keeps it as it is


#: directories of the system itself: an install_dir there would have the tool chown and replace them
SYSTEM_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
                         "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
                         "/usr/sbin", "/var", "/var/lib", "/var/log", "/var/tmp"})


def path_problem(value: str) -> str | None:
    """Why `value` is not a plain absolute path (it reaches root's shell and config files). It
    is checked as written and normalised: `/etc/.` and `/usr/./local` are /etc and /usr/local."""
    if not PATH_PATTERN.fullmatch(value) or "/../" in value + "/" or "//" in value:
        return (f"expected an absolute directory: letters, digits, '.', '_', '-' and '/', without '..', "
                f"got {value!r}")
    normal = posixpath.normpath(value)
    if normal != value.rstrip("/") and value != "/":
        return f"expected the directory written plainly ({normal!r}), got {value!r}"
    if normal in SYSTEM_DIRS:
        return f"expected an absolute directory of its own, not the system's {normal!r}"
    return None


def resolve_ipv4(name: str) -> str | None:
    """The first IPv4 address of a host name (DNS or /etc/hosts), None when it has none."""
    try:
        return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError, UnicodeError):
        return None


def _ssh_config_hostname(ssh_config: "paramiko.SSHConfig | None", address: str) -> str:
    """What ssh would connect to for `address`: its HostName in ssh_config, else itself."""
    if ssh_config is None:
        return address
    return ssh_config.lookup(address).get("hostname", address)


def _read_hosts(problems: _Problems, data: Any, base_dir: Path, ssh_config: "paramiko.SSHConfig | None",
                resolve: Callable[[str], str | None]) -> tuple[Host, ...]:
    hosts = []
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
        section = _Section(problems, key_path, spec, "address, user, port, key, sudo, data_address, redis, state")
        address = section.get("address", str, what="the SSH address, host name or ssh_config alias")
        data_given = "data_address" in section.data if isinstance(section.data, dict) else False
        data_address = section.get("data_address", str, address)
        user = section.get("user", str, None)
        port = section.positive_int("port", None, maximum=65535)
        key = section.get("key", str, None)
        sudo = section.get("sudo", bool, False)
        overrides = _read_overrides(problems, key_path + ("redis",), section.get("redis", dict, None))
        host_state = section.get("state", str, "present")
        if host_state not in ("present", "absent"):
            problems.add(key_path + ("state",), f"expected present or absent, got {host_state!r}")
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
            looked_up = data_address if data_given else _ssh_config_hostname(ssh_config, address)
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


def _maxmemory_problem(value: str) -> str | None:
    if not SIZE_PATTERN.fullmatch(value):
        return f"expected a size such as 0, 256mb or 2gb, got {value!r}"
    return None


def _read_settings(problems: _Problems, key_path: tuple, extra: dict) -> list[tuple[str, str]]:
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
            problems.add(key_path + (key,), f"expected a string or number, got {_type_name(value)}")
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


def setting_value_problem(text: str) -> str | None:
    """Why Redis would refuse the value at start, read as its config parser (sdssplitargs) reads
    a line: every quote closed, a closing quote followed by a space or the end; not empty."""
    if not text.strip():
        return "an empty value, which Redis refuses at start; take the setting out to leave Redis's default"
    quote, index = None, 0
    while index < len(text):
        char = text[index]
        if quote is None and char in "\"'" and (index == 0 or text[index - 1] == " "):
            quote = char
        elif quote is not None and char == "\\" and quote == '"':
            index += 1
        elif quote is not None and char == quote:
            if index + 1 < len(text) and text[index + 1] != " ":
                return f"a closing quote must be followed by a space or the end of the value (Redis's rule), in {text!r}"
            quote = None
        index += 1
    if quote is not None:
        return f"an unbalanced quote, which Redis refuses at start: {text!r}"
    return None


#: settings that open Redis to code or to changing its protected settings at run time; refused
#: unless redis.allow_dangerous_settings names them (loadmodule itself is always refused)
DANGEROUS_SETTINGS = frozenset({"enable-protected-configs", "enable-debug-command", "enable-module-command"})


def _dangerous_problems(problems: _Problems, data: dict) -> None:
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


def _read_overrides(problems: _Problems, key_path: tuple, data: Any) -> RedisOverrides:
    """`redis: {maxmemory, settings}` under a host or a group."""
    if data is None:
        return RedisOverrides()
    section = _Section(problems, key_path, data, "maxmemory, settings")
    maxmemory = section.get("maxmemory", (str, int), None)
    if maxmemory is not None:
        maxmemory = str(maxmemory)
        problem = _maxmemory_problem(maxmemory)
        if problem:
            problems.add(key_path + ("maxmemory",), problem)
    settings = _read_settings(problems, key_path + ("settings",), section.get("settings", dict, {}))
    section.finish()
    return RedisOverrides(maxmemory=maxmemory, settings=tuple(sorted(settings)))


def _read_source(problems: _Problems, key_path: tuple[str, ...], data: Any, base_dir: Path) -> Source | None:
    """A release's source: a URL the host downloads or a tarball uploaded from here, and its sha256."""
    if data is None:
        problems.add(key_path, "expected a mapping with url or tarball, and sha256")
        return None
    source_section = _Section(problems, key_path, data, "url or tarball, and sha256")
    url = source_section.get("url", str, None)
    tarball = source_section.get("tarball", str, None)
    sha256 = source_section.get("sha256", str, what="64 hex digits of the source tarball's sha256")
    source_section.finish()
    if sha256 is not None and not SHA256_PATTERN.fullmatch(sha256):
        problems.add(key_path + ("sha256",), f"expected 64 lowercase hex digits, got {sha256!r} ({len(sha256)} characters)")
    if (url is None) == (tarball is None):
        problems.add(key_path, "give exactly one of url (downloaded on the host) or tarball "
                               "(a local file uploaded from this machine)")
    if url is not None and not re.match(r"https?://[^\s]+\Z", url):
        problems.add(key_path + ("url",), f"expected an http(s) URL, got {url!r}")
    if tarball is not None:
        tarball_path = controller_file(base_dir, tarball)
        if not tarball_path.is_file():
            problems.add(key_path + ("tarball",), f"no such file: {tarball_path}")
        tarball = str(tarball_path)
    if sha256 is None or not SHA256_PATTERN.fullmatch(sha256):
        return None
    return Source(sha256=sha256, url=url, tarball=tarball)


def _read_redis(problems: _Problems, data: Any, base_dir: Path) -> RedisSettings | None:
    section = _Section(problems, ("redis",), data, "version, source, install_dir, port…")
    version = section.get("version", str, what='a release such as "7.0.15" (quote it)')
    if version is not None and not VERSION_PATTERN.fullmatch(version):
        problems.add(("redis", "version"), f"expected a release such as \"7.0.15\", got {version!r}")
    elif version is not None and tuple(int(part) for part in version.split(".")[:2]) < MIN_VERSION:
        problems.add(("redis", "version"), f"{version} is too old: the tool's ACL users (channel rules, the "
                                           "sentinel's own user) need Redis 6.2 or later")
    source = _read_source(problems, ("redis", "source"), section.get("source", dict, {}), base_dir)
    releases = []
    for release, spec in (section.get("releases", dict, {}) or {}).items():
        if not isinstance(release, str) or not VERSION_PATTERN.fullmatch(release):
            problems.add(("redis", "releases", str(release)), f"expected a release such as \"7.2.4\" (quoted) as the key, "
                                                                f"got {release!r}")
            continue
        found = _read_source(problems, ("redis", "releases", release),
                             spec if isinstance(spec, dict) else None, base_dir)
        if found is not None:
            releases.append((release, found))
    install_dir = section.get("install_dir", str, defaults.INSTALL_DIR)
    install_problem = install_dir is not None and path_problem(install_dir)
    if install_problem:
        problems.add(("redis", "install_dir"), install_problem)
    port = section.positive_int("port", defaults.REDIS_PORT, maximum=65535)
    sentinel_port = section.positive_int("sentinel_port", defaults.SENTINEL_PORT, maximum=65535)
    if port is not None and port == sentinel_port:
        problems.add(("redis", "sentinel_port"), f"must differ from redis.port ({port})")
    maxmemory = str(section.get("maxmemory", (str, int), defaults.MAXMEMORY))
    policy = section.get("maxmemory_policy", str, defaults.MAXMEMORY_POLICY)
    if policy not in MAXMEMORY_POLICIES:
        problems.add(("redis", "maxmemory_policy"), f"expected one of {', '.join(MAXMEMORY_POLICIES)}, got {policy!r}")
    appendonly = section.get("appendonly", bool, defaults.APPENDONLY)
    save = section.get("save", str, defaults.SAVE)
    if save and not re.fullmatch(r"(\d+ \d+)( \d+ \d+)*", save.strip()):
        problems.add(("redis", "save"), f'expected pairs of "seconds changes", or "" to disable, got {save!r}')
    if appendonly is False and save is not None and not save.strip():
        problems.add(("redis", "appendonly"), 'appendonly: false with save: "" leaves no persistence: a master that '
                     "restarts comes back empty and its replicas copy the empty dataset (Redis docs, \"Safety of "
                     "replication when master has persistence turned off\"); keep appendonly: true or set save")
    maxmemory_problem = _maxmemory_problem(maxmemory)
    if maxmemory_problem:
        problems.add(("redis", "maxmemory"), maxmemory_problem)
    extra_settings = _read_settings(problems, ("redis", "settings"), section.get("settings", dict, {}))
    section.get("allow_dangerous_settings", list, [])        # checked with every setting (_dangerous_problems)
    section.finish()
    if None in (version, source, port, sentinel_port):
        return None
    return RedisSettings(version=version, source=source, releases=tuple(releases),
                         install_dir=install_dir.rstrip("/"), port=port, sentinel_port=sentinel_port,
                         maxmemory=maxmemory, maxmemory_policy=policy, appendonly=appendonly, save=save.strip(),
                         extra_settings=tuple(sorted(extra_settings)))




def _read_groups(problems: _Problems, data: Any, default_port: int | None) -> tuple[Group, ...]:
    if not isinstance(data, dict) or not data:
        problems.add(("groups",), "expected a mapping of replication group name (the Sentinel master name) "
                                  "to its master, replicas and quorum")
        return ()
    groups = []
    for name, spec in data.items():
        key_path = ("groups", name)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            problems.add(key_path, "group names are letters, digits, '-', '_' and '.'")
            continue
        section = _Section(problems, key_path, spec, "master, replicas, quorum…")
        master = section.get("master", str, what="the host that starts as master")
        replicas = section.get("replicas", list, [])
        replica_names = []
        for index, replica in enumerate(replicas):
            if not isinstance(replica, str):
                problems.add(key_path + ("replicas", index), f"expected a host name, got {_type_name(replica)}")
            elif replica in replica_names:
                problems.add(key_path + ("replicas", index), f"{replica!r} is listed twice")
            elif replica == master:
                problems.add(key_path + ("replicas", index), f"{replica!r} is this group's master; a host cannot "
                                                             "be master and replica of the same group")
            else:
                replica_names.append(replica)
        quorum = section.positive_int("quorum")
        port = section.positive_int("port", default_port or defaults.REDIS_PORT, maximum=65535)
        down_after = section.positive_int("down_after_milliseconds", defaults.DOWN_AFTER_MILLISECONDS, minimum=100)
        failover_timeout = section.positive_int("failover_timeout", defaults.FAILOVER_TIMEOUT, minimum=1000)
        parallel_syncs = section.positive_int("parallel_syncs", defaults.PARALLEL_SYNCS)
        min_to_write = section.positive_int("min_replicas_to_write", defaults.min_replicas_to_write(replica_names),
                                            minimum=0)
        max_lag = section.positive_int("min_replicas_max_lag",
                                       defaults.min_replicas_max_lag(down_after or defaults.DOWN_AFTER_MILLISECONDS))
        overrides = _read_overrides(problems, key_path + ("redis",), section.get("redis", dict, None))
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


def _read_secret(problems: _Problems, key_path: tuple, section: _Section, base_dir: Path,
                 environment: dict[str, str]) -> Secret | None:
    variable = section.get("password_env", str, None)
    file_name = section.get("password_file", str, None)
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


def _check_password(problems: _Problems, key_path: tuple, secret: Secret | None) -> None:
    if secret is not None and not PASSWORD_PATTERN.fullmatch(secret.value):
        problems.add(key_path, f"the password from {secret.origin} must be 12 to 256 printable ASCII characters "
                               "without spaces, quotes or backslashes (it is written into redis.conf)")


def _acl_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not ACL_NAME_PATTERN.fullmatch(name):
        return (f"expected an ACL user name (letters, digits, '_', '.', ':', '@', '-'; no spaces), got {name!r}")
    return None


def acl_rules_problem(rules: str) -> str | None:
    """Why these rules cannot be given to a user; the words are compared as Redis reads them
    (case-insensitively)."""
    if CONTROL_CHARACTERS.search(rules):
        return "a newline or control character would start another ACL line; give the rules on one line"
    for word in rules.split():
        if word[:1] in (">", "<", "#", "!"):
            return "passwords do not go in rules; use password_env or password_file"
        if word.lower() in ACL_TOOL_WORDS:
            return (f"on/off/nopass/resetpass are set by the tool, and reset is refused (got {word!r}); give only "
                    "key, channel and command rules")
    return None


def _read_acl(problems: _Problems, data: Any, base_dir: Path, environment: dict[str, str]) -> Acl | None:
    section = _Section(problems, ("acl",), data, "admin, replication, sentinel, users")
    built_in = {}
    default_names = {"admin": defaults.ADMIN_USER, "replication": defaults.REPLICATION_USER,
                     "sentinel": defaults.SENTINEL_USER}
    for role, default_name in default_names.items():
        key_path = ("acl", role)
        role_section = _Section(problems, key_path, section.get(role, dict, what="password_env or password_file"),
                                "name, password_env or password_file")
        name = role_section.get("name", str, default_name)
        if name is not None and (name_problem := _acl_name_problem(name)):
            problems.add(key_path + ("name",), name_problem)
        secret = _read_secret(problems, key_path, role_section, base_dir, environment)
        _check_password(problems, key_path, secret)
        role_section.finish()
        built_in[role] = (name, secret)
    users = []
    for name, spec in section.get("users", dict, {}).items():
        key_path = ("acl", "users", name)
        user_section = _Section(problems, key_path, spec, "rules, password_env or password_file")
        rules = user_section.get("rules", str, what='ACL rules such as "~app:* +@read +@write"')
        secret = _read_secret(problems, key_path, user_section, base_dir, environment)
        _check_password(problems, key_path, secret)
        user_section.finish()
        if rules is not None and (rules_problem := acl_rules_problem(rules)):
            problems.add(key_path + ("rules",), rules_problem)
        if name_problem := _acl_name_problem(name):
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


def _read_system(problems: _Problems, data: Any) -> System:
    section = _Section(problems, ("system",), data if data is not None else {}, "sysctl, transparent_hugepage")
    sysctl = dict(defaults.SYSCTL)
    for key, value in section.get("sysctl", dict, {}).items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_-]+)+", key):
            problems.add(("system", "sysctl", key), "expected a dotted sysctl key such as net.core.somaxconn")
        elif not isinstance(value, int) or isinstance(value, bool):
            problems.add(("system", "sysctl", key), f"expected an integer, got {_type_name(value)} {value!r}")
        else:
            sysctl[key] = value
    if sysctl.get("vm.overcommit_memory") not in (None, 0, 1, 2):
        problems.add(("system", "sysctl", "vm.overcommit_memory"), "expected 0, 1 or 2 (Redis wants 1)")
    thp = section.get("transparent_hugepage", str, defaults.TRANSPARENT_HUGEPAGE)
    if thp not in THP_MODES:
        problems.add(("system", "transparent_hugepage"), f"expected one of {', '.join(THP_MODES)}, got {thp!r}")
    section.finish()
    return System(sysctl=tuple(sorted(sysctl.items())), transparent_hugepage=thp)


def _seconds(problems: _Problems, section: "_Section", key: str, default: float, maximum: float) -> float:
    value = section.get(key, (int, float), default)
    if value is None or isinstance(value, bool) or not 0 < value <= maximum:
        if value is not None:
            problems.add(("controller", key), f"expected seconds above 0 and at most {maximum:g}, got {value!r}")
        return default
    return float(value)


def _controller_path(problems: _Problems, section: "_Section", key: str, default: str | None, base_dir: Path,
                     must_exist: bool) -> str | None:
    """A controller-side file: ~ expanded, a relative path taken from the inventory's folder."""
    value = section.get(key, str, default)
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


GATEWAY_PATTERN = re.compile(r"(?:[a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::[0-9]{1,5})?")


def _read_controller(problems: _Problems, data: Any, base_dir: Path) -> Controller:
    section = _Section(problems, ("controller",), data if data is not None else {},
                       "network_namespace, parallel, connect_timeout, command_timeout, keepalive, known_hosts, "
                       "host_key_checking, ssh_config, gateway")
    namespace = section.get("network_namespace", str, None)
    if namespace is not None and not NAME_PATTERN.fullmatch(namespace):
        # it names /run/netns/<name>: a plain name, never a path
        problems.add(("controller", "network_namespace"), f"expected a plain name (letters, digits, '-', '_', '.'), "
                                                          f"got {namespace!r}")
        namespace = None
    parallel = section.positive_int("parallel", defaults.PARALLEL, maximum=256)
    timeout = _seconds(problems, section, "connect_timeout", defaults.CONNECT_TIMEOUT, 600)
    command_timeout = _seconds(problems, section, "command_timeout", defaults.COMMAND_TIMEOUT, 86400)
    keepalive = section.positive_int("keepalive", defaults.KEEPALIVE, maximum=3600)
    known_hosts = _controller_path(problems, section, "known_hosts", defaults.KNOWN_HOSTS, base_dir, False)
    ssh_config = _controller_path(problems, section, "ssh_config", None, base_dir, True)
    gateway = section.get("gateway", str, None)
    if gateway is not None and not GATEWAY_PATTERN.fullmatch(gateway):
        problems.add(("controller", "gateway"), f"expected [user@]host[:port] or an ssh_config alias, got {gateway!r}")
        gateway = None
    # YAML reads an unquoted yes/no as a boolean; OpenSSH's words mean the same.
    raw_checking = section.data.get("host_key_checking")
    if isinstance(raw_checking, bool):
        section.data["host_key_checking"] = "yes" if raw_checking else "no"
    checking = section.get("host_key_checking", str, defaults.HOST_KEY_CHECKING)
    if checking not in HOST_KEY_CHECKING:
        problems.add(("controller", "host_key_checking"), f"expected one of {', '.join(HOST_KEY_CHECKING)}, got {checking!r}")
    section.finish()
    return Controller(network_namespace=namespace, parallel=parallel or defaults.PARALLEL, connect_timeout=timeout,
                      command_timeout=command_timeout, keepalive=keepalive or defaults.KEEPALIVE,
                      known_hosts=known_hosts or os.path.expanduser(defaults.KNOWN_HOSTS), host_key_checking=checking,
                      ssh_config=ssh_config, gateway=gateway)


def load_ssh_config(controller: Controller) -> "paramiko.SSHConfig | None":
    """The ssh_config the controller's connections honour: the inventory's, else ~/.ssh/config."""
    path = controller.ssh_config or os.path.expanduser(defaults.USER_SSH_CONFIG)
    if not os.path.isfile(path):
        return None
    try:
        return paramiko.SSHConfig.from_path(path)
    except (OSError, paramiko.SSHException, ValueError):
        return None


def _check_topology(problems: _Problems, hosts: tuple[Host, ...], groups: tuple[Group, ...],
                    sentinels: list, redis: RedisSettings | None) -> tuple[str, ...]:
    host_names = {host.name for host in hosts}
    absent = {host.name for host in hosts if host.absent}
    for group in groups:
        for index, member in enumerate(group.members):
            if member in absent:
                where = ("groups", group.name, "master") if index == 0 else ("groups", group.name, "replicas", index - 1)
                problems.add(where, f"{member!r} is state: absent (being retired); take it out of the group")
        if group.master not in host_names:
            problems.add(("groups", group.name, "master"), f"unknown host {group.master!r}; hosts are "
                                                           f"{', '.join(sorted(host_names))}")
        for index, replica in enumerate(group.replicas):
            if replica not in host_names:
                problems.add(("groups", group.name, "replicas", index), f"unknown host {replica!r}")
    used_ports: dict[tuple[str, int], str] = {}
    for group in groups:
        for member in group.members:
            if (member, group.port) in used_ports:
                problems.add(("groups", group.name, "port"),
                             f"host {member!r} already serves group {used_ports[(member, group.port)]!r} on port "
                             f"{group.port}; give one of the groups its own port")
            used_ports[(member, group.port)] = group.name
            if redis is not None and group.port == redis.sentinel_port:
                problems.add(("groups", group.name, "port"), f"{group.port} is the Sentinel port")
        for other in groups:
            if other is not group and group.master in other.replicas and group.port == other.port:
                problems.add(("groups", group.name, "master"),
                             f"{group.master!r} is also a replica in group {other.name!r} on the same port")
    sentinel_names: list[str] = []
    if not isinstance(sentinels, list):
        problems.add(("sentinels",), "expected a list of the hosts that run a Sentinel")
        return ()
    for index, name in enumerate(sentinels):
        if not isinstance(name, str):
            problems.add(("sentinels", index), f"expected a host name, got {_type_name(name)}")
        elif name not in host_names:
            problems.add(("sentinels", index), f"unknown host {name!r}")
        elif name in absent:
            problems.add(("sentinels", index), f"{name!r} is state: absent (being retired); take it out of sentinels")
        elif name in sentinel_names:
            problems.add(("sentinels", index), f"{name!r} is listed twice")
        else:
            sentinel_names.append(name)
    count = len(sentinel_names)
    if count < 3:
        problems.add(("sentinels",), f"{count} sentinel(s); at least 3 on separate hosts are needed so that a "
                                     "majority survives the loss of one")
        return tuple(sentinel_names)
    majority = count // 2 + 1
    for group in groups:
        if group.quorum > count:
            problems.add(("groups", group.name, "quorum"),
                         f"quorum {group.quorum} is larger than the {count} sentinels: the master could never be "
                         "agreed down")
            continue
        surviving = count - sum(1 for name in sentinel_names if name == group.master)
        if surviving < max(group.quorum, majority):
            problems.add(("groups", group.name, "quorum"),
                         f"when {group.master!r} fails, {surviving} sentinel(s) remain; a failover needs the quorum "
                         f"({group.quorum}) and a majority of all sentinels ({majority}) to authorise it")
    return tuple(sentinel_names)


TOP_LEVEL_KEYS = ("controller", "hosts", "redis", "groups", "sentinels", "acl", "system")


def load(path: str | os.PathLike, environment: dict[str, str] | None = None,
         resolve: Callable[[str], str | None] | None = None) -> Inventory:
    """Read and validate an inventory; raise InventoryError listing every problem."""
    path = str(path)
    environment = dict(os.environ) if environment is None else environment
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise InventoryError([f"{path}: cannot read the inventory: {error.strerror}"]) from None
    if len(raw) > MAX_INVENTORY_BYTES:
        raise InventoryError([f"{path}: {len(raw)} bytes; an inventory is refused above {MAX_INVENTORY_BYTES}"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise InventoryError([f"{path}:{line}: not UTF-8 text (byte {raw[error.start]:#04x})"]) from None
    data, lines, duplicates = _parse_yaml(path, text)
    problems = _Problems(path, lines)
    for key_path, line in duplicates:
        problems.items.append(f"{path}:{line}: {'.'.join(map(str, key_path))}: duplicate key (YAML would silently "
                              "keep only the last one)")
    top = _Section(problems, (), data, "the inventory")
    base_dir = Path(path).resolve().parent
    controller = _read_controller(problems, top.get("controller", dict, {}), base_dir)
    hosts = _read_hosts(problems, top.get("hosts", dict, {}), base_dir, load_ssh_config(controller),
                        resolve or resolve_ipv4)
    redis = _read_redis(problems, top.get("redis", dict, what="version and source"), base_dir)
    groups = _read_groups(problems, top.get("groups", dict, {}), redis.port if redis else None)
    sentinels = _check_topology(problems, hosts, groups, top.get("sentinels", list, []), redis)
    acl = _read_acl(problems, top.get("acl", dict, what="admin, replication and sentinel users"), base_dir,
                    environment)
    system = _read_system(problems, top.get("system", dict, {}))
    _dangerous_problems(problems, data)
    top.finish()
    if problems.items:
        raise InventoryError(problems.items)
    return Inventory(path=path, hosts=hosts, redis=redis, groups=groups, sentinels=sentinels, acl=acl,
                     system=system, controller=controller)
