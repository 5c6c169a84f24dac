"""The command line as a user runs it: clean errors and exit codes, no traceback, no SSH."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.test_inventory import ENVIRONMENT, base

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_bad_inventory_exits_2_with_file_key_and_line_and_no_traceback(tmp_path):
    document = base()
    document["groups"]["mymaster"]["quorum"] = 9
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = invoke("deploy", "--inventory", str(path), env=ENVIRONMENT)
    assert result.returncode == 2
    assert f"{path}:" in result.stderr and "groups.mymaster.quorum: quorum 9 is larger than the 3 sentinels" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_inventory_file_is_a_clean_error():
    result = invoke("verify", "--inventory", "/nonexistent/inventory.yml")
    assert result.returncode == 2 and "cannot read the inventory" in result.stderr and "Traceback" not in result.stderr


def test_limit_naming_an_unknown_host_is_refused_before_connecting(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(base(), sort_keys=False))
    result = invoke("deploy", "--inventory", str(path), "--limit", "a,zz", env=ENVIRONMENT)
    assert result.returncode == 2 and "--limit: zz matches no host or group" in result.stderr


def test_every_documented_task_is_there():
    listing = invoke("--list").stdout
    for name in ("deploy", "verify", "status", "failover", "drill", "lab.up", "lab.down", "lab.status",
                 "lab.restart", "lab.signal", "lab.cut", "lab.heal", "lab.build"):
        assert f"  {name} " in listing or f"  {name}\n" in listing, name


def test_every_task_exits_2_on_an_inventory_error(tmp_path):
    for task in ("deploy", "verify", "status", "failover", "drill"):
        result = invoke(task, "--inventory", "/nonexistent/inventory.yml")
        assert result.returncode == 2, (task, result.stderr)
        assert "cannot read the inventory" in result.stderr and "Traceback" not in result.stderr


def test_flag_values_never_end_in_a_traceback(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(base(), sort_keys=False))
    for args in (("drill", "--seconds", "2.5x"), ("drill", "--seconds", "-1"), ("drill", "--mode", "explode"),
                 ("failover", "--group", "nope"), ("deploy", "--log-file", "/nonexistent/dir/log")):
        result = invoke(*args, "--inventory", str(path), env=ENVIRONMENT)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout and result.stderr.startswith("error: "), args


def test_check_and_diff_have_ansibles_short_flags():
    accepted = invoke("deploy", "-C", "-D", "--inventory", "/nonexistent/inventory.yml")
    assert accepted.returncode == 2 and "cannot read the inventory" in accepted.stderr   # flags parsed
    unknown = invoke("deploy", "-Z", "--inventory", "/nonexistent/inventory.yml")
    assert unknown.returncode != 0 and "-Z" in unknown.stderr


def test_json_output_reports_an_inventory_error_as_json_on_stdout(tmp_path):
    import json
    document = base()
    document["groups"]["mymaster"]["quorum"] = 9
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    for task in ("deploy", "verify", "status"):
        result = invoke(task, "--json", "--inventory", str(path), env=ENVIRONMENT)
        parsed = json.loads(result.stdout)
        assert result.returncode == 2 and parsed["ok"] is False
        assert any("groups.mymaster.quorum" in problem for problem in parsed["problems"])


def test_dry_run_flag_is_refused_before_anything_runs(tmp_path):
    """Invoke's -R/--dry means "echo commands instead of running them"; the tool would run a real
    deploy. It is refused, in a clone's `invoke` and in the console script alike."""
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(base(), sort_keys=False))
    for command in (["-R", "deploy", "--inventory", str(path)], ["--dry", "verify", "--inventory", str(path)]):
        result = invoke(*command, env=ENVIRONMENT)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "-R/--dry" in result.stderr and "deploy --check --diff" in result.stderr
    script = subprocess.run([sys.executable, "-c", "import sys; from provision.tasks import program; "
                             "sys.argv = ['redis-provision', '-R', 'deploy', '-i', sys.argv[1]]; program.run()",
                             str(path)], cwd=ROOT, capture_output=True, text=True, env={**os.environ, **ENVIRONMENT},
                            timeout=60)
    assert script.returncode == 2 and "-R/--dry" in script.stderr + script.stdout


