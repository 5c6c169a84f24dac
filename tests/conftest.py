"""Shared fixtures. The `lab` fixture gives the session a running 3-host lab, built from scratch
(any lab left over from an earlier run is taken down first, so deploys start on bare hosts)."""
from __future__ import annotations

import os

import pytest

from provision import inventory, netns, remote
from provision.lab import golden, hosts as lab_hosts, inventory_file
from provision.lab.paths import default_paths

LAB_HOST_COUNT = 3


# The lab tier shares one set of hosts; its modules build on each other in this order
# (bare hosts, then a deploy, then breaking and failing it over). Unit tests go first.
LAB_MODULE_ORDER = ("test_lab", "test_deploy_lab", "test_verify_lab", "test_drill_lab", "test_restart_lab")


def pytest_collection_modifyitems(items):
    """Unit tests first, then the lab modules in order; lab_teardown tests last of all."""
    def rank(item):
        module = item.module.__name__.rsplit(".", 1)[-1]
        position = LAB_MODULE_ORDER.index(module) + 1 if module in LAB_MODULE_ORDER else 0
        return (item.get_closest_marker("lab_teardown") is not None, position)
    items.sort(key=rank)


def pytest_configure(config):
    config.addinivalue_line("markers", "lab_teardown: runs last, takes the session's lab down")


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
    """An empty build cache for this session, so the first deploy really compiles."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def connections(lab_inventory):
    """One live SSH connection per lab host, closed after the test."""
    opened = {host.name: remote.connect_for(host, lab_inventory.controller) for host in lab_inventory.hosts}
    yield opened
    for connection in opened.values():
        connection.close()
