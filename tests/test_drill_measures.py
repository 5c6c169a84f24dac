"""How the drill measures: unavailability as the longest gap between acknowledged writes, and
the role watch's count of polls that saw two writable masters."""
from __future__ import annotations

import pytest


def test_drill_unavailability_is_the_longest_gap_between_acknowledged_writes():
    from provision.ops.drill import longest_gap
    assert longest_gap([1.0, 1.1, 1.2, 4.7, 4.8], since=1.1) == pytest.approx(3.5)
    assert longest_gap([1.0, 1.1], since=2.0) == float("inf")


def test_role_watch_counts_every_poll_that_saw_two_writable_masters():
    from provision.ops.rolewatch import accepts_writes, overlap_seconds
    one, two = frozenset({"a"}), frozenset({"a", "b"})
    assert overlap_seconds([(0.0, one), (0.1, one), (0.2, one)]) == (0.0, 0.0)
    total, longest = overlap_seconds([(0.0, one), (0.1, two), (0.2, one), (0.3, two), (0.4, two), (0.5, one)])
    assert round(total, 3) == 0.3 and round(longest, 3) == 0.2
    assert accepts_writes({"role": "master"}, 0)
    assert not accepts_writes({"role": "master", "min_slaves_good_slaves": 0}, 1)   # cut off: NOREPLICAS
    assert accepts_writes({"role": "master", "min_slaves_good_slaves": 1}, 1)
    assert not accepts_writes({"role": "slave"}, 0)
