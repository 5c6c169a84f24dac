"""The start guard (start-redis) run for real in a local shell, on a real file system, with a
stand-in redis-cli that plays the sentinels and nodes: whom it asks, whom it believes, what it
writes into redis.conf, and that it hands no password to what it starts."""
from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import textwrap
import time

import pytest

from provision import inventory
from provision.core import plan as planner, render
from tests.test_inventory import ENVIRONMENT, base, write
from tests.test_security import nobody_root  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the guard runs as root and uses runuser")

#: what the stand-in's sentinels answer to GET-MASTER-ADDR-BY-NAME, by address; anything else
#: a planted peer would say
FORGED = "203.0.113.66"


def stand_in_cli(answers: dict[str, str], asked_log) -> str:
    """A redis-cli that logs which host it was asked and answers from `answers` (host → master
    address for sentinels; a node's INFO says it is a fenced replica)."""
    cases = "\n".join(f"  {host}) master={address} ;;" for host, address in answers.items())
    return textwrap.dedent(f"""\
        #!/bin/sh
        host=; port=
        while [ $# -gt 0 ]; do
          case $1 in -h) host=$2; shift 2 ;; -p) port=$2; shift 2 ;; --user) shift 2 ;; *) break ;; esac
        done
        echo "$host:$port $* auth=${{REDISCLI_AUTH:+set}}" >> {asked_log}
        case $host in
        {cases}
          *) master={FORGED} ;;
        esac
        case "$*" in
          "SENTINEL GET-MASTER-ADDR-BY-NAME"*) printf '%s\\n6379\\n' "$master" ;;
          "INFO replication") printf 'role:slave\\r\\nslave_priority:100\\r\\n' ;;
          *) echo OK ;;
        esac
        """)


