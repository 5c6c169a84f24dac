"""What tasks.py calls: load + validate, plan, run, report. Errors become (message, exit code)."""
from __future__ import annotations

from pathlib import Path

from provision import inventory, netns, orchestrate, plan as planner, remote
from provision.errors import ProvisionError
from provision.hostrun import RunOptions
from provision.inventory import secret_masker


def parse_limit(limit: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (limit or "").split(",") if name.strip())


def load_plan(inventory_path: str, limit: str | None = None) -> planner.Plan:
    """Inventory → plan, before any host is touched; InventoryError lists every problem."""
    loaded = inventory.load(inventory_path)
    try:
        return planner.build(loaded, parse_limit(limit))
    except KeyError as error:
        raise ProvisionError(str(error.args[0])) from None


def controller_network(plan: planner.Plan):
    """The controller inside the inventory's `controller.network_namespace` (the lab's) for the
    length of a command, and back where it was afterwards; a real fleet has none."""
    return netns.joined(plan.inventory.controller.network_namespace)


def deploy(inventory_path: str, check: bool = False, diff: bool = False, limit: str | None = None,
           verbose: bool = False, artifact_dir: str | None = None, say=print) -> orchestrate.DeployReport:
    plan = load_plan(inventory_path, limit)
    options = RunOptions(check=check, diff=diff, verbose=verbose,
                         **({"artifact_dir": Path(artifact_dir)} if artifact_dir else {}))
    with controller_network(plan):
        report = orchestrate.deploy(plan, options, say=say)
    say(format_recap(report, plan, show_diff=diff))
    return report


def format_recap(report: orchestrate.DeployReport, plan: planner.Plan, show_diff: bool) -> str:
    """Per host: changed / unchanged / FAILED (with its step) / UNREACHABLE, time and processes
    started; with --diff, the diffs first. Secrets masked."""
    mask = secret_masker(plan.inventory)
    lines = []
    if show_diff:
        for outcome in report.outcomes:
            for change in outcome.changes:
                if change.diff:
                    lines.append(mask(change.diff.rstrip("\n")))
    lines.append("RECAP (check mode: nothing was changed)" if report.check else "RECAP")
    for outcome in report.outcomes:
        if outcome.unreachable:
            state = "UNREACHABLE (skipped)"
        elif outcome.failed:
            state = f"FAILED   step={getattr(outcome.error, 'step', '?')}"
        elif outcome.changes:
            state = f"changed={len(outcome.changes)}"
        else:
            state = "unchanged"
        restarts = f"  started/restarted: {', '.join(outcome.restarts)}" if outcome.restarts else ""
        lines.append(f"  {outcome.host:16} {state:24} {outcome.seconds:6.1f}s{restarts}")
    if report.masters:
        lines.append("  masters: " + ", ".join(f"{group}={host}" for group, host in report.masters.items()))
    unreachable = f", {len(report.unreachable)} unreachable ({', '.join(report.unreachable)})" \
        if report.unreachable else ""
    lines.append(f"  total {report.seconds:.1f}s, {report.changed} change(s), "
                 f"{sum(o.failed for o in report.outcomes)} failed host(s){unreachable}")
    return mask("\n".join(lines))


def verify(inventory_path: str, as_json: bool = False, say=print) -> bool:
    from provision import verify as verifier
    plan = load_plan(inventory_path)
    with controller_network(plan):
        results = verifier.run(plan)
    mask = secret_masker(plan.inventory)
    say(mask(verifier.format_json(results) if as_json else verifier.format_table(results)))
    return all(result.ok for result in results)


def status(inventory_path: str, say=print) -> bool:
    from provision import status as live
    plan = load_plan(inventory_path)
    with controller_network(plan):
        connections, failed = remote.open_all(plan)
        try:
            groups = live.view(plan, connections)
        finally:
            remote.close_all(connections)
    unreachable = {name: remote.reason(error) for name, error in failed.items()}
    say(live.format_view(plan, groups, unreachable))
    return not unreachable and all(group.sentinel_master for group in groups)


def failover(inventory_path: str, group: str | None = None, say=print):
    from provision import failover as switchover
    plan = load_plan(inventory_path)
    with controller_network(plan):
        result = switchover.run(plan, group)
    say(f"group {result.group}: {result.old_master} -> {result.new_master}; all sentinels agreed after "
        f"{result.seconds_to_switch:.2f}s, {result.old_master} replicating from it after {result.seconds_to_rejoin:.2f}s")
    return result


def drill(inventory_path: str, mode: str = "kill", seconds: float = 10, group: str | None = None, say=print,
          allow_reboot: bool = False):
    from provision import drill as failure_drill
    plan = load_plan(inventory_path)
    with controller_network(plan):
        report = failure_drill.run(plan, mode=mode, seconds=seconds, group_name=group, say=say,
                                   allow_reboot=allow_reboot)
    say(secret_masker(plan.inventory)(failure_drill.format_report(report)))
    return report
