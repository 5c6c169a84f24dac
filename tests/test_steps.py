"""The steps as tables, without the lab: a plan and a host's state in, the commands sent out
(as pyinfra's operation tests do). Each row names the behaviour; the fake remote answers the
probes a row needs and records everything. The lab tier proves the same steps on real hosts."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

import pytest

from provision.steps import primitives
from provision.core import render
from provision.facts.host import HostFacts
from provision.steps.hostrun import HostRun, RunOptions
from provision.steps import node, sentinel, system
from provision.steps.node import ConfigOutcome
from provision.steps.sentinel import SentinelOutcome
from tests.fakeremote import FakeFile, FakeRemote

FACTS = HostFacts(os_id="debian", os_version="12", arch="x86_64", init_system="bash", active_bin="versions/7.0.15/bin",
                  installed_version="7.0.15", missing_build_tools=(), package_manager="apt-get", has_redis_user=True)
TUNED_SYSCTL = ("sysctl -n", "1024\n1024\n1\n", 0)       # somaxconn, tcp_max_syn_backlog, overcommit (key order)
THP_NEVER = ("transparent_hugepage/enabled", "always madvise [never]\nalways madvise [never]\n", 0)
NOT_RUNNING = (r"p=\$\(cat \S+/redis-6379.pid", "", 1)
RUNNING = (r"p=\$\(cat \S+/redis-6379.pid", "1234\n", 0)
SENTINEL_RUNNING = (r"p=\$\(cat \S+/sentinel.pid", "2345\n", 0)
SYSCTL_SET = (r"^sysctl -q -w ", "", 0)
THP_SET = (r"^echo never > /sys/kernel/mm/transparent_hugepage/(enabled|defrag)$", "", 0)
# A fresh host for layout: the install dir's parents are root's 755, none of its dirs exist yet.
ANCESTORS_SAFE = (r"^stat -L -c '%n %U %a' /app /$", "/app root 755\n/ root 755\n", 0)
NO_DIRS_YET = (r"^for d in /app/redis .*stat -c '%n %a %U %G'", "", 0)
FRESH_LAYOUT = (ANCESTORS_SAFE, NO_DIRS_YET, (r"^useradd --system ", "", 0), (r"^mkdir -p /app/redis ", "", 0))
KEEPER_PROBE = r"^\[ -e /app/redis/boot/keep-redis-6379.lock \] && ! flock -n "
KEEPER_OF_AN_EARLIER_RELEASE = (KEEPER_PROBE, "", 0)         # it wrote no digest of its script
KEEPER_OF_ANOTHER_SCRIPT = (KEEPER_PROBE, "0" * 64 + "\n", 0)


def keeper_running(plan) -> tuple:
    """The probe's answer for a keeper that runs the start-redis deploy writes for lab2."""
    script = render.start_script(plan, plan.host_plan("lab2"))
    return (KEEPER_PROBE, hashlib.sha256(script.encode()).hexdigest() + "\n", 0)
SENTINEL_ANSWERS_OK = (r"redis-cli --user admin -h 10.77.0.12 -p 26379", "OK\n", 0)


def acl_list_of(plan) -> str:
    """ACL LIST of a node whose live users match users.acl."""
    return "\n".join(["user default off resetchannels ~* &* +@all"] +
                     [f"user {user.name} on #{render.password_hash(user.password.value)} ~* +@all"
                      for user in plan.inventory.acl.all_users]) + "\n"


def new_group_outcome(plan, host) -> SentinelOutcome:
    """What sentinel.configure finds for a group this sentinel does not monitor yet."""
    owned = render.sentinel_owned_directives(plan, host)
    return SentinelOutcome((), ("mymaster",), False, new_group_options=sentinel.group_options(owned, "mymaster"))


def tuned_files(plan, host_plan) -> dict[str, FakeFile]:
    return {plan.layout.sysctl_file: FakeFile(render.sysctl_file(plan)),
            plan.layout.rc_local: FakeFile(render.with_rc_local_block(None, render.rc_local_block(plan, host_plan)), 0o755)}