@pytest.fixture
def guard(nobody_root):  # noqa: F811
    """(run, asked log, redis.conf): the guard rendered for host b with install_dir in a folder
    `nobody` (standing in for the redis user) can reach."""
    install = nobody_root / "app"
    for sub in ("conf", "boot", "bin", "run"):
        (install / sub).mkdir(parents=True)
    (install / "conf").chmod(0o755)
    os.chown(install / "conf", pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
    document = base()
    document["redis"]["install_dir"] = str(install)
    document["groups"]["mymaster"]["down_after_milliseconds"] = 1500
    plan = planner.build(inventory.load(write(nobody_root, document), ENVIRONMENT))
    script = install / "boot" / "start-redis"
    script.write_text(render.start_script(plan, plan.host_plan("b"), redis_user="nobody"))
    (install / "boot" / "sentinel.auth").write_text("admin-password-1\n")
    conf = install / "conf" / "redis-6379.conf"
    conf.write_text("port 6379\n")
    os.chown(conf, pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
    # planted peers, where the redis user can write them
    (install / "conf" / "sentinel.conf").write_text(
        "sentinel known-sentinel mymaster 198.51.100.1 26379 aaaa\n"
        "sentinel known-sentinel mymaster 198.51.100.2 26379 bbbb\n")
    asked = nobody_root / "asked.log"
    # (only the keeper reads down-after; 1.5 s, the shortest allowed, keeps the stall tests short)

    def run(answers: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
        cli = install / "bin" / "redis-cli"
        cli.write_text(stand_in_cli(answers, asked))
        cli.chmod(0o755)
        return subprocess.run(["sh", str(script), "6379", *arguments], capture_output=True, text=True, timeout=30)
    return run, asked, conf


def test_the_guard_asks_only_the_inventorys_sentinels_and_follows_their_majority(guard):
    run, asked, conf = guard
    result = run({"10.0.0.1": "10.0.0.3", "10.0.0.2": "10.0.0.3", "10.0.0.3": "10.0.0.3"}, "--prepare")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT replica 10.0.0.3" in result.stdout
    hosts_asked = {line.split(":")[0] for line in asked.read_text().splitlines()}
    assert hosts_asked == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "planted known-sentinel peers were asked"
    assert "replicaof 10.0.0.3 6379" in conf.read_text() and "replica-priority 0" in conf.read_text()


def test_a_majority_naming_a_node_outside_the_group_is_not_believed(guard):
    """Sentinels that name an address no host of the group has (a forged hello, a tampered
    sentinel): the guard starts nothing as master and waits, rather than replicate from it."""
    run, _, conf = guard
    result = run({"10.0.0.1": FORGED, "10.0.0.2": FORGED, "10.0.0.3": FORGED}, "--prepare", "--wait", "2")
    assert "not believing it" in result.stdout
    assert "RESULT replica" not in result.stdout and FORGED not in conf.read_text()


def test_the_guard_exports_the_password_to_nothing_it_starts(guard):
    """The finding: the guard exported REDISCLI_AUTH, so redis-server, started as the redis user,
    carried the admin password in /proc/PID/environ. Only each redis-cli call gets it now."""
    run, asked, conf = guard
    server = asked.parent / "app" / "bin" / "redis-server"
    dumped = conf.parent / "server.environ"
    server.write_text(f"#!/bin/sh\nenv > {dumped}\n")
    server.chmod(0o755)
    result = run({"10.0.0.1": "10.0.0.3", "10.0.0.2": "10.0.0.3", "10.0.0.3": "10.0.0.3"}, "--wait", "5")
    assert "RESULT replica 10.0.0.3" in result.stdout, result.stdout + result.stderr
    assert dumped.exists() and "REDISCLI_AUTH" not in dumped.read_text()
    assert "admin-password-1" not in dumped.read_text()
    assert all(line.endswith("auth=set") for line in asked.read_text().splitlines())


def test_a_deploy_mark_dated_in_the_future_is_not_trusted(guard):
    """The mark lives in boot/, which survives a reboot; with the clock stepped back a stale mark
    would look fresh and skip the sentinels."""
    run, asked, _ = guard
    mark = asked.parent / "app" / "boot" / "start-redis-6379.decided"
    mark.write_text("")
    os.utime(mark, (2_000_000_000, 2_000_000_000))          # 2033
    result = run({"10.0.0.1": "10.0.0.3", "10.0.0.2": "10.0.0.3", "10.0.0.3": "10.0.0.3"}, "--prepare")
    assert "prepared by deploy" not in result.stdout
    assert "RESULT replica 10.0.0.3" in result.stdout


def stand_in_node(frozen_marker, role: str) -> str:
    """A redis-cli playing this host's node (INFO says `role`; PING and INFO hang once
    frozen_marker exists, as a SIGSTOPped server's would) and sentinels that name 10.0.0.3."""
    return textwrap.dedent(f"""\
        #!/bin/sh
        while [ $# -gt 0 ]; do
          case $1 in -h|-p|--user) shift 2 ;; *) break ;; esac
        done
        case "$*" in
          PING|"INFO replication") [ -e {frozen_marker} ] && sleep 30 ;;
        esac
        case "$*" in
          PING) echo PONG ;;
          "INFO replication") printf 'role:{role}\\r\\nmaster_link_status:up\\r\\nslave_priority:{0 if role == "master" else 100}\\r\\n' ;;
          "SENTINEL GET-MASTER-ADDR-BY-NAME"*) printf '10.0.0.3\\n6379\\n' ;;
          *) echo OK ;;
        esac
        """)


@pytest.fixture
def keeper(guard):
    """(start, frozen marker, node process): runs the guard's keeper against a stand-in node, a
    `sleep` whose pid is in the node's pidfile."""
    _, asked, _ = guard
    app = asked.parent / "app"
    frozen = asked.parent / "frozen"
    node = subprocess.Popen(["sleep", "60"])
    (app / "run" / "redis-6379.pid").write_text(f"{node.pid}\n")
    started = []

    def start(role: str) -> subprocess.Popen:
        cli = app / "bin" / "redis-cli"
        cli.write_text(stand_in_node(frozen, role))
        cli.chmod(0o755)
        started.append(subprocess.Popen(["sh", str(app / "boot" / "start-redis"), "6379", "--keeper"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True))
        return started[-1]
    yield start, frozen, node
    node.kill()
    for process in started:
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass


def test_the_keeper_kills_a_master_that_stops_answering_before_down_after(keeper):
    """The seed-318595 loss: a master frozen past down-after resumed and took writes a replica
    acknowledged after the Sentinels had promoted another. The keeper kills it first: it has not
    answered for down-after less 500 ms, before any Sentinel can call it down."""
    start, frozen, node = keeper
    process = start("master")
    time.sleep(1.5)
    assert node.poll() is None, "killed while it answered"
    frozen.write_text("")
    node.wait(timeout=5)
    output = process.communicate(timeout=10)[0]
    assert node.returncode == -9, output
    silence = int(re.search(r"did not answer for (\d+)ms", output).group(1))
    assert 1000 <= silence < 1500, output


def test_the_keeper_leaves_a_replica_that_stops_answering_to_the_sentinels(keeper):
    """A frozen replica loses no write (WAIT counts the replicas that answer); killing it would
    only make it resync."""
    start, frozen, node = keeper
    start("slave")
    time.sleep(0.5)
    frozen.write_text("")
    time.sleep(2.5)
    assert node.poll() is None
