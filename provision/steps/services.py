"""Processes: is it running, start it, stop it, wait for it. Started as the redis user from the
same command lines /etc/rc.local uses at boot."""
from __future__ import annotations

import shlex
import time

from provision import rediscli
from provision.errors import HostError
from provision.hostrun import HostRun
from provision.plan import Layout
from provision.remote import Remote


def pid_file(layout: Layout, port: int | None) -> str:
    name = "sentinel.pid" if port is None else f"redis-{port}.pid"
    return f"{layout.run_dir}/{name}"


def running_pid_on(connection: Remote, layout: Layout, port: int | None) -> int | None:
    """PID of the redis-server (port) or redis-sentinel (None) when it runs, from its pidfile."""
    path = shlex.quote(pid_file(layout, port))
    result = connection.run(f"p=$(cat {path} 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && "
                            f"tr '\\0' ' ' < /proc/$p/cmdline | grep -q redis && echo $p")
    return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else None


def running_pid(run: HostRun, port: int | None) -> int | None:
    return running_pid_on(run.remote, run.layout, port)


def start_command_for(layout: Layout, port: int | None) -> str:
    # umask 0027: Redis creates the files it rewrites (CONFIG REWRITE, Sentinel's state) with
    # 0666 & ~umask, and those files hold passwords.
    if port is None:
        return f"umask 0027; runuser -u redis -- {shlex.quote(layout.binary('redis-sentinel'))} {shlex.quote(layout.sentinel_conf)}"
    return f"umask 0027; runuser -u redis -- {shlex.quote(layout.binary('redis-server'))} {shlex.quote(layout.redis_conf(port))}"


def start_command(run: HostRun, port: int | None) -> str:
    return start_command_for(run.layout, port)


def start_on(connection: Remote, layout: Layout, port: int | None) -> None:
    """Start a process the deploy configured (as /etc/rc.local does at boot)."""
    connection.check("start", start_command_for(layout, port))


def log_tail(run: HostRun, port: int | None) -> str:
    name = "sentinel.log" if port is None else f"redis-{port}.log"
    return run.remote.run(f"tail -n 15 {shlex.quote(run.layout.log_dir + '/' + name)}").stdout


def start(run: HostRun, port: int | None, address: str, wait_seconds: float = 15) -> str | None:
    """Start and wait until it answers PING; returns None, or the reason it did not come up."""
    what = "sentinel" if port is None else f"redis-server :{port}"
    result = run.remote.run(start_command(run, port))
    if not result.ok:
        return f"{what} start command failed: {result.stderr.strip()}\n{log_tail(run, port)}"
    deadline = time.monotonic() + wait_seconds
    listen_port = port if port is not None else run.plan.inventory.redis.sentinel_port
    user = run.plan.inventory.acl.admin
    while time.monotonic() < deadline:
        reply = rediscli.call(run.remote, run.layout, address, listen_port, ["PING"], user=user, timeout=5)
        if reply.ok and reply.stdout.strip() == "PONG":
            return None
        if running_pid(run, port) is None and time.monotonic() > deadline - wait_seconds + 1:
            break
        time.sleep(0.1)
    return f"{what} did not answer PING after starting; log tail:\n{log_tail(run, port)}"


def stop(run: HostRun, port: int | None, wait_seconds: float = 30) -> None:
    """Stop gracefully (SIGTERM: Redis saves and exits), then wait for the pid to go."""
    pid = running_pid(run, port)
    if pid is None:
        return
    run.remote.check(run.step, f"kill -TERM {pid}")
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if not run.remote.run(f"kill -0 {pid} 2>/dev/null").ok:
            return
        time.sleep(0.1)
    raise HostError(run.name, run.step, f"kill -TERM {pid}", f"process {pid} still running after {wait_seconds}s")


def wait_until(run: HostRun, what: str, probe, seconds: float, interval: float = 0.25):
    """Poll probe() until it returns a true value; HostError naming `what` on timeout."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        value, last = probe()
        if value:
            return value
        time.sleep(interval)
    raise HostError(run.name, run.step, f"wait for {what}", f"not reached after {seconds:.0f}s; last seen: {last}")