@dataclass(frozen=True)
class Row:
    behaviour: str
    step: object                                   # step(run, plan) → None
    answers: object = ()                           # tuple of (regex, stdout, exit code), or answers(plan)
    files: object = None                           # files(plan, host_plan) → {path: FakeFile}
    facts: HostFacts = FACTS
    check: bool = False
    sent: tuple[str, ...] = ()                     # regexes, each matching a later command than the one before
    never_sent: tuple[str, ...] = ()
    on_stdin: tuple[str, ...] = ()                 # regexes some command's stdin must match
    written: dict = field(default_factory=dict)    # path → (mode, owner) written


ROWS = [
    Row("tune on a tuned host changes nothing",
        lambda run, plan: system.tune(run), answers=(TUNED_SYSCTL, THP_NEVER), files=tuned_files,
        sent=(r"^sysctl -n net.core.somaxconn net.ipv4.tcp_max_syn_backlog vm.overcommit_memory$",),
        never_sent=(r"sysctl -q -w", r"^echo ")),
    Row("tune sets a drifted sysctl now, and only that one",
        lambda run, plan: system.tune(run), answers=(("sysctl -n", "128\n1024\n1\n", 0), THP_NEVER, SYSCTL_SET), files=tuned_files,
        sent=(r"^sysctl -q -w net.core.somaxconn=1024$",), never_sent=(r"sysctl -q -w vm", r"sysctl -q -w net.ipv4")),
    Row("tune turns transparent huge pages off now",
        lambda run, plan: system.tune(run),
        answers=(TUNED_SYSCTL, ("transparent_hugepage/enabled", "[always] madvise never\nalways [madvise] never\n", 0),
                 THP_SET),
        files=tuned_files,
        sent=(r"^echo never > /sys/kernel/mm/transparent_hugepage/enabled$",
              r"^echo never > /sys/kernel/mm/transparent_hugepage/defrag$")),
    Row("tune in check mode reads and changes nothing",
        lambda run, plan: system.tune(run), answers=(("sysctl -n", "128\n1024\n0\n", 0), THP_NEVER), check=True,
        sent=(r"^sysctl -n ",), never_sent=(r"sysctl -q -w", r"^echo ")),
    Row("layout creates the redis user when the facts say it is missing",
        lambda run, plan: system.layout(run), facts=replace(FACTS, has_redis_user=False), answers=FRESH_LAYOUT,
        sent=(r"^useradd --system --user-group .* redis$", r"mkdir -p /app/redis ")),
    Row("layout in check mode creates neither user nor directories",
        lambda run, plan: system.layout(run), facts=replace(FACTS, has_redis_user=False), check=True,
        answers=FRESH_LAYOUT,
        never_sent=(r"useradd", r"mkdir")),
    Row("layout writes the start guard and its password root-only, in a root-only directory",
        lambda run, plan: system.layout(run), answers=FRESH_LAYOUT,
        sent=(r"mkdir -p /app/redis/boot && chown -h root:root /app/redis/boot && chmod 700 /app/redis/boot",),
        written={"/app/redis/boot/start-redis": (0o700, "root"), "/app/redis/boot/sentinel.auth": (0o600, "root")}),
    Row("under --check on a host without its redis user yet, that user's files are taken as new, never read as it",
        lambda run, plan: node.ensure_acl_file(run), facts=replace(FACTS, has_redis_user=False), check=True,
        never_sent=(r"runuser",)),
    Row("a stopped node of a new group starts through start-redis, told its master",
        lambda run, plan: node.ensure_running(run, run.host_plan.nodes[0], ConfigOutcome(True, None, (), ()), False,
                                              known_master="10.77.0.11"),
        answers=(NOT_RUNNING, ("start-redis", "RESULT replica 10.77.0.11\n", 0), (r" PING$", "PONG\n", 0)),
        sent=(r"^/app/redis/boot/start-redis 6379 --wait \d+ --master 10.77.0.11$", r" PING$")),
    Row("a stopped node of a running group starts through start-redis, which asks the sentinels",
        lambda run, plan: node.ensure_running(run, run.host_plan.nodes[0], ConfigOutcome(False, "", (), ()), False),
        answers=(NOT_RUNNING, ("start-redis", "RESULT replica 10.77.0.12\n", 0), (r" PING$", "PONG\n", 0)),
        sent=(r"^/app/redis/boot/start-redis 6379 --wait \d+$",), never_sent=(r"--master", r"runuser .*redis-server")),
    Row("a setting that cannot change live restarts the node in one host-side unit: TERM, then start-redis",
        lambda run, plan: node.ensure_running(run, run.host_plan.nodes[0],
                                              ConfigOutcome(False, "port 6379\n", (), (("databases",),)), True),
        answers=(RUNNING, (r"ACL LOAD$", "OK\n", 0), ("start-redis", "RESULT master\n", 0), (r" PING$", "PONG\n", 0)),
        sent=(r"ACL LOAD$", r"^setsid sh -c 'kill -TERM 1234; .* && /app/redis/boot/start-redis 6379 --wait \d+' "),
        never_sent=(r"^kill -TERM",)),
    Row("a running node with nothing to change is left alone",
        lambda run, plan: node.ensure_running(run, run.host_plan.nodes[0], ConfigOutcome(False, "", (), ()), False),
        answers=lambda plan: (RUNNING, (r"ACL LIST$", acl_list_of(plan), 0), keeper_running(plan)),
        never_sent=(r"kill -TERM", r"start-redis")),
    Row("a keeper running another start-redis than deploy wrote is replaced (a shell keeps its old code)",
        lambda run, plan: node.ensure_running(run, run.host_plan.nodes[0], ConfigOutcome(False, "", (), ()), False),
        answers=lambda plan: (RUNNING, (r"ACL LIST$", acl_list_of(plan), 0), KEEPER_OF_ANOTHER_SCRIPT,
                              (r"--keeper ' && kill -TERM", "", 0)),
        sent=(r"grep -qx -- '\.\* /app/redis/boot/start-redis 6379 --keeper ' && kill -TERM .*"
              r"flock -n /app/redis/boot/keep-redis-6379.lock true .* /app/redis/boot/start-redis 6379 --keep$",),
        never_sent=(r"^kill", r"--wait")),
    Row("a keeper of an earlier release, which said no digest, is replaced too",
        lambda run, plan: node.ensure_running(run, run.host_plan.nodes[0], ConfigOutcome(False, "", (), ()), False),
        answers=lambda plan: (RUNNING, (r"ACL LIST$", acl_list_of(plan), 0), KEEPER_OF_AN_EARLIER_RELEASE,
                              (r"--keeper ' && kill -TERM", "", 0)),
        sent=(r"--keeper ' && kill -TERM .* /app/redis/boot/start-redis 6379 --keep$",)),
    Row("a sentinel learns a new group live with SENTINEL MONITOR",
        lambda run, plan: sentinel.ensure_running(run, new_group_outcome(plan, run.host_plan.host),
                                                  {"mymaster": "10.77.0.11"}),
        answers=(SENTINEL_RUNNING, (r"SENTINEL", "OK\n", 0), SENTINEL_ANSWERS_OK),
        sent=(r"SENTINEL MONITOR mymaster 10.77.0.11 6379 2$",),
        on_stdin=(r'^\S+\n"SENTINEL" "SET" "mymaster" "auth-user" "sentinel" "auth-pass" "sentinel-password-1" '
                  r'"down-after-milliseconds" "2000" "failover-timeout" "10000" "parallel-syncs" "1"\n$',),
        never_sent=(r"runuser .*redis-sentinel", r"SENTINEL SET")),
]


