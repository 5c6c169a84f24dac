"""The golden Debian tree every lab host overlays, and the Redis source the tests build.

Both come from Debian's archive through the machine's own apt sources, so the repository never
names a mirror. Each is built into a temporary name and renamed when complete, so an interrupted
build is never mistaken for a finished one.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from provision.base.digest import sha256_of_file as sha256_of
from lab.paths import LabPaths

# What a lab host needs to receive a deploy: sshd, a compiler and make for Redis, the usual
# userland (procps for sysctl/pkill, iproute2 for ss), sudo for a non-root deploy user.
GOLDEN_PACKAGES = (
    "openssh-server", "sudo", "build-essential", "pkg-config", "iproute2", "procps",
    "netbase", "curl", "ca-certificates", "less", "python3", "libsystemd-dev",
)
DEPLOY_USER = "ops"
LAB_HOST_COUNT_MAX = 40
REDIS_SOURCE_PACKAGE = "redis"
# Debian bookworm's copy of the upstream Redis 7.0.15 source (redis_7.0.15.orig.tar.gz).
REDIS_SOURCE_SHA256 = "4b1dc4ee6d622a09fff9c6777191209750fb5e5a725ef78ea012d6eef4c22982"
REDIS_SOURCE_VERSION = "7.0.15"

LAB_INIT = Path(__file__).with_name("lab_init.sh")


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, text=True, **kwargs)


def machine_apt_source() -> tuple[str, str]:
    """(mirror URI, suite) of the machine's main Debian archive, read from its apt sources."""
    codename = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            codename = line.split("=", 1)[1].strip().strip('"')
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and codename in suites:
                return fields["URIs"].split()[0], codename
    list_file = Path("/etc/apt/sources.list")
    if list_file.exists():
        for line in list_file.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == codename:
                return parts[1], codename
    raise RuntimeError(f"no apt source for suite {codename!r} in /etc/apt")


def golden_recipe() -> str:
    """What the tree was built from (kept in it, so a changed package list rebuilds it)."""
    return " ".join(GOLDEN_PACKAGES) + "\n"


def ensure_ssh_key(paths: LabPaths) -> Path:
    paths.cache_dir.mkdir(parents=True, exist_ok=True)
    if not paths.ssh_key.exists():
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "redis-provision-lab",
              "-f", str(paths.ssh_key)])
    return paths.ssh_key


def _prepare_tree(tree: Path, public_key: str) -> None:
    """Turn a plain debootstrap tree into a lab host image: key-only SSH for root and a
    sudo-capable deploy user, lab names in /etc/hosts, and the lab's PID 1."""
    def chroot(*argv: str, **kwargs) -> None:
        _run(["chroot", str(tree), *argv], **kwargs)

    for home, owner in ((tree / "root", None), (tree / "home" / DEPLOY_USER, DEPLOY_USER)):
        if owner and not home.exists():
            chroot("useradd", "-m", "-s", "/bin/bash", owner)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(public_key)
        (ssh_dir / "authorized_keys").chmod(0o600)
        if owner:
            chroot("chown", "-R", f"{owner}:{owner}", f"/home/{owner}/.ssh")
    sudoers = tree / "etc" / "sudoers.d" / DEPLOY_USER
    sudoers.write_text(f"{DEPLOY_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    (tree / "etc" / "ssh" / "sshd_config.d" / "lab.conf").write_text(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    hosts = ["127.0.0.1 localhost", "10.77.0.1 labgw"]
    hosts += [f"10.77.0.{10 + index} lab{index}" for index in range(1, LAB_HOST_COUNT_MAX + 1)]
    (tree / "etc" / "hosts").write_text("\n".join(hosts) + "\n")
    (tree / "etc" / "fstab").write_text("")
    shutil.copy(LAB_INIT, tree / "usr" / "local" / "sbin" / "lab-init")
    (tree / "usr" / "local" / "sbin" / "lab-init").chmod(0o755)
    chroot("apt-get", "clean")


def build_golden_tree(paths: LabPaths, log=print) -> Path:
    """Build the golden tree once (debootstrap, a few minutes); later calls return the cache."""
    key = ensure_ssh_key(paths)
    marker = paths.golden_tree / "etc" / "redis-provision-golden"
    if (paths.golden_tree / "usr" / "local" / "sbin" / "lab-init").exists():
        if marker.exists() and marker.read_text() == golden_recipe():
            return paths.golden_tree
        log("the golden tree was built from another package list; building it again")
        shutil.rmtree(paths.golden_tree)
    mirror, suite = machine_apt_source()
    building = paths.cache_dir / "golden-tree.building"
    shutil.rmtree(building, ignore_errors=True)
    log(f"building golden tree ({suite}) with debootstrap; this takes a few minutes")
    _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(GOLDEN_PACKAGES),
          suite, str(building), mirror], stdout=subprocess.DEVNULL)
    _prepare_tree(building, Path(str(key) + ".pub").read_text())
    (building / "etc" / "redis-provision-golden").write_text(golden_recipe())
    building.rename(paths.golden_tree)
    # A new tree has new host keys: what the lab's known_hosts files remember is no longer true.
    for known in ("lab_known_hosts", "vm_known_hosts"):
        (paths.cache_dir / known).unlink(missing_ok=True)
    log(f"golden tree ready: {paths.golden_tree}")
    return paths.golden_tree


