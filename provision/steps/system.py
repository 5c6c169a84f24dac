"""Kernel tuning (live and persistent) and the on-disk layout."""
from __future__ import annotations

import shlex

from provision.facts import host as facts
from provision.steps import primitives
from provision.core import render
from provision.steps.hostrun import HostRun
from provision.steps import services



def tune(run: HostRun) -> None:
    system = run.plan.inventory.system
    run.begin("tune")
    primitives.ensure_file(run, run.layout.sysctl_file, render.sysctl_file(run.plan), 0o644)
    live = facts.sysctl_values(run.remote, [key for key, _ in system.sysctl])
    for key, wanted in system.sysctl:
        current = live[key]
        if current != str(wanted):
            run.act(f"set {key} = {wanted} now (was {current})", f"sysctl -q -w {shlex.quote(f'{key}={wanted}')}")
    for path, mode in facts.thp_modes(run.remote).items():
        if mode != system.transparent_hugepage:
            run.act(f"set {path} to {system.transparent_hugepage} now (was {mode})",
                    f"echo {shlex.quote(system.transparent_hugepage)} > {path}")
    current_rc = primitives.read_file(run, run.layout.rc_local)
    systemd = services.uses_systemd(run)
    wanted_rc = render.with_rc_local_block(current_rc, render.rc_local_block(run.plan, run.host_plan, systemd))
    primitives.ensure_file(run, run.layout.rc_local, wanted_rc, 0o755)
    if systemd:
        ensure_units(run)




def ensure_units(run: HostRun) -> None:
    """On a systemd host: the unit files (root's, 0644), a daemon-reload when one changed, and
    every unit enabled so a boot starts them. Starting is the configure steps' business."""
    units = render.unit_files(run.plan, run.host_plan)
    changed = False
    for name, text in units.items():
        changed |= primitives.ensure_file(run, run.layout.unit_file(name), text, 0o644)
    if changed:
        run.act_quietly("systemctl daemon-reload")
    names = list(units)
    states = run.remote.run("systemctl is-enabled " + " ".join(shlex.quote(name) for name in names)).stdout.split()
    disabled = [name for name, state in zip(names, states + [""] * len(names)) if state != "enabled"]
    if disabled:
        run.act(f"systemctl enable {' '.join(disabled)}",
                "systemctl enable --quiet " + " ".join(shlex.quote(name) for name in disabled))


def layout(run: HostRun) -> None:
    """The redis system user and the directories it owns. conf/ is writable by Redis: CONFIG
    REWRITE and Sentinel write a temporary file there and rename it over the config."""
    run.begin("layout")
    paths = run.layout
    primitives.check_ancestors(run)
    if not run.facts.has_redis_user:
        run.act("create system user redis", f"useradd --system --user-group --no-create-home --home-dir "
                                             f"{shlex.quote(paths.data_dir)} --shell /usr/sbin/nologin redis")
        if run.options.check:
            return  # directories owned by a user that does not exist yet cannot be compared
    wanted = [(paths.install_dir, 0o755, "root"), (paths.install_dir + "/versions", 0o755, "root"),
              (paths.boot_dir, 0o700, "root"),
              (paths.conf_dir, 0o750, "redis"), (paths.data_dir, 0o750, "redis"), (paths.log_dir, 0o750, "redis"),
              (paths.run_dir, 0o755, "redis")]
    wanted += [(paths.node_data_dir(node.port), 0o750, "redis") for node in run.host_plan.nodes]
    if run.host_plan.cluster_node is not None:
        wanted.append((paths.node_data_dir(run.host_plan.cluster_node.port), 0o750, "redis"))
    if run.host_plan.runs_sentinel:
        wanted.append((paths.sentinel_data_dir, 0o750, "redis"))
    primitives.ensure_dirs(run, wanted)
    if run.host_plan.nodes:
        primitives.ensure_file(run, paths.start_script, render.start_script(run.plan, run.host_plan), 0o700)
        primitives.ensure_file(run, paths.boot_auth_file, render.boot_auth(run.plan), 0o600)
