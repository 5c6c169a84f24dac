"""What the task layer calls: load + validate, plan, run, report. Bad input raises UsageError or
InventoryError (exit 2), a host or check that fails returns False or raises ProvisionError (exit 1)."""
from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

from provision import inventory
from provision.ssh import netns, remote
from provision.deploy import orchestrate
from provision.base import output
from provision.core import plan as planner
from provision.core import state as host_state
from provision.base.errors import UsageError
from provision.steps.hostrun import RunOptions
from provision.inventory import secret_masker
from provision.base.table import format_table


def parse_limit(limit: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (limit or "").split(",") if name.strip())


def load_inventory(inventory_path: str) -> inventory.Inventory:
    """The inventory, its secrets masked in everything printed from here on."""
    loaded = inventory.load(inventory_path)
    output.mask_with(secret_masker(loaded))
    return loaded


def load_plan(inventory_path: str, limit: str | None = None) -> planner.Plan:
    """Inventory → plan, before any host is touched; InventoryError lists every problem."""
    loaded = load_inventory(inventory_path)
    try:
        return planner.build(loaded, parse_limit(limit))
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None


def controller_network(plan: planner.Plan):
    """The controller inside the inventory's `controller.network_namespace` (the lab's) for the
    length of a command, and back where it was afterwards; a real fleet has none."""
    return netns.joined(plan.inventory.controller.network_namespace)


def deploy(inventory_path: str, check: bool = False, diff: bool = False, limit: str | None = None,
           verbose: bool = False, artifact_dir: str | None = None, as_json: bool = False,
           say=output.say, version: str | None = None, allow_major: bool = False) -> orchestrate.DeployReport:
    """With as_json, progress goes wherever `say` sends it and the recap is one JSON document.
    `version`: run another release than the inventory's (upgrade, rollback)."""
    loaded = load_inventory(inventory_path)
    written = loaded.redis.version      # what the inventory says, before any --version
    if version is not None:
        if not inventory.VERSION_PATTERN.fullmatch(version):
            raise UsageError(f"--version: expected a release such as 7.2.4, got {version!r}")
        loaded = replace(loaded, redis=loaded.redis.with_release(version))
    try:
        plan = planner.build(loaded, parse_limit(limit))
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None
    options = RunOptions(check=check, diff=diff, verbose=verbose, allow_major=allow_major,
                         **({"artifact_dir": Path(artifact_dir)} if artifact_dir else {}))
    with controller_network(plan):
        report = orchestrate.deploy(plan, options, say=say)
    mask = secret_masker(plan.inventory)
    if as_json:
        print(mask(format_recap_json(report)), flush=True)
    else:
        say(format_recap(report, plan, show_diff=diff))
        if version is not None and written != version and report.ok and not check:
            say(f"note: the inventory still says redis.version {written}: set it to {version} there, or the next "
                f"deploy goes back to {written}")
    return report


def previous_release(inventory_path: str, limit: str | None = None) -> str:
    """The release the hosts ran before their current one (their state files), for `rollback`;
    UsageError when none records one or they disagree."""
    plan = load_plan(inventory_path, limit)
    found: dict[str, list[str]] = {}
    with controller_network(plan):
        connections, failed = remote.open_all(plan)
        try:
            for name, connection in connections.items():
                text = connection.run(f"cat {shlex.quote(plan.layout.state_file)} 2>/dev/null").stdout
                recorded = host_state.parse(text)
                if recorded is not None and recorded.previous_version:
                    found.setdefault(recorded.previous_version, []).append(name)
        finally:
            remote.close_all(connections)
    if failed:
        raise UsageError("rollback: cannot read what every host ran before: " +
                         "; ".join(f"{name}: {remote.reason(error)}" for name, error in failed.items()))
    if not found:
        raise UsageError("rollback: no host records an earlier release (nothing was upgraded by this tool yet); "
                         "give one with --version")
    if len(found) > 1:
        raise UsageError("rollback: the hosts ran different releases before: " +
                         "; ".join(f"{version} on {', '.join(names)}" for version, names in found.items()) +
                         "; give the one to go back to with --version")
    return next(iter(found))


def _outcome_state(outcome: orchestrate.HostOutcome) -> str:
    if outcome.unreachable:
        return "unreachable"
    if outcome.failed:
        return "failed"
    return "changed" if outcome.changes else "unchanged"