def test_every_option_of_every_task_has_its_help_from_one_table():
    from provision import tasks
    for name, item in tasks.collection().tasks.items():
        for argument in item.get_arguments():
            assert argument.help, f"{name} --{argument.name}: no help text"
            shared = tasks.HELP.get(argument.name.replace("-", "_"))
            assert shared is None or argument.help == shared or argument.name in ("check", "version", "json"), \
                (name, argument.name)


def console(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The console script as a pip install runs it (provision.tasks:program)."""
    return subprocess.run([sys.executable, "-c", "import sys; from provision.tasks import program; "
                           "program.run(['redis-provision', *sys.argv[1:]])", *args], cwd="/",
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)


def test_every_tasks_help_shows_its_options_and_the_exit_codes_without_running_it():
    from provision import tasks
    for name in tasks.collection().task_names:
        result = console(name, "--help")
        assert result.returncode == 0, (name, result.stdout, result.stderr)
        assert "Options:" in result.stdout and "Exit codes:" in result.stdout and "  4  " in result.stdout, name
        assert "error" not in result.stderr, (name, result.stderr)
    top = console("--help")
    assert top.returncode == 0 and "--dry" not in top.stdout and "--echo" not in top.stdout
    # Invoke's -l/--list, -D/--list-depth, -F/--list-format would read as the tasks' -l and -D
    assert not any(flag in top.stdout for flag in ("--list", "-D ", "-F ", "-l ")), top.stdout
    assert "Exit codes:" in top.stdout


def test_a_short_flag_means_one_option_on_every_task_and_l_is_limit():
    from provision import tasks
    meaning: dict[str, set[str]] = {}
    for name, item in tasks.collection().tasks.items():
        for argument in item.get_arguments():
            for flag in argument.names[1:]:
                meaning.setdefault(flag, set()).add(argument.name)
        names = {argument.name for argument in item.get_arguments()}
        if "limit" in names:
            assert any(argument.name == "limit" and "l" in argument.names for argument in item.get_arguments())
    assert {flag: options for flag, options in meaning.items() if len(options) > 1} == {}
    assert meaning["l"] == {"limit"} and meaning["v"] == {"verbose"} and meaning["i"] == {"inventory"}
    for name in ("verify", "status"):
        assert "limit" in {argument.name for argument in tasks.collection()[name].get_arguments()}


def test_a_mistyped_flag_or_task_exits_2_in_the_tools_words_with_a_did_you_mean():
    flag = console("deploy", "--limt", "lab1")
    assert flag.returncode == 2 and "error: deploy: unknown option --limt; did you mean --limit?" in flag.stderr
    task = console("deplyo")
    assert task.returncode == 2 and "did you mean deploy?" in task.stderr
    assert "No idea what" not in flag.stderr + task.stderr


def test_an_empty_limit_is_refused_before_the_inventory_is_read():
    result = console("deploy", "--limit", "", "-i", "/nonexistent.yml")
    assert result.returncode == 2 and "--limit '': no host, group or pattern" in result.stderr


def test_upgrade_needs_its_version_as_a_flag_and_help_does_not_run_it():
    result = console("upgrade", "-i", "/nonexistent.yml")
    assert result.returncode == 2 and "--version is required" in result.stderr


def test_exit_codes_tell_a_failed_host_from_an_unreachable_one():
    from types import SimpleNamespace

    from provision import tasks
    assert tasks._code(SimpleNamespace(ok=True, unreachable=())) == 0
    assert tasks._code(SimpleNamespace(ok=True, unreachable=("lab3",))) == tasks.EXIT_UNREACHABLE == 4
    assert tasks._code(SimpleNamespace(ok=True, unreachable=("lab3",)), allow_unreachable=True) == 0
    assert tasks._code(SimpleNamespace(ok=False, unreachable=("lab3",))) == 1
    from provision.cli import Verdict
    assert tasks._verdict_code(Verdict(False, ("lab3",), only_unreachable=True), False) == 4
    assert tasks._verdict_code(Verdict(False, ("lab3",), only_unreachable=False), True) == 1
    assert tasks._verdict_code(Verdict(True), False) == 0


def test_failover_and_drill_outside_the_lab_need_confirmation(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(base(), sort_keys=False))
    for command in (["failover", "-i", str(path)], ["drill", "-i", str(path)]):
        result = console(*command, env=ENVIRONMENT)
        assert result.returncode == 2 and "needs confirmation; pass --yes" in result.stderr, result.stderr


def test_the_cli_knows_the_labs_namespace_without_importing_the_lab():
    from lab import hosts
    from provision import cli
    assert cli.LAB_NAMESPACE == hosts.BRIDGE_NAMESPACE


def offline(*args: str, cwd: str = "/") -> subprocess.CompletedProcess:
    """The console script with no network at all (a fresh network namespace: not even loopback up)."""
    return subprocess.run(["unshare", "-n", sys.executable, "-c", "import sys; from provision.tasks import program; "
                           "program.run(['redis-provision', *sys.argv[1:]])", *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **PROD_PASSWORDS}, timeout=60)


PROD_PASSWORDS = {"REDIS_ADMIN_PASSWORD": "admin-password-1", "REDIS_REPLICATION_PASSWORD": "replication-password-1",
                  "REDIS_SENTINEL_PASSWORD": "sentinel-password-1", "REDIS_APP_PASSWORD": "app-password-1"}


def test_init_writes_a_starter_inventory_that_validates_with_no_network(tmp_path):
    target = tmp_path / "mine.yml"
    written = offline("init", "--path", str(target))
    assert written.returncode == 0 and target.exists(), written.stderr
    assert "openssl rand" in written.stdout
    first_line = target.read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=inventory.schema.json"
    assert json.loads((tmp_path / "inventory.schema.json").read_text())["title"] == "redis-provision inventory"
    again = offline("init", "--path", str(target))
    assert again.returncode == 2 and "exists; not overwriting" in again.stderr
    valid = offline("validate", "-i", str(target))
    assert valid.returncode == 0 and "valid: 3 host(s), 1 group(s), 3 sentinel(s)" in valid.stdout, valid.stderr


def test_validate_gives_each_problem_with_file_line_path_and_message_as_json(tmp_path):
    import json
    document = base()
    document["groups"]["mymaster"]["quorum"] = 9
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = offline("validate", "-i", str(path), "--json")
    assert result.returncode == 2
    answer = json.loads(result.stdout)
    assert answer["schema_version"] == 1 and answer["ok"] is False
    problem = next(item for item in answer["problems"] if item["path"] == "groups.mymaster.quorum")
    assert problem["file"] == str(path) and isinstance(problem["line"], int) and "larger than" in problem["message"]


def test_render_prints_what_deploy_would_write_masked_with_no_network():
    prod = str(ROOT / "inventory" / "prod.yml")
    result = offline("render", "redis-b", "-i", prod)
    assert result.returncode == 0, result.stderr
    for path in ("/app/redis/conf/redis-6379.conf", "/app/redis/conf/sentinel.conf", "/app/redis/conf/users.acl",
                 "/app/redis/boot/start-redis", "/etc/rc.local", "/etc/sysctl.d/90-redis-provision.conf"):
        assert f"# ---- redis-b:{path}" in result.stdout, path
    assert "replicaof 10.20.0.11 6379" in result.stdout and "masterauth ********" in result.stdout
    assert not any(password in result.stdout for password in PROD_PASSWORDS.values())
    units = offline("render", "redis-b", "-i", prod, "--systemd", "--file", "redis-6379.service")
    assert units.returncode == 0 and "/etc/systemd/system/redis-6379.service" in units.stdout, units.stderr


def test_plan_shows_roles_and_waves_and_lists_the_hosts_a_limit_selects_with_no_network():
    prod = str(ROOT / "inventory" / "prod.yml")
    result = offline("plan", "-i", prod)
    assert result.returncode == 0, result.stderr
    assert "redis-a  10.20.0.11    master of mymaster :6379; sentinel :26379" in result.stdout
    assert "new masters       redis-a" in result.stdout and "replicas          redis-b, redis-c" in result.stdout
    listed = offline("plan", "-i", prod, "-l", "redis-[ac]", "--list-hosts")
    assert listed.returncode == 0 and listed.stdout.split() == ["redis-a", "redis-c"], listed.stderr
