"""Idempotent primitives: read the current state, compare with the wanted one, act only on the
difference, and record what changed. With --check they compare and record, and do nothing."""
from __future__ import annotations

import hashlib
import posixpath
import shlex

from provision.base import defaults
from provision.base.errors import HostError
from provision.steps.hostrun import HostRun
from provision.core.plan import Layout
from provision.ssh.remote import as_user_command, refuse_unless_plain_file

REDIS_USER = defaults.REDIS_USER


def redis_place(layout: Layout, path: str) -> bool:
    """The path lies in a directory the redis user can write (conf, data, logs, run): it could
    swap anything there for a link between a check and a use, so root reads and writes there only
    as the redis user, who then gets no more than it could do itself."""
    return any(path.startswith(directory + "/") for directory in
               (layout.conf_dir, layout.data_dir, layout.log_dir, layout.run_dir))


def _as(run: HostRun, path: str, command: str) -> str:
    return as_user_command(REDIS_USER if redis_place(run.layout, path) else None, command)


def _not_made_yet(run: HostRun, path: str) -> bool:
    """Under --check on a host the layout wave has not given its redis user yet: nothing in the
    redis user's directories can be read as that user, and nothing there is the tool's yet."""
    return run.options.check and run.facts is not None and not run.facts.has_redis_user \
        and redis_place(run.layout, path)


