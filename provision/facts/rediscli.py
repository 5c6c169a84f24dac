"""Talking to Redis and Sentinel on a host through its redis-cli, never with a password in argv.

The password goes on stdin; a shell reads it into REDISCLI_AUTH (which redis-cli reads) so it
never appears in a process list or a log line.
"""
from __future__ import annotations

import secrets
import shlex

from provision.base.errors import HostError
from provision.inventory import AclUser
from provision.core.plan import Layout
from provision.ssh.remote import CommandResult, Remote

REPLY_ERRORS = ("ERR", "NOAUTH", "WRONGPASS", "NOPERM", "WRONGTYPE", "LOADING", "MASTERDOWN", "READONLY",
                "NOREPLICAS", "BUSY", "Could not connect", "Error:")


#: the shell reads the password from stdin into the variable redis-cli reads it from
LOGIN = "IFS= read -r REDISCLI_AUTH; export REDISCLI_AUTH; "


def command_line(layout: Layout, address: str, port: int, args: list[str], user: AclUser | None) -> str:
    """The shell command; with `args` empty, redis-cli reads the command from its stdin."""
    return (LOGIN if user is not None else "") + _invocation(layout, address, port, args, user)


def _invocation(layout: Layout, address: str, port: int, args: list[str], user: AclUser | None) -> str:
    """redis-cli and its arguments, logging in as `user` with REDISCLI_AUTH already set."""
    cli = shlex.quote(layout.binary("redis-cli"))
    quoted_args = " ".join(shlex.quote(str(arg)) for arg in args)
    login = f" --user {shlex.quote(user.name)}" if user is not None else ""
    return f"{cli}{login} -h {shlex.quote(address)} -p {port} {quoted_args}"


def stdin_command(args: list[str]) -> str:
    """A command line as redis-cli reads it from stdin (its own quoting: double quotes,
    backslash escapes), so no argument appears in any process's argv."""
    return " ".join('"' + str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"' for arg in args) + "\n"


def call(remote: Remote, layout: Layout, address: str, port: int, args: list[str],
         user: AclUser | None = None, timeout: float | None = 15, secret_args: bool = False) -> CommandResult:
    """One command; stdout is redis-cli's raw reply. An error reply is not a failed exit code
    for redis-cli, so callers check `reply_error`. With `secret_args` (a password among the
    arguments) the command itself travels on stdin too, after the login password."""
    stdin = (user.password.value + "\n") if user is not None else ""
    if secret_args:
        return remote.run(command_line(layout, address, port, [], user), stdin=stdin + stdin_command(args),
                          timeout=timeout)
    return remote.run(command_line(layout, address, port, args, user), stdin=stdin or None, timeout=timeout)


def call_several(remote: Remote, layout: Layout, address: str, port: int, commands: list[list[str]],
                 user: AclUser | None = None, timeout: float | None = 15) -> list[CommandResult]:
    """Several commands in one round trip (one shell command on the host, the password read once
    from stdin): each gets its own result, as call() would give it. For probes that ask a node
    several things at once, which one SSH exec each would make several times as slow."""
    marker = "--redis-provision-part-" + secrets.token_hex(8) + "--"
    parts = [_invocation(layout, address, port, args, user) for args in commands]
    script = (LOGIN if user is not None else "") + " ".join(f"{part} 2>&1; echo \"{marker} $?\";" for part in parts)
    result = remote.run(script, stdin=(user.password.value + "\n") if user is not None else None, timeout=timeout)
    found: list[CommandResult] = []
    rest = result.stdout
    for args in commands:
        text, separator, rest = rest.partition(marker + " ")
        if not separator:
            found.append(CommandResult(" ".join(args), result.exit_code or 1, "", result.stderr or text))
            continue
        code, _, rest = rest.partition("\n")
        exit_code = int(code) if code.strip().isdigit() else 1
        found.append(CommandResult(" ".join(args), exit_code, text if exit_code == 0 else "",
                                   "" if exit_code == 0 else text))
    return found


def sentinel_call(remote: Remote, plan, host, args: list[str], timeout: float | None = 15,
                  secret_args: bool = False) -> CommandResult:
    """A command to the sentinel on `host`, authenticated: sentinels run with the default user
    off, so nobody on the data network can SENTINEL FAILOVER or RESET them."""
    return call(remote, plan.layout, host.data_address, plan.inventory.redis.sentinel_port, args,
                user=plan.inventory.acl.admin, timeout=timeout, secret_args=secret_args)


def parse_records(text: str, first_key: str) -> list[dict[str, str]]:
    """A list of flat maps (SENTINEL SENTINELS, SENTINEL REPLICAS) as redis-cli prints it
    without a terminal: one item per line, every record starting with `first_key`."""
    items = [line.strip() for line in text.splitlines() if line.strip()]
    records: list[dict[str, str]] = []
    for key, value in zip(items[0::2], items[1::2]):
        if key == first_key:
            records.append({})
        if records:
            records[-1][key] = value
    return records


def reply_error(result: CommandResult) -> str | None:
    text = (result.stdout + result.stderr).strip()
    if not result.ok:
        return text or f"redis-cli exit {result.exit_code}"
    first = text.splitlines()[0] if text else ""
    if any(first.startswith(prefix) for prefix in REPLY_ERRORS):
        return text
    return None


def answer(result: CommandResult) -> str | None:
    """The reply when the command worked, None when it failed or Redis answered an error: for
    reads that treat an unreachable node like an unknown one."""
    return None if reply_error(result) else result.stdout


def checked(result: CommandResult, host: str, step: str, shown: str) -> str:
    """The reply, or HostError naming the host, the step and the command as it may be shown
    (never a secret argument): the one call-and-raise every step uses."""
    error = reply_error(result)
    if error:
        raise HostError(host, step, shown, error)
    return result.stdout


def parse_sentinel_debug(text: str) -> dict[str, str]:
    """SENTINEL DEBUG's reply (upper-case names: INFO-PERIOD 1000 ...), names in lower case."""
    return {key.lower(): value for key, value in parse_pairs(text).items()}


def parse_info(text: str) -> dict[str, str]:
    """INFO output → {field: value}; section headers and blanks skipped."""
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key] = value
    return fields


def parse_pairs(text: str) -> dict[str, str]:
    """A flat key/value reply (SENTINEL MASTER) as redis-cli prints it, one item per line."""
    items = [line.strip() for line in text.splitlines()]
    return dict(zip(items[0::2], items[1::2]))


def replicas_in_info(info: dict[str, str]) -> dict[str, dict[str, str]]:
    """A master's INFO replication `slaveN:ip=…,port=…,state=…,offset=…,lag=…` lines, by ip."""
    replicas = {}
    for field, text in info.items():
        if field.startswith("slave") and field[5:].isdigit():
            parts = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
            replicas[parts.get("ip")] = parts
    return replicas
