"""Sentinel's majority rule, written once: the inventory's checks, the topology reader and the
start guard (which receives the number, since it runs alone at boot) all take it from here."""
from __future__ import annotations


def majority(sentinel_count: int) -> int:
    """How many sentinels must agree: a majority of ALL configured sentinels, not of those that
    answered (Sentinel authorises a failover only so, and a minority cut off must not decide)."""
    return sentinel_count // 2 + 1
