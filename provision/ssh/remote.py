"""The only module that talks SSH. One connection per host per run, reused by every step.

Fabric opens the connection the way ssh would (ssh_config, ProxyJump or a gateway, agent and
keys; see connect) and does SFTP. Commands do not go through Fabric's `Connection.run`: each call
there passes Invoke's runner threads (15-25 ms for a trivial command). A channel per command on
the same transport costs ~10 ms under load, and a deploy sends hundreds of small probes, so the
commands of a host go to one persistent bash session (_ShellSession, ~2.7 ms a command), with a
channel of their own only when that session is busy. Commands never carry secrets: those travel
on stdin (`run(command, stdin=...)`; see rediscli.command_line for how a shell hands them to
redis-cli).
"""
from __future__ import annotations

import io
import os
import posixpath
import re
import secrets
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko
from fabric import Config, Connection

from provision.base import defaults, output
from provision.ssh import known_hosts
from provision.base.errors import HostError, ProvisionError
from provision.inventory import Host

POLL_SECONDS = 0.0005       # the first waits: most commands answer within a few milliseconds
POLL_FAST_SECONDS = 0.05    # polled at POLL_SECONDS for this long, then backing off
POLL_MAX_SECONDS = 0.05     # a long command (a compile) is looked at 20 times a second, not 2000


def _next_poll(current: float, started: float) -> float:
    """Back off once a command has run for a while, so waiting on a compile costs the controller
    no CPU the compile could use; a short command is still seen within half a millisecond."""
    if time.monotonic() - started < POLL_FAST_SECONDS:
        return POLL_SECONDS
    return min(current * 1.5, POLL_MAX_SECONDS)


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


#: seconds between the host's TERM and KILL to a command past its timeout
HOST_KILL_GRACE = 5


def _killed_on_host_after(timeout: float | None, command: str) -> str:
    """The host ends a command that outlives its timeout itself (coreutils timeout, TERM then
    KILL to its process group): the controller giving up alone left it running there."""
    if timeout is None:
        return command
    return f"timeout -k {HOST_KILL_GRACE} {max(1, int(timeout))} sh -c {shlex.quote(command)}"


def _wrap_privileged(host: Host, user: str, command: str) -> str:
    """Non-root users with `sudo: true` run every command through `sudo -n sh -c`."""
    if user == "root" or not host.sudo:
        return command
    return f"sudo -n sh -c {shlex.quote(command)}"