def format_recap(report: orchestrate.DeployReport, plan: planner.Plan, show_diff: bool) -> str:
    """Per host: changed / unchanged / FAILED (with its step) / UNREACHABLE, how long it took
    (to the failure, for a failed host) and processes started; with --diff, the diffs first.
    Secrets masked."""
    mask = secret_masker(plan.inventory)
    lines = []
    if show_diff:
        for outcome in report.outcomes:
            for change in outcome.changes:
                if change.diff:
                    lines.append(mask(change.diff.rstrip("\n")))
    lines.append("RECAP (check mode: nothing was changed)" if report.check else "RECAP")
    rows = []
    for outcome in report.outcomes:
        state = _outcome_state(outcome)
        if state == "unreachable":
            shown = "UNREACHABLE (skipped)"
        elif state == "failed":
            shown = f"FAILED step={getattr(outcome.error, 'step', '?')}"
        elif state == "changed":
            shown = f"changed={len(outcome.changes)}"
        else:
            shown = state
        rows.append((outcome.host, shown, f"{outcome.seconds:.1f}s", ", ".join(outcome.restarts) or None))
    lines += format_table(("HOST", "RESULT", "TIME", "STARTED/RESTARTED"), rows, right=frozenset({2}), indent="  ")
    if report.masters:
        lines.append("  masters: " + ", ".join(f"{group}={host}" for group, host in report.masters.items()))
    unreachable = f", {len(report.unreachable)} unreachable ({', '.join(report.unreachable)})" \
        if report.unreachable else ""
    lines.append(f"  total {report.seconds:.1f}s, {report.changed} change(s), "
                 f"{sum(o.failed for o in report.outcomes)} failed host(s){unreachable}")
    return mask("\n".join(lines))


def format_recap_json(report: orchestrate.DeployReport) -> str:
    """The recap for a program (a CI pipeline): hosts in inventory order; diffs are left out
    (they are for people, and may be large)."""
    hosts = []
    for outcome in report.outcomes:
        hosts.append({"host": outcome.host, "state": _outcome_state(outcome), "seconds": round(outcome.seconds, 3),
                      "step": getattr(outcome.error, "step", None) if outcome.error else None,
                      "error": str(outcome.error) if outcome.error else None,
                      "changes": [{"step": change.step, "action": change.action} for change in outcome.changes],
                      "restarts": list(outcome.restarts)})
    return json.dumps({"ok": report.ok, "check": report.check, "seconds": round(report.seconds, 3),
                       "changed": report.changed, "masters": report.masters, "hosts": hosts}, indent=2)


def verify(inventory_path: str, as_json: bool = False, say=output.say) -> bool:
    from provision.checks import verify as verifier
    plan = load_plan(inventory_path)
    with controller_network(plan):
        results = verifier.run(plan)
    mask = secret_masker(plan.inventory)
    if as_json:
        print(mask(verifier.format_json(results)), flush=True)
    else:
        say(mask(verifier.format_table(results)))
    return all(result.ok for result in results)


def status(inventory_path: str, as_json: bool = False, say=output.say) -> bool:
    from provision.checks import status as live
    plan = load_plan(inventory_path)
    with controller_network(plan):
        connections, failed = remote.open_all(plan)
        try:
            groups = live.view(plan, connections)
        finally:
            remote.close_all(connections)
    unreachable = {name: remote.reason(error) for name, error in failed.items()}
    if as_json:
        print(output.mask(live.format_json(plan, groups, unreachable)), flush=True)
    else:
        say(live.format_view(plan, groups, unreachable))
    return live.healthy(groups, unreachable)


def failover(inventory_path: str, group: str | None = None, say=output.say):
    from provision.ops import failover as switchover
    plan = load_plan(inventory_path)
    with controller_network(plan):
        result = switchover.run(plan, group)
    say(f"group {result.group}: {result.old_master} -> {result.new_master}; all sentinels agreed after "
        f"{result.seconds_to_switch:.2f}s, {result.old_master} replicating from it after {result.seconds_to_rejoin:.2f}s")
    return result


def promote(inventory_path: str, group: str | None = None, host: str | None = None, allow_stale: bool = False,
            check: bool = False, say=output.say):
    from provision.ops import promote as promotion
    plan = load_plan(inventory_path)
    with controller_network(plan):
        result = promotion.run(plan, group, host, allow_stale, check, say)
    if result is not None:
        say(f"group {result.group}: {result.new_master} promoted in place of {result.old_master}; all sentinels "
            f"agreed after {result.seconds_to_switch:.2f}s")
    return result


def drill(inventory_path: str, mode: str = "kill", seconds: float = 10, group: str | None = None, say=output.say,
          allow_reboot: bool = False, order: str = "replica,master,replica", spacing: float = 1.0,
          allow_partition: bool = False, host_reboot=None):
    from provision.ops import drill as failure_drill
    plan = load_plan(inventory_path)
    with controller_network(plan):
        report = failure_drill.run(plan, mode=mode, seconds=seconds, group_name=group, say=say,
                                   allow_reboot=allow_reboot, order=order, spacing=spacing,
                                   allow_partition=allow_partition, host_reboot=host_reboot)
    say(secret_masker(plan.inventory)(failure_drill.format_report(report)))
    return report
