"""Security properties proven without the lab: the host-side commands run in a real local shell
on a real file system (a symlink planted where the redis user could plant one), and inventory
values that would inject into a config file, a template or a shell are refused."""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from provision import inventory
from provision.core import plan as planner
from provision.steps import primitives
from provision.base.errors import HostError
from provision.steps.hostrun import HostRun, RunOptions
from provision.ssh.remote import CommandResult, Remote
from tests.test_inventory import ENVIRONMENT, base, write


class LocalRemote(Remote):
    """Remote's own commands (write_file, check), run by a local shell instead of over SSH."""

    def __init__(self, host):
        super().__init__(host, connection=None)

    def run(self, command: str, stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, text=True, timeout=30)
        return CommandResult(command, done.returncode, done.stdout, done.stderr)


def _local_run(root):
    install = root / "app"
    for sub in ("conf", "data", "boot"):
        (install / sub).mkdir(parents=True)
    document = base()
    document["redis"]["install_dir"] = str(install)
    plan = planner.build(inventory.load(write(root, document), ENVIRONMENT))
    host_plan = plan.host_plan("a")
    return HostRun(LocalRemote(host_plan.host), plan, host_plan, RunOptions(), lambda _: None)


@pytest.fixture
def local_run(tmp_path):
    return _local_run(tmp_path)


