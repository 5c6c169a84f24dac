"""Helpers the lab-tier tests share: a deploy that captures its output, process start times,
a redis-py client as an application would use it, and waiting for Sentinel to settle."""
from __future__ import annotations

import time
from pathlib import Path

import redis
import yaml

from provision import cli, inventory as inventory_module
from provision.ssh import remote
from provision.checks import verify
from provision.inventory import Inventory


def deploy(path, artifact_dir, **options):
    lines: list[str] = []
    report = cli.deploy(str(path), artifact_dir=str(artifact_dir), say=lines.append, **options)
    return report, "\n".join(lines)


def variant(lab_path: Path, tmp_path: Path, change) -> Path:
    """A copy of the lab inventory with `change(document)` applied."""
    document = yaml.safe_load(Path(lab_path).read_text())
    change(document)
    target = tmp_path / "variant.yml"
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def start_times(lab_inventory: Inventory) -> dict[str, str]:
    """host:process → kernel start time of every redis-server and redis-sentinel (a restart changes it)."""
    found = {}
    for host in lab_inventory.hosts:
        connection = remote.connect(host, lab_inventory.controller)
        try:
            output = connection.check("probe", "for f in /app/redis/run/*.pid; do p=$(cat $f); "
                                               "echo $(basename $f) $(cut -d' ' -f22 /proc/$p/stat 2>/dev/null); done").stdout
        finally:
            connection.close()
        for line in output.splitlines():
            name, _, started = line.partition(" ")
            found[f"{host.name}:{name}"] = started
    return found


def client(lab_inventory: Inventory, host_name: str, user: str | None = "admin", port: int = 6379) -> redis.Redis:
    host = lab_inventory.host(host_name)
    users = {u.name: u for u in lab_inventory.acl.all_users}
    if user is None:
        return redis.Redis(host=host.data_address, port=port, socket_timeout=3, decode_responses=True)
    return redis.Redis(host=host.data_address, port=port, username=user, password=users[user].password.value,
                       socket_timeout=3, decode_responses=True)


def sentinel_client(lab_inventory: Inventory, host_name: str) -> redis.Redis:
    host = lab_inventory.host(host_name)
    admin = lab_inventory.acl.admin
    return redis.Redis(host=host.data_address, port=lab_inventory.redis.sentinel_port, socket_timeout=3,
                       username=admin.name, password=admin.password.value, decode_responses=True)


def master_per_sentinel(lab_inventory: Inventory, group: str = "mymaster") -> dict[str, str | None]:
    answers = {}
    for name in lab_inventory.sentinels:
        try:
            address = sentinel_client(lab_inventory, name).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group)
            answers[name] = address[0] if address else None
        except redis.RedisError:
            answers[name] = None
    return answers


def wait_for(predicate, seconds: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except redis.RedisError as error:
            last = error
            last_ok = False
        else:
            last_ok = bool(last)
        if last_ok:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}; last: {last!r}")


def settled_after_failover(lab_inventory: Inventory, old_master: str, group: str = "mymaster") -> str:
    """Wait until every sentinel names one new master and the old master replicates from it;
    returns the new master's host name."""
    old_address = lab_inventory.host(old_master).data_address

    def agreed():
        answers = set(master_per_sentinel(lab_inventory, group).values())
        return len(answers) == 1 and None not in answers and old_address not in answers and answers.pop()
    new_address = wait_for(agreed, 60, "sentinels to agree on a new master")
    new_master = next(h.name for h in lab_inventory.hosts if h.data_address == new_address)

    def old_rejoined():
        info = client(lab_inventory, old_master).info("replication")
        return info.get("role") == "slave" and info.get("master_host") == new_address and \
            info.get("master_link_status") == "up"
    wait_for(old_rejoined, 60, f"{old_master} to replicate from {new_master}")
    return new_master


def verify_failures(path) -> list[verify.CheckResult]:
    plan = cli.load_plan(str(path))
    with cli.controller_network(plan):
        return [result for result in verify.run(plan) if not result.ok]


def run_on(lab_inventory: Inventory, host_name: str, command: str) -> str:
    """stdout of a command that must succeed on a lab host, over a connection of its own."""
    connection = remote.connect(lab_inventory.host(host_name), lab_inventory.controller)
    try:
        return connection.check("probe", command).stdout
    finally:
        connection.close()


def reload(path) -> Inventory:
    return inventory_module.load(str(path))
