"""A Redis connection from the controller to one node, through its host's SSH connection (a
direct-tcpip channel, what `ssh -L` opens), speaking RESP itself.

Why not redis-cli, as every other query: moving a slot is thousands of small commands whose
replies decide the next ones (GETKEYSINSLOT names the keys MIGRATE must carry), and key names
may hold any byte, newlines included, which redis-cli's text output cannot hand back intact. A
command per SSH exec would cost a round trip each; here a whole batch goes in one write and
its replies come back in one read (pipelining). The password goes in the stream (AUTH, MIGRATE's
AUTH2), never in an argv or a log line.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from provision.base.errors import HostError

READ_BYTES = 1 << 16


@dataclass(frozen=True)
class ReplyError:
    """An error reply (`-ERR ...`): a value in a pipeline's replies, not an exception, so one
    failed command among many is seen with the others' replies."""
    message: str

    @property
    def code(self) -> str:
        return self.message.split(" ", 1)[0]


def encode(words) -> bytes:
    """One command as a RESP array of bulk strings; words are str, bytes or int."""
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word if isinstance(word, bytes) else str(word).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class IncompleteReply(Exception):
    """The buffer ends inside a reply: read more and try again."""


def parse(buffer: bytes, start: int = 0):
    """(reply, end offset) of the reply at `start`. Bulk strings stay bytes (key names are any
    bytes); simple strings become str; errors ReplyError; nil None. RESP2 only: no HELLO 3."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        raise IncompleteReply
    kind, line = buffer[start:start + 1], buffer[start + 1:end]
    after = end + 2
    if kind == b"+":
        return line.decode(errors="replace"), after
    if kind == b"-":
        return ReplyError(line.decode(errors="replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            raise IncompleteReply
        return bytes(buffer[after:after + size]), after + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse(buffer, after)
            items.append(item)
        return items, after
    raise ValueError(f"not a RESP reply: {bytes(buffer[start:start + 40])!r}")


class Link:
    """A pipelined connection to one node. `name` (host:port) is what errors say."""

    def __init__(self, channel, host: str, name: str, step: str, timeout: float = 60):
        self._channel = channel
        self._buffer = bytearray()
        self.host, self.name, self.step = host, name, step
        channel.settimeout(timeout)

    def pipeline(self, commands: list, shown: str) -> list:
        """Every command sent in one write, every reply read back in order. `shown` names the
        batch in an error (never the commands: MIGRATE carries a password)."""
        if not commands:
            return []
        try:
            self._channel.sendall(b"".join(encode(words) for words in commands))
            replies = []
            while len(replies) < len(commands):
                replies.append(self._next_reply())
            return replies
        except (socket.timeout, OSError, EOFError) as error:
            raise HostError(self.host, self.step, f"{shown} on {self.name}", f"the connection failed: {error}")

    def call(self, words, shown: str):
        return self.pipeline([words], shown)[0]

    def checked(self, commands: list, shown: str, allowed: tuple[str, ...] = ()) -> list:
        """pipeline(), refusing any error reply but those whose code is in `allowed`."""
        replies = self.pipeline(commands, shown)
        for reply in replies:
            if isinstance(reply, ReplyError) and reply.code not in allowed:
                raise HostError(self.host, self.step, f"{shown} on {self.name}", reply.message)
        return replies

    def _next_reply(self):
        while True:
            try:
                reply, end = parse(self._buffer)
                del self._buffer[:end]
                return reply
            except IncompleteReply:
                data = self._channel.recv(READ_BYTES)
                if not data:
                    raise EOFError("closed by the other end")
                self._buffer += data

    def close(self) -> None:
        try:
            self._channel.close()
        except Exception:
            pass


def open_link(remote, address: str, port: int, user, step: str) -> Link:
    """A Link to address:port as seen from `remote`'s host, logged in as `user` (AclUser)."""
    link = Link(remote.open_tunnel(address, port, step), remote.name, f"{address}:{port}", step)
    if user is not None:
        reply = link.call(("AUTH", user.name, user.password.value), "AUTH")
        if isinstance(reply, ReplyError):
            link.close()
            raise HostError(remote.name, step, f"AUTH {user.name} on {address}:{port}", reply.message)
    return link
