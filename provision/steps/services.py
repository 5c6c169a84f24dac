"""Processes: is it running, start it, stop it, wait for it. Started as the redis user from the
same command lines /etc/rc.local uses at boot."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
import time

from provision.facts.poll import poll
from provision.facts import host as facts, rediscli
from provision.steps import primitives
from provision.core import render
from provision.base.errors import HostError
from provision.steps.hostrun import HostRun
from provision.core.plan import Layout
from provision.ssh.remote import Remote, as_user_command


def running_pid(run: HostRun, port: int | None) -> int | None:
    return facts.running_pid(run.remote, run.layout, port)


GUARD_WAIT_SECONDS = 120


def start_command_for(layout: Layout, port: int | None, master: str | None = None,
                      wait_seconds: int = GUARD_WAIT_SECONDS, systemd: bool = False) -> str:
    """A sentinel starts directly. A redis-server starts through the host's start guard
    (provision/templates/start-redis.sh.j2), which asks the Sentinels what it is first, as at boot;
    `master` skips the question, for a group no sentinel monitors yet. On a systemd host the
    units start them: the guard only prepares (its decision marked for the unit's own
    ExecStartPre), then systemctl starts the unit."""
    forced = f" --master {shlex.quote(master)}" if master else ""
    if systemd:
        if port is None:
            return f"systemctl start {render.SENTINEL_UNIT}"
        return (f"{shlex.quote(layout.start_script)} {port} --prepare --mark --wait {int(wait_seconds)}{forced} && "
                f"systemctl start {render.server_unit_name(port)}")
    # umask 0027: Redis creates the files it rewrites (CONFIG REWRITE, Sentinel's state) with
    # 0666 & ~umask, and those files hold passwords.
    if port is None:
        return f"umask 0027; {render.sentinel_start_line(layout)}"
    return f"{shlex.quote(layout.start_script)} {port} --wait {int(wait_seconds)}{forced}"


def uses_systemd(run: HostRun) -> bool:
    """systemd is PID 1 (facts): Redis runs as units, not from rc.local."""
    return run.facts is not None and run.facts.init_system == "systemd"


def start_command(run: HostRun, port: int | None, master: str | None = None) -> str:
    return start_command_for(run.layout, port, master, systemd=uses_systemd(run))


def start_on(connection: Remote, layout: Layout, port: int | None) -> str:
    """Start a process the deploy configured, through the same guard as at boot; returns what
    the guard said."""
    return connection.check("start", start_command_for(layout, port, systemd=facts.runs_systemd(connection)),
                            timeout=GUARD_WAIT_SECONDS + 30).stdout


def guard_result(output: str) -> tuple[str, str | None]:
    """The guard's last word: ("master", None), ("replica", address), ("running", None)."""
    for line in reversed(output.splitlines()):
        words = line.split()
        if words[:1] == ["RESULT"] and len(words) >= 2:
            return words[1], (words[2] if len(words) > 2 else None)
    return "unknown", None


def guard_story(output: str) -> list[str]:
    """What the guard did, for the run's record (its `start-redis :port:` lines)."""
    return [line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("start-redis :") and ": " in line]


def log_tail(run: HostRun, port: int | None) -> str:
    """The log's last lines, read as the redis user: it owns the log directory and could have put
    a link to a root-only file there, whose text would end up in the error and every log."""
    return run.remote.run(as_user_command(primitives.REDIS_USER, f"tail -n 15 {shlex.quote(run.layout.log_file(port))}")).stdout


STOP_WAIT_SECONDS = 30


def stop_command_for(layout: Layout, port: int | None, pid: int, systemd: bool) -> str:
    """SIGTERM (Redis saves and exits) and wait for the pid to go; systemd stops its unit."""
    if systemd:
        return f"systemctl stop {render.SENTINEL_UNIT if port is None else render.server_unit_name(port)}"
    return (f"kill -TERM {pid}; i=0; while kill -0 {pid} 2>/dev/null; do sleep 0.1; i=$((i+1)); "
            f"[ $i -lt {STOP_WAIT_SECONDS * 10} ] || {{ echo 'process {pid} still running after {STOP_WAIT_SECONDS}s' >&2; "
            "exit 1; }; done")


