"""The command line: one Invoke task collection, run two ways with the same flags.

- `invoke deploy …` inside a clone (tasks.py there adds the lab's tasks to this collection);
- `redis-provision deploy …` anywhere after `pip install` (the console script: `program`).

Each task parses its flags, calls provision.cli and turns the outcome into the exit code every
task shares (EXIT_CODES, printed by --help). Every option has one short flag meaning the same on
every task, or none (SHORT_FLAGS).
"""
from __future__ import annotations

import difflib
import json as jsonlib     # the tasks' own `json` flag takes the plain name
import inspect
import sys
from importlib import metadata
from typing import Callable

from invoke import Collection, Exit, Program, Task, task
from invoke.exceptions import ParseError

from provision import cli
from provision.base import output
from provision.base.errors import Interrupted, InventoryError, ProvisionError, UsageError

DEFAULT_INVENTORY = "inventory/lab.yml"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 4, 130
#: Bad input keeps 2, as getopt and argparse tools do, so CI tells "fix the inventory or the flags"
#: from "a host failed" (1); 4 for an unreachable host is Ansible's.
EXIT_CODES = ((EXIT_OK, "everything asked for is done (or, with --check, would be) and every check passed"),
              (EXIT_FAILED, "a host failed a step, or a check failed"),
              (EXIT_BAD_INPUT, "bad input: the inventory, a flag or its value; nothing was touched"),
              (EXIT_UNREACHABLE, "a host could not be reached (the others were done); --allow-unreachable makes it 0"),
              (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"))

#: One short flag per option, the same on every task; an option not here has its long name only.
SHORT_FLAGS = {"inventory": "i", "limit": "l", "verbose": "v", "check": "C", "diff": "D", "json": "j"}


class _Task(Task):
    """Short flags from SHORT_FLAGS only: Invoke's own choice (each option's first free letter)
    gave -l to --limit on one task and to --log-file on the next."""

    def __call__(self, c, *args, **kwargs):
        # `invoke` in a clone runs Invoke's own Program: its -R/--dry reaches a task only as this.
        if c.config.run.dry:
            raise Exit("error: -R/--dry: Invoke's option, which this tool does not honour; not running "
                       "(for a dry run: deploy --check --diff)", EXIT_BAD_INPUT)
        return super().__call__(c, *args, **kwargs)

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        opts["names"] = opts["names"][:1] + ([SHORT_FLAGS[name]] if name in SHORT_FLAGS else [])
        return opts


#: Every option's help, written once; a task shows the ones it takes. A task whose option means
#: something else there says so in its own `help`.
HELP = {"inventory": f"inventory file (default {DEFAULT_INVENTORY})",
        "verbose": "-v: every step as it starts; -vv: every command sent to a host (repeat the flag)",
        "log_file": "also append everything (down to -vv detail) to this file, mode 0600",
        "check": "change nothing; report what would change",
        "diff": "show unified diffs of the files that change, secrets masked",
        "limit": "only these hosts: comma-separated host names, group names or globs (lab[12], db-*)",
        "json": "machine-readable output on stdout (progress goes to stderr)",
        "artifact_dir": "controller-side cache of built binaries",
        "allow_major": "allow a change of major release (6.2 -> 7.0); refused without it",
        "group": "replication group (default: the first)",
        "allow_unreachable": "exit 0 when the hosts that could be reached converged (else 4)",
        "yes": "do it without asking (outside the lab it asks, or refuses without a terminal)"}


def _task(help: dict[str, str] | None = None, **options):
    """An Invoke task whose options' help comes from HELP, unless `help` says otherwise."""
    def decorate(function):
        names = inspect.signature(function).parameters
        texts = {name: HELP[name] for name in names if name in HELP} | (help or {})
        return task(klass=_Task, help=texts, incrementable=["verbose"], **options)(function)
    return decorate


def _run(work: Callable[[], bool | int], verbose: int, log_file: str | None, as_json: bool = False) -> None:
    """Set up output, run, and map the outcome to the exit code. With --json, stdout carries one
    JSON document (an error too) and progress goes to stderr."""
    try:
        output.configure(int(verbose), log_file, stream=sys.stderr if as_json else sys.stdout)
    except OSError as error:
        raise Exit(f"error: --log-file {log_file}: {error.strerror}", EXIT_BAD_INPUT)
    try:
        ok = work()
    except (InventoryError, UsageError) as error:
        _fail(error, EXIT_BAD_INPUT, as_json)
    except Interrupted as error:
        _fail(error, EXIT_INTERRUPTED, as_json)
    except ProvisionError as error:
        _fail(error, EXIT_FAILED, as_json)
    except KeyboardInterrupt:
        raise Exit("interrupted", EXIT_INTERRUPTED)
    code = ok if isinstance(ok, int) and not isinstance(ok, bool) else (EXIT_OK if ok else EXIT_FAILED)
    if code != EXIT_OK:
        raise Exit(code=code)


def _code(done, allow_unreachable: bool = False) -> int:
    """A run's exit code: failed first, then unreachable (unless allowed), else 0."""
    if not done.ok:
        return EXIT_FAILED
    return EXIT_UNREACHABLE if done.unreachable and not allow_unreachable else EXIT_OK


def _confirm(yes: bool):
    """--yes, or a question on a terminal; None (refused, naming --yes) when nobody can answer."""
    if yes:
        return lambda question: True
    if not sys.stdin.isatty():
        return None
    return lambda question: input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _fail(error: ProvisionError, code: int, as_json: bool) -> None:
    """An error's text may quote a host's stderr: it is masked like every other line."""
    text = output.mask(str(error))
    if as_json:
        problems = [output.mask(problem) for problem in getattr(error, "problems", [str(error)])]
        print(jsonlib.dumps({"schema_version": cli.JSON_SCHEMA_VERSION, "ok": False, "error": text,
                             "problems": problems}, indent=2), flush=True)
        raise Exit(code=code)
    raise Exit(f"error: {text}", code)


def _seconds(flag: str, value: str, maximum: float = 3600) -> float:
    """A number of seconds from a flag (Invoke's own int/float casts end in a traceback)."""
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"--{flag}: expected a number of seconds, got {value!r}") from None
    if not 0 < seconds <= maximum:
        raise UsageError(f"--{flag}: expected seconds above 0 and at most {maximum:g}, got {value!r}")
    return seconds


@_task()
def deploy(c, inventory=DEFAULT_INVENTORY, check=False, diff=False, limit=None, verbose=0, log_file=None,
           json=False, artifact_dir=None, allow_unreachable=False):
    """Deploy Redis master/replicas/Sentinels as the inventory describes (idempotent)."""
    _run(lambda: _code(cli.deploy(inventory, check=check, diff=diff, limit=limit, verbose=verbose > 0,
                                  artifact_dir=artifact_dir, as_json=json), allow_unreachable),
         verbose, log_file, json)


@_task({"version": "the release to run, such as 7.2.4: the inventory's redis.version, or one of redis.releases"})
def upgrade(c, version=None, inventory=DEFAULT_INVENTORY, allow_major=False, check=False, diff=False, limit=None,
            verbose=0, log_file=None, json=False, artifact_dir=None, allow_unreachable=False):
    """Roll every node and sentinel onto another release: build or ship it into its own versioned
    directory, then restart replicas one at a time, hand each master over with SENTINEL FAILOVER
    before its restart, and restart sentinels one at a time."""
    def work():
        if not version:
            raise UsageError("upgrade: --version is required (the release to run, such as 7.2.4)")
        return _code(cli.deploy(inventory, check=check, diff=diff, limit=limit, verbose=verbose > 0,
                                artifact_dir=artifact_dir, as_json=json, version=version, allow_major=allow_major),
                     allow_unreachable)
    _run(work, verbose, log_file, json)


@_task({"version": "the release to go back to (default: the one the hosts ran before, from their state files)"})
def rollback(c, inventory=DEFAULT_INVENTORY, version=None, allow_major=False, check=False, diff=False, limit=None,
             verbose=0, log_file=None, json=False, artifact_dir=None, allow_unreachable=False):
    """Go back to the release the hosts ran before the last upgrade, in the same rolling order
    (its binaries are still on the hosts)."""
    _run(lambda: _code(cli.deploy(inventory, check=check, diff=diff, limit=limit, verbose=verbose > 0,
                                  artifact_dir=artifact_dir, as_json=json, allow_major=allow_major,
                                  version=version or cli.previous_release(inventory, limit)), allow_unreachable),
         verbose, log_file, json)


@_task()
def verify(c, inventory=DEFAULT_INVENTORY, json=False, limit=None, verbose=0, log_file=None, allow_unreachable=False):
    """Check the deployment read-only (roles per the Sentinels' current view); exit 1 if any check fails."""
    _run(lambda: _verdict_code(cli.verify(inventory, as_json=json, limit=limit), allow_unreachable),
         verbose, log_file, json)


@_task()
def status(c, inventory=DEFAULT_INVENTORY, json=False, limit=None, verbose=0, log_file=None, allow_unreachable=False):
    """Live topology per group: master, replicas with lag, each sentinel's view."""
    _run(lambda: _verdict_code(cli.status(inventory, as_json=json, limit=limit), allow_unreachable),
         verbose, log_file, json)


def _verdict_code(verdict, allow_unreachable: bool) -> int:
    """An unreachable host makes its own checks fail: it is reported as unreachable (4), not as a
    failed check, when nothing else failed."""
    if verdict.unreachable and not verdict.ok:
        return EXIT_OK if allow_unreachable and verdict.only_unreachable else \
            (EXIT_UNREACHABLE if verdict.only_unreachable else EXIT_FAILED)
    return EXIT_OK if verdict.ok else EXIT_FAILED


@_task({"check": "show which master would hand over to which replicas; change nothing",
        "shard": "a Redis Cluster inventory: the shard to fail over (default: the first)"})
def failover(c, inventory=DEFAULT_INVENTORY, group=None, shard=None, check=False, yes=False, verbose=0,
             log_file=None):
    """Controlled switchover via SENTINEL FAILOVER (a cluster shard: CLUSTER FAILOVER on its
    freshest replica); waits until it is complete and prints the time. Outside the lab it asks
    first (or takes --yes)."""
    _run(lambda: bool(cli.failover(inventory, group, check=check, confirm=_confirm(yes), shard=shard)), verbose,
         log_file)


@_task({"host": "the node to promote (default: the freshest reachable one, by its last AOF append)",
        "allow_stale": "promote --host even when another reachable node is fresher",
        "check": "show the candidates and the choice; change nothing"})
def promote(c, inventory=DEFAULT_INVENTORY, group=None, host=None, allow_stale=False, check=False, verbose=0,
            log_file=None):
    """The named master's host is gone for good and every other node is fenced: promote the
    freshest reachable node through Sentinel (refuses a stale one unless --allow-stale)."""
    _run(lambda: cli.promote(inventory, group, host, allow_stale, check) is not None or check, verbose, log_file)


@_task({"mode": "kill, stop, partition, restart (kill -9 and start at once), reboot (the host) or cascade "
                "(every host of the group rebooted in turn)",
        "allow_reboot": "let --mode reboot/cascade reboot hosts that are not lab hosts",
        "allow_partition": "let --mode partition cut the network of a host that is not a lab host",
        "seconds": "how long a stopped or partitioned master stays away (default 10)",
        "order": "cascade: the master's place, replica,master,replica (default), master,replica,replica "
                 "or replica,replica,master",
        "spacing": "cascade: seconds between one host's reboot and the next (default 1)"})
def drill(c, inventory=DEFAULT_INVENTORY, mode="kill", seconds="10", group=None, allow_reboot=False,
          order="replica,master,replica", spacing="1", allow_partition=False, yes=False, verbose=0, log_file=None):
    """Fail the master under a writing client and measure: time to new master, unavailability,
    lost writes per kind, time with two writable masters. --mode kill|stop|partition|restart|reboot|
    cascade; outside the lab it asks first (or takes --yes), and rebooting a host that is not a lab
    host needs --allow-reboot."""
    _run(lambda: cli.drill(inventory, mode=mode, seconds=_seconds("seconds", seconds), group=group,
                           allow_reboot=allow_reboot, order=order, spacing=_seconds("spacing", spacing),
                           allow_partition=allow_partition, host_reboot=c.config.get(HOST_REBOOT_KEY),
                           confirm=_confirm(yes)).ok,
         verbose, log_file)


@_task()
def validate(c, inventory=DEFAULT_INVENTORY, json=False, verbose=0, log_file=None):
    """Check the inventory alone, offline: every problem at once as file:line: key: what was
    expected (--json: {file, line, path, message}); exit 2 when there is one."""
    _run(lambda: EXIT_BAD_INPUT if cli.validate(inventory, as_json=json) else EXIT_OK, verbose, log_file, json)


@_task({"host": "the inventory host whose files to show",
        "file": "only this file: its path or base name (redis-6379.conf, sentinel.conf, start-redis, ...)",
        "systemd": "as on a systemd host (units, Type=notify); default: as in the lab, started from rc.local"})
def render(c, host, inventory=DEFAULT_INVENTORY, file=None, systemd=False, verbose=0, log_file=None):
    """Offline: the files deploy would write on HOST as a new host (redis.conf, sentinel.conf,
    users.acl, units, the start guard, rc.local, sysctl), secrets masked."""
    _run(lambda: bool(cli.render_files(inventory, host, file, systemd)), verbose, log_file)


@_task({"list_hosts": "only list the hosts --limit selects, one per line",
        "json": "the roles and waves as JSON"})
def plan(c, inventory=DEFAULT_INVENTORY, limit=None, list_hosts=False, json=False, verbose=0, log_file=None):
    """Offline: who is master, replica and sentinel, and which hosts each wave of a fresh deploy
    takes."""
    _run(lambda: bool(cli.show_plan(inventory, limit, list_hosts, as_json=json)), verbose, log_file, json)


@_task({"path": "where to write the starter inventory (default inventory/prod.yml)"})
def init(c, path="inventory/prod.yml", verbose=0, log_file=None):
    """Write a commented starter inventory showing every key, with how to make its passwords."""
    _run(lambda: bool(cli.init(path)), verbose, log_file)


#: Config key under which a clone hands the drill its lab's way to reboot a host (drill.HostReboot).
HOST_REBOOT_KEY = "redis_provision_host_reboot"


def collection(host_reboot=None) -> Collection:
    """The tasks every install has (a clone adds `lab`, and the lab's reboot for the drill)."""
    tasks = Collection(init, validate, plan, render, deploy, upgrade, rollback, verify, status, failover, promote,
                       drill)
    if host_reboot is not None:
        tasks.configure({HOST_REBOOT_KEY: host_reboot})
    return tasks


#: Invoke's core flags that would look like the tool's own but do nothing to it, or worse:
#: -R/--dry promises "echo commands instead of running" while the run changes hosts for real.
#: Using one is refused as bad input (exit 2) before anything runs, never a real deploy.
INERT_CORE_FLAGS = {"dry": "-R/--dry", "echo": "-e/--echo", "warn-only": "-w/--warn-only",
                    "command-timeout": "-T/--command-timeout", "pty": "-p/--pty", "hide": "--hide",
                    "prompt-for-sudo-password": "--prompt-for-sudo-password", "list-depth": "-D/--list-depth"}


def parse_error_message(error: ParseError, task_names: list[str] = ()) -> str:
    """Invoke's parse error in the tool's words, with a did-you-mean from the flags it knows."""
    text = str(error)
    context = getattr(error, "context", None)
    unknown = text.split("'")[1] if text.startswith("No idea what '") else None
    where = f"{context.name}: " if context is not None and getattr(context, "name", None) else ""
    if unknown is None:
        return f"error: {where}{text}"
    what = "option" if unknown.startswith("-") else "task"
    known = sorted(context.flags) if what == "option" and context is not None else sorted(task_names)
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else (f"; the {what}s are {', '.join(known)}" if known else "")
    return f"error: {where}unknown {what} {unknown}{hint}"


class _Program(Program):
    """Invoke's Program, in this tool's voice: a flag it cannot parse is bad input (exit 2) with a
    did-you-mean; Invoke's core flags this tool does not honour are hidden from --help and
    refused when used; --help ends with the exit codes."""

    def parse_core(self, argv):
        # `TASK --help` anywhere after the task shows its help, even where a positional argument
        # would otherwise take "--help" as its value (render HOST).
        argv = list(sys.argv if argv is None else argv)
        names = set(self.namespace.task_names) if self.namespace is not None else set()
        task_at = next((index for index, word in enumerate(argv[1:], 1) if word in names), None)
        if task_at is not None and any(word in ("--help", "-h") for word in argv[task_at + 1:]):
            argv = [argv[0], "--help", argv[task_at]]
        try:
            super().parse_core(argv)
        except ParseError as error:
            raise Exit(parse_error_message(error), EXIT_BAD_INPUT)
        used = [flag for name, flag in INERT_CORE_FLAGS.items() if self.args[name].value]
        if used:
            hint = " (for a dry run: deploy --check --diff)" if self.args["dry"].value else ""
            raise Exit(f"error: {', '.join(used)}: Invoke's option, which this tool does not honour; "
                       f"not running{hint}", EXIT_BAD_INPUT)

    def parse_tasks(self):
        try:
            super().parse_tasks()
        except ParseError as error:
            raise Exit(parse_error_message(error, list(self.collection.task_names)), EXIT_BAD_INPUT)

    def print_help(self):
        print(f"Usage: {self.binary} [--help] [--version] <task> [--task-options] ...")
        print("")
        print("Options:")
        print("")
        # Only --help and --version: Invoke's -l/--list, -D/--list-depth and -F/--list-format
        # would read as the tasks' -l (limit) and -D (diff); the tasks are listed below anyway.
        shown = [row for row in self.initial_context.help_tuples()
                 if {"--help", "--version"} & {word.split("=")[0].split("[")[0] for word in row[0].split(", ")}]
        self.print_columns(shown)
        self.list_tasks()
        print(exit_codes_text())

    def print_task_help(self, name):
        super().print_task_help(name)
        print(exit_codes_text())


def exit_codes_text() -> str:
    return "Exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES) + "\n"


def _version() -> str:
    try:
        return metadata.version("redis-provision")
    except metadata.PackageNotFoundError:
        return "unknown"


program = _Program(namespace=collection(), name="redis-provision", binary="redis-provision", version=_version())
