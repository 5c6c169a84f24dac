"""Checks of single values (address, path, name, setting, ACL rules): each returns the problem as
a sentence, or None. Shared by the section readers and by the tool's other validators."""
from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any


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


def maxmemory_problem(value: str) -> str | None:
    if not SIZE_PATTERN.fullmatch(value):
        return f"expected a size such as 0, 256mb or 2gb, got {value!r}"
    return None


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


def acl_name_problem(name: Any) -> str | None:
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


GATEWAY_PATTERN = re.compile(r"(?:[a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::[0-9]{1,5})?")