def _run_row(row: Row, plan) -> tuple[FakeRemote, list[str]]:
    host_plan = plan.host_plan("lab2")
    answers = row.answers(plan) if callable(row.answers) else row.answers
    fake = FakeRemote(host_plan.host, answers=list(answers),
                      files=dict(row.files(plan, host_plan)) if row.files else {})
    said: list[str] = []
    run = HostRun(fake, plan, host_plan, RunOptions(check=row.check), said.append)
    run.facts = row.facts
    row.step(run, plan)
    return fake, said


@pytest.mark.parametrize("row", ROWS, ids=[row.behaviour for row in ROWS])
def test_step_sends_exactly_what_its_row_says(row, lab_like_plan):
    fake, _ = _run_row(row, lab_like_plan)
    position = 0
    for pattern in row.sent:
        later = [i for i, command in enumerate(fake.commands) if i >= position and re.search(pattern, command)]
        assert later, f"no command matching {pattern!r} (after #{position}) in:\n" + "\n".join(fake.commands)
        position = later[0] + 1
    for pattern in row.never_sent:
        assert not any(re.search(pattern, command) for command in fake.commands), \
            f"{pattern!r} was sent:\n" + "\n".join(fake.commands)
    for pattern in row.on_stdin:
        assert any(stdin and re.search(pattern, stdin) for stdin in fake.stdins), fake.stdins
    for path, (mode, owner) in row.written.items():
        assert path in fake.written and (fake.files[path].mode, fake.files[path].owner) == (mode, owner), fake.files
    if row.check:
        assert fake.written == []