def fetch_redis_source(paths: LabPaths, log=print) -> Path:
    """Debian's copy of the upstream Redis tarball, fetched with `apt-get source` through a
    private apt configuration (a deb-src twin of the machine's sources), so the machine's own
    apt state is left as it was. Verified against the known sha256 before it is cached."""
    wanted = paths.source_dir / f"redis-{REDIS_SOURCE_VERSION}.tar.gz"
    if wanted.exists() and sha256_of(wanted) == REDIS_SOURCE_SHA256:
        return wanted
    paths.source_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.cache_dir) as work_name:
        work = Path(work_name)
        parts = work / "sources.list.d"
        lists = work / "lists"
        (lists / "partial").mkdir(parents=True)
        parts.mkdir()
        for sources in Path("/etc/apt/sources.list.d").glob("*.sources"):
            text = re.sub(r"^Types:.*$", "Types: deb-src", sources.read_text(), flags=re.M)
            (parts / sources.name).write_text(text)
        options = ["-o", f"Dir::Etc::SourceParts={parts}", "-o", "Dir::Etc::SourceList=/dev/null",
                   "-o", f"Dir::State::Lists={lists}", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]
        log("fetching Redis source with apt-get source")
        _run(["apt-get", *options, "update", "-qq"], stdout=subprocess.DEVNULL)
        _run(["apt-get", *options, "source", "--download-only", "-qq", REDIS_SOURCE_PACKAGE],
             cwd=work, stdout=subprocess.DEVNULL)
        originals = list(work.glob(f"redis_{REDIS_SOURCE_VERSION}.orig.tar.*"))
        if not originals:
            raise RuntimeError(f"apt-get source gave no redis_{REDIS_SOURCE_VERSION}.orig tarball "
                               f"(got {sorted(p.name for p in work.iterdir())})")
        found = sha256_of(originals[0])
        if found != REDIS_SOURCE_SHA256:
            raise RuntimeError(f"{originals[0].name}: sha256 {found}, expected {REDIS_SOURCE_SHA256}")
        shutil.move(str(originals[0]), wanted)
    return wanted


def patched_release(paths: LabPaths, version: str) -> tuple[Path, str]:
    """A second release to upgrade to and roll back from, offline: the lab's Redis source with
    src/version.h saying `version` (same code, another version string). Cached beside the
    source; returns the tarball and its sha256."""
    if version == REDIS_SOURCE_VERSION or not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ValueError(f"expected a release other than {REDIS_SOURCE_VERSION}, got {version!r}")
    wanted = paths.source_dir / f"redis-{version}.tar.gz"
    if wanted.exists():
        return wanted, sha256_of(wanted)
    source = fetch_redis_source(paths)
    with tempfile.TemporaryDirectory(dir=paths.cache_dir) as work_name:
        work = Path(work_name)
        _run(["tar", "-xzf", str(source), "-C", str(work)])
        (unpacked,) = list(work.iterdir())
        header = unpacked / "src" / "version.h"
        text = header.read_text()
        patched = re.sub(r'#define REDIS_VERSION "[^"]+"', f'#define REDIS_VERSION "{version}"', text)
        if patched == text:
            raise RuntimeError(f"{header}: no REDIS_VERSION line to patch")
        header.write_text(patched)
        renamed = work / f"redis-{version}"
        unpacked.rename(renamed)
        partial = wanted.with_suffix(".partial")
        _run(["tar", "-czf", str(partial), "-C", str(work), renamed.name])
        partial.rename(wanted)
    return wanted, sha256_of(wanted)
