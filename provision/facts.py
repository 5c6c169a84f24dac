"""Every read-only probe of a host: a command and its parser (pure, so tested on captured
output). `gather` collects what a deploy needs up front in one round trip; the others are asked
when a step or a check needs them now. Replies of Redis itself are parsed in rediscli.py."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from provision.plan import Layout
from provision.remote import Remote

MARK = "@@provision:"


@dataclass(frozen=True)
class HostFacts:
    os_id: str
    os_version: str
    arch: str
    init_system: str
    active_bin: str | None
    installed_version: str | None
    missing_build_tools: tuple[str, ...]
    package_manager: str | None
    has_redis_user: bool
    has_sentinel_conf: bool = True    # conservative default: an existing sentinel keeps its identity

    @property
    def platform(self) -> str:
        """OS id, version and arch as the host reports them, reduced to a closed character set:
        the key becomes part of a path in the controller's artifact cache."""
        raw = f"{self.os_id}-{self.os_version}-{self.arch}"
        return re.sub(r"[^A-Za-z0-9._-]", "_", raw).lstrip(".") or "unknown"


BUILD_TOOLS = ("make", "gcc", "tar", "sha256sum")


def probe_script(layout: Layout) -> str:
    server = shlex.quote(f"{layout.version_dir}/bin/redis-server")
    return "; ".join([
        f"echo {MARK}platform", ". /etc/os-release; echo \"$ID|${VERSION_ID:-none}|$(uname -m)\"",
        f"echo {MARK}init", "cat /proc/1/comm",
        f"echo {MARK}active_bin", f"readlink {shlex.quote(layout.bin_link)} || true",
        f"echo {MARK}version", f"test -x {server} && {server} --version || true",
        f"echo {MARK}tools", "for t in " + " ".join(BUILD_TOOLS) + "; do command -v $t >/dev/null || echo $t; done",
        f"echo {MARK}package_manager", "command -v apt-get || command -v dnf || command -v yum || true",
        f"echo {MARK}redis_user", "id -u redis 2>/dev/null || true",
        f"echo {MARK}sentinel_conf", f"test -e {shlex.quote(layout.sentinel_conf)} && echo yes || true",
    ])


def parse(output: str) -> HostFacts:
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):]
            sections[current] = []
        elif current is not None and line.strip():
            sections[current].append(line.strip())
    os_id, os_version, arch = (sections.get("platform") or ["unknown|unknown|unknown"])[0].split("|")
    version_line = " ".join(sections.get("version", []))
    found = re.search(r"\bv=(\d+\.\d+\.\d+)", version_line)
    manager = (sections.get("package_manager") or [None])[0]
    return HostFacts(
        os_id=os_id, os_version=os_version, arch=arch,
        init_system=(sections.get("init") or ["unknown"])[0],
        active_bin=(sections.get("active_bin") or [None])[0],
        installed_version=found.group(1) if found else None,
        missing_build_tools=tuple(sections.get("tools", [])),
        package_manager=manager.rsplit("/", 1)[-1] if manager else None,
        has_redis_user=bool(sections.get("redis_user")),
        has_sentinel_conf=bool(sections.get("sentinel_conf")),
    )


def gather(remote: Remote, layout: Layout) -> HostFacts:
    return parse(remote.check("facts", probe_script(layout)).stdout)


THP_FILES = ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/mm/transparent_hugepage/defrag")


def parse_thp(text: str) -> str:
    """The active THP mode from `always madvise [never]` (kernel) or a plain `never`."""
    text = text.strip()
    if "[" in text:
        return text[text.index("[") + 1:text.index("]")]
    return text


def thp_modes(remote: Remote) -> dict[str, str]:
    """THP file → active mode ("?" when unreadable)."""
    lines = remote.run("cat " + " ".join(THP_FILES)).stdout.splitlines()
    return {path: parse_thp(text) if text.strip() else "?" for path, text in zip(THP_FILES, lines + [""] * 2)}


def sysctl_values(remote: Remote, keys: list[str]) -> dict[str, str]:
    """Live kernel values ("" when unreadable)."""
    values = remote.run("sysctl -n " + " ".join(shlex.quote(key) for key in keys)).stdout.split()
    return dict(zip(keys, values + [""] * len(keys)))


def pid_file(layout: Layout, port: int | None) -> str:
    """redis-server's pidfile for a port; the sentinel's for None."""
    return f"{layout.run_dir}/{'sentinel.pid' if port is None else f'redis-{port}.pid'}"


def running_pid(remote: Remote, layout: Layout, port: int | None) -> int | None:
    """PID of the redis-server (port) or redis-sentinel (None) when its pidfile names a live
    Redis process (a stale pidfile after a crash names nothing, or another process)."""
    path = shlex.quote(pid_file(layout, port))
    result = remote.run(f"p=$(cat {path} 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && "
                        f"tr '\\0' ' ' < /proc/$p/cmdline | grep -q redis && echo $p")
    return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else None


def file_modes(remote: Remote, paths) -> dict[str, tuple[str, str]]:
    """path → (octal mode, owner) for each path that exists; a symbolic link is reported as
    itself (stat does not follow it)."""
    result = remote.run("stat -c '%n %a %U' " + " ".join(shlex.quote(path) for path in paths))
    return {words[0]: (words[1], words[2]) for words in (line.split() for line in result.stdout.splitlines())
            if len(words) == 3}


def process_alive(remote: Remote, pid: int) -> bool:
    return remote.run(f"kill -0 {int(pid)} 2>/dev/null").ok