def test_no_step_command_carries_a_password(lab_like_plan):
    """Passwords travel on stdin only (the commands become argv of sh and redis-cli on the host),
    also when a new group's sentinel gets its auth-pass."""
    plan = lab_like_plan
    passwords = [user.password.value for user in plan.inventory.acl.all_users]
    for row in ROWS:
        fake, _ = _run_row(row, plan)
        leaked = [command for command in fake.commands if any(password in command for password in passwords)]
        assert leaked == [], (row.behaviour, leaked)


def test_ensure_file_leaves_an_identical_file_alone_and_replaces_a_different_one(lab_like_plan):
    plan = lab_like_plan
    host_plan = plan.host_plan("lab1")
    fake = FakeRemote(host_plan.host, files={"/etc/x.conf": FakeFile("a = 1\n", 0o640, "redis", "redis")})
    run = HostRun(fake, plan, host_plan, RunOptions(), lambda _: None)
    assert primitives.ensure_file(run, "/etc/x.conf", "a = 1\n", 0o640, "redis", "redis") is False
    assert fake.written == []
    assert primitives.ensure_file(run, "/etc/x.conf", "a = 2\n", 0o640, "redis", "redis") is True
    assert fake.written == ["/etc/x.conf"] and fake.files["/etc/x.conf"].content == "a = 2\n"
    assert [change.action for change in run.changes] == ["write /etc/x.conf"]


def test_a_password_change_goes_live_with_the_password_on_stdin_only(lab_like_plan):
    """CONFIG SET masterauth after a rotation: the command travels on stdin, after the login."""
    from provision.steps import node as node_step
    host_plan = lab_like_plan.host_plan("lab2")
    fake = FakeRemote(host_plan.host, answers=[(r".", "OK\n", 0)])
    run = HostRun(fake, lab_like_plan, host_plan, RunOptions(), lambda _: None)
    refused = node_step.apply_live(run, host_plan.nodes[0], (("masterauth",),),
                                    node_step.wanted_directives(run, host_plan.nodes[0]))
    assert refused == []
    assert not any("replication-password-1" in command for command in fake.commands), fake.commands
    assert any(stdin and stdin.endswith('"CONFIG" "SET" "masterauth" "replication-password-1"\n') for stdin in fake.stdins)