class Remote:
    """A live SSH session to one host: run commands, write files atomically."""

    def __init__(self, host: Host, connection: Connection, user: str = defaults.SSH_USER,
                 command_timeout: float | None = None):
        self.host = host
        self.connection = connection
        self.user = user                      # the login user in effect (inventory, ssh_config or root)
        self.command_timeout = command_timeout
        self.commands_run = 0
        self.current_command: str | None = None   # what a heartbeat names when a step is slow
        self.command_started = 0.0
        self._shell: _ShellSession | None = None
        self._shell_unavailable = False
        self._shell_lock = threading.Lock()
        self._held: list = []                 # channels of hold(): a host lock lives with them

    @property
    def name(self) -> str:
        return self.host.name

    def run(self, command: str, stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        """Run a shell command; never raises for a non-zero exit (callers decide). It goes to the
        host's persistent shell (_ShellSession) when that is free, else on a channel of its own."""
        timeout = timeout if timeout is not None else self.command_timeout
        wrapped = _killed_on_host_after(timeout, _wrap_privileged(self.host, self.user, command))
        output.detail("%s: $ %s", self.name, command)
        self.current_command, self.command_started = command, time.monotonic()
        self.commands_run += 1
        try:
            result = self._run(command, wrapped, stdin, None if timeout is None else timeout + HOST_KILL_GRACE + 5)
        finally:
            self.current_command = None       # a heartbeat names only a command still running
        if timeout is not None and result.exit_code == 124 and \
                time.monotonic() - self.command_started >= timeout - 0.5:
            return CommandResult(command, 124, result.stdout,
                                 result.stderr + f"\n(timed out after {timeout}s; killed on the host)")
        return result

    def _run(self, command: str, wrapped: str, stdin: str | None, timeout: float | None) -> CommandResult:
        if self._shell_lock.acquire(blocking=False):
            try:
                if self._shell is None and not self._shell_unavailable:
                    self._shell = _ShellSession.start(self.connection.client.get_transport())
                    self._shell_unavailable = self._shell is None
                if self._shell is not None:
                    result = self._shell.run(command, wrapped, stdin, timeout)
                    if self._shell.broken:
                        self._shell.close()
                        self._shell = None
                    return result
            finally:
                self._shell_lock.release()
        return self._run_on_own_channel(command, wrapped, stdin, timeout)

    def _run_on_own_channel(self, command: str, wrapped: str, stdin: str | None, timeout: float | None) -> CommandResult:
        transport = self.connection.client.get_transport()
        channel = transport.open_session()
        try:
            channel.exec_command(wrapped)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            stdout, stderr = bytearray(), bytearray()
            # sshd may send exit-status before the last of stdout: output ends at EOF.
            if not _wait(channel, stdout, stderr, timeout, lambda: (
                    channel.exit_status_ready() and (channel.eof_received or channel.closed)
                    and not channel.recv_ready() and not channel.recv_stderr_ready())):
                return _timed_out(command, stdout, stderr, timeout)
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
                   group: str | None = None, staging_dir: str | None = None, as_user: str | None = None) -> None:
        """Write a file atomically (_install_command), so no reader ever sees half a file and a
        secret is never world-readable, not even for a moment. `staging_dir` (a root-only
        directory on the same filesystem) keeps the temporary file out of a directory another
        user can write to. `as_user` does the whole write as that user (in a directory it owns,
        where it could plant a link under the temporary file's name): root never acts there."""
        prepare = as_user_command(as_user, _install_command("cat", staging_dir or posixpath.dirname(path), path,
                                                            mode, owner, group or owner))
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
        self.upload(step, io.BytesIO(content), path, mode, owner, group, staging_dir, as_user)

    def upload(self, step: str, local, path: str, mode: int, owner: str = "root", group: str | None = None,
               staging_dir: str | None = None, as_user: str | None = None) -> None:
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
            self.check(step, staged_install_command(staging, staging_dir or posixpath.dirname(path), path, mode,
                                                    owner, group, as_user))
        finally:
            self.run(f"rm -rf {q(upload_dir)}")

    def download(self, step: str, path: str, local) -> None:
        """Fetch a file over SFTP. SFTP runs as the SSH user, not through sudo, so for a sudo
        user the file is first copied to a private temporary file that user owns."""
        if self.user == "root" or not self.host.sudo:
            self.connection.get(path, local)
            return
        staging = f"/tmp/.provision-download-{os.getpid()}-{time.monotonic_ns()}"
        self.check(step, f"install -m 600 -o {shlex.quote(self.user)} {shlex.quote(path)} {shlex.quote(staging)}")
        try:
            self.connection.get(staging, local)
        finally:
            self.run(f"rm -f {shlex.quote(staging)}")

    def hold(self, command: str, ready: str, timeout: float = 15) -> str | None:
        """Start a command that lives as long as this connection (hostlock.py): None once it
        prints `ready`, else what it printed before it ended."""
        channel = self.connection.client.get_transport().open_session()
        channel.exec_command(_wrap_privileged(self.host, self.user, command))
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if channel.recv_ready():
                seen += channel.recv(4096)
                if ready.encode() in seen:
                    self._held.append(channel)
                    return None
            elif channel.exit_status_ready():
                while channel.recv_ready():
                    seen += channel.recv(4096)
                channel.close()
                return seen.decode(errors="replace")
            else:
                time.sleep(0.01)
        channel.close()
        return f"no answer in {timeout:.0f}s to: {command}"

    def open_tunnel(self, address: str, port: int, step: str, timeout: float = 10):
        """A channel to address:port as the host reaches it (sshd's direct-tcpip, `ssh -L`):
        a socket-like stream for resp.Link. Needs the host's sshd to allow TCP forwarding."""
        transport = self.connection.client.get_transport()
        try:
            return transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)
        except (paramiko.SSHException, OSError) as error:
            raise HostError(self.name, step, f"open an SSH tunnel to {address}:{port}",
                            f"{error or type(error).__name__}: moving cluster slots talks to the nodes through "
                            "the SSH connection; the host's sshd must allow it (AllowTcpForwarding yes or local)")

    def holds(self) -> bool:
        """True while something hold() started is still held by this connection."""
        return bool(self._held)

    def release(self) -> None:
        """End what hold() started (its stdin closes and it exits)."""
        for channel in self._held:
            try:
                channel.close()
            except Exception:
                pass
        self._held.clear()

    def close(self) -> None:
        self.release()
        if self._shell is not None:
            self._shell.close()
        _close_chain(self.connection)


