"""Runs that are cut short: a restart sent as one host-side unit finishes on the host even when
the session that sent it dies halfway (a dropped SSH connection, a killed controller)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from provision.core.plan import Layout
from provision.steps.services import on_host_alone


def test_a_restart_unit_finishes_on_the_host_when_its_session_dies_halfway(tmp_path):
    (tmp_path / "boot").mkdir()
    layout = Layout(str(tmp_path), "7.0.15")
    marker = tmp_path / "started-again"
    unit = on_host_alone(layout, "restart-6379", f"sleep 1 && echo started > {marker}")
    session = subprocess.Popen(["sh", "-c", unit], start_new_session=True)   # plays the SSH session
    time.sleep(0.3)                                  # the stop is done, the start not yet
    os.killpg(session.pid, signal.SIGKILL)           # the session dies, as sshd ends it on a drop
    session.wait()
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.read_text() == "started\n"


def test_a_restart_unit_reports_its_output_and_exit_code_when_the_session_lives(tmp_path):
    (tmp_path / "boot").mkdir()
    unit = on_host_alone(Layout(str(tmp_path), "7.0.15"), "restart-6379", "echo RESULT master; exit 3")
    done = subprocess.run(["sh", "-c", unit], capture_output=True, text=True, timeout=10)
    assert done.returncode == 3 and done.stdout == "RESULT master\n"
    assert list((tmp_path / "boot").iterdir()) == []


def test_a_command_past_its_timeout_is_killed_on_the_host_with_what_it_started(tmp_path):
    """The controller giving up used to leave the command running on the host."""
    from provision.ssh.remote import _killed_on_host_after
    pidfile = tmp_path / "child.pid"
    command = _killed_on_host_after(1, f"sleep 30 & echo $! > {pidfile}; wait")
    started = time.monotonic()
    done = subprocess.run(["sh", "-c", command], timeout=20)
    assert done.returncode == 124 and time.monotonic() - started < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{child}") or "zombie" in open(f"/proc/{child}/status").read().lower()


class _Remote:
    current_command = "sleep 1"
    command_started = 0.0
    closed = False

    def close(self):
        self.closed = True


class _Run:
    def __init__(self, name):
        self.name, self.step, self.remote = name, "configure", _Remote()

    def begin(self, step):
        self.step = step


def _interrupt_after(*delays):
    """SIGINT to this process (Python raises KeyboardInterrupt in the main thread), as a Ctrl-C."""
    import threading

    def send():
        for delay in delays:
            time.sleep(delay)
            os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=send, daemon=True).start()


def test_a_first_ctrl_c_says_what_it_waits_for_lets_the_step_finish_and_starts_no_later_wave():
    import pytest
    from provision.deploy import waves
    from provision.base.errors import Interrupted
    said, finished, later = [], [], []
    runner = waves.Runner(2, said.append, lambda text: text)
    run = _Run("lab1")
    runner.runs["lab1"] = run
    table = (waves.Wave("slow", lambda state: [run], lambda r, state: (time.sleep(1), finished.append(r.name))),
             waves.Wave("later", lambda state: [run], lambda r, state: later.append(r.name)))
    _interrupt_after(0.3)
    with pytest.raises(Interrupted, match="before wave 'later'"):
        runner.run(table, None)
    runner.close()
    assert finished == ["lab1"] and later == []
    assert any("interrupted: waiting for the steps in flight to finish: lab1 'slow' (sleep 1)" in line
               and "Ctrl-C again to abort now" in line for line in said), said


def test_a_second_ctrl_c_cuts_the_connections_and_aborts():
    import pytest
    from provision.deploy import waves
    from provision.base.errors import Interrupted
    runner = waves.Runner(2, lambda _: None, lambda text: text)
    run = _Run("lab1")
    runner.runs["lab1"] = run
    _interrupt_after(0.2, 0.2)
    with pytest.raises(Interrupted, match="aborted by a second Ctrl-C"):
        runner.each([run], "slow", lambda r: time.sleep(2))
    assert run.remote.closed
    runner.close()
