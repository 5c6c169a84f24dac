"""A stand-in for remote.Remote in unit tests of the steps: it records every command sent, keeps
a small file system for the file primitives (read, state, atomic write), and answers every other
command from a table of (regex, stdout, exit code), first match wins. A command nothing answers
fails the test (UnknownCommand): a reworded primitive must not pass by getting "exit 0, no
output" from a stand-in that did not understand it. Unit tests only: a feature
is proven on the lab, a step's command sequence is shown here."""
from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field

from provision.base.errors import HostError
from provision.inventory import Host
from provision.ssh.remote import CommandResult


class UnknownCommand(AssertionError):
    pass


@dataclass
class FakeFile:
    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


@dataclass
class FakeRemote:
    host: Host
    answers: list[tuple[str, str, int]] = field(default_factory=list)
    files: dict[str, FakeFile] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    stdins: list[str | None] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.host.name

    def run(self, command: str, stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        self.commands.append(command)
        self.stdins.append(stdin)
        return self._answer(command)

    def _answer(self, command: str) -> CommandResult:
        as_user = re.fullmatch(r"runuser -u \S+ -- sh -c (.+)", command, re.S)
        # a redis place is read as the redis user: the same file probes, inside
        probe = self._file_probe(shlex.split(as_user.group(1))[0] if as_user else command)
        if probe is not None:
            return probe
        for pattern, stdout, exit_code in self.answers:
            if re.search(pattern, command):
                return CommandResult(command, exit_code, stdout, "" if exit_code == 0 else "failed")
        raise UnknownCommand(f"{self.name}: the fake host has no answer for: {command}")

    def _file_probe(self, command: str) -> CommandResult | None:
        state = re.search(r"test -f (\S+) \|\| exit 3; sha256sum \S+ && stat -c '%a %U %G' \S+$", command)
        if state:
            path = shlex.split(state.group(1))[0]
            found = self.files.get(path)
            if found is None:
                return CommandResult(command, 3, "", "")
            digest = hashlib.sha256(found.content.encode()).hexdigest()
            return CommandResult(command, 0, f"{digest}  {path}\n{found.mode:o} {found.owner} {found.group}\n", "")
        read = re.search(r"if test -e (\S+); then cat \S+; else exit 3; fi$", command)
        if read:
            found = self.files.get(shlex.split(read.group(1))[0])
            return CommandResult(command, 0, found.content, "") if found else CommandResult(command, 3, "", "")
        return None

    def check(self, step: str, command: str, stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        result = self.run(command, stdin=stdin, timeout=timeout)
        if not result.ok:
            raise HostError(self.name, step, command, result.stderr, result.exit_code)
        return result

    def write_file(self, step: str, path: str, content: bytes, mode: int, owner: str = "root",
                   group: str | None = None, staging_dir: str | None = None, as_user: str | None = None) -> None:
        self.written.append(path)
        self.files[path] = FakeFile(content.decode(), mode, owner, group or owner)

    def close(self) -> None:
        pass