def _drain(channel, stdout: bytearray, stderr: bytearray) -> bool:
    """Move whatever the channel holds into the buffers; True if there was anything."""
    busy = False
    while channel.recv_ready():
        stdout += channel.recv(65536)
        busy = True
    while channel.recv_stderr_ready():
        stderr += channel.recv_stderr(65536)
        busy = True
    return busy


def _wait(channel, stdout: bytearray, stderr: bytearray, timeout: float | None, done) -> bool:
    """Drain the channel into the buffers until done(); False when `timeout` passed first. Polls
    every POLL_SECONDS while output flows, backing off after POLL_FAST_SECONDS of quiet."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause, quiet_since = POLL_SECONDS, time.monotonic()
    while True:
        busy = _drain(channel, stdout, stderr)
        if done():
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        if busy:
            pause, quiet_since = POLL_SECONDS, time.monotonic()
        else:
            time.sleep(pause)
            pause = _next_poll(pause, quiet_since)


def _timed_out(command: str, stdout: bytearray, stderr: bytearray, timeout: float | None) -> CommandResult:
    return CommandResult(command, 124, stdout.decode(errors="replace"),
                         stderr.decode(errors="replace") + f"\n(timed out after {timeout}s)")


class _ShellSession:
    """One long-lived `bash` per host that runs the run's commands one after another.

    Why: a channel of its own per command costs a channel open, sshd forking a session and
    exec'ing a shell, and half a dozen SSH messages, on both ends; a deploy sends hundreds of
    small probes, so that overhead, not the work, was the bulk of a no-op run's CPU. Here a
    command costs a subshell fork and one message each way.

    Each command runs in a subshell `( … )` (an `exit` or `cd` in it never reaches the session)
    with stdin from /dev/null, or from exactly its stdin bytes: `head -c N` takes them from the
    session's own input, which bash reads one byte at a time when it is not seekable, so nothing
    past the command line has been consumed. Secrets stay on stdin, as before. The end of a
    command's stdout and stderr is a marker with a random nonce; the byte before each marker is
    the newline the marker line adds, and is removed, so output comes back byte for byte.
    """

    def __init__(self, channel, nonce: str):
        self.channel, self.nonce = channel, nonce
        self.broken = False
        self._end_out = re.compile(rb"\n" + nonce.encode() + rb" (\d+)\n\Z")
        self._end_err = b"\n" + nonce.encode() + b"\n"

    @classmethod
    def start(cls, transport) -> "_ShellSession | None":
        """A session, or None when the host has no bash (then each command gets its own channel)."""
        nonce = "@@provision-end-" + secrets.token_hex(12)
        channel = transport.open_session()
        channel.exec_command("command -v bash >/dev/null 2>&1 || exit 97; exec bash --noprofile --norc")
        session = cls(channel, nonce)
        probe = session.run("true", "true", None, 10)
        if probe.exit_code != 0:
            session.close()
            return None
        return session

    def run(self, command: str, wrapped: str, stdin: str | None, timeout: float | None) -> CommandResult:
        nonce = self.nonce
        payload = stdin.encode() if stdin is not None else b""
        source = f"head -c {len(payload)} |" if stdin is not None else ""
        line = (f"{source} ( {wrapped}\n) {'' if stdin is not None else '</dev/null'}; "
                f"printf '\\n%s %d\\n' {nonce} $?; printf '\\n%s\\n' {nonce} >&2\n")
        stdout, stderr = bytearray(), bytearray()
        channel = self.channel
        try:
            channel.sendall(line.encode() + payload)

            def ended():
                return self._end_of(stdout, stderr) is not None or channel.exit_status_ready() or channel.closed
            if not _wait(channel, stdout, stderr, timeout, ended):
                self.broken = True            # the command may still run: this session is done
                return _timed_out(command, stdout, stderr, timeout)
            marker = self._end_of(stdout, stderr)
            if marker is not None:
                return CommandResult(command, int(marker.group(1)),
                                     bytes(stdout[:marker.start()]).decode(errors="replace"),
                                     stderr[:-len(self._end_err)].decode(errors="replace"))
            _drain(channel, stdout, stderr)
            self.broken = True
            code = channel.recv_exit_status() if channel.exit_status_ready() else 255
            return CommandResult(command, 255 if code == 0 else code, stdout.decode(errors="replace"),
                                 stderr.decode(errors="replace") + "\n(the remote shell ended)")
        except (OSError, EOFError, paramiko.SSHException) as error:
            self.broken = True
            return CommandResult(command, 255, stdout.decode(errors="replace"),
                                 stderr.decode(errors="replace") + f"\n(remote shell: {error})")

    def _end_of(self, stdout: bytearray, stderr: bytearray):
        """The end marker's match when both streams are complete (it is short: only the tail of
        stdout is searched)."""
        if not stderr.endswith(self._end_err):
            return None
        return self._end_out.search(stdout, max(0, len(stdout) - 96))

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:
            pass


def as_user_command(user: str | None, command: str) -> str:
    """The command run as `user` (root's runuser, stdin passed on), or as it is for None."""
    if user is None:
        return command
    return f"runuser -u {shlex.quote(user)} -- sh -c {shlex.quote(command)}"


def refuse_unless_plain_file(quoted: str) -> str:
    """Shell that stops (exit 4, reason on stderr) at a symbolic link or anything but a regular
    file: the redis user can plant either in the directories it owns, and root must not read or
    write through them."""
    return (f"if test -L {quoted}; then echo {quoted}': is a symbolic link; refusing to follow it' >&2; exit 4; "
            f"elif test -e {quoted} && ! test -f {quoted}; then echo {quoted}': is not a regular file' >&2; exit 4; fi; ")


def staged_install_command(staging: str, directory: str, path: str, mode: int, owner: str, group: str,
                           as_user: str | None = None) -> str:
    """An uploaded file (at `staging`, the SSH user's private copy) installed at `path` by
    _install_command; the whole install reads the copy (a pipe into a bare `a && b` list would
    feed only its first command)."""
    install = as_user_command(as_user, _install_command("cat", directory, path, mode, owner, group))
    return f"cat {shlex.quote(staging)} | {{ {install}; }}"


def _install_command(fill: str, directory: str, path: str, mode: int, owner: str, group: str) -> str:
    """Shell that puts `fill`'s output at `path` atomically: a private temporary file (mktemp in
    `directory`, umask 077) gets the content, its final mode and owner, is flushed to disk (a
    crash after the rename never leaves an empty file), and is renamed over the target (a rename
    replaces a symbolic link there instead of following it). On any failure it is removed."""
    q = shlex.quote
    template = q(posixpath.join(directory, f".{posixpath.basename(path)}.provision.XXXXXXXX"))
    return (f"umask 077 && t=$(mktemp {template}) && {fill} > \"$t\" && chown {q(owner)}:{q(group)} \"$t\" && "
            f"chmod {mode:o} \"$t\" && sync \"$t\" && mv -Tf \"$t\" {q(path)} || {{ rm -f \"$t\"; exit 1; }}")


def _effective(host: Host, ssh_config: paramiko.SSHConfig | None) -> tuple[str, int]:
    """User and port as OpenSSH picks them: the inventory where it says so, else ssh_config's
    User/Port for the address, else root and 22."""
    found = ssh_config.lookup(host.address) if ssh_config is not None else {}
    user = host.user or found.get("user") or defaults.SSH_USER
    port = host.port or int(found.get("port", defaults.SSH_PORT))
    return user, port


def _fabric_config(controller) -> Config:
    """Fabric's config with the controller's ssh_config (or ~/.ssh/config, Fabric's default)."""
    if controller.ssh_config:
        return Config(runtime_ssh_path=controller.ssh_config)
    return Config()


def _hops(connection: Connection) -> list[Connection]:
    """The connection and the jump hosts in front of it, nearest first."""
    chain = [connection]
    while isinstance(chain[-1].gateway, Connection):
        chain.append(chain[-1].gateway)
    return chain


def _describe_error(error: BaseException, target: str, timeout: float) -> str:
    """What an operator can act on, instead of paramiko's words (\"No existing session\")."""
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {target.split('@')[-1].rsplit(':', 1)[0]}: {error.strerror} (not in DNS or /etc/hosts, " \
               f"and no HostName for it in ssh_config)"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g}s (connect_timeout)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    if "banner" in text.lower() or text == "No existing session":
        return (f"no SSH banner within {timeout:g}s: something accepted the connection but is not an SSH server "
                f"answering (a hung sshd, or another service on that port)")
    if isinstance(error, paramiko.AuthenticationException) or "No authentication methods" in text:
        return f"authentication failed ({text}); keys tried: the inventory's key, ssh_config's IdentityFile, " \
               "ssh-agent and ~/.ssh/id_*"
    return f"{type(error).__name__}: {text}"


def connect(host: Host, controller, known: known_hosts.KnownHosts | None = None) -> Remote:
    """Open the run's one SSH connection to a host, the way ssh would: Fabric makes it (with
    ssh_config's alias, HostName, User, Port, IdentityFile and ProxyJump, or the inventory's
    gateway), keys from the inventory and ssh-agent, known_hosts as OpenSSH keeps it. Then Nagle
    goes off on the TCP socket (SSH's small request/reply packets otherwise wait on delayed ACKs,
    ~40 ms a command) and a keepalive goes on. HostError(step='connect') when it cannot.
    `known`: known_hosts already read (open_all reads it once for every host)."""
    config = _fabric_config(controller)
    user, port = _effective(host, config.base_ssh_config)
    timeout = controller.connect_timeout
    connect_kwargs = {"banner_timeout": timeout, "auth_timeout": timeout, "allow_agent": True}
    if host.key:
        connect_kwargs["key_filename"] = [host.key]
    gateway = Connection(controller.gateway, config=config, connect_timeout=timeout,
                         connect_kwargs=dict(connect_kwargs)) if controller.gateway else None
    connection = Connection(host.address, user=user, port=port, config=config, gateway=gateway,
                            connect_timeout=timeout, connect_kwargs=connect_kwargs)
    target = f"ssh {connection.user}@{connection.host}:{connection.port}"
    if isinstance(connection.gateway, Connection):
        target += " via " + " via ".join(f"{hop.user}@{hop.host}:{hop.port}" for hop in _hops(connection)[1:])
    known = known or known_hosts.load(controller.known_hosts)
    for hop in _hops(connection):
        known_hosts.apply(hop.client, known, controller.host_key_checking, hop.host, int(hop.port))
    try:
        connection.open()
    except paramiko.BadHostKeyException as error:
        _close_chain(connection)
        name = error.hostname
        raise HostError(host.name, "connect", target, known_hosts.changed_message(known, name, error.key)) from None
    except known_hosts.HostKeyRefused as error:
        _close_chain(connection)
        raise HostError(host.name, "connect", target, str(error)) from None
    except Exception as error:  # paramiko raises a zoo of types; the message is what matters
        _close_chain(connection)
        raise HostError(host.name, "connect", target, _describe_error(error, target, timeout)) from None
    for hop in _hops(connection):
        sock = hop.transport.sock
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hop.transport.set_keepalive(controller.keepalive)
    return Remote(host, connection, user, controller.command_timeout)


def _close_chain(connection: Connection) -> None:
    """Close a connection and every jump host opened for it (Fabric's close leaves those open)."""
    for hop in _hops(connection):
        try:
            hop.close()
        except Exception:
            pass


def open_all(plan, connect_seconds: dict[str, float] | None = None
             ) -> tuple[dict[str, Remote], dict[str, ProvisionError]]:
    """One connection to every host of the plan, all opened in parallel: (connections, why each
    unreachable host could not be reached). Every command of a run reuses these.
    `connect_seconds`, when given, gets how long each attempt took (a recap shows it)."""
    controller = plan.inventory.controller
    known = known_hosts.load(controller.known_hosts)
    connections: dict[str, Remote] = {}
    unreachable: dict[str, ProvisionError] = {}

    def open_one(host: Host) -> None:
        started = time.monotonic()
        try:
            connections[host.name] = connect(host, controller, known)
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
