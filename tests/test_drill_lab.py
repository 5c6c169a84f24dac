"""The failover drill in each mode on three real hosts: a new master, no acknowledged write of
any kind lost, never two writable masters, the old master back as a replica, verify passing."""
from __future__ import annotations

import pytest

from lab.hooks import host_reboot

from provision import cli

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("mode", ["kill", "stop", "partition", "restart", "reboot"])
def test_drill_elects_new_master_loses_no_acknowledged_write_and_old_master_rejoins(lab, deployed_lab, mode):
    lines = []
    report = cli.drill(str(lab), mode=mode, seconds=8, say=lines.append, host_reboot=host_reboot())
    print("\n".join(lines))
    assert report.new_master != report.old_master
    assert report.acknowledged > 50 and report.attempted >= report.acknowledged
    assert report.lost == 0
    assert all(count.acknowledged > 10 and count.lost == 0 and count.lost_on_some_node == 0
               for count in report.kinds.values()), report.kinds
    assert set(report.kinds) == {"set", "multi", "eval", "fcall"}
    assert report.two_master_seconds == 0, report.role_watch
    assert 0 < report.seconds_to_new_master < 30
    assert 0 < report.unavailable_seconds < 30
    assert report.verify_failures == ()
    assert report.ok
