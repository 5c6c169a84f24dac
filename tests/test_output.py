"""What the operator sees: recap durations and masters, aligned tables, logging levels, the log
file's mode, colour only on a terminal, and connect errors that say what happened."""
from __future__ import annotations

import io
import json
import socket
import threading
from dataclasses import replace

import pytest

from provision import cli
from provision.deploy import orchestrate
from provision.base import output
from provision.ssh import remote
from provision.checks import status
from provision.base.errors import HostError
from provision.base.table import format_table


def _report(outcomes, masters):
    return orchestrate.DeployReport(tuple(outcomes), 12.5, False, masters)


def test_recap_shows_each_hosts_own_duration_and_only_masters_that_were_seen(lab_like_plan):
    outcomes = [orchestrate.HostOutcome("lab1", (), (), 3.25, error=HostError("lab1", "install", "make", "boom")),
                orchestrate.HostOutcome("lab2", (), (), 10.0, error=HostError("lab2", "connect", "ssh", "refused"),
                                        unreachable=True),
                orchestrate.HostOutcome("lab3", (), (), 7.5)]
    text = cli.format_recap(_report(outcomes, {}), lab_like_plan, show_diff=False)
    rows = {line.split()[0]: line for line in text.splitlines()[2:5]}
    assert "FAILED step=install" in rows["lab1"] and "3.2s" in rows["lab1"]
    assert "UNREACHABLE" in rows["lab2"] and "10.0s" in rows["lab2"]
    assert "masters:" not in text
    document = json.loads(cli.format_recap_json(_report(outcomes, {})))
    assert [host["host"] for host in document["hosts"]] == ["lab1", "lab2", "lab3"]
    assert document["schema_version"] == 1 and document["unreachable"] == ["lab2"]
    assert document["hosts"][0]["state"] == "failed"
    error = document["hosts"][0]["error"]
    assert (error["host"], error["step"], error["command"], error["stderr"]) == ("lab1", "install", "make", "boom")
    assert document["masters"] == {} and document["ok"] is False


