"""The command line as a user runs it: clean errors and exit codes, no traceback, no SSH."""
from __future__ import annotations

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
