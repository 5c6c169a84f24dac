"""Get the wanted Redis version onto hosts: build once per platform, ship to the rest.

A build compiles for minutes; hosts of the same OS, version and architecture can run the same
binaries. So one host per platform compiles, the controller keeps the result in a local
artifact cache keyed by version + platform + source sha256, and every other host (now or in a
later run) receives the binaries instead of compiling. A source whose sha256 does not match is
refused before it is unpacked, and the current install is left as it was.
"""
from __future__ import annotations

import posixpath
import shlex
from dataclasses import replace
from pathlib import Path

from provision.base.digest import sha256_of_file
from provision.base.errors import HostError
from provision.facts.host import HostFacts, active_version
from provision.steps.hostrun import HostRun
from provision.core.state import HostState
from provision.steps.node import save_state

BUILD_PACKAGES = {"apt-get": "build-essential tar coreutils pkg-config libsystemd-dev",
                  "dnf": "gcc make tar coreutils pkgconf-pkg-config systemd-devel",
                  "yum": "gcc make tar coreutils pkgconfig systemd-devel"}
#: Built with libsystemd, so `supervised systemd` works (the units are Type=notify); the name
#: keeps artifacts from older builds without it out of the cache's way.
BUILD_FLAVOUR = "systemd"


def artifact_path(run: HostRun, facts: HostFacts) -> Path:
    source = run.plan.inventory.redis.source
    name = f"redis-{run.plan.inventory.redis.version}-{facts.platform}-{source.sha256[:16]}-{BUILD_FLAVOUR}.tar.gz"
    return run.options.artifact_dir / name


def needs_install(run: HostRun, facts: HostFacts) -> bool:
    return facts.installed_version != run.plan.inventory.redis.version


def ensure_build_tools(run: HostRun, facts: HostFacts) -> None:
    if not facts.missing_build_tools:
        return
    manager = facts.package_manager
    if manager not in BUILD_PACKAGES:
        raise HostError(run.name, run.step, "detect package manager",
                        f"missing build tools {', '.join(facts.missing_build_tools)} and no apt-get or dnf to install them")
    prefix = "DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive " if manager == "apt-get" else ""
    run.act(f"install build tools ({BUILD_PACKAGES[manager]}) with {manager}",
            f"{prefix}{manager} install -y {BUILD_PACKAGES[manager]}")


def compile_on_host(run: HostRun, facts: HostFacts) -> None:
    """Fetch or upload the source, verify it, compile, install into the version directory, and
    bring the binaries back to the controller's artifact cache."""
    run.act(f"build Redis {run.plan.inventory.redis.version} from source on this host (platform {facts.platform})",
            lambda: _compile(run, facts))


def _compile(run: HostRun, facts: HostFacts) -> None:
    redis = run.plan.inventory.redis
    layout = run.layout
    ensure_build_tools(run, facts)
    build_dir = layout.build_dir
    tarball = posixpath.join(build_dir, f"redis-{redis.version}.tar.gz")
    source_dir = posixpath.join(build_dir, f"redis-{redis.version}")
    q = shlex.quote
    run.remote.check(run.step, f"mkdir -p {q(build_dir)} && chmod 700 {q(build_dir)}")
    if redis.source.tarball:
        local_digest = sha256_of_file(redis.source.tarball)
        if local_digest != redis.source.sha256:
            raise HostError(run.name, run.step, f"sha256 {redis.source.tarball}",
                            f"sha256 mismatch: expected {redis.source.sha256}, got {local_digest}; refused, "
                            "nothing was uploaded and the installed version is untouched")
        run.remote.upload(run.step, redis.source.tarball, tarball, 0o600)
    else:
        run.remote.check(run.step, f"curl -fsSL --retry 2 -o {q(tarball)}.part {q(redis.source.url)} && "
                                   f"mv {q(tarball)}.part {q(tarball)}", timeout=600)
    check = run.remote.run(f"sha256sum {q(tarball)}")
    got = check.stdout.split()[0] if check.ok and check.stdout else "(unreadable)"
    if got != redis.source.sha256:
        run.remote.run(f"rm -f {q(tarball)}")
        raise HostError(run.name, run.step, f"sha256sum {tarball}",
                        f"sha256 mismatch: expected {redis.source.sha256}, got {got}; refused before unpacking, "
                        "the installed version is untouched")
    staging = layout.version_dir + ".partial"
    run.remote.check(run.step, f"rm -rf {q(source_dir)} {q(staging)} && mkdir -p {q(source_dir)} && "
                               f"tar -xzf {q(tarball)} -C {q(source_dir)} --strip-components=1")
    make = (f"cd {q(source_dir)} && make -j\"$(nproc)\" USE_SYSTEMD=yes > make.log 2>&1 || {{ tail -n 40 make.log >&2; exit 1; }}; "
            f"make install PREFIX={q(staging)} >> make.log 2>&1 || {{ tail -n 40 make.log >&2; exit 1; }}")
    run.remote.check(run.step, make)
    _activate_staged(run, staging)
    artifact = artifact_path(run, facts)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    remote_artifact = posixpath.join(build_dir, "artifact.tar.gz")
    run.remote.check(run.step, f"tar -czf {q(remote_artifact)} -C {q(layout.version_dir)} .")
    built_digest = run.remote.check(run.step, f"sha256sum {q(remote_artifact)}").stdout.split()[0]
    partial = artifact.with_suffix(".partial")
    run.remote.download(run.step, remote_artifact, str(partial))
    if sha256_of_file(partial) != built_digest:
        partial.unlink()
        raise HostError(run.name, run.step, f"download {remote_artifact}", "the artifact changed on its way to the "
                        "controller (sha256 differs from the host's); nothing was cached")
    digest_path(artifact).write_text(built_digest + "\n")
    partial.rename(artifact)
    run.remote.run(f"rm -rf {q(source_dir)} {q(remote_artifact)} {q(tarball)}")


