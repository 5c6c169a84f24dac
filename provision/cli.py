"""What the task layer calls: load + validate, plan, run, report. Bad input raises UsageError or
InventoryError (exit 2), a host or check that fails returns False or raises ProvisionError (exit 1)."""
from __future__ import annotations

import difflib
import json
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from provision import inventory
from provision.ssh import netns, remote
from provision.deploy import orchestrate
from provision.base import output
from provision.core import plan as planner
from provision.core import state as host_state
from provision.base.errors import InventoryError, UsageError
from provision.steps.hostrun import RunOptions
from provision.inventory import secret_masker
from provision.base.table import format_table


def parse_limit(limit: str | None) -> tuple[str, ...]:
    """--limit's patterns. Given but empty (an unset CI variable) is refused: it would select
    every host, the opposite of what a limit is for."""
    patterns = tuple(name.strip() for name in (limit or "").split(",") if name.strip())
    if limit is not None and not patterns:
        raise UsageError(f"--limit {limit!r}: no host, group or pattern in it; leave --limit out to run on every host")
    return patterns


def limit_names(plan: planner.Plan, patterns: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return planner.limit_hosts(plan.inventory, patterns)
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None


def load_inventory(inventory_path: str) -> inventory.Inventory:
    """The inventory, its secrets masked in everything printed from here on."""
    loaded = inventory.load(inventory_path)
    output.mask_with(secret_masker(loaded))
    return loaded


def refuse_cluster(loaded: inventory.Inventory, task: str) -> None:
    """A cluster section validates, plans, deploys and verifies; the other host tasks do not
    handle Redis Cluster yet, and a run that silently skipped it would look like success."""
    if loaded.cluster is not None:
        raise UsageError(f"{loaded.path}: cluster: {task} does not handle Redis Cluster yet (validate, plan, render, "
                         "deploy and verify do), so nothing was done")


def load_plan(inventory_path: str, limit: str | None = None, offline: bool = False,
              task: str | None = None) -> planner.Plan:
    """Inventory → plan, before any host is touched; InventoryError lists every problem.
    `task`: a host task that does not handle a cluster section yet (refused)."""
    parse_limit(limit)
    loaded = load_inventory(inventory_path)
    if not offline and task is not None:
        refuse_cluster(loaded, task)
    try:
        return planner.build(loaded, parse_limit(limit))
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None


def is_lab(plan: planner.Plan) -> bool:
    """The project's own lab (its controller namespace): operations there need no confirmation."""
    return plan.inventory.controller.network_namespace == LAB_NAMESPACE


#: The lab's controller namespace (lab/hosts.py BRIDGE_NAMESPACE; the package does not import lab/).
LAB_NAMESPACE = "rplab"


def require_confirmation(plan: planner.Plan, confirm, action: str) -> None:
    """An operation that disturbs a real deployment asks first: `confirm` is --yes (always true),
    a prompt on a terminal, or absent (refused, naming --yes)."""
    if is_lab(plan):
        return
    if confirm is None:
        raise UsageError(f"{action}: on hosts outside the lab this needs confirmation; pass --yes")
    if not confirm(f"{action} on {plan.inventory.path}?"):
        raise UsageError(f"{action}: not confirmed; nothing changed")


def controller_network(plan: planner.Plan):
    """The controller inside the inventory's `controller.network_namespace` (the lab's) for the
    length of a command, and back where it was afterwards; a real fleet has none."""
    return netns.joined(plan.inventory.controller.network_namespace)


def deploy(inventory_path: str, check: bool = False, diff: bool = False, limit: str | None = None,
           verbose: bool = False, artifact_dir: str | None = None, as_json: bool = False,
           say=output.say, version: str | None = None, allow_major: bool = False) -> orchestrate.DeployReport:
    """With as_json, progress goes wherever `say` sends it and the recap is one JSON document.
    `version`: run another release than the inventory's (upgrade, rollback)."""
    parse_limit(limit)                  # a bad flag is refused before the inventory is read
    loaded = load_inventory(inventory_path)
    if version is not None:
        refuse_cluster(loaded, "upgrade and rollback")
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
        print(mask(format_recap_json(report, diff)), flush=True)
    else:
        say(format_recap(report, plan, show_diff=diff))
        if version is not None and written != version and report.ok and not check:
            say(f"note: the inventory still says redis.version {written}: set it to {version} there, or the next "
                f"deploy goes back to {written}")
    return report


def previous_release(inventory_path: str, limit: str | None = None) -> str:
    """The release the hosts ran before their current one (their state files), for `rollback`;
    UsageError when none records one or they disagree."""
    plan = load_plan(inventory_path, limit, task="rollback")
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


def error_json(error: Exception | None) -> dict | None:
    """An error as a program reads it: the host, step, command and stderr of a HostError apart,
    and the whole message."""
    if error is None:
        return None
    return {"host": getattr(error, "host", None), "step": getattr(error, "step", None),
            "command": getattr(error, "command", None), "stderr": getattr(error, "stderr", None),
            "exit_code": getattr(error, "exit_code", None), "message": str(error)}


def format_recap_json(report: orchestrate.DeployReport, show_diff: bool = False) -> str:
    """The recap for a program (a CI pipeline): hosts in inventory order; each change's diff
    under --diff only (they are for people, and may be large)."""
    hosts = []
    for outcome in report.outcomes:
        hosts.append({"host": outcome.host, "state": _outcome_state(outcome), "seconds": round(outcome.seconds, 3),
                      "error": error_json(outcome.error),
                      "changes": [{"step": change.step, "action": change.action,
                                   **({"diff": change.diff} if show_diff and change.diff else {})}
                                  for change in outcome.changes],
                      "restarts": list(outcome.restarts)})
    return json.dumps({"schema_version": JSON_SCHEMA_VERSION, "ok": report.ok, "check": report.check,
                       "seconds": round(report.seconds, 3), "changed": report.changed, "masters": report.masters,
                       "unreachable": list(report.unreachable), "hosts": hosts}, indent=2)


@dataclass(frozen=True)
class Verdict:
    """What verify or status found: true when every check passed; the hosts that could not be
    reached are named apart (their own exit code)."""
    ok: bool
    unreachable: tuple[str, ...] = ()
    only_unreachable: bool = False      # every failure is a host that could not be reached

    def __bool__(self) -> bool:
        return self.ok


def verify(inventory_path: str, as_json: bool = False, say=output.say, limit: str | None = None) -> Verdict:
    """Every host is checked (the group's checks need them all); --limit keeps the report to
    some hosts and the group-wide checks."""
    from provision.checks import verify as verifier
    patterns = parse_limit(limit)
    plan = load_plan(inventory_path)
    shown = set(limit_names(plan, patterns)) if limit is not None else None
    with controller_network(plan):
        results = verifier.run(plan)
    hosts = {host.name for host in plan.inventory.hosts}
    if shown is not None:
        results = [result for result in results if result.host in shown or result.host not in hosts]
    mask = secret_masker(plan.inventory)
    if as_json:
        print(mask(verifier.format_json(results)), flush=True)
    else:
        say(mask(verifier.format_table(results)))
    unreachable = tuple(result.host for result in results if result.check == "ssh" and not result.ok)
    return Verdict(all(result.ok for result in results), unreachable,
                   all(result.ok or result.check == "ssh" for result in results))


def status(inventory_path: str, as_json: bool = False, say=output.say, limit: str | None = None) -> Verdict:
    from provision.checks import status as live
    patterns = parse_limit(limit)
    plan = load_plan(inventory_path)
    if plan.inventory.cluster is not None:
        return _cluster_status(plan, as_json, say, set(limit_names(plan, patterns)) if limit is not None else None)
    shown = set(limit_names(plan, patterns)) if limit is not None else None
    with controller_network(plan):
        connections, failed = remote.open_all(plan)
        try:
            groups = live.view(plan, connections)
        finally:
            remote.close_all(connections)
    unreachable = {name: remote.reason(error) for name, error in failed.items() if shown is None or name in shown}
    if shown is not None:
        groups = live.only_hosts(groups, shown)
    if as_json:
        print(output.mask(live.format_json(plan, groups, unreachable)), flush=True)
    else:
        say(live.format_view(plan, groups, unreachable))
    ordered = tuple(host.name for host in plan.inventory.hosts if host.name in unreachable)
    return Verdict(live.healthy(groups, unreachable), ordered, live.healthy(groups, {}))


def _cluster_status(plan: planner.Plan, as_json: bool, say, shown: set[str] | None) -> Verdict:
    """status of a Redis Cluster: a row per node (shard, role, slots, keys, replication lag);
    --limit keeps the rows of those hosts (the cluster's wholeness is still judged on all)."""
    from provision.checks import status as live
    with controller_network(plan):
        connections, failed = remote.open_all(plan)
        try:
            rows, problems = live.cluster_view(plan, connections)
        finally:
            remote.close_all(connections)
    unreachable = {name: remote.reason(error) for name, error in failed.items()}
    if shown is not None:
        rows = tuple(row for row in rows if row.host in shown)
    if as_json:
        print(output.mask(live.format_cluster_json(rows, problems, unreachable)), flush=True)
    else:
        say(live.format_cluster_view(rows, problems, unreachable))
    ordered = tuple(host.name for host in plan.inventory.hosts if host.name in unreachable)
    return Verdict(not problems and not unreachable, ordered,
                   bool(unreachable) and all(problem.endswith("did not answer") for problem in problems))


def failover(inventory_path: str, group: str | None = None, say=output.say, check: bool = False,
             confirm=None, shard: str | None = None):
    """`confirm(question)`: asked before a real failover of a group (or a cluster shard) outside the lab."""
    from provision.ops import failover as switchover
    plan = load_plan(inventory_path)
    if plan.inventory.cluster is not None:
        return _shard_failover(plan, shard, say, check, confirm)
    if shard is not None:
        raise UsageError(f"{inventory_path}: --shard names a cluster shard, and this inventory has no cluster section")
    if not check:
        require_confirmation(plan, confirm, f"fail over group {switchover.named_group(plan, group).name} "
                                            "(its writes pause for up to a few seconds)")
    with controller_network(plan):
        result = switchover.run(plan, group, check=check)
    if check:
        say(f"group {result.group}: would pause writes on {result.old_master}, wait until "
            f"{', '.join(result.linked_replicas)} have them all, and SENTINEL FAILOVER to one of them; nothing changed")
        return result
    say(f"group {result.group}: {result.old_master} -> {result.new_master}; all sentinels agreed after "
        f"{result.seconds_to_switch:.2f}s, {result.old_master} replicating from it after {result.seconds_to_rejoin:.2f}s")
    return result


def _shard_failover(plan: planner.Plan, shard: str | None, say, check: bool, confirm):
    from provision.ops import shard_failover
    named = shard_failover.named_shard(plan, shard)
    if not check:
        require_confirmation(plan, confirm, f"fail over cluster shard {named.name} (its writes pause until the "
                                            "replica has caught up)")
    with controller_network(plan):
        result = shard_failover.run(plan, named.name, check=check)
    if check:
        say(f"{result.shard}: would send CLUSTER FAILOVER to {result.new_master} (freshest linked replica of "
            f"{result.old_master}; candidates {', '.join(result.candidates)}); nothing changed")
        return result
    say(f"{result.shard}: {result.old_master} -> {result.new_master}; master after {result.seconds_to_switch:.2f}s, "
        f"every node agreed and {result.old_master} replicating it after {result.seconds_to_agree:.2f}s")
    return result


def promote(inventory_path: str, group: str | None = None, host: str | None = None, allow_stale: bool = False,
            check: bool = False, say=output.say):
    from provision.ops import promote as promotion
    plan = load_plan(inventory_path, task="promote")
    with controller_network(plan):
        result = promotion.run(plan, group, host, allow_stale, check, say)
    if result is not None:
        say(f"group {result.group}: {result.new_master} promoted in place of {result.old_master}; all sentinels "
            f"agreed after {result.seconds_to_switch:.2f}s")
    return result


def drill(inventory_path: str, mode: str = "kill", seconds: float = 10, group: str | None = None, say=output.say,
          allow_reboot: bool = False, order: str = "replica,master,replica", spacing: float = 1.0,
          allow_partition: bool = False, host_reboot=None, confirm=None):
    from provision.ops import drill as failure_drill
    plan = load_plan(inventory_path, task="drill")
    require_confirmation(plan, confirm, f"drill --mode {mode}: fail the master of "
                                        f"{group or plan.inventory.groups[0].name} under a writing client")
    with controller_network(plan):
        report = failure_drill.run(plan, mode=mode, seconds=seconds, group_name=group, say=say,
                                   allow_reboot=allow_reboot, order=order, spacing=spacing,
                                   allow_partition=allow_partition, host_reboot=host_reboot)
    say(secret_masker(plan.inventory)(failure_drill.format_report(report)))
    return report


# ---- offline: no SSH, nothing touched ------------------------------------------------------

JSON_SCHEMA_VERSION = 1


def validate(inventory_path: str, as_json: bool = False, say=output.say) -> list[dict]:
    """Every problem of the inventory (none: it is valid), each as {file, line, path, message}."""
    try:
        plan = load_plan(inventory_path, offline=True)
    except InventoryError as error:
        problems = [inventory.structured_problem(problem, inventory_path) for problem in error.problems]
        if as_json:
            print(json.dumps({"schema_version": JSON_SCHEMA_VERSION, "ok": False, "problems": problems}, indent=2))
        else:
            say(str(error))
        return problems
    summary = (f"{inventory_path}: valid: {len(plan.inventory.hosts)} host(s), {len(plan.inventory.groups)} group(s), "
               f"{len(plan.inventory.sentinels)} sentinel(s), "
               + (f"a cluster of {len(plan.inventory.cluster.shards)} shard(s), " if plan.inventory.cluster else "")
               + f"Redis {plan.inventory.redis.version}")
    if as_json:
        print(json.dumps({"schema_version": JSON_SCHEMA_VERSION, "ok": True, "problems": []}, indent=2))
    else:
        say(summary)
    return []


def render_files(inventory_path: str, host: str, file: str | None = None, systemd: bool = False,
                 say=output.say) -> dict[str, str]:
    """What deploy would write on `host` as a new host, secrets masked."""
    from provision.core import preview
    plan = load_plan(inventory_path, offline=True)
    host_plan = next((item for item in plan.hosts if item.host.name == host), None)
    if host_plan is None:
        names = [item.host.name for item in plan.hosts]
        close = difflib.get_close_matches(host, names, n=1)
        raise UsageError(f"render: no host {host!r} in {inventory_path}" +
                         (f"; did you mean {close[0]}?" if close else f" (hosts: {', '.join(names)})"))
    files = preview.matching(preview.files_for_new_host(plan, host_plan, systemd), file)
    if not files:
        every = preview.files_for_new_host(plan, host_plan, systemd)
        raise UsageError(f"render: {host} gets no file {file!r}; it gets " +
                         ", ".join(path.rsplit("/", 1)[-1] for path in every))
    mask = secret_masker(plan.inventory)
    for path, text in files.items():
        say(f"# ---- {host}:{path}\n{mask(text).rstrip()}\n")
    return files


def show_plan(inventory_path: str, limit: str | None = None, list_hosts: bool = False, as_json: bool = False,
              say=output.say) -> planner.Plan:
    """Who is master, replica and sentinel, and which hosts each wave of a fresh deploy takes (a
    running deployment may have moved on: deploy asks the sentinels)."""
    plan = load_plan(inventory_path, limit, offline=True)
    if list_hosts:
        say("\n".join(item.host.name for item in plan.hosts))
        return plan
    cluster_parts = planner.cluster_roles(plan.inventory)
    roles = []
    planned = {item.host.name: item for item in plan.hosts}
    for host in plan.inventory.hosts:
        item = planned.get(host.name)
        if item is None and host.name not in cluster_parts:
            continue
        parts = [f"{'master' if node.starts_as_master else 'replica'} of {node.group.name} :{node.port}"
                 for node in (item.nodes if item else ())]
        parts += cluster_parts.get(host.name, [])
        if item is not None and item.runs_sentinel:
            parts.append(f"sentinel :{plan.inventory.redis.sentinel_port}")
        if host.absent:
            parts = ["retiring (state: absent)"]
        roles.append((host.name, host.data_address, "; ".join(parts) or "-"))
    waves = fresh_deploy_waves(plan)
    if as_json:
        print(json.dumps({"schema_version": JSON_SCHEMA_VERSION,
                          "hosts": [{"host": name, "data_address": address, "roles": text}
                                    for name, address, text in roles],
                          "waves": [{"wave": name, "hosts": hosts} for name, hosts in waves]}, indent=2))
        return plan
    lines = format_table(("HOST", "DATA ADDRESS", "ROLES"), roles)
    lines += ["", "waves of a fresh deploy (a running one follows the sentinels):"]
    lines += format_table(("WAVE", "HOSTS"), [(name, ", ".join(hosts) or "-") for name, hosts in waves], indent="  ")
    say("\n".join(lines))
    return plan


def fresh_deploy_waves(plan: planner.Plan) -> list[tuple[str, list[str]]]:
    """The WAVES table run over the plan as a fresh deploy finds it (the inventory's masters,
    nothing running): the hosts each wave would take."""
    from provision.deploy.waves import Runner
    from provision.steps.hostrun import HostRun
    runner = Runner(1, lambda _: None, lambda text: text)
    try:
        for item in plan.hosts:
            runner.runs[item.host.name] = HostRun(None, plan, item, RunOptions(check=True), lambda _: None)
        state = orchestrate.Deploy(plan, RunOptions(check=True), runner)
        for group in plan.inventory.groups:
            state.set_master(group.name, plan.inventory.host(group.master), "inventory")
        return [(wave.name, [run.name for run in wave.hosts(state)] if wave.hosts else ["(controller)"])
                for wave in orchestrate.WAVES]
    finally:
        runner.pool.shutdown()


def init(path: str, say=output.say) -> Path:
    """A commented starter inventory (the package's example) at `path`; never over a file."""
    from importlib import resources
    target = Path(path)
    if target.exists():
        raise UsageError(f"init: {target} exists; not overwriting it (give another --path)")
    text = resources.files("provision").joinpath("examples/prod.yml").read_text()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "x") as handle:
        handle.write(text)
    schema_file = target.with_name("inventory.schema.json")    # its first line names it, for editors
    if not schema_file.exists():
        schema_file.write_text(resources.files("provision").joinpath("examples/inventory.schema.json").read_text())
    say(f"wrote {target} (and {schema_file.name}, its JSON Schema for editors): edit hosts, groups and sentinels, then set the passwords it names:\n"
        "  for name in ADMIN REPLICATION SENTINEL APP; do\n"
        "    export REDIS_${name}_PASSWORD=\"$(openssl rand -base64 33 | tr -d '/+=')\"; done\n"
        f"  redis-provision validate -i {target}")
    return target
