"""The host lock on real lab hosts: a second deploy is refused while another run holds the hosts,
naming the holder, and a controller killed with -9 lets go with its SSH connections; a hold this
process let go but the host never saw close (a partition) does not lock the process out."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from provision import cli
from provision.ssh import hostlock, netns, remote
from provision.base.errors import ProvisionError
from lab import hosts
from tests.labtools import deploy

pytestmark = pytest.mark.lab

HOLDER = """
import sys, time
from provision import cli
from provision.ssh import hostlock, netns
from lab import hosts
plan = cli.load_plan(sys.argv[1])
with netns.joined(hosts.BRIDGE_NAMESPACE):
    connections, _ = hostlock.open_locked(plan, "drill")
    print("HELD", flush=True)
    time.sleep(600)
"""


def test_a_second_run_is_refused_naming_the_holder_and_a_killed_controller_lets_go(deployed_lab, lab, artifact_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lab)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        with pytest.raises(ProvisionError) as refused:
            deploy(lab, artifact_dir)
        message = str(refused.value)
        print(message)
        assert "another run holds this host: drill by " in message and f"pid {holder.pid} " in message
        assert all(f"lab{index}: another run holds" in message for index in (1, 2, 3))
    finally:
        holder.kill()
        holder.wait()
    time.sleep(1)
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output


def test_a_hold_we_let_go_that_the_host_still_runs_is_taken_over(deployed_lab, lab):
    plan = cli.load_plan(str(lab))
    with netns.joined(hosts.BRIDGE_NAMESPACE):
        first, _ = hostlock.open_locked(plan, "drill")
        try:
            for connection in first.values():
                connection._held.clear()     # let go here, as if the close never reached the host
            second, unreachable = hostlock.open_locked(plan, "drill")
            assert not unreachable and all(c.holds() for c in second.values())
            remote.close_all(second)
        finally:
            remote.close_all(first)
