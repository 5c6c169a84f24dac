"""Inventory validation: every bad inventory is refused with file, key path and line, before
any host is touched."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from provision import cli, inventory
from provision.ssh import remote
from provision.base.errors import InventoryError

SHA = "98066f5363504b26c34dd20fbcc3c957990d764cdf42576c836fc021073f4341"
ENVIRONMENT = {"PA": "admin-password-1", "PR": "replica-password-1", "PS": "sentinel-password-1",
               "PP": "app-password-1234"}


def base() -> dict:
    return {
        "hosts": {"a": {"address": "10.0.0.1"}, "b": {"address": "10.0.0.2"}, "c": {"address": "10.0.0.3"}},
        "redis": {"version": "7.0.15", "source": {"url": "https://example.invalid/redis-7.0.15.tar.gz", "sha256": SHA}},
        "groups": {"mymaster": {"master": "a", "replicas": ["b", "c"], "quorum": 2}},
        "sentinels": ["a", "b", "c"],
        "acl": {"admin": {"password_env": "PA"}, "replication": {"password_env": "PR"},
                "sentinel": {"password_env": "PS"},
                "users": {"app": {"password_env": "PP", "rules": "~app:* +@read"}}},
    }


def write(tmp_path, document, name="inv.yml") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return str(path)


def problems_of(tmp_path, document, environment=ENVIRONMENT) -> list[str]:
    path = write(tmp_path, document)
    with pytest.raises(InventoryError) as caught:
        inventory.load(path, environment)
    return caught.value.problems


def test_valid_inventory_loads_with_defaults(tmp_path):
    loaded = inventory.load(write(tmp_path, base()), ENVIRONMENT)
    assert [host.name for host in loaded.hosts] == ["a", "b", "c"]
    assert loaded.hosts[0].data_address == "10.0.0.1"
    assert loaded.groups[0].port == 6379 and loaded.groups[0].replicas == ("b", "c")
    assert loaded.acl.admin.password.value == "admin-password-1"
    assert dict(loaded.system.sysctl)["vm.overcommit_memory"] == 1
    assert loaded.redis.install_dir == "/app/redis"


def test_secret_values_never_appear_in_reprs(tmp_path):
    loaded = inventory.load(write(tmp_path, base()), ENVIRONMENT)
    assert "admin-password-1" not in repr(loaded)
    assert "admin-password-1" not in str(loaded.acl.admin.password)


def mutate(path, value=None, delete=False):
    def apply(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        if delete:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return document
    return apply


BAD = [
    ("unknown top-level key", mutate(("hostz",), {}), "hostz: unknown key"),
    ("unknown host key with hint", mutate(("hosts", "a", "adress"), "x"), "hosts.a.adress: unknown key (did you mean 'address'?)"),
    ("host without address", mutate(("hosts", "a", "address"), delete=True), "hosts.a.address: is required"),
    ("port not an integer", mutate(("hosts", "a", "port"), "twenty-two"), "hosts.a.port: expected an integer"),
    ("port out of range", mutate(("hosts", "a", "port"), 70000), "hosts.a.port: expected an integer of at least 1 and at most 65535"),
    ("sudo not a boolean", mutate(("hosts", "a", "sudo"), "yes please"), "hosts.a.sudo: expected true or false"),
    ("duplicate ssh address", mutate(("hosts", "b", "address"), "10.0.0.1"), "hosts.b.address: 10.0.0.1:22 is also the SSH address of host 'a'"),
    ("duplicate data address", mutate(("hosts", "c", "data_address"), "10.0.0.2"), "hosts.c.data_address: 10.0.0.2 is also the data address of host 'b'"),
    ("no hosts", mutate(("hosts",), {}), "hosts: expected a mapping of host name"),
    ("bad host name", mutate(("hosts", "bad name!"), {"address": "10.0.0.9"}), "hosts.bad name!: host names are"),
    ("version not quoted release", mutate(("redis", "version"), "7.0"), 'redis.version: expected a release such as "7.0.15"'),
    ("version a number", mutate(("redis", "version"), 7.0), "redis.version: expected a string"),
    ("malformed sha256", mutate(("redis", "source", "sha256"), "abc123"), "redis.source.sha256: expected 64 lowercase hex digits, got 'abc123' (6 characters)"),
    ("uppercase sha256", mutate(("redis", "source", "sha256"), SHA.upper()), "redis.source.sha256: expected 64 lowercase hex digits"),
    ("missing sha256", mutate(("redis", "source", "sha256"), delete=True), "redis.source.sha256: is required"),
    ("both url and tarball", mutate(("redis", "source", "tarball"), "/tmp/x.tar.gz"), "redis.source: give exactly one of url"),
    ("tarball that does not exist", lambda d: (d["redis"]["source"].pop("url"), mutate(("redis", "source", "tarball"), "/nonexistent/redis.tar.gz")(d))[1],
     "redis.source.tarball: no such file: /nonexistent/redis.tar.gz"),
    ("url not http", mutate(("redis", "source", "url"), "ftp://x/y.tgz"), "redis.source.url: expected an http(s) URL"),
    ("relative install dir", mutate(("redis", "install_dir"), "app/redis"), "redis.install_dir: expected an absolute directory"),
    ("sentinel port equals redis port", mutate(("redis", "sentinel_port"), 6379), "redis.sentinel_port: must differ from redis.port"),
    ("bad maxmemory", mutate(("redis", "maxmemory"), "lots"), "redis.maxmemory: expected a size"),
    ("bad eviction policy", mutate(("redis", "maxmemory_policy"), "lru"), "redis.maxmemory_policy: expected one of"),
    ("reserved directive in settings", mutate(("redis", "settings"), {"replicaof": "10.0.0.9 6379"}), "redis.settings.replicaof: replicaof is managed by the tool"),
    ("bad save", mutate(("redis", "save"), "every minute"), "redis.save: expected pairs"),
    ("master is also replica", mutate(("groups", "mymaster", "replicas"), ["a", "b", "c"]), "groups.mymaster.replicas.0: 'a' is this group's master"),
    ("replica listed twice", mutate(("groups", "mymaster", "replicas"), ["b", "b"]), "groups.mymaster.replicas.1: 'b' is listed twice"),
    ("unknown master host", mutate(("groups", "mymaster", "master"), "z"), "groups.mymaster.master: unknown host 'z'"),
    ("unknown replica host", mutate(("groups", "mymaster", "replicas"), ["b", "y"]), "groups.mymaster.replicas.1: unknown host 'y'"),
    ("missing quorum", mutate(("groups", "mymaster", "quorum"), delete=True), "groups.mymaster.quorum: is required"),
    ("quorum larger than sentinels", mutate(("groups", "mymaster", "quorum"), 4), "groups.mymaster.quorum: quorum 4 is larger than the 3 sentinels"),
    ("quorum unreachable when master host dies", mutate(("groups", "mymaster", "quorum"), 3),
     "groups.mymaster.quorum: when 'a' fails, 2 sentinel(s) remain; a failover needs the quorum (3)"),
    ("too few sentinels", mutate(("sentinels",), ["a", "b"]), "sentinels: 2 sentinel(s); at least 3"),
    ("sentinel unknown host", mutate(("sentinels",), ["a", "b", "q"]), "sentinels.2: unknown host 'q'"),
    ("sentinel listed twice", mutate(("sentinels",), ["a", "b", "b"]), "sentinels.2: 'b' is listed twice"),
    ("sentinels not a list", mutate(("sentinels",), "a,b,c"), "sentinels: expected a list"),
    ("min replicas above replica count", mutate(("groups", "mymaster", "min_replicas_to_write"), 3),
     "groups.mymaster.min_replicas_to_write: 3 is more than the group's 2 replicas"),
    ("max lag not under down-after", lambda d: (d["groups"]["mymaster"].update(down_after_milliseconds=5000,
                                                                             min_replicas_max_lag=5), d)[1],
     "groups.mymaster.min_replicas_max_lag: 5s is not shorter than down_after_milliseconds (5000ms)"),
    ("down-after shorter than a keeper needs", mutate(("groups", "mymaster", "down_after_milliseconds"), 1000),
     "groups.mymaster.down_after_milliseconds: expected an integer of at least 1500, got 1000"),
    ("no persistence at all", lambda d: (d["redis"].update(appendonly=False, save=""), d)[1],
     'redis.appendonly: appendonly: false with save: "" leaves no persistence'),
    ("missing secret env", mutate(("acl", "admin", "password_env"), "NOT_SET_ANYWHERE"), "acl.admin.password_env: environment variable NOT_SET_ANYWHERE is not set"),
    ("inline password", mutate(("acl", "replication"), {"password": "hunter2"}), "acl.replication.password: unknown key"),
    ("missing secret file", mutate(("acl", "sentinel"), {"password_file": "/nonexistent/secret"}), "acl.sentinel.password_file: cannot read /nonexistent/secret"),
    ("password inside rules", mutate(("acl", "users", "app", "rules"), "~app:* >hunter2 +@all"), "acl.users.app.rules: passwords do not go in rules"),
    ("nopass in rules", mutate(("acl", "users", "app", "rules"), "nopass ~* +@all"), "acl.users.app.rules: on/off/nopass/resetpass are set by the tool"),
    ("user named default", mutate(("acl", "users", "default"), {"password_env": "PP", "rules": "+@all"}), "the default user is disabled by the tool"),
    ("user name clash with built-in", mutate(("acl", "users", "admin"), {"password_env": "PP", "rules": "+@all"}), "user name 'admin' is used twice"),
    ("missing acl section", mutate(("acl",), delete=True), "acl: is required"),
    ("sysctl value not integer", mutate(("system",), {"sysctl": {"net.core.somaxconn": "lots"}}), "system.sysctl.net.core.somaxconn: expected an integer"),
    ("bad overcommit", mutate(("system",), {"sysctl": {"vm.overcommit_memory": 5}}), "system.sysctl.vm.overcommit_memory: expected 0, 1 or 2"),
    ("bad thp mode", mutate(("system",), {"transparent_hugepage": "off"}), "system.transparent_hugepage: expected one of never, madvise, always"),
    ("two groups same port on a host", lambda d: (d["groups"].__setitem__("other", {"master": "b", "replicas": ["a"], "quorum": 2}), d)[1],
     "host 'b' already serves group 'mymaster' on port 6379"),
    ("group port is sentinel port", mutate(("groups", "mymaster", "port"), 26379), "groups.mymaster.port: 26379 is the Sentinel port"),
    ("controller parallel zero", mutate(("controller",), {"parallel": 0}), "controller.parallel: expected an integer of at least 1"),
    # Injection into config files, templates and shells (each reaches one of them).
    ("rules that enable any password, in capitals", mutate(("acl", "users", "app", "rules"), "~* &* +@all NOPASS"),
     "acl.users.app.rules: on/off/nopass/resetpass are set by the tool"),
    ("rules with a newline and a second user", mutate(("acl", "users", "app", "rules"), "+get\nuser backdoor ON NOPASS ~* &* +@all"),
     "acl.users.app.rules: a newline or control character would start another ACL line"),
    ("rules with reset", mutate(("acl", "users", "app", "rules"), "reset ~* +@all"), "acl.users.app.rules: on/off/nopass/resetpass"),
    ("user name with rules in it", lambda d: (d["acl"]["users"].__setitem__("evil on nopass ~* &* +@all",
                                                                            {"password_env": "PP", "rules": "+get"}), d)[1],
     "expected an ACL user name"),
    ("built-in user name with a space", mutate(("acl", "admin", "name"), "ad min"), "acl.admin.name: expected an ACL user name"),
    ("setting value with a newline", mutate(("redis", "settings"), {"maxclients": '1000\nrename-command CONFIG ""'}),
     "redis.settings.maxclients: a newline or control character would start another directive"),
    ("data address with a newline", mutate(("hosts", "a", "data_address"), "10.0.0.1\nloadmodule /tmp/x.so"),
     "hosts.a.data_address: expected an IP address"),
    ("data address that does not resolve", mutate(("hosts", "a", "data_address"), "redis-a.example"),
     "hosts.a.data_address: 'redis-a.example' does not resolve to an IPv4 address on this controller"),
    ("SSH name that does not resolve, no data address", mutate(("hosts", "a", "address"), "nowhere.example"),
     "hosts.a.address: 'nowhere.example' does not resolve to an IPv4 address"),
    ("key file that does not exist", mutate(("hosts", "a", "key"), "keys/missing_ed25519"),
     "keys/missing_ed25519 is not a readable file (a private key; a relative path is taken from the inventory's"),
    ("ssh_config that does not exist", mutate(("controller",), {"ssh_config": "no-such-ssh-config"}),
     "controller.ssh_config: "),
    ("gateway with a shell word", mutate(("controller",), {"gateway": "jump;id"}),
     "controller.gateway: expected [user@]host[:port] or an ssh_config alias"),
    ("command timeout of zero", mutate(("controller",), {"command_timeout": 0}),
     "controller.command_timeout: expected seconds above 0"),
    ("install dir with a command substitution", mutate(("redis", "install_dir"), "/app/r$(touch /tmp/pwned)"),
     "redis.install_dir: expected an absolute directory: letters"),
    ("install dir with ..", mutate(("redis", "install_dir"), "/app/../etc/redis"), "redis.install_dir: expected an absolute directory"),
    ("group name ending in a newline", lambda d: (d["groups"].__setitem__("mymaster\n", d["groups"].pop("mymaster")), d)[1],
     "group names are letters"),
    ("sysctl key ending in a newline", mutate(("system",), {"sysctl": {"net.core.somaxconn\n": 1024}}),
     "expected a dotted sysctl key"),
    ("version ending in a newline", mutate(("redis", "version"), "7.0.15\n"), "redis.version: expected a release"),
    ("sha256 ending in a newline", mutate(("redis", "source", "sha256"), SHA + "\n"), "redis.source.sha256"),
    ("address out of range", mutate(("hosts", "a", "address"), "192.0.2.300"), "hosts.a.address: '192.0.2.300' is not a valid IPv4"),
    ("address with a port", mutate(("hosts", "a", "address"), "redis-a.example:2222"), "hosts.a.address: expected an address or host name without a port"),
    ("address that is an ssh option", mutate(("hosts", "a", "address"), "-oProxyCommand=sh"), "hosts.a.address: expected an IP address or host name"),
    ("loadmodule in settings", mutate(("redis", "settings"), {"loadmodule": "/tmp/evil.so"}), "redis.settings.loadmodule: loadmodule is managed by the tool"),
    ("old alias of an owned setting", mutate(("redis", "settings"), {"min-slaves-to-write": 0}), "redis.settings.min-slaves-to-write: min-slaves-to-write is managed"),
    ("version without ACL channel rules", mutate(("redis", "version"), "5.0.5"), "redis.version: 5.0.5 is too old"),
    ("negative connect timeout", mutate(("controller",), {"connect_timeout": -1}), "controller.connect_timeout: expected seconds above 0"),
    ("replica typo gets a did-you-mean", mutate(("groups", "mymaster", "replicas"), ["b", "cc"]),
     "groups.mymaster.replicas.1: unknown host 'cc'; did you mean 'c'?"),
    ("source of another release", mutate(("redis", "version"), "7.2.4"),
     "redis.source.url: names release 7.0.15, not 7.2.4"),
]


@pytest.mark.parametrize("label, change, expected", BAD, ids=[case[0] for case in BAD])
def test_bad_inventory_is_refused_naming_file_key_and_line(tmp_path, label, change, expected):
    document = change(copy.deepcopy(base()))
    problems = problems_of(tmp_path, document)
    matching = [problem for problem in problems if expected in problem]
    assert matching, f"expected {expected!r} in {problems}"
    assert matching[0].startswith(str(tmp_path / "inv.yml") + ":"), matching[0]
    assert matching[0].split(":")[1].isdigit(), f"no line number in {matching[0]!r}"


def test_duplicate_host_key_is_refused_with_its_line(tmp_path):
    text = yaml.safe_dump(base(), sort_keys=False).replace("  c:\n", "  b:\n", 1)
    problems = problems_of(tmp_path, text)
    expected_line = text.splitlines().index("  b:", text.splitlines().index("  b:") + 1) + 1
    assert any(p.startswith(f"{tmp_path / 'inv.yml'}:{expected_line}: hosts.b: duplicate key") for p in problems), problems


def test_line_number_points_at_the_offending_key(tmp_path):
    document = base()
    document["redis"]["source"]["sha256"] = "nothex"
    text = yaml.safe_dump(document, sort_keys=False)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "sha256: nothex" in l)
    problems = problems_of(tmp_path, text)
    assert any(p.startswith(f"{tmp_path / 'inv.yml'}:{line}: redis.source.sha256:") for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path):
    document = base()
    document["redis"]["source"]["sha256"] = "bad"
    document["sentinels"] = ["a"]
    document["hosts"]["a"]["port"] = "x"
    assert len(problems_of(tmp_path, document)) >= 3


def test_invalid_yaml_names_file_and_line(tmp_path):
    problems = problems_of(tmp_path, "hosts:\n  a: {address: [unclosed\n")
    assert problems[0].startswith(str(tmp_path / "inv.yml") + ":") and "not valid YAML" in problems[0]


def test_empty_file_is_refused(tmp_path):
    assert "the file is empty" in problems_of(tmp_path, "")[0]


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InventoryError, match="cannot read the inventory"):
        inventory.load(tmp_path / "absent.yml")


def test_password_file_secret_is_read_and_relative_to_the_inventory(tmp_path):
    (tmp_path / "admin.pw").write_text("file-password-123\n")
    (tmp_path / "admin.pw").chmod(0o600)
    document = base()
    document["acl"]["admin"] = {"password_file": "admin.pw"}
    loaded = inventory.load(write(tmp_path, document), ENVIRONMENT)
    assert loaded.acl.admin.password.value == "file-password-123"


@pytest.mark.parametrize("label, change, expected", BAD[:12] + BAD[24:36], ids=[c[0] for c in BAD[:12] + BAD[24:36]])
def test_bad_inventory_makes_no_ssh_connection(tmp_path, monkeypatch, label, change, expected):
    attempts = []
    monkeypatch.setattr(remote, "connect", lambda *a, **k: attempts.append(a))
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    path = write(tmp_path, change(copy.deepcopy(base())))
    with pytest.raises(InventoryError):
        cli.deploy(path, say=lambda _: None)
    assert attempts == []


def test_shipped_example_inventories_are_valid(monkeypatch, tmp_path):
    for variable in ("REDIS_ADMIN_PASSWORD", "REDIS_REPLICATION_PASSWORD", "REDIS_SENTINEL_PASSWORD", "REDIS_APP_PASSWORD"):
        monkeypatch.setenv(variable, f"{variable.lower()}-example")
    root = Path(__file__).parent.parent
    # A copy, with the key file the Vagrant example names (Vagrant makes it at `vagrant up`).
    copy_root = tmp_path / "clone"
    shutil.copytree(root / "inventory", copy_root / "inventory")
    home = tmp_path / "home"
    (home / ".vagrant.d").mkdir(parents=True)
    (home / ".vagrant.d" / "insecure_private_key").write_text("not a real key\n")
    monkeypatch.setenv("HOME", str(home))
    for name in ("prod.yml", "vagrant.yml"):
        loaded = inventory.load(copy_root / "inventory" / name)
        assert len(loaded.sentinels) == 3 and loaded.groups[0].name == "mymaster"


def test_groups_with_replicas_default_to_refusing_writes_when_cut_off(tmp_path):
    """min-replicas-to-write 1 and a max lag under down-after unless the inventory says otherwise;
    a lone master has no replica to wait for."""
    document = base()
    document["groups"]["mymaster"]["down_after_milliseconds"] = 5000
    document["groups"]["solo"] = {"master": "a", "replicas": [], "quorum": 2, "port": 6380}
    loaded = inventory.load(write(tmp_path, document), ENVIRONMENT)
    group, solo = loaded.groups
    assert (group.min_replicas_to_write, group.min_replicas_max_lag) == (1, 2)
    assert solo.min_replicas_to_write == 0


def test_explicit_zero_min_replicas_allows_any_lag(tmp_path):
    document = base()
    document["groups"]["mymaster"].update(min_replicas_to_write=0, min_replicas_max_lag=60)
    assert inventory.load(write(tmp_path, document), ENVIRONMENT).groups[0].min_replicas_to_write == 0


@pytest.mark.parametrize("password, accepted", [
    ("a-long-password-1", True), ('has"quote-inside1', False), ("'quoted-password1'", False),
    ("back\\slash-password", False), ("short1", False), ("with space password", False)])
def test_passwords_that_redis_conf_would_change_are_refused(tmp_path, password, accepted):
    environment = {**ENVIRONMENT, "PR": password}
    path = write(tmp_path, base())
    if accepted:
        assert inventory.load(path, environment).acl.replication.password.value == password
    else:
        with pytest.raises(InventoryError, match="acl.replication: the password from .PR must be 12 to 256 printable"):
            inventory.load(path, environment)


def test_unquoted_no_for_host_key_checking_means_no(tmp_path):
    document = base()
    document["controller"] = {"host_key_checking": False}      # what an unquoted `no` becomes in YAML
    assert inventory.load(write(tmp_path, document), ENVIRONMENT).controller.host_key_checking == "no"


def test_binary_password_file_is_a_problem_not_a_traceback(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)))
    secret.chmod(0o600)
    document = base()
    document["acl"]["admin"] = {"password_file": str(secret)}
    assert any("acl.admin.password_file: " in problem and "is not text" in problem
               for problem in problems_of(tmp_path, document))


HOSTILE_YAML = [
    ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9)),
     "aliases expanding"),
    ("not utf-8", b"hosts:\n  a: {address: \xff\xfe}\n", ":2: not UTF-8"),
    ("complex key", "hosts:\n  ? [a, b]\n  : {address: 10.0.0.1}\n", ":2: a key must be a plain name"),
    ("unknown tag", "hosts:\n  a: {address: !vault 10.0.0.1}\n", ":2: cannot read this value"),
    ("python tag", "hosts: !!python/object/apply:os.system [true]\n", ":1: cannot read this value"),
    ("deep nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    ("nul byte", "hosts:\n  a: {address: 10.0.0.1}\nredis:\x00\n", ":3: control character"),
    ("unclosed quote", 'hosts:\n  a: {address: "10.0.0.1}\nredis:\n  version: "7.0.15"\n' + "x: 1\n" * 20, ":2: not valid YAML"),
    ("huge file", "# " + "x" * (2 * 1024 * 1024) + "\n", "bytes; an inventory is refused above"),
]


@pytest.mark.parametrize("label, text, expected", HOSTILE_YAML, ids=[case[0] for case in HOSTILE_YAML])
def test_hostile_yaml_is_a_clear_problem_within_a_second(tmp_path, label, text, expected):
    import time
    path = tmp_path / "inv.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    started = time.monotonic()
    with pytest.raises(InventoryError) as caught:
        inventory.load(str(path), ENVIRONMENT)
    assert time.monotonic() - started < 1.0
    problems = caught.value.problems
    assert any(problem.startswith(str(path)) and expected in problem for problem in problems), problems


def test_relative_key_and_known_hosts_are_taken_from_the_inventorys_folder(tmp_path, monkeypatch):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("key\n")
    document = base()
    document["hosts"]["a"]["key"] = "keys/id_ed25519"
    document["controller"] = {"known_hosts": "state/known_hosts"}
    monkeypatch.chdir("/")                      # not where the inventory is
    loaded = inventory.load(write(tmp_path, document), ENVIRONMENT)
    assert loaded.host("a").key == str(tmp_path / "keys" / "id_ed25519")
    assert loaded.controller.known_hosts == str(tmp_path / "state" / "known_hosts")


def test_a_data_address_given_as_a_name_is_resolved_once_and_rendered_as_its_ip(tmp_path):
    from provision.core import plan as planner, render
    document = base()
    document["hosts"]["a"]["data_address"] = "redis-a.lan"          # tests' resolver: 10.0.0.21
    built = planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))
    assert built.inventory.host("a").data_address == "10.0.0.21"
    sentinel_conf = render.sentinel_conf(built, built.inventory.host("b"), {"mymaster": "10.0.0.21"})
    assert "sentinel monitor mymaster 10.0.0.21 6379 2" in sentinel_conf
    assert "redis-a.lan" not in sentinel_conf


def test_an_ssh_config_alias_takes_its_data_address_from_hostname(tmp_path):
    (tmp_path / "ssh_config").write_text("Host db-a\n  HostName 10.0.0.31\n  User deploy\n  Port 2222\n")
    document = base()
    document["controller"] = {"ssh_config": "ssh_config"}
    document["hosts"]["a"] = {"address": "db-a"}
    loaded = inventory.load(write(tmp_path, document), ENVIRONMENT)
    host = loaded.host("a")
    assert (host.address, host.data_address, host.user, host.port) == ("db-a", "10.0.0.31", None, None)


def test_host_and_group_redis_settings_override_the_global_ones_key_by_key(tmp_path):
    from provision.core import plan as planner, render
    document = base()
    document["redis"]["maxmemory"] = "1gb"
    document["redis"]["settings"] = {"maxclients": 5000, "timeout": 300}
    document["groups"]["mymaster"]["redis"] = {"settings": {"maxclients": 6000, "hz": 20}}
    document["hosts"]["b"]["redis"] = {"maxmemory": "8gb", "settings": {"maxclients": 7000}}
    built = planner.build(inventory.load(write(tmp_path, document), ENVIRONMENT))
    on_a = planner.node_redis(built.inventory, built.host_plan("a").nodes[0])
    on_b = planner.node_redis(built.inventory, built.host_plan("b").nodes[0])
    assert on_a.maxmemory == "1gb" and dict(on_a.extra_settings) == {"maxclients": "6000", "timeout": "300", "hz": "20"}
    assert on_b.maxmemory == "8gb" and dict(on_b.extra_settings)["maxclients"] == "7000"
    config_b = render.redis_conf(built, built.host_plan("b").nodes[0], None)
    assert "\nmaxmemory 8gb\n" in config_b and "\nmaxclients 7000\n" in config_b and "\nhz 20\n" in config_b


def test_a_wrong_override_is_named_where_it_was_written(tmp_path):
    document = base()
    document["hosts"]["b"]["redis"] = {"maxmemory": "lots", "settings": {"port": 7000}, "maxclient": 1}
    document["groups"]["mymaster"]["redis"] = {"settings": {"hz": [1]}}
    problems = problems_of(tmp_path, document)
    assert any("hosts.b.redis.maxmemory: expected a size such as 0, 256mb or 2gb, got 'lots'" in p for p in problems)
    assert any("hosts.b.redis.settings.port: port is managed by the tool" in p for p in problems)
    assert any("hosts.b.redis.maxclient" in p for p in problems)
    assert any("groups.mymaster.redis.settings.hz: expected a string or number, got a list" in p for p in problems)


@pytest.mark.parametrize("address, expected", [
    ("0.0.0.0", "wildcard"), ("224.0.0.251", "multicast"), ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"), ("10.0.0.0", "network or broadcast address of its /24"),
    ("10.0.0.255", "network or broadcast address of its /24"),
])
def test_an_address_that_is_not_one_hosts_unicast_address_is_refused(tmp_path, address, expected):
    document = base()
    document["hosts"]["a"]["data_address"] = address
    assert any(problem.endswith(expected) or expected in problem for problem in problems_of(tmp_path, document)
               if "hosts.a.data_address" in problem), problems_of(tmp_path, document)


def test_a_loopback_data_address_is_refused_but_a_loopback_ssh_address_is_not(tmp_path):
    document = base()
    document["hosts"]["a"]["data_address"] = "127.0.0.1"
    assert any("hosts.a.data_address" in p and "loopback" in p for p in problems_of(tmp_path, document))
    document = base()
    document["hosts"]["a"] = {"address": "127.0.0.1", "port": 2201, "data_address": "10.0.0.1"}
    assert inventory.load(write(tmp_path, document), ENVIRONMENT).host("a").address == "127.0.0.1"


@pytest.mark.parametrize("install_dir", ["/etc/.", "/usr/./local", "/app/redis/.", "/var/lib", "/"])
def test_a_path_is_checked_as_normalised(tmp_path, install_dir):
    document = base()
    document["redis"]["install_dir"] = install_dir
    assert any("redis.install_dir" in problem for problem in problems_of(tmp_path, document))


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    secret = tmp_path / "admin.pw"
    secret.write_text("file-password-123\n")
    secret.chmod(0o640)
    document = base()
    document["acl"]["admin"] = {"password_file": str(secret)}
    assert any("acl.admin.password_file" in p and "mode 640" in p for p in problems_of(tmp_path, document))


@pytest.mark.parametrize("name", ["../../etc", "a/b", ".."])
def test_a_name_used_as_a_path_must_be_a_plain_name(tmp_path, name):
    document = base()
    document["controller"] = {"network_namespace": name}
    assert any("controller.network_namespace" in p for p in problems_of(tmp_path, document))


@pytest.mark.parametrize("value, expected", [
    ("", "an empty value"), ('"unclosed', "an unbalanced quote"), ('"a"b', "closing quote must be followed"),
    ("'half", "an unbalanced quote"),
])
def test_a_setting_value_redis_would_refuse_at_start_is_refused(tmp_path, value, expected):
    document = base()
    document["redis"]["settings"] = {"notify-keyspace-events": value}
    assert any("redis.settings.notify-keyspace-events" in p and expected in p for p in problems_of(tmp_path, document))


def test_setting_values_redis_reads_are_kept():
    from provision.inventory import setting_value_problem
    for value in ('"Ex"', "Ex", '"a b" c', "'x y'", '"say \\"hi\\""', "300"):
        assert setting_value_problem(value) is None, value


def test_dangerous_settings_need_an_explicit_allowance(tmp_path):
    document = base()
    document["redis"]["settings"] = {"enable-debug-command": "local"}
    document["hosts"]["b"]["redis"] = {"settings": {"enable-module-command": "yes"}}
    found = problems_of(tmp_path, document)
    assert any("redis.settings.enable-debug-command" in p and "allow_dangerous_settings" in p for p in found)
    assert any("hosts.b.redis.settings.enable-module-command" in p for p in found)
    document["redis"]["allow_dangerous_settings"] = ["enable-debug-command", "enable-module-command"]
    loaded = inventory.load(write(tmp_path, document), ENVIRONMENT)
    assert ("enable-debug-command", "local") in loaded.redis.extra_settings


def test_an_indentation_slip_is_named_at_its_own_line_in_plain_words(tmp_path):
    path = tmp_path / "slip.yml"
    path.write_text("hosts:\n  a:\n    address: 10.0.0.1\n  b:\n    address: 10.0.0.2\n port: 22\nredis:\n  version: 7.0.15\n")
    with pytest.raises(InventoryError) as raised:
        inventory.load(str(path), ENVIRONMENT)
    problem = raised.value.problems[0]
    assert problem.startswith(f"{path}:6: not valid YAML: this line's indentation matches no key above it"), problem


def test_a_mistyped_limit_gets_a_did_you_mean(lab_like_plan):
    from provision.core import plan as planner
    with pytest.raises(KeyError, match=r"--limit: lab4x matches no host or group; did you mean lab4\?|did you mean"):
        planner.limit_hosts(lab_like_plan.inventory, ("lab4x",))
    with pytest.raises(KeyError, match="did you mean mymaster"):
        planner.limit_hosts(lab_like_plan.inventory, ("mymastr",))


def test_a_refused_group_brings_no_follow_on_complaint_about_sentinels(tmp_path):
    """The group's own mistake is the one to fix; 'sentinels watch the groups, and there are
    none' after it sent the reader after a second, imaginary one."""
    document = base()
    document["groups"]["mymaster"]["down_after_milliseconds"] = 1000
    problems = problems_of(tmp_path, document)
    assert len(problems) == 1 and "down_after_milliseconds" in problems[0], problems