def is_cached(artifact: Path) -> bool:
    """Built and recorded (an artifact from before checksums were recorded is built again)."""
    return artifact.exists() and digest_path(artifact).exists()


def digest_path(artifact: Path) -> Path:
    """The sha256 recorded when the artifact was built, beside it in the cache."""
    return artifact.with_name(artifact.name + ".sha256")


def recorded_digest(run: HostRun, artifact: Path) -> str:
    """The artifact's sha256 as recorded at build time, after checking the file still has it:
    every receiving host runs these binaries as root."""
    try:
        recorded = digest_path(artifact).read_text().strip()
    except OSError:
        recorded = ""
    if not recorded or sha256_of_file(artifact) != recorded:
        raise HostError(run.name, run.step, f"check {artifact}",
                        f"the cached artifact {'has no recorded sha256' if not recorded else 'does not match its recorded sha256'}; "
                        f"delete {artifact} to build it again")
    return recorded


def ship_to_host(run: HostRun, facts: HostFacts) -> None:
    """Install binaries built on another host of the same platform."""
    artifact = artifact_path(run, facts)
    run.act(f"install Redis {run.plan.inventory.redis.version} binaries from the build cache ({artifact.name})",
            lambda: _ship(run, artifact))


def _ship(run: HostRun, artifact) -> None:
    q = shlex.quote
    digest = recorded_digest(run, artifact)
    staging = run.layout.version_dir + ".partial"
    upload = posixpath.join(run.layout.install_dir, ".artifact.tar.gz")
    run.remote.check(run.step, f"mkdir -p {q(run.layout.install_dir)}/versions")
    run.remote.upload(run.step, str(artifact), upload, 0o600)
    checked = run.remote.run(f"echo {q(digest + '  ' + upload)} | sha256sum -c --quiet")
    if not checked.ok:
        run.remote.run(f"rm -f {q(upload)}")
        raise HostError(run.name, run.step, f"sha256sum -c {upload}", "the uploaded artifact does not match the sha256 "
                        f"recorded when it was built; nothing was unpacked. {checked.stdout}{checked.stderr}".strip())
    run.remote.check(run.step, f"rm -rf {q(staging)} && mkdir -p {q(staging)} && tar -xzf {q(upload)} -C {q(staging)} "
                               f"&& rm -f {q(upload)}")
    _activate_staged(run, staging)


def _activate_staged(run: HostRun, staging: str) -> None:
    """Check the staged binaries run and report the wanted version, then move them into place."""
    q = shlex.quote
    version = run.plan.inventory.redis.version
    result = run.remote.check(run.step, f"{q(staging)}/bin/redis-server --version")
    if f"v={version}" not in result.stdout:
        raise HostError(run.name, run.step, "redis-server --version",
                        f"built binaries report {result.stdout.strip()!r}, expected v={version}")
    run.remote.check(run.step, f"rm -rf {q(run.layout.version_dir)} && mv {q(staging)} {q(run.layout.version_dir)} && "
                               f"ln -sfn redis-server {q(run.layout.version_dir)}/bin/redis-sentinel.tmp && "
                               f"mv -Tf {q(run.layout.version_dir)}/bin/redis-sentinel.tmp "
                               f"{q(run.layout.version_dir)}/bin/redis-sentinel")


def activate(run: HostRun, facts: HostFacts) -> None:
    """Point <install_dir>/bin at the wanted version (an atomic symlink swap)."""
    target = posixpath.join("versions", run.plan.inventory.redis.version, "bin")
    if facts.active_bin == target:
        return
    run.act(f"switch {run.layout.bin_link} to {target} (was {facts.active_bin or 'absent'})",
            lambda: _switch_bin(run, facts, target))


def _switch_bin(run: HostRun, facts: HostFacts, target: str) -> None:
    q = shlex.quote
    link = run.layout.bin_link
    previous = active_version(facts.active_bin)
    if previous:
        # Remembered before the switch: `rollback` goes back to it.
        run.state = replace(run.state or HostState(), previous_version=previous)
        save_state(run)
    run.remote.check(run.step, f"ln -sfn {q(target)} {q(link)}.tmp && mv -Tf {q(link)}.tmp {q(link)}")
