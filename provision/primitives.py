"""Idempotent primitives: read the current state, compare with the wanted one, act only on the
difference, and record what changed. With --check they compare and record, and do nothing."""
from __future__ import annotations

import hashlib
import shlex

from provision.hostrun import HostRun


def read_file(run: HostRun, path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    quoted = shlex.quote(path)
    result = run.remote.run(f"if test -e {quoted}; then cat {quoted}; else exit 3; fi")
    if result.exit_code == 3:
        return None
    if not result.ok:
        run.remote.check(run.step, f"cat {quoted}")
    return result.stdout


def file_state(run: HostRun, path: str) -> tuple[str, str] | None:
    """(sha256, 'mode owner group') of a file, or None when absent."""
    quoted = shlex.quote(path)
    result = run.remote.run(f"test -f {quoted} && sha256sum {quoted} && stat -c '%a %U %G' {quoted}")
    if not result.ok:
        return None
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
        run.record(f"set {path} to mode {mode:o} owner {owner}:{group} (was {state[1]})")
        if not run.options.check:
            quoted = shlex.quote(path)
            run.remote.check(run.step, f"chown {shlex.quote(owner)}:{shlex.quote(group)} {quoted} && chmod {mode:o} {quoted}")
        return True
    before = read_file(run, path) if state is not None and run.options.diff else None
    action = f"write {path}" if state is not None else f"create {path}"
    run.record(action, before=before if state is not None else None, after=content if run.options.diff else None,
               path=path)
    if not run.options.check:
        run.remote.write_file(run.step, path, content.encode(), mode, owner, group)
    return True


def ensure_dirs(run: HostRun, wanted: list[tuple[str, int, str]]) -> bool:
    """Each (path, mode, owner) exists as a directory with that mode and owner (group = owner).
    One round trip to read them all."""
    paths = " ".join(shlex.quote(path) for path, _, _ in wanted)
    result = run.remote.run(f"for d in {paths}; do if [ -d \"$d\" ]; then stat -c '%n %a %U %G' \"$d\"; "
                            f"else echo \"$d absent\"; fi; done")
    current = {}
    for line in result.stdout.splitlines():
        path, _, meta = line.partition(" ")
        current[path] = meta
    commands = []
    for path, mode, owner in wanted:
        meta = f"{mode:o} {owner} {owner}"
        if current.get(path) == meta:
            continue
        quoted = shlex.quote(path)
        if current.get(path, "absent") == "absent":
            run.record(f"create directory {path} ({mode:o} {owner})")
        else:
            run.record(f"set directory {path} to {mode:o} {owner} (was {current[path]})")
        commands.append(f"mkdir -p {quoted} && chown {shlex.quote(owner)}:{shlex.quote(owner)} {quoted} "
                        f"&& chmod {mode:o} {quoted}")
    if commands and not run.options.check:
        run.remote.check(run.step, " && ".join(commands))
    return bool(commands)