def read_file(run: HostRun, path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    if _not_made_yet(run, path):
        return None
    quoted = shlex.quote(path)
    result = run.remote.run(_as(run, path, refuse_unless_plain_file(quoted) +
                                f"if test -e {quoted}; then cat {quoted}; else exit 3; fi"))
    if result.exit_code == 3:
        return None
    if not result.ok:
        raise HostError(run.name, run.step, f"read {path}", result.stderr, result.exit_code)
    return result.stdout


def file_state(run: HostRun, path: str) -> tuple[str, str] | None:
    """(sha256, 'mode owner group') of a file, or None when absent."""
    if _not_made_yet(run, path):
        return None
    quoted = shlex.quote(path)
    result = run.remote.run(_as(run, path, refuse_unless_plain_file(quoted) +
                                f"test -f {quoted} || exit 3; sha256sum {quoted} && stat -c '%a %U %G' {quoted}"))
    if result.exit_code == 3:
        return None
    if not result.ok:
        raise HostError(run.name, run.step, f"stat {path}", result.stderr, result.exit_code)
    digest_line, stat_line = result.stdout.splitlines()[:2]
    return digest_line.split()[0], stat_line.strip()


def ensure_file(run: HostRun, path: str, content: str, mode: int, owner: str = "root", group: str | None = None) -> bool:
    """The file holds exactly `content` with this mode and owner. Writes are atomic. Diffs may
    hold passwords: everything printed goes through inventory.secret_masker."""
    group = group or owner
    wanted_meta = f"{mode:o} {owner} {group}"
    wanted_digest = hashlib.sha256(content.encode()).hexdigest()
    state = file_state(run, path)
    if state is not None and state[0] == wanted_digest:
        if state[1] == wanted_meta:
            return False
        # Written again rather than chmod by path, which follows a link swapped in meanwhile.
        run.act(f"set {path} to mode {mode:o} owner {owner}:{group} (was {state[1]})",
                lambda: install_file(run, path, content, mode, owner, group))
        return True
    before = read_file(run, path) if state is not None and run.options.diff else None
    action = f"write {path}" if state is not None else f"create {path}"
    run.act(action, lambda: install_file(run, path, content, mode, owner, group),
            before=before if state is not None else None, after=content if run.options.diff else None, path=path)
    return True


def install_file(run: HostRun, path: str, content: str, mode: int, owner: str = "root", group: str | None = None) -> None:
    """Write a file atomically and unconditionally: in a redis place as the redis user (the file
    is the redis user's, and root never writes where that user could plant a link); anywhere else
    as root."""
    group = group or owner
    if redis_place(run.layout, path):
        if owner != REDIS_USER or group != REDIS_USER:
            raise HostError(run.name, run.step, f"write {path}", f"a file in a redis-owned directory must be the "
                                                                 f"redis user's, not {owner}:{group}")
        run.remote.write_file(run.step, path, content.encode(), mode, owner, group, as_user=REDIS_USER)
    else:
        run.remote.write_file(run.step, path, content.encode(), mode, owner, group)


def ensure_dirs(run: HostRun, wanted: list[tuple[str, int, str]]) -> bool:
    """Each (path, mode, owner) exists as a directory with that mode and owner (group = owner).
    One round trip to read them all."""
    paths = " ".join(shlex.quote(path) for path, _, _ in wanted)
    result = run.remote.run(f"for d in {paths}; do if [ -L \"$d\" ]; then echo \"$d symlink\"; "
                            f"elif [ -d \"$d\" ]; then stat -c '%n %a %U %G' \"$d\"; "
                            f"elif [ -e \"$d\" ]; then echo \"$d not-a-directory\"; else echo \"$d absent\"; fi; done")
    current = {}
    for line in result.stdout.splitlines():
        path, _, meta = line.partition(" ")
        current[path] = meta
    commands = []
    for path, mode, owner in wanted:
        if current.get(path) in ("symlink", "not-a-directory"):
            raise HostError(run.name, run.step, f"ensure directory {path}",
                            f"{path} is {'a symbolic link' if current[path] == 'symlink' else 'not a directory'}; "
                            "refusing to follow or replace it (remove it by hand if it is not an attack)")
        meta = f"{mode:o} {owner} {owner}"
        if current.get(path) == meta:
            continue
        quoted = shlex.quote(path)
        if current.get(path, "absent") == "absent":
            run.record(f"create directory {path} ({mode:o} {owner})")
        else:
            run.record(f"set directory {path} to {mode:o} {owner} (was {current[path]})")
        if redis_place(run.layout, path):
            if owner != REDIS_USER:
                raise HostError(run.name, run.step, f"ensure directory {path}",
                                f"a directory inside the redis user's must be the redis user's, not {owner}'s")
            # made and set by the redis user itself: root never chmods a path that user can swap
            commands.append(as_user_command(REDIS_USER, f"mkdir -p {quoted} && chmod {mode:o} {quoted}"))
        else:
            commands.append(f"mkdir -p {quoted} && chown -h {shlex.quote(owner)}:{shlex.quote(owner)} {quoted} "
                            f"&& chmod {mode:o} {quoted}")
    if commands:
        run.act_quietly(" && ".join(commands))
    return bool(commands)


def ancestor_problems(stat_lines: str) -> list[str]:
    """From `stat -c '%n %U %a'` of every directory above install_dir: those not root's, or that
    group or others may write (they could swap install_dir, and root runs what is in it). A
    sticky directory of root's (/tmp) is safe: nobody else may rename or remove root's entries."""
    problems = []
    for line in stat_lines.splitlines():
        path, owner, mode = line.rsplit(" ", 2)
        bits = int(mode, 8)
        if owner != "root" or (bits & 0o022 and not bits & 0o1000):
            problems.append(f"{path} is {owner}'s, mode {mode}: only root may write the directories above "
                            "install_dir")
    return problems


def check_ancestors(run: HostRun) -> None:
    """install_dir's parents are root's and not writable by others, or nothing is laid out."""
    parents, path = [], posixpath.dirname(run.layout.install_dir)
    while True:
        parents.append(path)
        if path == "/":
            break
        path = posixpath.dirname(path)
    result = run.remote.run("stat -L -c '%n %U %a' " + " ".join(shlex.quote(p) for p in parents))
    problems = ancestor_problems("\n".join(line for line in result.stdout.splitlines() if line.strip()))
    if problems:
        raise HostError(run.name, run.step, f"check the directories above {run.layout.install_dir}",
                        "; ".join(problems))
