"""The pure core: plan, render, config comparison and patching, fact and reply parsers."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from provision.core import confparse, plan as planner, render
from provision.facts import host as facts, rediscli, topology
from provision import inventory
from provision.steps import sentinel as sentinel_step
from provision.facts.host import parse_thp

CAPTURED = Path(__file__).parent / "captured"


def test_plan_marks_initial_master_replicas_and_sentinels(lab_like_plan):
    lab1, lab2 = lab_like_plan.host_plan("lab1"), lab_like_plan.host_plan("lab2")
    assert lab1.nodes[0].starts_as_master and not lab2.nodes[0].starts_as_master
    assert lab2.nodes[0].initial_master.name == "lab1"
    assert [h.name for h in lab_like_plan.sentinel_hosts] == ["lab1", "lab2", "lab3"]


def test_plan_limit_keeps_only_named_hosts_and_rejects_unknown(lab_like_plan):
    limited = planner.build(lab_like_plan.inventory, ("lab2",))
    assert [h.host.name for h in limited.hosts] == ["lab2"]
    with pytest.raises(KeyError):
        planner.build(lab_like_plan.inventory, ("nope",))


def test_limit_takes_group_names_and_globs_and_names_a_pattern_that_matches_nothing(lab_like_plan):
    inventory = lab_like_plan.inventory
    assert planner.limit_hosts(inventory, ("mymaster",)) == ("lab1", "lab2", "lab3")
    assert planner.limit_hosts(inventory, ("lab[23]",)) == ("lab2", "lab3")
    assert planner.limit_hosts(inventory, ("lab3", "lab1")) == ("lab1", "lab3")   # inventory order
    assert planner.limit_hosts(inventory, ("my*",)) == ("lab1", "lab2", "lab3")  # a glob over group names
    with pytest.raises(KeyError, match="db-\\* matches no host or group"):
        planner.limit_hosts(inventory, ("lab1", "db-*"))


def test_replica_config_has_replicaof_and_master_auth_on_every_node(lab_like_plan):
    replica = lab_like_plan.host_plan("lab2").nodes[0]
    text = render.redis_conf(lab_like_plan, replica, lab_like_plan.inventory.host("lab1"))
    assert "replicaof 10.77.0.11 6379" in text
    master_text = render.redis_conf(lab_like_plan, lab_like_plan.host_plan("lab1").nodes[0], None)
    assert "replicaof" not in master_text.replace("`replicaof`", "")
    for config in (text, master_text):
        assert "masteruser replicator" in config and "masterauth replication-password-1" in config
        assert "bind " in config and "aclfile /app/redis/conf/users.acl" in config and "disable-thp yes" in config


def test_acl_file_disables_default_user_and_stores_only_hashes(lab_like_plan):
    text = render.acl_file(lab_like_plan)
    default = text.splitlines()[0].split()
    # Off and without any password (nobody logs in as it), but with +@all: Redis 7.0 re-checks
    # EXEC against the default user while loading the AOF (redis/redis#14541).
    assert default[:4] == ["user", "default", "off", "resetpass"] and "+@all" in default
    assert not any(word in ("on", "nopass") or word.startswith((">", "#")) for word in default)
    assert "admin-password-1" not in text
    assert "#" + render.password_hash("admin-password-1") in text
    replication = next(line for line in text.splitlines() if line.startswith("user replicator "))
    assert replication.endswith("+psync +replconf +ping")


def test_new_sentinels_start_with_their_own_ids_and_know_the_other_new_ones(lab_like_plan):
    """A sentinel created in a run gets a myid derived from its address (unique per host, 40 hex
    digits as Sentinel requires) and a known-sentinel line for every other sentinel created in
    the same run, so the set is complete at start; existing sentinels are never named."""
    hosts = [lab_like_plan.inventory.host(name) for name in ("lab1", "lab2", "lab3")]
    text = render.sentinel_conf(lab_like_plan, hosts[1], {"mymaster": "10.77.0.11"}, new_peers=(hosts[1], hosts[2]))
    ids = {host.name: render.sentinel_id(lab_like_plan, host) for host in hosts}
    assert len(set(ids.values())) == 3 and all(re.fullmatch(r"[0-9a-f]{40}", value) for value in ids.values())
    assert f"sentinel myid {ids['lab2']}" in text
    assert f"sentinel known-sentinel mymaster 10.77.0.13 26379 {ids['lab3']}" in text
    assert "known-sentinel mymaster 10.77.0.11" not in text and "known-sentinel mymaster 10.77.0.12" not in text
    assert "sentinel monitor mymaster 10.77.0.11 6379 2" in text and "sentinel auth-user mymaster sentinel" in text
    owned_keys = {directive.key[:2] for directive in render.sentinel_owned_directives(lab_like_plan, hosts[1])}
    assert ("sentinel", "myid") not in owned_keys and ("sentinel", "known-sentinel") not in owned_keys


def test_sentinels_listing_parses_into_one_record_per_peer():
    listing = "name\nabc\nip\n10.77.0.12\nport\n26379\nflags\nsentinel\nname\ndef\nip\n10.77.0.13\nport\n" \
              "26379\nflags\nsentinel,disconnected\n"
    records = rediscli.parse_records(listing, "name")
    assert [(r["ip"], r["flags"]) for r in records] == [("10.77.0.12", "sentinel"), ("10.77.0.13", "sentinel,disconnected")]


def test_redis_config_rewritten_after_failover_shows_no_owned_change(lab_like_plan):
    """The file Redis rewrote itself (CONFIG REWRITE at failover: save split in lines, quotes,
    a replicaof the tool never wrote) matches the tool's settings."""
    current = (CAPTURED / "redis-after-failover.conf").read_text()
    wanted = render.redis_owned_directives(lab_like_plan, lab_like_plan.host_plan("lab1").nodes[0])
    assert confparse.differing_keys(current, wanted) == []


