"""The only module that talks SSH. One connection per host per run, reused by every step.

Why not Fabric's `Connection.run`: each call goes through Invoke's runner threads (15-25 ms a
trivial command even with TCP_NODELAY); a bare paramiko channel on the same transport is ~6 ms,
and a deploy makes hundreds of small probes. Fabric still opens the connection (auth, config,
SFTP). Commands never carry secrets: those travel on stdin (`run(command, stdin=...)`; see
rediscli.command_line for how a shell hands them to redis-cli).
"""
from __future__ import annotations

import io
import os
import posixpath
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko
from fabric import Connection

from provision import output
from provision.errors import HostError, ProvisionError
from provision.inventory import Host

POLL_SECONDS = 0.0005


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _wrap_privileged(host: Host, command: str) -> str:
    """Non-root users with `sudo: true` run every command through `sudo -n sh -c`."""
    if host.user == "root" or not host.sudo:
        return command
    return f"sudo -n sh -c {shlex.quote(command)}"


class Remote:
    """A live SSH session to one host: run commands, write files atomically."""

    def __init__(self, host: Host, connection: Connection):
        self.host = host
        self.connection = connection
        self.commands_run = 0
        self.current_command: str | None = None   # what a heartbeat names when a step is slow
        self.command_started = 0.0

    @property
    def name(self) -> str:
        return self.host.name

    def run(self, command: str, stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        """Run a shell command; never raises for a non-zero exit (callers decide)."""
        wrapped = _wrap_privileged(self.host, command)
        output.detail(f"{self.name}: $ {command}")
        self.current_command, self.command_started = command, time.monotonic()
        transport = self.connection.client.get_transport()
        channel = transport.open_session()
        self.commands_run += 1
        try:
            channel.exec_command(wrapped)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            stdout, stderr = bytearray(), bytearray()
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                busy = False
                while channel.recv_ready():
                    stdout += channel.recv(65536)
                    busy = True
                while channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(65536)
                    busy = True
                # sshd may send exit-status before the last of stdout: output ends at EOF.
                if (channel.exit_status_ready() and (channel.eof_received or channel.closed)
                        and not channel.recv_ready() and not channel.recv_stderr_ready()):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    return CommandResult(command, 124, stdout.decode(errors="replace"),
                                         stderr.decode(errors="replace") + f"\n(timed out after {timeout}s)")
                if not busy:
                    time.sleep(POLL_SECONDS)
            exit_code = channel.recv_exit_status()
        finally:
            channel.close()
        return CommandResult(command, exit_code, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def check(self, step: str, command: str, stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        """Run a command that must succeed; a failure becomes a HostError naming host, step, command."""
        result = self.run(command, stdin=stdin, timeout=timeout)
        if not result.ok:
            raise HostError(self.name, step, command, result.stderr or result.stdout, result.exit_code)
        return result

    def write_file(self, step: str, path: str, content: bytes, mode: int, owner: str = "root",
                   group: str | None = None, staging_dir: str | None = None) -> None:
        """Write a file atomically (_install_command), so no reader ever sees half a file and a
        secret is never world-readable, not even for a moment. `staging_dir` (a root-only
        directory on the same filesystem) keeps the temporary file out of a directory another
        user can write to."""
        prepare = _install_command("cat", staging_dir or posixpath.dirname(path), path, mode, owner, group or owner)
        if len(content) < 256 * 1024:
            try:
                text = content.decode()
            except UnicodeDecodeError:
                text = None
            if text is not None:
                result = self.run(prepare, stdin=text)
                if not result.ok:
                    raise HostError(self.name, step, f"write {path}", result.stderr, result.exit_code)
                return
        self.upload(step, io.BytesIO(content), path, mode, owner, group, staging_dir)

    def upload(self, step: str, local, path: str, mode: int, owner: str = "root", group: str | None = None,
               staging_dir: str | None = None) -> None:
        """Upload a local file (path or file object) atomically, over SFTP."""
        group = group or owner
        # SFTP creates files with the server's default mode, so the upload goes into a
        # directory only the SSH user can enter, made private before anything is in it.
        upload_dir = f"/tmp/.provision-upload-{os.getpid()}-{time.monotonic_ns()}"
        staging = posixpath.join(upload_dir, "file")
        q = shlex.quote
        try:
            sftp = self.connection.sftp()
            sftp.mkdir(upload_dir, mode=0o700)
            sftp.chmod(upload_dir, 0o700)
            self.connection.put(local, staging)
        except OSError as error:
            self.run(f"rm -rf {q(upload_dir)}")
            raise HostError(self.name, step, f"sftp put {path}", str(error)) from None
        try:
            self.check(step, _install_command(f"cat {q(staging)}", staging_dir or posixpath.dirname(path), path, mode,
                                              owner, group))
        finally:
            self.run(f"rm -rf {q(upload_dir)}")

    def download(self, step: str, path: str, local) -> None:
        """Fetch a file over SFTP. SFTP runs as the SSH user, not through sudo, so for a sudo
        user the file is first copied to a private temporary file that user owns."""
        if self.host.user == "root" or not self.host.sudo:
            self.connection.get(path, local)
            return
        staging = f"/tmp/.provision-download-{os.getpid()}-{time.monotonic_ns()}"
        self.check(step, f"install -m 600 -o {shlex.quote(self.host.user)} {shlex.quote(path)} {shlex.quote(staging)}")
        try:
            self.connection.get(staging, local)
        finally:
            self.run(f"rm -f {shlex.quote(staging)}")

    def close(self) -> None:
        self.connection.close()


def _install_command(fill: str, directory: str, path: str, mode: int, owner: str, group: str) -> str:
    """Shell that puts `fill`'s output at `path` atomically: a private temporary file (mktemp in
    `directory`, umask 077) gets the content, its final mode and owner, and is renamed over the
    target (a rename replaces a symbolic link there instead of following it)."""
    q = shlex.quote
    template = q(posixpath.join(directory, f".{posixpath.basename(path)}.provision.XXXXXXXX"))
    return (f"umask 077 && t=$(mktemp {template}) && {fill} > \"$t\" && chown {q(owner)}:{q(group)} \"$t\" && "
            f"chmod {mode:o} \"$t\" && mv -Tf \"$t\" {q(path)} || {{ rm -f \"$t\"; exit 1; }}")


def _connected_socket(host: Host, timeout: float) -> socket.socket:
    """A TCP socket to the host's sshd with Nagle off: SSH's small request/reply packets
    otherwise wait on delayed ACKs, ~40 ms a command."""
    sock = socket.create_connection((host.address, host.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


_known_hosts_lock = threading.Lock()


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """OpenSSH's accept-new: a host never seen is recorded in known_hosts; a host whose key
    differs from the recorded one is refused (paramiko raises BadHostKeyException for that)."""

    def __init__(self, known_hosts: str):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        with _known_hosts_lock:
            keys = paramiko.HostKeys()
            if os.path.exists(self.known_hosts):
                keys.load(self.known_hosts)
            keys.add(hostname, key.get_name(), key)
            os.makedirs(os.path.dirname(self.known_hosts) or ".", mode=0o700, exist_ok=True)
            temporary = f"{self.known_hosts}.provision-{os.getpid()}-{threading.get_ident()}"
            keys.save(temporary)
            os.replace(temporary, self.known_hosts)


def _apply_host_key_policy(connection: Connection, known_hosts: str, checking: str) -> None:
    """Fabric accepts any host key (AutoAddPolicy, known_hosts never read); put OpenSSH's
    behaviour back."""
    client = connection.client
    if checking == "no":
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        return
    if os.path.exists(known_hosts):
        client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy() if checking == "yes" else _AcceptNewPolicy(known_hosts))


def connect(host: Host, timeout: float = 10.0, known_hosts: str = os.path.expanduser("~/.ssh/known_hosts"),
            host_key_checking: str = "accept-new") -> Remote:
    """Open the run's one SSH connection to a host; HostError(step='connect') when unreachable
    or when its host key is unknown (checking yes) or differs from known_hosts."""
    try:
        sock = _connected_socket(host, timeout)
    except OSError as error:
        raise HostError(host.name, "connect", f"tcp {host.address}:{host.port}",
                        error.strerror or str(error)) from None
    connect_kwargs = {"sock": sock, "banner_timeout": timeout, "auth_timeout": timeout}
    if host.key:
        connect_kwargs.update(key_filename=host.key, look_for_keys=False, allow_agent=False)
    connection = Connection(host.address, user=host.user, port=host.port, connect_timeout=timeout,
                            connect_kwargs=connect_kwargs)
    _apply_host_key_policy(connection, known_hosts, host_key_checking)
    try:
        connection.open()
    except paramiko.BadHostKeyException as error:
        sock.close()
        raise HostError(host.name, "connect", f"ssh {host.user}@{host.address}:{host.port}",
                        f"host key differs from the one in {known_hosts} (got {error.key.get_name()} "
                        f"{error.key.get_base64()[:16]}…): refusing to connect; if the host was really "
                        f"reinstalled, remove its line from {known_hosts}") from None
    except Exception as error:  # paramiko raises a zoo of types; the message is what matters
        sock.close()
        raise HostError(host.name, "connect", f"ssh {host.user}@{host.address}:{host.port}",
                        f"{type(error).__name__}: {error}") from None
    return Remote(host, connection)


def connect_for(host: Host, controller) -> Remote:
    """connect() with the inventory's controller settings (timeout, known_hosts, checking)."""
    return connect(host, controller.connect_timeout, controller.known_hosts, controller.host_key_checking)


def open_all(plan, connect_seconds: dict[str, float] | None = None
             ) -> tuple[dict[str, Remote], dict[str, ProvisionError]]:
    """One connection to every host of the plan, all opened in parallel: (connections, why each
    unreachable host could not be reached). Every command of a run reuses these.
    `connect_seconds`, when given, gets how long each attempt took (a recap shows it)."""
    controller = plan.inventory.controller
    connections: dict[str, Remote] = {}
    unreachable: dict[str, ProvisionError] = {}

    def open_one(host: Host) -> None:
        started = time.monotonic()
        try:
            connections[host.name] = connect_for(host, controller)
        except ProvisionError as error:
            unreachable[host.name] = error
        if connect_seconds is not None:
            connect_seconds[host.name] = time.monotonic() - started
    with ThreadPoolExecutor(max_workers=max(1, controller.parallel)) as pool:
        list(pool.map(open_one, [host_plan.host for host_plan in plan.hosts]))
    return connections, unreachable


def reason(error: ProvisionError) -> str:
    """The last line of a connect error: what a table of unreachable hosts shows."""
    return str(error).splitlines()[-1].strip()


def close_all(connections: dict[str, Remote]) -> None:
    for connection in connections.values():
        connection.close()
