"""Shared fixtures. The `lab` fixture gives the session a running 3-host lab, built from scratch
(any lab left over from an earlier run is taken down first, so deploys start on bare hosts)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from provision import cli, inventory
from provision.ssh import netns, remote
from provision.core import plan as planner
from lab import golden, hosts as lab_hosts, inventory_file
from lab.paths import default_paths
from tests.test_inventory import base, write

LAB_HOST_COUNT = 3


def pytest_collection_modifyitems(items):
    """Unit tests first, then the slow tier (pip installs), then the lab tier (its modules in any order: each one sets up the state
    it needs with bare_lab or deployed_lab), then the VM tier (its artifact cache warmed by the
    lab tier); lab_teardown tests last of all."""
    def rank(item):
        return (item.get_closest_marker("lab_teardown") is not None, item.get_closest_marker("vm") is not None,
                item.get_closest_marker("lab") is not None, item.get_closest_marker("slow") is not None)
    items.sort(key=rank)


def pytest_configure(config):
    config.addinivalue_line("markers", "lab_teardown: runs last, takes the session's lab down")
    config.addinivalue_line("markers", "vm: the VM tier (qemu VMs; runs when REDIS_PROVISION_VM=1)")


#: the only names the tests resolve; nothing is ever asked of a real DNS server
TEST_NAMES = {"redis-a.lan": "10.0.0.21", "localhost": "127.0.0.1"}


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """Tests send no DNS query: names resolve from TEST_NAMES or not at all."""
    monkeypatch.setattr(inventory, "resolve_ipv4", TEST_NAMES.get)


@pytest.fixture
def lab_like_plan(tmp_path):
    """The lab's shape (3 hosts, one group, 3 sentinels) as a plan, for tests without SSH."""
    document = base()
    document["hosts"] = {f"lab{i}": {"address": f"10.77.0.1{i}"} for i in (1, 2, 3)}
    document["groups"] = {"mymaster": {"master": "lab1", "replicas": ["lab2", "lab3"], "quorum": 2,
                                       "down_after_milliseconds": 2000, "failover_timeout": 10000}}
    document["sentinels"] = ["lab1", "lab2", "lab3"]
    document["redis"]["maxmemory"] = "128mb"
    environment = {"PA": "admin-password-1", "PR": "replication-password-1", "PS": "sentinel-password-1",
                   "PP": "app-password-1"}
    return planner.build(inventory.load(write(tmp_path, document), environment))


@pytest.fixture(scope="session")
def lab_paths():
    return default_paths()


@pytest.fixture(scope="session")
def lab(lab_paths, tmp_path_factory):
    """Path of an inventory for a running 3-host lab (lab_network puts each lab test inside its
    network namespace)."""
    if os.geteuid() != 0:
        pytest.fail("the lab tier needs root (namespaces, mounts)")
    lab_hosts.down(lab_paths, log=lambda _: None)
    golden.build_golden_tree(lab_paths)
    made = lab_hosts.up(lab_paths, LAB_HOST_COUNT)
    path = inventory_file.write_lab_inventory(lab_paths, made, tmp_path_factory.mktemp("lab") / "lab.yml")
    yield path
    lab_hosts.down(lab_paths, log=lambda _: None)


@pytest.fixture(autouse=True)
def lab_network(request):
    """A lab test talks to the hosts from inside the lab's network namespace, as `invoke deploy`
    does (cli.controller_network): joined before the test, left after it. The teardown test
    stays outside, to see what `lab.down` left behind on the machine."""
    if request.node.get_closest_marker("lab") is None or request.node.get_closest_marker("lab_teardown"):
        yield
        return
    request.getfixturevalue("lab")
    with netns.joined(lab_hosts.BRIDGE_NAMESPACE):
        yield


@pytest.fixture(scope="session")
def lab_inventory(lab):
    return inventory.load(lab)


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory):
    """An empty build cache for this session, so the first deploy really compiles (a developer
    iterating on one module may name a kept one in REDIS_PROVISION_TEST_ARTIFACTS; CI never does)."""
    kept = os.environ.get("REDIS_PROVISION_TEST_ARTIFACTS")
    if kept:
        return Path(kept)
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def connections(lab_inventory):
    """One live SSH connection per lab host, closed after the test."""
    opened = {host.name: remote.connect(host, lab_inventory.controller) for host in lab_inventory.hosts}
    yield opened
    for connection in opened.values():
        connection.close()


@pytest.fixture(scope="session")
def six_hosts(lab, lab_paths):
    """lab4..lab6 brought up beside the session's three (the membership tests add and retire
    them); the names of all six."""
    lab_hosts.up(lab_paths, 6, log=lambda _: None)
    return [f"lab{index}" for index in range(1, 7)]


@pytest.fixture
def bare_lab(lab, lab_paths):
    """The lab's hosts re-imaged from the golden tree: nothing deployed on any of them."""
    for index in range(1, LAB_HOST_COUNT + 1):
        lab_hosts.reinstall(lab_paths, f"lab{index}", log=lambda _: None)
    return lab


@pytest.fixture
def deployed_lab(lab, artifact_dir):
    """A deployed lab that verifies clean, whatever ran before; returns its plan."""
    from tests.labtools import deploy, verify_failures, wait_for
    report, output = deploy(lab, artifact_dir)
    assert report.ok, output
    wait_for(lambda: not verify_failures(lab), 90, "verify to pass before the test", interval=1)
    return cli.load_plan(str(lab))