def test_changed_setting_is_patched_in_place_keeping_runtime_lines(lab_like_plan):
    current = (CAPTURED / "redis-after-failover.conf").read_text()
    changed_plan = planner.build(inventory.Inventory(**{**lab_like_plan.inventory.__dict__,
        "redis": inventory.RedisSettings(**{**lab_like_plan.inventory.redis.__dict__, "maxmemory": "256mb"})}))
    wanted = render.redis_owned_directives(changed_plan, changed_plan.host_plan("lab1").nodes[0])
    keys = confparse.differing_keys(current, wanted)
    assert keys == [("maxmemory",)]
    patched = confparse.patch(current, wanted, keys)
    assert "maxmemory 256mb" in patched and "maxmemory 128mb" not in patched
    assert "replicaof 10.77.0.13 6379" in patched
    assert patched.count("\n") == current.count("\n")


def test_sentinel_state_file_matches_owned_settings_with_defaults_left_out(lab_like_plan):
    """Sentinel dropped `parallel-syncs 1` (its default) and moved the monitor to the new master."""
    current = render.sentinel_current_settings((CAPTURED / "sentinel-after-failover.conf").read_text())
    owned = render.sentinel_owned_directives(lab_like_plan, lab_like_plan.inventory.host("lab1"))
    assert sentinel_step._differs_all(current, owned) == [("user",), ("sentinel", "sentinel-user"), ("sentinel", "sentinel-pass")]
    # (that capture predates Sentinel authentication: its users and peer auth are what differ)


def test_sentinel_quorum_change_is_detected_but_monitor_address_is_not_owned(lab_like_plan):
    current = render.sentinel_current_settings((CAPTURED / "sentinel-after-failover.conf").read_text())
    group = lab_like_plan.inventory.groups[0]
    raised = planner.build(inventory.Inventory(**{**lab_like_plan.inventory.__dict__, "groups": (
        inventory.Group(**{**group.__dict__, "quorum": 3, "down_after_milliseconds": 2000}),)}))
    owned = render.sentinel_owned_directives(raised, raised.inventory.host("lab1"))
    assert ("sentinel", "quorum", "mymaster") in sentinel_step._differs_all(current, owned)


@pytest.mark.parametrize("line, key, values", [
    ("maxmemory 128mb", ("maxmemory",), ("128mb",)),
    ('save "3600 1 300 100"', ("save",), ("3600 1 300 100",)),
    ("sentinel monitor mymaster 10.0.0.1 6379 2", ("sentinel", "monitor", "mymaster"), ("10.0.0.1", "6379", "2")),
    ("sentinel myid abc", ("sentinel", "myid"), ("abc",)),
    ('logfile "/app/redis/logs/x.log"', ("logfile",), ("/app/redis/logs/x.log",)),
])
def test_directive_keys_identify_what_a_line_sets(line, key, values):
    [(_, directive)] = confparse.parse(line)
    assert (directive.key, directive.values) == (key, values)


@pytest.mark.parametrize("text, mode", [("always madvise [never]", "never"), ("[always] madvise never", "always"),
                                         ("never", "never"), ("madvise\n", "madvise")])
def test_thp_mode_parses_kernel_and_plain_forms(text, mode):
    assert parse_thp(text) == mode


