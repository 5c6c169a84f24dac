"""Read-only probes of a host, gathered in one round trip: a script that prints sections, and a
parser for its output (pure, so it is tested on captured output)."""
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

    @property
    def platform(self) -> str:
        return f"{self.os_id}-{self.os_version}-{self.arch}"


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
    )


def gather(remote: Remote, layout: Layout) -> HostFacts:
    return parse(remote.check("facts", probe_script(layout)).stdout)
