"""The package's folders are its floors (docs/design.md): a module imports only from its own floor
or the floors below, the read-only checks never reach for the steps that change hosts, the
package never imports the lab, only the SSH floor touches paramiko and Fabric, and no two modules
import each other round a circle. Read from the source (an AST walk), not from what happens to be
imported at run time."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "provision"

#: Lowest first. A module's floor is its folder; the package's top-level modules (cli, tasks)
#: are the top floor.
FLOORS = ("base", "inventory", "core", "ssh", "facts", "steps", "checks", "ops", "deploy", "top")
FORBIDDEN = {("checks", "steps"): "a check only reads; what it needs of a step's knowledge belongs in facts or Layout"}
SSH_LIBRARIES = ("paramiko", "fabric", "invoke")
SSH_LIBRARY_HOMES = ("provision.ssh.", "provision.inventory.sshconfig", "provision.tasks")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FLOORS and parts[1] != "top") else "top"


def imported_modules(path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Every module this file imports (anywhere in it, deferred imports too), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.append((candidate if candidate in known else node.module, node.lineno))
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
IMPORTS = {name: imported_modules(path, set(MODULES)) for name, path in MODULES.items()}


def test_every_folder_of_the_package_is_a_known_floor():
    folders = {path.parent.name for path in PACKAGE.rglob("*.py") if path.parent != PACKAGE}
    assert folders <= set(FLOORS), f"a folder the floor table does not know: {folders - set(FLOORS)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_floor_and_the_floors_below(module):
    here = FLOORS.index(floor_of(module))
    wrong = []
    for target, line in IMPORTS[module]:
        if target.split(".")[0] == "lab":
            wrong.append(f"line {line}: {target}: the package never imports the lab (hand a hook in)")
        if target.split(".")[0] in SSH_LIBRARIES and not module.startswith(SSH_LIBRARY_HOMES):
            wrong.append(f"line {line}: {target}: only the ssh floor (and inventory.sshconfig) use it")
        if not target.startswith("provision.") or target not in MODULES and target.count(".") < 1:
            continue
        there = floor_of(target)
        if FLOORS.index(there) > here:
            wrong.append(f"line {line}: {target} is on floor {there}, above {floor_of(module)}")
        if (floor_of(module), there) in FORBIDDEN:
            wrong.append(f"line {line}: {target}: {FORBIDDEN[(floor_of(module), there)]}")
    assert not wrong, f"{MODULES[module]}:\n  " + "\n  ".join(wrong)


def find_circles(graph: dict[str, set[str]]) -> list[str]:
    state, stack, circles = {}, [], []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for following in sorted(graph[node]):
            if state.get(following) == "open":
                circles.append(" -> ".join(stack[stack.index(following):] + [following]))
            elif following not in state:
                visit(following)
        stack.pop()
        state[node] = "done"
    for name in sorted(graph):
        if name not in state:
            visit(name)
    return circles


def test_no_modules_import_each_other_round_a_circle():
    graph = {name: {target for target, _ in IMPORTS[name] if target in MODULES and target != name}
             for name in MODULES}
    assert not find_circles(graph), "\n".join(find_circles(graph))


def test_the_circle_rule_finds_a_circle():
    assert find_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]


def test_the_floor_rule_catches_an_import_from_above(tmp_path):
    """The rule itself: a facts module importing a step is found."""
    source = tmp_path / "probe.py"
    source.write_text("from provision.steps import node\nfrom provision.core.plan import Layout\n")
    targets = [target for target, _ in imported_modules(source, set(MODULES))]
    assert "provision.steps.node" in targets
    above = [t for t in targets if FLOORS.index(floor_of(t)) > FLOORS.index("facts")]
    assert above == ["provision.steps.node"]


def test_the_majority_rule_is_written_once_and_everyone_follows_it(monkeypatch, lab_like_plan):
    """Change the one rule and the start guard, the topology reader and the inventory's quorum
    check all change with it: none keeps a copy."""
    from provision.base import quorum
    from provision.core import render
    from provision.facts import topology
    assert quorum.majority(3) == 2 and quorum.majority(5) == 3 and quorum.majority(4) == 3
    monkeypatch.setattr(quorum, "majority", lambda count: count)       # unanimity, for the test
    assert "\nmajority=3\n" in render.start_script(lab_like_plan, lab_like_plan.host_plan("lab1"))
    assert not topology.agreement(["10.0.0.1", "10.0.0.1", None], 3).has_majority
    assert topology.agreement(["10.0.0.1"] * 3, 3).has_majority