def test_a_replica_started_without_a_restart_is_waited_for_in_a_later_wave_not_in_its_slot(monkeypatch, lab_like_plan):
    """Waiting for the link while holding a pool slot made a large group's replicas connect one
    batch at a time, each batch paying the master's diskless-sync delay."""
    from types import SimpleNamespace

    from provision.deploy import orchestrate
    from provision.steps import node
    calls: list[str] = []
    monkeypatch.setattr(node, "ensure_acl_file", lambda run: False)
    monkeypatch.setattr(node, "wanted_directives", lambda run, node_plan: ())
    monkeypatch.setattr(node, "configure", lambda run, node_plan, master, wanted: SimpleNamespace(restart_keys=()))
    monkeypatch.setattr(node, "ensure_running", lambda *args: calls.append("start"))
    monkeypatch.setattr(node, "record_settings", lambda run, node_plan: None)
    monkeypatch.setattr(node, "wait_replica_linked", lambda run, node_plan: calls.append("wait for link"))
    master = lab_like_plan.inventory.host("lab1")
    deploy = SimpleNamespace(role_of=lambda node_plan: "replica",
                             topology={"mymaster": SimpleNamespace(host=master, source="sentinels")},
                             restart_locks={})
    run = SimpleNamespace(name="lab2", host_plan=lab_like_plan.host_plan("lab2"), acl_changed=None,
                          begin=lambda step: None, pending_links=[])
    orchestrate.configure_replicas(run, deploy)
    assert calls == ["start"] and len(run.pending_links) == 1
    state = SimpleNamespace(runner=SimpleNamespace(alive=lambda: [run]))
    assert orchestrate.hosts_with_pending_links(state) == [run]
    orchestrate.wait_replica_links(run, deploy)
    assert calls == ["start", "wait for link"] and run.pending_links == []
    names = [wave.name for wave in orchestrate.WAVES]
    assert names.index("replica links") == names.index("replicas") + 1


@pytest.mark.parametrize("situation", ["a new group", "a dropped group"])
def test_check_mode_records_exactly_what_a_real_run_does(situation, lab_like_plan):
    """Check mode is the same description as the real run, not a copy of it (the copy had lost
    SENTINEL MONITOR's port and quorum)."""
    actions = {}
    outcome = new_group_outcome(lab_like_plan, lab_like_plan.inventory.host("lab2")) if situation == "a new group" \
        else SentinelOutcome((), (), False, ("oldgroup",))
    for check in (True, False):
        host_plan = lab_like_plan.host_plan("lab2")
        fake = FakeRemote(host_plan.host, answers=[SENTINEL_RUNNING, SENTINEL_ANSWERS_OK])
        run = HostRun(fake, lab_like_plan, host_plan, RunOptions(check=check), lambda _: None)
        run.facts = FACTS
        sentinel.ensure_running(run, outcome, {"mymaster": "10.77.0.11"})
        actions[check] = [change.action for change in run.changes]
    assert actions[True] == actions[False] and actions[True]
    if outcome.new_groups:
        assert actions[True] == ["SENTINEL MONITOR mymaster 10.77.0.11 6379 2"]


def test_a_nodes_wanted_directives_are_rendered_once_for_prediction_patch_and_live_apply(lab_like_plan, monkeypatch):
    plan = lab_like_plan
    host_plan = plan.host_plan("lab2")
    node_plan = host_plan.nodes[0]
    path = plan.layout.redis_conf(node_plan.port)
    current = render.redis_conf(plan, node_plan, plan.inventory.host("lab1"), False).replace("maxmemory 128mb",
                                                                                              "maxmemory 64mb")
    fake = FakeRemote(host_plan.host, answers=[(r"redis-cli", "OK\n", 0)],
                      files={path: FakeFile(current, 0o640, "redis", "redis")})
    run = HostRun(fake, plan, host_plan, RunOptions(), lambda _: None)
    run.facts = FACTS
    renders = []
    real = render.redis_owned_directives
    monkeypatch.setattr(render, "redis_owned_directives", lambda *args: renders.append(1) or real(*args))
    wanted = node.wanted_directives(run, node_plan)
    assert node.predicted_restart_keys(run, node_plan, wanted) == ()
    outcome = node.configure(run, node_plan, plan.inventory.host("lab1"), wanted)
    assert outcome.live_keys == (("maxmemory",),)
    assert node.apply_live(run, node_plan, outcome.live_keys, outcome.wanted) == []
    assert len(renders) == 1
