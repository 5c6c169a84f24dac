"""Every read-only probe of a host: a command and its parser (pure, so tested on captured
output). `gather` collects what a deploy needs up front in one round trip; the others are asked
when a step or a check needs them now. Replies of Redis itself are parsed in rediscli.py."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from provision.base import defaults
from provision.core.plan import Layout
from provision.ssh.remote import Remote

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
    processes: tuple["RedisProcess", ...] = ()   # every redis-server/redis-sentinel running on the host
    state_text: str = ""              # the tool's state file (provision/state.py), "" when absent

    def process_on(self, port: int) -> "RedisProcess | None":
        """The process listening on `port` (a redis-server's, or the sentinel's port)."""
        return next((process for process in self.processes if process.port == port), None)

    @property
    def platform(self) -> str:
        """OS id, version and arch as the host reports them, reduced to a closed character set:
        the key becomes part of a path in the controller's artifact cache."""
        raw = f"{self.os_id}-{self.os_version}-{self.arch}"
        return re.sub(r"[^A-Za-z0-9._-]", "_", raw).lstrip(".") or "unknown"


@dataclass(frozen=True)
class RedisProcess:
    """A running redis-server or redis-sentinel, as /proc shows it: the binary it runs (resolved,
    so the version directory shows) and the address:port of its process title."""
    pid: int
    exe: str
    address: str
    port: int
    sentinel: bool

    def version(self, install_dir: str) -> str | None:
        return release_of(self.exe, install_dir)


def release_of(exe: str, install_dir: str) -> str | None:
    """The release a binary belongs to, when it is one of `install_dir`'s versions."""
    prefix = install_dir.rstrip("/") + "/versions/"
    if not exe.startswith(prefix):
        return None
    return exe[len(prefix):].split("/", 1)[0]


def active_version(active_bin: str | None) -> str | None:
    """The release <install_dir>/bin points at (`versions/7.0.15/bin`)."""
    parts = (active_bin or "").strip("/").split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "versions" and parts[2] == "bin" else None


BUILD_TOOLS = ("make", "gcc", "tar", "sha256sum", "pkg-config")
SYSTEMD_HEADER = "/usr/include/systemd/sd-daemon.h"

# One line per process whose binary is a redis-server (redis-sentinel is a link to it):
# pid, resolved binary ("(deleted)" when its version directory was replaced) and process title.
PROCESS_PROBE = ("for d in /proc/[0-9]*; do e=$(readlink \"$d/exe\" 2>/dev/null) || continue; "
                 "case \"$e\" in */redis-server|*/redis-server\\ \\(deleted\\)) "
                 "printf '%s|%s|%s\\n' \"${d#/proc/}\" \"$e\" \"$(tr '\\0' ' ' < \"$d/cmdline\")\";; esac; done")


def probe_script(layout: Layout) -> str:
    server = shlex.quote(f"{layout.version_dir}/bin/redis-server")
    return "; ".join([
        f"echo {MARK}platform", ". /etc/os-release; echo \"$ID|${VERSION_ID:-none}|$(uname -m)\"",
        f"echo {MARK}init", "cat /proc/1/comm",
        f"echo {MARK}active_bin", f"readlink {shlex.quote(layout.bin_link)} || true",
        f"echo {MARK}version", f"test -x {server} && {server} --version || true",
        f"echo {MARK}tools", "for t in " + " ".join(BUILD_TOOLS) + "; do command -v $t >/dev/null || echo $t; done; "
        # Redis's `supervised systemd` (the units' Type=notify) needs it built against libsystemd.
        f"test -e {SYSTEMD_HEADER} || echo libsystemd-headers",
        f"echo {MARK}package_manager", "command -v apt-get || command -v dnf || command -v yum || true",
        f"echo {MARK}redis_user", "id -u redis 2>/dev/null || true",
        f"echo {MARK}sentinel_conf", f"test -e {shlex.quote(layout.sentinel_conf)} && echo yes || true",
        f"echo {MARK}processes", PROCESS_PROBE,
        f"echo {MARK}state", f"cat {shlex.quote(layout.state_file)} 2>/dev/null || true",
    ])


