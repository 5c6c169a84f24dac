"""The package as a user installs it: `pip install .` into a fresh venv, then run from `/`,
far from the clone (no tasks.py, no templates/ beside the working directory)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_inventory import ENVIRONMENT, base

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

RENDER_A_CONFIG = """
import sys
from provision import inventory
from provision.core import plan, render
built = plan.build(inventory.load(sys.argv[1]))
node = built.host_plan("a").nodes[0]
print(render.redis_conf(built, node, None))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv made by the stock `python3 -m venv`, with the package installed non-editable."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    # Debian's own python3 when there is one (it refuses pip outside a venv), else this one.
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    build_dir = tmp_path_factory.mktemp("src")
    # Build from a copy of the tracked files, as a user's checkout has them (no stale build/).
    subprocess.run(f"git -C {ROOT} ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t {build_dir}", shell=True, check=True,
                   cwd=ROOT)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(build_dir)], check=True, timeout=600,
                   capture_output=True)
    return venv


def test_console_script_runs_from_root_with_the_same_tasks(installed):
    result = subprocess.run([str(installed / "bin" / "redis-provision"), "--list"], cwd="/", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name in ("deploy", "verify", "status", "failover", "drill"):
        assert f"  {name} " in result.stdout
    assert "lab." not in result.stdout            # the lab is a clone's, not the wheel's


def test_installed_package_renders_templates_without_the_clone(installed, tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(base(), sort_keys=False))
    result = subprocess.run([str(installed / "bin" / "python"), "-c", RENDER_A_CONFIG, str(path)], cwd="/",
                            capture_output=True, text=True, timeout=60, env={**os.environ, **ENVIRONMENT})
    assert result.returncode == 0, result.stderr
    assert "\nport 6379\n" in result.stdout
    site = next((installed / "lib").glob("python3*/site-packages"))
    assert not (site / "lab").exists() and not (site / "provision" / "lab").exists()


def test_installed_console_script_exits_2_on_a_bad_flag_and_on_a_bad_inventory(installed):
    script = str(installed / "bin" / "redis-provision")
    bad_flag = subprocess.run([script, "deploy", "--no-such-flag"], cwd="/", capture_output=True, text=True, timeout=60)
    assert bad_flag.returncode == 2 and "--no-such-flag" in bad_flag.stderr
    missing = subprocess.run([script, "verify", "-i", "/nonexistent.yml"], cwd="/", capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "cannot read the inventory" in missing.stderr
    assert "Traceback" not in bad_flag.stderr + missing.stderr


def test_the_wheel_ships_the_example_inventory_and_init_writes_it(installed, tmp_path):
    target = tmp_path / "prod.yml"
    result = subprocess.run([str(installed / "bin" / "redis-provision"), "init", "--path", str(target)], cwd="/",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == (ROOT / "provision" / "examples" / "prod.yml").read_text()
