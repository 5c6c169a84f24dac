"""Measure, never assume, that a group has at most one writable master.

A watcher asks every node of a group every 100 ms while something happens (a drill, a deploy, a
reboot) and records how long two or more nodes accepted writes at the same time, measured two
ways: what INFO replication says (role master, and, when min-replicas-to-write is set, at least
that many replicas with a fresh ack, min_slaves_good_slaves), and a write probe (a SET of a
short-lived key of the watcher's own, which Redis refuses on a replica, a loading node and a
master short of good replicas). A node that does not answer (stopped, cut off) is not counted:
the watcher reports how many polls went unanswered so a reader can tell. A node whose probe SET is
held unanswered is under CLIENT PAUSE WRITE (the hand-over's old master): it takes no write, so
INFO, which knows nothing of pauses, is not believed for it at that poll.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from provision.inventory import Group
from provision.core.plan import Plan

POLL_SECONDS = 0.1
PROBE_KEY = "redis-provision:rolewatch:probe"
PROBE_TTL_MS = 2000


def accepts_writes(info: dict, min_replicas_to_write: int) -> bool:
    """From an INFO replication reply (as redis-py parses it)."""
    if info.get("role") != "master":
        return False
    if min_replicas_to_write and "min_slaves_good_slaves" in info:
        return int(info["min_slaves_good_slaves"]) >= min_replicas_to_write
    return True


def overlap_seconds(samples: list[tuple[float, frozenset[str]]]) -> tuple[float, float]:
    """(total, longest) seconds during which two or more nodes accepted writes, from
    (time, writable nodes) samples. A sample that saw two stands for the time until the next
    one, so even a single poll that saw two masters counts (as about one poll interval)."""
    total = longest = stretch = 0.0
    for (tick, writable), (next_tick, _) in zip(samples, samples[1:] + [(samples[-1][0] + POLL_SECONDS, None)]
                                                 if samples else []):
        if len(writable) >= 2:
            total += next_tick - tick
            stretch += next_tick - tick
            longest = max(longest, stretch)
        else:
            stretch = 0.0
    return total, longest


@dataclass
class RoleWatch:
    plan: Plan
    group: Group
    samples: list[tuple[float, frozenset[str]]] = field(default_factory=list)          # by INFO
    probe_samples: list[tuple[float, frozenset[str]]] = field(default_factory=list)    # by a SET that succeeded
    unanswered: dict[str, int] = field(default_factory=dict)
    paused: dict[str, int] = field(default_factory=dict)       # polls whose probe SET was held
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "RoleWatch":
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        admin = self.plan.inventory.acl.admin
        clients = {name: redis.Redis(host=self.plan.inventory.host(name).data_address, port=self.group.port,
                                     username=admin.name, password=admin.password.value, socket_timeout=0.3,
                                     socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0))
                   for name in self.group.members}
        # No retries: redis-py's default Retry would hide a node that did not answer.
        while not self._stop.is_set():
            tick = time.monotonic()
            writable, probed = set(), set()
            for name, client in clients.items():
                try:
                    if accepts_writes(client.info("replication"), self.group.min_replicas_to_write):
                        writable.add(name)
                except (redis.RedisError, OSError):
                    self.unanswered[name] = self.unanswered.get(name, 0) + 1
                    continue
                try:
                    client.set(PROBE_KEY, name, px=PROBE_TTL_MS)
                    probed.add(name)
                except redis.TimeoutError:
                    # The SET was held, not answered: a master under CLIENT PAUSE WRITE (a
                    # hand-over) takes no write, though INFO, which knows nothing of pauses,
                    # still calls it a master with good replicas.
                    writable.discard(name)
                    self.paused[name] = self.paused.get(name, 0) + 1
                except (redis.RedisError, OSError):
                    pass      # READONLY, NOREPLICAS, LOADING, or no answer: not writable
            self.samples.append((tick, frozenset(writable)))
            self.probe_samples.append((tick, frozenset(probed)))
            self._stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - tick)))
        for client in clients.values():
            client.close()

    def _overlap(self) -> tuple[float, float]:
        """The worse of the two measures: INFO's and the write probe's."""
        by_info, by_probe = overlap_seconds(self.samples), overlap_seconds(self.probe_samples)
        return max(by_info[0], by_probe[0]), max(by_info[1], by_probe[1])

    @property
    def two_master_seconds(self) -> float:
        return self._overlap()[0]

    @property
    def longest_two_master_seconds(self) -> float:
        return self._overlap()[1]

    def writable_nodes_seen(self, since: float = 0.0) -> set[str]:
        """Nodes that accepted writes (by INFO or by the probe) at some poll at or after `since`."""
        return set().union(*(nodes for tick, nodes in self.samples + self.probe_samples if tick >= since))

    def summary(self) -> str:
        total, longest = self._overlap()
        silent = ", ".join(f"{name} {count}" for name, count in sorted(self.unanswered.items())) or "none"
        held = ", ".join(f"{name} {count}" for name, count in sorted(self.paused.items())) or "none"
        probed = ", ".join(sorted(set().union(*(nodes for _, nodes in self.probe_samples)))) or "none"
        return (f"{len(self.samples)} polls every {POLL_SECONDS * 1000:.0f} ms; two writable masters for "
                f"{total:.2f}s (longest {longest:.2f}s; INFO and write probe); writable at some point: "
                f"{', '.join(sorted(self.writable_nodes_seen())) or 'none'} (took the probe's SET: {probed}); "
                f"unanswered polls: {silent}; polls with the probe's SET held (paused): {held}")