def parse_processes(lines: list[str]) -> tuple[RedisProcess, ...]:
    found = []
    for line in lines:
        parts = line.split("|", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        pid, exe, title = parts
        words = title.split()
        address, _, port = (words[1] if len(words) > 1 else "").rpartition(":")
        if not port.isdigit():
            continue
        found.append(RedisProcess(int(pid), exe.removesuffix(" (deleted)"), address, int(port),
                                  "[sentinel]" in words))
    return tuple(found)


def parse(output: str) -> HostFacts:
    sections: dict[str, list[str]] = {}
    raw: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):]
            sections[current] = []
            raw[current] = []
        elif current is not None:
            raw[current].append(line)
            if line.strip():
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
        processes=parse_processes(sections.get("processes", [])),
        state_text="\n".join(raw.get("state", [])),
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
    return layout.pidfile(port)


def running_pid(remote: Remote, layout: Layout, port: int | None) -> int | None:
    """PID of the redis-server (port) or redis-sentinel (None) when its pidfile names a live
    Redis process (a stale pidfile after a crash names nothing, or another process)."""
    path = shlex.quote(pid_file(layout, port))
    # The pidfile is the redis user's to write: the pid counts only for a process of that user
    # running Redis, so root never signals another process the file names.
    result = remote.run(f"p=$(cat {path} 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && "
                        f"[ \"$(stat -c %U /proc/$p)\" = {defaults.REDIS_USER} ] && "
                        f"tr '\\0' ' ' < /proc/$p/cmdline | grep -q redis && echo $p")
    return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else None


def keeper_script(remote: Remote, layout: Layout, port: int) -> str | None:
    """The sha256 of the start-redis the node's keeper runs ("" for a keeper of a release that
    did not say it); None when no keeper holds its lock (flock -n fails while one does)."""
    lock = shlex.quote(layout.keeper_lock(port))
    digest = shlex.quote(layout.keeper_script_digest(port))
    result = remote.run(f"[ -e {lock} ] && ! flock -n {lock} true && {{ cat {digest} 2>/dev/null; true; }}")
    return parse_keeper_digest(result.stdout) if result.ok else None


def parse_keeper_digest(text: str) -> str:
    words = text.split()
    return words[0] if len(words) == 1 and len(words[0]) == 64 else ""


def file_modes(remote: Remote, paths) -> dict[str, tuple[str, str]]:
    """path → (octal mode, owner) for each path that exists; a symbolic link is reported as
    itself (stat does not follow it)."""
    result = remote.run("stat -c '%n %a %U' " + " ".join(shlex.quote(path) for path in paths))
    return {words[0]: (words[1], words[2]) for words in (line.split() for line in result.stdout.splitlines())
            if len(words) == 3}


def runs_systemd(remote: Remote) -> bool:
    """systemd is PID 1 (what `gather` reads as init_system, for callers without the facts)."""
    return remote.run("cat /proc/1/comm").stdout.strip() == "systemd"


def process_alive(remote: Remote, pid: int) -> bool:
    return remote.run(f"kill -0 {int(pid)} 2>/dev/null").ok


def process_exe(remote: Remote, pid: int) -> str | None:
    """The binary a process runs, resolved (its version directory shows)."""
    result = remote.run(f"readlink /proc/{int(pid)}/exe")
    return result.stdout.strip().removesuffix(" (deleted)") or None if result.ok else None


def defaults_probe(layout: Layout, names: list[str]) -> str:
    """Start a throwaway redis-server of the active release on a private socket (no TCP port, no
    persistence, in a temporary directory), CONFIG GET the names, stop it."""
    server = shlex.quote(layout.binary("redis-server"))
    cli = shlex.quote(layout.binary("redis-cli"))
    wanted = " ".join(shlex.quote(name) for name in names)
    return (f"d=$(mktemp -d) && trap 'kill $(cat \"$d/pid\" 2>/dev/null) 2>/dev/null; rm -rf \"$d\"' EXIT && "
            f"{server} --port 0 --unixsocket \"$d/s\" --unixsocketperm 700 --dir \"$d\" --save '' "
            "--appendonly no --daemonize yes --pidfile \"$d/pid\" --logfile \"$d/log\" && "
            "for i in $(seq 100); do test -S \"$d/s\" && break; sleep 0.02; done && "
            f"for n in {wanted}; do {cli} -s \"$d/s\" CONFIG GET \"$n\"; done")


def parse_config_get(output: str) -> dict[str, str]:
    """CONFIG GET replies (name, value, name, value…; one per line) as a dict."""
    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return {lines[index]: lines[index + 1] for index in range(0, len(lines) - 1, 2)}
