"""The engine under a deploy: runs a table of waves, each wave's step on its hosts in parallel.

It owns what every wave needs and no step should: the thread pool, failure isolation (a host
whose step raises is named with its step and error and sits out the later waves, the others go
on), a heartbeat for long steps (a compile), and printing one line at a time with every secret
masked. What a wave does is in orchestrate.py's table.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from provision.base.errors import HostError, Interrupted, ProvisionError
from provision.steps.hostrun import HostRun

HEARTBEAT_SECONDS = 15.0


State = TypeVar("State")     # what the waves share (orchestrate.Deploy)


@dataclass(frozen=True)
class Wave(Generic[State]):
    name: str
    hosts: Callable[[State], list[HostRun]] | None   # which hosts, chosen when the wave starts; None: once, here
    step: Callable[..., None]                          # step(run, state) per host, or step(state) once


class Runner:
    """Host runs, their failures, the pool and the heartbeat of one deploy."""

    def __init__(self, parallel: int, say: Callable[[str], None], mask: Callable[[str], str]):
        self._print_lock = threading.Lock()
        self._say, self._mask = say, mask
        self.runs: dict[str, HostRun] = {}
        self.errors: dict[str, ProvisionError] = {}
        self.unreachable: set[str] = set()
        self.ended: dict[str, float] = {}      # host → when it failed or was given up on (monotonic)
        self.pool = ThreadPoolExecutor(max_workers=max(1, parallel))
        self._step_started: dict[str, float] = {}
        self._stop = threading.Event()
        self.interrupted = False
        self._heartbeat = threading.Thread(target=self._beat, daemon=True)
        self._heartbeat.start()

    def say(self, message: str) -> None:
        with self._print_lock:
            self._say(self._mask(message))

    def alive(self, names=None) -> list[HostRun]:
        """Runs still in the game (connected, nothing failed), optionally only these names."""
        names = list(self.runs) if names is None else names
        return [self.runs[name] for name in names if name in self.runs and name not in self.errors]

    def fail(self, name: str, error: ProvisionError) -> None:
        self.errors[name] = error
        self.ended.setdefault(name, time.monotonic())
        self.say(f"FAILED {error}")

    def in_flight(self) -> str:
        """What the run is waiting for: each host's step and the command it has running."""
        parts = []
        for name in list(self._step_started):
            run = self.runs.get(name)
            if run is not None:
                running = run.remote.current_command
                parts.append(f"{name} {run.step!r}" + (f" ({_shorten(running, 80)})" if running else ""))
        return ", ".join(parts) or "nothing"

    def _wait(self, futures) -> None:
        """Until every future is done. A first Ctrl-C says what is in flight and lets it finish
        (no later wave starts); a second one cuts the hosts' connections and aborts."""
        pending = set(futures)
        while pending:
            try:
                _, pending = wait(pending, timeout=0.5)
            except KeyboardInterrupt:
                if self.interrupted:
                    for run in self.runs.values():
                        run.remote.close()
                    raise Interrupted("aborted by a second Ctrl-C: the hosts' connections were cut; a restart "
                                      "in flight finishes on its host (it runs there as one unit); re-run deploy")
                self.interrupted = True
                self.say(f"interrupted: waiting for the steps in flight to finish: {self.in_flight()}; "
                         "no later wave starts. Ctrl-C again to abort now")

    def each(self, runs: list[HostRun], step_name: str, function: Callable[[HostRun], None]) -> None:
        """function(run) on every run in parallel; a failure is recorded for its host only."""
        def guarded(run: HostRun) -> None:
            run.begin(step_name)
            self._step_started[run.name] = time.monotonic()
            try:
                function(run)
            except ProvisionError as error:
                self.fail(run.name, error)
            except Exception as error:  # an unexpected bug still names the host and step
                self.fail(run.name, HostError(run.name, run.step, "(internal)", f"{type(error).__name__}: {error}"))
            finally:
                self._step_started.pop(run.name, None)
        self._wait([self.pool.submit(guarded, run) for run in runs])

    def run(self, waves: tuple[Wave[State], ...], state: State) -> None:
        for wave in waves:
            if self.interrupted:
                raise Interrupted(f"interrupted before wave {wave.name!r}: the steps in flight finished, nothing "
                                  "later ran; re-run deploy to converge")
            if wave.hosts is None:
                try:
                    wave.step(state)
                except KeyboardInterrupt:
                    raise Interrupted(f"interrupted in wave {wave.name!r} (on the controller); re-run deploy") from None
            else:
                self.each(wave.hosts(state), wave.name, lambda run, step=wave.step: step(run, state))

    def _beat(self) -> None:
        """A long step says it is alive, so a quiet terminal is not a hung one."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            now = time.monotonic()
            for name, since in list(self._step_started.items()):
                if now - since >= HEARTBEAT_SECONDS and name in self.runs:
                    remote = self.runs[name].remote
                    # Read once: the step's thread clears it when the command ends.
                    running, started = remote.current_command, remote.command_started
                    command = f"; running for {now - started:.0f}s: {_shorten(running)}" if running else ""
                    self.say(f"{name}: step {self.runs[name].step!r} still running ({now - since:.0f}s){command}")

    def close(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=True)
        for run in self.runs.values():
            run.remote.close()


def _shorten(command: str, limit: int = 160) -> str:
    """A heartbeat line stays one line: the command's first line, cut at `limit` characters."""
    text = command.strip()
    first = text.splitlines()[0] if text else ""
    return first if first == text and len(first) <= limit else first[:limit] + " …"
