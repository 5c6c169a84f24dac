"""Invoke entry points: parse flags, call the library, turn errors into Exit. Nothing else."""
from invoke import Collection, Exit, task

from provision import cli
from provision.errors import ProvisionError
from provision.lab.tasks import lab

DEFAULT_INVENTORY = "inventory/lab.yml"


@task(help={"inventory": "inventory file (default inventory/lab.yml)",
            "check": "change nothing; report what would change",
            "diff": "show unified diffs of the files that change (secrets masked)",
            "limit": "only these hosts, comma-separated",
            "verbose": "print every step as it starts",
            "artifact-dir": "controller-side cache of built binaries"})
def deploy(c, inventory=DEFAULT_INVENTORY, check=False, diff=False, limit=None, verbose=False, artifact_dir=None):
    """Deploy Redis master/replicas/Sentinels as the inventory describes (idempotent)."""
    try:
        report = cli.deploy(inventory, check=check, diff=diff, limit=limit, verbose=verbose, artifact_dir=artifact_dir)
    except ProvisionError as error:
        raise Exit(f"error: {error}", 2)
    if not report.ok:
        raise Exit("deploy failed on some hosts (see above)", 1)


@task(help={"inventory": "inventory file (default inventory/lab.yml)", "json": "machine-readable output"})
def verify(c, inventory=DEFAULT_INVENTORY, json=False):
    """Check the deployment read-only (roles per the Sentinels' current view); exit 1 if any check fails."""
    try:
        ok = cli.verify(inventory, as_json=json)
    except ProvisionError as error:
        raise Exit(f"error: {error}", 2)
    if not ok:
        raise Exit(code=1)


@task(help={"inventory": "inventory file (default inventory/lab.yml)"})
def status(c, inventory=DEFAULT_INVENTORY):
    """Live topology per group: master, replicas with lag, each sentinel's view."""
    try:
        healthy = cli.status(inventory)
    except ProvisionError as error:
        raise Exit(f"error: {error}", 2)
    if not healthy:
        raise Exit(code=1)


@task(help={"inventory": "inventory file (default inventory/lab.yml)", "group": "replication group (default: the only one)"})
def failover(c, inventory=DEFAULT_INVENTORY, group=None):
    """Controlled switchover via SENTINEL FAILOVER; waits until it is complete and prints the time."""
    try:
        cli.failover(inventory, group)
    except ProvisionError as error:
        raise Exit(f"error: {error}", 1)


@task(help={"inventory": "inventory file (default inventory/lab.yml)", "mode": "kill, stop, partition, restart (kill -9 and start at once) or reboot (the host)",
            "allow_reboot": "let --mode reboot reboot a host that is not a lab host",
            "seconds": "how long a stopped or partitioned master stays away (default 10)",
            "group": "replication group (default: the first)"})
def drill(c, inventory=DEFAULT_INVENTORY, mode="kill", seconds=10, group=None, allow_reboot=False):
    """Fail the master under a writing client and measure: time to new master, unavailability,
    lost writes per kind, time with two writable masters. --mode kill|stop|partition|restart|reboot;
    reboot of a host that is not a lab host needs --allow-reboot."""
    try:
        report = cli.drill(inventory, mode=mode, seconds=float(seconds), group=group, allow_reboot=allow_reboot)
    except ProvisionError as error:
        raise Exit(f"error: {error}", 1)
    if not report.ok:
        raise Exit(code=1)


namespace = Collection(lab, deploy, verify, status, failover, drill)