def test_rc_local_block_is_inserted_before_exit_and_replaced_in_place(lab_like_plan):
    block = render.rc_local_block(lab_like_plan, lab_like_plan.host_plan("lab1"))
    assert "echo never > /sys/kernel/mm/transparent_hugepage/enabled" in block
    original = "#!/bin/sh -e\n/usr/local/bin/site-thing\nexit 0\n"
    merged = render.with_rc_local_block(original, block)
    assert merged.index("site-thing") < merged.index(render.RC_LOCAL_BEGIN) < merged.index("exit 0")
    again = render.with_rc_local_block(merged, block.replace("never", "madvise"))
    assert again.count(render.RC_LOCAL_BEGIN) == 1 and "echo madvise" in again and "site-thing" in again
    assert render.with_rc_local_block(None, block).startswith("#!/bin/sh\n")


def test_facts_parse_one_round_trip_output():
    output = "\n".join(["@@provision:platform", "debian|12|x86_64", "@@provision:init", "lab-init",
                        "@@provision:active_bin", "versions/7.0.15/bin", "@@provision:version",
                        "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.2.1 bits=64 build=abc",
                        "@@provision:tools", "gcc", "@@provision:package_manager", "/usr/bin/apt-get",
                        "@@provision:redis_user", "999"])
    found = facts.parse(output)
    assert found.platform == "debian-12-x86_64" and found.installed_version == "7.0.15"
    assert found.missing_build_tools == ("gcc",) and found.package_manager == "apt-get" and found.has_redis_user


def test_facts_parse_bare_host():
    output = "@@provision:platform\nrocky|9.3|aarch64\n@@provision:init\nsystemd\n@@provision:active_bin\n" \
             "@@provision:version\n@@provision:tools\n@@provision:package_manager\n/usr/bin/dnf\n@@provision:redis_user\n"
    found = facts.parse(output)
    assert found.installed_version is None and found.active_bin is None and not found.has_redis_user
    assert found.package_manager == "dnf" and found.init_system == "systemd"


def test_reply_parsers():
    assert topology.parse_master_address("10.77.0.13\n6379\n") == ("10.77.0.13", 6379)
    assert topology.parse_master_address("\n") is None
    assert topology.parse_role("slave\n10.77.0.11\n6379\nconnected\n100\n") == "slave"
    info = rediscli.parse_info("# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n")
    assert info == {"role": "slave", "master_link_status": "up"}
    assert rediscli.parse_pairs("name\nmymaster\nip\n10.0.0.1\nnum-slaves\n2\n")["num-slaves"] == "2"


def test_secret_masker_hides_passwords_and_their_hashes(lab_like_plan):
    mask = inventory.secret_masker(lab_like_plan.inventory)
    text = f"masterauth replication-password-1\nuser admin on #{render.password_hash('admin-password-1')}"
    masked = mask(text)
    assert "replication-password-1" not in masked and render.password_hash("admin-password-1") not in masked


def test_secret_masker_hides_any_value_of_a_secret_directive(lab_like_plan):
    """A password the inventory no longer knows (an old one, in a --diff) is hidden too, because
    the directive table says the line holds a secret."""
    mask = inventory.secret_masker(lab_like_plan.inventory)
    diff = "-masterauth old-pass-1\n+sentinel auth-pass mymaster old-pass-2\n sentinel sentinel-pass old-pass-3\nmaxmemory 1gb"
    masked = mask(diff)
    assert not any(f"old-pass-{n}" in masked for n in (1, 2, 3)), masked
    assert "-masterauth ********" in masked and "+sentinel auth-pass mymaster ********" in masked
    assert "maxmemory 1gb" in masked


def test_secret_masker_hides_escaped_values_and_acl_passwords_it_never_saw(lab_like_plan):
    mask = inventory.secret_masker(lab_like_plan.inventory)
    text = ('masterauth "Repl\\\\Passw0rd-xyz"\n'
            "+user bob on >an-old-password-9 ~app:* +get\n"
            "user carol on #0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ~* +@all")
    masked = mask(text)
    assert "Passw0rd" not in masked and "an-old-password-9" not in masked and "0123456789abcdef" not in masked, masked
    assert "+user bob on >******** ~app:* +get" in masked


def test_redis_cli_command_line_never_carries_a_password(lab_like_plan):
    line = rediscli.command_line(lab_like_plan.layout, "10.0.0.1", 6379, ["PING"], lab_like_plan.inventory.acl.admin)
    assert "admin-password-1" not in line and "REDISCLI_AUTH" in line and " -a " not in line


