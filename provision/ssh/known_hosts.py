"""known_hosts the way OpenSSH keeps it: read every line the tool understands, skip the rest
without failing, and add a new host as one appended line. The file is never rewritten, so its
comments, its mode and the lines of key types paramiko cannot parse (sk-ssh-ed25519, …) stay.

Markers: `@revoked` keys are refused wherever they are presented. `@cert-authority` lines are
skipped (paramiko cannot check host certificates): such a host is treated as unknown, which with
accept-new records its plain key. paramiko's own HostKeys.save rewrites the whole file, and its
load raises on a marker line; neither is used.
"""
from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import threading
from dataclasses import dataclass, field

import paramiko
from paramiko.hostkeys import HostKeyEntry

from provision.base.errors import ProvisionError

_append_lock = threading.RLock()     # the file and the in-memory keys of a shared KnownHosts


class HostKeyRefused(ProvisionError):
    """The host's key is revoked, changed, or (checking yes) unknown; the message is OpenSSH's kind."""


@dataclass
class KnownHosts:
    path: str
    keys: paramiko.HostKeys = field(default_factory=paramiko.HostKeys)
    entries: list[tuple[int, HostKeyEntry]] = field(default_factory=list)   # (line number, entry)
    revoked: set[tuple[str, str]] = field(default_factory=set)              # (key type, base64)
    skipped: list[tuple[int, str]] = field(default_factory=list)            # (line number, why)

    def lines_for(self, host_key_name: str) -> list[int]:
        """Line numbers of the recorded keys for a host (hashed names matched as OpenSSH does)."""
        probe = paramiko.HostKeys()
        found = []
        for line_number, entry in self.entries:
            probe._entries = [entry]
            if probe.lookup(host_key_name) is not None:
                found.append(line_number)
        return found


def load(path: str) -> KnownHosts:
    """Every usable line of the file (a missing file is an empty one)."""
    known = KnownHosts(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return known
    for line_number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            fields = line.split()
            if fields[0] == "@revoked" and len(fields) >= 4:
                known.revoked.add((fields[2], fields[3]))
            else:
                known.skipped.append((line_number, f"{fields[0]} is not checked by this tool"))
            continue
        try:
            entry = HostKeyEntry.from_line(line, line_number)
        except (paramiko.SSHException, binascii.Error, ValueError) as error:
            known.skipped.append((line_number, f"unreadable: {error}"))
            continue
        if entry is None:
            known.skipped.append((line_number, "a key type this tool cannot read"))
            continue
        known.entries.append((line_number, entry))
    # One pass, not HostKeys.add per name (which scans every entry: quadratic in the file).
    # A revoked key never counts as known; reversed, so a later line wins, as add() made it.
    known.keys._entries = [entry for _, entry in reversed(known.entries)
                           if (entry.key.get_name(), entry.key.get_base64()) not in known.revoked]
    return known


def append(path: str, host_key_name: str, key: paramiko.PKey) -> None:
    """Add one line at the end, as ssh's accept-new does: O_APPEND under an exclusive lock (two
    runs at once do not interleave), the file's mode untouched, created 0600 in a 0700 folder
    when it does not exist yet."""
    line = f"{host_key_name} {key.get_name()} {key.get_base64()}\n"
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    with _append_lock:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                line = "\n" + line        # the last line had no newline: do not glue onto it
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def changed_message(known: KnownHosts, host_key_name: str, key: paramiko.PKey) -> str:
    """OpenSSH's warning, with the file and line to fix."""
    lines = known.lines_for(host_key_name)
    where = ", ".join(f"{known.path}:{number}" for number in lines) or known.path
    kind = key.get_name().replace("ssh-", "").upper()
    return (f"REMOTE HOST IDENTIFICATION HAS CHANGED for {host_key_name}: it offered the {kind} key "
            f"{_fingerprint(key)}, which is not the one recorded. Someone could be eavesdropping on you "
            f"(man-in-the-middle), or the host was reinstalled. Offending key in {where}. "
            f"Host key verification failed; if the change is expected, remove that line "
            f"(ssh-keygen -f {known.path} -R {host_key_name.split(']')[0].lstrip('[')}) and run again.")


class Policy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko for a key it did not find among the known ones (SSHClient.connect
    compares known keys itself and raises BadHostKeyException on a mismatch): refuse revoked
    keys and hosts known under another key type; then OpenSSH's StrictHostKeyChecking:
    accept-new appends, yes refuses, no accepts without recording."""

    def __init__(self, known: KnownHosts, checking: str):
        self.known, self.checking = known, checking

    def missing_host_key(self, client, hostname, key):
        if (key.get_name(), key.get_base64()) in self.known.revoked:
            raise HostKeyRefused(f"the {key.get_name()} key {_fingerprint(key)} of {hostname} is marked @revoked "
                                 f"in {self.known.path}. Host key verification failed.")
        if self.checking == "no":
            return
        recorded = self.known.keys.lookup(hostname)
        if recorded:
            raise HostKeyRefused(changed_message(self.known, hostname, key))
        if self.checking == "yes":
            raise HostKeyRefused(f"no {key.get_name()} host key is known for {hostname} in {self.known.path} and "
                                 f"host_key_checking is yes. Host key verification failed.")
        with _append_lock:
            append(self.known.path, hostname, key)
            self.known.keys.add(hostname, key.get_name(), key)


def host_key_name(host: str, port: int) -> str:
    """The name paramiko (and OpenSSH) look a host's key up by."""
    return host if port == 22 else f"[{host}]:{port}"


def apply(client: paramiko.SSHClient, known: KnownHosts, checking: str, host: str, port: int) -> None:
    """Give a paramiko client the known keys of the host it connects to (kept in memory:
    SSHClient never saves them) and the policy. Fabric's own default is AutoAddPolicy: accept
    anything, record nothing."""
    name = host_key_name(host, port)
    recorded = known.keys.lookup(name)
    for key_type, key in (recorded.items() if recorded else ()):
        client.get_host_keys().add(name, key_type, key)
    client.set_missing_host_key_policy(Policy(known, checking))
