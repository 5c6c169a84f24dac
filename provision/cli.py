"""What tasks.py calls: load + validate, plan, run, report. Errors become (message, exit code)."""
from __future__ import annotations

from pathlib import Path

from provision import inventory, orchestrate, plan as planner
from provision.errors import ProvisionError
from provision.hostrun import RunOptions


def parse_limit(limit: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (limit or "").split(",") if name.strip())


def load_plan(inventory_path: str, limit: str | None = None) -> planner.Plan:
    """Inventory → plan, before any host is touched; InventoryError lists every problem."""
    loaded = inventory.load(inventory_path)
    try:
        return planner.build(loaded, parse_limit(limit))
    except KeyError as error:
        raise ProvisionError(str(error.args[0])) from None


def deploy(inventory_path: str, check: bool = False, diff: bool = False, limit: str | None = None,
           verbose: bool = False, artifact_dir: str | None = None, say=print) -> orchestrate.DeployReport:
    plan = load_plan(inventory_path, limit)
    options = RunOptions(check=check, diff=diff, verbose=verbose,
                         **({"artifact_dir": Path(artifact_dir)} if artifact_dir else {}))
    report = orchestrate.deploy(plan, options, say=say)
    say(orchestrate.format_recap(report, plan, show_diff=diff))
    return report


def verify(inventory_path: str, as_json: bool = False, say=print) -> bool:
    from provision import verify as verifier
    plan = load_plan(inventory_path)
    results = verifier.run(plan)
    mask = orchestrate.secret_masker(plan)
    say(mask(verifier.format_json(results) if as_json else verifier.format_table(results)))
    return all(result.ok for result in results)


def status(inventory_path: str, say=print) -> bool:
    from provision import status as live
    plan = load_plan(inventory_path)
    connections, unreachable = live.open_connections(plan)
    try:
        groups = live.view(plan, connections)
    finally:
        for connection in connections.values():
            connection.close()
    say(live.format_view(plan, groups, unreachable))
    return not unreachable and all(group.sentinel_master for group in groups)


def failover(inventory_path: str, group: str | None = None, say=print):
    from provision import failover as switchover
    plan = load_plan(inventory_path)
    result = switchover.run(plan, group)
    say(f"group {result.group}: {result.old_master} -> {result.new_master}; all sentinels agreed after "
        f"{result.seconds_to_switch:.2f}s, {result.old_master} replicating from it after {result.seconds_to_rejoin:.2f}s")
    return result


def drill(inventory_path: str, mode: str = "kill", seconds: float = 10, group: str | None = None, say=print,
          allow_reboot: bool = False):
    from provision import drill as failure_drill
    plan = load_plan(inventory_path)
    report = failure_drill.run(plan, mode=mode, seconds=seconds, group_name=group, say=say, allow_reboot=allow_reboot)
    say(orchestrate.secret_masker(plan)(failure_drill.format_report(report)))
    return report