def test_drill_unavailability_is_the_longest_gap_between_acknowledged_writes():
    from provision.ops.drill import longest_gap
    assert longest_gap([1.0, 1.1, 1.2, 4.7, 4.8], since=1.1) == pytest.approx(3.5)
    assert longest_gap([1.0, 1.1], since=2.0) == float("inf")


def test_live_acl_comparison_notices_a_missing_user_and_an_open_default(lab_like_plan):
    from provision.steps.node import live_users_match
    users = lab_like_plan.inventory.acl.all_users
    good = "\n".join(["user default off resetchannels -@all"] +
                     [f"user {u.name} on #{render.password_hash(u.password.value)} ~* +@all" for u in users])
    assert live_users_match(good, users, render.password_hash)
    assert not live_users_match("\n".join(l for l in good.splitlines() if not l.startswith("user app ")), users,
                                render.password_hash)
    assert not live_users_match(good.replace("user default off", "user default on nopass"), users, render.password_hash)


@pytest.mark.parametrize("file_text, info, agrees", [
    ("port 6379\n", {"role": "master"}, True),
    ("replicaof no one\n", {"role": "master"}, True),
    ("replicaof 10.0.0.2 6379\n", {"role": "master"}, False),
    ("replicaof 10.0.0.2 6379\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, True),
    ('slaveof "10.0.0.2" 6379\n', {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, True),
    ("replicaof 10.0.0.3 6379\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, False),
    ("port 6379\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, False),
    ("replicaof no one\n", {"role": "slave", "master_host": "10.0.0.2", "master_port": "6379"}, False),
])
def test_verify_compares_replicaof_in_the_file_with_the_running_role(file_text, info, agrees):
    from provision.checks.verify import replicaof_agrees
    assert replicaof_agrees(file_text, info)[0] is agrees


def test_role_watch_counts_every_poll_that_saw_two_writable_masters():
    from provision.ops.rolewatch import accepts_writes, overlap_seconds
    one, two = frozenset({"a"}), frozenset({"a", "b"})
    assert overlap_seconds([(0.0, one), (0.1, one), (0.2, one)]) == (0.0, 0.0)
    total, longest = overlap_seconds([(0.0, one), (0.1, two), (0.2, one), (0.3, two), (0.4, two), (0.5, one)])
    assert round(total, 3) == 0.3 and round(longest, 3) == 0.2
    assert accepts_writes({"role": "master"}, 0)
    assert not accepts_writes({"role": "master", "min_slaves_good_slaves": 0}, 1)   # cut off: NOREPLICAS
    assert accepts_writes({"role": "master", "min_slaves_good_slaves": 1}, 1)
    assert not accepts_writes({"role": "slave"}, 0)


def test_lab_shapes_spread_groups_over_hosts_with_a_sentinel_set():
    from lab.inventory_file import group_layout
    names = [f"lab{i}" for i in range(1, 31)]
    groups, sentinels = group_layout(names, 10)
    assert len(groups) == 10 and sentinels == ["lab1", "lab2", "lab3"]
    assert groups["group1"] == {**groups["group1"], "master": "lab1", "replicas": ["lab2", "lab3"], "quorum": 2}
    assert sorted(h for g in groups.values() for h in [g["master"], *g["replicas"]]) == sorted(names)
    one, every = group_layout(names, 1)
    assert one["mymaster"]["replicas"] == names[1:] and every == names and one["mymaster"]["quorum"] == 16
    _, five = group_layout(names, 10, sentinels=5)
    assert five == names[:5]
    with pytest.raises(ValueError, match="--groups"):
        group_layout(names[:3], 4)


def test_a_master_starts_the_replica_transfer_once_every_replica_of_its_group_is_connected(lab_like_plan):
    """repl-diskless-sync-max-replicas: not repl-diskless-sync-delay's 5 s wait per deploy."""
    node = lab_like_plan.host_plan("lab1").nodes[0]
    assert "\nrepl-diskless-sync-max-replicas 2\n" in render.redis_conf(lab_like_plan, node, None)


def test_the_sentinel_majority_rule_counts_all_configured_sentinels_not_only_those_that_answered():
    two_of_five = topology.agreement(["10.0.0.1", "10.0.0.1", None, None, None], 5)
    assert two_of_five.address == "10.0.0.1" and not two_of_five.has_majority and two_of_five.unanimous
    three_of_five = topology.agreement(["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1"], 5)
    assert three_of_five.has_majority and not three_of_five.unanimous and not three_of_five.contested
    split = topology.agreement(["10.0.0.1", "10.0.0.2"], 3)
    assert split.contested and not split.has_majority
    assert topology.agreement([], 3).address is None
