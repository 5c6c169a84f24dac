"""The host lock's own commands in a real local shell (flock on a real file): a second holder is
refused and told who holds it; the lock goes with its holder; a holder gone from this controller
is recognised as stale."""
from __future__ import annotations

import os
import socket
import subprocess

from provision.ssh import hostlock


def start_holding(command: str) -> subprocess.Popen:
    holder = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "LOCKED"
    return holder


def test_a_second_run_is_refused_naming_the_holder_until_the_first_lets_go(tmp_path, monkeypatch):
    monkeypatch.setattr(hostlock, "LOCK_FILE", str(tmp_path / "redis-provision.lock"))
    first = start_holding(hostlock.lock_command("deploy by alice@ctl pid 4242 since 2026-12-02T06:00:00"))
    second = subprocess.run(["sh", "-c", hostlock.lock_command("drill by bob@ctl2 pid 7 since now")],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
    assert second.returncode == 75
    assert second.stdout.startswith("HELD deploy by alice@ctl pid 4242 since 2026-12-02T06:00:00 host-pid ")
    first.stdin.close()                       # the controller's connection closes
    first.wait(timeout=10)
    third = start_holding(hostlock.lock_command("drill by bob@ctl2 pid 7 since now"))
    third.stdin.close()
    third.wait(timeout=10)


def test_a_holder_that_ran_here_and_is_gone_is_stale_and_others_are_not():
    gone = subprocess.Popen(["true"])
    gone.wait()
    here = socket.gethostname()
    assert hostlock.stale(f"deploy by root@{here} pid {gone.pid} since x host-pid 999") == 999
    assert hostlock.stale(f"deploy by root@{here} pid {os.getppid()} since x host-pid 999") is None
    assert hostlock.stale(f"deploy by root@elsewhere pid {gone.pid} since x host-pid 999") is None
    assert hostlock.parse_holder("drill by u@h pid 12 since x host-pid 34") == ("h", 12, 34)


class _Connection:
    def __init__(self, name: str, holding: bool):
        self.name, self.holding = name, holding

    def holds(self) -> bool:
        return self.holding


def test_our_own_hold_is_stale_once_the_connection_that_took_it_has_let_go(monkeypatch):
    here = socket.gethostname()
    holder = f"drill by root@{here} pid {os.getpid()} since x"
    let_go, live = _Connection("lab3", holding=False), _Connection("lab2", holding=True)
    monkeypatch.setattr(hostlock, "_taken_by", {("lab3", holder): let_go, ("lab2", holder): live})
    assert hostlock.stale(f"{holder} host-pid 55", "lab3") == 55      # host missed the close (partition)
    assert hostlock.stale(f"{holder} host-pid 55", "lab2") is None    # still ours and held
    assert hostlock.stale(f"{holder} host-pid 55", "lab1") is None    # not a hold we know of
