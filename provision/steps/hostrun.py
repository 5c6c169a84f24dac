"""What one host's part of a run carries: its connection, its plan, the run's options, and the
changes made (or, with --check, that would be made)."""
from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from provision.core.plan import HostPlan, Plan
from provision.core.state import HostState
from provision.facts.host import HostFacts
from provision.ssh.remote import Remote


@dataclass(frozen=True)
class RunOptions:
    check: bool = False
    diff: bool = False
    verbose: bool = False
    allow_major: bool = False          # upgrade/deploy across a major release (preflight.py)
    artifact_dir: Path = Path.home() / ".cache" / "redis-provision" / "artifacts"


@dataclass(frozen=True)
class Change:
    host: str
    step: str
    action: str
    diff: str = ""


@dataclass
class HostRun:
    remote: Remote
    plan: Plan
    host_plan: HostPlan
    options: RunOptions
    say: Callable[[str], None]
    changes: list[Change] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)
    facts: HostFacts | None = None     # from the facts wave
    acl_changed: bool | None = None    # users.acl written this run (None: not looked at yet)
    pending_links: list = field(default_factory=list)   # replicas started, link-up not yet waited for
    sentinel_auth_pending: bool = False   # SENTINEL CONFIG SET sentinel-user/pass once all have the user
    state: HostState | None = None     # from the host's state file (None: it had none)
    step: str = "connect"
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.host_plan.host.name

    @property
    def layout(self):
        return self.plan.layout

    def begin(self, step: str) -> None:
        self.step = step
        if self.options.verbose:
            self.say(f"{self.name}: {step}")

    def record(self, action: str, before: str | None = None, after: str | None = None, path: str = "") -> None:
        """Note a change (done, or with --check to be done), with its diff when it is a file."""
        diff = ""
        if after is not None:
            diff = "".join(difflib.unified_diff(
                (before or "").splitlines(keepends=True), after.splitlines(keepends=True),
                fromfile=f"{self.name}:{path} (current)" if before is not None else "/dev/null",
                tofile=f"{self.name}:{path} (wanted)"))
        with self.lock:
            self.changes.append(Change(self.name, self.step, action, diff))
        verb = "would " if self.options.check else ""
        self.say(f"{self.name}: {self.step}: {verb}{action}")

    def act(self, action: str, command: str | Callable[[], object] | None = None, *, stdin: str | None = None,
            timeout: float | None = None, before: str | None = None, after: str | None = None, path: str = ""):
        """The one place a step changes a host: the action is described once, recorded (with
        --check as what would be done) and, unless --check, done: `command` is a shell command
        (its stdin carries any secret, never the action or argv), or a callable for an action of
        several commands. Returns what the command returned, None under --check."""
        self.record(action, before=before, after=after, path=path)
        if self.options.check or command is None:
            return None
        if callable(command):
            return command()
        return self.remote.check(self.step, command, stdin=stdin, timeout=timeout)

    def act_quietly(self, command: str | Callable[[], object], *, stdin: str | None = None,
                    timeout: float | None = None):
        """What follows from a change already recorded (a daemon-reload after a unit file was
        written): done unless --check, not a change of its own."""
        if self.options.check:
            return None
        if callable(command):
            return command()
        return self.remote.check(self.step, command, stdin=stdin, timeout=timeout)