def on_host_alone(layout: Layout, name: str, command: str) -> str:
    """The command as one unit of its own on the host (setsid): a dropped SSH session or a killed
    controller no longer stops it halfway, as it would a stop followed by a start sent one at a
    time, which left the node down. Its output comes back when the session lives to see it."""
    out = shlex.quote(f"{layout.boot_dir}/{name}.out")
    return (f"setsid sh -c {shlex.quote(command)} > {out} 2>&1 < /dev/null & wait $!; rc=$?; "
            f"cat {out}; rm -f {out}; exit $rc")


@dataclass(frozen=True)
class StartResult:
    """What a start came to: the reason it did not come up (None when it did), and for a
    redis-server what its start guard decided (its `RESULT` line: master, or replica of whom)."""
    failure: str | None = None
    role: str = ""
    master: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def start(run: HostRun, port: int | None, address: str, wait_seconds: float = 15,
          master: str | None = None, restart_pid: int | None = None) -> StartResult:
    """Start and wait until it answers PING.
    `restart_pid`: the running process to stop first, in the same host-side unit as the start.
    What the start guard decided is recorded on the run."""
    what = "sentinel" if port is None else f"redis-server :{port}"
    command = start_command(run, port, master)
    if restart_pid is not None:
        stop = stop_command_for(run.layout, port, restart_pid, uses_systemd(run))
        command = on_host_alone(run.layout, f"restart-{port or 'sentinel'}", f"{stop} && {command}")
    result = run.remote.run(command, timeout=GUARD_WAIT_SECONDS + STOP_WAIT_SECONDS + 30)
    if not result.ok:
        return StartResult(f"{what} start command failed: {(result.stdout + result.stderr).strip()}\n"
                           f"{log_tail(run, port)}")
    role, of = "", None
    if port is not None:
        for line in guard_story(result.stdout):
            run.say(f"{run.name}: {run.step}: {line}")
        role, of = guard_result(result.stdout)
    deadline = time.monotonic() + wait_seconds
    listen_port = port if port is not None else run.plan.inventory.redis.sentinel_port
    user = run.plan.inventory.acl.admin
    while time.monotonic() < deadline:
        reply = rediscli.call(run.remote, run.layout, address, listen_port, ["PING"], user=user, timeout=5)
        if reply.ok and reply.stdout.strip() == "PONG":
            return StartResult(None, role, of)
        if running_pid(run, port) is None and time.monotonic() > deadline - wait_seconds + 1:
            break
        time.sleep(0.1)
    return StartResult(f"{what} did not answer PING after starting; log tail:\n{log_tail(run, port)}", role, of)


def stop(run: HostRun, port: int | None, wait_seconds: float = 30) -> None:
    """Stop gracefully (SIGTERM: Redis saves and exits), then wait for the pid to go."""
    pid = running_pid(run, port)
    if pid is None:
        return
    if uses_systemd(run):
        unit = render.SENTINEL_UNIT if port is None else render.server_unit_name(port)
        run.remote.check(run.step, f"systemctl stop {unit}", timeout=wait_seconds + 30)
    else:
        run.remote.check(run.step, f"kill -TERM {pid}")
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if not facts.process_alive(run.remote, pid):
            return
        time.sleep(0.1)
    raise HostError(run.name, run.step, f"kill -TERM {pid}", f"process {pid} still running after {wait_seconds}s")


def wait_until(run: HostRun, what: str, probe, seconds: float, interval: float = 0.25):
    """Poll probe() until it returns a true value; HostError naming `what` on timeout."""
    done, (value, last) = poll(probe, lambda answer: bool(answer[0]), seconds, interval)
    if done:
        return value
    raise HostError(run.name, run.step, f"wait for {what}", f"not reached after {seconds:.0f}s; last seen: {last}")