def test_deploy_names_no_master_for_a_group_none_of_whose_hosts_was_reached(lab_like_plan):
    """All three hosts refuse the connection (a port nothing listens on, on loopback)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    inventory = lab_like_plan.inventory
    hosts = tuple(replace(host, address="127.0.0.1", port=port + index) for index, host in enumerate(inventory.hosts))
    plan = replace(lab_like_plan, inventory=replace(inventory, hosts=hosts),
                   hosts=tuple(replace(host_plan, host=hosts[index]) for index, host_plan in enumerate(lab_like_plan.hosts)))
    report = orchestrate.deploy(plan, orchestrate.RunOptions(), say=lambda _: None)
    assert report.masters == {} and len(report.unreachable) == 3 and not report.ok


def test_tables_stay_aligned_with_long_cells():
    lines = format_table(("NODE", "ROLE", "LAG"), [("lab1", "master", "0s"), ("a-very-long-host-name", "unreachable", None)],
                         right=frozenset({2}))
    assert len({line.index("ROLE") if "ROLE" in line else None for line in lines[:1]}) == 1
    role_column = lines[0].index("ROLE")
    assert all(line[role_column - 2:role_column] == "  " for line in lines)
    assert lines[2].split() == ["a-very-long-host-name", "unreachable", "-"]


def test_status_table_stays_aligned_when_a_host_is_unreachable(lab_like_plan):
    nodes = (status.NodeView("lab1", "mymaster", "master", None, None, 1200, None),
             status.NodeView("lab2", "mymaster", "unreachable", None, None, None, None))
    view = status.GroupView("mymaster", nodes, ())
    lines = status.format_view(lab_like_plan, (view,), {"lab2": "connection refused"}).splitlines()
    header = lines[1]
    assert lines[2].index("master") == header.index("ROLE") == lines[3].index("unreachable")


def test_verbosity_levels_and_a_private_log_file(tmp_path):
    stream = io.StringIO()
    log_file = tmp_path / "run.log"
    output.configure(verbosity=0, log_file=str(log_file), stream=stream)
    output.say("progress line")
    output.detail("lab1: $ cat /etc/hostname")
    assert "progress line" in stream.getvalue() and "cat /etc/hostname" not in stream.getvalue()
    assert "cat /etc/hostname" in log_file.read_text() and "progress line" in log_file.read_text()
    assert oct(log_file.stat().st_mode & 0o777) == "0o600"
    verbose = io.StringIO()
    output.configure(verbosity=2, stream=verbose)
    output.detail("lab1: $ true")
    assert "lab1: $ true" in verbose.getvalue()
    output.configure()


def test_colour_only_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal, plain = Terminal(), io.StringIO()
    for stream in (terminal, plain):
        output.configure(stream=stream)
        output.say("lab1 FAILED step=install")
    assert "\033[31mFAILED" in terminal.getvalue() and "\033[" not in plain.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    quiet = Terminal()
    output.configure(stream=quiet)
    output.say("lab1 FAILED")
    assert "\033[" not in quiet.getvalue()
    output.configure()


def test_a_server_that_never_sends_its_banner_is_named_as_such(lab_like_plan):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    host = replace(lab_like_plan.inventory.host("lab1"), address="127.0.0.1", port=silent.getsockname()[1])
    controller = replace(lab_like_plan.inventory.controller, connect_timeout=1.0)
    with pytest.raises(HostError, match="no SSH banner within 1s"):
        remote.connect(host, controller)
    silent.close()


def test_heartbeat_names_the_host_the_step_and_the_running_command(monkeypatch):
    from provision.deploy import waves
    said: list[str] = []
    monkeypatch.setattr(waves, "HEARTBEAT_SECONDS", 0.05)
    runner = waves.Runner(2, said.append, lambda text: text)

    class SlowRemote:
        current_command = "cd /app/redis/build && make -j2\nsecond line"
        command_started = 0.0

        def close(self):
            pass

    class SlowRun:
        name, step, remote = "lab1", "install", SlowRemote()

        def begin(self, step):
            pass
    import time
    SlowRemote.command_started = time.monotonic()
    runner.runs["lab1"] = SlowRun()
    runner.each([SlowRun()], "install", lambda run: time.sleep(0.3))
    runner.close()
    assert any("lab1: step 'install' still running" in line and "make -j2 …" in line for line in said), said


def test_user_and_port_come_from_ssh_config_unless_the_inventory_names_them(lab_like_plan):
    import paramiko
    config = paramiko.SSHConfig.from_text("Host 10.77.0.11\n  User deploy\n  Port 2222\n")
    host = lab_like_plan.inventory.host("lab1")
    assert remote._effective(replace(host, user=None, port=None), config) == ("deploy", 2222)
    assert remote._effective(replace(host, user="ops", port=22), config) == ("ops", 22)
    assert remote._effective(replace(host, user=None, port=None), None) == ("root", 22)


def test_heartbeat_survives_a_command_that_ends_while_it_looks(monkeypatch):
    """The step's thread clears current_command when its command ends; the heartbeat reads it
    once, so it never formats a None (which would kill the heartbeat thread for the run)."""
    from provision.deploy import waves

    class FlakyRemote:
        """current_command is set on the first read and gone on the next."""
        reads = 0
        command_started = 0.0

        @property
        def current_command(self):
            FlakyRemote.reads += 1
            return "sleep 1" if FlakyRemote.reads % 2 else None

        def close(self):
            pass

    class Run:
        name, step, remote = "lab1", "install", FlakyRemote()
    said: list[str] = []
    monkeypatch.setattr(waves, "HEARTBEAT_SECONDS", 0.02)
    runner = waves.Runner(1, said.append, lambda text: text)
    import time
    runner.runs["lab1"] = Run()
    runner._step_started["lab1"] = time.monotonic() - 1
    time.sleep(0.2)
    alive = runner._heartbeat.is_alive()
    runner._step_started.clear()
    runner.close()
    assert alive and any("still running" in line for line in said)


def test_every_logged_line_and_printed_error_is_masked_and_an_old_log_file_becomes_private(tmp_path):
    """-vv's command lines, the log file and the CLI's error text went out unmasked; a log file
    that existed kept its mode, and a link planted at its path was followed."""
    import io
    stream = io.StringIO()
    log_file = tmp_path / "run.log"
    log_file.write_text("")
    log_file.chmod(0o644)
    output.mask_with(lambda text: text.replace("hunter2", "********"))
    try:
        output.configure(verbosity=2, log_file=str(log_file), stream=stream)
        output.detail("%s: $ %s", "lab1", "echo hunter2")
        output.say("stderr said hunter2")
        assert "hunter2" not in stream.getvalue() + log_file.read_text()
        assert "********" in log_file.read_text()
        assert oct(log_file.stat().st_mode & 0o777) == "0o600"
        assert output.mask("error: hunter2") == "error: ********"
        target = tmp_path / "elsewhere"
        target.write_text("")
        link = tmp_path / "link.log"
        link.symlink_to(target)
        with pytest.raises(OSError):
            output.configure(verbosity=0, log_file=str(link), stream=stream)
    finally:
        output.mask_with(lambda text: text)
        output.configure()
