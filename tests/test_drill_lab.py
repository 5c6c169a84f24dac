"""The failover drill in each mode on three real hosts: a new master, no acknowledged write lost,
the old master back as a replica, verify passing."""
from __future__ import annotations

import pytest

from provision import cli

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("mode", ["kill", "stop", "partition"])
def test_drill_elects_new_master_loses_no_acknowledged_write_and_old_master_rejoins(lab, mode):
    lines = []
    report = cli.drill(str(lab), mode=mode, seconds=8, say=lines.append)
    print("\n".join(lines))
    assert report.new_master != report.old_master
    assert report.acknowledged > 50 and report.attempted >= report.acknowledged
    assert report.lost == 0
    assert 0 < report.seconds_to_new_master < 30
    assert 0 < report.unavailable_seconds < 30
    assert report.verify_failures == ()
    assert report.ok
