"""One deploy, upgrade, rollback, failover, promote or drill at a time per host.

The lock is a flock(1) held on the host by a command that lives exactly as long as the
controller's SSH connection: it reads its stdin until the channel closes, so a controller that
exits, crashes or is killed releases it with its connection, and nothing is left to clean up. The
lock file (root's, in /run, gone at a reboot) names the holder: controller host, user, pid, what
it runs and since when, and the pid of the holding command on the host. A holder on this same
controller whose pid no longer runs (its connection not yet timed out, say after a network
failure) is stale: its holding command is ended and the lock taken.
"""
from __future__ import annotations

import getpass
import os
import shlex
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from provision.ssh import remote as remotes
from provision.base.errors import ProvisionError
from provision.ssh.remote import Remote

LOCK_FILE = "/run/redis-provision.lock"

_taken_by: dict[tuple[str, str], Remote] = {}   # (host, holder text) -> this process's connection that took it


def holder_text(what: str) -> str:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"{what} by {getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} since {started}"


def lock_command(holder: str) -> str:
    path = shlex.quote(LOCK_FILE)
    return (f"umask 077; exec 7>>{path} || exit 70; "
            f"if ! flock -n 7; then printf 'HELD %s\\n' \"$(cat {path})\"; exit 75; fi; "
            f"printf '%s host-pid %s\\n' {shlex.quote(holder)} $$ > {path}; echo LOCKED; cat > /dev/null")


def parse_holder(text: str) -> tuple[str, int | None, int | None]:
    """(controller host, controller pid, host-side pid) from a lock file's line."""
    words = text.split()
    by = next((w for w in words if "@" in w), "@")
    pid = words[words.index("pid") + 1] if "pid" in words[:-1] else ""
    host_pid = words[words.index("host-pid") + 1] if "host-pid" in words[:-1] else ""
    return by.split("@", 1)[1], int(pid) if pid.isdigit() else None, int(host_pid) if host_pid.isdigit() else None


def stale(holder_line: str, host: str = "") -> int | None:
    """The host-side pid to end when the holder ran on this controller and is gone, else None."""
    controller, pid, host_pid = parse_holder(holder_line)
    if controller != socket.gethostname() or pid is None or host_pid is None:
        return None
    if pid == os.getpid():
        # Ours: stale only if the connection that took it has let go (a partitioned host did not
        # see that connection close, so its holding command still runs).
        taker = _taken_by.get((host, holder_line.split(" host-pid ", 1)[0].strip()))
        return host_pid if taker is not None and not taker.holds() else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return host_pid
    except PermissionError:
        return None
    return None


def acquire(remote: Remote, what: str) -> None:
    """Take the host's lock for the life of this connection; ProvisionError naming the holder."""
    holder = holder_text(what)
    for _ in range(2):
        answer = remote.hold(lock_command(holder), ready="LOCKED")
        if answer is None:
            _taken_by[(remote.name, holder)] = remote
            return
        held = answer.removeprefix("HELD ").strip()
        dead = stale(held, remote.name)
        if dead is None:
            raise ProvisionError(f"{remote.name}: another run holds this host: {held or 'unknown holder'} "
                                 f"({LOCK_FILE}); wait for it to end")
        remote.run(f"kill {dead} 2>/dev/null; sleep 0.2")
    raise ProvisionError(f"{remote.name}: the lock's stale holder did not let go ({LOCK_FILE})")


def open_locked(plan, what: str, connect_seconds: dict[str, float] | None = None
                ) -> tuple[dict[str, Remote], dict[str, ProvisionError]]:
    """remote.open_all, then every reached host's lock for as long as its connection lives; on a
    refusal nothing stays open and the error names every holder."""
    connections, unreachable = remotes.open_all(plan, connect_seconds)
    try:
        acquire_all(connections, what)
    except ProvisionError:
        remotes.close_all(connections)
        raise
    return connections, unreachable


def acquire_all(connections: dict[str, Remote], what: str) -> None:
    """Every host's lock, or none (the ones taken are let go): the error names every host held."""
    refused = []

    def one(remote: Remote) -> None:
        try:
            acquire(remote, what)
        except ProvisionError as error:
            refused.append(str(error))
    with ThreadPoolExecutor(max_workers=max(1, min(64, len(connections)))) as pool:
        list(pool.map(one, connections.values()))
    if refused:
        for remote in connections.values():
            remote.release()
        raise ProvisionError("refused, nothing changed:\n  " + "\n  ".join(sorted(refused)))
