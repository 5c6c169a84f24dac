"""A cluster-aware writer for the lab's measurements: sequence-numbered writes of three kinds
(SET, MULTI/EXEC of two hash-tagged keys, EVAL), each sent to the master its slot map names on
a connection of its own and confirmed with WAIT 1 on that same connection (WAIT counts the
writes of the connection it is sent on). After the faults, every acknowledged write must be on
the master that serves its slot now."""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

KINDS = ("set", "multi", "eval")
SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]) return 1"


@dataclass
class ClusterWriter:
    addresses: list[str]                 # every node's data address (port 6379)
    username: str
    password: str
    acknowledged: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    attempted: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)   # error kind → count (MOVED, NOREPLICAS, connection…)
    last_ack: float = 0.0
    longest_gap: float = 0.0
    _owners: list[str] = field(default_factory=list)
    _clients: dict[str, redis.Redis] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "ClusterWriter":
        self._refresh()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        for client in self._clients.values():
            client.close()

    def _client(self, address: str) -> redis.Redis:
        if address not in self._clients:
            self._clients[address] = redis.Redis(host=address, port=6379, username=self.username,
                                                 password=self.password, decode_responses=True, socket_timeout=2,
                                                 socket_connect_timeout=1, single_connection_client=True)
        return self._clients[address]

    def _drop(self, address: str) -> None:
        client = self._clients.pop(address, None)
        if client is not None:
            client.close()

    def _refresh(self) -> None:
        """The slot map from the first node that answers CLUSTER SLOTS."""
        for address in self.addresses:
            try:
                probe = redis.Redis(host=address, port=6379, username=self.username, password=self.password,
                                    socket_timeout=1, socket_connect_timeout=1, decode_responses=True)
                try:
                    ranges = probe.execute_command("CLUSTER SLOTS")
                finally:
                    probe.close()
            except redis.RedisError:
                continue
            owners = [""] * 16384
            items = ranges.items() if isinstance(ranges, dict) else \
                (((start, end), {"primary": (master[0], master[1])}) for start, end, master, *_ in ranges)
            for (start, end), nodes in items:
                for slot in range(int(start), int(end) + 1):
                    owners[slot] = nodes["primary"][0]
            if all(owners):
                self._owners = owners
                return

    def _run(self) -> None:
        sequence = 0
        started = time.monotonic()
        self.last_ack = started
        while not self._stop.is_set():
            sequence += 1
            kind = KINDS[sequence % len(KINDS)]
            key = f"{{w{sequence}}}:a"
            address = self._owners[key_slot(key.encode())] if self._owners else self.addresses[0]
            self.attempted[kind] += 1
            try:
                client = self._client(address)
                value = str(sequence)
                try:
                    self._write(client, kind, key, value, sequence)
                except redis.ResponseError as error:
                    # A slot on the move: the key is not on its old master any more, ask the new one
                    # (SET and EVAL; a transaction under ASK is refused, as redis-py refuses it).
                    if not str(error).startswith("ASK ") or kind == "multi":
                        raise
                    self.refused["ASK followed"] += 1
                    address = str(error).split()[2].rsplit(":", 1)[0]
                    client = self._client(address)
                    client.execute_command("ASKING")
                    self._write(client, kind, key, value, sequence)
                if int(client.execute_command("WAIT", 1, 1000)) >= 1:
                    self.acknowledged[kind].append((key, value))
                    now = time.monotonic()
                    self.longest_gap = max(self.longest_gap, now - self.last_ack)
                    self.last_ack = now
                else:
                    self.refused["WAIT 0"] += 1
            except redis.RedisError as error:
                self.refused[f"{type(error).__name__}: {str(error)[:40]}"] += 1
                self._drop(address)
                self._refresh()
                time.sleep(0.05)

    @staticmethod
    def _write(client: redis.Redis, kind: str, key: str, value: str, sequence: int) -> None:
        if kind == "set":
            client.set(key, value)
        elif kind == "multi":
            client.execute_command("MULTI")
            client.execute_command("SET", key, value)
            client.execute_command("SET", f"{{w{sequence}}}:b", value)
            client.execute_command("EXEC")
        else:
            client.eval(SCRIPT, 1, key, value)

    def lost_now(self) -> dict[str, int]:
        """lost(), read through a cluster client of its own (started from the first address)."""
        client = RedisCluster(host=self.addresses[0], port=6379, username=self.username, password=self.password,
                              decode_responses=True, socket_timeout=3)
        try:
            return self.lost(client)
        finally:
            client.close()

    def lost(self, client: RedisCluster) -> dict[str, int]:
        """kind → acknowledged writes not on the master serving their slot now."""
        missing = {}
        for kind, written in self.acknowledged.items():
            pipeline = client.pipeline()
            for key, _ in written:
                pipeline.get(key)
            values = pipeline.execute() if written else []
            missing[kind] = sum(got != value for got, (_, value) in zip(values, written))
        return missing

    def summary(self) -> str:
        acked = {kind: len(items) for kind, items in self.acknowledged.items()}
        return (f"attempted {dict(self.attempted)}, acknowledged {acked}, refused {dict(self.refused)}, "
                f"longest gap between acknowledgements {self.longest_gap:.2f}s")


def fill(client: RedisCluster, count: int) -> None:
    """key:0 … key:count-1 written, each holding its index."""
    pipeline = client.pipeline()
    for index in range(count):
        pipeline.set(f"key:{index}", str(index))
    assert all(pipeline.execute())


def intact(client: RedisCluster, count: int) -> int:
    """How many of fill()'s keys hold their index."""
    pipeline = client.pipeline()
    for index in range(count):
        pipeline.get(f"key:{index}")
    return sum(value == str(index) for index, value in enumerate(pipeline.execute()))