@pytest.fixture
def nobody_root():
    """A folder every user can traverse (pytest's own are root's alone), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="rp-security-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def nobody_run(nobody_root, monkeypatch):
    """This machine has no redis user: `nobody` plays it, owning the redis places (conf, data)."""
    monkeypatch.setattr(primitives, "REDIS_USER", "nobody")
    run = _local_run(nobody_root)
    (nobody_root / "app").chmod(0o755)
    for sub in ("conf", "data"):
        os.chown(nobody_root / "app" / sub, pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
    return run


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_root_never_follows_a_symlink_planted_in_a_redis_owned_directory(nobody_run, nobody_root):
    local_run, tmp_path = nobody_run, nobody_root
    install = tmp_path / "app"
    protected_dir = tmp_path / "root-dir"
    protected_dir.mkdir(mode=0o755)
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$secret\n")
    shadow.chmod(0o600)
    (install / "data" / "6379").symlink_to(protected_dir)
    conf = install / "conf" / "redis-6379.conf"
    conf.symlink_to(shadow)

    with pytest.raises(HostError, match="symbolic link"):
        primitives.ensure_dirs(local_run, [(str(install / "data" / "6379"), 0o750, "root")])
    with pytest.raises(HostError, match="symbolic link"):
        primitives.read_file(local_run, str(conf))
    with pytest.raises(HostError, match="symbolic link"):
        primitives.ensure_file(local_run, str(conf), "port 6379\n", 0o640, "nobody", "nobody")
    assert stat.S_IMODE(protected_dir.stat().st_mode) == 0o755
    assert stat.S_IMODE(shadow.stat().st_mode) == 0o600 and shadow.read_text() == "root:$6$secret\n"


def test_an_atomic_write_replaces_a_symlink_instead_of_writing_through_it(local_run, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    link = tmp_path / "app" / "conf" / "users.acl"
    link.symlink_to(target)
    local_run.remote.write_file("test", str(link), b"user default off\n", 0o600, str(os.geteuid()),
                                str(os.getegid()), staging_dir=str(tmp_path / "app" / "boot"))
    assert not link.is_symlink() and link.read_text() == "user default off\n"
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    assert target.read_text() == "untouched\n"
    assert list((tmp_path / "app" / "boot").iterdir()) == []      # no temporary file left behind


def test_a_hostile_os_release_cannot_steer_the_artifact_cache_path():
    from provision.facts.host import HostFacts
    hostile = HostFacts(os_id="../../../../../tmp/evil", os_version="1", arch="x86_64", init_system="bash",
                        active_bin=None, installed_version=None, missing_build_tools=(), package_manager=None,
                        has_redis_user=True)
    assert "/" not in hostile.platform and not hostile.platform.startswith(".")


def test_a_cached_artifact_that_changed_since_its_build_is_refused(local_run, tmp_path):
    from provision.steps import build
    artifact = tmp_path / "redis-7.0.15-debian-12-x86_64.tar.gz"
    artifact.write_bytes(b"binaries as built")
    build.digest_path(artifact).write_text(build.sha256_of_file(artifact) + "\n")
    assert build.recorded_digest(local_run, artifact) == build.sha256_of_file(artifact)
    artifact.write_bytes(b"binaries someone swapped in")
    with pytest.raises(HostError, match="does not match its recorded sha256"):
        build.recorded_digest(local_run, artifact)
    build.digest_path(artifact).unlink()
    with pytest.raises(HostError, match="has no recorded sha256"):
        build.recorded_digest(local_run, artifact)


def test_an_upload_lands_in_a_private_directory_before_it_has_any_content(tmp_path):
    """SFTP creates files with the server's default mode; the staging directory is made 0700
    first, so the file is never readable by another user on the host, not even for a moment."""
    import io

    events = []

    class RecordingSftp:
        def mkdir(self, path, mode=0o777):
            events.append(("mkdir", path, mode))

        def chmod(self, path, mode):
            events.append(("chmod", path, mode))

    class RecordingConnection:
        def sftp(self):
            return RecordingSftp()

        def put(self, local, remote_path):
            events.append(("put", remote_path))

    class Recorded(LocalRemote):
        def run(self, command, stdin=None, timeout=None):
            events.append(("run", command))
            return CommandResult(command, 0, "", "")

    remote = Recorded(inventory.Host("a", "10.0.0.1", "10.0.0.1"))
    remote.connection = RecordingConnection()
    remote.upload("test", io.BytesIO(b"artifact"), "/app/redis/.artifact.tar.gz", 0o600)
    mkdir = next(event for event in events if event[0] == "mkdir")
    put = next(event for event in events if event[0] == "put")
    assert mkdir[2] == 0o700 and events.index(mkdir) < events.index(put)
    assert put[1].startswith(mkdir[1] + "/")
    assert events[-1] == ("run", f"rm -rf {mkdir[1]}")


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser needs root")
def test_a_write_into_a_redis_place_is_the_redis_users_even_when_it_wins_the_race_on_the_temporary_name(
        nobody_run, nobody_root, monkeypatch):
    """The finding: root restoring a config wrote its temporary file in conf/, and the redis user,
    swapping that name for a link between mktemp and the write, had root write its text into
    another file. Here a mktemp stand-in plants that link every time (the race always won): the
    write is the redis user's, so it cannot reach the root-only victim."""
    local_run, tmp_path = nobody_run, nobody_root
    victim = tmp_path / "victim"
    victim.write_text("root's own\n")
    victim.chmod(0o600)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(mode=0o755)
    (fake_bin / "mktemp").write_text(f"#!/bin/sh\nname=\"$(dirname \"$1\")/.raced\"\nln -sf {victim} \"$name\"\n"
                                     "echo \"$name\"\n")
    (fake_bin / "mktemp").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    conf = tmp_path / "app" / "conf" / "redis-6379.conf"
    with pytest.raises(HostError):
        primitives.install_file(local_run, str(conf), "masterauth hunter2\n", 0o640, "nobody", "nobody")
    assert victim.read_text() == "root's own\n"
    assert victim.stat().st_uid == 0 and stat.S_IMODE(victim.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser needs root")
def test_a_failed_start_reads_the_log_tail_as_the_redis_user(nobody_run, nobody_root, monkeypatch):
    """The finding: root ran tail on the redis-owned log path and followed a link to a root-only
    key, which then went into the error message and every log."""
    local_run, tmp_path = nobody_run, nobody_root
    from provision.steps import services
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    logs = tmp_path / "app" / "logs"
    logs.mkdir(mode=0o755)
    (logs / "redis-6379.log").symlink_to(key)
    assert "PRIVATE KEY" not in services.log_tail(local_run, 6379)


def test_nothing_in_a_redis_place_is_written_for_another_owner(local_run, tmp_path):
    with pytest.raises(HostError, match="must be the redis user's"):
        primitives.install_file(local_run, str(tmp_path / "app" / "conf" / "x.conf"), "x\n", 0o640, "root", "root")


def test_a_pidfile_naming_a_process_not_of_the_redis_user_is_not_believed(local_run, tmp_path):
    """The pidfile is the redis user's to write: naming root's process there must not get it
    signalled by root's stop."""
    from provision.facts import host as facts
    impostor = subprocess.Popen(["bash", "-c", "exec -a redis-server sleep 30"])
    try:
        time.sleep(0.2)
        run_dir = tmp_path / "app" / "run"
        run_dir.mkdir()
        (run_dir / "redis-6379.pid").write_text(f"{impostor.pid}\n")
        assert facts.running_pid(local_run.remote, local_run.layout, 6379) is None
    finally:
        impostor.kill()
        impostor.wait()


def test_a_directory_above_install_dir_that_others_can_write_stops_the_layout(tmp_path):
    """Whoever can write a parent of install_dir can swap install_dir itself, and root runs the
    start guard from it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    run = _local_run(shared)
    os.chmod(tmp_path, 0o755)
    with pytest.raises(HostError, match=f"{shared} is root's, mode 777: only root may write"):
        primitives.check_ancestors(run)
    shared.chmod(0o755)
    primitives.check_ancestors(run)
    assert primitives.ancestor_problems("/srv root 755\n/ root 755") == []
    assert primitives.ancestor_problems("/home/bob bob 755") == [
        "/home/bob is bob's, mode 755: only root may write the directories above install_dir"]
    assert primitives.ancestor_problems("/tmp root 1777") == []


def test_an_uploaded_file_is_installed_whole(tmp_path):
    """The upload's install once piped the copy into only the first command of its list, and
    wrote an empty file (an artifact then failed its sha256 on every host)."""
    from provision.ssh.remote import staged_install_command
    staging = tmp_path / "staged"
    staging.write_bytes(b"\x00binary\xffdata" * 1000)
    target = tmp_path / "target"
    done = subprocess.run(["sh", "-c", staged_install_command(str(staging), str(tmp_path), str(target), 0o640,
                                                              "root", "root")], capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == staging.read_bytes() and stat.S_IMODE(target.stat().st_mode) == 0o640
